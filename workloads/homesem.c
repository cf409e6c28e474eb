/* SPDX-License-Identifier: GPL-2.0 */
/*
 * homesem HOME PEER: a process that prints, writes and reads a file, grows its heap with brk
 * and maps memory with mmap, each right after jumping to PEER, and checks getpid and the
 * clock. Its output (and exit status 7) must be byte-identical to a run that never left
 * home: run it once plain (the ElasticOS calls then fail and are ignored) and once stretched.
 */
#include "common.h"
#include "elastic.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static long peer;

/* Leave home; every syscall after this one still gets home semantics. */
static void away(void)
{
	elastic_jump(0, (int)peer);
}

int main(int argc, char **argv)
{
	char path[64], buf[256];
	pid_t pid = getpid();
	struct timespec t0, t1;
	csum_t c;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: homesem HOME PEER\n");
		return 2;
	}
	peer = atol(argv[2]);
	setvbuf(stdout, NULL, _IONBF, 0);
	elastic_stretch(0, (int)peer);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	away();
	printf("line 1: hello from wherever this runs\n");
	away();
	fprintf(stderr, "line 2: to stderr\n");

	away();
	snprintf(path, sizeof(path), "/tmp/homesem.%d", (int)pid);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	away();
	for (int i = 0; i < 50; i++) {
		int n = snprintf(buf, sizeof(buf), "record %d of the file\n", i);

		if (write(fd, buf, n) != n)
			printf("short write\n");
	}
	away();
	lseek(fd, 0, SEEK_SET);
	away();
	memset(buf, 0, sizeof(buf));
	if (read(fd, buf, 40) != 40)
		printf("short read\n");
	away();
	close(fd);
	unlink(path);
	printf("read back: %.40s", buf);
	printf("\n");

	away();
	csum_init(&c);
	char *heap = sbrk(0);
	away();
	if (brk(heap + (8 << 20)))
		printf("brk failed\n");
	away();
	for (long i = 0; i < (8 << 20); i += 4096)
		heap[i] = (char)(i >> 12);
	away();
	uint64_t *m = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	away();
	for (long i = 0; i < (4 << 20) / 8; i += 512)
		m[i] = (uint64_t)i * 3;
	away();
	for (long i = 0; i < (8 << 20); i += 4096)
		csum_add(&c, (uint64_t)heap[i]);
	for (long i = 0; i < (4 << 20) / 8; i += 512)
		csum_add(&c, m[i]);
	away();
	munmap(m, 4 << 20);
	printf("memory checksum %016llx\n", (unsigned long long)csum_final(&c));

	away();
	printf("pid unchanged: %s\n", getpid() == pid ? "yes" : "no");
	away();
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("clock monotonic: %s\n",
	       (t1.tv_sec > t0.tv_sec || (t1.tv_sec == t0.tv_sec && t1.tv_nsec >= t0.tv_nsec)) ?
		       "yes" : "no");
	away();
	printf("exiting with 7\n");
	away();
	exit(7);
}
