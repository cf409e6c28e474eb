/* SPDX-License-Identifier: GPL-2.0 */
/* Heap sort of 32-byte records by key; the checksum covers keys and payloads in sorted order. */
#include "common.h"

typedef struct { uint64_t key, a, b, c; } rec_t;

static void sift(rec_t *r, size_t root, size_t n)
{
	for (;;) {
		size_t big = root, l = 2 * root + 1, rr = l + 1;
		if (l < n && r[l].key > r[big].key)
			big = l;
		if (rr < n && r[rr].key > r[big].key)
			big = rr;
		if (big == root)
			return;
		rec_t t = r[root];
		r[root] = r[big];
		r[big] = t;
		root = big;
	}
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "hsort");
	size_t n = fp / sizeof(rec_t);
	rec_t *r = xmalloc(n * sizeof(*r), "hsort");
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		r[i].key = rng_next(&s) >> 8;
		r[i].a = i;
		r[i].b = r[i].key ^ 0x5555;
		r[i].c = ~i;
	}
	double t0 = now_s();
	for (size_t i = n / 2; i-- > 0;)
		sift(r, i, n);
	for (size_t end = n; end-- > 1;) {
		rec_t t = r[0];
		r[0] = r[end];
		r[end] = t;
		sift(r, 0, end);
	}
	csum_t c;
	csum_init(&c);
	uint64_t unsorted = 0, broken = 0;
	for (size_t i = 0; i < n; i++) {
		unsorted += i && r[i - 1].key > r[i].key;
		broken += r[i].b != (r[i].key ^ 0x5555) || r[i].c != ~r[i].a;
		csum_add(&c, r[i].key);
		csum_add(&c, r[i].a);
	}
	char extra[96];
	snprintf(extra, sizeof(extra), "records=%zu sorted=%s intact=%s", n, unsorted ? "no" : "yes",
		 broken ? "no" : "yes");
	report("hsort", fp, seed, csum_final(&c), extra, now_s() - t0);
	return unsorted || broken;
}
