/*
 * One message over a client session: MAIL, RCPT, DATA (pipelined in one
 * group when the server offers PIPELINING, RFC 2920; else one command per
 * reply), the body, and each recipient's outcome.
 *
 * Checks before anything is sent: addresses must parse (a bad one gets
 * its own 553), a message needing SMTPUTF8 is refused 553 5.6.7 by a
 * server without it, and one over the server's SIZE is refused 552 5.3.4.
 * Outcome per recipient: the RCPT reply when it was not 2xx, else the
 * reply to DATA (when refused) or to the final ".".  A transaction left
 * open on the server (MAIL accepted, no message sent) is closed with
 * RSET after DONE is reported.
 *
 * The body is produced a chunk at a time straight from the caller's
 * buffer: dot-stuffed (RFC 5321 4.5.2), a bare CR or LF sent as CRLF,
 * CRLF added when the last line lacks it, then ".".  So the stream never
 * holds an end-of-data look-alike a lenient server could stop at (SMTP
 * smuggling), whatever the message holds.
 */
#include "smtp/client_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* addr must be a path's content we can send as "<addr>". */
static int txn_address_ok(const char *addr, int allow_null, unsigned *utf8)
{
	char path[SMTP_CLIENT_ADDRESS_MAX + 3];
	struct smtp_address a;
	const char *why;
	size_t len = strlen(addr);

	if (len == 0)
		return allow_null;
	if (len > SMTP_CLIENT_ADDRESS_MAX)
		return 0;
	path[0] = '<';
	memcpy(path + 1, addr, len);
	path[len + 1] = '>';
	if (smtp_address_parse(path, len + 2, SMTP_ADDRESS_ALLOW_UTF8, &a, &why) < 0)
		return 0;
	/* The parser refuses these already; the command line depends on it. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)addr[i] < 0x20 || addr[i] == 0x7f)
			return 0;
	if (a.is_utf8)
		*utf8 = 1;
	return 1;
}

/* The size RFC 1870 asks for: the message with CRLF line ends, before
 * dot-stuffing (a repaired bare CR/LF may make it a little larger). */
static uint64_t txn_size(const struct smtp_client_message *m)
{
	if (m->len == 0)
		return 0;
	if (m->data[m->len - 1] == '\n')
		return m->len;
	return m->len + (m->data[m->len - 1] == '\r' ? 1 : 2);
}

static int txn_alloc(struct smtp_client *c, size_t n)
{
	if (n > c->results_cap) {
		struct smtp_client_reply *r = realloc(c->results, n * sizeof *r);
		unsigned char *st;

		if (r == NULL)
			return -1;
		c->results = r;
		st = realloc(c->rstate, n);
		if (st == NULL)
			return -1;
		c->rstate = st;
		c->results_cap = n;
	}
	memset(c->results, 0, n * sizeof *c->results);
	memset(c->rstate, CLIENT_RCPT_WAIT, n);
	return 0;
}

void smtp_client_txn_free(struct smtp_client *c)
{
	free(c->results);
	c->results = NULL;
	free(c->rstate);
	c->rstate = NULL;
	c->results_cap = 0;
	c->txn = 0;
}

/* The message is decided: report DONE; close a transaction left open. */
static void txn_done(struct smtp_client *c, const struct smtp_client_reply *decided, int rset)
{
	memset(&c->done_ev, 0, sizeof c->done_ev);
	c->done_ev.action = SMTP_CLIENT_DONE;
	c->done_ev.rcpts = c->results;
	c->done_ev.nrcpts = c->msg.nrcpts;
	c->done_ev.reply = *decided;
	c->done_pending = 1;
	c->txn = 0;
	c->state = CLIENT_READY;
	/* the body's chunk buffer is not kept while idle */
	if (c->out.len == 0 && c->out.cap > SMTP_CLIENT_KEEP_MAX)
		buf_free(&c->out);
	if (rset) {
		c->state = CLIENT_RSET;
		(void)smtp_client_command(c, SMTP_CLIENT_STAGE_RSET, 0, "RSET");
	}
}

/* Every recipient not yet decided gets r. */
static void txn_decide_rest(struct smtp_client *c, const struct smtp_client_reply *r)
{
	for (size_t i = 0; i < c->msg.nrcpts; i++) {
		if (c->rstate[i] == CLIENT_RCPT_FINAL)
			continue;
		c->results[i] = *r;
		c->rstate[i] = CLIENT_RCPT_FINAL;
	}
}

/* Refuse the message without sending it. */
static void txn_refuse(struct smtp_client *c, int code, const char *enhanced, const char *fmt, ...)
    UTIL_PRINTF(4, 5);
static void txn_refuse(struct smtp_client *c, int code, const char *enhanced, const char *fmt, ...)
{
	struct smtp_client_reply r;
	va_list ap;

	va_start(ap, fmt);
	smtp_client_reply_vset(&r, code, enhanced, SMTP_CLIENT_STAGE_MAIL, fmt, ap);
	va_end(ap);
	txn_decide_rest(c, &r);
	txn_done(c, &r, 0);
}

static int txn_mail(struct smtp_client *c)
{
	char size[32] = "";

	if (c->ext & SMTP_CLIENT_EXT_SIZE)
		snprintf(size, sizeof size, " SIZE=%llu", (unsigned long long)c->msg_size);
	return smtp_client_command(
	    c, SMTP_CLIENT_STAGE_MAIL, 0, "MAIL FROM:<%s>%s%s%s", c->msg.sender, size,
	    c->msg.eightbit && (c->ext & SMTP_CLIENT_EXT_8BITMIME) ? " BODY=8BITMIME" : "",
	    c->utf8 && (c->ext & SMTP_CLIENT_EXT_SMTPUTF8) ? " SMTPUTF8" : "");
}

static int txn_rcpt(struct smtp_client *c, size_t i)
{
	return smtp_client_command(c, SMTP_CLIENT_STAGE_RCPT, i, "RCPT TO:<%s>", c->msg.rcpts[i]);
}

/* Without pipelining: the command after a reply. */
static void txn_next(struct smtp_client *c)
{
	while (c->next_rcpt < c->msg.nrcpts && c->rstate[c->next_rcpt] != CLIENT_RCPT_WAIT)
		c->next_rcpt++;
	if (c->next_rcpt < c->msg.nrcpts) {
		(void)txn_rcpt(c, c->next_rcpt++);
		return;
	}
	if (c->accepted > 0) {
		(void)smtp_client_command(c, SMTP_CLIENT_STAGE_DATA, 0, "DATA");
		return;
	}
	/* Every recipient refused: no DATA (RFC 5321 3.3); MAIL was. */
	txn_done(c, &c->decided, 1);
}

int smtp_client_send(struct smtp_client *c, const struct smtp_client_message *m)
{
	size_t valid = 0;
	unsigned utf8;

	if (c->state != CLIENT_READY || c->done_pending || m == NULL || m->sender == NULL ||
	    m->rcpts == NULL || m->nrcpts == 0 || m->nrcpts > SMTP_CLIENT_RCPTS_MAX ||
	    (m->data == NULL && m->len > 0))
		return -1;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i] == NULL)
			return -1;
	if (txn_alloc(c, m->nrcpts) < 0)
		return -1;
	c->msg = *m;
	c->txn = 1;
	c->mail_state = 0;
	c->accepted = 0;
	c->next_rcpt = 0;
	c->body_done = c->body_discard = 0;
	memset(&c->decided, 0, sizeof c->decided);
	c->msg_size = txn_size(m);
	utf8 = m->smtputf8 ? 1 : 0;

	if (!txn_address_ok(m->sender, 1, &utf8)) {
		txn_refuse(c, 553, "5.1.7", "Bad sender address syntax");
		return 0;
	}
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (txn_address_ok(m->rcpts[i], 0, &utf8)) {
			valid++;
			continue;
		}
		smtp_client_reply_set(&c->results[i], 553, "5.1.3", SMTP_CLIENT_STAGE_RCPT,
		                      "Bad recipient address syntax");
		c->rstate[i] = CLIENT_RCPT_FINAL;
		c->decided = c->results[i];
	}
	if (valid == 0) {
		txn_done(c, &c->decided, 0);
		return 0;
	}
	c->utf8 = utf8;
	if (utf8 && !(c->ext & SMTP_CLIENT_EXT_SMTPUTF8)) {
		txn_refuse(c, 553, "5.6.7",
		           "SMTPUTF8 is required, but was not offered by the server");
		return 0;
	}
	if ((c->ext & SMTP_CLIENT_EXT_SIZE) && c->size_limit > 0 && c->msg_size > c->size_limit) {
		txn_refuse(c, 552, "5.3.4",
		           "Message size %llu exceeds the server's fixed maximum message size %llu",
		           (unsigned long long)c->msg_size, (unsigned long long)c->size_limit);
		return 0;
	}
	c->pipelined = (c->ext & SMTP_CLIENT_EXT_PIPELINING) && !c->cfg.no_pipelining;
	c->state = CLIENT_TXN;
	if (txn_mail(c) < 0 || !c->pipelined)
		return 0;
	/* RFC 2920: the whole envelope and DATA in one write. */
	for (size_t i = 0; i < m->nrcpts; i++)
		if (c->rstate[i] == CLIENT_RCPT_WAIT && txn_rcpt(c, i) < 0)
			return 0;
	(void)smtp_client_command(c, SMTP_CLIENT_STAGE_DATA, 0, "DATA");
	return 0;
}

/* ---- replies --------------------------------------------------------------- */

static void txn_body_start(struct smtp_client *c, int discard)
{
	c->state = CLIENT_BODY;
	c->body_pos = 0;
	c->body_state = CLIENT_BODY_BOL;
	c->body_done = 0;
	c->body_discard = discard ? 1 : 0;
	/* Its end is known once the final "." is produced. */
	if (smtp_client_expect(c, SMTP_CLIENT_STAGE_DATA_END, 0, UINT64_MAX) < 0)
		smtp_client_oom(c);
}

static void txn_on_data(struct smtp_client *c, const struct smtp_client_reply *r)
{
	if (r->code == 354) {
		/* With nobody accepted (a broken server, or the MAIL refused
		 * in a pipelined group): end the empty message, and keep the
		 * outcomes known. */
		txn_body_start(c, c->mail_state < 0 || c->accepted == 0);
		return;
	}
	if (r->code / 100 < 4) {
		smtp_client_protocol_error(c, SMTP_CLIENT_STAGE_DATA, "DATA accepted without 354");
		return;
	}
	if (c->mail_state > 0 && c->accepted > 0) {
		txn_decide_rest(c, r);
		txn_done(c, r, 1);
	} else {
		/* the refusal that came first says more than DATA's 503/554 */
		txn_done(c, &c->decided, c->mail_state > 0);
	}
}

void smtp_client_txn_reply(struct smtp_client *c, const struct smtp_client_cmd *cmd,
                           const struct smtp_client_reply *r)
{
	int ok = r->code / 100 == 2;

	switch (cmd->stage) {
	case SMTP_CLIENT_STAGE_MAIL:
		if (ok) {
			c->mail_state = 1;
			if (!c->pipelined)
				txn_next(c);
			return;
		}
		c->mail_state = -1;
		c->decided = *r;
		txn_decide_rest(c, r);
		if (!c->pipelined)
			txn_done(c, r, 0);
		return;
	case SMTP_CLIENT_STAGE_RCPT:
		/* After a refused MAIL, RCPT replies (503) change nothing. */
		if (c->mail_state > 0 && cmd->rcpt < c->msg.nrcpts) {
			c->results[cmd->rcpt] = *r;
			if (ok) {
				c->rstate[cmd->rcpt] = CLIENT_RCPT_ACCEPTED;
				c->accepted++;
			} else {
				c->rstate[cmd->rcpt] = CLIENT_RCPT_FINAL;
				c->decided = *r;
			}
		}
		if (!c->pipelined && c->mail_state > 0)
			txn_next(c);
		return;
	case SMTP_CLIENT_STAGE_DATA:
		txn_on_data(c, r);
		return;
	default:
		smtp_client_protocol_error(c, cmd->stage, "reply to nothing");
		return;
	}
}

void smtp_client_body_reply(struct smtp_client *c, const struct smtp_client_cmd *cmd,
                            const struct smtp_client_reply *r)
{
	/* The server answered before it could have seen the final ".". */
	int early = !c->body_done || cmd->end > c->out_base;

	if (r->code / 100 == 2 && early) {
		smtp_client_protocol_error(c, SMTP_CLIENT_STAGE_BODY,
		                           "message accepted before its end");
		return;
	}
	if (c->body_discard) {
		txn_done(c, &c->decided, 0);
	} else {
		txn_decide_rest(c, r);
		txn_done(c, r, 0);
	}
	/* The rest of the body would be read as commands: give up on the
	 * session once DONE is reported. */
	if (early)
		smtp_client_fail_local(c, 451, "4.5.0", SMTP_CLIENT_STAGE_BODY,
		                       "Protocol error: reply before the end of the message");
}

void smtp_client_txn_abort(struct smtp_client *c, const struct smtp_client_reply *why)
{
	txn_decide_rest(c, why);
	c->txn = 0;
}

/* ---- the body ------------------------------------------------------------- */

void smtp_client_body_fill(struct smtp_client *c)
{
	const unsigned char *src = (const unsigned char *)c->msg.data;
	size_t pos = c->body_pos, len = c->body_discard ? 0 : c->msg.len;
	enum smtp_client_body_state st = c->body_state;
	struct smtp_client_cmd *end;
	char *o, *stop;

	if (c->state != CLIENT_BODY || c->body_done || c->out.len >= SMTP_CLIENT_CHUNK)
		return;
	/* Filling stops past SMTP_CLIENT_CHUNK: an octet in makes at most
	 * three out (LF "." "." after a bare CR), the end at most five. */
	if (buf_reserve(&c->out, SMTP_CLIENT_CHUNK + 8 - c->out.len) < 0) {
		smtp_client_oom(c);
		return;
	}
	o = c->out.data + c->out.len;
	stop = c->out.data + SMTP_CLIENT_CHUNK;
	while (pos < len && o < stop) {
		unsigned char ch = src[pos];

		if (st == CLIENT_BODY_CR) {
			*o++ = '\n';
			st = CLIENT_BODY_BOL;
			if (ch == '\n') {
				pos++;
				continue;
			}
			/* a bare CR ended its line; ch starts the next */
		}
		if (ch == '\r') {
			*o++ = '\r';
			st = CLIENT_BODY_CR;
		} else if (ch == '\n') {
			*o++ = '\r';
			*o++ = '\n';
			st = CLIENT_BODY_BOL;
		} else {
			if (st == CLIENT_BODY_BOL && ch == '.')
				*o++ = '.';
			*o++ = (char)ch;
			st = CLIENT_BODY_MID;
		}
		pos++;
	}
	if (pos == len) {
		if (st == CLIENT_BODY_CR) {
			*o++ = '\n';
		} else if (st == CLIENT_BODY_MID) {
			*o++ = '\r';
			*o++ = '\n';
		}
		memcpy(o, ".\r\n", 3);
		o += 3;
		st = CLIENT_BODY_BOL;
		c->body_done = 1;
	}
	c->body_pos = pos;
	c->body_state = st;
	c->out.len = (size_t)(o - c->out.data);
	c->out.data[c->out.len] = '\0';
	end = smtp_client_head(c);
	if (c->body_done && end != NULL && end->stage == SMTP_CLIENT_STAGE_DATA_END)
		end->end = c->out_base + c->out.len;
}
