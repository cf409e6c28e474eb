/* SPDX-License-Identifier: LGPL-2.1 */
/*
 * ElasticOS system calls, libc-style. Link with elastic.c (or copy both into your project).
 * Errors: -1 with errno set, like libc.
 */
#ifndef ELASTIC_H
#define ELASTIC_H

#include <sys/types.h>
#include <sys/syscall.h> /* __NR_elastic_*: <asm/unistd_64.h> of an ElasticOS kernel */
#include <linux/elastic.h> /* ELASTIC_CTL_*: the kernel's uapi header */

#ifndef __NR_elastic_stretch
#error "these kernel headers have no ElasticOS syscalls: install the ElasticOS linux-libc-dev, or build through cargo xtask"
#endif
#define ELASTIC_SYS_STRETCH __NR_elastic_stretch
#define ELASTIC_SYS_CTL __NR_elastic_ctl
#define ELASTIC_SYS_JUMP __NR_elastic_jump

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
