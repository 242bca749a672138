/*
 * What a delivery attempt decides, per recipient, and how it is kept:
 *   2xx        delivered: never sent again;
 *   5xx        failed: a DSN to the envelope sender (none for <>);
 *   4xx, fault deferred: next attempt per the retry schedule, until the
 *              message is older than max_queue_lifetime, then failed.
 *
 * The engine's view changes at once; the spool learns through
 * spool_set_rcpt_state_async(), in the group commit.  A crash before that
 * commit repeats the attempt: a recipient may get a message twice, never
 * zero times.  A failed recipient's state is written only once its DSN is
 * durable, so a crash can repeat a bounce but never lose one.
 */
#include "deliver/deliver_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A DSN on its way to the disk, with the failures it reports. */
struct dl_durable {
	struct dl_durable *next;
	struct deliver_engine *e;
	char id[SPOOL_ID_LEN + 1];     /* the original message */
	char dsn_id[SPOOL_ID_LEN + 1]; /* "" when there is no DSN */
	int status;
	size_t n;
	size_t *idx;
	struct spool_rcpt *states;
	char *expired; /* per failed recipient: 1 ran out of time (4.4.7) */
};

static void dl_durable_free(struct dl_durable *x)
{
	for (size_t i = 0; i < x->n; i++)
		free(x->states[i].last_reply);
	free(x->states);
	free(x->idx);
	free(x->expired);
	free(x);
}

static void dl_state_written(void *ctx, int status, const char *id)
{
	(void)ctx;
	if (status < 0)
		log_err("queue=%s deliver state not saved error=\"%s\" (the attempt repeats after "
			"a restart)",
			id, strerror(-status));
}

static void dl_state_save(struct deliver_engine *e, const char *id, size_t idx,
			  const struct dl_rcpt *r)
{
	struct spool_rcpt st = {.addr = r->addr, .state = r->state, .attempts = r->attempts,
				.next_attempt = r->next_attempt, .last_reply = r->last_reply};

	if (spool_set_rcpt_state_async(e->spool, id, idx, &st, dl_state_written, NULL) < 0 &&
	    errno != ENOENT)
		log_err("queue=%s deliver state not saved error=\"%s\"", id, strerror(errno));
}

/* writer thread: the DSN is durable (or not); finish on the loop */
static void dl_durable_post(struct deliver_engine *e, struct dl_durable *x, int status)
{
	x->status = status;
	pthread_mutex_lock(&e->mu);
	x->next = e->durable;
	e->durable = x;
	pthread_mutex_unlock(&e->mu);
	dl_engine_wake(e);
}

static void dl_dsn_written(void *ctx, int status, const char *id)
{
	struct dl_durable *x = ctx;

	(void)id;
	dl_durable_post(x->e, x, status);
}

void dl_outcome_durable_run(struct deliver_engine *e)
{
	struct dl_durable *list;

	pthread_mutex_lock(&e->mu);
	list = e->durable;
	e->durable = NULL;
	pthread_mutex_unlock(&e->mu);
	while (list) {
		struct dl_durable *x = list;
		struct dl_msg *m = dl_msg_find(e, x->id);
		list = x->next;
		if (x->status < 0) {
			/* no DSN on disk: the recipients stay pending and fail
			 * again at their next attempt */
			log_err("queue=%s dsn not queued error=\"%s\"; recipients stay queued", x->id,
				strerror(-x->status));
			if (m != NULL) {
				for (size_t i = 0; i < x->n; i++) {
					struct dl_rcpt *r = &m->rcpts[x->idx[i]];
					r->state = SPOOL_RCPT_PENDING;
					r->next_attempt = util_wall_seconds() + 300;
				}
			}
		} else {
			for (size_t i = 0; i < x->n; i++) {
				if (spool_set_rcpt_state_async(e->spool, x->id, x->idx[i], &x->states[i],
							       dl_state_written, NULL) < 0 &&
				    errno != ENOENT)
					log_err("queue=%s deliver state not saved error=\"%s\"", x->id,
						strerror(errno));
			}
			if (x->dsn_id[0] != '\0' && !e->stopping) {
				log_info("queue=%s dsn=%s queued", x->id, x->dsn_id);
				/* deliver the DSN like any message */
				deliver_engine_notify(e, x->dsn_id);
			}
		}
		if (m != NULL) {
			m->busy--;
			if (x->status < 0)
				dl_msg_schedule(e, m, 0);
			dl_msg_release(e, m);
		}
		dl_durable_free(x);
	}
}

/* Queue a DSN for the failed recipients x describes (their replies in
 * x->states), then their states.  Takes x.  -1: nothing queued. */
static int dl_dsn_queue(struct deliver_engine *e, struct dl_msg *m, const char *data, size_t len,
			const char *remote, struct dl_durable *x)
{
	struct deliver_dsn_rcpt *fr = calloc(x->n, sizeof *fr);
	struct deliver_dsn d;
	struct spool_message dm;
	const char *rcpt;
	char *bytes = NULL, *err = NULL;
	size_t blen = 0;
	int r = -1;

	if (fr == NULL)
		return -1;
	for (size_t i = 0; i < x->n; i++) {
		fr[i].addr = m->rcpts[x->idx[i]].addr;
		fr[i].reply = x->states[i].last_reply;
		fr[i].remote_mta = remote;
		fr[i].last_attempt = util_wall_seconds();
		if (x->expired[i])
			fr[i].status = "4.4.7";
	}
	memset(&d, 0, sizeof d);
	d.reporting_mta = e->cfg->hostname;
	d.original = data;
	d.original_len = len;
	d.original_sender = m->sender;
	d.queue_id = m->id;
	d.arrival = m->received;
	d.rcpts = fr;
	d.nrcpts = x->n;
	if (deliver_dsn_build(&d, &bytes, &blen, &err) != 0) {
		log_err("queue=%s dsn not built error=\"%s\"", m->id, err ? err : "?");
		free(err);
		free(fr);
		return -1;
	}
	memset(&dm, 0, sizeof dm);
	dm.flags = deliver_dsn_flags(&d);
	free(fr);
	spool_new_id(e->spool, dm.id);
	dm.tenant_id = m->tenant_id;
	dm.received = util_wall_seconds();
	dm.sender = "";
	rcpt = m->sender;
	{
		struct spool_rcpt sr = {.addr = (char *)rcpt, .state = SPOOL_RCPT_PENDING};
		dm.rcpts = &sr;
		dm.nrcpts = 1;
		dm.data = bytes;
		dm.len = blen;
		memcpy(x->dsn_id, dm.id, sizeof x->dsn_id);
		r = spool_submit(e->spool, &dm, dl_dsn_written, x);
	}
	free(bytes);
	return r;
}

static void dl_reply_text(char *out, size_t size, const struct smtp_client_reply *rep)
{
	snprintf(out, size, "%d %s%s%s", rep->code, rep->enhanced, rep->enhanced[0] ? " " : "",
		 rep->text);
}

void deliver_engine_set_outcome_hook(struct deliver_engine *e, deliver_outcome_fn *fn, void *ctx)
{
	pthread_mutex_lock(&e->mu);
	e->outcome_fn = fn;
	e->outcome_ctx = ctx;
	pthread_mutex_unlock(&e->mu);
}

/* Tell the hook (if any) what became of recipient r. */
static void dl_report(struct deliver_engine *e, const struct dl_msg *m, const struct dl_rcpt *r,
		      const struct smtp_client_reply *rep, int expired)
{
	struct deliver_outcome_info o;
	deliver_outcome_fn *fn;
	void *ctx;

	pthread_mutex_lock(&e->mu);
	fn = e->outcome_fn;
	ctx = e->outcome_ctx;
	pthread_mutex_unlock(&e->mu);
	if (fn == NULL)
		return;
	o = (struct deliver_outcome_info){
	    .tenant_id = m->tenant_id,
	    .credential_id = m->credential_id,
	    .sender = m->sender,
	    .rcpt = r->addr,
	    .outcome = r->state == SPOOL_RCPT_DELIVERED ? DELIVER_DELIVERED
		       : r->state == SPOOL_RCPT_FAILED  ? DELIVER_FAILED
							: DELIVER_DEFERRED,
	    .code = rep->code,
	    .enhanced = rep->enhanced,
	    .reply = r->last_reply ? r->last_reply : "",
	    .expired = expired,
	    .local = rep->local,
	};
	fn(ctx, &o);
}

static void dl_count(struct deliver_engine *e, int delivered, int deferred, int failed)
{
	pthread_mutex_lock(&e->mu);
	e->stats.delivered += (uint64_t)delivered;
	e->stats.deferred += (uint64_t)deferred;
	e->stats.bounced += (uint64_t)failed;
	pthread_mutex_unlock(&e->mu);
}

/* Apply one outcome per recipient of j: replies[i * stride] decides
 * j->sj->rcpts[i].  Takes j. */
void dl_outcome(struct deliver_engine *e, struct dl_job *j,
		const struct smtp_client_reply *replies, size_t stride, const char *remote)
{
	struct dl_msg *m = j->m;
	struct sched_job *sj = j->sj;
	int64_t now_ms = dl_now_ms();
	size_t n = sj->nrcpts, ndefer = 0;
	size_t *idx = calloc(n ? n : 1, sizeof *idx);
	char *verdict = calloc(n ? n : 1, 1); /* 'd' delivered, 'f' failed, 't' deferred */
	struct dl_durable *x = calloc(1, sizeof *x);
	int delivered = 0, deferred = 0;
	char text[DL_REPLY_MAX];

	if (x != NULL) {
		x->e = e;
		memcpy(x->id, m->id, sizeof x->id);
		x->idx = calloc(n ? n : 1, sizeof *x->idx);
		x->states = calloc(n ? n : 1, sizeof *x->states);
		x->expired = calloc(n ? n : 1, 1);
		if (x->idx == NULL || x->states == NULL || x->expired == NULL) {
			dl_durable_free(x);
			x = NULL;
		}
	}
	if (idx == NULL || verdict == NULL) {
		/* out of memory: nothing is recorded, the job comes back */
		free(idx);
		free(verdict);
		if (x)
			dl_durable_free(x);
		for (size_t i = 0; i < n; i++)
			m->rcpts[sj->rcpts[i]].busy = 0;
		if (!j->own_sj)
			sched_job_postpone(e->sched, &j->sj, now_ms + 60000);
		m->busy--;
		dl_job_free(j);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct smtp_client_reply *rep = &replies[i * stride];
		struct dl_rcpt *r = &m->rcpts[sj->rcpts[i]];

		idx[i] = sj->rcpts[i];
		r->busy = 0;
		r->attempts++;
		dl_reply_text(text, sizeof text, rep);
		free(r->last_reply);
		r->last_reply = strdup(text);
		if (rep->code >= 200 && rep->code < 300)
			verdict[i] = 'd';
		else if (rep->code >= 500 && x != NULL)
			verdict[i] = 'f';
		else
			verdict[i] = 't';
	}
	/* the deferred ones go back to the scheduler, or expire */
	for (size_t i = 0; i < n; i++)
		if (verdict[i] == 't')
			sj->rcpts[ndefer++] = idx[i];
	if (j->own_sj) {
		/* an operator's bounce: nothing is deferred */
	} else if (ndefer == 0) {
		sched_job_done(e->sched, &j->sj);
	} else {
		int64_t next_ms = 0;
		sj->nrcpts = ndefer;
		if (sched_job_defer(e->sched, &j->sj, now_ms, &next_ms) == SCHED_DEFER_EXPIRED) {
			sched_job_done(e->sched, &j->sj);
			for (size_t i = 0; i < n; i++)
				if (verdict[i] == 't')
					verdict[i] = x != NULL ? 'x' : 't';
		}
		for (size_t i = 0; i < n; i++)
			if (verdict[i] == 't')
				m->rcpts[idx[i]].next_attempt = next_ms / 1000;
	}
	j->sj = NULL;
	for (size_t i = 0; i < n; i++) {
		struct dl_rcpt *r = &m->rcpts[idx[i]];
		const char *status;

		if (verdict[i] == 'x' && r->last_reply) {
			/* RFC 3464: a recipient that only ever got temporary
			 * failures and ran out of time: 4.4.7 */
			char exp[DL_REPLY_MAX];
			snprintf(exp, sizeof exp, "%s (gave up after %u attempts: message expired, "
				 "4.4.7)", r->last_reply, r->attempts);
			free(r->last_reply);
			r->last_reply = strdup(exp);
		}
		switch (verdict[i]) {
		case 'd':
			r->state = SPOOL_RCPT_DELIVERED;
			status = "sent";
			delivered++;
			break;
		case 'f':
		case 'x':
			r->state = SPOOL_RCPT_FAILED;
			status = verdict[i] == 'x' ? "expired" : "bounced";
			break;
		default:
			r->state = SPOOL_RCPT_PENDING;
			status = "deferred";
			deferred++;
			break;
		}
		log_info("queue=%s deliver to=<%s> relay=%s status=%s attempts=%u reply=\"%s\"", m->id,
			 r->addr, remote ? remote : "none", status, r->attempts,
			 r->last_reply ? r->last_reply : "");
		dl_report(e, m, r, &replies[i * stride], verdict[i] == 'x');
		if (r->state == SPOOL_RCPT_FAILED) {
			x->expired[x->n] = verdict[i] == 'x';
			x->idx[x->n] = idx[i];
			x->states[x->n] = (struct spool_rcpt){
				.addr = r->addr, .state = SPOOL_RCPT_FAILED, .attempts = r->attempts,
				.last_reply = r->last_reply ? strdup(r->last_reply) : NULL};
			x->n++;
		} else {
			dl_state_save(e, m->id, idx[i], r);
		}
	}
	free(idx);
	free(verdict);
	dl_count(e, delivered, deferred, x ? (int)x->n : 0);
	if (x != NULL && x->n > 0) {
		/* the DSN first; the failures once it is durable */
		m->busy++;
		if (m->sender[0] == '\0') {
			log_info("queue=%s no dsn for the null sender", m->id);
			dl_durable_post(e, x, 0);
		} else if (dl_dsn_queue(e, m, j->data, j->len, remote, x) < 0) {
			dl_durable_post(e, x, -EIO);
		}
	} else if (x != NULL) {
		dl_durable_free(x);
	}
	m->busy--;
	dl_job_free(j);
	dl_msg_release(e, m);
}

int dl_outcome_bounce(struct deliver_engine *e, struct dl_msg *m, const char *enhanced,
		      const char *text)
{
	struct dl_job *j = calloc(1, sizeof *j);
	struct sched_job *sj = calloc(1, sizeof *sj);
	struct spool_message sm;
	struct smtp_client_reply f = {.code = 550, .local = 1};

	if (j == NULL || sj == NULL || (sj->rcpts = calloc(m->nrcpts, sizeof *sj->rcpts)) == NULL)
		goto fail;
	j->m = m;
	j->sj = sj;
	j->own_sj = 1;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == SPOOL_RCPT_PENDING && !m->rcpts[i].busy)
			sj->rcpts[sj->nrcpts++] = i;
	if (sj->nrcpts == 0 || spool_load(e->spool, m->id, &sm) != 0)
		goto fail;
	j->data = sm.data;
	j->len = sm.len;
	sm.data = NULL;
	spool_message_free(&sm);
	util_strlcpy(f.enhanced, enhanced, sizeof f.enhanced);
	util_strlcpy(f.text, text, sizeof f.text);
	m->busy++;
	for (size_t i = 0; i < sj->nrcpts; i++)
		m->rcpts[sj->rcpts[i]].busy = 1;
	dl_outcome(e, j, &f, 0, NULL);
	free(sj->rcpts);
	free(sj);
	return 0;
fail:
	if (sj)
		free(sj->rcpts);
	free(sj);
	dl_job_free(j);
	return -1;
}
