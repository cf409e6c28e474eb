/* SPDX-License-Identifier: GPL-2.0 */
/*
 * threads MIB PEER: a stretched process stays single-threaded, cleanly, and its vfork-style
 * children keep working.
 *
 * The process fills MIB MiB, stretches to PEER with a 2 MiB budget and waits until half its
 * pages are on the peer. Then:
 * - pthread_create() must fail with EOPNOTSUPP: a second thread would touch memory the pusher
 *   moves (without ElasticOS the thread runs and sums the buffer);
 * - a clone(CLONE_VM | CLONE_VFORK) child sums the whole buffer, pulling the remote pages
 *   through its own faults while the parent waits (as popen, system and posix_spawn use it),
 *   and its sum must be the parent's;
 * - popen() and system() work, at home and after a jump to the peer;
 * - a userfaultfd registration and an io_uring fail with EOPNOTSUPP (their markers and workers
 *   would break the same invariant), and so does the stretch of a process that set up either
 *   before (a child of the program, before it stretches);
 * - where the CPU has protection keys, a key (pkey_alloc) likewise: a jump carries rwx only,
 *   so memory a key guards at home would be open on the peer.
 *
 * Prints "RESULT threads sum=S", the same as a run without ElasticOS, and
 * "threads: stretched=S thread=ran|refused errno=E vfork_sum_ok=V popen_ok=P system_ok=Y
 * uffd_errno=U uring_errno=R pre_uffd=A pre_uring=B bad=N pku=K pkey_errno=P pre_pkey=Q
 * away_popen_ok=X away_system_ok=Z" (errno 0: it worked; K 0: no protection keys here, P and
 * Q -1; X and Z -1: not stretched).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"
#include "elastic.h"

#define PAGE 4096UL

static uint64_t *buf;
static size_t words;

static uint64_t sum_all(void)
{
	uint64_t s = 0;

	for (size_t i = 0; i < words; i += 64)
		s = s * 31 + buf[i];
	return s;
}

static uint64_t thread_sum;

static void *thread_main(void *arg)
{
	(void)arg;
	thread_sum = sum_all();
	return NULL;
}

static uint64_t child_sum;

static int child_main(void *arg)
{
	(void)arg;
	child_sum = sum_all();
	_exit(0);
}

/* Registers a userfaultfd over [p, p + len): 0, or the errno of the step that failed. */
static int uffd_register(void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	int fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK), err = 0;

	if (fd < 0)
		return errno;
	if (ioctl(fd, UFFDIO_API, &api) || ioctl(fd, UFFDIO_REGISTER, &reg))
		err = errno;
	/* Kept open on success: the registration lives as long as the descriptor. */
	if (err)
		close(fd);
	return err;
}

/* Sets up an io_uring: 0, or errno. */
static int uring_setup(void)
{
	struct io_uring_params params;
	int fd;

	memset(&params, 0, sizeof(params));
	fd = (int)syscall(__NR_io_uring_setup, 4, &params);
	if (fd < 0)
		return errno;
	return 0;
}

/* Allocates a protection key and guards `p` with it: 0, or errno. */
static int pkey_guard(void *p)
{
	int k = (int)syscall(SYS_pkey_alloc, 0, 0);

	if (k < 0)
		return errno;
	if (syscall(SYS_pkey_mprotect, p, PAGE, PROT_READ | PROT_WRITE, k))
		return errno;
	return 0;
}

/* Whether this CPU and kernel have protection keys at all (a key allocated and freed). */
static int have_pkeys(void)
{
	int k = (int)syscall(SYS_pkey_alloc, 0, 0);

	if (k < 0)
		return 0;
	syscall(SYS_pkey_free, k);
	return 1;
}

/*
 * A child sets up `what` (1 userfaultfd, 2 io_uring, 3 a protection key), then stretches
 * itself to `peer`:
 * returns the stretch's errno (0: it stretched), or -1 if the set-up itself failed.
 */
static int stretch_after(int what, int peer)
{
	int status;
	pid_t c = fork();

	if (c == 0) {
		char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		int err = what == 1 ? uffd_register(p, PAGE) :
			  what == 2 ? uring_setup() : pkey_guard(p);

		if (err)
			_exit(255);
		_exit(elastic_stretch(0, peer) == 0 ? 0 : errno);
	}
	if (c < 0 || waitpid(c, &status, 0) != c || !WIFEXITED(status))
		return -2;
	return WEXITSTATUS(status) == 255 ? -1 : WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: threads MIB PEER\n");
		return 2;
	}
	size_t pages = strtoull(argv[1], NULL, 10) * 256;
	int peer = atoi(argv[2]);
	uint64_t rng = 77;
	long remote = 0;

	words = pages * PAGE / 8;
	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 2;
	for (size_t i = 0; i < words; i++)
		buf[i] = rng_next(&rng);

	/* Set up before a stretch: the stretch is refused. */
	int pre_uffd = stretch_after(1, peer), pre_uring = stretch_after(2, peer);
	int pku = have_pkeys(), pre_pkey = pku ? stretch_after(3, peer) : -1;

	int stretched = elastic_stretch(0, peer) == 0;
	if (stretched) {
		elastic_set_budget(0, 2 * 256);
		for (int i = 0; i < 600 && (remote = self_remote_pages()) < (long)pages / 2; i++)
			usleep(100 * 1000);
		if (remote < (long)pages / 2) {
			printf("threads: only %ld of %zu pages went to the peer\n", remote, pages);
			return 3;
		}
	}

	/* A thread: refused while stretched, runs otherwise. */
	pthread_t t;
	int err = pthread_create(&t, NULL, thread_main, NULL);
	if (err == 0)
		pthread_join(t, NULL);
	uint64_t sum = sum_all();
	long bad = err == 0 ? thread_sum != sum : (err != EOPNOTSUPP || !stretched);

	/* A vfork-style child sharing the address space: its faults pull the remote pages. */
	size_t stack_len = 256 * 1024;
	char *stack = mmap(NULL, stack_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	int status = -1;
	pid_t c = stack == MAP_FAILED ? -1 :
		  clone(child_main, stack + stack_len, CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
	if (c > 0)
		waitpid(c, &status, 0);
	int vfork_ok = c > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 && child_sum == sum;

	/* popen and system (posix_spawn / vfork underneath). */
	char line[64] = "";
	FILE *p = popen("echo popen-works", "r");
	int popen_ok = p && fgets(line, sizeof(line), p) && strcmp(line, "popen-works\n") == 0;
	if (p)
		popen_ok &= pclose(p) == 0;
	int rc = system("exit 3");
	int system_ok = WIFEXITED(rc) && WEXITSTATUS(rc) == 3;

	/*
	 * popen and system again after a jump to the peer: their first system call (popen's
	 * pipe2, system's sigaction) runs at home, as every system call of the process does,
	 * and the vfork child starts there.
	 */
	int away_popen_ok = -1, away_system_ok = -1;
	if (stretched && elastic_jump(0, peer) == 0) {
		FILE *q = popen("echo popen-away", "r");

		line[0] = 0;
		away_popen_ok = q && fgets(line, sizeof(line), q) && strcmp(line, "popen-away\n") == 0;
		if (q)
			away_popen_ok &= pclose(q) == 0;
		rc = system("exit 4");
		away_system_ok = WIFEXITED(rc) && WEXITSTATUS(rc) == 4;
		bad += !away_popen_ok + !away_system_ok;
	}

	/* Set up while stretched: refused. */
	int uffd_err = uffd_register(buf, 16 * PAGE), uring_err = uring_setup();
	int pkey_err = pku ? pkey_guard(buf) : -1;
	if (stretched)
		bad += (uffd_err != EOPNOTSUPP) + (uring_err != EOPNOTSUPP) +
		       (pre_uffd != EOPNOTSUPP) + (pre_uring != EOPNOTSUPP) +
		       (pku && (pkey_err != EOPNOTSUPP || pre_pkey != EOPNOTSUPP));

	bad += !vfork_ok + !popen_ok + !system_ok;
	if (sum_all() != sum)
		bad++;
	printf("threads: stretched=%d remote_before=%ld thread=%s errno=%d vfork_sum_ok=%d "
	       "popen_ok=%d system_ok=%d uffd_errno=%d uring_errno=%d pre_uffd=%d pre_uring=%d "
	       "bad=%ld pku=%d pkey_errno=%d pre_pkey=%d away_popen_ok=%d away_system_ok=%d\n",
	       stretched, remote, err == 0 ? "ran" : "refused", err, vfork_ok, popen_ok,
	       system_ok, uffd_err, uring_err, pre_uffd, pre_uring, bad, pku, pkey_err, pre_pkey,
	       away_popen_ok, away_system_ok);
	printf("RESULT threads sum=%llu\n", (unsigned long long)sum);
	return bad ? 1 : 0;
}
