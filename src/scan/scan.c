/*
 * Scan jobs and their verdict: a job asks every configured scanner at
 * once (scan_conn.c), waits for the last, then scan_decide() makes one
 * verdict of the answers, the log gets a line per scanner and one for the
 * verdict, the per-tenant and per-credential counts move, and the caller
 * is called back from the loop.  One context per event loop; nothing
 * here is shared between threads.
 */
#include "scan/scan_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

/* ---- names ------------------------------------------------------------------ */

const char *scan_outcome_name(enum scan_outcome o)
{
	static const char *names[SCAN_NOUTCOMES] = {
	    [SCAN_OUT_CLEAN] = "clean",           [SCAN_OUT_VIRUS] = "virus",
	    [SCAN_OUT_REJECT] = "reject",         [SCAN_OUT_SOFT_REJECT] = "soft-reject",
	    [SCAN_OUT_ADD_HEADER] = "add-header", [SCAN_OUT_REWRITE_SUBJECT] = "rewrite-subject",
	    [SCAN_OUT_GREYLIST] = "greylist",     [SCAN_OUT_FAILED] = "failed",
	    [SCAN_OUT_SKIPPED] = "skipped",
	};
	return (unsigned)o < SCAN_NOUTCOMES ? names[o] : "?";
}

const char *scan_action_name(enum scan_action a)
{
	static const char *names[SCAN_NACTIONS] = {
	    [SCAN_ACCEPT] = "accept",
	    [SCAN_HOLD] = "hold",
	    [SCAN_TEMPFAIL] = "tempfail",
	    [SCAN_REFUSE] = "refuse",
	};
	return (unsigned)a < SCAN_NACTIONS ? names[a] : "?";
}

const char *scan_scanner_name(enum scan_scanner s)
{
	return s == SCAN_CLAMD ? "clamd" : s == SCAN_RSPAMD ? "rspamd" : "?";
}

/* ---- the verdict (pure) ------------------------------------------------------ */

static enum scan_action from_config(enum config_scan_action a)
{
	return a == CONFIG_SCAN_REFUSE ? SCAN_REFUSE
	       : a == CONFIG_SCAN_HOLD ? SCAN_HOLD
	                               : SCAN_ACCEPT;
}

/* What one scanner's answer asks for, with the reply it would give. */
static enum scan_action one_action(const struct config_scan *cfg, enum scan_scanner who,
                                   const struct scan_result *r, struct scan_verdict *v)
{
	const char *sname = scan_scanner_name(who);
	enum config_scan_action ca = CONFIG_SCAN_ACCEPT;
	char extra[SCAN_TEXT_MAX + 4] = "";
	enum scan_action a;

	if (r->text[0] != '\0')
		snprintf(extra, sizeof extra, ": %s", r->text);
	v->code = 250;
	util_strlcpy(v->enhanced, "2.0.0", sizeof v->enhanced);
	v->text[0] = '\0';
	switch (r->outcome) {
	case SCAN_OUT_CLEAN:
		v->reason = "clean";
		return SCAN_ACCEPT;
	case SCAN_OUT_SKIPPED:
		v->reason = "skipped";
		return SCAN_ACCEPT;
	case SCAN_OUT_FAILED:
		v->reason = "scanner-failed";
		if (!cfg->fail_closed)
			return SCAN_ACCEPT;
		v->code = 451;
		util_strlcpy(v->enhanced, "4.3.0", sizeof v->enhanced);
		snprintf(v->text, sizeof v->text,
		         "Content scanner unavailable (%s), try again later", sname);
		return SCAN_TEMPFAIL;
	case SCAN_OUT_SOFT_REJECT:
		v->reason = "soft-reject";
		v->code = 451;
		util_strlcpy(v->enhanced, "4.7.1", sizeof v->enhanced);
		snprintf(v->text, sizeof v->text,
		         "Message deferred by the content filter (%s: soft reject)%.120s; "
		         "try again later",
		         sname, extra);
		return SCAN_TEMPFAIL;
	case SCAN_OUT_VIRUS:
		v->reason = "virus";
		ca = cfg->clamd_virus;
		snprintf(v->text, sizeof v->text, "Message refused: virus found (%s: %s)", sname,
		         r->name);
		break;
	case SCAN_OUT_REJECT:
	case SCAN_OUT_ADD_HEADER:
	case SCAN_OUT_REWRITE_SUBJECT:
	case SCAN_OUT_GREYLIST:
		ca = r->outcome == SCAN_OUT_REJECT            ? cfg->rspamd_reject
		     : r->outcome == SCAN_OUT_ADD_HEADER      ? cfg->rspamd_add_header
		     : r->outcome == SCAN_OUT_REWRITE_SUBJECT ? cfg->rspamd_rewrite_subject
		                                              : cfg->rspamd_greylist;
		v->reason = r->outcome == SCAN_OUT_REJECT ? "spam" : scan_outcome_name(r->outcome);
		snprintf(v->text, sizeof v->text,
		         "Message refused as spam (%s: %s, score %.2f/%.2f)%.120s", sname, r->name,
		         r->score, r->required, extra);
		break;
	case SCAN_NOUTCOMES:
		break;
	}
	a = from_config(ca);
	if (a == SCAN_REFUSE) {
		v->code = 550;
		util_strlcpy(v->enhanced, "5.7.1", sizeof v->enhanced);
	} else {
		v->text[0] = '\0';
	}
	return a;
}

void scan_decide(const struct config_scan *cfg, const int ran[SCAN_NSCANNERS],
                 const struct scan_result results[SCAN_NSCANNERS], struct scan_verdict *v_r)
{
	const char *accept_reason = NULL;

	memset(v_r, 0, sizeof *v_r);
	v_r->action = SCAN_ACCEPT;
	v_r->code = 250;
	util_strlcpy(v_r->enhanced, "2.0.0", sizeof v_r->enhanced);
	v_r->reason = "clean";
	v_r->by = -1;
	for (int i = 0; i < SCAN_NSCANNERS; i++) {
		struct scan_verdict one;
		enum scan_action a;

		v_r->ran[i] = ran[i];
		if (!ran[i])
			continue;
		v_r->results[i] = results[i];
		memset(&one, 0, sizeof one);
		a = one_action(cfg, (enum scan_scanner)i, &results[i], &one);
		if (a == SCAN_ACCEPT) {
			/* an accept worth naming: open failure first, then any
			 * verdict other than clean */
			if (results[i].outcome == SCAN_OUT_FAILED)
				accept_reason = "fail-open";
			else if (results[i].outcome != SCAN_OUT_CLEAN && accept_reason == NULL)
				accept_reason = one.reason;
			continue;
		}
		if (v_r->by >= 0 && a <= v_r->action)
			continue;
		v_r->action = a;
		v_r->code = one.code;
		memcpy(v_r->enhanced, one.enhanced, sizeof v_r->enhanced);
		memcpy(v_r->text, one.text, sizeof v_r->text);
		v_r->reason = one.reason;
		v_r->by = i;
	}
	if (v_r->action == SCAN_ACCEPT && accept_reason != NULL)
		v_r->reason = accept_reason;
}

/* ---- counts ------------------------------------------------------------------ */

struct scan_counts_entry {
	struct scan_counts_entry *next;
	int64_t tenant_id;
	int all;          /* the tenant's total */
	char *credential; /* "" without AUTH; NULL for the total */
	struct scan_counts c;
};

#define SCAN_COUNTS_BUCKETS 1021
#define SCAN_COUNTS_MAX 100000 /* entries; past it new credentials are not counted */

static size_t counts_hash(int64_t tenant_id, const char *cred)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)tenant_id;

	for (; cred && *cred; cred++)
		h = (h ^ (unsigned char)*cred) * 1099511628211ULL;
	return (size_t)(h % SCAN_COUNTS_BUCKETS);
}

static struct scan_counts_entry *counts_find(const struct scan *sc, int64_t tenant_id,
                                             const char *cred)
{
	struct scan_counts_entry *e;

	if (sc->counts == NULL)
		return NULL;
	for (e = sc->counts[counts_hash(tenant_id, cred)]; e; e = e->next)
		if (e->tenant_id == tenant_id && e->all == (cred == NULL) &&
		    (cred == NULL || strcmp(e->credential, cred) == 0))
			return e;
	return NULL;
}

static struct scan_counts_entry *counts_get(struct scan *sc, int64_t tenant_id, const char *cred)
{
	struct scan_counts_entry *e = counts_find(sc, tenant_id, cred);
	size_t b;

	if (e != NULL)
		return e;
	if (sc->ncounts >= SCAN_COUNTS_MAX)
		return NULL;
	if (sc->counts == NULL &&
	    (sc->counts = calloc(SCAN_COUNTS_BUCKETS, sizeof *sc->counts)) == NULL)
		return NULL;
	if ((e = calloc(1, sizeof *e)) == NULL)
		return NULL;
	e->tenant_id = tenant_id;
	e->all = cred == NULL;
	if (cred != NULL && (e->credential = strdup(cred)) == NULL) {
		free(e);
		return NULL;
	}
	b = counts_hash(tenant_id, cred);
	e->next = sc->counts[b];
	sc->counts[b] = e;
	sc->ncounts++;
	return e;
}

static void counts_add(struct scan *sc, int64_t tenant_id, const char *cred,
                       const struct scan_verdict *v)
{
	struct scan_counts_entry *es[2] = {counts_get(sc, tenant_id, NULL),
	                                   counts_get(sc, tenant_id, cred ? cred : "")};

	for (int k = 0; k < 2; k++) {
		if (es[k] == NULL)
			continue; /* out of memory or full: a count lost, not mail */
		es[k]->c.messages++;
		es[k]->c.action[v->action]++;
		for (int i = 0; i < SCAN_NSCANNERS; i++)
			if (v->ran[i])
				es[k]->c.outcome[v->results[i].outcome]++;
	}
}

int scan_counts_get(const struct scan *sc, int64_t tenant_id, const char *credential,
                    struct scan_counts *c_r)
{
	const struct scan_counts_entry *e = counts_find(sc, tenant_id, credential);

	memset(c_r, 0, sizeof *c_r);
	if (e == NULL)
		return 0;
	*c_r = e->c;
	return 1;
}

/* ---- context ------------------------------------------------------------------ */

int scan_configured(const struct config_scan *cfg)
{
	return cfg->clamd != NULL || cfg->rspamd != NULL;
}

struct scan *scan_new(struct event_base *base, const struct config_scan *cfg, char **err_r)
{
	struct scan *sc = calloc(1, sizeof *sc);
	const char *addr[SCAN_NSCANNERS] = {cfg->clamd, cfg->rspamd};

	*err_r = NULL;
	if (sc == NULL)
		return NULL;
	sc->base = base;
	sc->cfg = cfg;
	for (int i = 0; i < SCAN_NSCANNERS; i++) {
		const char *why = "?";
		if (addr[i] == NULL)
			continue;
		if (scan_endpoint_parse(addr[i], i == SCAN_RSPAMD, &sc->ep[i], &why) < 0) {
			struct buf b = BUF_INIT;
			buf_printf(&b, "scan_%s = %s: %s", scan_scanner_name((enum scan_scanner)i),
			           addr[i], why);
			*err_r = buf_export(&b, NULL);
			free(sc);
			return NULL;
		}
		sc->enabled[i] = 1;
	}
	return sc;
}

static void job_free(struct scan_job *job)
{
	struct scan *sc = job->sc;

	if (job->prev)
		job->prev->next = job->next;
	else if (sc->jobs == job)
		sc->jobs = job->next;
	if (job->next)
		job->next->prev = job->prev;
	for (int i = 0; i < SCAN_NSCANNERS; i++)
		scan_conn_clear(&job->conns[i]);
	if (job->done_ev)
		event_free(job->done_ev);
	free(job->user);
	free(job);
}

void scan_free(struct scan **scp)
{
	struct scan *sc = *scp;

	if (sc == NULL)
		return;
	while (sc->jobs)
		job_free(sc->jobs);
	for (size_t b = 0; sc->counts && b < SCAN_COUNTS_BUCKETS; b++)
		while (sc->counts[b]) {
			struct scan_counts_entry *e = sc->counts[b];
			sc->counts[b] = e->next;
			free(e->credential);
			free(e);
		}
	free(sc->counts);
	free(sc);
	*scp = NULL;
}

/* ---- jobs ---------------------------------------------------------------------- */

static void job_log(const struct scan_job *job, const struct scan_verdict *v)
{
	const struct config_scan *cfg = job->sc->cfg;

	for (int i = 0; i < SCAN_NSCANNERS; i++) {
		const struct scan_result *r = &v->results[i];
		const char *sname = scan_scanner_name((enum scan_scanner)i);

		if (!v->ran[i])
			continue;
		if (r->outcome == SCAN_OUT_FAILED)
			log_warn("session=%016llx queue=%s scan scanner=%s outcome=failed "
			         "reason=\"%s\" fail=%s elapsed_ms=%llu",
			         (unsigned long long)job->session, job->queue_id, sname, r->text,
			         cfg->fail_closed ? "closed" : "open",
			         (unsigned long long)r->elapsed_ms);
		else if (r->outcome == SCAN_OUT_SKIPPED)
			log_info("session=%016llx queue=%s scan scanner=%s outcome=skipped "
			         "reason=size size=%zu max=%llu",
			         (unsigned long long)job->session, job->queue_id, sname, job->len,
			         (unsigned long long)cfg->max_size);
		else if (i == SCAN_CLAMD)
			log_info("session=%016llx queue=%s scan scanner=%s outcome=%s%s%s%s "
			         "elapsed_ms=%llu",
			         (unsigned long long)job->session, job->queue_id, sname,
			         scan_outcome_name(r->outcome), r->name[0] ? " name=\"" : "",
			         r->name, r->name[0] ? "\"" : "",
			         (unsigned long long)r->elapsed_ms);
		else
			log_info("session=%016llx queue=%s scan scanner=%s outcome=%s score=%.2f "
			         "required=%.2f symbols=\"%s\" elapsed_ms=%llu",
			         (unsigned long long)job->session, job->queue_id, sname,
			         scan_outcome_name(r->outcome), r->score, r->required, r->symbols,
			         (unsigned long long)r->elapsed_ms);
	}
	log_info("session=%016llx queue=%s scan verdict=%s reason=%s by=%s",
	         (unsigned long long)job->session, job->queue_id, scan_action_name(v->action),
	         v->reason, v->by >= 0 ? scan_scanner_name((enum scan_scanner)v->by) : "none");
}

static void job_complete(evutil_socket_t fd, short what, void *arg)
{
	struct scan_job *job = arg;
	struct scan_result results[SCAN_NSCANNERS];
	struct scan_verdict v;
	scan_done_cb *cb = job->cb;
	void *ctx = job->cb_ctx;

	(void)fd;
	(void)what;
	for (int i = 0; i < SCAN_NSCANNERS; i++)
		results[i] = job->conns[i].result;
	scan_decide(job->sc->cfg, job->ran, results, &v);
	job_log(job, &v);
	counts_add(job->sc, job->tenant_id, job->user, &v);
	job_free(job);
	cb(ctx, &v);
}

void scan_job_conn_done(struct scan_conn *c)
{
	struct scan_job *job = c->job;

	if (job->pending > 0 && --job->pending == 0)
		event_active(job->done_ev, EV_TIMEOUT, 0);
}

int scan_start(struct scan *sc, const struct scan_request *rq, scan_done_cb *cb, void *ctx,
               struct scan_job **job_r)
{
	struct scan_job *job = calloc(1, sizeof *job);

	*job_r = NULL;
	if (job == NULL)
		return -1;
	job->sc = sc;
	job->session = rq->session;
	job->tenant_id = rq->tenant_id;
	job->len = rq->len;
	job->cb = cb;
	job->cb_ctx = ctx;
	util_strlcpy(job->queue_id, rq->queue_id ? rq->queue_id : "-", sizeof job->queue_id);
	for (int i = 0; i < SCAN_NSCANNERS; i++)
		job->conns[i].fd = -1;
	job->next = sc->jobs;
	if (sc->jobs)
		sc->jobs->prev = job;
	sc->jobs = job;
	if ((rq->user && (job->user = strdup(rq->user)) == NULL) ||
	    (job->done_ev = event_new(sc->base, -1, 0, job_complete, job)) == NULL)
		goto fail;
	for (int i = 0; i < SCAN_NSCANNERS; i++) {
		struct scan_conn *c = &job->conns[i];

		if (!sc->enabled[i])
			continue;
		job->ran[i] = 1;
		c->job = job;
		c->which = (enum scan_scanner)i;
		if (rq->len > sc->cfg->max_size) {
			c->result.outcome = SCAN_OUT_SKIPPED;
			c->done = 1;
			continue;
		}
		job->pending++;
		if (scan_conn_start(c, rq) < 0)
			goto fail;
	}
	if (job->pending == 0) /* nothing asked: still answer from the loop */
		event_active(job->done_ev, EV_TIMEOUT, 0);
	*job_r = job;
	return 0;
fail:
	job_free(job);
	return -1;
}

void scan_job_cancel(struct scan_job **job)
{
	if (*job == NULL)
		return;
	job_free(*job);
	*job = NULL;
}
