/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tour MIB HOME N2 N3: a process stretched over three nodes. It fills MIB of memory, stretches
 * itself to N2 and N3, lowers its budget so its pages are pushed to both, then jumps to N2,
 * N3, home and N2 again; at each stop it checks and rewrites every page, so pages move between
 * all three nodes (through the home when they belong to the other peer). Prints the number of
 * bad pages and a checksum that must equal a run that never left home.
 */
#include "common.h"
#include "elastic.h"

#include <unistd.h>

static uint64_t word(uint64_t page, uint64_t round)
{
	uint64_t s = page * 1000003 + round;

	return rng_next(&s);
}

int main(int argc, char **argv)
{
	long mib, stops[4], bad = 0;
	uint64_t pages, *m;
	char line[1024];
	csum_t c;
	FILE *f;

	if (argc < 5) {
		fprintf(stderr, "usage: tour MIB HOME N2 N3\n");
		return 2;
	}
	mib = atol(argv[1]);
	stops[0] = atol(argv[3]);
	stops[1] = atol(argv[4]);
	stops[2] = atol(argv[2]);
	stops[3] = atol(argv[3]);
	pages = (uint64_t)mib << 8;
	m = malloc(pages * 4096);
	if (!m)
		return 3;
	for (uint64_t p = 0; p < pages; p++)
		m[p * 512] = word(p, 0);
	if (!elastic_stretch(0, (int)stops[0]) && !elastic_stretch(0, (int)stops[1])) {
		elastic_set_budget(0, 1024);
		sleep(3);
		f = fopen("/proc/self/elastic", "r");
		if (f && fgets(line, sizeof(line), f)) {
			char *n = strstr(line, " node="), *r = strstr(line, " remote_pages=");

			printf("tour: stretched:%.*s%.*s\n", n ? (int)strcspn(n + 1, " ") + 1 : 0, n ? n : "",
			       r ? (int)strcspn(r + 1, " ") + 1 : 0, r ? r : "");
		}
		if (f)
			fclose(f);
	}
	csum_init(&c);
	for (uint64_t round = 0; round < 4; round++) {
		elastic_jump(0, (int)stops[round]);
		for (uint64_t p = 0; p < pages; p++) {
			if (m[p * 512] != word(p, round))
				bad++;
			m[p * 512] = word(p, round + 1);
		}
	}
	for (uint64_t p = 0; p < pages; p++)
		csum_add(&c, m[p * 512]);
	printf("RESULT tour footprint_mib=%ld checksum=%016llx bad=%ld\n", mib,
	       (unsigned long long)csum_final(&c), bad);
	return bad != 0;
}
