/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lostread MIB PEER: stretched with all but a MiB of MIB on PEER, prints "lostread: ready",
 * waits for /tmp/lostread.go (the harness makes the pages unreachable meanwhile: every page
 * frame this node receives is dropped), then hands the whole buffer, most of it on the peer,
 * to write(2) into a file (whose write reads every byte; /dev/null's reads none). The
 * kernel's read of a page that cannot come home must stop the process with SIGBUS (and a log
 * line), never end the call short or with EFAULT and let it run on past a page it no longer
 * has: so "lostread: survived" is the wrong outcome.
 */
#include "stretched.h"

#include <errno.h>
#include <fcntl.h>

int main(int argc, char **argv)
{
	long remote = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: lostread MIB PEER\n");
		return 2;
	}
	size_t pages = (size_t)atol(argv[1]) << 8;
	uint64_t *m = malloc(pages * 4096);

	if (!m)
		return 3;
	fill_pages(m, pages, 0x105e, 5, 1);
	if (stretch_pinned("lostread", atoi(argv[2]), 256, pages, &remote) != 1)
		return 4;
	printf("lostread: ready remote=%ld\n", remote);
	fflush(stdout);
	while (access("/tmp/lostread.go", F_OK))
		usleep(100 * 1000);
	int fd = open("/tmp/lostread.sink", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	long rc = write(fd, m, pages * 4096);

	printf("lostread: survived write_rc=%ld errno=%d\n", rc, rc < 0 ? errno : 0);
	return 0;
}
