// SPDX-License-Identifier: GPL-2.0
/*
 * The ElasticOS tracepoints (elastic_trace.h), as plain functions the Rust
 * subsystem calls (elastic/sys/trace.rs): 6.12's Rust has no tracepoint
 * support of its own. Each costs a static-key test while its event is off.
 */
#define CREATE_TRACE_POINTS
#include "elastic_trace.h"

void elastic_trace_pull(u32 pid, u16 node, u64 addr, u32 pages, u64 lat_ns);
void elastic_trace_push(u32 pid, u16 node, u32 pages, u8 outcome);
void elastic_trace_fetch(u32 pid, u16 home, u64 addr, bool built, u64 lat_ns);
void elastic_trace_jump(u32 pid, u16 from, u16 to, u8 reason, u64 lat_ns);
void elastic_trace_link(u16 node, bool up, u32 caps);

void elastic_trace_pull(u32 pid, u16 node, u64 addr, u32 pages, u64 lat_ns)
{
	trace_elastic_pull(pid, node, addr, pages, lat_ns);
}

void elastic_trace_push(u32 pid, u16 node, u32 pages, u8 outcome)
{
	trace_elastic_push(pid, node, pages, outcome);
}

void elastic_trace_fetch(u32 pid, u16 home, u64 addr, bool built, u64 lat_ns)
{
	trace_elastic_fetch(pid, home, addr, built, lat_ns);
}

void elastic_trace_jump(u32 pid, u16 from, u16 to, u8 reason, u64 lat_ns)
{
	trace_elastic_jump(pid, from, to, reason, lat_ns);
}

void elastic_trace_link(u16 node, bool up, u32 caps)
{
	trace_elastic_link(node, up, caps);
}
