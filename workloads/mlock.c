/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mlock MIB PEER [HOME]: mlock() and mlockall() over pages another node holds bring them home,
 * with their data, and keep them home while the pusher works on the rest, and while the
 * process runs on the peer and reads them there.
 *
 * The process fills MIB MiB, stretches to PEER with an 8 MiB budget (pinned at home, so its
 * own page table is the one /proc/self/pagemap shows) and waits until half its pages are on
 * the peer. Then it locks the first half: every page there must be present (pagemap bit 63)
 * and read back what was written, also after a second round of writes while the pusher pushes
 * the unlocked half; then mlockall(MCL_CURRENT) must bring back everything. A failed mlock
 * may only say ENOMEM or EPERM (an unprivileged run without ElasticOS hits RLIMIT_MEMLOCK).
 *
 * Prints "RESULT mlock bad=N", the same as a run without ElasticOS, and
 * "mlock: stretched=S locked=L ..." with what was checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common.h"
#include "elastic.h"

#define PAGE 4096UL

/* This program's versioned pages (common.h). */
static long check(const uint64_t *buf, size_t pages, uint64_t round)
{
	return check_pages(buf, pages, 0x3100c000ULL, 13, round);
}

static void fill(uint64_t *buf, size_t pages, uint64_t round)
{
	fill_pages(buf, pages, 0x3100c000ULL, 13, round);
}

/* Pages of [buf, buf + pages) not present in this node's page table (-1: pagemap unreadable). */
static long absent(const void *buf, size_t pages)
{
	uint64_t *e = malloc(pages * 8);
	long n = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || !e || pread(fd, e, pages * 8, (off_t)((uintptr_t)buf / PAGE) * 8) !=
					(ssize_t)(pages * 8))
		n = -1;
	for (size_t i = 0; n >= 0 && i < pages; i++)
		if (!(e[i] >> 63 & 1))
			n++;
	if (fd >= 0)
		close(fd);
	free(e);
	return n;
}

/* mlock's result: 1 locked, 0 refused the documented way, -1 anything else (counted bad). */
static int lock_result(int r)
{
	if (r == 0)
		return 1;
	return errno == ENOMEM || errno == EPERM ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: mlock MIB PEER [HOME]\n");
		return 2;
	}
	size_t pages = strtoull(argv[1], NULL, 10) * 256, half = pages / 2;
	int peer = atoi(argv[2]), home = argc > 3 ? atoi(argv[3]) : 1;
	uint64_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long bad = 0, remote = 0, were_remote = 0, missing = 0, missing_all = 0, missing_away = 0;
	int locked = 0, locked_all = 0;

	if (buf == MAP_FAILED)
		return 2;
	fill(buf, pages, 1);
	int stretched = elastic_stretch(0, peer) == 0;
	if (stretched) {
		elastic_set_sticky(0, 1);
		elastic_set_budget(0, 8 * 256);
		for (int i = 0; i < 600 && (remote = self_remote_pages()) < (long)half; i++)
			usleep(100 * 1000);
		if (remote < (long)half) {
			printf("mlock: only %ld of %zu pages went to the peer\n", remote, pages);
			return 3;
		}
		were_remote = absent(buf, half);
	}

	/* Lock the first half: its pages come home and stay. */
	locked = lock_result(mlock(buf, half * PAGE));
	if (locked < 0)
		bad++;
	if (locked > 0)
		missing += absent(buf, half);
	bad += check(buf, pages, 1);
	fill(buf, pages, 2);
	usleep(500 * 1000);
	if (locked > 0)
		missing += absent(buf, half);
	bad += check(buf, pages, 2);
	/*
	 * Read away from home, the locked half stays home: the peer's faults on it go home
	 * instead of taking the pages away (a locked page never leaves).
	 */
	if (stretched && locked > 0) {
		elastic_set_sticky(0, 0);
		if (elastic_jump(0, peer) == 0)
			bad += check(buf, half, 2);
		else
			bad++; /* the away phase must run */
		elastic_jump(0, home);
		elastic_set_sticky(0, 1);
		missing_away = absent(buf, half);
	}
	munlock(buf, half * PAGE);

	/* Everything, then. */
	locked_all = lock_result(mlockall(MCL_CURRENT));
	if (locked_all < 0)
		bad++;
	if (locked_all > 0)
		missing_all = absent(buf, pages);
	bad += check(buf, pages, 2);
	munlockall();
	if (missing || missing_all || missing_away)
		bad++;

	printf("mlock: stretched=%d locked=%d locked_all=%d remote_before=%ld "
	       "locked_were_remote=%ld missing_after_mlock=%ld missing_after_mlockall=%ld "
	       "locked_missing_after_away=%ld\n",
	       stretched, locked, locked_all, remote, were_remote, missing, missing_all,
	       missing_away);
	printf("RESULT mlock bad=%ld\n", bad);
	return bad ? 1 : 0;
}
