/*
 * SMTP server session: input framing, the step loop, replies, decisions
 * and accessors.  Commands live in server_cmd.c, AUTH in server_auth.c,
 * the message body reader in server_data.c.
 *
 * Contract (smtp.h): bytes in through smtp_server_feed(), replies out
 * through smtp_server_output(), and smtp_server_step() runs what is
 * buffered until it needs input or a decision.  Command lines end with
 * CRLF only; a line is bounded by SMTP_COMMAND_LINE_MAX (MAIL/RCPT and
 * AUTH have larger allowances) and an oversize line is discarded as it
 * arrives, never buffered whole.  Memory: the input buffer stays below
 * SMTP_INPUT_MAX, the message below max_message_size plus a few octets,
 * and buffers that grew past SMTP_SERVER_KEEP_MAX are freed once empty.
 *
 * Errors: every 4xx/5xx the session itself gives a client command counts;
 * so do refused AUTH attempts.  Refusals the caller decides for MAIL, RCPT
 * and DATA (policy) do not: the caller may answer 421 to close instead.
 */
#include "smtp/server_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smtp_server *smtp_server_new(const struct smtp_server_config *cfg)
{
	struct smtp_server *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->cfg = *cfg;
	if (s->cfg.hostname == NULL)
		s->cfg.hostname = "localhost";
	s->tls_active = cfg->tls_active ? 1 : 0;
	s->phase = SMTP_PHASE_COMMAND;
	s->pending = SMTP_SERVER_NEED_INPUT;
	return s;
}

/* Input may hold credentials not yet read: wipe before freeing. */
static void server_input_free(struct smtp_server *s)
{
	if (s->in.data)
		util_wipe(s->in.data, s->in.cap);
	buf_free(&s->in);
}

void smtp_server_free(struct smtp_server **sp)
{
	struct smtp_server *s = *sp;

	if (s == NULL)
		return;
	smtp_server_auth_clear(s);
	smtp_server_reset_transaction(s);
	server_input_free(s);
	buf_free(&s->out);
	free(s->helo);
	free(s);
	*sp = NULL;
}

int smtp_server_buf_grow(struct buf *b, size_t extra, size_t limit)
{
	size_t need, cap;
	char *p;

	if (extra > SIZE_MAX / 2 - b->len)
		return -1;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	/* Doubling must not overshoot the bound the caller promised. */
	if (limit < SIZE_MAX && cap > limit + 1)
		cap = need > limit + 1 ? need : limit + 1;
	p = realloc(b->data, cap);
	if (p == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	b->data[b->len] = '\0';
	return 0;
}

/* ---- replies ----------------------------------------------------------- */

void smtp_server_reply_raw(struct smtp_server *s, const char *text, size_t len)
{
	if (s->phase == SMTP_PHASE_CLOSED)
		return;
	if (buf_append(&s->out, text, len) < 0)
		smtp_server_oom(s);
}

static const char *server_default_enhanced(int code)
{
	if (code >= 200 && code < 300)
		return "2.0.0";
	if (code >= 400 && code < 500)
		return "4.0.0";
	return "5.0.0";
}

/* "code enhanced text" CRLF, one line of at most SMTP_REPLY_LINE_MAX. */
static void server_vreply(struct smtp_server *s, int code, const char *enhanced, const char *fmt,
                          va_list ap) UTIL_PRINTF(4, 0);
static void server_vreply(struct smtp_server *s, int code, const char *enhanced, const char *fmt,
                          va_list ap)
{
	char line[SMTP_REPLY_LINE_MAX + 1]; /* + vsnprintf's NUL, replaced by CR */
	int n, m;
	size_t room;

	if (s->phase == SMTP_PHASE_CLOSED)
		return;
	if (code < 200 || code > 599)
		code = 451; /* a caller bug must not produce a broken reply */
	if (enhanced == NULL || *enhanced == '\0')
		enhanced = server_default_enhanced(code);
	n = snprintf(line, sizeof line, "%03d %.16s ", code, enhanced);
	if (n < 0 || (size_t)n >= sizeof line - 2)
		return;
	room = sizeof line - 2 - (size_t)n; /* keep room for CRLF */
	m = vsnprintf(line + n, room, fmt, ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= room) {
		log_warn("smtp reply truncated code=%d length=%d", code, m);
		m = (int)room - 1;
	}
	/* Text from the caller must not split the reply into more lines. */
	for (int i = n; i < n + m; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = ' ';
	memcpy(line + n + m, "\r\n", 2);
	smtp_server_reply_raw(s, line, (size_t)(n + m + 2));
}

void smtp_server_reply(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	server_vreply(s, code, enhanced, fmt, ap);
	va_end(ap);
}

static void server_count_error(struct smtp_server *s)
{
	if (s->phase == SMTP_PHASE_CLOSED)
		return;
	s->errors++;
	if (s->errors > s->cfg.max_errors) {
		smtp_server_reply(s, 421, "4.7.0", "%s Too many errors, closing connection",
		                  s->cfg.hostname);
		smtp_server_close(s);
	}
}

void smtp_server_error(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	server_vreply(s, code, enhanced, fmt, ap);
	va_end(ap);
	server_count_error(s);
}

/* ---- session state ----------------------------------------------------- */

void smtp_server_close(struct smtp_server *s)
{
	s->phase = SMTP_PHASE_CLOSED;
	s->discarding = 0;
	/* A pending AUTH event still points at the credentials; they are
	 * wiped when it is decided or the session freed. */
	if (s->pending != SMTP_SERVER_AUTH)
		smtp_server_auth_clear(s);
	server_input_free(s);
}

void smtp_server_oom(struct smtp_server *s)
{
	char line[SMTP_REPLY_LINE_MAX];
	int n;

	if (s->phase == SMTP_PHASE_CLOSED)
		return;
	log_err("smtp session out of memory");
	/* Best effort: a reply that cannot be queued is not sent. */
	n = snprintf(line, sizeof line, "421 4.3.0 %s Out of memory, closing connection\r\n",
	             s->cfg.hostname);
	if (n > 0 && (size_t)n < sizeof line)
		(void)buf_append(&s->out, line, (size_t)n);
	smtp_server_close(s);
}

void smtp_server_reset_transaction(struct smtp_server *s)
{
	free(s->sender);
	s->sender = NULL;
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpt = s->rcpt_cap = 0;
	s->in_transaction = 0;
	s->smtputf8 = 0;
	s->body_8bit = 0;
	buf_free(&s->msg);
	s->msg_taken = 0;
}

void smtp_server_set_pending(struct smtp_server *s, enum smtp_server_event_type type)
{
	s->pending = type;
	s->ev.type = type;
}

void smtp_server_greet(struct smtp_server *s)
{
	char line[SMTP_REPLY_LINE_MAX];
	int n;

	/* RFC 2034: no enhanced code in the greeting. */
	n = snprintf(line, sizeof line, "220 %s ESMTP sluice\r\n", s->cfg.hostname);
	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "220 ESMTP sluice\r\n");
	smtp_server_reply_raw(s, line, (size_t)n);
}

void smtp_server_refuse(struct smtp_server *s, int code, const char *enhanced, const char *text)
{
	smtp_server_reply(s, code, enhanced, "%s", text ? text : "Service unavailable");
	smtp_server_close(s);
}

void smtp_server_eof(struct smtp_server *s)
{
	smtp_server_close(s);
}

void smtp_server_timeout(struct smtp_server *s)
{
	smtp_server_reply(s, 421, "4.4.2", "%s Timeout, closing connection", s->cfg.hostname);
	smtp_server_close(s);
}

void smtp_server_shutdown(struct smtp_server *s)
{
	smtp_server_reply(s, 421, "4.3.2", "%s Service shutting down, closing connection",
	                  s->cfg.hostname);
	smtp_server_close(s);
}

void smtp_server_tls_started(struct smtp_server *s)
{
	if (s->pending != SMTP_SERVER_STARTTLS && s->pending != SMTP_SERVER_NEED_INPUT) {
		/* The pending event points into the state reset below. */
		log_err("smtp tls_started while an event is pending event=%d", (int)s->pending);
		return;
	}
	smtp_server_set_pending(s, SMTP_SERVER_NEED_INPUT);
	s->tls_active = 1;
	/* RFC 3207 4.2: forget everything learnt before the handshake.  The
	 * error count stays, so STARTTLS cannot be used to reset it. */
	smtp_server_auth_clear(s);
	smtp_server_reset_transaction(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	s->authenticated = 0;
	s->discarding = 0;
	server_input_free(s);
	if (s->phase != SMTP_PHASE_CLOSED)
		s->phase = SMTP_PHASE_COMMAND;
}

/* ---- input -------------------------------------------------------------- */

size_t smtp_server_wants_input(const struct smtp_server *s)
{
	if (s->phase == SMTP_PHASE_CLOSED || s->pending != SMTP_SERVER_NEED_INPUT)
		return 0;
	if (s->in.len >= SMTP_INPUT_MAX)
		return 0;
	return SMTP_INPUT_MAX - s->in.len;
}

void smtp_server_feed(struct smtp_server *s, const char *data, size_t len)
{
	size_t limit = SMTP_INPUT_MAX;

	if (s->phase == SMTP_PHASE_CLOSED || len == 0)
		return;
	/* A caller that overfeeds still loses nothing; it only costs memory. */
	if (s->in.len + len > limit)
		limit = s->in.len + len;
	if (smtp_server_buf_grow(&s->in, len, limit) < 0 || buf_append(&s->in, data, len) < 0)
		smtp_server_oom(s);
}

/* Drop n octets of consumed input, wiping them (they may be AUTH data). */
static void server_input_drop(struct smtp_server *s, size_t n, int wipe)
{
	if (n > s->in.len)
		n = s->in.len;
	if (n == 0)
		return;
	if (wipe)
		util_wipe(s->in.data, n);
	buf_consume(&s->in, n);
}

static int server_line_bad(const char *p, size_t len, const char **why_r)
{
	if (memchr(p, '\r', len)) {
		*why_r = "Bare CR in command";
		return 1;
	}
	if (memchr(p, '\0', len)) {
		*why_r = "NUL character in command";
		return 1;
	}
	return 0;
}

/* Abandon an AUTH exchange because of its line's framing. */
static void server_auth_abort(struct smtp_server *s)
{
	smtp_server_auth_clear(s);
	s->phase = SMTP_PHASE_COMMAND;
}

/*
 * Take one line from the input and run it.  Returns 1 when it did
 * something (ran a line, or discarded input), 0 when it needs more input.
 */
static int server_take_line(struct smtp_server *s)
{
	char *p = s->in.data, *lf;
	size_t len = s->in.len, limit, total, content;
	const char *why;
	int auth = s->phase == SMTP_PHASE_AUTH;

	if (len == 0)
		return 0;
	if (s->discarding) {
		lf = memchr(p, '\n', len);
		server_input_drop(s, lf ? (size_t)(lf - p) + 1 : len, 1);
		if (lf == NULL)
			return 0;
		s->discarding = 0;
		return 1;
	}
	limit = auth ? SMTP_AUTH_LINE_MAX : smtp_server_line_limit(s, p, len);
	lf = memchr(p, '\n', len < limit ? len : limit);
	if (lf == NULL) {
		if (len < limit)
			return 0;
		/* Oversize: answer now and drop the rest of the line as it
		 * arrives, so the line is never held whole. */
		server_input_drop(s, limit, 1);
		s->discarding = 1;
		if (auth) {
			server_auth_abort(s);
			smtp_server_error(s, 500, "5.5.6", "Authentication exchange line too long");
		} else {
			smtp_server_error(s, 500, "5.5.2", "Line too long");
		}
		return 1;
	}
	total = (size_t)(lf - p) + 1;
	if (total < 2 || p[total - 2] != '\r') {
		server_input_drop(s, total, 1);
		if (auth)
			server_auth_abort(s);
		smtp_server_error(s, 500, "5.5.2", "Bare LF in command");
		return 1;
	}
	content = total - 2;
	if (server_line_bad(p, content, &why)) {
		server_input_drop(s, total, 1);
		if (auth)
			server_auth_abort(s);
		smtp_server_error(s, 500, "5.5.2", "%s", why);
		return 1;
	}
	p[content] = '\0';
	s->line_total = total;
	if (auth)
		smtp_server_auth_line(s, p, content);
	else
		smtp_server_command(s, p, content);
	/* A handler that closed or started TLS dropped the input already. */
	server_input_drop(s, total, 1);
	s->line_total = 0;
	return 1;
}

static void server_input_trim(struct smtp_server *s)
{
	if (s->in.len == 0 && s->in.cap > SMTP_SERVER_KEEP_MAX)
		server_input_free(s);
}

enum smtp_server_event_type smtp_server_step(struct smtp_server *s, struct smtp_server_event *ev_r)
{
	for (;;) {
		if (s->phase == SMTP_PHASE_CLOSED) {
			if (ev_r)
				ev_r->type = SMTP_SERVER_CLOSE;
			return SMTP_SERVER_CLOSE;
		}
		if (s->pending != SMTP_SERVER_NEED_INPUT) {
			if (ev_r)
				*ev_r = s->ev;
			return s->pending;
		}
		if (s->phase == SMTP_PHASE_DATA) {
			if (!smtp_server_data_consume(s))
				break;
			smtp_server_data_end(s);
			continue;
		}
		if (!server_take_line(s))
			break;
	}
	server_input_trim(s);
	if (ev_r)
		ev_r->type = SMTP_SERVER_NEED_INPUT;
	return SMTP_SERVER_NEED_INPUT;
}

/* ---- decisions ---------------------------------------------------------- */

void smtp_server_decide(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
{
	enum smtp_server_event_type type = s->pending;
	int accept = code >= 200 && code < 300;
	int closed = s->phase == SMTP_PHASE_CLOSED;
	va_list ap;

	if (type != SMTP_SERVER_AUTH && type != SMTP_SERVER_MAIL && type != SMTP_SERVER_RCPT &&
	    type != SMTP_SERVER_DATA) {
		log_err("smtp decide without a pending event code=%d", code);
		return;
	}
	smtp_server_set_pending(s, SMTP_SERVER_NEED_INPUT);
	va_start(ap, fmt);
	server_vreply(s, code, enhanced, fmt, ap);
	va_end(ap);

	switch (type) {
	case SMTP_SERVER_AUTH:
		smtp_server_auth_decided(s, accept && !closed);
		if (!accept && code != 421)
			server_count_error(s);
		break;
	case SMTP_SERVER_MAIL:
		if (accept && !closed) {
			s->in_transaction = 1;
		} else {
			smtp_server_reset_transaction(s);
		}
		break;
	case SMTP_SERVER_RCPT:
		if (accept && !closed)
			s->nrcpt++;
		break;
	case SMTP_SERVER_DATA:
		smtp_server_reset_transaction(s);
		break;
	default:
		break;
	}
	memset(&s->ev, 0, sizeof s->ev);
	s->ev.type = SMTP_SERVER_NEED_INPUT;
	if (code == 421)
		smtp_server_close(s);
}

char *smtp_server_take_message(struct smtp_server *s, size_t *len_r)
{
	if (s->pending != SMTP_SERVER_DATA || s->msg_taken) {
		if (len_r)
			*len_r = 0;
		return NULL;
	}
	s->msg_taken = 1;
	return buf_export(&s->msg, len_r);
}

/* ---- output ------------------------------------------------------------- */

const char *smtp_server_output(const struct smtp_server *s, size_t *len_r)
{
	*len_r = s->out.len;
	return s->out.data ? s->out.data : "";
}

void smtp_server_output_consumed(struct smtp_server *s, size_t n)
{
	buf_consume(&s->out, n);
	if (s->out.len == 0 && s->out.cap > SMTP_SERVER_KEEP_MAX)
		buf_free(&s->out);
}

/* ---- accessors ---------------------------------------------------------- */

const struct smtp_address *smtp_server_sender(const struct smtp_server *s)
{
	return s->sender;
}

size_t smtp_server_rcpt_count(const struct smtp_server *s)
{
	return s->nrcpt;
}

const struct smtp_address *smtp_server_rcpt(const struct smtp_server *s, size_t i)
{
	return i < s->nrcpt ? &s->rcpts[i] : NULL;
}

const char *smtp_server_helo(const struct smtp_server *s)
{
	return s->helo ? s->helo : "";
}

int smtp_server_esmtp(const struct smtp_server *s)
{
	return s->esmtp;
}

int smtp_server_authenticated(const struct smtp_server *s)
{
	return s->authenticated;
}

int smtp_server_in_data(const struct smtp_server *s)
{
	return s->phase == SMTP_PHASE_DATA;
}

int smtp_server_smtputf8(const struct smtp_server *s)
{
	return s->smtputf8;
}

int smtp_server_body_8bit(const struct smtp_server *s)
{
	return s->body_8bit;
}

size_t smtp_server_memory(const struct smtp_server *s)
{
	size_t n = sizeof *s + s->in.cap + s->out.cap + s->msg.cap;

	if (s->helo)
		n += strlen(s->helo) + 1;
	if (s->sender)
		n += sizeof *s->sender;
	n += s->rcpt_cap * sizeof *s->rcpts;
	if (s->auth)
		n += sizeof *s->auth;
	return n;
}
