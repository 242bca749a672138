/*
 * A delivery connection: resolve the destination's targets, connect to
 * them in order, TLS, then drive the SMTP client (smtp/) through as many
 * jobs of the destination as the limits allow.
 *
 * Target order is the MX order (or the route's host addresses).  Until
 * the first message is sent, a failure of a target (refused or timed-out
 * connect, a 4xx/5xx greeting, EHLO or TLS trouble) moves on to the next
 * one, as RFC 5321 5.1 asks; once a transaction ran, a failure is that
 * transaction's outcome.  A connection that ran out of targets defers its
 * job with the last failure seen.
 *
 * A connection with nothing to send waits, idle, up to
 * connection_cache_time for its destination's next message (dl_pump feeds
 * idle connections before it opens new ones), then QUITs; one that has
 * carried messages_per_connection QUITs at once.  While idle it watches
 * the socket: the server closing it (or saying anything) ends it.
 */
#include "deliver/deliver_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DL_READ_CHUNK 16384

enum dl_conn_state {
	DC_RESOLVING,
	DC_CONNECTING,
	DC_HANDSHAKE, /* TLS, implicit or after STARTTLS */
	DC_SMTP,
	DC_IDLE,      /* READY, waiting for the destination's next job */
};

struct dl_conn {
	struct dl_conn *next, **prevp;
	struct deliver_engine *e;
	struct sched_conn *sc;               /* the scheduler's slot */
	char dest[SCHED_DEST_MAX];
	const struct config_route *route;    /* NULL: MX delivery */
	uint64_t id;
	enum dl_conn_state state;
	struct dl_job *job;     /* the transaction in progress, or waiting to start */
	int job_sent;           /* smtp_client_send() was called for job */
	unsigned nmsgs;         /* transactions on this connection */
	struct dl_target *targets;
	size_t ntargets, cur;
	struct net_conn conn;
	struct event *ev;
	short armed;            /* EV_READ or EV_WRITE ev waits for; 0 none */
	struct smtp_client *smtp;
	int after_starttls;
	int plaintext_retry;    /* opportunistic TLS failed: this target again, plain */
	unsigned capped;        /* targets skipped: their host was at its cap */
	int tried;              /* targets actually connected to */
	uint64_t resolve_id;
	char remote[256 + NET_ADDR_STRLEN + 16]; /* "host[addr]:port": logs, DSNs */
	struct smtp_client_reply fail; /* the last failure of a target */
	const char **rcpt_ptrs;
	struct smtp_client_message msg;
	struct dl_conn *idle_next, **idle_prevp; /* e->idle_head while DC_IDLE */
	int64_t idle_until;                      /* then QUIT */
};

static void dl_conn_run(struct dl_conn *c);
static void dl_conn_next_target(struct dl_conn *c);
static void dl_conn_idle_unlink(struct dl_conn *c);
static int dl_conn_flush(struct dl_conn *c);

/* ---- life cycle ------------------------------------------------------------ */

static void dl_conn_drop_socket(struct dl_conn *c)
{
	if (c->ev) {
		event_free(c->ev);
		c->ev = NULL;
		c->armed = 0;
	}
	smtp_client_free(&c->smtp);
	if (c->conn.fd >= 0 || c->conn.ssl)
		net_conn_close(&c->conn);
	memset(&c->conn, 0, sizeof c->conn);
	c->conn.fd = -1;
	c->after_starttls = 0;
}

/* The connection ends; a job it still holds gets the last failure. */
static void dl_conn_finish(struct dl_conn *c)
{
	struct deliver_engine *e = c->e;

	if (c->resolve_id)
		dl_resolve_cancel(e, c->resolve_id);
	if (c->state == DC_IDLE)
		dl_conn_idle_unlink(c);
	dl_conn_drop_socket(c);
	if (c->job != NULL && (e->stopping || (c->tried == 0 && c->capped > 0))) {
		/* every host at its cap, or sluiced stops: not an attempt; the
		 * job waits (and after a restart its recipients are due as they
		 * were) */
		struct dl_job *j = c->job;
		c->job = NULL;
		for (size_t i = 0; i < j->sj->nrcpts; i++)
			j->m->rcpts[j->sj->rcpts[i]].busy = 0;
		sched_job_postpone(e->sched, &j->sj, dl_now_ms() + 1000);
		j->m->busy--;
		dl_job_free(j);
	}
	if (c->job != NULL) {
		struct dl_job *j = c->job;
		c->job = NULL;
		if (c->fail.code == 0)
			dl_reply_set(&c->fail, 451, "4.4.0", "delivery interrupted");
		dl_outcome(e, j, &c->fail, 0, c->remote[0] ? c->remote : NULL);
	}
	*c->prevp = c->next;
	if (c->next)
		c->next->prevp = c->prevp;
	sched_conn_close(e->sched, &c->sc);
	__atomic_sub_fetch(&e->nconns, 1, __ATOMIC_RELAXED); /* deliver_engine_stats() reads it */
	free(c->targets);
	free(c->rcpt_ptrs);
	free(c);
	if (!e->stopping)
		dl_pump(e);
}

void dl_conn_close_all(struct deliver_engine *e)
{
	while (e->conns) {
		struct dl_conn *c = e->conns;
		dl_reply_set(&c->fail, 451, "4.3.2", "sluice is shutting down");
		dl_conn_finish(c);
	}
}

static void dl_conn_event(evutil_socket_t fd, short what, void *arg);

static void dl_conn_arm(struct dl_conn *c, short what, uint32_t timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};

	/* Persistent, so that waiting again for the same thing only moves
	 * the timer: no epoll_ctl() for each reply.  The driver always arms
	 * what it waits for next, so a persistent event never fires for
	 * something it does not want.  (No timeout: assigned afresh, since
	 * event_add() without one keeps the old.) */
	if (c->armed != what || timeout_ms == 0) {
		event_del(c->ev);
		event_assign(c->ev, c->e->base, c->conn.fd, what | EV_PERSIST, dl_conn_event, c);
		c->armed = what;
	}
	event_add(c->ev, timeout_ms ? &tv : NULL);
}

/* ---- targets ------------------------------------------------------------------ */

static void dl_conn_targets_ready(struct dl_conn *c)
{
	if (c->ntargets == 0) {
		if (c->fail.code == 0)
			dl_reply_set(&c->fail, 451, "4.4.4", "no address to deliver to");
		dl_conn_finish(c);
		return;
	}
	c->state = DC_CONNECTING;
	c->cur = (size_t)-1; /* dl_conn_next_target() moves to the first */
	dl_conn_next_target(c);
}

/* Distinct host names among the targets (a host has one per address). */
static uint32_t dl_count_hosts(const struct dl_target *t, size_t n)
{
	uint32_t hosts = 0;

	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		while (k < i && strcmp(t[k].host, t[i].host) != 0)
			k++;
		hosts += k == i;
	}
	return hosts;
}

static void dl_conn_resolved(void *ctx, const struct dl_resolution *r)
{
	struct dl_conn *c = ctx;

	c->resolve_id = 0;
	if (r->why.code >= 400) {
		/* a DNS verdict for every recipient: NXDOMAIN or null MX fail
		 * the job now, a DNS failure defers it */
		c->fail = r->why;
		dl_conn_finish(c);
		return;
	}
	free(c->targets);
	c->targets = NULL;
	c->ntargets = 0;
	if (r->ntargets > 0) {
		c->targets = calloc(r->ntargets, sizeof *c->targets);
		if (c->targets == NULL) {
			dl_reply_set(&c->fail, 451, "4.3.0", "out of memory");
			dl_conn_finish(c);
			return;
		}
		memcpy(c->targets, r->targets, r->ntargets * sizeof *c->targets);
		c->ntargets = r->ntargets;
	}
	sched_dest_hosts(c->e->sched, c->dest, dl_count_hosts(c->targets, c->ntargets));
	dl_conn_targets_ready(c);
}

static void dl_conn_connect(struct dl_conn *c)
{
	const struct dl_target *t = &c->targets[c->cur];
	char addr[NET_ADDR_STRLEN];
	int fd;

	net_addr_str((const struct sockaddr *)&t->addr, addr);
	if (sched_conn_host(c->e->sched, c->sc, t->host) < 0) {
		/* this MX host has all the connections it may have: another
		 * host, or the job waits without an attempt counted */
		c->capped++;
		dl_conn_next_target(c);
		return;
	}
	snprintf(c->remote, sizeof c->remote, "%s[%s]:%u", t->host, addr, (unsigned)t->port);
	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		dl_reply_set(&c->fail, 451, "4.4.1", "cannot make a socket: %s", strerror(errno));
		dl_conn_next_target(c);
		return;
	}
	c->conn.fd = fd;
	c->conn.ssl = NULL;
	c->tried++;
	if ((c->ev = event_new(c->e->base, fd, EV_WRITE, dl_conn_event, c)) == NULL) {
		dl_reply_set(&c->fail, 451, "4.3.0", "out of memory");
		dl_conn_next_target(c);
		return;
	}
	if (connect(fd, (const struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
		dl_reply_set(&c->fail, 451, "4.4.1", "connect to %s: %s", c->remote, strerror(errno));
		log_info("deliver conn=%llu connect failed relay=%s error=\"%s\"",
			 (unsigned long long)c->id, c->remote, strerror(errno));
		dl_conn_next_target(c);
		return;
	}
	c->state = DC_CONNECTING;
	dl_conn_arm(c, EV_WRITE, c->e->dc->timeout_connect * 1000);
}

/* Give up on the current target (if any) and try the next. */
static void dl_conn_next_target(struct dl_conn *c)
{
	dl_conn_drop_socket(c);
	if (c->plaintext_retry == 1) {
		c->plaintext_retry = 2; /* once */
	} else {
		c->plaintext_retry = 0;
		c->cur++;
	}
	if (c->cur >= c->ntargets || c->e->stopping) {
		dl_conn_finish(c);
		return;
	}
	dl_conn_connect(c);
}

static enum smtp_client_tls dl_conn_tls_policy(const struct dl_conn *c)
{
	const struct config_route *r = c->route;

	if (c->plaintext_retry == 2)
		return SMTP_CLIENT_TLS_NONE;
	if (c->targets[c->cur].dane_required)
		return SMTP_CLIENT_TLS_REQUIRED; /* DANE: never plaintext */
	switch (r ? r->tls : c->e->dc->mx_tls) {
	case CONFIG_OUT_TLS_NONE:
		return SMTP_CLIENT_TLS_NONE;
	case CONFIG_OUT_TLS_REQUIRED:
		return SMTP_CLIENT_TLS_REQUIRED;
	case CONFIG_OUT_TLS_IMPLICIT:
		return SMTP_CLIENT_TLS_IMPLICIT;
	case CONFIG_OUT_TLS_OPPORTUNISTIC:
		break;
	}
	return SMTP_CLIENT_TLS_OPPORTUNISTIC;
}

static int dl_conn_start_tls(struct dl_conn *c)
{
	const struct dl_target *t = &c->targets[c->cur];
	const struct config_route *r = c->route;
	struct net_tls_client_params p;
	struct net_tls_tlsa tlsa[DL_TLSA_MAX];
	SSL_CTX *ctx = c->e->tls_ctx;
	const char *why = NULL;

	if (r != NULL && c->e->route_ctx[r - c->e->dc->routes] != NULL)
		ctx = c->e->route_ctx[r - c->e->dc->routes];

	memset(&p, 0, sizeof p);
	p.servername = t->dane_required ? t->tlsa_base : t->host;
	if (t->dane_required) {
		p.mode = NET_TLS_DANE;
		for (size_t i = 0; i < t->tlsa_n; i++) {
			tlsa[i] = t->tlsa[i];
			tlsa[i].data = t->tlsa_data[i];
		}
		p.tlsa = tlsa;
		p.ntlsa = t->tlsa_n;
	} else if (r && r->tls_verify) {
		p.mode = NET_TLS_VERIFY;
	} else {
		p.mode = NET_TLS_OPPORTUNISTIC;
	}
	if (net_conn_tls_start_client(&c->conn, ctx, &p, &why) < 0) {
		dl_reply_set(&c->fail, 451, "4.7.5", "TLS could not start: %s", why ? why : "?");
		return -1;
	}
	c->state = DC_HANDSHAKE;
	return 0;
}

static int dl_conn_new_client(struct dl_conn *c)
{
	const struct config_delivery *dc = c->e->dc;
	const struct config_route *r = c->route;
	struct smtp_client_config cc;

	memset(&cc, 0, sizeof cc);
	cc.helo_name = c->e->cfg->hostname;
	cc.tls = dl_conn_tls_policy(c);
	if (r && r->auth_user) {
		cc.auth_user = r->auth_user;
		cc.auth_password = r->auth_password;
	}
	cc.timeout_greeting_ms = dc->timeout_greeting * 1000;
	cc.timeout_command_ms = dc->timeout_command * 1000;
	cc.timeout_data_init_ms = dc->timeout_data_init * 1000;
	cc.timeout_data_block_ms = dc->timeout_data_block * 1000;
	cc.timeout_data_end_ms = dc->timeout_data_end * 1000;
	c->smtp = smtp_client_new(&cc);
	if (c->smtp == NULL) {
		dl_reply_set(&c->fail, 451, "4.3.0", "out of memory");
		return -1;
	}
	return 0;
}

static void dl_conn_connected(struct dl_conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->conn.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		dl_reply_set(&c->fail, 451, "4.4.1", "connect to %s: %s", c->remote, strerror(err));
		log_info("deliver conn=%llu connect failed relay=%s error=\"%s\"",
			 (unsigned long long)c->id, c->remote, strerror(err));
		dl_conn_next_target(c);
		return;
	}
	log_debug("deliver conn=%llu connected relay=%s", (unsigned long long)c->id, c->remote);
	if (dl_conn_new_client(c) < 0) {
		dl_conn_next_target(c);
		return;
	}
	if (dl_conn_tls_policy(c) == SMTP_CLIENT_TLS_IMPLICIT) {
		if (dl_conn_start_tls(c) < 0) {
			dl_conn_next_target(c);
			return;
		}
	} else {
		c->state = DC_SMTP;
	}
	dl_conn_run(c);
}

/* ---- the transaction ------------------------------------------------------------ */

/* Load the job's message; 0 ok, -1 the job was decided here (loop, gone). */
static int dl_conn_load(struct dl_conn *c, struct dl_job *j)
{
	struct spool_message sm;
	unsigned received = 0;
	int r = 0;

	memset(&sm, 0, sizeof sm);
	dl_msg_take_data(c->e, j->m, &j->data, &j->len);
	if (j->data == NULL)
		r = spool_load(c->e->spool, j->m->id, &sm);
	if (r != 0) {
		struct smtp_client_reply f;
		dl_reply_set(&f, 451, "4.3.0", "%s",
			     r > 0 ? "message no longer in the queue" : "cannot read the queue");
		if (r > 0)
			j->m->gone = 1;
		dl_outcome(c->e, j, &f, 0, NULL);
		return -1;
	}
	if (j->data == NULL) {
		j->data = sm.data;
		j->len = sm.len;
		sm.data = NULL;
		spool_message_free(&sm);
	}
	/* RFC 5321 6.3: too many Received headers is a loop */
	for (size_t i = 0; i + 9 <= j->len; i++) {
		if ((i == 0 || j->data[i - 1] == '\n') && util_strncasecmp(j->data + i, "received:", 9) == 0)
			received++;
		if (j->data[i] == '\n' && i + 2 < j->len && j->data[i + 1] == '\r' &&
		    j->data[i + 2] == '\n')
			break; /* end of the header */
	}
	if (received > c->e->dc->max_received) {
		struct smtp_client_reply f;
		dl_reply_set(&f, 554, "5.4.6", "mail loop: %u Received headers (limit %u)", received,
			     c->e->dc->max_received);
		dl_outcome(c->e, j, &f, 0, NULL);
		return -1;
	}
	return 0;
}

/* ---- idle connections ------------------------------------------------------------- */

static void dl_conn_idle_unlink(struct dl_conn *c)
{
	struct deliver_engine *e = c->e;

	*c->idle_prevp = c->idle_next;
	if (c->idle_next)
		c->idle_next->idle_prevp = c->idle_prevp;
	else
		e->idle_tail = c->idle_prevp;
	c->idle_next = NULL;
	c->idle_prevp = NULL;
	e->nidle--;
	c->state = DC_SMTP;
}

static void dl_conn_idle_arm(struct dl_conn *c)
{
	int64_t left = c->idle_until - dl_now_ms();

	dl_conn_arm(c, EV_READ, left > 0 ? (uint32_t)left : 1);
}

/* READY with nothing to send: wait for the destination's next job. 0 went
 * idle, -1 not (connection caching off, or the output is not out yet). */
static int dl_conn_go_idle(struct dl_conn *c, int64_t wake)
{
	struct deliver_engine *e = c->e;
	int f;

	if (e->dc->connection_cache_time == 0 || e->stopping)
		return -1;
	f = dl_conn_flush(c);
	if (f <= 0)
		return -1;
	c->state = DC_IDLE;
	c->idle_until = dl_now_ms() + (int64_t)e->dc->connection_cache_time * 1000;
	c->idle_next = NULL;
	if (e->idle_tail == NULL)
		e->idle_tail = &e->idle_head;
	c->idle_prevp = e->idle_tail;
	*e->idle_tail = c;
	e->idle_tail = &c->idle_next;
	e->nidle++;
	dl_conn_idle_arm(c);
	dl_wake_at(e, wake); /* a rate or a retry time: feed it then */
	log_debug("deliver conn=%llu idle relay=%s messages=%u", (unsigned long long)c->id,
		  c->remote, c->nmsgs);
	return 0;
}

/* An idle connection QUITs: wait for the 221 (now 0), or write the QUIT
 * and close at once (now 1: its slot is wanted elsewhere). */
static void dl_conn_idle_quit(struct dl_conn *c, int now)
{
	dl_conn_idle_unlink(c);
	smtp_client_quit(c->smtp);
	if (now) {
		(void)dl_conn_flush(c);
		dl_conn_finish(c);
		return;
	}
	dl_conn_run(c);
}

void dl_conn_feed_idle(struct deliver_engine *e, int64_t *wake_r, int want_slot)
{
	struct dl_conn *c, *next;

	for (c = e->idle_head; c != NULL && !e->stopping; c = next) {
		struct dl_job *j;
		int64_t w;

		next = c->idle_next; /* only c leaves the list below */
		if (dl_next_on(e, c->sc, &j, &w)) {
			dl_conn_idle_unlink(c);
			c->job = j;
			log_debug("deliver conn=%llu reused relay=%s", (unsigned long long)c->id,
				  c->remote);
			dl_conn_run(c);
			continue;
		}
		if (sched_conn_spent(c->sc)) {
			dl_conn_idle_quit(c, 0);
			continue;
		}
		if (w < *wake_r)
			*wake_r = w;
	}
	if (want_slot && e->idle_head != NULL && !e->stopping)
		dl_conn_idle_quit(e->idle_head, 1);
}

/* The socket of an idle connection: readable (the server closes, or says
 * something: a 421) or its time is up. */
static void dl_conn_idle_event(struct dl_conn *c, short what)
{
	if (what & EV_READ) {
		char b;
		size_t n = 0;
		enum net_io r = net_conn_read(&c->conn, &b, 1, &n);

		if (r == NET_IO_WANT_READ || r == NET_IO_WANT_WRITE) {
			dl_conn_idle_arm(c); /* TLS records only (a session ticket) */
			return;
		}
		log_debug("deliver conn=%llu idle closed by relay=%s", (unsigned long long)c->id,
			  c->remote);
		dl_conn_finish(c);
		return;
	}
	if (dl_now_ms() < c->idle_until) {
		dl_conn_idle_arm(c);
		return;
	}
	dl_conn_idle_quit(c, 0);
}

/* READY: send the next job, QUIT, or wait idle.  1 go on running, 0 idle. */
static int dl_conn_ready(struct dl_conn *c)
{
	struct dl_job *j;
	struct sched_job *sj;
	int64_t wake = SCHED_NEVER;

	for (;;) {
		if (c->job == NULL && (c->e->stopping || !dl_next_on(c->e, c->sc, &c->job, &wake))) {
			if (!c->e->stopping && !sched_conn_spent(c->sc) && dl_conn_go_idle(c, wake) == 0)
				return 0;
			smtp_client_quit(c->smtp);
			return 1;
		}
		j = c->job;
		if (j->data == NULL && dl_conn_load(c, j) < 0) {
			c->job = NULL;
			continue;
		}
		break;
	}
	sj = j->sj;
	free(c->rcpt_ptrs);
	c->rcpt_ptrs = calloc(sj->nrcpts, sizeof *c->rcpt_ptrs);
	if (c->rcpt_ptrs == NULL) {
		dl_reply_set(&c->fail, 451, "4.3.0", "out of memory");
		smtp_client_quit(c->smtp);
		return 1;
	}
	for (size_t i = 0; i < sj->nrcpts; i++)
		c->rcpt_ptrs[i] = j->m->rcpts[sj->rcpts[i]].addr;
	memset(&c->msg, 0, sizeof c->msg);
	c->msg.sender = j->m->sender;
	c->msg.rcpts = c->rcpt_ptrs;
	c->msg.nrcpts = sj->nrcpts;
	c->msg.data = j->data;
	c->msg.len = j->len;
	c->msg.eightbit = (j->m->flags & SPOOL_MSG_8BIT) != 0;
	c->msg.smtputf8 = (j->m->flags & SPOOL_MSG_SMTPUTF8) != 0;
	if (smtp_client_send(c->smtp, &c->msg) < 0) {
		dl_reply_set(&c->fail, 451, "4.3.0", "message could not be sent");
		smtp_client_quit(c->smtp);
		return 1;
	}
	c->job_sent = 1;
	c->nmsgs++;
	return 1;
}

/* ---- the driver ------------------------------------------------------------------- */

/* Write what the client has.  1 all written, 0 must wait, -1 error. */
static int dl_conn_flush(struct dl_conn *c)
{
	for (;;) {
		size_t len, n = 0;
		const char *out = smtp_client_output(c->smtp, &len);
		enum net_io r;

		if (len == 0)
			return 1;
		r = net_conn_write(&c->conn, out, len, &n);
		if (r == NET_IO_OK) {
			smtp_client_output_consumed(c->smtp, n);
			continue;
		}
		if (r == NET_IO_WANT_WRITE || r == NET_IO_WANT_READ) {
			dl_conn_arm(c, r == NET_IO_WANT_WRITE ? EV_WRITE : EV_READ,
				    smtp_client_timeout_ms(c->smtp));
			return 0;
		}
		return -1;
	}
}

/* 1 fed, 0 must wait, -1 closed (the client was told) */
static int dl_conn_read(struct dl_conn *c)
{
	char buf[DL_READ_CHUNK];
	size_t want = smtp_client_wants_input(c->smtp), n = 0;
	enum net_io r;

	if (want == 0)
		return 1;
	if (want > sizeof buf)
		want = sizeof buf;
	r = net_conn_read(&c->conn, buf, want, &n);
	switch (r) {
	case NET_IO_OK:
		smtp_client_feed(c->smtp, buf, n);
		return 1;
	case NET_IO_WANT_READ:
	case NET_IO_WANT_WRITE:
		dl_conn_arm(c, r == NET_IO_WANT_READ ? EV_READ : EV_WRITE,
			    smtp_client_timeout_ms(c->smtp));
		return 0;
	case NET_IO_EOF:
	case NET_IO_ERROR:
		break;
	}
	smtp_client_eof(c->smtp);
	return 1;
}

static void dl_conn_handshake_done(struct dl_conn *c)
{
	const char *why = NULL;
	int verified = net_conn_tls_verified(&c->conn, &why);

	log_info("deliver conn=%llu tls relay=%s version=%s cipher=%s verified=%s",
		 (unsigned long long)c->id, c->remote, net_conn_tls_version(&c->conn),
		 net_conn_tls_cipher(&c->conn, NULL), verified ? (why ? why : "yes") : "no");
	c->state = DC_SMTP;
	if (c->after_starttls)
		smtp_client_tls_started(c->smtp);
}

/* A session-level failure before any transaction: next target. */
static void dl_conn_target_failed(struct dl_conn *c, const struct smtp_client_reply *why)
{
	c->fail = *why;
	if (c->fail.code < 400 || c->fail.code >= 500) {
		/* a 5xx greeting refuses this client, not the recipients */
		c->fail.code = 451;
		c->fail.enhanced[0] = c->fail.enhanced[0] ? '4' : '\0';
	}
	log_info("deliver conn=%llu relay=%s failed reply=\"%d %s %s\"", (unsigned long long)c->id,
		 c->remote, why->code, why->enhanced, why->text);
	dl_conn_next_target(c);
}

static void dl_conn_run(struct dl_conn *c)
{
	struct smtp_client_event ev;

	for (;;) {
		if (c->state == DC_HANDSHAKE) {
			enum net_io r = net_conn_handshake(&c->conn);
			if (r == NET_IO_WANT_READ || r == NET_IO_WANT_WRITE) {
				dl_conn_arm(c, r == NET_IO_WANT_READ ? EV_READ : EV_WRITE,
					    c->e->dc->timeout_command * 1000);
				return;
			}
			if (r != NET_IO_OK) {
				const char *why = NULL;
				net_conn_tls_verified(&c->conn, &why);
				dl_reply_set(&c->fail, 451, "4.7.5", "TLS handshake with %s failed: %s",
					    c->remote, why ? why : "error");
				log_info("deliver conn=%llu tls failed relay=%s reason=\"%s\"",
					 (unsigned long long)c->id, c->remote, why ? why : "error");
				/* opportunistic TLS may fall back to plaintext once */
				if (dl_conn_tls_policy(c) == SMTP_CLIENT_TLS_OPPORTUNISTIC &&
				    c->job_sent == 0 && c->plaintext_retry == 0)
					c->plaintext_retry = 1;
				dl_conn_next_target(c);
				return;
			}
			dl_conn_handshake_done(c);
		}
		switch (smtp_client_step(c->smtp, &ev)) {
		case SMTP_CLIENT_NEED_INPUT: {
			int f = dl_conn_flush(c), r;
			if (f < 0) {
				smtp_client_eof(c->smtp);
				continue;
			}
			if (f == 0)
				return;
			r = dl_conn_read(c);
			if (r == 0)
				return;
			continue;
		}
		case SMTP_CLIENT_STARTTLS:
			if (dl_conn_start_tls(c) < 0) {
				dl_conn_next_target(c);
				return;
			}
			c->after_starttls = 1;
			continue;
		case SMTP_CLIENT_READY:
			if (dl_conn_ready(c) == 0)
				return; /* idle */
			continue;
		case SMTP_CLIENT_DONE: {
			struct dl_job *j = c->job;
			c->job = NULL;
			c->job_sent = 0;
			if (j != NULL)
				dl_outcome(c->e, j, ev.rcpts, ev.nrcpts == j->sj->nrcpts ? 1 : 0,
					   c->remote);
			continue;
		}
		case SMTP_CLIENT_CLOSED:
			if (c->job != NULL && c->job_sent && ev.nrcpts == c->job->sj->nrcpts &&
			    ev.nrcpts > 0) {
				struct dl_job *j = c->job;
				c->job = NULL;
				dl_outcome(c->e, j, ev.rcpts, 1, c->remote);
			}
			if (ev.failed && c->nmsgs == 0 && c->job != NULL) {
				dl_conn_target_failed(c, &ev.reply);
				return;
			}
			if (ev.failed)
				c->fail = ev.reply;
			dl_conn_flush(c); /* a QUIT, best effort */
			dl_conn_finish(c);
			return;
		}
	}
}

static void dl_conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct dl_conn *c = arg;

	(void)fd;
	if (c->state == DC_IDLE) {
		dl_conn_idle_event(c, what);
		return;
	}
	if (what & EV_TIMEOUT) {
		switch (c->state) {
		case DC_CONNECTING:
			dl_reply_set(&c->fail, 451, "4.4.1", "connect to %s: timed out", c->remote);
			log_info("deliver conn=%llu connect timeout relay=%s",
				 (unsigned long long)c->id, c->remote);
			dl_conn_next_target(c);
			return;
		case DC_HANDSHAKE:
			dl_reply_set(&c->fail, 451, "4.4.2", "TLS handshake with %s timed out", c->remote);
			dl_conn_next_target(c);
			return;
		case DC_SMTP:
			smtp_client_timeout(c->smtp);
			break;
		case DC_RESOLVING:
		case DC_IDLE:
			break;
		}
	} else if (c->state == DC_CONNECTING) {
		dl_conn_connected(c);
		return;
	}
	dl_conn_run(c);
}

void dl_conn_open(struct deliver_engine *e, struct sched_conn *sc, struct dl_job *first)
{
	struct dl_conn *c = calloc(1, sizeof *c);
	const char *dest = sched_conn_dest(sc);

	if (c == NULL) {
		struct smtp_client_reply f = {.code = 451, .enhanced = "4.3.0",
					      .text = "out of memory", .local = 1};
		sched_conn_close(e->sched, &sc);
		dl_outcome(e, first, &f, 0, NULL);
		return;
	}
	c->e = e;
	c->sc = sc;
	util_strlcpy(c->dest, dest, sizeof c->dest);
	if (strncmp(dest, "route:", 6) == 0) {
		for (size_t i = 0; i < e->dc->nroutes; i++)
			if (strcmp(e->dc->routes[i].name, dest + 6) == 0)
				c->route = &e->dc->routes[i];
	}
	c->id = ++e->next_conn_id;
	c->job = first;
	c->conn.fd = -1;
	c->state = DC_RESOLVING;
	c->next = e->conns;
	if (c->next)
		c->next->prevp = &c->next;
	e->conns = c;
	c->prevp = &e->conns;
	__atomic_add_fetch(&e->nconns, 1, __ATOMIC_RELAXED);
	if (dl_resolve(e, c->dest, c->route, dl_conn_resolved, c, &c->resolve_id) < 0) {
		dl_reply_set(&c->fail, 451, "4.4.3", "cannot resolve %s",
			    c->route ? c->route->host : c->dest);
		dl_conn_finish(c);
	}
}
