/* SPDX-License-Identifier: GPL-2.0 */
/*
 * hold MIB SECONDS [MARKER]: fills MIB of memory with a pattern (and MARKER, a string, in
 * every page: what a capture of the link must not show), prints "ready", sleeps (SIGUSR1 ends
 * the sleep early), then checks every page and exits 0 (1 on a mismatch). Used to measure
 * push throughput (lower its budget while it sleeps and watch its pages leave) and to hold
 * pages on some nodes while another is lost.
 */
#include "common.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static void wake(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	long mib, secs, bad = 0;
	uint64_t *m;

	if (argc < 3) {
		fprintf(stderr, "usage: hold MIB SECONDS\n");
		return 2;
	}
	mib = atol(argv[1]);
	secs = atol(argv[2]);
	m = malloc((size_t)mib << 20);
	if (!m) {
		printf("cannot allocate\n");
		return 3;
	}
	const char *marker = argc > 3 ? argv[3] : NULL;
	size_t mlen = marker ? strlen(marker) : 0;

	if (mlen > 256)
		return 2;
	for (long i = 0; i < (mib << 20) / 8; i += 512) {
		m[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
		if (marker)
			memcpy(&m[i + 8], marker, mlen);
	}
	signal(SIGUSR1, wake);
	printf("ready\n");
	fflush(stdout);
	sleep((unsigned int)secs);
	for (long i = 0; i < (mib << 20) / 8; i += 512)
		if (m[i] != (uint64_t)i * 0x9e3779b97f4a7c15ULL ||
		    (marker && memcmp(&m[i + 8], marker, mlen)))
			bad++;
	printf("hold: %ld bad pages\n", bad);
	return bad != 0;
}
