/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stale HOME PEER: a read-only private file page the shell built from its own page cache
 * is never read there after the home changed its copy, and a write made there is never lost.
 *
 * The program maps its own executable (the shell has the same file, so it maps it too)
 * PROT_READ and MAP_PRIVATE, reads a byte of each test page on the peer (the shell builds
 * those pages from its own file: the home keeps no marker for them), changes them at home,
 * and reads them on the peer again. Each case is one page:
 *   mprotect       untouched at home; mprotect(PROT_READ|PROT_WRITE) and a write (stays RW)
 *   mprotect-back  read at home first; mprotect RW, a write, mprotect back to PROT_READ
 *   procmem        untouched at home; a write through /proc/self/mem (FOLL_FORCE: the VMA
 *                  stays read-only, the page is copied on write)
 *   procmem-read   read at home first; the same write through /proc/self/mem
 *   peer-write     mprotect RW at home, no write there; the peer writes it, the home reads it
 * Each must read the new value on the peer (else "stale CASE") and the last must read the
 * peer's value at home (else "stale peer-write": the write was lost).
 *
 * On the peer the program makes no system call between its jumps (one would go home).
 * Prints "RESULT stale bad=N", the same as a run without ElasticOS, and whether it ran on
 * the peer ("stale: stretched=1 jumped=1").
 *
 * stale HOME PEER away: another process writes the page through /proc/PID/mem while this one
 * runs on the peer. It prints "away ADDR WANT" (decimal address, octal byte) at home, jumps,
 * reads the page there (the shell builds it) and then spins reading it, with no system call,
 * for up to about 20 G cycles, until it changes; back home it prints "away: first=F seen=S"
 * (F: the first read was the file's byte; S: the new byte was read on the peer), then reads it
 * on the peer once more: the new byte, else "stale away".
 */
#define _GNU_SOURCE
#include "common.h"
#include "elastic.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define CASES 5
#define OFF 123 /* the byte of each page that changes */

/* Makes the executable, dynamically linked too, long enough for the test pages. */
__attribute__((used)) static const unsigned char pad[(CASES + 4) * PAGE] = { 1 };

static const char *const names[CASES] = { "mprotect", "mprotect-back", "procmem", "procmem-read",
					  "peer-write" };

#define AWAY_PAGE (CASES + 1)

/* Another process writes the byte while this one runs on the peer (see the top). */
static int away(int home, int peer, int fd, volatile unsigned char *b, int stretched)
{
	volatile unsigned char *at = b + AWAY_PAGE * PAGE + OFF;
	unsigned char old, want, first, last = 0;
	unsigned long long t0;
	int seen = 0, jumped = 0;

	if (pread(fd, &old, 1, (off_t)AWAY_PAGE * PAGE + OFF) != 1)
		return 6;
	want = old ^ 0x5a;
	printf("away %llu %o\n", (unsigned long long)(uintptr_t)at, want);
	fflush(stdout);
	if (stretched && elastic_jump(0, peer) == 0)
		jumped = 1;
	first = *at;
	t0 = __builtin_ia32_rdtsc();
	while (__builtin_ia32_rdtsc() - t0 < 20000000000ULL)
		if (*at == want) {
			seen = 1;
			break;
		}
	if (stretched)
		elastic_jump(0, home);
	if (stretched && elastic_jump(0, peer) != 0)
		jumped = 0;
	last = *at;
	if (stretched)
		elastic_jump(0, home);
	printf("away: first=%s seen=%d jumped=%d\n", first == old ? "file" : "new", seen, jumped);
	if (last != want) {
		printf("stale away: read %#x, another process wrote %#x (the file has %#x)\n", last,
		       want, old);
		return 1;
	}
	printf("RESULT stale away\n");
	return 0;
}

int main(int argc, char **argv)
{
	unsigned char old[CASES], want[CASES];
	volatile unsigned char got[CASES];
	volatile unsigned char *b;
	volatile unsigned sink = 0;
	struct stat st;
	long bad = 0;
	int jumped = 0, fd, mem;

	if (argc < 3) {
		fprintf(stderr, "usage: stale HOME PEER\n");
		return 2;
	}
	int home = atoi(argv[1]), peer = atoi(argv[2]);
	int stretched = elastic_stretch(0, peer) == 0;

	fd = open("/proc/self/exe", O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || st.st_size < (AWAY_PAGE + 1) * PAGE) {
		perror("stale: /proc/self/exe");
		return 3;
	}
	/* Page i + 1 is case i (page 0, the ELF header, is left alone). */
	b = mmap(NULL, (AWAY_PAGE + 1) * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (b == MAP_FAILED) {
		perror("stale: mmap");
		return 4;
	}
	if (argc > 3 && !strcmp(argv[3], "away"))
		return away(home, peer, fd, b, stretched);
	mem = open("/proc/self/mem", O_RDWR);
	if (mem < 0) {
		perror("stale: /proc/self/mem");
		return 5;
	}
#define AT(i) (b + ((i) + 1) * PAGE + OFF)
	/* What the file has: read with pread, so that the mapping stays untouched at home. */
	for (int i = 0; i < CASES; i++) {
		if (pread(fd, &old[i], 1, (off_t)(i + 1) * PAGE + OFF) != 1)
			return 6;
		want[i] = old[i] ^ 0x5a;
	}
	/* Two cases with the page read at home first (a present file page there). */
	sink += *AT(1) + *AT(3);

	/* On the peer: the shell builds each page from its own file. */
	if (stretched && elastic_jump(0, peer) == 0)
		jumped = 1;
	for (int i = 0; i < CASES; i++)
		sink += *AT(i);
	if (stretched)
		elastic_jump(0, home);

	/* At home: the pages change. */
	if (mprotect((void *)(b + 1 * PAGE), PAGE, PROT_READ | PROT_WRITE))
		return 7;
	*AT(0) = want[0];
	if (mprotect((void *)(b + 2 * PAGE), PAGE, PROT_READ | PROT_WRITE))
		return 7;
	*AT(1) = want[1];
	if (mprotect((void *)(b + 2 * PAGE), PAGE, PROT_READ))
		return 7;
	for (int i = 2; i <= 3; i++)
		if (pwrite(mem, &want[i], 1, (off_t)(uintptr_t)AT(i)) != 1) {
			perror("stale: write /proc/self/mem");
			return 8;
		}
	if (mprotect((void *)(b + 5 * PAGE), PAGE, PROT_READ | PROT_WRITE))
		return 7;

	/* On the peer again: the new bytes; and one written there. */
	if (stretched && elastic_jump(0, peer) != 0)
		jumped = 0;
	for (int i = 0; i < CASES - 1; i++)
		got[i] = *AT(i);
	*AT(4) = want[4];
	if (stretched)
		elastic_jump(0, home);
	got[4] = *AT(4);
	(void)sink;

	for (int i = 0; i < CASES; i++) {
		if (got[i] == want[i]) {
			printf("stale: %s ok\n", names[i]);
			continue;
		}
		bad++;
		printf("stale %s: read %#x, the %s wrote %#x (the file has %#x)\n", names[i],
		       got[i], i == 4 ? "peer" : "home", want[i], old[i]);
	}
	printf("stale: stretched=%d jumped=%d\n", stretched, jumped);
	printf("RESULT stale bad=%ld\n", bad);
	return bad ? 1 : 0;
}
