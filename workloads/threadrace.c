/* SPDX-License-Identifier: GPL-2.0 */
/*
 * threadrace MIB SECONDS: threads created every millisecond while the process is stretched
 * automatically (run it marked elastic with a small budget). It grows by 1 MiB every 20 ms up
 * to MIB MiB, and meanwhile creates one short-lived thread after another (each lives about
 * 2 ms). A stretched process must stay single-threaded: a thread that is alive while the
 * process is stretched (`/proc/self/elastic` shows remote_pages) is counted as bad, once it
 * is stretched every pthread_create() must fail, and the memory must read back right.
 *
 * Prints "RESULT threadrace sum=S" (the same as without ElasticOS) and
 * "threadrace: stretched=S created=C refused=R bad=B".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include "common.h"

static volatile int bad;

static void *body(void *arg)
{
	(void)arg;
	if (self_remote_pages() >= 0)
		bad++;
	usleep(2000);
	if (self_remote_pages() >= 0)
		bad++;
	return NULL;
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "threadrace");
	double secs = argc > 3 ? atof(argv[3]) : 3.0;
	size_t n = fp / sizeof(uint64_t), per_mib = (1 << 20) / sizeof(uint64_t), filled = 0;
	uint64_t *a = xmalloc(fp, "threadrace");
	uint64_t s = seed;
	long created = 0, refused = 0;
	double t0 = now_s(), next_fill = t0;

	while (now_s() - t0 < secs || filled < n) {
		if (filled < n && now_s() >= next_fill) {
			for (size_t i = 0; i < per_mib && filled < n; i++, filled++)
				a[filled] = rng_next(&s);
			next_fill += 0.02;
		}
		pthread_t t;
		int e = pthread_create(&t, NULL, body, NULL);
		if (e == 0) {
			created++;
			pthread_join(t, NULL);
		} else {
			refused++;
		}
		usleep(1000);
	}
	csum_t c;
	csum_init(&c);
	for (size_t i = 0; i < n; i++)
		csum_add(&c, a[i]);
	/* No timing in the result line: it must equal a run without ElasticOS. */
	printf("RESULT threadrace footprint_mib=%llu seed=%llu checksum=%016llx\n",
	       (unsigned long long)(fp >> 20), (unsigned long long)seed,
	       (unsigned long long)csum_final(&c));
	printf("threadrace: stretched=%d created=%ld refused=%ld bad=%d\n",
	       self_remote_pages() >= 0, created, refused, bad);
	return 0;
}
