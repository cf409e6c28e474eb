/* SPDX-License-Identifier: GPL-2.0 */
/*
 * layout HOME PEER: a stretched process changes its memory layout while its pages are on the
 * peer, and checks on the peer and at home that it sees what a process that never left home
 * sees:
 *   munmap   pushed pages, then map the same place again: zeroes;
 *   madvise  DONTNEED over pushed pages: zeroes (also over a range with a hole); FREE: each
 *            page its data or zeroes, read without a spin;
 *   rofresh  read-only pages read on the peer, then made writable and written at home: the
 *            peer sees the new data;
 *   brk      shrunk over pushed pages and grown again: zeroes;
 *   mremap   pushed pages moved elsewhere: the data moved with them;
 *   mprotect read-only, then a write on the peer: the SIGSEGV handler runs (at home);
 *   file     mapped after the stretch and read on the peer: its bytes;
 *   sigill   an invalid instruction on the peer: the SIGILL handler runs (at home);
 *   jit      code written at run time (RWX, and written then made RX) called on the peer:
 *            its result (a shell never executes anonymous memory: the call runs at home);
 *   thp      transparent huge pages made before the stretch (one written and made read-only,
 *            one written, one only read: the huge zero page), read on the peer and at home:
 *            their data (ElasticOS splits them where their pages move).
 * Prints a line per check and "RESULT layout bad=N", the same as a run without ElasticOS.
 */
#define _GNU_SOURCE
#include "common.h"
#include "elastic.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#define REGION (4UL << 20)
#define PAGES (REGION / 4096)

static int home, peer, stretched;
static long bad;
static sigjmp_buf env;

/*
 * Fills [m, m + len) with a pattern and, stretched, waits until half of it is on the peer.
 * Counted as the process's remote pages in all: each check unmaps or empties its region before
 * the next one fills its own, so the region's pages are nearly all of them. (A count relative
 * to the start was wrong: the jump policy may run the fill on the peer, where the pages stay
 * without a push.)
 */
static void fill_and_push(const char *what, uint64_t *m, size_t len, uint64_t seed)
{
	long want = (long)(len / 4096 / 2), now = 0;

	for (size_t p = 0; p < len / 4096; p++)
		m[p * 512] = seed + p;
	if (!stretched)
		return;
	for (int i = 0; i < 200 && (now = self_remote_pages()) < want; i++)
		usleep(100 * 1000);
	if (now < want) {
		printf("layout: %s: only %ld of %zu pages on the peer\n", what, now, len / 4096);
		bad++;
	}
}

/* Pages of [m, m + len) that are not zero; counted where the process runs now. */
static long nonzero(const uint64_t *m, size_t len)
{
	long n = 0;

	for (size_t p = 0; p < len / 4096; p++)
		for (size_t w = 0; w < 512; w += 64)
			if (m[p * 512 + w]) {
				n++;
				break;
			}
	return n;
}

static long wrong(const uint64_t *m, size_t len, uint64_t seed)
{
	long n = 0;

	for (size_t p = 0; p < len / 4096; p++)
		n += m[p * 512] != seed + p;
	return n;
}

static void check(const char *what, long there, long here)
{
	printf("layout: %-8s %s\n", what, there || here ? "WRONG" : "ok");
	if (there || here) {
		printf("layout: %s: %ld wrong pages on the peer, %ld at home\n", what, there, here);
		bad++;
	}
}

static void caught(int sig)
{
	siglongjmp(env, sig);
}

#define HUGE (2UL << 20)

/* AnonHugePages of this process, in kB (0 where THP is off or unavailable). */
static long anon_huge_kb(void)
{
	char line[256];
	long kb = 0;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	uint64_t *m, *n, *thp;
	long there, here, huge_kb, sum = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: layout HOME PEER\n");
		return 2;
	}
	home = atoi(argv[1]);
	peer = atoi(argv[2]);

	/* Huge pages, before the stretch (which turns THP off for the process from then on). */
	thp = mmap(NULL, 4 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (thp == MAP_FAILED)
		return 3;
	thp = (uint64_t *)(((uintptr_t)thp + HUGE - 1) & ~(HUGE - 1));
	madvise(thp, 3 * HUGE, MADV_HUGEPAGE);
	for (size_t p = 0; p < 2 * HUGE / 4096; p++)
		thp[p * 512] = 6000 + p;
	for (size_t p = 2 * HUGE / 4096; p < 3 * HUGE / 4096; p++)
		sum += ((volatile uint64_t *)thp)[p * 512];
	mprotect(thp, HUGE, PROT_READ);
	huge_kb = anon_huge_kb();

	stretched = elastic_stretch(0, peer) == 0 && elastic_set_budget(0, 256) == 0;
	printf("layout: stretched=%d\n", stretched);

	/* munmap, then the same place again */
	m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 3;
	fill_and_push("munmap", m, REGION, 1000);
	munmap(m, REGION);
	n = mmap(m, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (n != m)
		return 4;
	elastic_jump(0, peer);
	there = nonzero(m, REGION);
	elastic_jump(0, home);
	here = nonzero(m, REGION);
	check("munmap", there, here);

	/* madvise(DONTNEED) */
	fill_and_push("madvise", m, REGION, 2000);
	madvise(m, REGION, MADV_DONTNEED);
	elastic_jump(0, peer);
	there = nonzero(m, REGION);
	elastic_jump(0, home);
	here = nonzero(m, REGION);
	check("madvise", there, here);
	munmap(m, REGION);

	/* madvise(DONTNEED) over the region and a hole after it: ENOMEM, yet the region is empty */
	m = mmap(NULL, REGION + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 3;
	munmap((char *)m + REGION, 4096);
	fill_and_push("madvhole", m, REGION, 2500);
	if (madvise(m, REGION + 4096, MADV_DONTNEED) == 0 || errno != ENOMEM) {
		printf("layout: madvhole: madvise over a hole did not fail with ENOMEM\n");
		bad++;
	}
	elastic_jump(0, peer);
	there = nonzero(m, REGION);
	elastic_jump(0, home);
	here = nonzero(m, REGION);
	check("madvhole", there, here);
	munmap(m, REGION);

	/*
	 * madvise(FREE) over pushed pages: each page then reads its data or zeroes (the kernel
	 * may free it lazily), on the peer and at home, and reading them all is one fetch or
	 * pull per page or run, not a spin (it once took 50 s for 1,073 pages).
	 */
	m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 3;
	fill_and_push("madvfree", m, REGION, 2700);
	madvise(m, REGION, MADV_FREE);
	{
		double t0 = now_s(), took;

		if (elastic_jump(0, peer) && stretched) {
			printf("layout: madvfree: the jump to the peer failed\n");
			bad++;
		}
		there = 0;
		for (size_t p = 0; p < PAGES; p++)
			there += m[p * 512] != 2700 + p && m[p * 512] != 0;
		took = now_s() - t0;
		elastic_jump(0, home);
		here = 0;
		for (size_t p = 0; p < PAGES; p++)
			here += m[p * 512] != 2700 + p && m[p * 512] != 0;
		if (took > 30) {
			printf("layout: madvfree: reading %lu pages on the peer took %.0f s\n", PAGES,
			       took);
			bad++;
		}
	}
	check("madvfree", there, here);
	munmap(m, REGION);

	/*
	 * read-only anonymous pages read first on the peer (built there as zeroes), then made
	 * writable and written at home: the peer reads the new data, never a zero page it kept
	 */
	m = mmap(NULL, REGION, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 3;
	elastic_jump(0, peer);
	there = nonzero(m, REGION);
	elastic_jump(0, home);
	here = nonzero(m, REGION);
	if (mprotect(m, REGION, PROT_READ | PROT_WRITE))
		return 6;
	for (size_t p = 0; p < PAGES; p++)
		m[p * 512] = 4000 + p;
	elastic_jump(0, peer);
	there += wrong(m, REGION, 4000);
	elastic_jump(0, home);
	here += wrong(m, REGION, 4000);
	check("rofresh", there, here);
	munmap(m, REGION);

	/* brk shrunk and grown again */
	m = sbrk(0);
	m = (uint64_t *)(((uintptr_t)m + 4095) & ~4095UL);
	if (brk((char *)m + REGION))
		return 5;
	fill_and_push("brk", m, REGION, 3000);
	brk(m);
	brk((char *)m + REGION);
	elastic_jump(0, peer);
	there = nonzero(m, REGION);
	elastic_jump(0, home);
	here = nonzero(m, REGION);
	check("brk", there, here);
	brk(m);

	/* mremap to a new place */
	m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	n = mmap(NULL, 2 * REGION, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || n == MAP_FAILED)
		return 6;
	fill_and_push("mremap", m, REGION, 4000);
	n = mremap(m, REGION, 2 * REGION, MREMAP_MAYMOVE | MREMAP_FIXED, n);
	if (n == MAP_FAILED)
		return 7;
	elastic_jump(0, peer);
	there = wrong(n, REGION, 4000) + nonzero(n + REGION / 8, REGION);
	elastic_jump(0, home);
	here = wrong(n, REGION, 4000) + nonzero(n + REGION / 8, REGION);
	check("mremap", there, here);
	munmap(n, 2 * REGION);

	/* mprotect read-only: a write faults wherever it runs */
	{
		volatile int wrote = 0, sig;

		m = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		fill_and_push("mprotect", m, REGION, 5000);
		mprotect(m, REGION, PROT_READ);
		signal(SIGSEGV, caught);
		sig = sigsetjmp(env, 1);
		if (!sig) {
			elastic_jump(0, peer);
			((volatile uint64_t *)m)[512 * 7] = 1;
			wrote = 1;
		}
		signal(SIGSEGV, SIG_DFL);
		elastic_jump(0, home);
		check("mprotect", wrote || sig != SIGSEGV, wrong(m, REGION, 5000));
		munmap(m, REGION);
	}

	/* a file mapped after the stretch, read on the peer */
	{
		char path[] = "/tmp/layout-XXXXXX", buf[4096];
		uint64_t want = 0, got = 0;
		int fd = mkstemp(path);
		unsigned char *f;

		for (int i = 0; i < 4; i++) {
			for (int j = 0; j < 4096; j++) {
				buf[j] = (char)(i * 31 + j * 7);
				want += (unsigned char)buf[j] * (uint64_t)(i * 4096 + j + 1);
			}
			if (fd < 0 || write(fd, buf, 4096) != 4096)
				return 8;
		}
		f = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		if (f == MAP_FAILED)
			return 9;
		elastic_jump(0, peer);
		for (int i = 0; i < 4 * 4096; i++)
			got += f[i] * (uint64_t)(i + 1);
		elastic_jump(0, home);
		check("file", got != want, 0);
		munmap(f, 4 * 4096);
		close(fd);
		unlink(path);
	}

	/* an invalid instruction on the peer */
	{
		volatile int sig;

		signal(SIGILL, caught);
		sig = sigsetjmp(env, 1);
		if (!sig) {
			elastic_jump(0, peer);
			__builtin_trap();
		}
		signal(SIGILL, SIG_DFL);
		elastic_jump(0, home);
		check("sigill", sig != SIGILL, 0);
	}

	/* code made at run time, called on the peer: in RWX memory, and written then made RX */
	{
		static const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov $42,%eax; ret */
		unsigned char *rwx = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *rx = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		int (*volatile f)(void);
		int r1, r2;

		if (rwx == MAP_FAILED || rx == MAP_FAILED)
			return 10;
		memcpy(rwx, code, sizeof(code));
		memcpy(rx, code, sizeof(code));
		rx[1] = 43;
		if (mprotect(rx, 4096, PROT_READ | PROT_EXEC))
			return 11;
		elastic_jump(0, peer);
		f = (int (*)(void))rwx;
		r1 = f();
		elastic_jump(0, peer);
		f = (int (*)(void))rx;
		r2 = f();
		elastic_jump(0, home);
		check("jit", (r1 != 42) + (r2 != 43), 0);
		munmap(rwx, 4096);
		munmap(rx, 4096);
	}

	/* the huge pages made before the stretch */
	elastic_jump(0, peer);
	there = wrong(thp, 2 * HUGE, 6000) + nonzero(thp + 2 * HUGE / 8, HUGE);
	elastic_jump(0, home);
	here = wrong(thp, 2 * HUGE, 6000) + nonzero(thp + 2 * HUGE / 8, HUGE) + (sum != 0);
	check("thp", there, here);
	if (stretched && huge_kb == 0) {
		printf("layout: thp: no huge page was made (AnonHugePages 0 kB): nothing tested\n");
		bad++;
	}

	printf("RESULT layout bad=%ld\n", bad);
	return bad != 0;
}
