/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forkcopy MIB PEER: a stretched process forks while most of its pages are on PEER; the
 * child gets its own copy of every page (issue 28 item 3).
 *
 * The process fills MIB MiB, stretches to PEER with a 2 MiB budget, pinned at home (sticky),
 * and waits until all but the budget is on the peer. It forks (timed). The child checks
 * every page (the parent's values at the fork), writes its own values over all of them and
 * checks those; the parent meanwhile writes and checks values of its own, and once the child
 * is gone checks them again (no write of one reached the other). Before: each page that was
 * on the peer at the fork was a poisoned marker in the child, SIGBUS on its first touch.
 * Prints "RESULT forkcopy bad=N child=C" (C is the child's exit status, 0: every page right)
 * as a run without ElasticOS does, and "forkcopy: stretched=S remote_before=P fork_ms=F
 * remote_after=A".
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stretched.h"

#define PAGE 4096UL
#define BUDGET_PAGES (2 * 256)

static long check(const uint64_t *buf, size_t pages, uint64_t round)
{
	return check_pages(buf, pages, 0xf0bc0000ULL, 41, round);
}

static void fill(uint64_t *buf, size_t pages, uint64_t round)
{
	fill_pages(buf, pages, 0xf0bc0000ULL, 41, round);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: forkcopy MIB PEER\n");
		return 2;
	}
	size_t pages = strtoull(argv[1], NULL, 10) * 256;
	int peer = atoi(argv[2]);
	uint64_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long bad = 0, remote = 0, after = 0;
	int status = -1, child = -1;

	if (buf == MAP_FAILED || pages <= BUDGET_PAGES)
		return 2;
	fill(buf, pages, 1);
	int stretched = stretch_pinned("forkcopy", peer, BUDGET_PAGES, pages, &remote);
	if (stretched < 0)
		return 3;
	double t0 = now_s();
	pid_t pid = fork();
	double fork_ms = (now_s() - t0) * 1000;
	if (pid < 0) {
		perror("forkcopy: fork");
		return 2;
	}
	if (pid == 0) {
		long cbad = check(buf, pages, 1);
		fill(buf, pages, 7);
		cbad += check(buf, pages, 7);
		_exit(cbad ? 1 : 0);
	}
	if (stretched)
		after = self_remote_pages();
	bad += check(buf, pages, 1);
	fill(buf, pages, 2);
	bad += check(buf, pages, 2);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		child = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		child = 128 + WTERMSIG(status);
	bad += check(buf, pages, 2);
	printf("forkcopy: stretched=%d remote_before=%ld fork_ms=%.0f remote_after=%ld\n",
	       stretched, remote, fork_ms, after);
	printf("RESULT forkcopy bad=%ld child=%d\n", bad, child);
	return bad || child ? 1 : 0;
}
