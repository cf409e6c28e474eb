/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ElasticOS tracepoints: the events of the four primitives and of the links,
 * for ftrace (/sys/kernel/tracing/events/elastic/), perf ('elastic:*') and
 * bpftrace. Fired from the Rust subsystem through trace.c.
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM elastic

#if !defined(_ELASTIC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _ELASTIC_TRACE_H

#include <linux/tracepoint.h>

/* Home: a fault pulled @pages pages at @addr from node @node in @lat_ns. */
TRACE_EVENT(elastic_pull,
	TP_PROTO(u32 pid, u16 node, u64 addr, u32 pages, u64 lat_ns),
	TP_ARGS(pid, node, addr, pages, lat_ns),
	TP_STRUCT__entry(
		__field(u32, pid)
		__field(u16, node)
		__field(u64, addr)
		__field(u32, pages)
		__field(u64, lat_ns)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->node = node;
		__entry->addr = addr;
		__entry->pages = pages;
		__entry->lat_ns = lat_ns;
	),
	TP_printk("pid=%u node=%u addr=%#llx pages=%u lat_us=%llu",
		  __entry->pid, __entry->node, __entry->addr, __entry->pages,
		  __entry->lat_ns / 1000)
);

/* Home: a push batch of @pages pages to node @node ended: taken, refused or unknown. */
TRACE_EVENT(elastic_push,
	TP_PROTO(u32 pid, u16 node, u32 pages, u8 outcome),
	TP_ARGS(pid, node, pages, outcome),
	TP_STRUCT__entry(
		__field(u32, pid)
		__field(u16, node)
		__field(u32, pages)
		__field(u8, outcome)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->node = node;
		__entry->pages = pages;
		__entry->outcome = outcome;
	),
	TP_printk("pid=%u node=%u pages=%u outcome=%s",
		  __entry->pid, __entry->node, __entry->pages,
		  __print_symbolic(__entry->outcome, { 0, "taken" },
				   { 1, "refused" }, { 2, "unknown" }))
);

/* Shell: a fault fetched the page at @addr from home node @home (@built: the shell makes it). */
TRACE_EVENT(elastic_fetch,
	TP_PROTO(u32 pid, u16 home, u64 addr, bool built, u64 lat_ns),
	TP_ARGS(pid, home, addr, built, lat_ns),
	TP_STRUCT__entry(
		__field(u32, pid)
		__field(u16, home)
		__field(u64, addr)
		__field(bool, built)
		__field(u64, lat_ns)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->home = home;
		__entry->addr = addr;
		__entry->built = built;
		__entry->lat_ns = lat_ns;
	),
	TP_printk("pid=%u home=%u addr=%#llx built=%d lat_us=%llu",
		  __entry->pid, __entry->home, __entry->addr, __entry->built,
		  __entry->lat_ns / 1000)
);

/* Execution of process @pid (its pid at home) left @from for @to, confirmed in @lat_ns. */
TRACE_EVENT(elastic_jump,
	TP_PROTO(u32 pid, u16 from, u16 to, u8 reason, u64 lat_ns),
	TP_ARGS(pid, from, to, reason, lat_ns),
	TP_STRUCT__entry(
		__field(u32, pid)
		__field(u16, from)
		__field(u16, to)
		__field(u8, reason)
		__field(u64, lat_ns)
	),
	TP_fast_assign(
		__entry->pid = pid;
		__entry->from = from;
		__entry->to = to;
		__entry->reason = reason;
		__entry->lat_ns = lat_ns;
	),
	TP_printk("pid=%u from=%u to=%u reason=%s lat_us=%llu",
		  __entry->pid, __entry->from, __entry->to,
		  __print_symbolic(__entry->reason, { 1, "asked" },
				   { 2, "faults" }, { 3, "syscall" },
				   { 4, "recall" }, { 5, "fault" }),
		  __entry->lat_ns / 1000)
);

/* The link to node @node came up (@caps: its capabilities) or went down. */
TRACE_EVENT(elastic_link,
	TP_PROTO(u16 node, bool up, u32 caps),
	TP_ARGS(node, up, caps),
	TP_STRUCT__entry(
		__field(u16, node)
		__field(bool, up)
		__field(u32, caps)
	),
	TP_fast_assign(
		__entry->node = node;
		__entry->up = up;
		__entry->caps = caps;
	),
	TP_printk("node=%u %s caps=%#x", __entry->node,
		  __entry->up ? "up" : "down", __entry->caps)
);

#endif /* _ELASTIC_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE elastic_trace
#include <trace/define_trace.h>
