/* SPDX-License-Identifier: GPL-2.0 */
/*
 * overcommit MIB...: how much a marked (elastic) process may commit at once (issue 27 item 6).
 *
 * The process marks itself elastic (elastic_mark: it may grow past this node, and be
 * stretched when short), then for each MIB maps that many MiB of private anonymous memory
 * (never touched) and unmaps it again. Prints "overcommit: marked=M" and one line per size,
 * "overcommit: mib=N errno=E" (0: mapped). Without ElasticOS (or unmarked) the kernel's own
 * overcommit rule answers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include "common.h"
#include "elastic.h"

int main(int argc, char **argv)
{
	int marked = elastic_mark(0, 0) == 0;

	printf("overcommit: marked=%d\n", marked);
	for (int i = 1; i < argc; i++) {
		size_t len = strtoull(argv[i], NULL, 10) << 20;
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int err = p == MAP_FAILED ? errno : 0;

		if (p != MAP_FAILED)
			munmap(p, len);
		printf("overcommit: mib=%s errno=%d\n", argv[i], err);
	}
	return 0;
}
