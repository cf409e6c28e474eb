/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Clean copies: fills FOOTPRINT MiB, then scans it read-only three times. After each phase it
 * prints the pages this process has pushed so far, and how many of them went by reference to
 * a clean copy (no data), from /proc/self/elastic (nothing there when it is not stretched).
 * A page pulled and not written since is evicted by reference, so once every page has been
 * pulled once, a scan sends no page data at all.
 */
#include "common.h"
#include <fcntl.h>
#include <unistd.h>

static long field(const char *line, const char *name)
{
	const char *r = strstr(line, name);
	return r ? atol(r + strlen(name)) : -1;
}

/*
 * Reads the counters with open/read into the stack and prints with write: no stdio buffer or
 * heap page is written between scans, so the scans themselves write no page at all.
 */
static void phase(const char *name)
{
	char line[2048], out[128];
	int fd = open("/proc/self/elastic", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, line, sizeof(line) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	line[n] = 0;
	int len = snprintf(out, sizeof(out), "PHASE %s pushed=%ld clean=%ld\n", name,
			   field(line, " pushed_pages="), field(line, " pushed_clean_pages="));
	if (write(1, out, len) != len)
		exit(4);
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "cleanscan");
	size_t n = fp / sizeof(uint64_t);
	uint64_t *a = xmalloc(n * sizeof(*a), "cleanscan");
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++)
		a[i] = rng_next(&s);
	phase("fill");

	double t0 = now_s();
	enum { SCANS = 3 };
	csum_t c;
	csum_init(&c);
	for (int k = 1; k <= SCANS; k++) {
		uint64_t x = 0;
		for (size_t i = 0; i < n; i++)
			x += a[i] * (i | 1);
		csum_add(&c, x);
		char name[] = "scan0";
		name[4] = '0' + k;
		phase(name);
	}
	report("cleanscan", fp, seed, csum_final(&c), "scans=3", now_s() - t0);
	return 0;
}
