/*
 * One SMTP session: the glue between a socket (net/), the SMTP state
 * machine (smtp/), and the decisions it asks for (auth/, policy/, spool/).
 *
 * The session drives smtp_server_step() until it needs input or a
 * decision.  Decisions that take time (argon2 verification, the spool's
 * group commit) leave the session waiting with its socket idle; their
 * results come back through daemon_complete() and session_complete().
 * A session is freed only when nothing is pending for it, so a late
 * completion never touches freed memory.  AUTH is in session_auth.c, the
 * policy's checks of each transaction in session_policy.c.
 */
#include "cmd/session_int.h"
#include "cmd/signer.h"
#include "message/message.h"
#include "smtp/smtp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SESSION_READ_CHUNK 4096

struct ip_count {
	struct ip_count *next;
	char addr[NET_ADDR_STRLEN];
	uint32_t n;
};

static void session_greet(struct session *s);
static void session_arm(struct session *s, short what);

/* ---- connections per client address ----------------------------------- */

static size_t ip_hash(const char *a, size_t buckets)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 1099511628211ULL;
	return (size_t)(h % buckets);
}

static struct ip_count **ip_slot(struct sluiced *d, const char *addr)
{
	struct ip_count **pp;

	if (d->ip_table == NULL) {
		d->ip_buckets = 4093;
		d->ip_table = calloc(d->ip_buckets, sizeof *d->ip_table);
		if (d->ip_table == NULL)
			return NULL;
	}
	for (pp = &d->ip_table[ip_hash(addr, d->ip_buckets)]; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->addr, addr) == 0)
			break;
	return pp;
}

/* 1 counted, 0 over the limit, -1 no memory */
static int ip_acquire(struct sluiced *d, const char *addr)
{
	struct ip_count **pp = ip_slot(d, addr);

	if (pp == NULL)
		return -1;
	if (*pp == NULL) {
		struct ip_count *c = calloc(1, sizeof *c);
		if (c == NULL)
			return -1;
		util_strlcpy(c->addr, addr, sizeof c->addr);
		*pp = c;
	}
	if ((*pp)->n >= d->cfg.max_connections_per_ip)
		return 0;
	(*pp)->n++;
	return 1;
}

static void ip_release(struct sluiced *d, const char *addr)
{
	struct ip_count **pp = ip_slot(d, addr), *c;

	if (pp == NULL || (c = *pp) == NULL)
		return;
	if (--c->n == 0) {
		*pp = c->next;
		free(c);
	}
}

/* ---- lifecycle ---------------------------------------------------------- */

void session_free(struct session *s)
{
	struct sluiced *d = s->d;

	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	d->nsessions--;
	daemon_metrics_session(d->metrics, s->listener->cfg, 0);
	if (d->stopping && d->nsessions == 0)
		event_base_loopbreak(d->base);
	if (s->ip_counted)
		ip_release(d, s->addr);
	if (s->ev)
		event_free(s->ev);
	scan_job_cancel(&s->scan);
	smtp_server_free(&s->smtp);
	if (s->auth_password) {
		util_wipe(s->auth_password, strlen(s->auth_password));
		free(s->auth_password);
	}
	free(s->auth_hash);
	policy_limits_release(d->limits, &s->txn, 0);
	free(s);
}

static void session_close(struct session *s, const char *reason)
{
	if (!s->dead) {
		log_info("session=%016llx disconnect client=%s reason=%s messages=%u",
			 (unsigned long long)s->id, s->addr, reason, s->messages);
		if (s->ev)
			event_del(s->ev);
		net_conn_close(&s->conn);
		s->dead = 1;
	}
	if (s->wait == WAIT_NONE)
		session_free(s);
}

static void session_event(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	if (s->greet_pending) {
		s->greet_pending = 0;
		session_greet(s);
		session_run(s);
		return;
	}
	if (what & EV_TIMEOUT) {
		if (s->handshake || s->closing) {
			session_close(s, "timeout");
			return;
		}
		smtp_server_timeout(s->smtp);
		log_info("session=%016llx timeout client=%s", (unsigned long long)s->id, s->addr);
	}
	session_run(s);
}

static void session_arm(struct session *s, short what)
{
	struct timeval tv = {.tv_sec = smtp_server_in_data(s->smtp) ? s->d->cfg.timeout_data
								     : s->d->cfg.timeout_command,
			     .tv_usec = 0};

	event_del(s->ev);
	event_assign(s->ev, s->d->base, s->conn.fd, what, session_event, s);
	event_add(s->ev, &tv);
}

/* ---- output ------------------------------------------------------------- */

/* 1 all sent, 0 must wait (armed), -1 connection failed */
static int session_flush(struct session *s)
{
	for (;;) {
		size_t len, n = 0;
		const char *out = smtp_server_output(s->smtp, &len);
		enum net_io r;

		if (len == 0)
			return 1;
		r = net_conn_write(&s->conn, out, len, &n);
		if (r == NET_IO_OK) {
			smtp_server_output_consumed(s->smtp, n);
			continue;
		}
		if (r == NET_IO_WANT_WRITE) {
			session_arm(s, EV_WRITE);
			return 0;
		}
		if (r == NET_IO_WANT_READ) {
			session_arm(s, EV_READ);
			return 0;
		}
		return -1;
	}
}

/* ---- the transaction (the checks are in session_policy.c) ------------- */

static void session_mail(struct session *s, const struct smtp_server_event *ev)
{
	struct policy_verdict v;
	struct policy_client c = {
		.tenant_id = s->tenant_id,
		.tenant = s->tenant,
		.submission = s->listener->cfg->mode == CONFIG_MODE_SUBMISSION,
	};
	char from[SMTP_PATH_MAX * 2];

	if (s->tenant_id == 0) {
		/* the state machine asks for AUTH on submission; the relay
		 * admits only trusted networks; nothing else reaches here */
		smtp_server_decide(s->smtp, 530, "5.7.0", "Authentication required");
		return;
	}
	policy_limits_release(s->d->limits, &s->txn, 0); /* RSET, or a refused DATA */
	policy_check_sender(s->d->store, &c, ev->u.mail.sender, &v);
	if (v.code / 100 != 2)
		session_refused(s, "sender");
	else if (daemon_contain_mail(s->d, s->tenant_id, s->credential_id, &v) < 0)
		session_refused(s, "contained");
	else
		session_limits_mail(s, ev, &v);
	if (v.code / 100 != 2) {
		smtp_address_format(ev->u.mail.sender, from, sizeof from);
		log_info("session=%016llx mail refused client=%s tenant=%s from=<%s> code=%d "
			 "reason=\"%s\"",
			 (unsigned long long)s->id, s->addr, s->tenant, from, v.code, v.text);
	}
	smtp_server_decide(s->smtp, v.code, v.enhanced, "%s", v.text);
}

static void spool_done(void *ctx, int status, const char *id)
{
	struct session *s = ctx;
	struct daemon_completion *c = calloc(1, sizeof *c);

	/* delivery may start before the client hears 250: the message is
	 * durable now, whatever happens to the session */
	if (status == 0)
		deliver_engine_notify(s->d->deliver, id);
	if (c == NULL)
		log_panic("out of memory queueing a spool completion");
	c->kind = COMPLETION_SPOOL;
	c->session = s;
	c->status = status;
	util_strlcpy(c->id, id, sizeof c->id);
	daemon_complete(s->d, c);
}

/* To the spool (DKIM, issue 5): through the signer's threads when the
 * From: domain has keys (they sign it, put the signatures on top and
 * spool it: nothing changes it after that), else straight, unsigned, with
 * a log line.  spool_done() runs once either way.  0 queued, -1 not. */
static int session_queue(struct session *s, const char *domain, const struct spool_message *m,
			 struct buf *msg)
{
	struct sluiced *d = s->d;

	if (domain[0] != '\0') {
		signer_refresh(d->signer, d->store);
		if (signer_has_keys(d->signer, domain))
			return signer_submit(d->signer, domain, d->spool, m, msg, spool_done, s);
		log_info("queue=%s session=%016llx dkim=none domain=%s reason=no-keys", m->id,
			 (unsigned long long)s->id, domain);
	}
	return spool_submit(d->spool, m, spool_done, s);
}


void session_data(struct session *s, const struct smtp_server_event *ev)
{
	struct sluiced *d = s->d;
	struct spool_message m;
	struct message_trace t;
	struct buf out = BUF_INIT;
	size_t n = smtp_server_rcpt_count(s->smtp);
	char from[SMTP_PATH_MAX * 2], one[SMTP_PATH_MAX * 2], from_domain[SMTP_DOMAIN_MAX + 1];
	enum policy_contain_level level;
	int bits = 0;

	memset(&m, 0, sizeof m);
	if (message_count_received(ev->u.data.data, ev->u.data.len) >= 50) {
		smtp_server_decide(s->smtp, 554, "5.4.6", "Too many Received headers: mail loop");
		return;
	}
	if (session_limits_data(s, ev) < 0 || session_data_headers(s, ev, from_domain) < 0 ||
	    !session_scan(s, ev))
		return;
	if (s->scan_id[0] != '\0') /* scanned: keep the id the scanners logged */
		util_strlcpy(m.id, s->scan_id, sizeof m.id);
	else
		spool_new_id(d->spool, m.id);
	s->scan_id[0] = '\0';
	smtp_address_format(smtp_server_sender(s->smtp), from, sizeof from);
	if (n == 1)
		smtp_address_format(smtp_server_rcpt(s->smtp, 0), one, sizeof one);
	t = (struct message_trace){
		.helo = smtp_server_helo(s->smtp),
		.client_addr = s->addr,
		.client_name = NULL,
		.by = d->cfg.hostname,
		.queue_id = m.id,
		.tls_version = net_conn_tls_version(&s->conn),
		.tls_cipher = net_conn_tls_cipher(&s->conn, &bits),
		.auth_user = smtp_server_authenticated(s->smtp) ? s->auth_user : NULL,
		.esmtp = smtp_server_esmtp(s->smtp),
		.single_rcpt = n == 1 ? one : NULL,
		.when = util_wall_seconds(),
	};
	t.tls_bits = bits;
	if (message_assemble(&t, ev->u.data.data, ev->u.data.len, &out) < 0)
		goto nomem;

	m.rcpts = calloc(n, sizeof *m.rcpts);
	if (m.rcpts == NULL)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		char addr[SMTP_PATH_MAX * 2];
		smtp_address_format(smtp_server_rcpt(s->smtp, i), addr, sizeof addr);
		if ((m.rcpts[i].addr = strdup(addr)) == NULL)
			goto nomem;
		m.nrcpts++;
	}
	if ((level = session_contain(s, ev, &m)) == POLICY_CONTAIN_SUSPEND)
		goto refused;
	m.tenant_id = s->tenant_id;
	m.credential_id = s->credential_id;
	m.received = t.when;
	m.flags = (smtp_server_body_8bit(s->smtp) ? SPOOL_MSG_8BIT : 0) |
		  (smtp_server_smtputf8(s->smtp) ? SPOOL_MSG_SMTPUTF8 : 0) |
		  (s->scan_hold || level == POLICY_CONTAIN_HOLD ? SPOOL_MSG_HELD : 0);
	m.sender = from;
	m.data = out.data;
	m.len = out.len;
	if (session_queue(s, from_domain, &m, &out) < 0) {
		log_err("session=%016llx queue=%s spool refused the message", (unsigned long long)s->id,
			m.id);
		smtp_server_decide(s->smtp, 451, "4.3.0", "Temporary queue failure, try again later");
	} else {
		s->wait = WAIT_SPOOL;
		log_info("queue=%s session=%016llx received tenant=%s from=<%s> nrcpt=%zu size=%zu%s",
			 m.id, (unsigned long long)s->id, s->tenant, from, n, m.len,
			 s->scan_hold ? " held=scan"
				      : level == POLICY_CONTAIN_HOLD ? " held=contain" : "");
	}
	for (size_t i = 0; i < m.nrcpts; i++)
		free(m.rcpts[i].addr);
	free(m.rcpts);
	buf_free(&out);
	return;
refused:
	for (size_t i = 0; i < m.nrcpts; i++)
		free(m.rcpts[i].addr);
	free(m.rcpts);
	buf_free(&out);
	return;
nomem:
	for (size_t i = 0; i < m.nrcpts; i++)
		free(m.rcpts[i].addr);
	free(m.rcpts);
	buf_free(&out);
	smtp_server_decide(s->smtp, 451, "4.3.0", "Temporary local problem, try again later");
}

static void session_spool_finish(struct session *s, int status, const char *id)
{
	s->wait = WAIT_NONE;
	session_limits_done(s, status == 0);
	if (s->dead) {
		/* the client left before the reply: the message is queued
		 * (when status is 0) and the client will likely send it again */
		log_info("queue=%s session=%016llx client gone before the reply status=%d", id,
			 (unsigned long long)s->id, status);
		return;
	}
	if (status == 0) {
		s->messages++;
		log_info("queue=%s session=%016llx queued", id, (unsigned long long)s->id);
		smtp_server_decide(s->smtp, 250, "2.0.0", "Ok: queued as %s", id);
	} else {
		log_err("queue=%s session=%016llx spool write failed error=\"%s\"", id,
			(unsigned long long)s->id, strerror(-status));
		smtp_server_decide(s->smtp, 452, "4.3.1",
				   "Insufficient system storage, try again later");
	}
}

void session_complete(struct daemon_completion *c)
{
	struct session *s = c->session;

	if (c->kind == COMPLETION_AUTH)
		session_auth_finish(s, c->status);
	else
		session_spool_finish(s, c->status, c->id);
	if (s->dead) {
		if (s->wait == WAIT_NONE)
			session_free(s);
		return;
	}
	session_run(s);
}

/* ---- the driver ------------------------------------------------------- */

static void session_tls_done(struct session *s)
{
	s->handshake = 0;
	log_info("session=%016llx tls client=%s version=%s cipher=%s", (unsigned long long)s->id,
		 s->addr, net_conn_tls_version(&s->conn), net_conn_tls_cipher(&s->conn, NULL));
	if (s->after_starttls)
		smtp_server_tls_started(s->smtp);
	else if (!s->refused)
		smtp_server_greet(s->smtp);
}

/* Read what the session can take.  1 fed bytes, 0 must wait, -1 closed */
static int session_read(struct session *s)
{
	char chunk[SESSION_READ_CHUNK];
	size_t want = smtp_server_wants_input(s->smtp), n = 0;
	enum net_io r;

	if (want == 0)
		return 1; /* buffer full: process what is there first */
	if (want > sizeof chunk)
		want = sizeof chunk;
	r = net_conn_read(&s->conn, chunk, want, &n);
	switch (r) {
	case NET_IO_OK:
		smtp_server_feed(s->smtp, chunk, n);
		return 1;
	case NET_IO_WANT_READ:
		session_arm(s, EV_READ);
		return 0;
	case NET_IO_WANT_WRITE:
		session_arm(s, EV_WRITE);
		return 0;
	case NET_IO_EOF:
		smtp_server_eof(s->smtp);
		return 1;
	case NET_IO_ERROR:
		break;
	}
	return -1;
}

void session_run(struct session *s)
{
	struct smtp_server_event ev;

	if (s->dead || s->wait != WAIT_NONE || s->greet_pending)
		return;
	for (;;) {
		if (s->handshake) {
			enum net_io r = net_conn_handshake(&s->conn);
			if (r == NET_IO_WANT_READ || r == NET_IO_WANT_WRITE) {
				session_arm(s, r == NET_IO_WANT_READ ? EV_READ : EV_WRITE);
				return;
			}
			if (r != NET_IO_OK) {
				session_close(s, "tls-handshake-failed");
				return;
			}
			session_tls_done(s);
		}
		if (s->closing) {
			int f = session_flush(s);
			if (f != 0)
				session_close(s, f > 0 ? "closed" : "write-error");
			return;
		}
		switch (smtp_server_step(s->smtp, &ev)) {
		case SMTP_SERVER_NEED_INPUT: {
			int f = session_flush(s), r;
			if (f < 0) {
				session_close(s, "write-error");
				return;
			}
			if (f == 0)
				return; /* writable event resumes us */
			/* read now rather than wait: TLS may hold decrypted bytes
			 * the socket will never signal; WANT_READ arms the event */
			r = session_read(s);
			if (r < 0) {
				session_close(s, "read-error");
				return;
			}
			if (r == 0)
				return;
			continue;
		}
		case SMTP_SERVER_STARTTLS: {
			int f = session_flush(s);
			if (f < 0) {
				session_close(s, "write-error");
				return;
			}
			if (f == 0)
				return; /* step() returns STARTTLS again once flushed */
			if (net_conn_tls_start(&s->conn, s->d->tls) < 0) {
				session_close(s, "tls-start-failed");
				return;
			}
			s->handshake = 1;
			s->after_starttls = 1;
			continue;
		}
		case SMTP_SERVER_AUTH:
			session_auth(s, &ev);
			if (s->wait != WAIT_NONE) {
				if (session_flush(s) < 0)
					session_close(s, "write-error");
				return;
			}
			continue;
		case SMTP_SERVER_MAIL:
			session_mail(s, &ev);
			continue;
		case SMTP_SERVER_RCPT:
			session_rcpt(s, &ev);
			continue;
		case SMTP_SERVER_DATA:
			session_data(s, &ev);
			session_data_after(s);
			if (s->wait != WAIT_NONE) {
				if (session_flush(s) < 0)
					session_close(s, "write-error");
				return;
			}
			continue;
		case SMTP_SERVER_CLOSE:
			s->closing = 1;
			continue;
		}
	}
}

void session_accept(struct sluiced *d, struct daemon_listener *l, int fd,
		    const struct sockaddr_storage *ss)
{
	const struct config_listener *lc = l->cfg;
	struct smtp_server_config sc = {
		.hostname = d->cfg.hostname,
		.max_message_size = d->cfg.max_message_size,
		.max_recipients = d->cfg.max_recipients,
		.max_errors = d->cfg.max_errors,
		.tls_available = d->tls != NULL && lc->tls != CONFIG_TLS_NONE,
		/* implicit TLS (RFC 8314): the session starts inside TLS */
		.tls_active = d->tls != NULL && lc->tls == CONFIG_TLS_IMPLICIT,
		.auth_required = lc->mode == CONFIG_MODE_SUBMISSION,
		.auth_offered = lc->mode == CONFIG_MODE_SUBMISSION,
	};
	struct session *s = calloc(1, sizeof *s);
	int limit;

	if (s == NULL || (s->smtp = smtp_server_new(&sc)) == NULL ||
	    (s->ev = event_new(d->base, fd, EV_READ, session_event, s)) == NULL) {
		log_err("session accept failed: out of memory");
		if (s) {
			smtp_server_free(&s->smtp);
			free(s);
		}
		close(fd);
		return;
	}
	s->d = d;
	s->listener = l;
	s->conn.fd = fd;
	s->ss = *ss;
	s->id = ++d->next_session_id;
	net_addr_str((const struct sockaddr *)ss, s->addr);
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
	d->nsessions++;
	daemon_metrics_session(d->metrics, lc, 1);

	log_info("session=%016llx connect client=%s listener=%s", (unsigned long long)s->id,
		 s->addr, lc->name);

	limit = ip_acquire(d, s->addr);
	if (limit > 0)
		s->ip_counted = 1;
	if (d->nsessions > d->cfg.max_connections) {
		daemon_metrics_refused(d->metrics, "connections");
		s->refused = 1;
		smtp_server_refuse(s->smtp, 421, "4.3.2", "Too many connections, try again later");
	} else if (limit <= 0) {
		daemon_metrics_refused(d->metrics, "connections-per-ip");
		s->refused = 1;
		smtp_server_refuse(s->smtp, 421, "4.7.0",
				   "Too many connections from your address, try again later");
	} else if (lc->mode == CONFIG_MODE_RELAY) {
		int64_t tenant_id = 0;
		struct store_tenant t;
		char *err = NULL;

		policy_networks_refresh(d->networks, d->store);
		if (!policy_networks_match(d->networks, (const struct sockaddr *)ss, &tenant_id)) {
			log_info("session=%016llx refused client=%s reason=untrusted-network",
				 (unsigned long long)s->id, s->addr);
			daemon_metrics_refused(d->metrics, "relay-denied");
			s->refused = 1;
			smtp_server_refuse(s->smtp, 554, "5.7.1",
					   "Relay access from your address is not allowed; "
					   "submit with AUTH on port 587");
		} else if (store_tenant_get_id(d->store, tenant_id, &t, &err) != 0) {
			free(err);
			s->refused = 1;
			smtp_server_refuse(s->smtp, 421, "4.3.0", "Temporary failure, try again later");
		} else {
			s->tenant_id = t.id;
			util_strlcpy(s->tenant, t.name, sizeof s->tenant);
		}
	}

	if (lc->tls == CONFIG_TLS_IMPLICIT && !s->closing) {
		if (d->tls == NULL || net_conn_tls_start(&s->conn, d->tls) < 0) {
			session_close(s, "tls-start-failed");
			return;
		}
		s->handshake = 1;
		s->after_starttls = 0;
		/* the refusal (if any) or the banner goes out after the handshake */
	} else if (lc->greet_pause_ms > 0 && !s->refused) {
		/* hold the banner back: a client that talks first shows it
		 * does not wait for it (a spam engine, or a smuggling try) */
		struct timeval tv = {.tv_sec = lc->greet_pause_ms / 1000,
				     .tv_usec = (lc->greet_pause_ms % 1000) * 1000};

		s->greet_pending = 1;
		event_assign(s->ev, d->base, -1, 0, session_event, s);
		event_add(s->ev, &tv);
		return;
	} else if (!s->refused) {
		session_greet(s);
	}
	session_run(s);
}

/* The banner, or 554 5.5.0 when the client's input is already there. */
static void session_greet(struct session *s)
{
	char peek;
	ssize_t n = recv(s->conn.fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n > 0) {
		log_info("session=%016llx refused client=%s reason=pregreet",
			 (unsigned long long)s->id, s->addr);
		daemon_metrics_refused(s->d->metrics, "pregreet");
		smtp_server_refuse(s->smtp, 554, "5.5.0",
				   "Protocol error: input before the greeting");
	} else {
		smtp_server_greet(s->smtp);
	}
}

void session_shutdown_all(struct sluiced *d)
{
	struct session *s, *next;

	for (s = d->sessions; s; s = next) {
		next = s->next;
		if (s->dead)
			continue;
		if (s->wait != WAIT_NONE)
			continue; /* answers first; closes on the next step */
		if (s->greet_pending) {
			event_del(s->ev);
			s->greet_pending = 0;
		}
		smtp_server_shutdown(s->smtp);
		session_run(s);
	}
}

void session_free_all(struct sluiced *d)
{
	while (d->sessions) {
		struct session *s = d->sessions;
		if (!s->dead) {
			net_conn_close(&s->conn);
			s->dead = 1;
		}
		s->wait = WAIT_NONE;
		session_free(s);
	}
	for (size_t i = 0; d->ip_table && i < d->ip_buckets; i++)
		while (d->ip_table[i]) {
			struct ip_count *c = d->ip_table[i];
			d->ip_table[i] = c->next;
			free(c);
		}
	free(d->ip_table);
	d->ip_table = NULL;
}
