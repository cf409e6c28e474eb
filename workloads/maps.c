/* SPDX-License-Identifier: GPL-2.0 */
/*
 * maps HOME PEER N: a process with N separate one-page anonymous mappings (with a hole
 * between each, so none merge), like an interpreter or a JVM with thousands of mappings.
 * Stretched with 1 MiB local until most pages are on the peer, it jumps there (no budget
 * from then on), checks every page there and writes it anew, jumps home and checks again.
 * A layout too large for a jump must leave the process running at home (its pages pulled),
 * never stuck retrying.
 * Prints "RESULT maps n=N bad=B", the same as a run without ElasticOS.
 */
#define _GNU_SOURCE
#include "common.h"
#include "elastic.h"

#include <sys/mman.h>
#include <unistd.h>

static long check(char *base, long n, uint64_t round)
{
	long bad = 0;

	for (long i = 0; i < n; i++) {
		uint64_t *p = (uint64_t *)(base + 2 * i * 4096);
		if (p[0] != round * 1000003 + (uint64_t)i || p[511] != ~p[0])
			bad++;
	}
	return bad;
}

static void fill(char *base, long n, uint64_t round)
{
	for (long i = 0; i < n; i++) {
		uint64_t *p = (uint64_t *)(base + 2 * i * 4096);
		p[0] = round * 1000003 + (uint64_t)i;
		p[511] = ~p[0];
	}
}

int main(int argc, char **argv)
{
	long bad = 0, before, after;

	if (argc < 4) {
		fprintf(stderr, "usage: maps HOME PEER N\n");
		return 2;
	}
	int home = atoi(argv[1]), peer = atoi(argv[2]);
	long n = atol(argv[3]);
	/* Reserve 2N pages, keep the even ones: N mappings, N holes. */
	char *base = mmap(NULL, 2 * n * 4096, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		return 3;
	for (long i = 0; i < n; i++)
		if (munmap(base + (2 * i + 1) * 4096, 4096))
			return 3;
	fill(base, n, 1);
	int stretched = elastic_stretch(0, peer) == 0 && elastic_set_budget(0, 256) == 0;
	if (stretched) {
		/* Most of the pages go to the peer first. */
		for (int t = 0; t < 300 && self_remote_pages() < n / 2; t++)
			usleep(100 * 1000);
	}
	before = stretched ? self_remote_pages() : 0;
	/*
	 * No budget from here on: the pages come back once, not through 1 MiB for each pass
	 * (a layout too large to jump took 86 s of the test command so).
	 */
	if (stretched)
		elastic_set_budget(0, 0);
	if (stretched)
		elastic_jump(0, peer);
	/* No system call until home again: on the peer if the jump went. */
	bad += check(base, n, 1);
	fill(base, n, 2);
	if (stretched)
		elastic_jump(0, home);
	bad += check(base, n, 2);
	after = stretched ? self_remote_pages() : 0;
	printf("maps: stretched=%d remote_before=%ld remote_after=%ld\n", stretched, before, after);
	printf("RESULT maps n=%ld bad=%ld\n", n, bad);
	return bad ? 1 : 0;
}
