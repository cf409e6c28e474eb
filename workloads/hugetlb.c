/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hugetlb make PATH | hugetlb run PATH PEER [HOME]: a private mapping of a hugetlbfs file reads
 * the home's bytes wherever the process runs (issue 25 item 10).
 *
 * `make` creates PATH on a hugetlbfs mount: one 2 MiB huge page of 'A's, its modification time
 * set to a fixed date, so that the same command on two nodes gives two files of the same path,
 * size and mtime (what a shell compares before it maps a file of its own).
 *
 * `run` maps PATH private, writes 'B' over every 4 KiB step of it at home (copies on write,
 * in the home's memory only), stretches to PEER, jumps there and reads it back, jumps home
 * and reads it again. A shell that mapped its own file read 'A' (hugetlb faults bypass
 * ElasticOS's markers); the range must stay the home's. Prints "RESULT hugetlb bad=N" (0 in a
 * run without ElasticOS) and "hugetlb: stretched=S jumped=J away_bad=A".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"
#include "elastic.h"

#define HUGE (2UL << 20)
#define STEP 4096UL

static int make(const char *path)
{
	/* 2026-01-01, on every node: the same mtime for the same path and size. */
	struct timespec t[2] = { { 1767225600, 0 }, { 1767225600, 0 } };
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	char *p;

	if (fd < 0 || ftruncate(fd, HUGE))
		return 2;
	p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	memset(p, 'A', HUGE);
	munmap(p, HUGE);
	if (futimens(fd, t))
		return 2;
	close(fd);
	return 0;
}

static long count_bad(const volatile char *p)
{
	long bad = 0;

	for (size_t i = 0; i < HUGE; i += STEP)
		if (p[i] != 'B')
			bad++;
	return bad;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "make"))
		return make(argv[2]);
	if (argc < 4 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: hugetlb make PATH | hugetlb run PATH PEER [HOME]\n");
		return 2;
	}
	int peer = atoi(argv[3]), home = argc > 4 ? atoi(argv[4]) : 1;
	int fd = open(argv[2], O_RDONLY);
	long away_bad = 0, bad;
	int stretched, jumped = 0;
	char *p;

	if (fd < 0)
		return 2;
	p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < HUGE; i += STEP)
		p[i] = 'B';
	stretched = elastic_stretch(0, peer) == 0;
	if (stretched) {
		elastic_set_sticky(0, 1);
		jumped = elastic_jump(0, peer) == 0;
	}
	/* Away (when it jumped): no syscall until the jump home. */
	away_bad = count_bad(p);
	if (jumped)
		elastic_jump(0, home);
	bad = away_bad + count_bad(p);
	printf("hugetlb: stretched=%d jumped=%d away_bad=%ld\n", stretched, jumped, away_bad);
	printf("RESULT hugetlb bad=%ld\n", bad);
	return bad ? 1 : 0;
}
