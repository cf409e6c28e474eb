/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fileid make PATH CHAR | fileid run PATH PEER [HOME]: a shell maps a home's file only if it
 * has the same contents, not merely the same path, size and mtime (issue 27 item 4).
 *
 * `make` writes PATH: 64 KiB of CHAR, its modification time set to a fixed date, so that the
 * same command on two nodes with different CHARs gives two files that differ only in their
 * contents (what a local user who controls a path on a member can plant).
 *
 * `run` maps PATH private and read-only at home, stretches to PEER, jumps there and reads it
 * back (the shell maps its own file of that path, if it takes it for the home's), jumps home
 * and reads it again. Prints "RESULT fileid bad=N" (0 in a run without ElasticOS: every byte
 * is the home file's first byte) and "fileid: stretched=S jumped=J away_bad=A".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common.h"
#include "elastic.h"

#define SIZE (64UL << 10)
#define STEP 4096UL

static int make(const char *path, char c)
{
	/* 2026-01-01 on every node: the same mtime for the same path and size. */
	struct timespec t[2] = { { 1767225600, 0 }, { 1767225600, 0 } };
	static char buf[SIZE];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0)
		return 2;
	memset(buf, c, SIZE);
	if (write(fd, buf, SIZE) != (ssize_t)SIZE || futimens(fd, t) || close(fd))
		return 2;
	return 0;
}

static long count_bad(const volatile char *p, char want)
{
	long bad = 0;

	for (size_t i = 0; i < SIZE; i += STEP)
		if (p[i] != want || p[i + STEP - 1] != want)
			bad++;
	return bad;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "make"))
		return make(argv[2], argv[3][0]);
	if (argc < 4 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: fileid make PATH CHAR | fileid run PATH PEER [HOME]\n");
		return 2;
	}
	int peer = atoi(argv[3]), home = argc > 4 ? atoi(argv[4]) : 1;
	int fd = open(argv[2], O_RDONLY);
	long away_bad, bad;
	int stretched, jumped = 0;
	const char *p;
	char want;

	if (fd < 0)
		return 2;
	p = mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	want = p[0];
	stretched = elastic_stretch(0, peer) == 0;
	if (stretched) {
		elastic_set_sticky(0, 1);
		jumped = elastic_jump(0, peer) == 0;
	}
	/* Away (when it jumped): no syscall until the jump home. */
	away_bad = count_bad(p, want);
	if (jumped)
		elastic_jump(0, home);
	bad = away_bad + count_bad(p, want);
	printf("fileid: stretched=%d jumped=%d away_bad=%ld\n", stretched, jumped, away_bad);
	printf("RESULT fileid bad=%ld\n", bad);
	return bad ? 1 : 0;
}
