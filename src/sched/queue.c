/*
 * queue: the containers the scheduler is built from: a binary min-heap
 * whose items know their position (so a job or a destination can be
 * re-keyed or taken out in O(log n)), and a chained hash map of
 * intrusive nodes keyed by string (destinations, MX hosts).
 *
 * Neither owns its items; neither allocates except to grow, and the heap
 * never shrinks, so an item popped can always be pushed back.
 */
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"

/* ---- heap ----------------------------------------------------------------- */

#define SCHED_HEAP_MIN 16

int sched_heap_reserve(struct sched_heap *h, size_t extra)
{
	size_t cap = h->cap != 0 ? h->cap : SCHED_HEAP_MIN;
	void **v;

	if (extra > SIZE_MAX / sizeof *v - h->n)
		return -1;
	if (h->n + extra <= h->cap)
		return 0;
	while (cap < h->n + extra)
		cap = cap > SIZE_MAX / (2 * sizeof *v) ? h->n + extra : cap * 2;
	v = realloc(h->v, cap * sizeof *v);
	if (v == NULL)
		return -1;
	h->v = v;
	h->cap = cap;
	return 0;
}

static void sched_heap_set(struct sched_heap *h, size_t i, void *item)
{
	h->v[i] = item;
	h->moved(item, i);
}

static void sched_heap_up(struct sched_heap *h, size_t i)
{
	void *item = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!h->less(item, h->v[parent]))
			break;
		sched_heap_set(h, i, h->v[parent]);
		i = parent;
	}
	sched_heap_set(h, i, item);
}

static void sched_heap_down(struct sched_heap *h, size_t i)
{
	void *item = h->v[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= h->n)
			break;
		if (child + 1 < h->n && h->less(h->v[child + 1], h->v[child]))
			child++;
		if (!h->less(h->v[child], item))
			break;
		sched_heap_set(h, i, h->v[child]);
		i = child;
	}
	sched_heap_set(h, i, item);
}

int sched_heap_push(struct sched_heap *h, void *item)
{
	if (sched_heap_reserve(h, 1) < 0)
		return -1;
	h->v[h->n++] = item;
	sched_heap_up(h, h->n - 1);
	return 0;
}

void *sched_heap_top(const struct sched_heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

void sched_heap_remove(struct sched_heap *h, size_t idx)
{
	void *item = h->v[idx];

	h->n--;
	if (idx != h->n) {
		h->v[idx] = h->v[h->n];
		/* The last item may belong above or below the hole. */
		if (idx > 0 && h->less(h->v[idx], h->v[(idx - 1) / 2]))
			sched_heap_up(h, idx);
		else
			sched_heap_down(h, idx);
	}
	h->moved(item, SCHED_NOT_QUEUED);
}

void *sched_heap_pop(struct sched_heap *h)
{
	void *top;

	if (h->n == 0)
		return NULL;
	top = h->v[0];
	sched_heap_remove(h, 0);
	return top;
}

void sched_heap_fix(struct sched_heap *h, size_t idx)
{
	if (idx > 0 && h->less(h->v[idx], h->v[(idx - 1) / 2]))
		sched_heap_up(h, idx);
	else
		sched_heap_down(h, idx);
}

void sched_heap_free(struct sched_heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

/* ---- map ------------------------------------------------------------------ */

#define SCHED_MAP_MIN 64

/* FNV-1a, 64 bits.  Keys are destination names we chose to queue, not
 * attacker-chosen in bulk: no keyed hash needed. */
static uint64_t sched_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *key != '\0'; key++) {
		h ^= (unsigned char)*key;
		h *= 0x100000001b3ull;
	}
	return h;
}

struct sched_mapnode *sched_map_get(const struct sched_map *m, const char *key)
{
	uint64_t h;
	struct sched_mapnode *n;

	if (m->nb == 0)
		return NULL;
	h = sched_hash(key);
	for (n = m->b[h & (m->nb - 1)]; n != NULL; n = n->next)
		if (n->hash == h && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

static int sched_map_grow(struct sched_map *m)
{
	size_t nb = m->nb != 0 ? m->nb * 2 : SCHED_MAP_MIN;
	struct sched_mapnode **b = calloc(nb, sizeof *b);
	size_t i;

	if (b == NULL)
		return -1;
	for (i = 0; i < m->nb; i++) {
		struct sched_mapnode *n = m->b[i], *next;

		for (; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
	return 0;
}

int sched_map_put(struct sched_map *m, struct sched_mapnode *node)
{
	size_t i;

	/* Load factor at most 1. */
	if (m->n >= m->nb && sched_map_grow(m) < 0 && m->nb == 0)
		return -1;
	node->hash = sched_hash(node->key);
	i = node->hash & (m->nb - 1);
	node->next = m->b[i];
	m->b[i] = node;
	m->n++;
	return 0;
}

void sched_map_del(struct sched_map *m, struct sched_mapnode *node)
{
	struct sched_mapnode **pp = &m->b[node->hash & (m->nb - 1)];

	for (; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == node) {
			*pp = node->next;
			node->next = NULL;
			m->n--;
			return;
		}
	}
}

size_t sched_map_sweep(struct sched_map *m, int (*keep)(void *ctx, struct sched_mapnode *node),
                       void (*fn)(void *ctx, struct sched_mapnode *node), void *ctx)
{
	size_t i, gone = 0;

	for (i = 0; i < m->nb; i++) {
		struct sched_mapnode **pp = &m->b[i];

		while (*pp != NULL) {
			struct sched_mapnode *n = *pp;

			if (keep(ctx, n)) {
				pp = &n->next;
				continue;
			}
			*pp = n->next;
			n->next = NULL;
			m->n--;
			gone++;
			fn(ctx, n);
		}
	}
	return gone;
}

static int sched_map_keep_none(void *ctx, struct sched_mapnode *node)
{
	(void)ctx;
	(void)node;
	return 0;
}

void sched_map_drain(struct sched_map *m, void (*fn)(void *ctx, struct sched_mapnode *node),
                     void *ctx)
{
	(void)sched_map_sweep(m, sched_map_keep_none, fn, ctx);
}

void sched_map_free(struct sched_map *m)
{
	free(m->b);
	m->b = NULL;
	m->nb = m->n = 0;
}
