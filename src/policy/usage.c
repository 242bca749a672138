/*
 * Usage per tenant and hour (issue 4): counters aggregated in memory and
 * written to the store every few seconds and at shutdown, never one write
 * per message.  Any thread counts (the SMTP loop: accepted and refused;
 * the delivery thread: delivered, deferred, bounced) under one mutex,
 * held for a hash look-up and an addition; only the flush, on the loop,
 * touches the store, with the mutex released.  Addresses a hard bounce
 * suppresses wait here for the same flush, so the delivery thread never
 * blocks on the store.
 *
 * A flush that fails puts its rows back: they are written with the next
 * one.  Lost only if sluiced dies between two flushes (a few seconds of
 * counters; the quotas then count a little less than was sent).
 */
#include "policy/policy.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_BUCKETS 509
#define USAGE_SUPPRESS_MAX 100000 /* waiting suppressions; more are dropped (logged) */

struct usage_row {
	struct usage_row *next;
	struct store_usage u;
};

struct policy_usage {
	pthread_mutex_t mu;
	struct usage_row *buckets[USAGE_BUCKETS];
	size_t nrows;
	struct store_suppression *supp;
	size_t nsupp, supp_cap;
};

struct policy_usage *policy_usage_new(void)
{
	struct policy_usage *u = calloc(1, sizeof *u);

	if (u != NULL)
		pthread_mutex_init(&u->mu, NULL);
	return u;
}

static void usage_rows_free(struct usage_row **buckets)
{
	for (size_t i = 0; i < USAGE_BUCKETS; i++)
		while (buckets[i]) {
			struct usage_row *r = buckets[i];
			buckets[i] = r->next;
			free(r);
		}
}

void policy_usage_free(struct policy_usage **u)
{
	if (*u == NULL)
		return;
	usage_rows_free((*u)->buckets);
	free((*u)->supp);
	pthread_mutex_destroy(&(*u)->mu);
	free(*u);
	*u = NULL;
}

static size_t usage_hash(int64_t t, int64_t c, int64_t h, const char *m)
{
	uint64_t x = 1469598103934665603ULL;

	x = (x ^ (uint64_t)t) * 1099511628211ULL;
	x = (x ^ (uint64_t)c) * 1099511628211ULL;
	x = (x ^ (uint64_t)h) * 1099511628211ULL;
	for (; *m; m++)
		x = (x ^ (unsigned char)*m) * 1099511628211ULL;
	return (size_t)(x % USAGE_BUCKETS);
}

/* Add n to a row, under the mutex. */
static void usage_add_locked(struct policy_usage *u, const struct store_usage *k, uint64_t n)
{
	struct usage_row **pp =
	    &u->buckets[usage_hash(k->tenant_id, k->credential_id, k->hour, k->metric)];

	for (; *pp; pp = &(*pp)->next) {
		struct store_usage *r = &(*pp)->u;
		if (r->tenant_id == k->tenant_id && r->credential_id == k->credential_id &&
		    r->hour == k->hour && strcmp(r->metric, k->metric) == 0) {
			r->count += n;
			return;
		}
	}
	if ((*pp = calloc(1, sizeof **pp)) == NULL) {
		log_err("usage not counted: out of memory tenant=%lld metric=%s",
		        (long long)k->tenant_id, k->metric);
		return;
	}
	(*pp)->u = *k;
	(*pp)->u.count = n;
	u->nrows++;
}

void policy_usage_count(struct policy_usage *u, int64_t tenant_id, int64_t credential_id,
                        const char *metric, uint64_t n, int64_t now)
{
	struct store_usage k = {
	    .tenant_id = tenant_id, .credential_id = credential_id, .hour = now / 3600};

	if (u == NULL || n == 0 || tenant_id <= 0 ||
	    util_strlcpy(k.metric, metric, sizeof k.metric) >= sizeof k.metric)
		return;
	pthread_mutex_lock(&u->mu);
	usage_add_locked(u, &k, n);
	pthread_mutex_unlock(&u->mu);
}

void policy_usage_refused(struct policy_usage *u, int64_t tenant_id, int64_t credential_id,
                          const char *reason, int64_t now)
{
	char metric[STORE_METRIC_MAX + 1];

	snprintf(metric, sizeof metric, "refused:%s", reason);
	policy_usage_count(u, tenant_id, credential_id, metric, 1, now);
}

void policy_usage_suppress(struct policy_usage *u, int64_t tenant_id, const char *address,
                           const char *reason, int64_t now)
{
	struct store_suppression *x;

	if (u == NULL || tenant_id <= 0)
		return;
	pthread_mutex_lock(&u->mu);
	if (u->nsupp == u->supp_cap) {
		size_t cap = u->supp_cap ? u->supp_cap * 2 : 16;
		struct store_suppression *p = NULL;
		if (cap <= USAGE_SUPPRESS_MAX)
			p = reallocarray(u->supp, cap, sizeof *p);
		if (p == NULL) {
			pthread_mutex_unlock(&u->mu);
			log_err("suppression dropped tenant=%lld address=<%s>",
			        (long long)tenant_id, address);
			return;
		}
		u->supp = p;
		u->supp_cap = cap;
	}
	x = &u->supp[u->nsupp];
	memset(x, 0, sizeof *x);
	x->tenant_id = tenant_id;
	x->created = now;
	util_strlcpy(x->source, "bounce", sizeof x->source);
	/* an address too long for the list is refused by the store (logged) */
	util_strlcpy(x->address, address, sizeof x->address);
	if (strlen(address) >= sizeof x->address)
		x->address[0] = '\0';
	util_strlcpy(x->reason, reason ? reason : "", sizeof x->reason);
	if (x->address[0] != '\0')
		u->nsupp++;
	pthread_mutex_unlock(&u->mu);
}

int policy_usage_flush(struct policy_usage *u, struct store *st)
{
	struct usage_row *taken[USAGE_BUCKETS];
	struct store_usage *rows = NULL;
	struct store_suppression *supp;
	size_t nrows, nsupp, k = 0;
	char *err = NULL;
	int r;

	pthread_mutex_lock(&u->mu);
	memcpy(taken, u->buckets, sizeof taken);
	memset(u->buckets, 0, sizeof u->buckets);
	nrows = u->nrows;
	u->nrows = 0;
	supp = u->supp;
	nsupp = u->nsupp;
	u->supp = NULL;
	u->nsupp = u->supp_cap = 0;
	pthread_mutex_unlock(&u->mu);

	if (nrows == 0 && nsupp == 0) {
		free(supp);
		return 0;
	}
	if (nrows > 0 && (rows = calloc(nrows, sizeof *rows)) == NULL) {
		r = -1;
		goto put_back;
	}
	for (size_t i = 0; i < USAGE_BUCKETS; i++)
		for (struct usage_row *x = taken[i]; x && k < nrows; x = x->next)
			rows[k++] = x->u;
	r = store_usage_add(st, rows, k, supp, nsupp, &err);
	if (r == 0) {
		for (size_t i = 0; i < nsupp; i++)
			log_info("suppression added tenant_id=%lld address=<%s> source=bounce",
			         (long long)supp[i].tenant_id, supp[i].address);
		log_debug("usage flushed rows=%zu suppressions=%zu", k, nsupp);
		usage_rows_free(taken);
		free(rows);
		free(supp);
		return 0;
	}
	log_err("usage not written (kept for the next flush) error=\"%s\"", err ? err : "?");
	free(err);
put_back:
	free(rows);
	pthread_mutex_lock(&u->mu);
	for (size_t i = 0; i < USAGE_BUCKETS; i++)
		for (struct usage_row *x = taken[i]; x; x = x->next)
			usage_add_locked(u, &x->u, x->u.count);
	for (size_t i = 0; i < nsupp; i++) {
		pthread_mutex_unlock(&u->mu);
		policy_usage_suppress(u, supp[i].tenant_id, supp[i].address, supp[i].reason,
		                      supp[i].created);
		pthread_mutex_lock(&u->mu);
	}
	pthread_mutex_unlock(&u->mu);
	usage_rows_free(taken);
	free(supp);
	return -1;
}
