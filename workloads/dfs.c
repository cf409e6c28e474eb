/* SPDX-License-Identifier: GPL-2.0 */
/* Depth-first search over a random directed graph (8 out-edges per vertex), iterative. */
#include "common.h"

#define DEG 8

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "dfs");
	/* edges 32 B + stack frame 8 B + visited bit per vertex */
	size_t v = fp / (DEG * 4 + 8 + 1);
	uint32_t *edges = xmalloc(v * DEG * sizeof(uint32_t), "dfs");
	uint32_t (*stack)[2] = xmalloc(v * sizeof(*stack), "dfs");
	uint8_t *seen = xmalloc(v / 8 + 1, "dfs");
	uint64_t s = seed;
	for (size_t i = 0; i < v * DEG; i++)
		edges[i] = (uint32_t)(rng_next(&s) % v);
	memset(seen, 0, v / 8 + 1);

	double t0 = now_s();
	csum_t c;
	csum_init(&c);
	size_t top = 0, visited = 0, maxdepth = 0;
	stack[top][0] = 0;
	stack[top][1] = 0;
	top = 1;
	seen[0] |= 1;
	csum_add(&c, 0);
	visited = 1;
	while (top) {
		uint32_t u = stack[top - 1][0], k = stack[top - 1][1];
		if (k == DEG) {
			top--;
			continue;
		}
		stack[top - 1][1] = k + 1;
		uint32_t w = edges[(size_t)u * DEG + k];
		if (seen[w / 8] & (1 << (w % 8)))
			continue;
		seen[w / 8] |= 1 << (w % 8);
		visited++;
		csum_add(&c, w);
		stack[top][0] = w;
		stack[top][1] = 0;
		top++;
		if (top > maxdepth)
			maxdepth = top;
	}
	char extra[96];
	snprintf(extra, sizeof(extra), "vertices=%zu visited=%zu maxdepth=%zu", v, visited, maxdepth);
	report("dfs", fp, seed, csum_final(&c), extra, now_s() - t0);
	return 0;
}
