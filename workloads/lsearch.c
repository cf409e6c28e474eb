/* SPDX-License-Identifier: GPL-2.0 */
/* Linear search: scans an array of random 64-bit keys for a set of keys, several passes. */
#include "common.h"

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "lsearch");
	size_t n = fp / sizeof(uint64_t);
	uint64_t *a = xmalloc(n * sizeof(*a), "lsearch");
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++)
		a[i] = rng_next(&s);

	double t0 = now_s();
	enum { PASSES = 2, KEYS = 4 };
	csum_t c;
	csum_init(&c);
	uint64_t found = 0;
	for (int p = 0; p < PASSES; p++) {
		uint64_t keys[KEYS];
		/* half the keys are taken from the array, half are (almost surely) absent */
		for (int k = 0; k < KEYS; k++)
			keys[k] = (k & 1) ? rng_next(&s) : a[rng_next(&s) % n];
		for (int k = 0; k < KEYS; k++) {
			size_t hit = n;
			for (size_t i = 0; i < n; i++)
				if (a[i] == keys[k]) {
					hit = i;
					break;
				}
			found += hit != n;
			csum_add(&c, hit);
		}
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "found=%llu", (unsigned long long)found);
	report("lsearch", fp, seed, csum_final(&c), extra, now_s() - t0);
	return 0;
}
