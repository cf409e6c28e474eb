/* SPDX-License-Identifier: GPL-2.0 */
/*
 * entries HOME PEER [plain]: the ways into the kernel other than the 64-bit `syscall`
 * instruction, each made right after jumping to PEER: `int $0x80` (getppid, getpid, write)
 * and the legacy vsyscall page (time); an int3 (its SIGTRAP handler runs once); then CPU work done away from home, which getrusage at
 * home must count. The output must be identical to a run with "plain" (no stretch, no jump).
 */
#include "common.h"
#include "cpuwork.h"
#include "elastic.h"

#include <signal.h>
#include <unistd.h>

static long peer;
static int plain;

static void away(void)
{
	if (!plain)
		elastic_jump(0, (int)peer);
}

/* A 32-bit syscall from 64-bit code: numbers and registers of the i386 ABI. */
static long int80(long nr, long a, long b, long c)
{
	long ret;

	asm volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return ret;
}

/* In .data of a static, non-PIE binary: below 4 GiB, so a 32-bit pointer reaches it. */
static char msg[] = "a line written through int $0x80\n";

static volatile sig_atomic_t traps;

static void on_trap(int sig)
{
	(void)sig;
	traps++;
}

int main(int argc, char **argv)
{
	time_t (*vtime)(time_t *) = (time_t (*)(time_t *))0xffffffffff600400UL;
	long n, work = 60000000;
	double c0, home, there;
	pid_t pid, ppid;
	time_t vt;

	if (argc < 3) {
		fprintf(stderr, "usage: entries HOME PEER [plain]\n");
		return 2;
	}
	peer = atol(argv[2]);
	plain = argc > 3 && !strcmp(argv[3], "plain");
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!plain)
		elastic_stretch(0, (int)peer);
	pid = getpid();
	ppid = getppid();

	away();
	printf("int80 getppid is the home's: %d\n", int80(64, 0, 0, 0) == ppid);
	away();
	printf("int80 getpid is the home's: %d\n", int80(20, 0, 0, 0) == pid);
	away();
	n = int80(4, 1, (long)msg, (long)strlen(msg));
	printf("int80 write returned %ld\n", n);
	away();
	vt = vtime(NULL);
	printf("vsyscall time is the home's: %d\n", labs((long)(vt - time(NULL))) <= 2);

	/* A breakpoint (int3) away from home traps at home, once, and execution goes on. */
	signal(SIGTRAP, on_trap);
	away();
	asm volatile("int3");
	printf("int3 trapped once, at home: %d\n", traps == 1 && getppid() == ppid);

	/* The same work at home, then away: the time away must be counted at home too. */
	c0 = cpu_s();
	burn(work);
	home = cpu_s() - c0;
	c0 = cpu_s();
	away();
	burn(work);
	there = cpu_s() - c0;
	printf("cpu time away from home counted: %d\n", there >= 0.5 * home);
	if (getenv("ENTRIES_VERBOSE"))
		fprintf(stderr, "cpu home %.3f s, away %.3f s\n", home, there);
	return 0;
}
