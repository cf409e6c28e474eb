// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection points of the ElasticOS link, in the kernel's own framework
 * (Documentation/fault-injection): debugfs directories fail_elastic_frame_drop,
 * fail_elastic_frame_dup and fail_elastic_frame_delay, with the usual
 * probability/interval/times/verbose attributes. The transport asks
 * elastic_frame_fault() for every page or jump frame it receives; page
 * installs have their own point, fail_elastic_install (mm/elastic.c).
 */
#include <linux/err.h>
#include <linux/fault-inject.h>
#include <linux/init.h>

int elastic_frame_fault(void);

#ifdef CONFIG_FAULT_INJECTION
static DECLARE_FAULT_ATTR(fail_elastic_frame_drop);
static DECLARE_FAULT_ATTR(fail_elastic_frame_dup);
static DECLARE_FAULT_ATTR(fail_elastic_frame_delay);

static int __init elastic_frame_faults_init(void)
{
#ifdef CONFIG_FAULT_INJECTION_DEBUG_FS
	/* Without debugfs the points exist but nothing can turn them on. */
	struct dentry *d;

	d = fault_create_debugfs_attr("fail_elastic_frame_drop", NULL,
				      &fail_elastic_frame_drop);
	if (IS_ERR(d))
		pr_warn("elastic: no fail_elastic_frame_drop in debugfs\n");
	d = fault_create_debugfs_attr("fail_elastic_frame_dup", NULL,
				      &fail_elastic_frame_dup);
	if (IS_ERR(d))
		pr_warn("elastic: no fail_elastic_frame_dup in debugfs\n");
	d = fault_create_debugfs_attr("fail_elastic_frame_delay", NULL,
				      &fail_elastic_frame_delay);
	if (IS_ERR(d))
		pr_warn("elastic: no fail_elastic_frame_delay in debugfs\n");
#endif
	return 0;
}
late_initcall(elastic_frame_faults_init);

/* 0: deliver the frame; 1: drop it; 2: deliver it twice; 3: delay it. */
int elastic_frame_fault(void)
{
	if (should_fail(&fail_elastic_frame_drop, 1))
		return 1;
	if (should_fail(&fail_elastic_frame_dup, 1))
		return 2;
	if (should_fail(&fail_elastic_frame_delay, 1))
		return 3;
	return 0;
}
#else
int elastic_frame_fault(void)
{
	return 0;
}
#endif
