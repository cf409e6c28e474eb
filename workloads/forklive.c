/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forklive MIB PEER [HOME]: a stretched process that forks keeps running right while its child
 * lives, at home and away (issue 25 item 5).
 *
 * The process fills MIB MiB, stretches to PEER with a 2 MiB budget, pinned at home (sticky),
 * and waits until all but the budget is on the peer. It then forks: the pages still at home
 * become copy-on-write shared with the child, and the child lives on (it writes and keeps a
 * mapping of its own, made after the fork) until the parent is done. The parent jumps to PEER
 * and checks and rewrites every page there, twice, so each page shared with the child must be
 * handed to the shell (before: the home's take answered EBUSY for a shared page and the shell
 * asked again forever); back home it checks the last round, rewrites every page once more and
 * checks it. Then the child checks its own mapping and ends. Prints "RESULT forklive bad=N
 * child=C" (C is the child's exit status, 0: right), the same as a run without ElasticOS, and
 * "forklive: stretched=S jumped=J remote_before=P".
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include "stretched.h"

#define PAGE 4096UL
#define BUDGET_PAGES (2 * 256)
#define CHILD_PAGES 256

/* This program's versioned pages (common.h). */
static long check(const uint64_t *buf, size_t pages, uint64_t round)
{
	return check_pages(buf, pages, 0xf0c1e000ULL, 37, round);
}

static void fill(uint64_t *buf, size_t pages, uint64_t round)
{
	fill_pages(buf, pages, 0xf0c1e000ULL, 37, round);
}

/* The child: its own mapping, written, kept while the parent works, checked at the end. */
static int child_main(int rfd)
{
	uint64_t *own = mmap(NULL, CHILD_PAGES * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char c;

	if (own == MAP_FAILED)
		return 2;
	fill(own, CHILD_PAGES, 99);
	/* Until the parent closes its end. */
	while (read(rfd, &c, 1) > 0)
		;
	return check(own, CHILD_PAGES, 99) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: forklive MIB PEER [HOME]\n");
		return 2;
	}
	size_t pages = strtoull(argv[1], NULL, 10) * 256;
	int peer = atoi(argv[2]);
	int home = argc > 3 ? atoi(argv[3]) : 1;
	uint64_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long bad = 0, remote = 0;
	int jumped = 0, fds[2], status = -1, child = -1;
	pid_t pid;

	if (buf == MAP_FAILED || pages <= BUDGET_PAGES || pipe(fds))
		return 2;
	fill(buf, pages, 1);
	int stretched = stretch_pinned("forklive", peer, BUDGET_PAGES, pages, &remote);
	if (stretched < 0)
		return 3;
	pid = fork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		close(fds[1]);
		_exit(child_main(fds[0]));
	}
	close(fds[0]);
	if (stretched)
		jumped = elastic_jump(0, peer) == 0;
	/* Away (when it jumped): no syscall until the jump home. */
	bad += check(buf, pages, 1);
	fill(buf, pages, 2);
	bad += check(buf, pages, 2);
	fill(buf, pages, 3);
	if (jumped)
		elastic_jump(0, home);
	bad += check(buf, pages, 3);
	fill(buf, pages, 4);
	bad += check(buf, pages, 4);
	close(fds[1]);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		child = WEXITSTATUS(status);
	printf("forklive: stretched=%d jumped=%d remote_before=%ld\n", stretched, jumped, remote);
	printf("RESULT forklive bad=%ld child=%d\n", bad, child);
	return bad || child ? 1 : 0;
}
