/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cpumax HOME PEER SECONDS [plain]: runs about SECONDS of CPU work (timed at home) on PEER
 * (stretched and jumped there; "plain": at home) and comes home. Run in a cgroup with a cpu.max quota, the time
 * used away from home is the group's too: its usage grows by it, and the group is throttled
 * at home until it has paid it back (on the way home, before this program runs again: the
 * test reads the group's cpu.stat). It also times a slice of 20-40 ms of CPU work before and after (in CPU time).
 *
 * Prints "cpumax before_ms=B after_ms=A away_s=S slices=N cpu_s=C": S is the work away in
 * seconds at home's speed; C is getrusage's user+system time, which must include it.
 */
#include "common.h"
#include "cpuwork.h"
#include "elastic.h"

#include <unistd.h>

/* CPU time of this process, in seconds (not counting time it waits, throttled or not). */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	long home, peer, slice = 1000000, n = 0;
	double secs, t, before, after, away;
	int plain;

	if (argc < 4) {
		fprintf(stderr, "usage: cpumax HOME PEER SECONDS [plain]\n");
		return 2;
	}
	home = atol(argv[1]);
	peer = atol(argv[2]);
	secs = atof(argv[3]);
	plain = argc > 4 && !strcmp(argv[4], "plain");
	if (!plain && elastic_stretch(0, (int)peer)) {
		perror("elastic_stretch");
		return 1;
	}
	/* A slice of 20-40 ms of CPU, timed in CPU time: the group's quota may throttle it
	 * while it is timed, which would inflate a wall-clock figure. Under emulation a guest's
	 * CPU time also counts the moments the host took its vCPU away, so one slice can read
	 * several times too long: the fastest of five is the speed. */
	t = cpu_now();
	burn(slice);
	while (cpu_now() - t < 0.02) {
		slice *= 2;
		t = cpu_now();
		burn(slice);
	}
	before = 1e9;
	for (int k = 0; k < 5; k++) {
		t = cpu_now();
		burn(slice);
		t = cpu_now() - t;
		if (t < before)
			before = t;
	}

	/* SECONDS of work at this speed. Away it reads no clock: the vDSO is the home's, and
	 * each call would bring execution home. */
	n = (long)(secs / (before > 1e-4 ? before : 1e-4));
	if (!plain && elastic_jump(0, (int)peer)) {
		perror("elastic_jump");
		return 1;
	}
	for (long i = 0; i < n; i++)
		burn(slice);
	away = n * before;
	if (!plain && elastic_jump(0, (int)home)) {
		perror("elastic_jump home");
		return 1;
	}
	t = cpu_now();
	burn(slice);
	after = cpu_now() - t;
	printf("cpumax before_ms=%.0f after_ms=%.0f away_s=%.2f slices=%ld cpu_s=%.2f\n",
	       before * 1e3, after * 1e3, away, n, cpu_s());
	return 0;
}
