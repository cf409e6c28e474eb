/* SPDX-License-Identifier: GPL-2.0 */
/* Block sort: sort fixed-size blocks independently, then merge them pairwise (bottom-up). */
#include "common.h"

#define BLOCK (64 * 1024) /* elements per block (512 KiB) */

static void quicksort(uint64_t *a, long lo, long hi)
{
	while (lo < hi) {
		uint64_t p = a[lo + (hi - lo) / 2];
		long i = lo, j = hi;
		while (i <= j) {
			while (a[i] < p)
				i++;
			while (a[j] > p)
				j--;
			if (i <= j) {
				uint64_t t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		/* recurse into the smaller half, loop on the larger: bounded stack */
		if (j - lo < hi - i) {
			quicksort(a, lo, j);
			lo = i;
		} else {
			quicksort(a, i, hi);
			hi = j;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "bsort");
	size_t n = fp / (2 * sizeof(uint64_t));
	uint64_t *a = xmalloc(n * sizeof(*a), "bsort"), *b = xmalloc(n * sizeof(*b), "bsort");
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++)
		a[i] = rng_next(&s);
	memset(b, 0, n * sizeof(*b));

	double t0 = now_s();
	for (size_t lo = 0; lo < n; lo += BLOCK) {
		size_t hi = lo + BLOCK < n ? lo + BLOCK : n;
		quicksort(a, (long)lo, (long)hi - 1);
	}
	for (size_t width = BLOCK; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n;
			size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				b[k++] = a[i] <= a[j] ? a[i++] : a[j++];
			while (i < mid)
				b[k++] = a[i++];
			while (j < hi)
				b[k++] = a[j++];
		}
		uint64_t *t = a;
		a = b;
		b = t;
	}
	csum_t c;
	csum_init(&c);
	uint64_t unsorted = 0;
	for (size_t i = 0; i < n; i++) {
		unsorted += i && a[i - 1] > a[i];
		csum_add(&c, a[i]);
	}
	char extra[64];
	snprintf(extra, sizeof(extra), "elements=%zu sorted=%s", n, unsorted ? "no" : "yes");
	report("bsort", fp, seed, csum_final(&c), extra, now_s() - t0);
	return unsorted != 0;
}
