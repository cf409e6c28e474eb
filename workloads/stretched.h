/* SPDX-License-Identifier: GPL-2.0 */
/* The prologue of the test programs that stretch themselves with most pages on a peer. */
#ifndef EOS_WORKLOAD_STRETCHED_H
#define EOS_WORKLOAD_STRETCHED_H

#include <unistd.h>
#include "common.h"
#include "elastic.h"

/*
 * Stretches the calling process (`name`, `pages` pages filled) to `peer`, pinned at home
 * (sticky), with a budget of `budget` pages, and waits up to 60 s until all but the budget
 * and a batch is on the peer (`*remote`: the pages there). 1: stretched and there; 0: not
 * stretched (no ElasticOS: the program runs as is); -1: the pages did not go (printed).
 */
static inline int stretch_pinned(const char *name, int peer, long budget, size_t pages,
				 long *remote)
{
	long goal = (long)pages - budget - 64;

	*remote = 0;
	if (elastic_stretch(0, peer))
		return 0;
	elastic_set_sticky(0, 1);
	elastic_set_budget(0, budget);
	for (int i = 0; i < 600 && (*remote = self_remote_pages()) < goal; i++)
		usleep(100 * 1000);
	if (*remote < goal) {
		printf("%s: only %ld of %zu pages went to the peer\n", name, *remote, pages);
		return -1;
	}
	return 1;
}

#endif
