/*
 * One scanner exchange on the event loop: a non-blocking connect (TCP or
 * unix socket), the request written as spans (never a copy of the
 * message), the reply read until its parser calls it complete; one
 * deadline covers it all.  Nothing here blocks: every wait is an event.
 * A scanner that closes early (clamd's size limit) is read before the
 * write error counts, so its own explanation reaches the log.
 */
#include "scan/scan_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

/* ---- requests (pure) ------------------------------------------------------ */

static int iov_alloc(struct scan_conn *c, size_t n)
{
	c->iov = calloc(n, sizeof *c->iov);
	c->niov = 0;
	c->next_iov = 0;
	return c->iov ? 0 : -1;
}

static void iov_add(struct scan_conn *c, const void *p, size_t len)
{
	if (len == 0)
		return;
	c->iov[c->niov].iov_base = (void *)p;
	c->iov[c->niov].iov_len = len;
	c->niov++;
}

int scan_clamd_request(struct scan_conn *c, const char *data, size_t len)
{
	static const char cmd[] = "zINSTREAM"; /* and its NUL */
	size_t chunks = (len + SCAN_CLAMD_CHUNK - 1) / SCAN_CLAMD_CHUNK, off;

	buf_reset(&c->head);
	if (buf_append(&c->head, cmd, sizeof cmd) < 0 ||
	    buf_reserve(&c->head, 4 * (chunks + 1)) < 0)
		return -1;
	for (size_t i = 0; i <= chunks; i++) {
		size_t n = i < chunks ? len - i * SCAN_CLAMD_CHUNK : 0;
		unsigned char be[4];

		if (n > SCAN_CLAMD_CHUNK)
			n = SCAN_CLAMD_CHUNK;
		be[0] = (unsigned char)(n >> 24);
		be[1] = (unsigned char)(n >> 16);
		be[2] = (unsigned char)(n >> 8);
		be[3] = (unsigned char)n;
		buf_append(&c->head, be, 4); /* reserved above: cannot fail */
	}
	if (iov_alloc(c, 2 * chunks + 2) < 0)
		return -1;
	/* the head no longer moves: point into it */
	iov_add(c, c->head.data, sizeof cmd);
	off = sizeof cmd;
	for (size_t i = 0; i < chunks; i++) {
		size_t n = len - i * SCAN_CLAMD_CHUNK;
		if (n > SCAN_CLAMD_CHUNK)
			n = SCAN_CLAMD_CHUNK;
		iov_add(c, c->head.data + off, 4);
		iov_add(c, data + i * SCAN_CLAMD_CHUNK, n);
		off += 4;
	}
	iov_add(c, c->head.data + off, 4);
	return 0;
}

/* A header value from the envelope: control characters cannot split the
 * request (they become '?'). */
static int head_field(struct buf *b, const char *name, const char *v)
{
	if (buf_printf(b, "%s: ", name) < 0)
		return -1;
	for (; *v; v++) {
		char ch = (unsigned char)*v < 0x20 || *v == 0x7f ? '?' : *v;
		if (buf_append(b, &ch, 1) < 0)
			return -1;
	}
	return buf_append(b, "\r\n", 2);
}

int scan_rspamd_request(struct scan_conn *c, const struct scan_endpoint *ep,
                        const struct scan_request *rq)
{
	struct buf *b = &c->head;

	buf_reset(b);
	if (buf_printf(b, "POST %s HTTP/1.0\r\nHost: %s\r\nContent-Length: %zu\r\n", ep->path,
	               ep->host, rq->len) < 0)
		return -1;
	if (rq->queue_id && head_field(b, "Queue-Id", rq->queue_id) < 0)
		return -1;
	/* rspamd takes the null sender from an empty From */
	if (rq->sender && rq->sender[0] && head_field(b, "From", rq->sender) < 0)
		return -1;
	for (size_t i = 0; i < rq->nrcpts; i++)
		if (head_field(b, "Rcpt", rq->rcpts[i]) < 0)
			return -1;
	if (rq->client_addr && head_field(b, "IP", rq->client_addr) < 0)
		return -1;
	if (rq->helo && rq->helo[0] && head_field(b, "Helo", rq->helo) < 0)
		return -1;
	/* an authenticated user makes rspamd treat the mail as outbound */
	if (rq->user && rq->user[0] && head_field(b, "User", rq->user) < 0)
		return -1;
	if (rq->hostname && head_field(b, "MTA-Name", rq->hostname) < 0)
		return -1;
	if (buf_append(b, "\r\n", 2) < 0 || iov_alloc(c, 2) < 0)
		return -1;
	iov_add(c, b->data, b->len);
	iov_add(c, rq->data, rq->len);
	return 0;
}

/* ---- I/O ------------------------------------------------------------------ */

static void conn_event(evutil_socket_t fd, short what, void *arg);

static void conn_finish(struct scan_conn *c)
{
	if (c->done)
		return;
	c->done = 1;
	c->result.elapsed_ms = util_now_ms() - c->started_ms;
	if (c->ev)
		event_del(c->ev);
	if (c->timer)
		event_del(c->timer);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	scan_job_conn_done(c);
}

static void conn_fail(struct scan_conn *c, const char *fmt, ...) UTIL_PRINTF(2, 3);

static void conn_fail(struct scan_conn *c, const char *fmt, ...)
{
	va_list ap;

	memset(&c->result, 0, sizeof c->result);
	c->result.outcome = SCAN_OUT_FAILED;
	va_start(ap, fmt);
	vsnprintf(c->result.text, sizeof c->result.text, fmt, ap);
	va_end(ap);
	conn_finish(c);
}

static void conn_arm(struct scan_conn *c, short what)
{
	event_del(c->ev);
	event_assign(c->ev, c->job->sc->base, c->fd, what, conn_event, c);
	event_add(c->ev, NULL); /* the timer holds the deadline */
}

/* The reply so far through the scanner's parser: 1 done, 0 more. */
static int conn_parse(struct scan_conn *c, int eof)
{
	struct scan_http_response h;
	int r;

	if (c->which == SCAN_CLAMD) {
		r = scan_clamd_reply_parse(c->in.data ? c->in.data : "", c->in.len, eof,
		                           &c->result);
		if (r < 0) {
			conn_fail(c, "unreadable reply%s", eof ? " (connection closed)" : "");
			return 1;
		}
		if (r > 0)
			conn_finish(c);
		return r;
	}
	r = scan_http_response_parse(c->in.data ? c->in.data : "", c->in.len, eof, &h);
	if (r < 0) {
		conn_fail(c, "unreadable HTTP reply%s", eof ? " (connection closed)" : "");
		return 1;
	}
	if (r == 0)
		return 0;
	if (scan_rspamd_reply_parse(c->in.data + h.body_off, h.body_len, &c->result) < 0) {
		conn_fail(c, "HTTP %d without a /checkv2 reply", h.status);
		return 1;
	}
	if (h.status != 200 && c->result.outcome != SCAN_OUT_FAILED) {
		conn_fail(c, "HTTP %d", h.status);
		return 1;
	}
	if (h.status != 200) { /* {"error": ...}: keep its text */
		char text[SCAN_TEXT_MAX];
		memcpy(text, c->result.text, sizeof text);
		conn_fail(c, "HTTP %d: %.150s", h.status, text);
		return 1;
	}
	conn_finish(c);
	return 1;
}

static void conn_read(struct scan_conn *c)
{
	for (;;) {
		ssize_t n;

		size_t room;

		if (c->in.len >= c->in_max) {
			conn_fail(c, "reply longer than %zu octets", c->in_max);
			return;
		}
		if (buf_reserve(&c->in, 4096) < 0) {
			conn_fail(c, "out of memory");
			return;
		}
		room = c->in.cap - c->in.len - 1; /* the NUL stays */
		if (room > c->in_max - c->in.len)
			room = c->in_max - c->in.len;
		n = read(c->fd, c->in.data + c->in.len, room);
		if (n > 0) {
			c->in.len += (size_t)n;
			c->in.data[c->in.len] = '\0';
			if (conn_parse(c, 0))
				return;
			continue;
		}
		if (n == 0) {
			conn_parse(c, 1);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			conn_arm(c, EV_READ);
			return;
		}
		conn_fail(c, "read: %s", strerror(errno));
		return;
	}
}

static void conn_write(struct scan_conn *c)
{
	while (c->next_iov < c->niov) {
		struct msghdr mh;
		size_t n = c->niov - c->next_iov;
		ssize_t w;

		memset(&mh, 0, sizeof mh);
		mh.msg_iov = c->iov + c->next_iov;
		mh.msg_iovlen = n > IOV_MAX ? IOV_MAX : n;
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* read too: a scanner may answer (refuse) before it
				 * has taken everything */
				conn_arm(c, EV_WRITE | EV_READ);
				return;
			}
			/* closed early: its reply, if any, says why */
			c->writing = 0;
			if (errno == EPIPE || errno == ECONNRESET) {
				conn_read(c); /* the reply, or EOF: either ends it */
				return;
			}
			conn_fail(c, "write: %s", strerror(errno));
			return;
		}
		for (size_t left = (size_t)w; left > 0 && c->next_iov < c->niov;) {
			struct iovec *v = &c->iov[c->next_iov];
			if (left >= v->iov_len) {
				left -= v->iov_len;
				c->next_iov++;
			} else {
				v->iov_base = (char *)v->iov_base + left;
				v->iov_len -= left;
				left = 0;
			}
		}
	}
	c->writing = 0;
	conn_read(c);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct scan_conn *c = arg;

	(void)fd;
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof err;

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			conn_fail(c, "connect: %s", strerror(err));
			return;
		}
		c->connecting = 0;
		c->writing = 1;
	}
	if (c->writing && (what & EV_READ)) {
		/* an answer before the whole request: read it, it decides */
		conn_read(c);
		if (c->done)
			return;
	}
	if (c->writing)
		conn_write(c);
	else
		conn_read(c);
}

static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct scan_conn *c = arg;
	const struct config_scan *cfg = c->job->sc->cfg;
	char secs[24];

	(void)fd;
	(void)what;
	if (c->done) /* a failure found at start, reported from the loop */
		return;
	if (c->result.outcome == SCAN_OUT_FAILED && c->fd < 0) {
		conn_finish(c);
		return;
	}
	snprintf(secs, sizeof secs, "%us",
	         c->which == SCAN_CLAMD ? cfg->clamd_timeout : cfg->rspamd_timeout);
	conn_fail(c, "timeout after %s", secs);
}

int scan_conn_start(struct scan_conn *c, const struct scan_request *rq)
{
	struct scan *sc = c->job->sc;
	const struct scan_endpoint *ep = &sc->ep[c->which];
	struct timeval tv = {
	    .tv_sec = c->which == SCAN_CLAMD ? sc->cfg->clamd_timeout : sc->cfg->rspamd_timeout,
	    .tv_usec = 0,
	};
	int r;

	c->fd = -1;
	c->started_ms = util_now_ms();
	c->in_max = c->which == SCAN_CLAMD ? SCAN_CLAMD_REPLY_MAX
	                                   : SCAN_HTTP_HEADER_MAX + SCAN_HTTP_BODY_MAX;
	if ((c->which == SCAN_CLAMD ? scan_clamd_request(c, rq->data, rq->len)
	                            : scan_rspamd_request(c, ep, rq)) < 0)
		return -1;
	c->ev = event_new(sc->base, -1, 0, conn_event, c);
	c->timer = evtimer_new(sc->base, conn_timeout, c);
	if (c->ev == NULL || c->timer == NULL)
		return -1;

	c->fd = socket(ep->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		snprintf(c->result.text, sizeof c->result.text, "socket: %s", strerror(errno));
		goto fail_later;
	}
	r = connect(c->fd, (const struct sockaddr *)&ep->ss, ep->sslen);
	if (r < 0 && errno != EINPROGRESS) {
		/* a unix socket nobody listens on, or whose backlog is full */
		snprintf(c->result.text, sizeof c->result.text, "connect: %s", strerror(errno));
		close(c->fd);
		c->fd = -1;
		goto fail_later;
	}
	c->connecting = r < 0;
	c->writing = r == 0;
	conn_arm(c, EV_WRITE);
	event_add(c->timer, &tv);
	return 0;
fail_later:
	/* the callback must not run inside scan_start(): report from the loop */
	c->result.outcome = SCAN_OUT_FAILED;
	event_active(c->timer, EV_TIMEOUT, 0);
	return 0;
}

void scan_conn_clear(struct scan_conn *c)
{
	if (c->ev)
		event_free(c->ev);
	if (c->timer)
		event_free(c->timer);
	c->ev = NULL;
	c->timer = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->iov);
	c->iov = NULL;
	buf_free(&c->head);
	buf_free(&c->in);
}
