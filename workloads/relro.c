/* SPDX-License-Identifier: GPL-2.0 */
/*
 * relro HOME PEER: the file-backed private pages of the executable (.data, and the RELRO
 * pages where a static binary keeps its resolved ifunc slots) read back on the peer what was
 * written at home, and back at home what was written on the peer.
 *
 * The shell of a process maps the same executable, so its page cache holds the file's
 * pristine bytes. A page the home has written must never be read there from the page cache:
 * a stale .data page is silent corruption, and a stale .got slot of an ifunc (memcpy,
 * strlen) sends a call into the PLT padding (how `busybox sort` died after a jump).
 *
 * On the peer the program makes no system call until all checks ran (a system call goes
 * home). Prints "RESULT relro bad=N", the same as a run without ElasticOS, and whether it
 * ran on the peer ("relro: stretched=1 jumped=1").
 */
#define _GNU_SOURCE
#include "common.h"
#include "elastic.h"

#define DATA_PAGES 256
#define WORDS (DATA_PAGES * 512)

/* Initialised, so it is in the file (.data), not in .bss. */
static uint64_t data[WORDS] = { 1, 2, 3 };
/* Pointers in a const table: .data.rel.ro, inside the RELRO segment beside .got. */
static const uint64_t *const table[4096] = { &data[0], &data[1], &data[2], &data[512] };
/* Read through this, so the compiler cannot fold the table away. */
static const uint64_t *const *volatile tablep = table;

static char src[8192], dst[8192];

/* Pages with p % 4 == 3 stay as in the file (zero there); the others carry a pattern. */
static uint64_t want(size_t p, uint64_t round)
{
	return p % 4 == 3 ? 0 : 0x5eed0000ULL + p * 7 + round;
}

static long check_data(uint64_t round)
{
	volatile uint64_t sink = 0;
	long bad = 0;

	/* Read the untouched pages first: each such fault may map neighbours. */
	for (size_t p = 3; p < DATA_PAGES; p += 4)
		sink += data[p * 512 + 5];
	/* The RELRO table, far from the start: another first touch beside .got. */
	sink += (uint64_t)tablep[4095] + (uint64_t)tablep[2048];
	(void)sink;
	for (size_t p = 0; p < DATA_PAGES; p++)
		if (data[p * 512 + 5] != want(p, round))
			bad++;
	if (tablep[0] != &data[0] || tablep[3] != &data[512])
		bad++;
	/* Through the ifunc slots of a static glibc. */
	memset(src, 'a' + (int)round, sizeof(src) - 1);
	memcpy(dst, src, sizeof(src));
	if (strlen(dst) != sizeof(src) - 1 || memcmp(dst, src, sizeof(src)))
		bad++;
	return bad;
}

static void write_data(uint64_t round)
{
	for (size_t p = 0; p < DATA_PAGES; p++)
		if (p % 4 != 3)
			data[p * 512 + 5] = want(p, round);
}

int main(int argc, char **argv)
{
	long bad = 0;
	int jumped = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: relro HOME PEER\n");
		return 2;
	}
	int home = atoi(argv[1]), peer = atoi(argv[2]);
	int stretched = elastic_stretch(0, peer) == 0;

	write_data(1);
	if (stretched && elastic_jump(0, peer) == 0)
		jumped = 1;
	/* On the peer: written at home, read there. */
	bad += check_data(1);
	write_data(2);
	if (stretched)
		elastic_jump(0, home);
	/* At home: written on the peer, read here. */
	bad += check_data(2);
	printf("relro: stretched=%d jumped=%d\n", stretched, jumped);
	printf("RESULT relro bad=%ld\n", bad);
	return bad ? 1 : 0;
}
