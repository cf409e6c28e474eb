/* SPDX-License-Identifier: GPL-2.0 */
/* Dijkstra's shortest paths from vertex 0 on a random weighted digraph (4 out-edges each),
 * with an indexed binary heap (decrease-key). */
#include "common.h"

#define DEG 4
#define NONE UINT32_MAX

typedef struct { uint32_t to, w; } edge_t;

static uint64_t *dist;
static uint32_t *heap, *pos;
static size_t hn;

static void swap_at(size_t i, size_t j)
{
	uint32_t t = heap[i];
	heap[i] = heap[j];
	heap[j] = t;
	pos[heap[i]] = (uint32_t)i;
	pos[heap[j]] = (uint32_t)j;
}

static void up(size_t i)
{
	while (i && dist[heap[(i - 1) / 2]] > dist[heap[i]]) {
		swap_at(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void down(size_t i)
{
	for (;;) {
		size_t m = i, l = 2 * i + 1, r = l + 1;
		if (l < hn && dist[heap[l]] < dist[heap[m]])
			m = l;
		if (r < hn && dist[heap[r]] < dist[heap[m]])
			m = r;
		if (m == i)
			return;
		swap_at(i, m);
		i = m;
	}
}

int main(int argc, char **argv)
{
	uint64_t seed, fp = parse_args(argc, argv, &seed, "dijkstra");
	size_t v = fp / (DEG * sizeof(edge_t) + 8 + 4 + 4);
	edge_t *e = xmalloc(v * DEG * sizeof(edge_t), "dijkstra");
	dist = xmalloc(v * sizeof(*dist), "dijkstra");
	heap = xmalloc(v * sizeof(*heap), "dijkstra");
	pos = xmalloc(v * sizeof(*pos), "dijkstra");
	uint64_t s = seed;
	for (size_t i = 0; i < v * DEG; i++) {
		e[i].to = (uint32_t)(rng_next(&s) % v);
		e[i].w = 1 + (uint32_t)(rng_next(&s) % 1000);
	}
	for (size_t i = 0; i < v; i++) {
		dist[i] = UINT64_MAX;
		pos[i] = NONE;
	}

	double t0 = now_s();
	dist[0] = 0;
	heap[0] = 0;
	pos[0] = 0;
	hn = 1;
	size_t settled = 0;
	while (hn) {
		uint32_t u = heap[0];
		swap_at(0, --hn);
		pos[u] = NONE;
		down(0);
		settled++;
		for (int k = 0; k < DEG; k++) {
			edge_t x = e[(size_t)u * DEG + k];
			uint64_t d = dist[u] + x.w;
			if (d < dist[x.to]) {
				int fresh = dist[x.to] == UINT64_MAX;
				dist[x.to] = d;
				if (fresh) {
					heap[hn] = x.to;
					pos[x.to] = (uint32_t)hn;
					hn++;
				}
				up(pos[x.to]);
			}
		}
	}
	csum_t c;
	csum_init(&c);
	uint64_t far = 0;
	for (size_t i = 0; i < v; i++) {
		csum_add(&c, dist[i]);
		if (dist[i] != UINT64_MAX && dist[i] > far)
			far = dist[i];
	}
	char extra[96];
	snprintf(extra, sizeof(extra), "vertices=%zu reached=%zu farthest=%llu", v, settled,
		 (unsigned long long)far);
	report("dijkstra", fp, seed, csum_final(&c), extra, now_s() - t0);
	return 0;
}
