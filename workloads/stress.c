/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Random reads and writes over a region, each page verified by content: a page holds its
 * index, its version and a fill derived from both, so a page that comes back from another
 * node stale, shifted or zeroed is caught. Pages are rewritten with a new version as they go,
 * so under a small local budget they move back and forth many times.
 */
#include "common.h"

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t fill(uint64_t idx, uint64_t ver, int w)
{
	uint64_t s = idx * 0x100000001b3ULL ^ ver * 0x9e3779b97f4a7c15ULL ^ (uint64_t)w;
	return rng_next(&s);
}

static void write_page(uint64_t *p, uint64_t idx, uint64_t ver)
{
	p[0] = idx;
	p[1] = ver;
	for (int w = 2; w < WORDS; w++)
		p[w] = fill(idx, ver, w);
}

static int check_page(const uint64_t *p, uint64_t idx, uint64_t ver)
{
	if (p[0] != idx || p[1] != ver)
		return 1;
	for (int w = 2; w < WORDS; w++)
		if (p[w] != fill(idx, ver, w))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "stress");
	size_t pages = fp / PAGE;
	uint64_t *mem = xmalloc(pages * PAGE, "stress");
	uint32_t *ver = xmalloc(pages * sizeof(*ver), "stress");
	uint64_t s = seed, errors = 0, writes = 0;
	uint64_t ops = argc > 3 ? strtoull(argv[3], NULL, 10) : 8 * pages;

	for (size_t i = 0; i < pages; i++) {
		ver[i] = 1;
		write_page(mem + i * WORDS, i, 1);
	}
	double t0 = now_s();
	for (uint64_t op = 0; op < ops; op++) {
		size_t i = rng_next(&s) % pages;
		uint64_t *p = mem + i * WORDS;
		if (check_page(p, i, ver[i])) {
			if (errors++ < 10)
				fprintf(stderr, "stress: page %zu version %u corrupt (holds %llu/%llu)\n",
					i, ver[i], (unsigned long long)p[0], (unsigned long long)p[1]);
		}
		if (rng_next(&s) & 1) {
			write_page(p, i, ++ver[i]);
			writes++;
		}
	}
	csum_t c;
	csum_init(&c);
	for (size_t i = 0; i < pages; i++) {
		errors += check_page(mem + i * WORDS, i, ver[i]);
		csum_add(&c, ver[i]);
	}
	char extra[96];
	snprintf(extra, sizeof(extra), "pages=%zu ops=%llu writes=%llu errors=%llu", pages,
		 (unsigned long long)ops, (unsigned long long)writes, (unsigned long long)errors);
	report("stress", fp, seed, csum_final(&c), extra, now_s() - t0);
	return errors != 0;
}
