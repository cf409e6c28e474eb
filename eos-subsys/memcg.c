// SPDX-License-Identifier: GPL-2.0
/*
 * Memory cgroups. How much more a stretched process's memory cgroup lets it grow. A process in a cgroup with
 * memory.high or memory.max would be throttled or reclaimed there; a stretched one pushes
 * pages to a member before it reaches the limit instead, as swap would reclaim them
 * (home.rs, Proc::local_limit).
 */
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/memcontrol.h>
#include <linux/mm_types.h>
#include <linux/page_counter.h>

long elastic_memcg_room(struct mm_struct *mm);

/*
 * Pages the memory cgroup of @mm, and each of its ancestors, may still be charged before it
 * reaches its memory.high or memory.max: the smallest of these (negative when above one), or
 * LONG_MAX if none has a limit. The root cgroup has none.
 */
long elastic_memcg_room(struct mm_struct *mm)
{
#ifdef CONFIG_MEMCG
	struct mem_cgroup *memcg, *m;
	long room = LONG_MAX;

	if (mem_cgroup_disabled())
		return LONG_MAX;
	memcg = get_mem_cgroup_from_mm(mm);
	if (!memcg)
		return LONG_MAX;
	for (m = memcg; m && !mem_cgroup_is_root(m); m = parent_mem_cgroup(m)) {
		unsigned long limit = min(READ_ONCE(m->memory.high),
					  READ_ONCE(m->memory.max));
		unsigned long usage = page_counter_read(&m->memory);

		if (limit < PAGE_COUNTER_MAX)
			room = min(room, (long)limit - (long)usage);
	}
	mem_cgroup_put(memcg);
	return room;
#else
	return LONG_MAX;
#endif
}

int elastic_shell_cgroup(unsigned int home, pid_t pid);

/*
 * Puts shell @pid, which runs a process of node @home, into the memory cgroup this node's
 * administrator made for that node's shells, /sys/fs/cgroup/elastic/node<home> (cgroup v2),
 * if there is one: the pages the shell holds, those the home pushes to it included, are
 * charged there, and that cgroup's memory.max bounds what the peer may cost this node (an
 * install past it fails as under memory pressure: the home keeps the page). 0 if the shell
 * is in it, or there is no such cgroup; else the error (the stretch is refused).
 */
int elastic_shell_cgroup(unsigned int home, pid_t pid)
{
	char path[64], buf[16];
	struct file *f;
	loff_t pos = 0;
	ssize_t n;
	int len;

	snprintf(path, sizeof(path), "/sys/fs/cgroup/elastic/node%u/cgroup.procs", home);
	f = filp_open(path, O_WRONLY, 0);
	if (IS_ERR(f))
		return PTR_ERR(f) == -ENOENT ? 0 : PTR_ERR(f);
	len = snprintf(buf, sizeof(buf), "%d\n", pid);
	n = kernel_write(f, buf, len, &pos);
	filp_close(f, NULL);
	return n < 0 ? (int)n : 0;
}
