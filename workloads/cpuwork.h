/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPU work that stays wherever it runs (registers only: no fault, no syscall), and the CPU
 * time the process has used as getrusage reports it. Shared by entries and cpumax, which
 * check that time used away from home is counted at home.
 */
#ifndef EOS_WORKLOAD_CPUWORK_H
#define EOS_WORKLOAD_CPUWORK_H

#include <stdint.h>
#include <sys/resource.h>

static volatile uint64_t cpuwork_sink;

/* `n` rounds of a linear congruential step in registers. */
static inline void burn(long n)
{
	uint64_t s = 1;

	for (long i = 0; i < n; i++)
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
	cpuwork_sink = s;
}

/* User plus system time of this process, in seconds. */
static inline double cpu_s(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec +
	       r.ru_stime.tv_usec / 1e6;
}

#endif
