/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared by the ElasticOS workloads: footprint argument, deterministic input, checksum and the
 * result line. The result line depends only on the algorithm, the footprint and the seed, never
 * on the machine or on where the pages lived, so runs can be compared byte for byte.
 */
#ifndef EOS_WORKLOAD_COMMON_H
#define EOS_WORKLOAD_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A field of this process's line in /proc/self/elastic, `name` with its '=' (-1: none, or
 * the process is not stretched). */
static inline long self_field(const char *name)
{
	char line[1024], *r;
	long n = -1;
	FILE *f = fopen("/proc/self/elastic", "r");

	if (f && fgets(line, sizeof(line), f) && (r = strstr(line, name)))
		n = atol(r + strlen(name));
	if (f)
		fclose(f);
	return n;
}

/* Pages of this process another node owns (-1 if it is not stretched). */
static inline long self_remote_pages(void)
{
	return self_field(" remote_pages=");
}

/*
 * Versioned pages: in round `round`, page p of a buffer holds base + p * mul + round in its
 * first word and the complement in its last, so a page from another round, another page or
 * half of one reads back wrong. Each program picks its own base and mul.
 */
static inline uint64_t page_word(uint64_t base, uint64_t mul, size_t p, uint64_t round)
{
	return base + p * mul + round;
}

/* Writes round `round` into every page of `buf`. */
static inline void fill_pages(uint64_t *buf, size_t pages, uint64_t base, uint64_t mul,
			      uint64_t round)
{
	for (size_t p = 0; p < pages; p++) {
		buf[p * 512] = page_word(base, mul, p, round);
		buf[p * 512 + 511] = ~page_word(base, mul, p, round);
	}
}

/* Pages of `buf` that do not hold round `round`. */
static inline long check_pages(const uint64_t *buf, size_t pages, uint64_t base, uint64_t mul,
			       uint64_t round)
{
	long bad = 0;

	for (size_t p = 0; p < pages; p++)
		if (buf[p * 512] != page_word(base, mul, p, round) ||
		    buf[p * 512 + 511] != ~page_word(base, mul, p, round))
			bad++;
	return bad;
}

/* splitmix64: fast, deterministic, good enough for synthetic inputs. */
static inline uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Order-sensitive 64-bit checksum (FNV-1a over 64-bit words, then a final mix). */
typedef struct { uint64_t h; uint64_t n; } csum_t;

static inline void csum_init(csum_t *c) { c->h = 0xcbf29ce484222325ULL; c->n = 0; }

static inline void csum_add(csum_t *c, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		c->h ^= (v >> (8 * i)) & 0xff;
		c->h *= 0x100000001b3ULL;
	}
	c->n++;
}

static inline uint64_t csum_final(const csum_t *c)
{
	uint64_t s = c->h ^ c->n;
	return rng_next(&s);
}

static inline double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static double t_start;

/* Usage: prog FOOTPRINT_MIB [SEED]. Returns the footprint in bytes. */
static inline uint64_t parse_args(int argc, char **argv, uint64_t *seed, const char *name)
{
	t_start = now_s();
	if (argc < 2) {
		fprintf(stderr, "usage: %s FOOTPRINT_MIB [SEED]\n", name);
		exit(2);
	}
	uint64_t mib = strtoull(argv[1], NULL, 10);
	if (mib == 0 || mib > (1ULL << 20)) {
		fprintf(stderr, "%s: footprint must be 1..1048576 MiB\n", name);
		exit(2);
	}
	*seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 42;
	return mib << 20;
}

static inline void *xmalloc(size_t n, const char *name)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "%s: cannot allocate %zu bytes\n", name, n);
		exit(3);
	}
	return p;
}

/* Peak resident memory of this process in KiB (VmHWM), 0 if unknown. */
static inline unsigned long peak_rss_kib(void)
{
	char line[256];
	unsigned long kib = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %lu", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * The verification line (RESULT: identical for identical workload, footprint and seed) and a
 * separate measurement line (TIME: total includes building the input, compute does not).
 */
static inline void report(const char *name, uint64_t footprint, uint64_t seed, uint64_t sum,
			  const char *extra, double compute_s)
{
	printf("RESULT %s footprint_mib=%llu seed=%llu checksum=%016llx %s\n", name,
	       (unsigned long long)(footprint >> 20), (unsigned long long)seed,
	       (unsigned long long)sum, extra);
	printf("TIME %s total_s=%.3f compute_s=%.3f peak_rss_kib=%lu\n", name, now_s() - t_start,
	       compute_s, peak_rss_kib());
	fflush(stdout);
}

#endif
