/* SPDX-License-Identifier: LGPL-2.1 */
#include "elastic.h"

#include <sys/syscall.h>
#include <unistd.h>

int elastic_stretch(pid_t pid, int node)
{
	return (int)syscall(ELASTIC_SYS_STRETCH, pid, node);
}

int elastic_set_budget(pid_t pid, unsigned long pages)
{
	return (int)syscall(ELASTIC_SYS_CTL, ELASTIC_CTL_BUDGET, pid, pages);
}

int elastic_mark(pid_t pid, unsigned long pages)
{
	return (int)syscall(ELASTIC_SYS_CTL, ELASTIC_CTL_MARK, pid, pages);
}

int elastic_jump(pid_t pid, int node)
{
	return (int)syscall(ELASTIC_SYS_JUMP, pid, node);
}

int elastic_set_sticky(pid_t pid, int on)
{
	return (int)syscall(ELASTIC_SYS_CTL, ELASTIC_CTL_STICKY, pid, (unsigned long)on);
}
