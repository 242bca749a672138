/*
 * SMTP client session: the greeting, EHLO (HELO after a 5xx), STARTTLS,
 * QUIT, the step loop, output, timeouts and failures.  Replies are parsed
 * in client_reply.c, AUTH runs in client_auth.c, a message's transaction
 * in client_txn.c.
 *
 * Contract (smtp.h): bytes in through smtp_client_feed(), commands out
 * through smtp_client_output(), and smtp_client_step() matches each
 * complete reply with the oldest command awaiting one.  A reply is only
 * accepted for a command already handed to the caller to send (its end
 * in the output stream was consumed): anything else is unsolicited and
 * ends the session, so a server cannot answer ahead and have its bytes
 * taken for the reply to a later command.  The one exception is the
 * message body, which a server may refuse before its end.
 *
 * Memory: input stays within SMTP_CLIENT_INPUT_MAX, the output holds at
 * most the commands of one pipelined group or a body chunk, and the
 * per-message state is one reply per recipient.
 */
#include "smtp/client_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A HELO name we can send: a domain or address literal, no controls. */
static int client_helo_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] >= 0x7f)
			return 0;
	return 1;
}

struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg)
{
	struct smtp_client *c;

	if (cfg->helo_name != NULL && !client_helo_ok(cfg->helo_name))
		return NULL;
	if (!smtp_client_auth_config_ok(cfg))
		return NULL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->cfg = *cfg;
	if (c->cfg.helo_name == NULL)
		c->cfg.helo_name = "localhost";
	c->tls_active = cfg->tls == SMTP_CLIENT_TLS_IMPLICIT;
	c->state = CLIENT_GREETING;
	/* The greeting is awaited as if a command had been sent. */
	c->cmds = calloc(4, sizeof *c->cmds);
	if (c->cmds == NULL) {
		free(c);
		return NULL;
	}
	c->cmd_cap = 4;
	c->cmds[0].stage = SMTP_CLIENT_STAGE_GREETING;
	c->ncmds = 1;
	return c;
}

static void client_out_free(struct smtp_client *c)
{
	if (c->out_secret && c->out.data)
		util_wipe(c->out.data, c->out.cap);
	c->out_secret = 0;
	buf_free(&c->out);
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	smtp_client_txn_free(c);
	client_out_free(c);
	buf_free(&c->in);
	free(c->cmds);
	free(c);
	*cp = NULL;
}

/* ---- commands ------------------------------------------------------------ */

struct smtp_client_cmd *smtp_client_head(struct smtp_client *c)
{
	return c->cmd_head < c->ncmds ? &c->cmds[c->cmd_head] : NULL;
}

int smtp_client_expect(struct smtp_client *c, enum smtp_client_stage stage, size_t rcpt,
                       uint64_t end)
{
	if (c->cmd_head == c->ncmds)
		c->cmd_head = c->ncmds = 0;
	if (c->ncmds == c->cmd_cap) {
		size_t cap = c->cmd_cap ? c->cmd_cap * 2 : 8;
		struct smtp_client_cmd *p;

		if (c->cmd_head > 0) { /* reuse the answered slots first */
			memmove(c->cmds, c->cmds + c->cmd_head,
			        (c->ncmds - c->cmd_head) * sizeof *c->cmds);
			c->ncmds -= c->cmd_head;
			c->cmd_head = 0;
		} else {
			p = realloc(c->cmds, cap * sizeof *p);
			if (p == NULL)
				return -1;
			c->cmds = p;
			c->cmd_cap = cap;
		}
	}
	c->cmds[c->ncmds].stage = stage;
	c->cmds[c->ncmds].rcpt = rcpt;
	c->cmds[c->ncmds].end = end;
	c->ncmds++;
	return 0;
}

int smtp_client_command(struct smtp_client *c, enum smtp_client_stage stage, size_t rcpt,
                        const char *fmt, ...)
{
	va_list ap;
	size_t before = c->out.len;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	if (r == 0)
		r = buf_append(&c->out, "\r\n", 2);
	if (r == 0)
		r = smtp_client_expect(c, stage, rcpt, c->out_base + c->out.len);
	if (r < 0) {
		c->out.len = before;
		if (c->out.data)
			c->out.data[before] = '\0';
		smtp_client_oom(c);
		return -1;
	}
	return 0;
}

/* ---- failures ------------------------------------------------------------ */

static void client_close(struct smtp_client *c)
{
	c->state = CLIENT_CLOSED;
	c->cmd_head = c->ncmds = 0;
	c->scan = 0;
	c->lines = 0;
	buf_free(&c->in);
}

void smtp_client_fail(struct smtp_client *c, const struct smtp_client_reply *why, int quit)
{
	if (c->state == CLIENT_CLOSED)
		return;
	if (c->state == CLIENT_QUIT) {
		/* Every message is decided: whatever goes wrong now is moot. */
		client_out_free(c);
		client_close(c);
		return;
	}
	c->close_reply = *why;
	c->close_failed = 1;
	if (c->txn) {
		smtp_client_txn_abort(c, why);
		c->close_rcpts = 1;
	}
	/* Whatever was not sent is moot; a polite QUIT is all that goes. */
	client_out_free(c);
	if (quit && buf_append(&c->out, "QUIT\r\n", 6) < 0)
		buf_free(&c->out);
	client_close(c);
}

void smtp_client_fail_local(struct smtp_client *c, int code, const char *enhanced,
                            enum smtp_client_stage stage, const char *fmt, ...)
{
	struct smtp_client_reply r;
	va_list ap;

	va_start(ap, fmt);
	smtp_client_reply_vset(&r, code, enhanced, stage, fmt, ap);
	va_end(ap);
	smtp_client_fail(c, &r, 0);
}

void smtp_client_protocol_error(struct smtp_client *c, enum smtp_client_stage stage,
                                const char *what)
{
	smtp_client_fail_local(c, 451, "4.5.0", stage, "Protocol error: %s", what);
}

void smtp_client_oom(struct smtp_client *c)
{
	log_err("smtp client out of memory");
	smtp_client_fail_local(c, 451, "4.3.0", smtp_client_stage(c), "Out of memory");
}

/* A reply refusing what the session needs: fail with it, as a 4xx. */
void smtp_client_refused(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct smtp_client_reply why = *r;

	smtp_client_reply_temporary(&why);
	smtp_client_fail(c, &why, 1);
}

/* ---- the session before and between messages ------------------------------ */

static void client_ready(struct smtp_client *c)
{
	c->state = CLIENT_READY;
}

static void client_ehlo(struct smtp_client *c)
{
	c->state = CLIENT_EHLO;
	(void)smtp_client_command(c, SMTP_CLIENT_STAGE_EHLO, 0, "EHLO %s", c->cfg.helo_name);
}

/* EHLO or HELO done: STARTTLS, AUTH, or ready. */
static void client_hello_done(struct smtp_client *c)
{
	struct smtp_client_reply why;

	if (!c->tls_active && c->cfg.tls != SMTP_CLIENT_TLS_NONE && !c->starttls_refused &&
	    (c->ext & SMTP_CLIENT_EXT_STARTTLS)) {
		c->state = CLIENT_STARTTLS;
		(void)smtp_client_command(c, SMTP_CLIENT_STAGE_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (!c->tls_active && c->cfg.tls == SMTP_CLIENT_TLS_REQUIRED) {
		smtp_client_reply_set(&why, 451, "4.7.10", SMTP_CLIENT_STAGE_STARTTLS,
		                      "TLS required but not offered");
		smtp_client_fail(c, &why, 1);
		return;
	}
	if (c->cfg.auth_user != NULL && !c->authenticated) {
		smtp_client_auth_start(c);
		return;
	}
	client_ready(c);
}

static void client_on_greeting(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code / 100 == 2)
		client_ehlo(c);
	else
		smtp_client_refused(c, r);
}

static void client_on_ehlo(struct smtp_client *c, const struct smtp_client_reply *r,
                           const char *raw, size_t len)
{
	if (r->code / 100 == 2) {
		c->esmtp = 1;
		smtp_client_ehlo_parse(c, raw, len);
		client_hello_done(c);
	} else if (r->code / 100 == 5) {
		/* RFC 5321 3.2: an old server; no extensions then. */
		c->state = CLIENT_HELO;
		(void)smtp_client_command(c, SMTP_CLIENT_STAGE_HELO, 0, "HELO %s",
		                          c->cfg.helo_name);
	} else {
		smtp_client_refused(c, r);
	}
}

static void client_on_helo(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code / 100 == 2) {
		c->ext = 0;
		c->size_limit = 0;
		client_hello_done(c);
	} else if (r->code / 100 == 5) {
		/* Refused by EHLO and HELO: this server will not take mail
		 * from us (Postfix bounces here too). */
		smtp_client_fail(c, r, 1);
	} else {
		smtp_client_refused(c, r);
	}
}

/* len: the reply's octets at the start of the input. */
static void client_on_starttls(struct smtp_client *c, const struct smtp_client_reply *r, size_t len)
{
	if (r->code / 100 == 2) {
		/* RFC 3207 5: nothing the server sent before the handshake
		 * counts; bytes behind the 220 are an injection attempt. */
		if (c->in.len > len) {
			log_warn("smtp client discarded octets after STARTTLS reply length=%zu",
			         c->in.len - len);
			util_wipe(c->in.data + len, c->in.len - len);
			c->in.len = len;
			c->in.data[len] = '\0';
		}
		c->state = CLIENT_HANDSHAKE;
		return;
	}
	if (c->cfg.tls == SMTP_CLIENT_TLS_REQUIRED) {
		struct smtp_client_reply why;

		smtp_client_reply_set(&why, 451, "4.7.10", SMTP_CLIENT_STAGE_STARTTLS,
		                      "TLS required but STARTTLS refused: %d %s", r->code, r->text);
		smtp_client_fail(c, &why, 1);
		return;
	}
	/* Opportunistic: carry on in plaintext with what EHLO said. */
	c->starttls_refused = 1;
	client_hello_done(c);
}

static void client_on_rset(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code / 100 == 2)
		client_ready(c);
	else
		smtp_client_refused(c, r);
}

static void client_on_quit(struct smtp_client *c, const struct smtp_client_reply *r)
{
	c->close_reply = *r;
	client_close(c);
}

/* Run one reply for the oldest command awaiting it; raw/len is the reply
 * as received (EHLO reads its keywords there). */
static void client_dispatch(struct smtp_client *c, const struct smtp_client_reply *r,
                            const char *raw, size_t len)
{
	struct smtp_client_cmd cmd = c->cmds[c->cmd_head++];
	int cls = r->code / 100;

	if (r->code == 421 && cmd.stage != SMTP_CLIENT_STAGE_QUIT) {
		/* RFC 5321 3.8: the server is closing; no QUIT. */
		smtp_client_fail(c, r, 0);
		return;
	}
	if (cls == 3 && cmd.stage != SMTP_CLIENT_STAGE_DATA &&
	    cmd.stage != SMTP_CLIENT_STAGE_AUTH && cmd.stage != SMTP_CLIENT_STAGE_QUIT) {
		smtp_client_protocol_error(c, cmd.stage, "unexpected 3xx reply");
		return;
	}
	switch (cmd.stage) {
	case SMTP_CLIENT_STAGE_GREETING:
		client_on_greeting(c, r);
		break;
	case SMTP_CLIENT_STAGE_EHLO:
		client_on_ehlo(c, r, raw, len);
		break;
	case SMTP_CLIENT_STAGE_HELO:
		client_on_helo(c, r);
		break;
	case SMTP_CLIENT_STAGE_STARTTLS:
		client_on_starttls(c, r, len);
		break;
	case SMTP_CLIENT_STAGE_AUTH:
		smtp_client_auth_reply(c, r);
		break;
	case SMTP_CLIENT_STAGE_MAIL:
	case SMTP_CLIENT_STAGE_RCPT:
	case SMTP_CLIENT_STAGE_DATA:
		smtp_client_txn_reply(c, &cmd, r);
		break;
	case SMTP_CLIENT_STAGE_DATA_END:
		smtp_client_body_reply(c, &cmd, r);
		break;
	case SMTP_CLIENT_STAGE_RSET:
		client_on_rset(c, r);
		break;
	case SMTP_CLIENT_STAGE_QUIT:
		client_on_quit(c, r);
		break;
	default:
		smtp_client_protocol_error(c, cmd.stage, "reply to nothing");
		break;
	}
}

/* ---- input --------------------------------------------------------------- */

size_t smtp_client_wants_input(const struct smtp_client *c)
{
	if (c->state == CLIENT_CLOSED || c->state == CLIENT_HANDSHAKE)
		return 0;
	return c->in.len < SMTP_CLIENT_INPUT_MAX ? SMTP_CLIENT_INPUT_MAX - c->in.len : 0;
}

void smtp_client_feed(struct smtp_client *c, const void *data, size_t len)
{
	if (c->state == CLIENT_CLOSED || len == 0)
		return;
	if (c->state == CLIENT_HANDSHAKE) {
		smtp_client_protocol_error(c, SMTP_CLIENT_STAGE_STARTTLS,
		                           "data after the STARTTLS reply");
		return;
	}
	if (len > smtp_client_wants_input(c)) {
		smtp_client_protocol_error(c, smtp_client_stage(c), "too much input");
		return;
	}
	if (buf_append(&c->in, data, len) < 0)
		smtp_client_oom(c);
}

void smtp_client_eof(struct smtp_client *c)
{
	c->eof = 1;
}

static void client_lost(struct smtp_client *c)
{
	enum smtp_client_stage stage = smtp_client_stage(c);

	if (c->state == CLIENT_QUIT) {
		client_close(c); /* the server did not wait to say 221 */
		return;
	}
	if (c->state == CLIENT_HANDSHAKE)
		smtp_client_fail_local(c, 451, "4.4.2", SMTP_CLIENT_STAGE_STARTTLS,
		                       "Lost connection during the TLS handshake");
	else if (stage == SMTP_CLIENT_STAGE_NONE)
		smtp_client_fail_local(c, 451, "4.4.2", stage, "Connection closed by the server");
	else
		smtp_client_fail_local(c, 451, "4.4.2", stage,
		                       "Lost connection while waiting for the %s reply",
		                       smtp_client_stage_name(stage));
}

void smtp_client_timeout(struct smtp_client *c)
{
	enum smtp_client_stage stage = smtp_client_stage(c);

	switch (c->state) {
	case CLIENT_CLOSED:
		return;
	case CLIENT_QUIT:
		client_close(c);
		return;
	default:
		break;
	}
	if (c->state == CLIENT_HANDSHAKE)
		smtp_client_fail_local(c, 451, "4.4.2", SMTP_CLIENT_STAGE_STARTTLS,
		                       "Timed out during the TLS handshake");
	else if (stage == SMTP_CLIENT_STAGE_BODY)
		smtp_client_fail_local(c, 451, "4.4.2", stage,
		                       "Timed out while sending the message");
	else if (stage == SMTP_CLIENT_STAGE_NONE)
		smtp_client_fail_local(c, 451, "4.4.2", stage, "Timed out while idle");
	else
		smtp_client_fail_local(c, 451, "4.4.2", stage,
		                       "Timed out while waiting for the %s reply",
		                       smtp_client_stage_name(stage));
}

enum smtp_client_stage smtp_client_stage(const struct smtp_client *c)
{
	const struct smtp_client_cmd *head;

	switch (c->state) {
	case CLIENT_CLOSED:
	case CLIENT_READY:
	case CLIENT_HANDSHAKE:
		return SMTP_CLIENT_STAGE_NONE;
	case CLIENT_BODY:
		if (!c->body_done || c->out.len > 0)
			return SMTP_CLIENT_STAGE_BODY;
		break;
	default:
		break;
	}
	head = c->cmd_head < c->ncmds ? &c->cmds[c->cmd_head] : NULL;
	return head ? head->stage : SMTP_CLIENT_STAGE_NONE;
}

static uint32_t client_or(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

uint32_t smtp_client_timeout_ms(const struct smtp_client *c)
{
	switch (smtp_client_stage(c)) {
	case SMTP_CLIENT_STAGE_NONE:
		return 0;
	case SMTP_CLIENT_STAGE_GREETING:
		return client_or(c->cfg.timeout_greeting_ms, SMTP_CLIENT_TIMEOUT_GREETING);
	case SMTP_CLIENT_STAGE_DATA:
		return client_or(c->cfg.timeout_data_init_ms, SMTP_CLIENT_TIMEOUT_DATA_INIT);
	case SMTP_CLIENT_STAGE_BODY:
		return client_or(c->cfg.timeout_data_block_ms, SMTP_CLIENT_TIMEOUT_DATA_BLOCK);
	case SMTP_CLIENT_STAGE_DATA_END:
		return client_or(c->cfg.timeout_data_end_ms, SMTP_CLIENT_TIMEOUT_DATA_END);
	default:
		return client_or(c->cfg.timeout_command_ms, SMTP_CLIENT_TIMEOUT_COMMAND);
	}
}

/* ---- the step loop ------------------------------------------------------- */

/* A reply may be read now: some command awaits one and was sent (or the
 * body is going out, which a server may refuse early). */
static int client_reply_due(struct smtp_client *c)
{
	const struct smtp_client_cmd *head = smtp_client_head(c);

	if (head == NULL)
		return 0;
	return head->end <= c->out_base || head->stage == SMTP_CLIENT_STAGE_DATA_END;
}

/* Read one reply; 1 when something happened, 0 when input is needed. */
static int client_read(struct smtp_client *c)
{
	struct smtp_client_reply r;
	const char *why;
	size_t len;
	int n;

	if (!client_reply_due(c)) {
		if (c->in.len > 0) {
			smtp_client_protocol_error(c, smtp_client_stage(c), "unexpected data");
			return 1;
		}
		if (c->eof) {
			client_lost(c);
			return 1;
		}
		return 0;
	}
	n = smtp_client_reply_parse(c, &r, &len, &why);
	if (n < 0) {
		smtp_client_protocol_error(c, smtp_client_stage(c), why);
		return 1;
	}
	if (n == 0) {
		if (c->eof) {
			client_lost(c);
			return 1;
		}
		return 0;
	}
	r.stage = smtp_client_head(c)->stage;
	client_dispatch(c, &r, c->in.data, len);
	/* The handler may have closed, or discarded input (STARTTLS). */
	if (c->in.len >= len)
		buf_consume(&c->in, len);
	if (c->in.len == 0 && c->in.cap > SMTP_CLIENT_KEEP_MAX)
		buf_free(&c->in);
	return 1;
}

static void client_event(struct smtp_client_event *ev_r, enum smtp_client_action a)
{
	if (ev_r) {
		memset(ev_r, 0, sizeof *ev_r);
		ev_r->action = a;
	}
}

enum smtp_client_action smtp_client_step(struct smtp_client *c, struct smtp_client_event *ev_r)
{
	for (;;) {
		if (c->done_pending) {
			c->done_pending = 0;
			if (ev_r)
				*ev_r = c->done_ev;
			return SMTP_CLIENT_DONE;
		}
		switch (c->state) {
		case CLIENT_CLOSED:
			client_event(ev_r, SMTP_CLIENT_CLOSED);
			if (ev_r) {
				ev_r->reply = c->close_reply;
				ev_r->failed = c->close_failed;
				if (c->close_rcpts) {
					ev_r->rcpts = c->results;
					ev_r->nrcpts = c->msg.nrcpts;
				}
			}
			return SMTP_CLIENT_CLOSED;
		case CLIENT_HANDSHAKE:
			if (c->eof) {
				client_lost(c);
				continue;
			}
			client_event(ev_r, SMTP_CLIENT_STARTTLS);
			return SMTP_CLIENT_STARTTLS;
		case CLIENT_READY:
			if (c->in.len > 0) {
				smtp_client_protocol_error(c, SMTP_CLIENT_STAGE_NONE,
				                           "unexpected data while idle");
				continue;
			}
			if (c->eof) {
				client_lost(c);
				continue;
			}
			client_event(ev_r, SMTP_CLIENT_READY);
			return SMTP_CLIENT_READY;
		default:
			break;
		}
		if (!client_read(c))
			break;
	}
	client_event(ev_r, SMTP_CLIENT_NEED_INPUT);
	return SMTP_CLIENT_NEED_INPUT;
}

void smtp_client_tls_started(struct smtp_client *c)
{
	if (c->state != CLIENT_HANDSHAKE) {
		log_err("smtp client tls_started without STARTTLS state=%d", (int)c->state);
		return;
	}
	/* RFC 3207 4.2: forget what the server said before the handshake. */
	c->tls_active = 1;
	c->esmtp = 0;
	c->ext = 0;
	c->size_limit = 0;
	buf_free(&c->in);
	client_ehlo(c);
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->state != CLIENT_READY || c->done_pending) {
		log_err("smtp client quit while not ready state=%d", (int)c->state);
		return;
	}
	c->state = CLIENT_QUIT;
	(void)smtp_client_command(c, SMTP_CLIENT_STAGE_QUIT, 0, "QUIT");
}

/* ---- output -------------------------------------------------------------- */

const char *smtp_client_output(struct smtp_client *c, size_t *len_r)
{
	smtp_client_body_fill(c);
	*len_r = c->out.len;
	return c->out.data ? c->out.data : "";
}

void smtp_client_output_consumed(struct smtp_client *c, size_t n)
{
	if (n > c->out.len)
		n = c->out.len;
	if (c->out_secret)
		util_wipe(c->out.data, n);
	buf_consume(&c->out, n);
	c->out_base += n;
	if (c->out.len == 0) {
		if (c->out_secret)
			client_out_free(c);
		else if (c->out.cap > SMTP_CLIENT_KEEP_MAX && c->state != CLIENT_BODY)
			buf_free(&c->out);
	}
}

/* ---- accessors ----------------------------------------------------------- */

unsigned smtp_client_extensions(const struct smtp_client *c)
{
	return c->ext;
}

uint64_t smtp_client_size_limit(const struct smtp_client *c)
{
	return c->size_limit;
}

int smtp_client_esmtp(const struct smtp_client *c)
{
	return c->esmtp;
}

int smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

int smtp_client_authenticated(const struct smtp_client *c)
{
	return c->authenticated;
}

size_t smtp_client_memory(const struct smtp_client *c)
{
	return sizeof *c + c->in.cap + c->out.cap + c->cmd_cap * sizeof *c->cmds +
	       c->results_cap * (sizeof *c->results + sizeof *c->rstate);
}
