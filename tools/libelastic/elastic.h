/* SPDX-License-Identifier: LGPL-2.1 */
/*
 * ElasticOS system calls, libc-style. Link with elastic.c (or copy both into your project).
 * Errors: -1 with errno set, like libc.
 */
#ifndef ELASTIC_H
#define ELASTIC_H

#include <sys/types.h>

#define ELASTIC_SYS_STRETCH 463
#define ELASTIC_SYS_CTL 464

#define ELASTIC_CTL_BUDGET 1 /* arg: local memory budget in pages, 0 = none */
#define ELASTIC_CTL_MARK 2   /* arg: stretch automatically past this many pages, 0 = on pressure */

/* Extends @pid's address space (0: the caller) to @node: a shell of it is created there. */
int elastic_stretch(pid_t pid, int node);

/* Sets the local memory budget of a stretched or marked process, in pages. */
int elastic_set_budget(pid_t pid, unsigned long pages);

/* Marks @pid (0: the caller) elastic: it stretches itself when this node runs short of memory
 * or when it exceeds @pages (if not 0). The mark survives exec. */
int elastic_mark(pid_t pid, unsigned long pages);

#endif
