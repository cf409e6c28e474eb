/* SPDX-License-Identifier: GPL-2.0 */
/*
 * away MIB PEER ROUNDS [HOME]: a process's budget holds on the node it runs on, away from home
 * too (the home pulls pages back while it runs there), and every page reads back what was
 * written on either node.
 *
 * The process fills MIB MiB, stretches to PEER with an 8 MiB budget, pinned at home (sticky),
 * and waits until all but the budget is on the peer. It then jumps there and, ROUNDS times,
 * checks every page and writes it anew (no syscall in between: they run at home), so that
 * the whole footprint passes through the peer's budget each round; back home it checks the
 * last round. Prints "RESULT away bad=N", the same as a run without ElasticOS, and
 * "away: stretched=S jumped=J rounds=R remote_before=P".
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "stretched.h"

#define PAGE 4096UL
#define BUDGET_PAGES (8 * 256)

/* This program's versioned pages (common.h). */
static long check(const uint64_t *buf, size_t pages, uint64_t round)
{
	return check_pages(buf, pages, 0x4a0a7000ULL, 31, round);
}

static void fill(uint64_t *buf, size_t pages, uint64_t round)
{
	fill_pages(buf, pages, 0x4a0a7000ULL, 31, round);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: away MIB PEER ROUNDS [HOME]\n");
		return 2;
	}
	size_t pages = strtoull(argv[1], NULL, 10) * 256;
	int peer = atoi(argv[2]), rounds = atoi(argv[3]);
	int home = argc > 4 ? atoi(argv[4]) : 1;
	uint64_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long bad = 0, remote = 0;
	int jumped = 0, r;

	if (buf == MAP_FAILED || rounds < 1)
		return 2;
	fill(buf, pages, 1);
	int stretched = stretch_pinned("away", peer, BUDGET_PAGES, pages, &remote);
	if (stretched < 0)
		return 3;
	if (stretched)
		jumped = elastic_jump(0, peer) == 0;
	/* Away (when it jumped): no syscall until the jump home. */
	for (r = 2; r <= rounds + 1; r++) {
		bad += check(buf, pages, r - 1);
		fill(buf, pages, r);
	}
	if (jumped)
		elastic_jump(0, home);
	bad += check(buf, pages, rounds + 1);
	printf("away: stretched=%d jumped=%d rounds=%d remote_before=%ld reclaimed=%ld\n",
	       stretched, jumped, rounds, remote, self_field("reclaimed_pages="));
	printf("RESULT away bad=%ld\n", bad);
	return bad ? 1 : 0;
}
