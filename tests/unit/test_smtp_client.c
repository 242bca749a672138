/*
 * SMTP client session: scripted conversations (what the server sends, and
 * the exact output the client must produce after it), each run twice: fed
 * whole and fed one byte at a time ("trickle").  The driver plays the
 * caller: it drains the output whenever the client waits, completes
 * STARTTLS at once, sends the conversation's messages in turn when READY
 * and then QUITs, and logs DONE and CLOSED events so a conversation pins
 * every outcome the caller is told.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

#define MAX_STEPS 16
#define MAX_MSGS 4

/* ---- the server's side ---------------------------------------------------- */

#define S_GREET "220 mx.example ESMTP\r\n"
#define S_EHLO_FULL                                                                                \
	"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 10240\r\n250-8BITMIME\r\n"                   \
	"250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
#define S_EHLO_NOPIPE "250-mx.example\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define S_EHLO_TLS "250-mx.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
#define S_EHLO_AUTH                                                                                \
	"250-mx.example\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH LOGIN PLAIN\r\n"
#define S_EHLO_LOGIN "250-mx.example\r\n250-ENHANCEDSTATUSCODES\r\n250 AUTH=LOGIN CRAM-MD5\r\n"
#define S_EHLO_BARE "250 mx.example\r\n"
#define S_OK_MAIL "250 2.1.0 Ok\r\n"
#define S_OK_RCPT "250 2.1.5 Ok\r\n"
#define S_GO "354 End data with <CR><LF>.<CR><LF>\r\n"
#define S_OK_DATA "250 2.0.0 Ok: queued as X\r\n"
#define S_OK "250 2.0.0 Ok\r\n"
#define S_BYE "221 2.0.0 Bye\r\n"
#define S_TLS_GO "220 2.0.0 Ready to start TLS\r\n"
#define S_AUTH_OK "235 2.7.0 Authentication successful\r\n"
#define S_UNKNOWN "550 5.1.1 No such user\r\n"

/* ---- the client's side ---------------------------------------------------- */

#define C_EHLO "EHLO client.example\r\n"
#define C_HELO "HELO client.example\r\n"
#define C_QUIT "QUIT\r\n"
#define C_DATA "DATA\r\n"
#define C_RSET "RSET\r\n"
#define C_STARTTLS "STARTTLS\r\n"
#define C_MAIL "MAIL FROM:<a@x.example>\r\n"
#define C_MAIL_SIZE "MAIL FROM:<a@x.example> SIZE=22\r\n"
#define C_RCPT_B "RCPT TO:<b@y.example>\r\n"
#define C_RCPT_C "RCPT TO:<c@y.example>\r\n"
#define C_RCPT_D "RCPT TO:<d@y.example>\r\n"
#define C_PLAIN "AUTH PLAIN AHVzZXIAcGFzcw==\r\n" /* "\0user\0pass" */

#define BODY1 "Subject: hi\r\n\r\nhello\r\n"
#define C_BODY1 BODY1 ".\r\n"

/* ---- messages ------------------------------------------------------------- */

static const char *const RCPT_B[] = {"b@y.example"};
static const char *const RCPT_BCD[] = {"b@y.example", "c@y.example", "d@y.example"};
static const char *const RCPT_BAD[] = {"b@y.example", "not an address", "c@y.example\r\nRSET"};
static const char *const RCPT_UTF8[] = {"\xe7\x94\xa8@\xe4\xbe\x8b.example"};

static const struct smtp_client_message MSG1 = {
    .sender = "a@x.example", .rcpts = RCPT_B, .nrcpts = 1, .data = BODY1, .len = sizeof BODY1 - 1};
static const struct smtp_client_message MSG3 = {.sender = "a@x.example",
                                                .rcpts = RCPT_BCD,
                                                .nrcpts = 3,
                                                .data = BODY1,
                                                .len = sizeof BODY1 - 1};
static const struct smtp_client_message MSG_NULL = {
    .sender = "", .rcpts = RCPT_B, .nrcpts = 1, .data = BODY1, .len = sizeof BODY1 - 1};
static const struct smtp_client_message MSG_8BIT = {.sender = "a@x.example",
                                                    .rcpts = RCPT_B,
                                                    .nrcpts = 1,
                                                    .data = "caf\xc3\xa9\r\n",
                                                    .len = 7,
                                                    .eightbit = 1};
static const struct smtp_client_message MSG_UTF8 = {.sender = "a@x.example",
                                                    .rcpts = RCPT_UTF8,
                                                    .nrcpts = 1,
                                                    .data = BODY1,
                                                    .len = sizeof BODY1 - 1};
static const struct smtp_client_message MSG_UTF8_FLAG = {.sender = "a@x.example",
                                                         .rcpts = RCPT_B,
                                                         .nrcpts = 1,
                                                         .data = BODY1,
                                                         .len = sizeof BODY1 - 1,
                                                         .smtputf8 = 1};
static const struct smtp_client_message MSG_BAD_RCPT = {.sender = "a@x.example",
                                                        .rcpts = RCPT_BAD,
                                                        .nrcpts = 3,
                                                        .data = BODY1,
                                                        .len = sizeof BODY1 - 1};
static const struct smtp_client_message MSG_BAD_SENDER = {.sender = "a@x.example> SIZE=1",
                                                          .rcpts = RCPT_B,
                                                          .nrcpts = 1,
                                                          .data = BODY1,
                                                          .len = sizeof BODY1 - 1};
/* dots at line starts, a bare LF, a bare CR, a lone "." line, no final CRLF */
#define DOTS ".hidden\r\n..two\r\nmid.dot\r\n.\r\nbare\nlf\rcr\r\n.\n.end"
#define C_DOTS "..hidden\r\n...two\r\nmid.dot\r\n..\r\nbare\r\nlf\r\ncr\r\n..\r\n..end\r\n.\r\n"
static const struct smtp_client_message MSG_DOTS = {
    .sender = "a@x.example", .rcpts = RCPT_B, .nrcpts = 1, .data = DOTS, .len = sizeof DOTS - 1};
static const struct smtp_client_message MSG_EMPTY = {
    .sender = "a@x.example", .rcpts = RCPT_B, .nrcpts = 1, .data = NULL, .len = 0};

/* ---- conversations -------------------------------------------------------- */

struct exchange {
	const char *recv; /* what the server sends; NULL: nothing */
	size_t len;       /* 0: strlen(recv) */
	int eof, timeout; /* instead: the connection ends, the timer fires */
	const char *expect;
};

struct conversation {
	const char *name;
	const char *user, *password;
	const struct smtp_client_message *msgs[MAX_MSGS];
	struct exchange steps[MAX_STEPS];
	const char *events;
	enum smtp_client_tls tls;
	int no_pipelining;
	int whole_only; /* depends on what arrives in one read */
	int no_quit;    /* stay READY when the messages are sent */
	int ends_closed;
};

struct driver {
	const struct conversation *t;
	struct smtp_client *c;
	size_t next_msg;
	int quit, closed, tls_now;
	char *events;
	size_t events_len;
	char *out;
	size_t out_len;
};

static void append(char **p, size_t *len, const char *data, size_t n)
{
	char *q = realloc(*p, *len + n + 1);

	assert_non_null(q);
	memcpy(q + *len, data, n);
	*len += n;
	q[*len] = '\0';
	*p = q;
}

static void log_event(struct driver *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_event(struct driver *d, const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof line);
	append(&d->events, &d->events_len, line, (size_t)n);
}

/* "550 5.1.1@RCPT TO", with "*" when the client made it up. */
static void log_reply(struct driver *d, const struct smtp_client_reply *r)
{
	assert_true(r->code >= 200 && r->code <= 599);
	log_event(d, "%d%s%s@%s%s", r->code, r->enhanced[0] ? " " : "", r->enhanced,
	          smtp_client_stage_name(r->stage), r->local ? "*" : "");
}

static void log_rcpts(struct driver *d, const struct smtp_client_event *ev)
{
	if (ev->nrcpts == 0)
		return;
	log_event(d, " [");
	for (size_t i = 0; i < ev->nrcpts; i++) {
		if (i > 0)
			log_event(d, ", ");
		log_reply(d, &ev->rcpts[i]);
	}
	log_event(d, "]");
}

static void drain(struct driver *d)
{
	size_t n;
	const char *o;

	/* The body comes a chunk at a time: drain until nothing is left. */
	while ((o = smtp_client_output(d->c, &n)), n > 0) {
		append(&d->out, &d->out_len, o, n);
		smtp_client_output_consumed(d->c, n);
	}
}

static void send_next(struct driver *d)
{
	const struct smtp_client_message *m = d->t->msgs[d->next_msg++];

	assert_int_equal(smtp_client_send(d->c, m), 0);
	/* only once READY: the second call is refused */
	assert_int_equal(smtp_client_send(d->c, m), -1);
}

/* Run the client until it waits for input or closes. */
static void pump(struct driver *d)
{
	for (int guard = 0; guard < 1000; guard++) {
		struct smtp_client_event ev;
		enum smtp_client_action a = smtp_client_step(d->c, &ev);

		assert_int_equal(ev.action, a);
		switch (a) {
		case SMTP_CLIENT_NEED_INPUT:
			drain(d);
			assert_true(smtp_client_wants_input(d->c) > 0);
			assert_true(smtp_client_timeout_ms(d->c) > 0);
			return;
		case SMTP_CLIENT_STARTTLS: {
			size_t n;

			(void)smtp_client_output(d->c, &n);
			assert_int_equal(n, 0);
			assert_int_equal(smtp_client_wants_input(d->c), 0);
			log_event(d, "STARTTLS;");
			d->tls_now = 1;
			smtp_client_tls_started(d->c);
			break;
		}
		case SMTP_CLIENT_READY:
			assert_int_equal(smtp_client_timeout_ms(d->c), 0);
			if (d->next_msg < MAX_MSGS && d->t->msgs[d->next_msg]) {
				send_next(d);
			} else if (d->t->no_quit) {
				drain(d);
				return;
			} else {
				assert_int_equal(d->quit, 0);
				d->quit = 1;
				smtp_client_quit(d->c);
			}
			break;
		case SMTP_CLIENT_DONE:
			log_event(d, "DONE ");
			log_reply(d, &ev.reply);
			log_rcpts(d, &ev);
			log_event(d, ";");
			break;
		case SMTP_CLIENT_CLOSED:
			drain(d);
			if (ev.failed) {
				log_event(d, "CLOSED ");
				log_reply(d, &ev.reply);
				log_event(d, " %s", ev.reply.text);
				log_rcpts(d, &ev);
				log_event(d, ";");
			} else {
				assert_null(ev.rcpts);
				log_event(d, "CLOSED ok;");
			}
			d->closed = 1;
			assert_int_equal(smtp_client_wants_input(d->c), 0);
			/* CLOSED stays */
			assert_int_equal(smtp_client_step(d->c, NULL), SMTP_CLIENT_CLOSED);
			return;
		}
	}
	fail_msg("%s: the client does not settle", d->t->name);
}

static void feed(struct driver *d, const char *data, size_t len, int trickle)
{
	d->tls_now = 0;
	while (len > 0 && !d->closed) {
		size_t n = trickle ? 1 : len;

		/* Bytes behind the STARTTLS reply would go to the handshake. */
		if (d->tls_now)
			return;
		assert_true(n <= smtp_client_wants_input(d->c));
		smtp_client_feed(d->c, data, n);
		data += n;
		len -= n;
		pump(d);
	}
}

static void run_conversation(const struct conversation *t, int trickle)
{
	struct smtp_client_config cfg = {
	    .helo_name = "client.example",
	    .tls = t->tls,
	    .auth_user = t->user,
	    .auth_password = t->password,
	    .no_pipelining = t->no_pipelining,
	};
	struct driver d = {.t = t};

	d.c = smtp_client_new(&cfg);
	assert_non_null(d.c);
	pump(&d);
	for (size_t i = 0; i < MAX_STEPS; i++) {
		const struct exchange *x = &t->steps[i];

		if (!x->recv && !x->expect && !x->eof && !x->timeout)
			break;
		if (x->recv)
			feed(&d, x->recv, x->len ? x->len : strlen(x->recv), trickle);
		if (x->eof)
			smtp_client_eof(d.c);
		if (x->timeout)
			smtp_client_timeout(d.c);
		if (!d.closed)
			pump(&d);
		if (d.out_len != strlen(x->expect ? x->expect : "") ||
		    strcmp(d.out ? d.out : "", x->expect ? x->expect : "") != 0)
			fail_msg("%s (%s) step %zu: got\n%s\nwant\n%s\nevents %s", t->name,
			         trickle ? "trickle" : "whole", i, d.out ? d.out : "",
			         x->expect ? x->expect : "", d.events ? d.events : "");
		free(d.out);
		d.out = NULL;
		d.out_len = 0;
	}
	if (strcmp(d.events ? d.events : "", t->events ? t->events : "") != 0)
		fail_msg("%s (%s): events\n%s\nwant\n%s", t->name, trickle ? "trickle" : "whole",
		         d.events ? d.events : "", t->events ? t->events : "");
	if (t->ends_closed != d.closed)
		fail_msg("%s (%s): closed %d, want %d", t->name, trickle ? "trickle" : "whole",
		         d.closed, t->ends_closed);
	smtp_client_free(&d.c);
	assert_null(d.c);
	free(d.events);
}

#define START                                                                                      \
	{                                                                                          \
		.expect = ""                                                                       \
	}
#define GREET                                                                                      \
	{                                                                                          \
		.recv = S_GREET, .expect = C_EHLO                                                  \
	}
#define BYE                                                                                        \
	{                                                                                          \
		.recv = S_BYE                                                                      \
	}
#define DELIVERED "DONE 250 2.0.0@end of DATA [250 2.0.0@end of DATA];"
#define PROTO(stage, what) "CLOSED 451 4.5.0@" stage "* Protocol error: " what ";"

/* A server that goes wrong right after EHLO: the client is waiting for
 * the MAIL reply (pipelined group sent). */
#define HOSTILE(n, reply, what)                                                                    \
	{                                                                                          \
		.name = "hostile: " n, .msgs = {&MSG1},                                            \
		.steps = {START,                                                                   \
		          GREET,                                                                   \
		          {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},            \
		          {.recv = reply, .len = sizeof(reply) - 1}},                              \
		.events = "CLOSED 451 4.5.0@MAIL FROM* Protocol error: " what                      \
		          " [451 4.5.0@MAIL FROM*];",                                              \
		.ends_closed = 1,                                                                  \
	}

#define R10 "xxxxxxxxxx"
#define R100 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10
#define R1000 R100 R100 R100 R100 R100 R100 R100 R100 R100 R100
#define R4000 R1000 R1000 R1000 R1000
#define L8(x) x x x x x x x x
#define L64(x) L8(x) L8(x) L8(x) L8(x) L8(x) L8(x) L8(x) L8(x)

static const struct conversation conversations[] = {
    {
        .name = "pipelined delivery",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "delivery without PIPELINING",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "PIPELINING offered, not used by configuration",
        .no_pipelining = 1,
        .msgs = {&MSG3},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_RCPT_C},
                  {.recv = S_UNKNOWN, .expect = C_RCPT_D},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "DONE 250 2.0.0@end of DATA [250 2.0.0@end of DATA, 550 5.1.1@RCPT TO, "
                  "250 2.0.0@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "one recipient refused among three, pipelined",
        .msgs = {&MSG3},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_UNKNOWN S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "DONE 250 2.0.0@end of DATA [250 2.0.0@end of DATA, 550 5.1.1@RCPT TO, "
                  "250 2.0.0@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "several messages on one connection, null sender",
        .msgs = {&MSG1, &MSG_NULL, &MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = "MAIL FROM:<>\r\n"},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = "452 4.2.2 Mailbox full\r\n", .expect = C_RSET},
                  {.recv = S_OK, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = "250 2.0.0 Ok: queued as Y\r\n", .expect = C_QUIT},
                  BYE},
        .events = DELIVERED "DONE 452 4.2.2@RCPT TO [452 4.2.2@RCPT TO];" DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "every recipient refused, pipelined: DATA refused, then RSET",
        .msgs = {&MSG3, &MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = S_OK_MAIL S_UNKNOWN "550 5.7.1 Relaying denied\r\n"
                                               "450 4.2.0 Greylisted\r\n"
                                               "554 5.5.1 No valid recipients\r\n",
                   .expect = C_RSET},
                  {.recv = S_OK, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "DONE 450 4.2.0@RCPT TO [550 5.1.1@RCPT TO, 550 5.7.1@RCPT TO, "
                  "450 4.2.0@RCPT TO];" DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "every recipient refused, not pipelined: no DATA",
        .msgs = {&MSG3},
        .no_pipelining = 1,
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_UNKNOWN, .expect = C_RCPT_C},
                  {.recv = S_UNKNOWN, .expect = C_RCPT_D},
                  {.recv = S_UNKNOWN, .expect = C_RSET},
                  {.recv = S_OK, .expect = C_QUIT},
                  BYE},
        .events = "DONE 550 5.1.1@RCPT TO [550 5.1.1@RCPT TO, 550 5.1.1@RCPT TO, "
                  "550 5.1.1@RCPT TO];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "MAIL refused, pipelined",
        .msgs = {&MSG3},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = "553 5.7.1 Sender rejected\r\n503 5.5.1 Need MAIL\r\n"
                           "503 5.5.1 Need MAIL\r\n503 5.5.1 Need MAIL\r\n503 5.5.1 Need MAIL\r\n",
                   .expect = C_QUIT},
                  BYE},
        .events = "DONE 553 5.7.1@MAIL FROM [553 5.7.1@MAIL FROM, 553 5.7.1@MAIL FROM, "
                  "553 5.7.1@MAIL FROM];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "MAIL refused, not pipelined",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = "451 4.3.0 Try later\r\n", .expect = C_QUIT},
                  BYE},
        .events = "DONE 451 4.3.0@MAIL FROM [451 4.3.0@MAIL FROM];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "DATA refused after recipients accepted",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT "451 4.3.0 No DATA now\r\n", .expect = C_RSET},
                  {.recv = S_OK, .expect = C_QUIT},
                  BYE},
        .events = "DONE 451 4.3.0@DATA [451 4.3.0@DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "message refused at the end of data",
        .msgs = {&MSG3, &MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT "452 4.5.3 Too many recipients\r\n" S_OK_RCPT S_GO,
                   .expect = C_BODY1},
                  {.recv = "554-5.7.1 Message refused:\r\n554 5.7.1 spam\r\n",
                   .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "DONE 554 5.7.1@end of DATA [554 5.7.1@end of DATA, 452 4.5.3@RCPT TO, "
                  "554 5.7.1@end of DATA];" DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "SIZE: message larger than the server takes is not sent",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 20\r\n", .expect = C_QUIT},
                  BYE},
        .events = "DONE 552 5.3.4@MAIL FROM* [552 5.3.4@MAIL FROM*];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "SIZE without a limit, 8BITMIME",
        .msgs = {&MSG_8BIT},
        .steps = {START,
                  GREET,
                  {.recv = "250-mx.example\r\n250-size\r\n250 8bitmime\r\n",
                   .expect = "MAIL FROM:<a@x.example> SIZE=7 BODY=8BITMIME\r\n"},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = "caf\xc3\xa9\r\n.\r\n"},
                  {.recv = "250 Ok\r\n", .expect = C_QUIT},
                  BYE},
        .events = "DONE 250@end of DATA [250@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "8-bit message to a server without 8BITMIME is sent anyway",
        .msgs = {&MSG_8BIT},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_BARE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = "caf\xc3\xa9\r\n.\r\n"},
                  {.recv = "250 Ok\r\n", .expect = C_QUIT},
                  BYE},
        .events = "DONE 250@end of DATA [250@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "SMTPUTF8 needed and not offered",
        .msgs = {&MSG_UTF8, &MSG_UTF8_FLAG},
        .steps = {START, GREET, {.recv = S_EHLO_NOPIPE, .expect = C_QUIT}, BYE},
        .events = "DONE 553 5.6.7@MAIL FROM* [553 5.6.7@MAIL FROM*];"
                  "DONE 553 5.6.7@MAIL FROM* [553 5.6.7@MAIL FROM*];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "SMTPUTF8 needed and offered",
        .msgs = {&MSG_UTF8},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL,
                   .expect = "MAIL FROM:<a@x.example> SIZE=22 SMTPUTF8\r\n"
                             "RCPT TO:<\xe7\x94\xa8@\xe4\xbe\x8b.example>\r\n" C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "invalid addresses are refused without being sent",
        .msgs = {&MSG_BAD_RCPT, &MSG_BAD_SENDER},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "DONE 250 2.0.0@end of DATA [250 2.0.0@end of DATA, 553 5.1.3@RCPT TO*, "
                  "553 5.1.3@RCPT TO*];DONE 553 5.1.7@MAIL FROM* [553 5.1.7@MAIL FROM*];"
                  "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "dot-stuffing, line ends repaired, final CRLF added",
        .msgs = {&MSG_DOTS, &MSG_EMPTY},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_DOTS},
                  {.recv = S_OK_DATA, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = ".\r\n"},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = DELIVERED DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS, opportunistic",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_TLS, .expect = C_STARTTLS},
                  {.recv = S_TLS_GO, .expect = C_EHLO},
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "STARTTLS;" DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS: bytes after the 220 are discarded",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_TLS, .expect = C_STARTTLS},
                  {.recv = S_TLS_GO S_EHLO_BARE S_OK_MAIL S_OK_RCPT, .expect = C_EHLO},
                  /* what EHLO said before TLS (PIPELINING) is forgotten */
                  {.recv = "250-mx.example\r\n250 STARTTLS\r\n", .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = "250 Ok\r\n", .expect = C_QUIT},
                  BYE},
        .events = "STARTTLS;DONE 250@end of DATA [250@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS required, not offered",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .msgs = {&MSG1},
        .steps = {START, GREET, {.recv = S_EHLO_FULL, .expect = C_QUIT}},
        .events = "CLOSED 451 4.7.10@STARTTLS* TLS required but not offered;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS required, refused",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_TLS, .expect = C_STARTTLS},
                  {.recv = "454 4.7.0 TLS not available\r\n", .expect = C_QUIT}},
        .events = "CLOSED 451 4.7.10@STARTTLS* TLS required but STARTTLS refused: 454 TLS "
                  "not available;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS opportunistic, refused: plaintext",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_TLS, .expect = C_STARTTLS},
                  {.recv = "502 5.5.1 Not now\r\n", .expect = C_MAIL C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "STARTTLS not used when TLS is off",
        .tls = SMTP_CLIENT_TLS_NONE,
        .no_quit = 1,
        .steps = {START, GREET, {.recv = S_EHLO_TLS}},
    },
    {
        .name = "AUTH PLAIN after STARTTLS",
        .tls = SMTP_CLIENT_TLS_REQUIRED,
        .user = "user",
        .password = "pass",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_TLS, .expect = C_STARTTLS},
                  {.recv = S_TLS_GO, .expect = C_EHLO},
                  {.recv = S_EHLO_AUTH, .expect = C_PLAIN},
                  {.recv = S_AUTH_OK, .expect = C_MAIL C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA, .expect = C_QUIT},
                  BYE},
        .events = "STARTTLS;" DELIVERED "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "AUTH LOGIN on implicit TLS",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .user = "user",
        .password = "pass",
        .no_quit = 1,
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_LOGIN, .expect = "AUTH LOGIN\r\n"},
                  {.recv = "334 VXNlcm5hbWU6\r\n", .expect = "dXNlcg==\r\n"},
                  {.recv = "334 UGFzc3dvcmQ6\r\n", .expect = "cGFzcw==\r\n"},
                  {.recv = S_AUTH_OK}},
    },
    {
        .name = "AUTH refused",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .user = "user",
        .password = "pass",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_AUTH, .expect = C_PLAIN},
                  {.recv = "535 5.7.8 Authentication credentials invalid\r\n", .expect = C_QUIT}},
        .events = "CLOSED 435 4.7.8@AUTH* Authentication credentials invalid;",
        .ends_closed = 1,
    },
    {
        .name = "AUTH LOGIN: password challenge refused",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .user = "user",
        .password = "pass",
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_LOGIN, .expect = "AUTH LOGIN\r\n"},
                  {.recv = "334 VXNlcm5hbWU6\r\n", .expect = "dXNlcg==\r\n"},
                  {.recv = "334 UGFzc3dvcmQ6\r\n", .expect = "cGFzcw==\r\n"},
                  {.recv = "334 again?\r\n"}},
        .events = "CLOSED 454 4.7.0@AUTH* Authentication failed: unexpected reply 334 again?;",
        .ends_closed = 1,
    },
    {
        .name = "AUTH not offered",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .user = "user",
        .password = "pass",
        .steps = {START, GREET, {.recv = S_EHLO_FULL, .expect = C_QUIT}},
        .events = "CLOSED 451 4.7.0@AUTH* AUTH PLAIN or LOGIN not offered by the server;",
        .ends_closed = 1,
    },
    {
        .name = "AUTH never without TLS",
        .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC,
        .user = "user",
        .password = "pass",
        .steps = {START, GREET, {.recv = S_EHLO_AUTH, .expect = C_QUIT}},
        .events = "CLOSED 451 4.7.10@AUTH* AUTH needs TLS, which is not active;",
        .ends_closed = 1,
    },
    {
        .name = "EHLO refused: HELO, no extensions",
        .msgs = {&MSG_8BIT},
        .steps = {START,
                  GREET,
                  {.recv = "502 5.5.2 Command not recognized\r\n", .expect = C_HELO},
                  {.recv = "250 mx.example\r\n", .expect = C_MAIL},
                  {.recv = "250 Ok\r\n", .expect = C_RCPT_B},
                  {.recv = "250 Ok\r\n", .expect = C_DATA},
                  {.recv = S_GO, .expect = "caf\xc3\xa9\r\n.\r\n"},
                  {.recv = "250 Ok\r\n", .expect = C_QUIT},
                  BYE},
        .events = "DONE 250@end of DATA [250@end of DATA];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "EHLO and HELO refused: permanent",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = "500 5.5.1 What?\r\n", .expect = C_HELO},
                  {.recv = "550 5.7.1 Go away\r\n", .expect = C_QUIT}},
        .events = "CLOSED 550@HELO 5.7.1 Go away;",
        .ends_closed = 1,
    },
    {
        .name = "EHLO 4xx",
        .steps = {START, GREET, {.recv = "454 4.7.0 Later\r\n", .expect = C_QUIT}},
        .events = "CLOSED 454@EHLO 4.7.0 Later;",
        .ends_closed = 1,
    },
    {
        .name = "5xx greeting: temporary",
        .steps = {START,
                  {.recv = "554-mx.example\r\n554 No SMTP service here\r\n", .expect = C_QUIT}},
        .events = "CLOSED 454@greeting* mx.example No SMTP service here;",
        .ends_closed = 1,
    },
    {
        .name = "421 greeting",
        .steps = {START, {.recv = "421 4.3.2 Busy\r\n"}},
        .events = "CLOSED 421@greeting 4.3.2 Busy;",
        .ends_closed = 1,
    },
    {
        .name = "421 mid-session",
        .msgs = {&MSG3},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = S_OK_MAIL S_UNKNOWN "421 4.4.2 Timeout, closing\r\n"}},
        .events = "CLOSED 421 4.4.2@RCPT TO Timeout, closing [550 5.1.1@RCPT TO, "
                  "421 4.4.2@RCPT TO, 421 4.4.2@RCPT TO];",
        .ends_closed = 1,
    },
    {
        .name = "421 at the end of data",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL, .expect = C_RCPT_B},
                  {.recv = S_OK_RCPT, .expect = C_DATA},
                  {.recv = S_GO, .expect = C_BODY1},
                  {.recv = "421 4.3.0 Shutting down\r\n"}},
        .events = "CLOSED 421 4.3.0@end of DATA Shutting down [421 4.3.0@end of DATA];",
        .ends_closed = 1,
    },
    {
        .name = "timeout waiting for RCPT",
        .msgs = {&MSG3},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_RCPT_C C_RCPT_D C_DATA},
                  {.recv = S_OK_MAIL S_UNKNOWN},
                  {.timeout = 1}},
        .events = "CLOSED 451 4.4.2@RCPT TO* Timed out while waiting for the RCPT TO reply "
                  "[550 5.1.1@RCPT TO, 451 4.4.2@RCPT TO*, 451 4.4.2@RCPT TO*];",
        .ends_closed = 1,
    },
    {
        .name = "timeout after the message",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.timeout = 1}},
        .events = "CLOSED 451 4.4.2@end of DATA* Timed out while waiting for the end of DATA "
                  "reply [451 4.4.2@end of DATA*];",
        .ends_closed = 1,
    },
    {
        .name = "connection lost mid-transaction",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL "250 2.1.5", .eof = 1}},
        .events = "CLOSED 451 4.4.2@RCPT TO* Lost connection while waiting for the RCPT TO "
                  "reply [451 4.4.2@RCPT TO*];",
        .ends_closed = 1,
    },
    {
        .name = "connection closed while idle",
        .no_quit = 1,
        .steps = {START, GREET, {.recv = S_EHLO_FULL}, {.eof = 1}},
        .events = "CLOSED 451 4.4.2@none* Connection closed by the server;",
        .ends_closed = 1,
    },
    {
        .name = "QUIT answered by a close",
        .steps = {START, GREET, {.recv = S_EHLO_FULL, .expect = C_QUIT}, {.eof = 1}},
        .events = "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "421 while idle",
        .no_quit = 1,
        .steps = {START, GREET, {.recv = S_EHLO_FULL}, {.recv = "421 4.4.2 Idle timeout\r\n"}},
        .events = PROTO("none", "unexpected data while idle"),
        .ends_closed = 1,
    },
    {
        .name = "enhanced codes only when advertised; multi-line text",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_BARE, .expect = C_MAIL},
                  {.recv = "250 2.1.0 Ok\r\n", .expect = C_RCPT_B},
                  {.recv = "550-5.1.1 The account\r\n550-5.1.1 does not\r\n550 5.1.1 exist\r\n",
                   .expect = C_RSET},
                  {.recv = S_OK, .expect = C_QUIT},
                  BYE},
        .events = "DONE 550@RCPT TO [550@RCPT TO];CLOSED ok;",
        .ends_closed = 1,
    },
    /* hostile servers */
    HOSTILE("line too long", "250 " R4000 R100 "\r\n", "reply line too long"),
    HOSTILE("line too long, never ending", "250 " R4000 R100, "reply line too long"),
    HOSTILE("too many lines", L64("250-" R10 "\r\n") "250 ok\r\n", "reply has too many lines"),
    HOSTILE("reply too long", L8("250-" R1000 R1000 R100 "\r\n") "250 ok\r\n", "reply too long"),
    HOSTILE("no code", "Ok\r\n", "reply without a code"),
    HOSTILE("short line", "25\r\n", "reply without a code"),
    HOSTILE("empty line", "\r\n", "reply without a code"),
    HOSTILE("non-numeric code", "2x0 Ok\r\n", "reply without a code"),
    HOSTILE("code 199", "199 Ok\r\n", "reply code out of range"),
    HOSTILE("code 600", "600 Ok\r\n", "reply code out of range"),
    HOSTILE("code 099", "099 Ok\r\n", "reply code out of range"),
    HOSTILE("continuation code differs", "250-Ok\r\n550 No\r\n",
            "reply lines with different codes"),
    HOSTILE("bad separator", "250_Ok\r\n", "malformed reply line"),
    HOSTILE("NUL", "250 O\0k\r\n", "NUL in reply"),
    HOSTILE("3xx to MAIL", "354 Go on\r\n", "unexpected 3xx reply"),
    {
        .name = "hostile: greeting that never ends",
        .steps = {START, {.recv = L64("220-hello\r\n") "220-hello\r\n"}},
        .events = PROTO("greeting", "reply has too many lines"),
        .ends_closed = 1,
    },
    {
        .name = "hostile: reply ahead of the command",
        .whole_only = 1,
        .steps = {START, {.recv = S_GREET S_EHLO_FULL}},
        .events = PROTO("EHLO", "unexpected data"),
        .ends_closed = 1,
    },
    {
        .name = "hostile: bytes after the last reply",
        .whole_only = 1,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO S_OK_DATA}},
        .events = "CLOSED 451 4.5.0@message body* Protocol error: message accepted before its "
                  "end [451 4.5.0@message body*];",
        .ends_closed = 1,
    },
    {
        .name = "hostile: bytes after the reply to the final dot",
        .whole_only = 1,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO, .expect = C_BODY1},
                  {.recv = S_OK_DATA "250 2.0.0 Ok: queued as Z\r\n"}},
        .events = DELIVERED PROTO("none", "unexpected data while idle"),
        .ends_closed = 1,
    },
    {
        .name = "hostile: two replies to one command",
        .whole_only = 1,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = S_OK_MAIL S_OK_RCPT}},
        .events = "CLOSED 451 4.5.0@RCPT TO* Protocol error: unexpected data "
                  "[451 4.5.0@RCPT TO*];",
        .ends_closed = 1,
    },
    {
        .name = "hostile: 334 to DATA",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT "334 what\r\n"}},
        .events = "CLOSED 451 4.5.0@DATA* Protocol error: DATA accepted without 354 "
                  "[451 4.5.0@DATA*];",
        .ends_closed = 1,
    },
    {
        .name = "hostile: garbage in reply to QUIT is moot",
        .steps = {START, GREET, {.recv = S_EHLO_FULL, .expect = C_QUIT}, {.recv = "xyz\r\n"}},
        .events = "CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "hostile: refusal before the end of the message",
        .whole_only = 1,
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_GO "552 5.3.4 Too big\r\n"}},
        .events = "DONE 552 5.3.4@end of DATA [552 5.3.4@end of DATA];" PROTO(
            "message body", "reply before the end of the message"),
        .ends_closed = 1,
    },
    {
        .name = "hostile: DATA accepted without 354",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_OK_RCPT S_OK}},
        .events = "CLOSED 451 4.5.0@DATA* Protocol error: DATA accepted without 354 "
                  "[451 4.5.0@DATA*];",
        .ends_closed = 1,
    },
    {
        .name = "hostile: 354 with every recipient refused",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_FULL, .expect = C_MAIL_SIZE C_RCPT_B C_DATA},
                  {.recv = S_OK_MAIL S_UNKNOWN S_GO, .expect = ".\r\n"},
                  {.recv = S_OK, .expect = C_QUIT},
                  BYE},
        .events = "DONE 550 5.1.1@RCPT TO [550 5.1.1@RCPT TO];CLOSED ok;",
        .ends_closed = 1,
    },
    {
        .name = "hostile: AUTH accepted before the password",
        .tls = SMTP_CLIENT_TLS_IMPLICIT,
        .user = "user",
        .password = "pass",
        .steps =
            {START, GREET, {.recv = S_EHLO_LOGIN, .expect = "AUTH LOGIN\r\n"}, {.recv = S_AUTH_OK}},
        .events = "CLOSED 454 4.7.0@AUTH* Authentication failed: unexpected reply 235 "
                  "Authentication successful;",
        .ends_closed = 1,
    },
    {
        .name = "hostile: control characters in the text",
        .msgs = {&MSG1},
        .steps = {START,
                  GREET,
                  {.recv = S_EHLO_NOPIPE, .expect = C_MAIL},
                  {.recv = "421 4.3.0 bad\rtext\x7f\xff\r\n"}},
        .events = "CLOSED 421 4.3.0@MAIL FROM bad?text?? [421 4.3.0@MAIL FROM];",
        .ends_closed = 1,
    },
};

static void test_conversation(void **state)
{
	const struct conversation *t = *state;

	run_conversation(t, 0);
	if (!t->whole_only)
		run_conversation(t, 1);
}

/* ---- tests that build their input ------------------------------------------- */

static struct smtp_client *new_client(const struct smtp_client_config *cfg)
{
	struct smtp_client *c = smtp_client_new(cfg);

	assert_non_null(c);
	return c;
}

static void feed_str(struct smtp_client *c, const char *s)
{
	smtp_client_feed(c, s, strlen(s));
}

static void expect_output(struct smtp_client *c, const char *want)
{
	size_t n;
	const char *o = smtp_client_output(c, &n);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(o, want, n);
	smtp_client_output_consumed(c, n);
}

/* A session that reached READY over the given EHLO reply. */
static struct smtp_client *ready_client(const char *ehlo)
{
	struct smtp_client_config cfg = {.helo_name = "client.example"};
	struct smtp_client *c = new_client(&cfg);

	feed_str(c, S_GREET);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	expect_output(c, C_EHLO);
	feed_str(c, ehlo);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);
	return c;
}

static void test_timeouts(void **state)
{
	struct smtp_client_config cfg = {.helo_name = "client.example"};
	struct smtp_client *c = new_client(&cfg);
	struct smtp_client_message m = MSG1;

	assert_int_equal(smtp_client_stage(c), SMTP_CLIENT_STAGE_GREETING);
	assert_int_equal(smtp_client_timeout_ms(c), 300000);
	smtp_client_free(&c);

	cfg.timeout_greeting_ms = 1;
	cfg.timeout_command_ms = 2;
	cfg.timeout_data_init_ms = 3;
	cfg.timeout_data_block_ms = 4;
	cfg.timeout_data_end_ms = 5;
	c = new_client(&cfg);
	assert_int_equal(smtp_client_timeout_ms(c), 1);
	feed_str(c, S_GREET);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	assert_int_equal(smtp_client_timeout_ms(c), 2);
	expect_output(c, C_EHLO);
	feed_str(c, S_EHLO_NOPIPE);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);
	assert_int_equal(smtp_client_timeout_ms(c), 0);
	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	assert_int_equal(smtp_client_stage(c), SMTP_CLIENT_STAGE_MAIL);
	assert_int_equal(smtp_client_timeout_ms(c), 2);
	expect_output(c, C_MAIL);
	feed_str(c, S_OK_MAIL);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	assert_int_equal(smtp_client_stage(c), SMTP_CLIENT_STAGE_RCPT);
	expect_output(c, C_RCPT_B);
	feed_str(c, S_OK_RCPT);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	assert_int_equal(smtp_client_timeout_ms(c), 3);
	expect_output(c, C_DATA);
	feed_str(c, S_GO);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	assert_int_equal(smtp_client_stage(c), SMTP_CLIENT_STAGE_BODY);
	assert_int_equal(smtp_client_timeout_ms(c), 4);
	expect_output(c, C_BODY1);
	assert_int_equal(smtp_client_stage(c), SMTP_CLIENT_STAGE_DATA_END);
	assert_int_equal(smtp_client_timeout_ms(c), 5);
	smtp_client_free(&c);
}

/* The body goes out in chunks, dot-stuffed, and is never copied whole. */
static void test_big_body(void **state)
{
	const size_t len = 1 << 20, stuffed = len + len / 64 + 3;
	char *data = malloc(len), *want = malloc(stuffed), *got = malloc(stuffed);
	struct smtp_client *c = ready_client(
	    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250 ENHANCEDSTATUSCODES\r\n");
	struct smtp_client_message m = MSG1;
	struct smtp_client_event ev;
	size_t n, glen = 0, w = 0;

	assert_non_null(data);
	assert_non_null(want);
	assert_non_null(got);
	/* 64-octet lines, every one starting with a dot: each gains one */
	for (size_t i = 0; i < len; i++) {
		data[i] = i % 64 == 0 ? '.' : i % 64 == 62 ? '\r' : i % 64 == 63 ? '\n' : 'z';
		if (i % 64 == 0)
			want[w++] = '.';
		want[w++] = data[i];
	}
	memcpy(want + w, ".\r\n", 3);
	m.data = data;
	m.len = len;
	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	expect_output(c, "MAIL FROM:<a@x.example> SIZE=1048576\r\n" C_RCPT_B C_DATA);
	feed_str(c, "250-2.1.0 Ok\r\n250 2.1.0 Ok\r\n" S_OK_RCPT S_GO);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	for (;;) {
		const char *o = smtp_client_output(c, &n);

		if (n == 0)
			break;
		assert_true(n <= 16384 + 8);
		assert_true(smtp_client_memory(c) < 48 * 1024);
		assert_true(glen + n <= stuffed);
		/* consume in odd pieces, as a socket would */
		n = n > 1000 ? n - 1000 : n;
		memcpy(got + glen, o, n);
		glen += n;
		smtp_client_output_consumed(c, n);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	}
	assert_int_equal(glen, stuffed);
	assert_memory_equal(got, want, stuffed);
	feed_str(c, S_OK_DATA);
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_DONE);
	assert_int_equal(ev.nrcpts, 1);
	assert_int_equal(ev.rcpts[0].code, 250);
	assert_string_equal(ev.rcpts[0].text, "Ok: queued as X");
	assert_string_equal(ev.reply.enhanced, "2.0.0");
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);
	assert_true(smtp_client_memory(c) < 4096);
	smtp_client_free(&c);
	free(data);
	free(want);
	free(got);
}

static void test_server_info(void **state)
{
	struct smtp_client *c = ready_client(S_EHLO_FULL);

	assert_int_equal(smtp_client_extensions(c),
	                 SMTP_CLIENT_EXT_PIPELINING | SMTP_CLIENT_EXT_SIZE |
	                     SMTP_CLIENT_EXT_8BITMIME | SMTP_CLIENT_EXT_SMTPUTF8 |
	                     SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES);
	assert_int_equal(smtp_client_size_limit(c), 10240);
	assert_int_equal(smtp_client_esmtp(c), 1);
	assert_int_equal(smtp_client_tls_active(c), 0);
	assert_int_equal(smtp_client_authenticated(c), 0);
	smtp_client_free(&c);

	c = ready_client("250-mx.example\r\n250-SIZE 99999999999999999999999\r\n"
	                 "250-AUTH=PLAIN\r\n250-AUTH CRAM-MD5 login\r\n250-STARTTLSX\r\n"
	                 "250 8BITMIMEfoo\r\n");
	assert_int_equal(smtp_client_extensions(c), SMTP_CLIENT_EXT_SIZE |
	                                                SMTP_CLIENT_EXT_AUTH_PLAIN |
	                                                SMTP_CLIENT_EXT_AUTH_LOGIN);
	assert_int_equal(smtp_client_size_limit(c), 0);
	smtp_client_free(&c);
}

static void test_reply_text(void **state)
{
	struct smtp_client *c = ready_client(S_EHLO_NOPIPE);
	struct smtp_client_message m = MSG1;
	struct smtp_client_event ev;
	char reply[8192];

	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	expect_output(c, C_MAIL);
	/* 3 lines of 1200 characters: cut to the text bound, with "..." */
	snprintf(reply, sizeof reply, "550-5.7.1 %s\r\n550-5.7.1 %s\r\n550 5.7.1 %s\r\n",
	         R1000 R100 R100, R1000 R100 R100, R1000 R100 R100);
	feed_str(c, reply);
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_DONE);
	assert_int_equal(ev.reply.code, 550);
	assert_string_equal(ev.reply.enhanced, "5.7.1");
	assert_int_equal(strlen(ev.reply.text), SMTP_CLIENT_TEXT_MAX - 1);
	assert_string_equal(ev.reply.text + SMTP_CLIENT_TEXT_MAX - 4, "...");
	assert_int_equal(ev.reply.stage, SMTP_CLIENT_STAGE_MAIL);
	assert_int_equal(ev.reply.local, 0);
	assert_string_equal(smtp_client_reply_status(&ev.reply), "5.7.1");
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);

	/* an enhanced code of the wrong class stays text */
	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	expect_output(c, C_MAIL);
	feed_str(c, "451 5.1.1 odd\r\n");
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_DONE);
	assert_string_equal(ev.reply.enhanced, "");
	assert_string_equal(ev.reply.text, "5.1.1 odd");
	assert_string_equal(smtp_client_reply_status(&ev.reply), "4.0.0");
	smtp_client_free(&c);

	assert_string_equal(smtp_client_stage_name(SMTP_CLIENT_STAGE_DATA_END), "end of DATA");
	assert_string_equal(smtp_client_stage_name((enum smtp_client_stage)99), "unknown");
}

/* Input past what the client asked for closes it; nothing is kept. */
static void test_input_bound(void **state)
{
	struct smtp_client_config cfg = {.helo_name = "client.example"};
	struct smtp_client *c = new_client(&cfg);
	static char junk[SMTP_CLIENT_INPUT_MAX + 1];
	struct smtp_client_event ev;

	memset(junk, '2', sizeof junk);
	assert_int_equal(smtp_client_wants_input(c), SMTP_CLIENT_INPUT_MAX);
	smtp_client_feed(c, junk, sizeof junk);
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_CLOSED);
	assert_int_equal(ev.failed, 1);
	assert_string_equal(ev.reply.text, "Protocol error: too much input");
	assert_true(smtp_client_memory(c) < 4096);
	smtp_client_free(&c);

	/* a huge greeting line, fed as the client allows: closed at the
	 * line bound, never buffered beyond it */
	c = new_client(&cfg);
	for (int i = 0; i < 100; i++) {
		size_t want = smtp_client_wants_input(c);

		if (want == 0)
			break;
		smtp_client_feed(c, junk, want < 1000 ? want : 1000);
		assert_true(smtp_client_memory(c) < 2 * SMTP_CLIENT_LINE_MAX + 4096);
		if (smtp_client_step(c, &ev) == SMTP_CLIENT_CLOSED)
			break;
	}
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_CLOSED);
	assert_string_equal(ev.reply.text, "Protocol error: reply line too long");
	smtp_client_free(&c);
}

/* A large pipelined group: every recipient in one write, every reply
 * matched in order, read a few octets at a time. */
static void test_many_recipients(void **state)
{
	enum { N = 150 };
	static char names[N][32];
	const char *rcpts[N];
	struct smtp_client *c = ready_client(S_EHLO_FULL);
	struct smtp_client_message m = MSG1;
	struct smtp_client_event ev;
	struct buf in = BUF_INIT;
	size_t n, lines = 0;
	const char *o;

	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "r%d@y.example", i);
		rcpts[i] = names[i];
	}
	m.rcpts = rcpts;
	m.nrcpts = N;
	assert_int_equal(smtp_client_send(c, &m), 0);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	o = smtp_client_output(c, &n);
	for (size_t i = 0; i < n; i++)
		lines += o[i] == '\n';
	assert_int_equal(lines, N + 2);
	assert_memory_equal(o + n - 6, C_DATA, 6);
	smtp_client_output_consumed(c, n);
	assert_int_equal(buf_append_str(&in, S_OK_MAIL), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(buf_append_str(&in, i % 7 == 3 ? S_UNKNOWN : S_OK_RCPT), 0);
	assert_int_equal(buf_append_str(&in, S_GO), 0);
	for (size_t i = 0; i < in.len; i += 5) {
		smtp_client_feed(c, in.data + i, in.len - i < 5 ? in.len - i : 5);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	}
	buf_free(&in);
	expect_output(c, C_BODY1);
	feed_str(c, S_OK_DATA);
	assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_DONE);
	assert_int_equal(ev.nrcpts, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ev.rcpts[i].code, i % 7 == 3 ? 550 : 250);
		assert_int_equal(ev.rcpts[i].stage,
		                 i % 7 == 3 ? SMTP_CLIENT_STAGE_RCPT : SMTP_CLIENT_STAGE_DATA_END);
	}
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);
	smtp_client_free(&c);
}

/* The handshake: nothing more is read in plaintext; its failures. */
static void test_handshake(void **state)
{
	struct smtp_client_config cfg = {.helo_name = "client.example",
	                                 .tls = SMTP_CLIENT_TLS_OPPORTUNISTIC};
	struct smtp_client_event ev;
	struct smtp_client *c;

	for (int round = 0; round < 3; round++) {
		c = new_client(&cfg);
		feed_str(c, S_GREET);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
		expect_output(c, C_EHLO);
		feed_str(c, S_EHLO_TLS);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
		expect_output(c, C_STARTTLS);
		feed_str(c, S_TLS_GO);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_STARTTLS);
		assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_STARTTLS);
		assert_int_equal(smtp_client_timeout_ms(c), 0);
		if (round == 0) {
			feed_str(c, S_OK);
			assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_CLOSED);
			assert_string_equal(ev.reply.text,
			                    "Protocol error: data after the STARTTLS reply");
		} else if (round == 1) {
			smtp_client_eof(c);
			assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_CLOSED);
			assert_string_equal(ev.reply.text,
			                    "Lost connection during the TLS handshake");
		} else {
			smtp_client_timeout(c);
			assert_int_equal(smtp_client_step(c, &ev), SMTP_CLIENT_CLOSED);
			assert_string_equal(ev.reply.text, "Timed out during the TLS handshake");
		}
		assert_int_equal(ev.failed, 1);
		assert_int_equal(ev.reply.code, 451);
		assert_int_equal(ev.reply.stage, SMTP_CLIENT_STAGE_STARTTLS);
		expect_output(c, "");
		smtp_client_free(&c);
	}
}

/* Calls made out of turn are refused or ignored, never obeyed. */
static void test_misuse(void **state)
{
	struct smtp_client_config cfg = {.helo_name = "client.example"};
	struct smtp_client_message m = MSG1;
	struct smtp_client *c = new_client(&cfg);
	const char *none[] = {NULL};

	assert_int_equal(smtp_client_send(c, &m), -1); /* not READY */
	smtp_client_quit(c);                           /* ignored */
	smtp_client_tls_started(c);                    /* ignored */
	expect_output(c, "");
	smtp_client_free(&c);

	c = ready_client(S_EHLO_FULL);
	m.nrcpts = 0;
	assert_int_equal(smtp_client_send(c, &m), -1);
	m.nrcpts = SMTP_CLIENT_RCPTS_MAX + 1;
	assert_int_equal(smtp_client_send(c, &m), -1);
	m.nrcpts = 1;
	m.rcpts = none;
	assert_int_equal(smtp_client_send(c, &m), -1);
	m = MSG1;
	m.sender = NULL;
	assert_int_equal(smtp_client_send(c, &m), -1);
	m = MSG1;
	m.data = NULL;
	assert_int_equal(smtp_client_send(c, &m), -1);
	assert_int_equal(smtp_client_send(c, NULL), -1);
	expect_output(c, "");
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_READY);
	smtp_client_timeout(c);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_CLOSED);
	smtp_client_timeout(c);
	smtp_client_eof(c);
	smtp_client_feed(c, "250 Ok\r\n", 8);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_CLOSED);
	smtp_client_free(&c);
	smtp_client_free(&c); /* NULL: nothing */

	/* configurations that cannot be sent */
	cfg.helo_name = "bad\r\nMAIL FROM:<x@y>";
	assert_null(smtp_client_new(&cfg));
	cfg.helo_name = "";
	assert_null(smtp_client_new(&cfg));
	cfg.helo_name = NULL; /* "localhost" */
	cfg.auth_user = "user";
	assert_null(smtp_client_new(&cfg)); /* no password */
	cfg.auth_user = "";
	cfg.auth_password = "pass";
	assert_null(smtp_client_new(&cfg));
	{
		static char huge[SMTP_AUTH_LINE_MAX];

		memset(huge, 'u', sizeof huge - 1);
		cfg.auth_user = huge;
		assert_null(smtp_client_new(&cfg));
	}
	cfg.auth_user = NULL;
	c = new_client(&cfg);
	feed_str(c, S_GREET);
	assert_int_equal(smtp_client_step(c, NULL), SMTP_CLIENT_NEED_INPUT);
	expect_output(c, "EHLO localhost\r\n");
	smtp_client_free(&c);
}

int main(void)
{
	size_t n = sizeof conversations / sizeof conversations[0];
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_timeouts),    cmocka_unit_test(test_big_body),
	    cmocka_unit_test(test_server_info), cmocka_unit_test(test_reply_text),
	    cmocka_unit_test(test_input_bound), cmocka_unit_test(test_many_recipients),
	    cmocka_unit_test(test_handshake),   cmocka_unit_test(test_misuse),
	};
	size_t nfixed = sizeof fixed / sizeof fixed[0];
	struct CMUnitTest *tests = calloc(n + nfixed, sizeof *tests);
	int r;

	assert_non_null(tests);
	for (size_t i = 0; i < n; i++) {
		tests[i].name = conversations[i].name;
		tests[i].test_func = test_conversation;
		tests[i].initial_state = (void *)&conversations[i];
	}
	memcpy(tests + n, fixed, sizeof fixed);
	r = _cmocka_run_group_tests("smtp_client", tests, n + nfixed, NULL, NULL);
	free(tests);
	return r;
}
