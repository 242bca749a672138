/*
 * sched: jobs, destinations and connections (sched.h has the model).
 *
 * Two levels of min-heap.  Each destination holds its queued jobs by
 * (next_ms, seq).  The scheduler holds the destinations that could start
 * a connection (jobs queued, below their connection cap) by (key_ms,
 * key_seq), where key_ms is the earliest time the first job may start:
 * the job's own time, the end of a hold, the GCRA's next slot, and, right
 * after the destination was served, now.  key_seq grows each time a
 * destination is served or comes back, so among destinations ready at
 * the same time the one that waited longest goes first.
 *
 * Memory: sched_add reserves every heap slot it will use before changing
 * anything, and a job taken out of a heap can always go back (heaps never
 * shrink; the ready heap has room for every destination), so apart from
 * sched_add and sched_conn_host nothing here can fail.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"
#include "util/util.h"

struct sched {
	struct sched_backoff backoff;
	struct sched_limits def;
	struct sched_dest_limits *per_dest; /* sorted; keys owned */
	size_t nper_dest;
	uint32_t max_conns_total;
	uint64_t rng;

	struct sched_map dests, hosts;
	struct sched_heap ready; /* destinations */
	struct sched_conn *conns;
	uint64_t next_job_id, seq;
	size_t njobs, nqueued, nconns;
	uint64_t started, expired, rate_waits;
};

/* ---- small things --------------------------------------------------------- */

/* splitmix64: enough to spread retries; not for secrets. */
static uint32_t sched_rand(struct sched *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

static int64_t sched_max(int64_t a, int64_t b)
{
	return a > b ? a : b;
}

static void sched_lower(char *p)
{
	for (; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
}

static int sched_job_less(const void *a, const void *b)
{
	const struct sched_job *x = a, *y = b;

	if (x->next_ms != y->next_ms)
		return x->next_ms < y->next_ms;
	return x->seq < y->seq;
}

static void sched_job_moved(void *item, size_t idx)
{
	((struct sched_job *)item)->heap_idx = idx;
}

static int sched_dest_less(const void *a, const void *b)
{
	const struct sched_dest *x = a, *y = b;

	if (x->key_ms != y->key_ms)
		return x->key_ms < y->key_ms;
	return x->key_seq < y->key_seq;
}

static void sched_dest_moved(void *item, size_t idx)
{
	((struct sched_dest *)item)->heap_idx = idx;
}

static void sched_job_free(struct sched_job *j)
{
	free(j->rcpts);
	free(j);
}

/* ---- config --------------------------------------------------------------- */

void sched_config_default(struct sched_config *cfg_r)
{
	memset(cfg_r, 0, sizeof *cfg_r);
	sched_backoff_default(&cfg_r->backoff);
	sched_limits_default(&cfg_r->limits);
}

static void sched_free_per_dest(struct sched *s)
{
	size_t i;

	for (i = 0; i < s->nper_dest; i++)
		free((char *)s->per_dest[i].dest);
	free(s->per_dest);
}

struct sched *sched_new(const struct sched_config *cfg, const char **why_r)
{
	struct sched *s = calloc(1, sizeof *s);
	size_t i;

	*why_r = "out of memory";
	if (s == NULL)
		return NULL;
	s->backoff = cfg->backoff;
	if (s->backoff.nsteps == 0)
		sched_backoff_default(&s->backoff);
	s->def = cfg->limits;
	s->max_conns_total = cfg->max_conns_total;
	s->rng = cfg->seed != 0 ? cfg->seed : 0x736c75696365ull; /* "sluice" */
	s->ready.less = sched_dest_less;
	s->ready.moved = sched_dest_moved;
	if (cfg->nper_dest > 0) {
		s->per_dest = calloc(cfg->nper_dest, sizeof *s->per_dest);
		if (s->per_dest == NULL)
			goto fail;
		for (i = 0; i < cfg->nper_dest; i++) {
			char *key = util_strdup(cfg->per_dest[i].dest);

			if (key == NULL)
				goto fail;
			sched_lower(key);
			s->per_dest[i].dest = key;
			s->per_dest[i].limits = cfg->per_dest[i].limits;
			s->nper_dest++;
		}
		if (sched_limits_sort(s->per_dest, s->nper_dest) < 0) {
			*why_r = "a destination has limits twice";
			goto fail;
		}
	}
	return s;

fail:
	sched_free_per_dest(s);
	free(s);
	return NULL;
}

static void sched_dest_free_cb(void *ctx, struct sched_mapnode *node)
{
	struct sched_dest *d = (struct sched_dest *)node;
	size_t i;

	(void)ctx;
	for (i = 0; i < d->jobs.n; i++)
		sched_job_free(d->jobs.v[i]);
	sched_heap_free(&d->jobs);
	free(d->node.key);
	free(d);
}

static void sched_host_free_cb(void *ctx, struct sched_mapnode *node)
{
	(void)ctx;
	free(node->key);
	free(node);
}

void sched_free(struct sched **sp)
{
	struct sched *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	while (s->conns != NULL) {
		struct sched_conn *c = s->conns;

		s->conns = c->next;
		free(c);
	}
	/* Jobs handed out and never returned are the caller's leak: they
	 * point at destinations freed here. */
	if (s->njobs != s->nqueued)
		log_warn("sched freed jobs_out=%zu", s->njobs - s->nqueued);
	sched_map_drain(&s->dests, sched_dest_free_cb, NULL);
	sched_map_drain(&s->hosts, sched_host_free_cb, NULL);
	sched_map_free(&s->dests);
	sched_map_free(&s->hosts);
	sched_heap_free(&s->ready);
	sched_free_per_dest(s);
	free(s);
}

/* ---- destinations --------------------------------------------------------- */

/* At its cap: max_conns, or every host it has at max_conns_per_host (a
 * connection past that would only find its host full). */
static int sched_dest_capped(const struct sched_dest *d)
{
	uint64_t cap = d->lim.max_conns != 0 ? d->lim.max_conns : UINT64_MAX;

	if (d->nhosts != 0 && d->lim.max_conns_per_host != 0 &&
	    (uint64_t)d->nhosts * d->lim.max_conns_per_host < cap)
		cap = (uint64_t)d->nhosts * d->lim.max_conns_per_host;
	return d->conns >= cap;
}

/* Recompute d's place in the ready heap.  served: d just started a job,
 * so it goes behind every destination already ready. */
static void sched_dest_update(struct sched *s, struct sched_dest *d, int served, int64_t now_ms)
{
	struct sched_job *top = sched_heap_top(&d->jobs);
	int64_t key;

	if (top == NULL || sched_dest_capped(d)) {
		if (d->heap_idx != SCHED_NOT_QUEUED)
			sched_heap_remove(&s->ready, d->heap_idx);
		return;
	}
	key = sched_max(top->next_ms, d->hold_until);
	if (served)
		key = sched_max(key, now_ms);
	if (d->interval_us > 0) {
		int64_t ready = sched_gcra_ready(&d->gcra, d->interval_us, d->lim.rate_burst);

		/* A ready job held back by the rate alone. */
		if (served && ready > key)
			s->rate_waits++;
		key = sched_max(key, ready);
	}
	if (d->heap_idx == SCHED_NOT_QUEUED) {
		d->key_ms = key;
		d->key_seq = ++s->seq;
		/* Cannot fail: room for every destination was made when it
		 * was created. */
		if (sched_heap_push(&s->ready, d) < 0)
			log_panic("sched ready heap full dests=%zu", s->dests.n);
		return;
	}
	d->key_ms = key;
	if (served)
		d->key_seq = ++s->seq;
	sched_heap_fix(&s->ready, d->heap_idx);
}

static struct sched_dest *sched_dest_get(struct sched *s, const char *key, int create)
{
	struct sched_dest *d = (struct sched_dest *)sched_map_get(&s->dests, key);

	if (d != NULL || !create)
		return d;
	/* A slot in the ready heap for every destination, made now. */
	if (sched_heap_reserve(&s->ready, s->dests.n + 1 - s->ready.n) < 0)
		return NULL;
	d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->node.key = util_strdup(key);
	if (d->node.key == NULL) {
		free(d);
		return NULL;
	}
	d->lim = *sched_limits_for(s->per_dest, s->nper_dest, &s->def, key);
	if (d->lim.max_rcpts_per_job == 0)
		d->lim.max_rcpts_per_job = SCHED_MAX_RCPTS_PER_JOB_DEFAULT;
	if (d->lim.rate_burst == 0)
		d->lim.rate_burst = 1;
	d->interval_us = sched_gcra_interval(d->lim.rate_per_minute);
	d->jobs.less = sched_job_less;
	d->jobs.moved = sched_job_moved;
	d->heap_idx = SCHED_NOT_QUEUED;
	if (sched_map_put(&s->dests, &d->node) < 0) {
		free(d->node.key);
		free(d);
		return NULL;
	}
	return d;
}

/* A known destination by key, in any case. */
static struct sched_dest *sched_dest_find(const struct sched *s, const char *dest)
{
	char key[SCHED_DEST_MAX];

	if (util_strlcpy(key, dest, sizeof key) >= sizeof key)
		return NULL;
	sched_lower(key);
	return (struct sched_dest *)sched_map_get(&s->dests, key);
}

void sched_dest_hold(struct sched *s, const char *dest, int64_t until_ms)
{
	struct sched_dest *d = sched_dest_find(s, dest);

	if (d == NULL)
		return;
	d->hold_until = until_ms;
	sched_dest_update(s, d, 0, 0);
}

size_t sched_dest_queued(const struct sched *s, const char *dest, unsigned *conns_r)
{
	const struct sched_dest *d = sched_dest_find(s, dest);

	if (conns_r != NULL)
		*conns_r = d != NULL ? d->conns : 0;
	return d != NULL ? d->jobs.n : 0;
}

struct sched_gc_ctx {
	struct sched *s;
	int64_t now_ms;
};

static int sched_dest_keep(void *ctx, struct sched_mapnode *node)
{
	const struct sched_gc_ctx *g = ctx;
	const struct sched_dest *d = (const struct sched_dest *)node;

	return d->jobs.n > 0 || d->conns > 0 || d->out > 0 || d->hold_until > g->now_ms ||
	       (d->interval_us > 0 && d->gcra.u.tat_us > g->now_ms * 1000);
}

static int sched_host_keep(void *ctx, struct sched_mapnode *node)
{
	(void)ctx;
	return ((struct sched_host *)node)->conns > 0;
}

size_t sched_gc(struct sched *s, int64_t now_ms)
{
	struct sched_gc_ctx g = {.s = s, .now_ms = now_ms};

	(void)sched_map_sweep(&s->hosts, sched_host_keep, sched_host_free_cb, NULL);
	return sched_map_sweep(&s->dests, sched_dest_keep, sched_dest_free_cb, &g);
}

/* ---- adding a message ----------------------------------------------------- */

static int sched_default_dest(void *ctx, const char *addr, char *key, size_t size)
{
	const char *at = strrchr(addr, '@');

	(void)ctx;
	if (at == NULL || at[1] == '\0')
		return -1;
	return util_strlcpy(key, at + 1, size) < size ? 0 : -1;
}

static uint32_t sched_min_u32(uint32_t a, size_t b)
{
	return b < a ? (uint32_t)b : a;
}

int sched_add(struct sched *s, const struct spool_message *m, sched_dest_fn *dest_fn, void *ctx)
{
	struct sched_dest **dest_of = NULL; /* per recipient, NULL: left out */
	struct sched_job **jobs = NULL;
	size_t i, njobs = 0;
	int rc = -1;

	if (m->nrcpts == 0)
		return 0;
	if (dest_fn == NULL)
		dest_fn = sched_default_dest;
	dest_of = calloc(m->nrcpts, sizeof *dest_of);
	jobs = calloc(m->nrcpts, sizeof *jobs); /* at most one job per recipient */
	if (dest_of == NULL || jobs == NULL)
		goto done;

	/* 1. Each pending recipient's destination, and how many each has. */
	for (i = 0; i < m->nrcpts; i++) {
		char key[SCHED_DEST_MAX];

		if (m->rcpts[i].state != SPOOL_RCPT_PENDING)
			continue;
		if (dest_fn(ctx, m->rcpts[i].addr, key, sizeof key) < 0 || key[0] == '\0')
			continue;
		sched_lower(key);
		dest_of[i] = sched_dest_get(s, key, 1);
		if (dest_of[i] == NULL)
			goto done;
		if (dest_of[i]->add_count++ == 0)
			dest_of[i]->add_job = NULL;
	}

	/* 2. The jobs, recipients in message order, split at the cap. */
	for (i = 0; i < m->nrcpts; i++) {
		struct sched_dest *d = dest_of[i];
		const struct spool_rcpt *r = &m->rcpts[i];
		struct sched_job *j;

		if (d == NULL)
			continue;
		j = d->add_job;
		if (j == NULL || j->nrcpts == d->lim.max_rcpts_per_job) {
			size_t cap = sched_min_u32(d->lim.max_rcpts_per_job, d->add_count);

			j = calloc(1, sizeof *j);
			if (j == NULL)
				goto done;
			jobs[njobs++] = j;
			j->rcpts = calloc(cap, sizeof *j->rcpts);
			if (j->rcpts == NULL)
				goto done;
			memcpy(j->msg_id, m->id, sizeof j->msg_id);
			j->msg_id[SPOOL_ID_LEN] = '\0';
			j->dest = d->node.key;
			j->d = d;
			j->received_ms = m->received * 1000;
			j->next_ms = INT64_MAX;
			j->heap_idx = SCHED_NOT_QUEUED;
			d->add_job = j;
		}
		j->rcpts[j->nrcpts++] = i;
		d->add_count--;
		if (r->attempts > j->attempts)
			j->attempts = r->attempts;
		if (r->next_attempt * 1000 < j->next_ms)
			j->next_ms = r->next_attempt > 0 ? r->next_attempt * 1000 : 0;
	}

	/* 3. Room in each destination's heap, then nothing can fail. */
	for (i = 0; i < njobs; i++)
		jobs[i]->d->add_count++;
	for (i = 0; i < njobs; i++) {
		struct sched_dest *d = jobs[i]->d;

		if (d->add_count > 0 && sched_heap_reserve(&d->jobs, d->add_count) < 0)
			goto done;
		d->add_count = 0;
	}
	for (i = 0; i < njobs; i++) {
		struct sched_job *j = jobs[i];

		j->id = ++s->next_job_id;
		j->seq = ++s->seq;
		(void)sched_heap_push(&j->d->jobs, j);
		s->njobs++;
		s->nqueued++;
		sched_dest_update(s, j->d, 0, 0);
	}
	rc = (int)njobs;
	njobs = 0;

done:
	/* On failure: no job was queued; counts are reset. */
	for (i = 0; i < m->nrcpts && dest_of != NULL; i++)
		if (dest_of[i] != NULL) {
			dest_of[i]->add_count = 0;
			dest_of[i]->add_job = NULL;
		}
	for (i = 0; i < njobs; i++)
		sched_job_free(jobs[i]);
	free(jobs);
	free(dest_of);
	return rc;
}

/* ---- handing out work ----------------------------------------------------- */

/* Take d's first job, which may start at now_ms. */
static struct sched_job *sched_dest_take(struct sched *s, struct sched_dest *d, int64_t now_ms)
{
	struct sched_job *j = sched_heap_pop(&d->jobs);
	int64_t ready;

	if (d->interval_us > 0 &&
	    !sched_gcra_take(&d->gcra, d->interval_us, d->lim.rate_burst, now_ms, &ready))
		log_panic("sched dest=%s started before its rate allows", d->node.key);
	s->nqueued--;
	s->started++;
	d->out++;
	return j;
}

int sched_next(struct sched *s, int64_t now_ms, struct sched_job **job_r,
               struct sched_conn **conn_r, int64_t *wake_r)
{
	struct sched_dest *d;
	struct sched_conn *c;

	*job_r = NULL;
	*conn_r = NULL;
	if (s->max_conns_total != 0 && s->nconns >= s->max_conns_total) {
		*wake_r = SCHED_NEVER;
		return 0;
	}
	d = sched_heap_top(&s->ready);
	if (d == NULL) {
		*wake_r = SCHED_NEVER;
		return 0;
	}
	if (d->key_ms > now_ms) {
		*wake_r = d->key_ms;
		return 0;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL) {
		/* Out of memory is passing: ask again soon. */
		*wake_r = now_ms + 1000;
		return 0;
	}
	c->d = d;
	c->msgs = 1;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prevp = &c->next;
	c->prevp = &s->conns;
	s->conns = c;
	d->conns++;
	s->nconns++;
	*job_r = sched_dest_take(s, d, now_ms);
	*conn_r = c;
	sched_dest_update(s, d, 1, now_ms);
	*wake_r = now_ms;
	return 1;
}

int sched_next_on(struct sched *s, struct sched_conn *c, int64_t now_ms, struct sched_job **job_r,
                  int64_t *wake_r)
{
	struct sched_dest *d = c->d;
	struct sched_job *top = sched_heap_top(&d->jobs);
	int64_t ready;

	*job_r = NULL;
	if (top == NULL || (d->lim.max_msgs_per_conn != 0 && c->msgs >= d->lim.max_msgs_per_conn)) {
		*wake_r = SCHED_NEVER;
		return 0;
	}
	ready = sched_max(top->next_ms, d->hold_until);
	if (ready > now_ms) {
		*wake_r = ready;
		return 0;
	}
	if (d->interval_us > 0) {
		ready = sched_gcra_ready(&d->gcra, d->interval_us, d->lim.rate_burst);
		if (ready > now_ms) {
			s->rate_waits++;
			*wake_r = ready;
			return 0;
		}
	}
	c->msgs++;
	*job_r = sched_dest_take(s, d, now_ms);
	sched_dest_update(s, d, 1, now_ms);
	*wake_r = now_ms;
	return 1;
}

void sched_dest_hosts(struct sched *s, const char *dest, uint32_t nhosts)
{
	struct sched_dest *d = sched_dest_get(s, dest, 0);

	if (d == NULL || d->nhosts == nhosts)
		return;
	d->nhosts = nhosts;
	sched_dest_update(s, d, 0, 0);
}

int sched_slot_wanted(const struct sched *s, int64_t now_ms)
{
	const struct sched_dest *d;

	if (s->max_conns_total == 0 || s->nconns < s->max_conns_total)
		return 0;
	d = sched_heap_top(&s->ready);
	return d != NULL && d->key_ms <= now_ms;
}

int sched_conn_spent(const struct sched_conn *c)
{
	return c->d->lim.max_msgs_per_conn != 0 && c->msgs >= c->d->lim.max_msgs_per_conn;
}

const char *sched_conn_dest(const struct sched_conn *c)
{
	return c->d->node.key;
}

static void sched_host_release(struct sched_conn *c)
{
	if (c->h != NULL) {
		c->h->conns--;
		c->h = NULL;
	}
}

int sched_conn_host(struct sched *s, struct sched_conn *c, const char *host)
{
	struct sched_host *h = (struct sched_host *)sched_map_get(&s->hosts, host);
	uint32_t cap = c->d->lim.max_conns_per_host;

	if (h != NULL && h == c->h)
		return 0;
	if (h != NULL && cap != 0 && h->conns >= cap)
		return -1;
	if (h == NULL) {
		h = calloc(1, sizeof *h);
		if (h == NULL)
			return -1;
		h->node.key = util_strdup(host);
		if (h->node.key == NULL || sched_map_put(&s->hosts, &h->node) < 0) {
			free(h->node.key);
			free(h);
			return -1;
		}
	}
	sched_host_release(c);
	h->conns++;
	c->h = h;
	return 0;
}

void sched_conn_close(struct sched *s, struct sched_conn **cp)
{
	struct sched_conn *c = *cp;

	if (c == NULL)
		return;
	*cp = NULL;
	sched_host_release(c);
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	c->d->conns--;
	s->nconns--;
	/* Below its cap again: d may have to rejoin the ready heap. */
	sched_dest_update(s, c->d, 0, 0);
	free(c);
}

/* ---- jobs coming back ----------------------------------------------------- */

void sched_job_done(struct sched *s, struct sched_job **jp)
{
	struct sched_job *j = *jp;

	if (j == NULL)
		return;
	*jp = NULL;
	j->d->out--;
	s->njobs--;
	sched_job_free(j);
}

/* Back into its destination's heap: room is there since it came from it. */
static void sched_job_requeue(struct sched *s, struct sched_job *j)
{
	j->seq = ++s->seq;
	if (sched_heap_push(&j->d->jobs, j) < 0)
		log_panic("sched job heap full dest=%s", j->dest);
	j->d->out--;
	s->nqueued++;
	sched_dest_update(s, j->d, 0, 0);
}

enum sched_defer sched_job_defer(struct sched *s, struct sched_job **jp, int64_t now_ms,
                                 int64_t *next_r)
{
	struct sched_job *j = *jp;
	int64_t deadline = sched_backoff_deadline(&s->backoff, j->received_ms);
	int64_t next;

	j->attempts++;
	if (now_ms >= deadline) {
		s->expired++;
		*next_r = SCHED_NEVER;
		return SCHED_DEFER_EXPIRED;
	}
	next = sched_backoff_next(&s->backoff, j->attempts, now_ms, sched_rand(s));
	/* One last attempt at the deadline rather than a bounce long after. */
	if (next > deadline)
		next = deadline;
	j->next_ms = next;
	*next_r = next;
	*jp = NULL;
	sched_job_requeue(s, j);
	return SCHED_DEFER_RETRY;
}

void sched_job_postpone(struct sched *s, struct sched_job **jp, int64_t until_ms)
{
	struct sched_job *j = *jp;

	if (j == NULL)
		return;
	*jp = NULL;
	j->next_ms = until_ms;
	sched_job_requeue(s, j);
}

void sched_stats(const struct sched *s, struct sched_stats *stats_r)
{
	*stats_r = (struct sched_stats){
	    .jobs = s->njobs,
	    .queued = s->nqueued,
	    .dests = s->dests.n,
	    .conns = s->nconns,
	    .started = s->started,
	    .expired = s->expired,
	    .rate_waits = s->rate_waits,
	};
}
