/*
 * signer: the daemon's DKIM keys and signing threads (see signer.h).
 *
 * Keys come from the store as PEM and are kept parsed (OpenSSL
 * EVP_PKEYs), sorted by domain, in a snapshot with a reference count: the
 * current one is the signer's, and each queued job holds one, so a reload
 * swaps the pointer and the old keys go when their last job is done.  A
 * key that does not parse is skipped with a log line, so one bad row
 * never stops signing for the others.
 */
#include "cmd/signer.h"
#include "message/message.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIGNER_KEYS_PER_DOMAIN 2 /* one per algorithm */
#define SIGNER_THREADS_MAX 64
#define SIGNER_USED_MAX (SIGNER_KEYS_PER_DOMAIN * (STORE_SELECTOR_MAX + 1))

struct signer_domain {
	char domain[STORE_DOMAIN_MAX + 1];
	struct {
		char selector[STORE_SELECTOR_MAX + 1];
		struct dkim_key *key;
	} k[SIGNER_KEYS_PER_DOMAIN]; /* [alg]; key NULL: none */
};

struct signer_keys {
	int refs; /* __atomic */
	struct signer_domain *domains;
	size_t n;
};

struct signer_job {
	struct signer_job *next;
	struct signer_keys *keys; /* a reference */
	char domain[STORE_DOMAIN_MAX + 1];
	struct spool *spool;
	struct spool_message m; /* copies; data is msg's */
	struct buf msg;
	spool_done_cb *cb;
	void *ctx;
};

struct signer {
	struct signer_keys *keys; /* current; NULL before the first load */
	int64_t generation;       /* the store's: anything changed */
	uint64_t version;         /* the keys': they changed */

	pthread_mutex_t lock;
	pthread_cond_t more;
	struct signer_job *head, **tail;
	int stopping;
	pthread_t threads[SIGNER_THREADS_MAX];
	size_t nthreads;
	uint64_t made[SIGNER_KEYS_PER_DOMAIN], failed; /* __atomic: signer_stats() */
};

/* ---- key snapshots ----------------------------------------------------------- */

static void signer_keys_unref(struct signer_keys *k)
{
	if (k == NULL || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < k->n; i++)
		for (size_t a = 0; a < SIGNER_KEYS_PER_DOMAIN; a++)
			dkim_key_free(&k->domains[i].k[a].key);
	free(k->domains);
	free(k);
}

static struct signer_keys *signer_keys_ref(struct signer_keys *k)
{
	__atomic_add_fetch(&k->refs, 1, __ATOMIC_RELAXED);
	return k;
}

static int signer_cmp(const void *a, const void *b)
{
	return strcmp(((const struct signer_domain *)a)->domain,
	              ((const struct signer_domain *)b)->domain);
}

static struct signer_domain *signer_find(const struct signer_keys *k, const char *domain)
{
	struct signer_domain want;

	if (k == NULL ||
	    util_strlcpy(want.domain, domain, sizeof want.domain) >= sizeof want.domain)
		return NULL;
	return bsearch(&want, k->domains, k->n, sizeof *k->domains, signer_cmp);
}

int signer_refresh(struct signer *s, struct store *st)
{
	struct store_dkim_key *rows = NULL;
	struct signer_keys *keys;
	size_t n = 0, k = 0, nkeys = 0;
	char *err = NULL;
	int64_t gen = store_generation(st);
	uint64_t version = 0;

	if (s->keys != NULL && gen == s->generation)
		return 0;
	/* most store changes (usage, tenants) leave the keys alone: parse
	 * them again only when their table changed */
	if (store_dkim_version(st, &version, &err) < 0) {
		log_err("dkim keys version failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	if (s->keys != NULL && version == s->version) {
		s->generation = gen;
		return 0;
	}
	if (store_dkim_list(st, NULL, &rows, &n, &err) != 0) {
		log_err("dkim keys reload failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	keys = calloc(1, sizeof *keys);
	if (keys != NULL && (keys->domains = calloc(n ? n : 1, sizeof *keys->domains)) == NULL) {
		free(keys);
		keys = NULL;
	}
	if (keys == NULL) {
		util_wipe(rows, n * sizeof *rows);
		free(rows);
		return -1;
	}
	keys->refs = 1;
	/* rows are ordered by domain, then id: a later active key of the
	 * same algorithm (mid-rotation) replaces an earlier one */
	for (size_t i = 0; i < n; i++) {
		const struct store_dkim_key *r = &rows[i];
		struct signer_domain *d;
		struct dkim_key *key = NULL;
		const char *why = NULL;
		int alg = r->alg == STORE_DKIM_ED25519 ? 1 : 0;

		if (k == 0 || strcmp(keys->domains[k - 1].domain, r->domain) != 0)
			util_strlcpy(keys->domains[k++].domain, r->domain,
			             sizeof keys->domains[0].domain);
		d = &keys->domains[k - 1];
		if (dkim_key_from_pem(r->pem, strlen(r->pem), &key, &why) < 0) {
			log_warn("dkim key skipped domain=%s selector=%s reason=\"%s\"", r->domain,
			         r->selector, why);
			continue;
		}
		dkim_key_free(&d->k[alg].key);
		d->k[alg].key = key;
		util_strlcpy(d->k[alg].selector, r->selector, sizeof d->k[0].selector);
		nkeys++;
	}
	util_wipe(rows, n * sizeof *rows);
	free(rows);
	keys->n = k;
	qsort(keys->domains, k, sizeof *keys->domains, signer_cmp);
	signer_keys_unref(s->keys);
	s->keys = keys;
	s->generation = gen;
	s->version = version;
	log_info("dkim keys loaded domains=%zu keys=%zu", k, nkeys);
	return 0;
}

int signer_has_keys(const struct signer *s, const char *domain)
{
	const struct signer_domain *d = signer_find(s->keys, domain);

	return d != NULL && (d->k[0].key != NULL || d->k[1].key != NULL);
}

/* Every key of domain in keys: signatures appended to out, selectors to
 * used.  Count, or -1 with *why_r (out unchanged). */
static int signer_sign_keys(const struct signer_keys *keys, const char *domain, const char *msg,
                            size_t len, int64_t now, struct buf *out, char used[SIGNER_USED_MAX],
                            const char **why_r)
{
	const struct signer_domain *d = signer_find(keys, domain);
	size_t orig = out->len;
	int count = 0;

	used[0] = '\0';
	if (d == NULL)
		return 0;
	for (size_t a = 0; a < SIGNER_KEYS_PER_DOMAIN; a++) {
		struct dkim_sign_params p = {
		    .domain = d->domain,
		    .selector = d->k[a].selector,
		    .timestamp = now,
		};
		size_t ulen = strlen(used);

		if (d->k[a].key == NULL)
			continue;
		if (dkim_sign(d->k[a].key, &p, msg, len, out, why_r) < 0) {
			out->len = orig;
			if (out->data != NULL)
				out->data[orig] = '\0';
			return -1;
		}
		snprintf(used + ulen, SIGNER_USED_MAX - ulen, "%s%s", ulen ? "," : "",
		         d->k[a].selector);
		count++;
	}
	return count;
}

int signer_sign_now(struct signer *s, const char *domain, const char *msg, size_t len, int64_t now,
                    struct buf *sigs_out, const char **why_r)
{
	char used[SIGNER_USED_MAX];

	return signer_sign_keys(s->keys, domain, msg, len, now, sigs_out, used, why_r);
}

/* ---- the pool -------------------------------------------------------------------- */

static void signer_job_free(struct signer_job *j)
{
	for (size_t i = 0; i < j->m.nrcpts; i++)
		free(j->m.rcpts[i].addr);
	free(j->m.rcpts);
	free(j->m.sender);
	buf_free(&j->msg);
	signer_keys_unref(j->keys);
	free(j);
}

/* j was signed with every key of its domain (signer_sign_keys() signs
 * with all or none): count them. */
static void signer_count(struct signer *s, const struct signer_job *j)
{
	const struct signer_domain *d = signer_find(j->keys, j->domain);

	for (size_t a = 0; d != NULL && a < SIGNER_KEYS_PER_DOMAIN; a++)
		if (d->k[a].key != NULL)
			__atomic_add_fetch(&s->made[a], 1, __ATOMIC_RELAXED);
}

void signer_stats(struct signer *s, struct signer_stats *r)
{
	r->rsa = __atomic_load_n(&s->made[0], __ATOMIC_RELAXED);
	r->ed25519 = __atomic_load_n(&s->made[1], __ATOMIC_RELAXED);
	r->failed = __atomic_load_n(&s->failed, __ATOMIC_RELAXED);
}

/* On a pool thread: sign (or not), put the signatures on top, spool. */
static void signer_job_run(struct signer *s, struct signer_job *j)
{
	struct buf out = BUF_INIT;
	const char *why = "?";
	char used[SIGNER_USED_MAX];
	int n;

	n = signer_sign_keys(j->keys, j->domain, j->msg.data, j->msg.len, util_wall_seconds(), &out,
	                     used, &why);
	if (n > 0 && buf_append(&out, j->msg.data, j->msg.len) == 0) {
		log_info("queue=%s dkim=signed domain=%s selectors=%s", j->m.id, j->domain, used);
		signer_count(s, j);
		buf_free(&j->msg);
		j->msg = out;
	} else {
		if (n == 0) {
			log_info("queue=%s dkim=none domain=%s reason=no-keys", j->m.id, j->domain);
		} else {
			log_warn("queue=%s dkim=failed domain=%s reason=\"%s\"", j->m.id, j->domain,
			         n < 0 ? why : "out of memory");
			__atomic_add_fetch(&s->failed, 1, __ATOMIC_RELAXED);
		}
		buf_free(&out);
	}
	j->m.data = j->msg.data;
	j->m.len = j->msg.len;
	if (spool_submit(j->spool, &j->m, j->cb, j->ctx) < 0) {
		log_err("queue=%s spool refused the signed message", j->m.id);
		j->cb(j->ctx, -EIO, j->m.id);
	}
	signer_job_free(j);
}

static void *signer_thread(void *arg)
{
	struct signer *s = arg;

	for (;;) {
		struct signer_job *j;

		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->more, &s->lock);
		j = s->head;
		if (j != NULL) {
			s->head = j->next;
			if (s->head == NULL)
				s->tail = &s->head;
		}
		pthread_mutex_unlock(&s->lock);
		if (j == NULL)
			return NULL; /* stopping, queue drained */
		signer_job_run(s, j);
	}
}

struct signer *signer_new(unsigned threads)
{
	struct signer *s = calloc(1, sizeof *s);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (s == NULL)
		return NULL;
	if (threads == 0)
		threads = cpus > 0 ? (unsigned)cpus : 1;
	if (threads > SIGNER_THREADS_MAX)
		threads = SIGNER_THREADS_MAX;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->more, NULL);
	s->tail = &s->head;
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&s->threads[i], NULL, signer_thread, s) != 0) {
			signer_free(&s);
			return NULL;
		}
		s->nthreads++;
	}
	return s;
}

void signer_stop(struct signer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->more);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	s->nthreads = 0;
}

void signer_free(struct signer **sp)
{
	struct signer *s = *sp;

	if (s == NULL)
		return;
	signer_stop(s);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->more);
	signer_keys_unref(s->keys);
	free(s);
	*sp = NULL;
}

int signer_submit(struct signer *s, const char *domain, struct spool *spool,
                  const struct spool_message *m, struct buf *msg, spool_done_cb *cb, void *ctx)
{
	struct signer_job *j;

	if (s->keys == NULL || s->stopping || (j = calloc(1, sizeof *j)) == NULL)
		return -1;
	if (util_strlcpy(j->domain, domain, sizeof j->domain) >= sizeof j->domain)
		goto fail;
	j->m = *m;
	j->m.rcpts = NULL;
	j->m.nrcpts = 0;
	j->m.data = NULL;
	j->m.len = 0;
	if ((j->m.sender = strdup(m->sender)) == NULL ||
	    (j->m.rcpts = calloc(m->nrcpts ? m->nrcpts : 1, sizeof *j->m.rcpts)) == NULL)
		goto fail;
	for (size_t i = 0; i < m->nrcpts; i++) {
		j->m.rcpts[i] = m->rcpts[i];
		j->m.rcpts[i].last_reply = NULL;
		if ((j->m.rcpts[i].addr = strdup(m->rcpts[i].addr)) == NULL)
			goto fail;
		j->m.nrcpts++;
	}
	j->keys = signer_keys_ref(s->keys);
	j->spool = spool;
	j->cb = cb;
	j->ctx = ctx;
	j->msg = *msg; /* taken */
	*msg = (struct buf)BUF_INIT;
	pthread_mutex_lock(&s->lock);
	*s->tail = j;
	s->tail = &j->next;
	pthread_cond_signal(&s->more);
	pthread_mutex_unlock(&s->lock);
	return 0;
fail:
	j->msg = (struct buf)BUF_INIT; /* not taken */
	signer_job_free(j);
	return -1;
}
