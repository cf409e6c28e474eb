// SPDX-License-Identifier: GPL-2.0
/*
 * How much more a stretched process's memory cgroup lets it grow. A process in a cgroup with
 * memory.high or memory.max would be throttled or reclaimed there; a stretched one pushes
 * pages to a member before it reaches the limit instead, as swap would reclaim them
 * (home.rs, Proc::local_limit).
 */
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
