/* SPDX-License-Identifier: GPL-2.0 */
/*
 * execrel MIB PEER: fills MIB with versioned pages, stretches itself to PEER with all but a
 * MiB there, checks every page, then execs itself (`execrel - MIB BAD`): the new program image
 * starts stretched nowhere (the old image's pages and its shell on the peer go with its
 * memory), fills and checks MIB of its own and exits. Prints "RESULT execrel mib=M bad=B",
 * the same as a run without ElasticOS.
 */
#include "stretched.h"

#include <string.h>

int main(int argc, char **argv)
{
	int after = argc > 3 && !strcmp(argv[1], "-");
	long mib, remote = 0, bad;
	size_t pages;
	uint64_t *m;

	if (argc < 3) {
		fprintf(stderr, "usage: execrel MIB PEER\n");
		return 2;
	}
	mib = atol(argv[after ? 2 : 1]);
	pages = (size_t)mib << 8;
	m = malloc(pages * 4096);
	if (!m)
		return 3;
	if (after) {
		/* The new image: its own memory, at home, stretched nowhere. */
		fill_pages(m, pages, 0xe4ec, 7, 1);
		bad = check_pages(m, pages, 0xe4ec, 7, 1);
		printf("execrel: after_exec remote=%ld bad=%ld\n", self_remote_pages(), bad);
		printf("RESULT execrel mib=%ld bad=%ld\n", mib, bad + atol(argv[3]));
		return bad != 0;
	}
	fill_pages(m, pages, 0x5eed, 3, 1);
	int st = stretch_pinned("execrel", atoi(argv[2]), 256, pages, &remote);

	bad = check_pages(m, pages, 0x5eed, 3, 1);
	printf("execrel: stretched=%d remote_before=%ld bad=%ld\n", st > 0, remote, bad);
	fflush(stdout);
	char mibs[32], bads[32];

	snprintf(mibs, sizeof(mibs), "%ld", mib);
	snprintf(bads, sizeof(bads), "%ld", bad);
	execl("/proc/self/exe", "execrel", "-", mibs, bads, (char *)NULL);
	perror("execrel: exec");
	return 3;
}
