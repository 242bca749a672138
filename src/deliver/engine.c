/*
 * The delivery engine: its own thread and event loop, fed by the spool.
 *
 * At start it loads every queued message's envelope and recipient states
 * from the spool (bodies stay on disk).  A message made durable later is
 * announced by deliver_engine_notify().  Each message's pending recipients
 * are grouped by destination (a recipient domain's MX, or a configured
 * route) into jobs; a job waits in the timer queue until its recipients'
 * next attempt, then in its destination's ready list until a connection
 * takes it.  A destination opens connections up to its limits; an open
 * connection takes the next ready job of its destination before it quits,
 * so a busy destination reuses its connections.
 *
 * The CLI's queue commands (retry, hold, release, bounce, delete) come
 * through deliver_engine_command(), from the daemon's main thread, and are
 * carried out here so the engine's view and the spool never disagree.
 */
#include "deliver/deliver_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DL_BUCKETS 4096
/* Messages read when queued are kept for their first job up to these
 * sizes; past them the job reads the spool file again. */
#define DL_KEEP_MSG_MAX (1u << 20)
#define DL_KEEP_TOTAL_MAX (64u << 20)

static uint64_t dl_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211ULL;
	}
	return h;
}

/* ---- messages ------------------------------------------------------------ */

struct dl_msg *dl_msg_find(struct deliver_engine *e, const char *id)
{
	struct dl_msg *m = e->msgs[dl_hash(id) % e->nbuckets];

	while (m && strcmp(m->id, id) != 0)
		m = m->hnext;
	return m;
}

static void dl_msg_unlink(struct deliver_engine *e, struct dl_msg *m)
{
	struct dl_msg **pp = &e->msgs[dl_hash(m->id) % e->nbuckets];

	while (*pp && *pp != m)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = m->hnext;
		e->nmsgs--;
	}
}

static void dl_msg_free(struct dl_msg *m)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].last_reply);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->data);
	free(m);
}

void dl_msg_take_data(struct deliver_engine *e, struct dl_msg *m, char **data_r, size_t *len_r)
{
	*data_r = m->data;
	*len_r = m->len;
	if (m->data != NULL)
		e->cached_bytes -= m->len;
	m->data = NULL;
	m->len = 0;
}

/* Drop the message when nothing is pending and no job holds it. */
void dl_msg_release(struct deliver_engine *e, struct dl_msg *m)
{
	int pending = 0;

	if (m->busy > 0)
		return;
	for (size_t i = 0; i < m->nrcpts && !pending; i++)
		pending = m->rcpts[i].state == SPOOL_RCPT_PENDING;
	if (pending && !m->gone)
		return;
	dl_msg_unlink(e, m);
	if (m->data != NULL)
		e->cached_bytes -= m->len;
	dl_msg_free(m);
}

/* Know the message and queue its pending recipients; sm->data, when
 * set and small enough, is kept for the first job (and sm->data set to
 * NULL).  0 ok (or known already), -1 out of memory. */
static int dl_msg_add(struct deliver_engine *e, struct spool_message *sm)
{
	struct dl_msg *m;
	size_t b;

	if (dl_msg_find(e, sm->id) != NULL)
		return 0; /* announced twice (recovery and notify) */
	if ((m = calloc(1, sizeof *m)) == NULL)
		return -1;
	memcpy(m->id, sm->id, sizeof m->id);
	m->tenant_id = sm->tenant_id;
	m->credential_id = sm->credential_id;
	m->received = sm->received;
	m->flags = sm->flags;
	m->held = (sm->flags & SPOOL_MSG_HELD) != 0;
	m->sender = strdup(sm->sender ? sm->sender : "");
	m->rcpts = calloc(sm->nrcpts, sizeof *m->rcpts);
	if (m->sender == NULL || m->rcpts == NULL)
		goto fail;
	m->nrcpts = sm->nrcpts;
	for (size_t i = 0; i < sm->nrcpts; i++) {
		struct dl_rcpt *r = &m->rcpts[i];
		r->addr = strdup(sm->rcpts[i].addr);
		if (r->addr == NULL)
			goto fail;
		r->state = sm->rcpts[i].state;
		r->attempts = sm->rcpts[i].attempts;
		r->next_attempt = sm->rcpts[i].next_attempt;
		if (sm->rcpts[i].last_reply && (r->last_reply = strdup(sm->rcpts[i].last_reply)) == NULL)
			goto fail;
	}
	b = dl_hash(m->id) % e->nbuckets;
	m->hnext = e->msgs[b];
	e->msgs[b] = m;
	e->nmsgs++;
	if (sm->data != NULL && sm->len <= DL_KEEP_MSG_MAX &&
	    e->cached_bytes + sm->len <= DL_KEEP_TOTAL_MAX) {
		m->data = sm->data;
		m->len = sm->len;
		e->cached_bytes += sm->len;
		sm->data = NULL;
		sm->len = 0;
	}
	dl_msg_schedule(e, m, 0);
	return 0;
fail:
	dl_msg_free(m);
	return -1;
}

/* ---- the scheduler ------------------------------------------------------- */

void dl_reply_set(struct smtp_client_reply *r, int code, const char *enhanced, const char *fmt,
		  ...)
{
	va_list ap;

	memset(r, 0, sizeof *r);
	r->code = code;
	util_strlcpy(r->enhanced, enhanced, sizeof r->enhanced);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof r->text, fmt, ap);
	va_end(ap);
	r->local = 1;
}

int64_t dl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The destination key of a recipient: "route:NAME" or its domain. */
static int dl_dest_key(void *ctx, const char *addr, char *key, size_t size)
{
	struct deliver_engine *e = ctx;
	const char *at = strrchr(addr, '@');
	const struct config_route *r;

	if (at == NULL || at[1] == '\0')
		return -1;
	r = config_route_find(e->dc, at + 1);
	if (r != NULL) {
		if ((size_t)snprintf(key, size, "route:%s", r->name) >= size)
			return -1;
		return 0;
	}
	if (util_strlcpy(key, at + 1, size) >= size)
		return -1;
	for (char *c = key; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return 0;
}

void dl_msg_schedule(struct deliver_engine *e, struct dl_msg *m, int now)
{
	struct spool_message sm;
	struct spool_rcpt *rs;
	size_t n = 0;

	if (m->held || m->gone || e->stopping)
		return;
	if ((rs = calloc(m->nrcpts, sizeof *rs)) == NULL) {
		log_err("queue=%s deliver out of memory", m->id);
		return;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct dl_rcpt *r = &m->rcpts[i];
		rs[i].addr = r->addr;
		/* recipients on a connection now are not queued twice */
		rs[i].state = r->busy ? SPOOL_RCPT_DELIVERED : r->state;
		rs[i].attempts = r->attempts;
		rs[i].next_attempt = now ? 0 : r->next_attempt;
		n += rs[i].state == SPOOL_RCPT_PENDING;
	}
	if (n > 0) {
		memset(&sm, 0, sizeof sm);
		memcpy(sm.id, m->id, sizeof sm.id);
		sm.tenant_id = m->tenant_id;
		sm.received = m->received;
		sm.flags = m->flags;
		sm.sender = m->sender;
		sm.rcpts = rs;
		sm.nrcpts = m->nrcpts;
		if (sched_add(e->sched, &sm, dl_dest_key, e) < 0)
			log_err("queue=%s deliver cannot schedule: out of memory", m->id);
	}
	free(rs);
}

void dl_job_free(struct dl_job *j)
{
	if (j == NULL)
		return;
	free(j->data);
	free(j);
}

/* A job from the scheduler, checked against what happened since it was
 * queued (held, deleted, recipients decided or on another connection).
 * NULL: nothing left to do in it (the scheduler has been told). */
static struct dl_job *dl_job_claim(struct deliver_engine *e, struct sched_job *sj)
{
	struct dl_msg *m = dl_msg_find(e, sj->msg_id);
	struct dl_job *j;
	size_t k = 0;

	if (m == NULL || m->gone || m->held) {
		sched_job_done(e->sched, &sj);
		return NULL;
	}
	for (size_t i = 0; i < sj->nrcpts; i++) {
		struct dl_rcpt *r = &m->rcpts[sj->rcpts[i]];
		if (r->state == SPOOL_RCPT_PENDING && !r->busy)
			sj->rcpts[k++] = sj->rcpts[i];
	}
	sj->nrcpts = k;
	if (k == 0 || (j = calloc(1, sizeof *j)) == NULL) {
		if (k > 0) /* out of memory: try again in a minute */
			sched_job_postpone(e->sched, &sj, dl_now_ms() + 60000);
		else
			sched_job_done(e->sched, &sj);
		return NULL;
	}
	for (size_t i = 0; i < sj->nrcpts; i++)
		m->rcpts[sj->rcpts[i]].busy = 1;
	m->busy++;
	j->sj = sj;
	j->m = m;
	return j;
}

static void dl_timer_arm(struct deliver_engine *e, int64_t wake_ms)
{
	int64_t now = dl_now_ms(), d;
	struct timeval tv;

	if (e->stopping || wake_ms == SCHED_NEVER) {
		evtimer_del(e->timer);
		e->timer_at = 0;
		return;
	}
	if (e->timer_at == wake_ms && evtimer_pending(e->timer, NULL))
		return;
	d = wake_ms > now ? wake_ms - now : 0;
	if (d > 3600 * 1000)
		d = 3600 * 1000; /* look again at least hourly (clock jumps) */
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	e->timer_at = wake_ms;
	evtimer_add(e->timer, &tv);
}

/* Idle connections first (a message on an open connection skips the
 * connect, greeting, EHLO and TLS), then new connections for what is left.
 * Connections that end call back in here: such a nested call only asks
 * the running one to go round once more. */
void dl_pump(struct deliver_engine *e)
{
	int64_t wake, idle_wake;

	if (e->pumping) {
		e->pump_again = 1;
		return;
	}
	e->pumping = 1;
	do {
		e->pump_again = 0;
		wake = SCHED_NEVER;
		idle_wake = SCHED_NEVER;
		dl_conn_feed_idle(e, &idle_wake, 0);
		while (!e->stopping) {
			struct sched_job *sj = NULL;
			struct sched_conn *sc = NULL;
			struct dl_job *j;

			if (sched_next(e->sched, dl_now_ms(), &sj, &sc, &wake) <= 0) {
				if (e->nidle > 0 && sched_slot_wanted(e->sched, dl_now_ms()))
					dl_conn_feed_idle(e, &idle_wake, 1);
				break;
			}
			if ((j = dl_job_claim(e, sj)) == NULL) {
				sched_conn_close(e->sched, &sc);
				continue;
			}
			dl_conn_open(e, sc, j);
		}
	} while (e->pump_again && !e->stopping);
	e->pumping = 0;
	dl_timer_arm(e, wake < idle_wake ? wake : idle_wake);
}

int dl_next_on(struct deliver_engine *e, struct sched_conn *sc, struct dl_job **j_r,
	       int64_t *wake_r)
{
	*j_r = NULL;
	*wake_r = SCHED_NEVER;
	while (!e->stopping) {
		struct sched_job *sj = NULL;
		if (sched_next_on(e->sched, sc, dl_now_ms(), &sj, wake_r) <= 0)
			return 0;
		if ((*j_r = dl_job_claim(e, sj)) != NULL)
			return 1;
	}
	*wake_r = SCHED_NEVER;
	return 0;
}

static void dl_timer_run(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_engine *e = arg;

	(void)fd;
	(void)what;
	e->timer_at = 0;
	sched_gc(e->sched, dl_now_ms());
	dl_pump(e);
}

/* ---- hand-over from other threads ------------------------------------------ */

void dl_wake_at(struct deliver_engine *e, int64_t wake_ms)
{
	if (wake_ms == SCHED_NEVER || e->stopping)
		return;
	if (e->timer_at != 0 && e->timer_at <= wake_ms && evtimer_pending(e->timer, NULL))
		return;
	dl_timer_arm(e, wake_ms);
}

void dl_engine_wake(struct deliver_engine *e)
{
	event_active(e->wake_ev, EV_READ, 0);
}

static int dl_load_one(void *ctx, const struct spool_message *m)
{
	struct deliver_engine *e = ctx;
	struct spool_message env = *m;

	env.data = NULL; /* the whole queue at start: envelopes only */
	env.len = 0;
	if (dl_msg_add(e, &env) < 0)
		log_err("queue=%s deliver cannot load: out of memory", m->id);
	return 0;
}

static void dl_command_run(struct deliver_engine *e, struct dl_command *c);

static void dl_wake_run(evutil_socket_t fd, short what, void *arg)
{
	struct deliver_engine *e = arg;
	char (*ids)[SPOOL_ID_LEN + 1];
	size_t n;
	struct dl_command *cmds;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&e->mu);
	ids = e->new_ids;
	n = e->nnew;
	e->new_ids = NULL;
	e->nnew = e->new_cap = 0;
	cmds = e->cmds;
	e->cmds = NULL;
	pthread_mutex_unlock(&e->mu);

	dl_outcome_durable_run(e);
	for (size_t i = 0; i < n && !e->stopping; i++) {
		struct spool_message m;
		int r = spool_load(e->spool, ids[i], &m);
		if (r == 0) {
			if (dl_msg_add(e, &m) < 0)
				log_err("queue=%s deliver cannot load: out of memory", ids[i]);
			spool_message_free(&m);
		} else if (r < 0) {
			log_err("queue=%s deliver cannot read the message", ids[i]);
		}
	}
	free(ids);
	/* commands in the order they came */
	{
		struct dl_command *rev = NULL;
		while (cmds) {
			struct dl_command *next = cmds->next;
			cmds->next = rev;
			rev = cmds;
			cmds = next;
		}
		for (struct dl_command *c = rev, *next; c; c = next) {
			next = c->next;
			dl_command_run(e, c);
		}
	}
	pthread_mutex_lock(&e->mu);
	if (e->stop && !e->stopping) {
		e->stopping = 1;
		pthread_mutex_unlock(&e->mu);
		evtimer_del(e->timer);
		dl_conn_close_all(e);
		event_base_loopexit(e->base, NULL);
		return;
	}
	pthread_mutex_unlock(&e->mu);
	dl_pump(e);
}

void deliver_engine_notify(struct deliver_engine *e, const char *id)
{
	if (e == NULL)
		return;
	pthread_mutex_lock(&e->mu);
	if (e->stop) {
		pthread_mutex_unlock(&e->mu);
		return; /* queued; delivered after the next start */
	}
	if (e->nnew == e->new_cap) {
		size_t cap = e->new_cap ? e->new_cap * 2 : 64;
		void *n = realloc(e->new_ids, cap * sizeof *e->new_ids);
		if (n == NULL) {
			pthread_mutex_unlock(&e->mu);
			log_err("queue=%s deliver notify: out of memory (delivered after restart)", id);
			return;
		}
		e->new_ids = n;
		e->new_cap = cap;
	}
	util_strlcpy(e->new_ids[e->nnew++], id, SPOOL_ID_LEN + 1);
	pthread_mutex_unlock(&e->mu);
	dl_engine_wake(e);
}

/* ---- operator commands -------------------------------------------------------- */

static void dl_set_text(struct dl_command *c, int status, const char *text)
{
	c->status = status;
	util_strlcpy(c->text, text, sizeof c->text);
}

static void dl_command_run(struct deliver_engine *e, struct dl_command *c)
{
	struct dl_msg *m = dl_msg_find(e, c->id);

	if (m == NULL || m->gone) {
		dl_set_text(c, -1, "no such message in the queue");
	} else if (strcmp(c->op, "retry") == 0) {
		/* queued jobs of the message stay and are filtered out when
		 * they come due: what is pending and idle is queued again, now */
		for (size_t i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state == SPOOL_RCPT_PENDING)
				m->rcpts[i].next_attempt = 0;
		dl_msg_schedule(e, m, 1);
		dl_set_text(c, 0, m->held ? "retry scheduled (held: waits for release)"
					  : "retry scheduled");
	} else if (strcmp(c->op, "hold") == 0) {
		if (spool_set_held(e->spool, m->id, 1) < 0) {
			dl_set_text(c, -1, strerror(errno));
		} else {
			m->held = 1;
			dl_set_text(c, 0, m->busy ? "held (an attempt in progress finishes)" : "held");
		}
	} else if (strcmp(c->op, "release") == 0) {
		if (spool_set_held(e->spool, m->id, 0) < 0) {
			dl_set_text(c, -1, strerror(errno));
		} else {
			m->held = 0;
			for (size_t i = 0; i < m->nrcpts; i++)
				if (m->rcpts[i].state == SPOOL_RCPT_PENDING)
					m->rcpts[i].next_attempt = 0;
			dl_msg_schedule(e, m, 1);
			dl_set_text(c, 0, "released");
		}
	} else if (strcmp(c->op, "delete") == 0) {
		if (spool_delete(e->spool, m->id) < 0) {
			dl_set_text(c, -1, strerror(errno));
		} else {
			m->gone = 1;
			log_info("queue=%s deleted by operator", m->id);
			dl_msg_release(e, m);
			dl_set_text(c, 0, "deleted");
		}
	} else if (strcmp(c->op, "bounce") == 0) {
		/* its queued jobs find nothing pending when they come due */
		if (m->busy) {
			dl_set_text(c, -1, "an attempt is in progress; try again in a moment");
		} else if (dl_outcome_bounce(e, m, "5.0.0", "bounced by the operator") < 0) {
			dl_set_text(c, -1, "bounce failed");
		} else {
			dl_set_text(c, 0, "bounced");
		}
	} else {
		dl_set_text(c, -1, "unknown command");
	}
	pthread_mutex_lock(&e->mu);
	c->done = 1;
	pthread_cond_broadcast(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

int deliver_engine_command(struct deliver_engine *e, const char *op, const char *id,
			   char *text_r, size_t text_size)
{
	struct dl_command c;

	memset(&c, 0, sizeof c);
	if (util_strlcpy(c.op, op, sizeof c.op) >= sizeof c.op ||
	    util_strlcpy(c.id, id, sizeof c.id) >= sizeof c.id) {
		util_strlcpy(text_r, "bad command", text_size);
		return -1;
	}
	pthread_mutex_lock(&e->mu);
	if (e->stop) {
		pthread_mutex_unlock(&e->mu);
		util_strlcpy(text_r, "delivery is stopping", text_size);
		return -1;
	}
	c.next = e->cmds;
	e->cmds = &c;
	pthread_mutex_unlock(&e->mu);
	dl_engine_wake(e);
	pthread_mutex_lock(&e->mu);
	while (!c.done)
		pthread_cond_wait(&e->cv, &e->mu);
	pthread_mutex_unlock(&e->mu);
	util_strlcpy(text_r, c.text, text_size);
	return c.status;
}

/* ---- life cycle ------------------------------------------------------------- */

static void *dl_thread(void *arg)
{
	struct deliver_engine *e = arg;

	dl_pump(e);
	event_base_dispatch(e->base);
	return NULL;
}

int deliver_engine_start(const struct sluice_config *cfg, struct spool *spool,
			 struct deliver_engine **e_r, char **err_r)
{
	struct deliver_engine *e = calloc(1, sizeof *e);
	struct net_resolver_config rc;

	*e_r = NULL;
	if (e == NULL)
		goto oom;
	e->cfg = cfg;
	e->dc = &cfg->delivery;
	e->spool = spool;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->nbuckets = DL_BUCKETS;
	e->msgs = calloc(e->nbuckets, sizeof *e->msgs);
	e->base = event_base_new();
	if (!e->msgs || !e->base)
		goto oom;
	{
		struct sched_config sc;
		struct sched_dest_limits route_limits[CONFIG_MAX_ROUTES];
		char route_keys[CONFIG_MAX_ROUTES][SCHED_DEST_MAX];
		size_t nroute_limits = 0;
		const char *why = "out of memory";
		sched_config_default(&sc);
		sc.backoff.lifetime = e->dc->max_queue_lifetime;
		if (e->dc->retry_schedule &&
		    sched_backoff_parse(e->dc->retry_schedule, &sc.backoff, &why) < 0) {
			*err_r = strdup(why);
			goto fail;
		}
		sc.limits.max_conns = e->dc->dest_concurrency;
		sc.limits.max_conns_per_host = e->dc->host_concurrency;
		sc.limits.max_msgs_per_conn = e->dc->messages_per_connection;
		sc.limits.rate_per_minute = e->dc->dest_rate;
		sc.max_conns_total = e->dc->max_connections;
		sc.seed = arc4random();
		/* A destination opens at most its hosts' worth of connections
		 * (sched_dest_hosts, told at each resolution: conn.c); a
		 * connection past that would find its host full and its job
		 * wait a second.  A route has one host, known before any
		 * resolution: capped from the start, so its first burst does
		 * not overshoot either. */
		if (sc.limits.max_conns_per_host != 0 &&
		    (sc.limits.max_conns == 0 || sc.limits.max_conns > sc.limits.max_conns_per_host)) {
			for (size_t i = 0; i < e->dc->nroutes; i++) {
				char *key = route_keys[nroute_limits];
				int dup = 0;
				snprintf(key, SCHED_DEST_MAX, "route:%s", e->dc->routes[i].name);
				for (size_t k = 0; k < nroute_limits; k++)
					dup |= util_strncasecmp(route_limits[k].dest, key, SCHED_DEST_MAX) == 0;
				if (dup)
					continue;
				route_limits[nroute_limits].dest = key;
				route_limits[nroute_limits].limits = sc.limits;
				route_limits[nroute_limits].limits.max_conns = sc.limits.max_conns_per_host;
				nroute_limits++;
			}
			sc.per_dest = route_limits;
			sc.nper_dest = nroute_limits;
		}
		if ((e->sched = sched_new(&sc, &why)) == NULL) {
			*err_r = strdup(why);
			goto fail;
		}
	}
	e->timer = evtimer_new(e->base, dl_timer_run, e);
	e->wake_ev = event_new(e->base, -1, 0, dl_wake_run, e);
	if (!e->timer || !e->wake_ev)
		goto oom;
	memset(&rc, 0, sizeof rc);
	rc.server = e->dc->resolver;
	rc.trust_anchor_file = e->dc->resolver_trust_anchor;
	rc.dnssec = e->dc->dnssec;
	rc.timeout_ms = 30000;
	rc.options = (const char *const *)e->dc->resolver_options;
	if ((e->resolver = net_resolver_new(e->base, &rc, err_r)) == NULL)
		goto fail;
	if ((e->mx = deliver_mx_new(e->resolver)) == NULL)
		goto oom;
	e->local_names[0] = cfg->hostname;
	{
		struct net_tls_client_config tc = {.system_ca = 1};
		if ((e->tls_ctx = net_tls_client_ctx_new(&tc, err_r)) == NULL)
			goto fail;
		for (size_t i = 0; i < e->dc->nroutes; i++) {
			const struct config_route *r = &e->dc->routes[i];
			if (r->tls_ca_file == NULL)
				continue;
			tc.ca_file = r->tls_ca_file;
			tc.system_ca = 0;
			if ((e->route_ctx[i] = net_tls_client_ctx_new(&tc, err_r)) == NULL)
				goto fail;
		}
	}

	spool_foreach(spool, dl_load_one, e);
	log_info("deliver ready queued=%zu", e->nmsgs);
	if (pthread_create(&e->thread, NULL, dl_thread, e) != 0) {
		*err_r = strdup("cannot start the delivery thread");
		goto fail;
	}
	e->started = 1;
	*e_r = e;
	return 0;
oom:
	*err_r = strdup("out of memory starting delivery");
fail:
	deliver_engine_free(&e);
	return -1;
}

void deliver_engine_stop(struct deliver_engine *e)
{
	if (e == NULL || !e->started)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_mutex_unlock(&e->mu);
	dl_engine_wake(e);
	pthread_join(e->thread, NULL);
	e->started = 0;
}

void deliver_engine_free(struct deliver_engine **ep)
{
	struct deliver_engine *e = *ep;

	if (e == NULL)
		return;
	*ep = NULL;
	deliver_engine_stop(e);
	e->stopping = 1;
	/* the loop is gone: free what is left without running callbacks */
	dl_outcome_durable_run(e);
	sched_free(&e->sched);
	for (size_t b = 0; e->msgs && b < e->nbuckets; b++) {
		for (struct dl_msg *m = e->msgs[b], *next; m; m = next) {
			next = m->hnext;
			dl_msg_free(m);
		}
	}
	deliver_mx_free(&e->mx);
	net_resolver_free(&e->resolver);
	if (e->tls_ctx)
		SSL_CTX_free(e->tls_ctx);
	for (size_t i = 0; i < CONFIG_MAX_ROUTES; i++)
		if (e->route_ctx[i])
			SSL_CTX_free(e->route_ctx[i]);
	if (e->timer)
		event_free(e->timer);
	if (e->wake_ev)
		event_free(e->wake_ev);
	if (e->base)
		event_base_free(e->base);
	free(e->new_ids);
	free(e->msgs);
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	free(e);
}

void deliver_engine_stats(struct deliver_engine *e, struct deliver_stats *s_r)
{
	pthread_mutex_lock(&e->mu);
	*s_r = e->stats;
	pthread_mutex_unlock(&e->mu);
	s_r->connections = __atomic_load_n(&e->nconns, __ATOMIC_RELAXED);
}
