/* SPDX-License-Identifier: GPL-2.0 */
/*
 * epollwait PEER MS: a jump asked for from outside (`eosctl jump PID PEER`) while the process
 * sleeps in a system call at home does not interrupt that call (issue 27 item 9).
 *
 * The process stretches to PEER, prints "epollwait: ready PID" and waits MS milliseconds in
 * epoll_wait on an empty epoll set, which returns 0 at its timeout, or -1 with EINTR if the
 * wait was interrupted: no signal is ever sent to it, so EINTR would be spurious (a request
 * to move it used a signal-like kick that wakes interruptible sleeps). It then does a little
 * work so the queued jump can run, and prints "epollwait: stretched=S rc=R errno=E
 * waited_ms=W jumps=J" and "RESULT epollwait rc=R" (0, as without ElasticOS).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>
#include "common.h"
#include "elastic.h"

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: epollwait PEER MS\n");
		return 2;
	}
	int peer = atoi(argv[1]), ms = atoi(argv[2]);
	struct epoll_event ev;
	int ep = epoll_create1(0), stretched, rc, err;
	long t0, waited;
	volatile unsigned long spin = 0;

	if (ep < 0)
		return 2;
	stretched = elastic_stretch(0, peer) == 0;
	printf("epollwait: ready %d\n", getpid());
	fflush(stdout);
	t0 = now_ms();
	rc = epoll_wait(ep, &ev, 1, ms);
	err = rc < 0 ? errno : 0;
	waited = now_ms() - t0;
	/* User time for the queued jump to run on the way back to user mode. */
	for (int i = 0; i < 1000000; i++)
		spin += (unsigned long)i;
	printf("epollwait: stretched=%d rc=%d errno=%d waited_ms=%ld jumps=%ld\n", stretched, rc,
	       err, waited, self_field(" jumps="));
	printf("RESULT epollwait rc=%d\n", rc);
	return rc == 0 ? 0 : 1;
}
