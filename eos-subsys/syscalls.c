// SPDX-License-Identifier: GPL-2.0
/*
 * ElasticOS system calls. The work is done by the Rust subsystem; this file
 * only gives it the kernel's syscall entry points.
 */
#include <linux/syscalls.h>

long elastic_sys_stretch(pid_t pid, int node);
long elastic_sys_ctl(int op, pid_t pid, unsigned long arg);
long elastic_sys_jump(pid_t pid, int node);

/* Extends the address space of @pid (0: the caller) to @node, creating its shell there. */
SYSCALL_DEFINE2(elastic_stretch, pid_t, pid, int, node)
{
	return elastic_sys_stretch(pid, node);
}

/*
 * @op 1: set the local memory budget of @pid to @arg pages (0: none);
 * @op 2: mark @pid elastic: it stretches itself when its node runs short of
 *        memory or when it exceeds @arg pages (if @arg is not 0);
 * @op 3: pin a stretched @pid at home (@arg 1) or let the jump policy move it
 *        again (@arg 0).
 */
SYSCALL_DEFINE3(elastic_ctl, int, op, pid_t, pid, unsigned long, arg)
{
	return elastic_sys_ctl(op, pid, arg);
}

/*
 * Moves the execution of the stretched process @pid (0: the caller) to @node:
 * its peer, or its home node. The caller continues there right after the call.
 */
SYSCALL_DEFINE2(elastic_jump, pid_t, pid, int, node)
{
	return elastic_sys_jump(pid, node);
}
