/*
 * sched internals shared by queue.c (the containers), limits.c and
 * sched.c.  Not for other modules.
 */
#ifndef SLUICE_SCHED_INT_H
#define SLUICE_SCHED_INT_H

#include <stddef.h>
#include <stdint.h>

#include "sched/sched.h"

#define SCHED_NOT_QUEUED SIZE_MAX /* heap_idx of an item outside its heap */

/* ---- a binary min-heap of pointers (queue.c) ------------------------------ */

/* Items record their own position (moved()), so any item can be removed
 * or re-keyed in O(log n).  Growth happens only in push and reserve: an
 * item popped and pushed back never needs memory. */
struct sched_heap {
	void **v;
	size_t n, cap;
	int (*less)(const void *a, const void *b);
	void (*moved)(void *item, size_t idx);
};

/* 0 ok, -1 out of memory (heap unchanged). */
int sched_heap_reserve(struct sched_heap *h, size_t extra);
int sched_heap_push(struct sched_heap *h, void *item);
void *sched_heap_top(const struct sched_heap *h);
void *sched_heap_pop(struct sched_heap *h);
void sched_heap_remove(struct sched_heap *h, size_t idx);
/* The item at idx changed its key. */
void sched_heap_fix(struct sched_heap *h, size_t idx);
void sched_heap_free(struct sched_heap *h);

/* ---- a string-keyed hash map of intrusive nodes (queue.c) ---------------- */

struct sched_mapnode {
	struct sched_mapnode *next;
	uint64_t hash;
	char *key; /* owned by the node's container */
};

struct sched_map {
	struct sched_mapnode **b;
	size_t nb, n;
};

struct sched_mapnode *sched_map_get(const struct sched_map *m, const char *key);
/* node->key set, not yet in m.  0 ok, -1 out of memory. */
int sched_map_put(struct sched_map *m, struct sched_mapnode *node);
void sched_map_del(struct sched_map *m, struct sched_mapnode *node);
/* Unlink and hand every node to fn (which may free it); m left empty. */
void sched_map_drain(struct sched_map *m, void (*fn)(void *ctx, struct sched_mapnode *node),
                     void *ctx);
/* Unlink the nodes for which keep() says 0 and hand them to fn. */
size_t sched_map_sweep(struct sched_map *m, int (*keep)(void *ctx, struct sched_mapnode *node),
                       void (*fn)(void *ctx, struct sched_mapnode *node), void *ctx);
void sched_map_free(struct sched_map *m);

/* ---- the scheduler's objects (sched.c) ----------------------------------- */

struct sched_dest {
	struct sched_mapnode node; /* first: node.key is the destination */
	struct sched_limits lim;
	int64_t interval_us; /* GCRA emission interval, 0 = no rate */
	struct sched_gcra gcra;
	struct sched_heap jobs; /* queued, by next_ms then seq */
	int64_t hold_until;
	uint32_t nhosts; /* distinct MX hosts it last resolved to; 0 unknown */
	unsigned conns;
	size_t out; /* jobs handed out */
	/* in sched.ready */
	size_t heap_idx;
	int64_t key_ms;
	uint64_t key_seq;
	/* sched_add's grouping of one message */
	size_t add_count;
	struct sched_job *add_job;
};

struct sched_host {
	struct sched_mapnode node;
	unsigned conns;
};

struct sched_conn {
	struct sched_conn *next, **prevp;
	struct sched_dest *d;
	struct sched_host *h;
	uint32_t msgs;
};

/* limits.c: the limits of destination key (sorted per_dest, else def). */
const struct sched_limits *sched_limits_for(const struct sched_dest_limits *per_dest, size_t n,
                                            const struct sched_limits *def, const char *key);
/* Sort per_dest by key; -1 if a key repeats. */
int sched_limits_sort(struct sched_dest_limits *per_dest, size_t n);

#endif
