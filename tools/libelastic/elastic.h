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
#define ELASTIC_SYS_JUMP 465

#define ELASTIC_CTL_BUDGET 1 /* arg: local memory budget in pages, 0 = none */
#define ELASTIC_CTL_MARK 2   /* arg: stretch automatically past this many pages, 0 = on pressure */
#define ELASTIC_CTL_STICKY 3 /* arg: 1 = pin at home (the jump policy leaves it), 0 = unpin */

/* Extends @pid's address space (0: the caller) to @node: a shell of it is created there. */
int elastic_stretch(pid_t pid, int node);

/* Sets the local memory budget of a stretched or marked process, in pages. */
int elastic_set_budget(pid_t pid, unsigned long pages);

/* Marks @pid (0: the caller) elastic: it stretches itself when this node runs short of memory
 * or when it exceeds @pages (if not 0). The mark survives exec. */
int elastic_mark(pid_t pid, unsigned long pages);

/* Moves the execution of stretched process @pid (0: the caller) to @node, its peer or its
 * home. Called by the process itself, it continues on @node right after the call; its
 * syscalls still run at home. */
int elastic_jump(pid_t pid, int node);

/* Pins @pid at home (@on 1) or lets the jump policy move it again (@on 0). */
int elastic_set_sticky(pid_t pid, int on);

#endif
