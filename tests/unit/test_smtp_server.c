/*
 * SMTP server session: transcripts of client input and the exact replies
 * expected, each run twice: fed whole (as far as the session accepts)
 * and fed one byte at a time ("trickle").  Events are answered from the
 * transcript's decision list, in order, or accepted by default, and are
 * logged so a transcript can pin what the caller was told.
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

#define HOST "mx.example"
#define GREETING "220 " HOST " ESMTP sluice\r\n"
#define EHLO_HEAD                                                                                  \
	"250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 10240\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
#define EHLO_CLEAR EHLO_HEAD "250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
#define EHLO_TLS EHLO_HEAD "250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN LOGIN\r\n"
#define EHLO_BARE EHLO_HEAD "250 ENHANCEDSTATUSCODES\r\n"
#define OK_MAIL "250 2.1.0 Ok\r\n"
#define OK_RCPT "250 2.1.5 Ok\r\n"
#define OK_DATA "250 2.0.0 Ok: queued as X\r\n"
#define OK_AUTH "235 2.7.0 Authentication successful\r\n"
#define GO_AHEAD "354 End data with <CR><LF>.<CR><LF>\r\n"
#define NEED_MAIL "503 5.5.1 Need MAIL command\r\n"
#define BARE_REFUSED "550 5.6.0 Message refused: bare CR or LF\r\n"
#define NUL_REFUSED "550 5.6.0 Message refused: NUL character\r\n"

#define R10 "aaaaaaaaaa"
#define R100 R10 R10 R10 R10 R10 R10 R10 R10 R10 R10
#define R500 R100 R100 R100 R100 R100

#define MAX_STEPS 32
#define MAX_DECISIONS 8

struct decision {
	int code; /* 0: the default acceptance */
	const char *enhanced;
	const char *text;
};

struct exchange {
	const char *send; /* NULL: nothing (the greeting) */
	size_t len;       /* 0: strlen(send) */
	const char *expect;
};

struct transcript {
	const char *name;
	/* configuration changes from the defaults */
	int tls_active, tls_unavailable, auth_unavailable, auth_required;
	uint64_t max_size;   /* 0: 10240 */
	uint32_t max_errors; /* 0: 20 */
	int whole_only;      /* depends on what arrives in one read */
	int take_message;    /* take the message at DATA instead of leaving it */
	struct decision decisions[MAX_DECISIONS];
	struct exchange steps[MAX_STEPS];
	const char *events; /* NULL: not checked */
	int ends_closed;
};

struct driver {
	const struct transcript *t;
	struct smtp_server *s;
	struct smtp_server_config cfg;
	size_t next_decision;
	int closed;
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
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof line);
	append(&d->events, &d->events_len, line, (size_t)n);
}

static void drain(struct driver *d)
{
	size_t n;
	const char *o = smtp_server_output(d->s, &n);

	append(&d->out, &d->out_len, o, n);
	smtp_server_output_consumed(d->s, n);
}

static void decide(struct driver *d, const char *def_enh, int def_code, const char *def_text)
{
	const struct decision *dec = NULL;

	if (d->next_decision < MAX_DECISIONS && d->t->decisions[d->next_decision].code)
		dec = &d->t->decisions[d->next_decision];
	d->next_decision++;
	if (dec)
		smtp_server_decide(d->s, dec->code, dec->enhanced, "%s", dec->text);
	else
		smtp_server_decide(d->s, def_code, def_enh, "%s", def_text);
}

static void address_str(const struct smtp_address *a, char *out, size_t size)
{
	assert_int_equal(smtp_address_format(a, out, size), 0);
}

/* Run the session until it needs input or closes, answering events. */
static void pump(struct driver *d)
{
	for (;;) {
		struct smtp_server_event ev;
		enum smtp_server_event_type t = smtp_server_step(d->s, &ev);
		char a[600];

		assert_int_equal(ev.type, t);
		switch (t) {
		case SMTP_SERVER_NEED_INPUT:
			return;
		case SMTP_SERVER_CLOSE:
			d->closed = 1;
			return;
		case SMTP_SERVER_STARTTLS:
			assert_int_equal(smtp_server_wants_input(d->s), 0);
			log_event(d, "STARTTLS;");
			drain(d);
			smtp_server_tls_started(d->s);
			break;
		case SMTP_SERVER_AUTH:
			assert_int_equal(smtp_server_wants_input(d->s), 0);
			log_event(d, "AUTH %s z=%s u=%s p=%s;", ev.u.auth.mechanism,
			          ev.u.auth.authzid, ev.u.auth.username, ev.u.auth.password);
			decide(d, "2.7.0", 235, "Authentication successful");
			break;
		case SMTP_SERVER_MAIL:
			assert_int_equal(smtp_server_wants_input(d->s), 0);
			assert_ptr_equal(ev.u.mail.sender, smtp_server_sender(d->s));
			address_str(ev.u.mail.sender, a, sizeof a);
			log_event(d, "MAIL <%s> size=%llu 8bit=%d utf8=%d;", a,
			          (unsigned long long)ev.u.mail.size, ev.u.mail.body_8bit,
			          ev.u.mail.smtputf8);
			decide(d, "2.1.0", 250, "Ok");
			break;
		case SMTP_SERVER_RCPT:
			assert_int_equal(smtp_server_wants_input(d->s), 0);
			address_str(ev.u.rcpt.rcpt, a, sizeof a);
			log_event(d, "RCPT <%s> n=%zu;", a, smtp_server_rcpt_count(d->s));
			decide(d, "2.1.5", 250, "Ok");
			break;
		case SMTP_SERVER_DATA: {
			char *m = NULL;
			size_t mlen = 0;

			assert_int_equal(smtp_server_wants_input(d->s), 0);
			assert_true(smtp_server_rcpt_count(d->s) > 0);
			log_event(d, "DATA ");
			append(&d->events, &d->events_len, ev.u.data.data, ev.u.data.len);
			log_event(d, ";");
			if (d->t->take_message) {
				m = smtp_server_take_message(d->s, &mlen);
				assert_ptr_equal(m, ev.u.data.data);
				assert_int_equal(mlen, ev.u.data.len);
				assert_null(smtp_server_take_message(d->s, NULL));
			}
			decide(d, "2.0.0", 250, "Ok: queued as X");
			free(m);
			break;
		}
		}
	}
}

static void feed(struct driver *d, const char *data, size_t len, int trickle)
{
	while (len > 0) {
		size_t want = smtp_server_wants_input(d->s), n;

		if (d->closed)
			return; /* a closed session reads nothing more */
		if (want == 0)
			fail_msg("%s: session wants no input but is not closed", d->t->name);
		n = trickle ? 1 : (len < want ? len : want);
		smtp_server_feed(d->s, data, n);
		data += n;
		len -= n;
		pump(d);
	}
}

static void run_transcript(const struct transcript *t, int trickle)
{
	struct driver d = {.t = t};
	size_t i;

	d.cfg = (struct smtp_server_config){
	    .hostname = HOST,
	    .max_message_size = t->max_size ? t->max_size : 10240,
	    .max_recipients = 3,
	    .max_errors = t->max_errors ? t->max_errors : 20,
	    .tls_available = !t->tls_unavailable,
	    .tls_active = t->tls_active,
	    .auth_required = t->auth_required,
	    .auth_offered = !t->auth_unavailable,
	};
	d.s = smtp_server_new(&d.cfg);
	assert_non_null(d.s);
	smtp_server_greet(d.s);
	for (i = 0; i < MAX_STEPS && (t->steps[i].send || t->steps[i].expect); i++) {
		const struct exchange *x = &t->steps[i];

		if (x->send)
			feed(&d, x->send, x->len ? x->len : strlen(x->send), trickle);
		else
			pump(&d);
		drain(&d);
		/* Lengths too: a stray NUL in the output must not hide. */
		if (d.out_len != strlen(x->expect ? x->expect : "") ||
		    strcmp(d.out ? d.out : "", x->expect ? x->expect : "") != 0)
			fail_msg("%s (%s) step %zu: got\n%s\nwant\n%s", t->name,
			         trickle ? "trickle" : "whole", i, d.out ? d.out : "",
			         x->expect ? x->expect : "");
		free(d.out);
		d.out = NULL;
		d.out_len = 0;
	}
	if (t->events && strcmp(d.events ? d.events : "", t->events) != 0)
		fail_msg("%s (%s): events\n%s\nwant\n%s", t->name, trickle ? "trickle" : "whole",
		         d.events ? d.events : "", t->events);
	if (t->ends_closed != d.closed)
		fail_msg("%s (%s): closed %d, want %d", t->name, trickle ? "trickle" : "whole",
		         d.closed, t->ends_closed);
	/* Nothing leaks whatever state the session ends in. */
	smtp_server_free(&d.s);
	assert_null(d.s);
	free(d.events);
}

#define GREET                                                                                      \
	{                                                                                          \
		.expect = GREETING                                                                 \
	}
#define HELLO                                                                                      \
	{                                                                                          \
		.send = "EHLO client.example\r\n", .expect = EHLO_CLEAR                            \
	}
#define HELLO_TLS                                                                                  \
	{                                                                                          \
		.send = "EHLO client.example\r\n", .expect = EHLO_TLS                              \
	}
#define ENVELOPE                                                                                   \
	{.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},                                \
	    {.send = "RCPT TO:<b@y.example>\r\n", .expect = OK_RCPT},                              \
	{                                                                                          \
		.send = "DATA\r\n", .expect = GO_AHEAD                                             \
	}
/* AUTH PLAIN "\0user\0pass" */
#define PLAIN_USER_PASS "AHVzZXIAcGFzcw=="

/* A smuggling attempt: something that looks like an end of data but is
 * not, a command behind it, then the real end. */
#define SMUGGLE_BODY(payload)                                                                      \
	"Subject: x\r\n\r\nbody" payload "MAIL FROM:<evil@z.example>\r\nRCPT TO:<v@z.example>\r\n"
#define SMUGGLE(n, payload, refusal)                                                               \
	{                                                                                          \
		.name = "smuggle " n,                                                              \
		.steps = {GREET,                                                                   \
		          HELLO,                                                                   \
		          ENVELOPE,                                                                \
		          {.send = SMUGGLE_BODY(payload),                                          \
		           .len = sizeof(SMUGGLE_BODY(payload)) - 1},                              \
		          {.send = "DATA\r\n\r\n.\r\n", .expect = refusal},                        \
		          {.send = "RCPT TO:<c@y.example>\r\n", .expect = NEED_MAIL}},             \
		.events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;",       \
	}

static const struct transcript transcripts[] = {
    {
        .name = "full transaction",
        .take_message = 1,
        .steps = {GREET,
                  HELLO,
                  ENVELOPE,
                  {.send = "Subject: hi\r\n\r\nhello\r\n.\r\n", .expect = OK_DATA},
                  {.send = "QUIT\r\n", .expect = "221 2.0.0 Bye\r\n"}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;"
                  "DATA Subject: hi\r\n\r\nhello\r\n;",
        .ends_closed = 1,
    },
    {
        .name = "message left with the session",
        .steps = {GREET,
                  HELLO,
                  ENVELOPE,
                  {.send = "hello\r\n.\r\n", .expect = OK_DATA},
                  {.send = "MAIL FROM:<>\r\n", .expect = OK_MAIL}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;"
                  "DATA hello\r\n;MAIL <> size=0 8bit=0 utf8=0;",
    },
    {
        .name = "pipelining",
        .steps = {GREET,
                  {.send = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n"
                           "RCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\n",
                   .expect = EHLO_CLEAR OK_MAIL OK_RCPT OK_RCPT GO_AHEAD},
                  {.send = "one\r\n.\r\nMAIL FROM:<d@x.example>\r\nRCPT TO:<e@y.example>\r\n"
                           "RSET\r\nNOOP\r\nQUIT\r\n",
                   .expect = OK_DATA OK_MAIL OK_RCPT "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
                                                     "221 2.0.0 Bye\r\n"}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;"
                  "RCPT <c@y.example> n=1;DATA one\r\n;"
                  "MAIL <d@x.example> size=0 8bit=0 utf8=0;RCPT <e@y.example> n=0;",
        .ends_closed = 1,
    },
    {
        .name = "sequence errors",
        .steps = {GREET,
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "503 5.5.1 Send EHLO or HELO first\r\n"},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "DATA\r\n", .expect = NEED_MAIL},
                  HELLO,
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "DATA\r\n", .expect = NEED_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "503 5.5.1 Sender already specified\r\n"},
                  {.send = "DATA\r\n", .expect = "554 5.5.1 No valid recipients\r\n"},
                  {.send = "FOO bar\r\n", .expect = "500 5.5.1 Command unrecognized\r\n"},
                  {.send = "\r\n", .expect = "500 5.5.1 Command unrecognized\r\n"},
                  {.send = "MAILFROM:<a@x.example>\r\n",
                   .expect = "500 5.5.1 Command unrecognized\r\n"},
                  {.send = "RSET\r\n", .expect = "250 2.0.0 Ok\r\n"},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL}},
    },
    {
        .name = "syntax errors",
        .max_errors = 50,
        .steps =
            {GREET,
             {.send = "EHLO\r\n", .expect = "501 5.5.4 Syntax: EHLO hostname\r\n"},
             {.send = "HELO \r\n", .expect = "501 5.5.4 Syntax: HELO hostname\r\n"},
             {.send = "EHLO a\tb\r\n", .expect = "501 5.5.4 Invalid domain name\r\n"},
             {.send = "EHLO a b\r\n", .expect = "501 5.5.4 Invalid domain name\r\n"},
             HELLO,
             {.send = "MAIL FROM:a@x.example\r\n",
              .expect = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
             {.send = "MAIL TO:<a@x.example>\r\n",
              .expect = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
             {.send = "MAIL FROM:  <a@x.example>\r\n",
              .expect = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
             {.send = "MAIL  FROM:<a@x.example>\r\n",
              .expect = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
             {.send = "MAIL FROM:<a@x.example\r\n",
              .expect = "501 5.1.7 Bad sender address syntax\r\n"},
             {.send = "MAIL FROM:<a..b@x.example>\r\n",
              .expect = "501 5.1.7 Bad sender address syntax\r\n"},
             {.send = "MAIL FROM:<a@x.example>junk\r\n",
              .expect = "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"},
             {.send = "mail from: <a@X.Example>  \r\n", .expect = OK_MAIL},
             {.send = "RCPT TO:<bob>\r\n",
              .expect = "550 5.1.1 Recipient address has no domain\r\n"},
             {.send = "RCPT TO:<@y.example>\r\n",
              .expect = "501 5.1.3 Bad recipient address syntax\r\n"},
             {.send = "RCPT TO:<>\r\n", .expect = "501 5.1.3 Bad recipient address syntax\r\n"},
             {.send = "RCPT TO:<b@y.example> NOTIFY=NEVER\r\n",
              .expect = "555 5.5.4 Unsupported parameter\r\n"},
             {.send = "RCPT TO:b@y.example\r\n",
              .expect = "501 5.5.4 Syntax: RCPT TO:<address>\r\n"},
             {.send = "Rcpt To: <b@Y.example>\r\n", .expect = OK_RCPT},
             {.send = "DATA now\r\n", .expect = "501 5.5.4 Syntax: DATA takes no arguments\r\n"},
             {.send = "RSET all\r\n", .expect = "501 5.5.4 Syntax: RSET takes no arguments\r\n"},
             {.send = "QUIT now\r\n", .expect = "501 5.5.4 Syntax: QUIT takes no arguments\r\n"},
             {.send = "VRFY\r\n", .expect = "501 5.5.4 Syntax: VRFY address\r\n"},
             {.send = "VRFY bob\r\nnoop hello\r\nHELP\r\nhelp me\r\n",
              .expect = "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
                        "delivery\r\n250 2.0.0 Ok\r\n"
                        "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY "
                        "HELP STARTTLS AUTH\r\n"
                        "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY "
                        "HELP STARTTLS AUTH\r\n"}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;",
    },
    {
        .name = "MAIL parameters",
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<a@x.example> SIZE=10241\r\n",
                   .expect = "552 5.3.4 Message size exceeds fixed maximum message size\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SIZE=99999999999999999999999\r\n",
                   .expect = "501 5.5.4 Bad SIZE value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SIZE=1k\r\n",
                   .expect = "501 5.5.4 Bad SIZE value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SIZE\r\n",
                   .expect = "501 5.5.4 Bad SIZE value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SIZE=1 size=1\r\n",
                   .expect = "555 5.5.4 Duplicate parameter\r\n"},
                  {.send = "MAIL FROM:<a@x.example> RET=HDRS\r\n",
                   .expect = "555 5.5.4 Unsupported parameter\r\n"},
                  {.send = "MAIL FROM:<a@x.example> BODY=BINARYMIME\r\n",
                   .expect = "501 5.5.4 Bad BODY value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SMTPUTF8=yes\r\n",
                   .expect = "501 5.5.4 SMTPUTF8 takes no value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> AUTH=\r\n",
                   .expect = "501 5.5.4 Bad AUTH value\r\n"},
                  {.send = "MAIL FROM:<a@x.example> BODY=7BIT SIZE=10240\r\n", .expect = OK_MAIL},
                  {.send = "RSET\r\n", .expect = "250 2.0.0 Ok\r\n"},
                  {.send = "MAIL FROM:<a@x.example> body=8bitmime SMTPUTF8 AUTH=<> SIZE=0100\r\n",
                   .expect = OK_MAIL},
                  {.send = "RSET\r\nHELO c.example\r\n",
                   .expect = "250 2.0.0 Ok\r\n250 " HOST "\r\n"},
                  {.send = "MAIL FROM:<a@x.example> SIZE=100\r\n",
                   .expect = "555 5.5.4 Parameters need EHLO\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL}},
        .events = "MAIL <a@x.example> size=10240 8bit=0 utf8=0;"
                  "MAIL <a@x.example> size=100 8bit=1 utf8=1;"
                  "MAIL <a@x.example> size=0 8bit=0 utf8=0;",
    },
    {
        .name = "SMTPUTF8",
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<jos\xc3\xa9@x.example>\r\n",
                   .expect = "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  {.send = "RCPT TO:<\xe7\x94\xa8@\xe4\xbe\x8b.example>\r\n",
                   .expect = "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n"},
                  {.send = "RSET\r\n", .expect = "250 2.0.0 Ok\r\n"},
                  {.send = "MAIL FROM:<jos\xc3\xa9@x.example> SMTPUTF8\r\n", .expect = OK_MAIL},
                  {.send = "RCPT TO:<\xe7\x94\xa8@\xe4\xbe\x8b.example>\r\n", .expect = OK_RCPT},
                  {.send = "RCPT TO:<\xc3\x28@x.example>\r\n",
                   .expect = "501 5.1.3 Bad recipient address syntax\r\n"}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;"
                  "MAIL <jos\xc3\xa9@x.example> size=0 8bit=0 utf8=1;"
                  "RCPT <\xe7\x94\xa8@\xe4\xbe\x8b.example> n=0;",
    },
    {
        .name = "too many recipients",
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b1@y.example>\r\n"
                           "RCPT TO:<b2@y.example>\r\nRCPT TO:<b3@y.example>\r\n"
                           "RCPT TO:<b4@y.example>\r\nRCPT TO:<b5@y.example>\r\nDATA\r\n",
                   .expect = OK_MAIL OK_RCPT OK_RCPT OK_RCPT
                   "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n" GO_AHEAD},
                  {.send = ".\r\n", .expect = OK_DATA}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b1@y.example> n=0;"
                  "RCPT <b2@y.example> n=1;RCPT <b3@y.example> n=2;DATA ;",
    },
    {
        .name = "refusals decided by the caller",
        .decisions = {{550, "5.7.1", "Sender not allowed"},
                      {0},
                      {550, "5.1.1", "No such user"},
                      {0},
                      {452, "4.3.1", "Insufficient system storage"},
                      {0},
                      {0},
                      {421, "4.7.0", "Bye now"}},
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "550 5.7.1 Sender not allowed\r\n"},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = "550 5.1.1 No such user\r\n"},
                  {.send = "DATA\r\n", .expect = "554 5.5.1 No valid recipients\r\n"},
                  {.send = "RCPT TO:<c@y.example>\r\n", .expect = OK_RCPT},
                  {.send = "DATA\r\n", .expect = GO_AHEAD},
                  {.send = "x\r\n.\r\n", .expect = "452 4.3.1 Insufficient system storage\r\n"},
                  {.send = "RCPT TO:<c@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\nRCPT TO:<c@y.example>\r\n"
                           "RCPT TO:<d@y.example>\r\nNOOP\r\n",
                   .expect = OK_MAIL OK_RCPT "421 4.7.0 Bye now\r\n"}},
        .ends_closed = 1,
    },
    {
        .name = "AUTH before TLS",
        .steps = {GREET,
                  HELLO,
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "530 5.7.0 Must issue a STARTTLS command first\r\n"}},
        .events = NULL,
    },
    {
        .name = "AUTH not offered",
        .tls_active = 1,
        .auth_unavailable = 1,
        .steps = {GREET,
                  {.send = "EHLO c.example\r\n", .expect = EHLO_BARE},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "502 5.5.1 AUTH not available\r\n"},
                  {.send = "STARTTLS\r\n", .expect = "503 5.5.1 TLS already active\r\n"}},
    },
    {
        .name = "no TLS, no AUTH",
        .tls_unavailable = 1,
        .auth_unavailable = 1,
        .steps = {GREET,
                  {.send = "EHLO c.example\r\n", .expect = EHLO_BARE},
                  {.send = "STARTTLS\r\n", .expect = "502 5.5.1 STARTTLS not available\r\n"}},
    },
    {
        .name = "STARTTLS",
        .steps = {GREET,
                  HELLO,
                  {.send = "STARTTLS now\r\n",
                   .expect = "501 5.5.4 Syntax: STARTTLS takes no arguments\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  {.send = "STARTTLS\r\n", .expect = "220 2.0.0 Ready to start TLS\r\n"},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "503 5.5.1 Send EHLO or HELO first\r\n"},
                  HELLO_TLS,
                  {.send = "STARTTLS\r\n", .expect = "503 5.5.1 TLS already active\r\n"},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n", .expect = OK_AUTH}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;STARTTLS;"
                  "AUTH PLAIN z= u=user p=pass;",
    },
    {
        .name = "STARTTLS discards piggybacked commands",
        .whole_only = 1,
        .steps = {GREET,
                  HELLO,
                  {.send = "STARTTLS\r\nMAIL FROM:<evil@z.example>\r\nRCPT TO:<v@z.example>\r\n",
                   .expect = "220 2.0.0 Ready to start TLS\r\n"},
                  {.send = "NOOP\r\n", .expect = "250 2.0.0 Ok\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "503 5.5.1 Send EHLO or HELO first\r\n"}},
        .events = "STARTTLS;",
    },
    {
        .name = "AUTH PLAIN",
        .tls_active = 1,
        .auth_required = 1,
        .steps = {GREET,
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "503 5.5.1 Send EHLO first\r\n"},
                  HELLO_TLS,
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "530 5.7.0 Authentication required\r\n"},
                  {.send = "AUTH\r\n",
                   .expect = "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"},
                  {.send = "AUTH plain " PLAIN_USER_PASS "\r\n", .expect = OK_AUTH},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "503 5.5.1 Already authenticated\r\n"},
                  {.send = "MAIL FROM:<a@x.example> AUTH=user\r\n", .expect = OK_MAIL}},
        .events = "AUTH PLAIN z= u=user p=pass;MAIL <a@x.example> size=0 8bit=0 utf8=0;",
    },
    {
        .name = "AUTH PLAIN without initial response, with authzid",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH PLAIN\r\n", .expect = "334 \r\n"},
                  /* "admin\0user\0pass" */
                  {.send = "YWRtaW4AdXNlcgBwYXNz\r\n", .expect = OK_AUTH}},
        .events = "AUTH PLAIN z=admin u=user p=pass;",
    },
    {
        .name = "AUTH LOGIN",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH LOGIN\r\n", .expect = "334 VXNlcm5hbWU6\r\n"},
                  {.send = "dXNlcg==\r\n", .expect = "334 UGFzc3dvcmQ6\r\n"},
                  {.send = "cGFzcw==\r\n", .expect = OK_AUTH}},
        .events = "AUTH LOGIN z= u=user p=pass;",
    },
    {
        .name = "AUTH LOGIN with initial response",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH LOGIN dXNlcg==\r\n", .expect = "334 UGFzc3dvcmQ6\r\n"},
                  {.send = "cGFzczI=\r\n", .expect = OK_AUTH}},
        .events = "AUTH LOGIN z= u=user p=pass2;",
    },
    {
        .name = "AUTH cancelled",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH LOGIN\r\n", .expect = "334 VXNlcm5hbWU6\r\n"},
                  {.send = "*\r\n", .expect = "501 5.0.0 Authentication cancelled\r\n"},
                  {.send = "AUTH LOGIN\r\n", .expect = "334 VXNlcm5hbWU6\r\n"},
                  {.send = "dXNlcg==\r\n", .expect = "334 UGFzc3dvcmQ6\r\n"},
                  {.send = "*\r\n", .expect = "501 5.0.0 Authentication cancelled\r\n"},
                  {.send = "AUTH PLAIN\r\n", .expect = "334 \r\n"},
                  {.send = "*\r\n", .expect = "501 5.0.0 Authentication cancelled\r\n"},
                  {.send = "NOOP\r\n", .expect = "250 2.0.0 Ok\r\n"}},
        .events = "",
    },
    {
        .name = "AUTH bad input",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH PLAIN !!!!\r\n", .expect = "501 5.5.2 Invalid base64 data\r\n"},
                  {.send = "AUTH PLAIN\r\n", .expect = "334 \r\n"},
                  {.send = "abc\r\n", .expect = "501 5.5.2 Invalid base64 data\r\n"},
                  {.send = "AUTH PLAIN AHVz=XIAcGFzcw==\r\n",
                   .expect = "501 5.5.2 Invalid base64 data\r\n"},
                  /* "userpass": no NULs */
                  {.send = "AUTH PLAIN dXNlcnBhc3M=\r\n",
                   .expect = "501 5.5.2 Malformed PLAIN response\r\n"},
                  {.send = "AUTH PLAIN =\r\n", .expect = "501 5.5.2 Malformed PLAIN response\r\n"},
                  /* "\0user\0" (empty password) */
                  {.send = "AUTH PLAIN AHVzZXIA\r\n",
                   .expect = "501 5.5.2 Malformed PLAIN response\r\n"},
                  {.send = "AUTH LOGIN =\r\n", .expect = "501 5.5.2 Malformed LOGIN response\r\n"},
                  {.send = "AUTH LOGIN\r\n", .expect = "334 VXNlcm5hbWU6\r\n"},
                  {.send = "dXNlcg\r\n", .expect = "501 5.5.2 Invalid base64 data\r\n"},
                  {.send = "AUTH CRAM-MD5\r\n",
                   .expect = "504 5.5.4 Unrecognized authentication mechanism\r\n"},
                  {.send = "AUTH PLAIN a b\r\n",
                   .expect = "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"},
                  /* 300-octet username */
                  {.send = "AUTH LOGIN "
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh"
                           "YWFhYWFhYWFhYWFh\r\n",
                   .expect = "501 5.5.2 Authentication data too long\r\n"}},
        .events = "",
    },
    {
        .name = "AUTH refused",
        .tls_active = 1,
        .max_errors = 2,
        .decisions = {{535, "5.7.8", "Authentication credentials invalid"},
                      {454, "4.7.0", "Temporary authentication failure"},
                      {535, "5.7.8", "Authentication credentials invalid"}},
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "535 5.7.8 Authentication credentials invalid\r\n"},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "454 4.7.0 Temporary authentication failure\r\n"},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "535 5.7.8 Authentication credentials invalid\r\n"
                             "421 4.7.0 " HOST " Too many errors, closing connection\r\n"}},
        .ends_closed = 1,
    },
    {
        .name = "AUTH during a transaction",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  {.send = "AUTH PLAIN " PLAIN_USER_PASS "\r\n",
                   .expect = "503 5.5.1 AUTH not permitted during a mail transaction\r\n"}},
    },
    {
        .name = "AUTH closing decision",
        .tls_active = 1,
        .decisions = {{421, "4.7.0", "Too many failed logins"}},
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH LOGIN dXNlcg==\r\ncGFzcw==\r\nNOOP\r\n",
                   .expect = "334 UGFzc3dvcmQ6\r\n421 4.7.0 Too many failed logins\r\n"}},
        .ends_closed = 1,
    },
    {
        .name = "oversize command lines",
        .steps = {GREET,
                  HELLO,
                  {.send = "NOOP " R500 R100 "\r\nNOOP\r\n",
                   .expect = "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n"},
                  {.send = "MAIL FROM:<a@x.example> AUTH=" R500 "\r\n", .expect = OK_MAIL},
                  {.send = "RCPT TO:<b@y.example>" R500 R500 R100 "\r\n",
                   .expect = "500 5.5.2 Line too long\r\n"},
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = OK_RCPT}},
    },
    {
        .name = "bad command framing",
        .steps = {GREET,
                  {.send = "NOOP\n", .expect = "500 5.5.2 Bare LF in command\r\n"},
                  {.send = "\n", .expect = "500 5.5.2 Bare LF in command\r\n"},
                  {.send = "NO\rOP\r\n", .expect = "500 5.5.2 Bare CR in command\r\n"},
                  {.send = "NO\0OP\r\n",
                   .len = 7,
                   .expect = "500 5.5.2 NUL character in command\r\n"},
                  {.send = "EHLO c.example\nMAIL FROM:<a@x.example>\r\n",
                   .expect = "500 5.5.2 Bare LF in command\r\n"
                             "503 5.5.1 Send EHLO or HELO first\r\n"},
                  {.send = "NOOP\r\r\n", .expect = "500 5.5.2 Bare CR in command\r\n"},
                  {.send = "NOOP\r\n", .expect = "250 2.0.0 Ok\r\n"}},
    },
    SMUGGLE("LF.CRLF", "\n.\r\n", BARE_REFUSED),
    SMUGGLE("LF.LF", "\n.\n", BARE_REFUSED),
    SMUGGLE("CR.CRLF", "\r.\r\n", BARE_REFUSED),
    SMUGGLE("CRLF.CR", "\r\n.\r", BARE_REFUSED),
    SMUGGLE("CRLF.LF", "\r\n.\n", BARE_REFUSED),
    SMUGGLE("CR.CR", "\r.\r", BARE_REFUSED),
    SMUGGLE("NUL.CRLF", "\0.\r\n", NUL_REFUSED),
    SMUGGLE("CRLF NUL.CRLF", "\r\n\0.\r\n", NUL_REFUSED),
    SMUGGLE("CRCRLF.CRLF", "\r\r\n.\rX\r\n", BARE_REFUSED),
    {
        .name = "data sent before 354",
        .whole_only = 1,
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n",
                   .expect = OK_MAIL OK_RCPT},
                  {.send = "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<e@z.example>\r\n",
                   .expect = "554 5.5.0 Improper pipelining: data sent before 354\r\n"},
                  {.send = "NOOP\r\n"}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;",
        .ends_closed = 1,
    },
    {
        .name = "too many errors",
        .max_errors = 2,
        .steps = {GREET,
                  {.send = "FOO\r\n", .expect = "500 5.5.1 Command unrecognized\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n",
                   .expect = "503 5.5.1 Send EHLO or HELO first\r\n"},
                  {.send = "NOOP\r\nBAR\r\nNOOP\r\n",
                   .expect = "250 2.0.0 Ok\r\n500 5.5.1 Command unrecognized\r\n"
                             "421 4.7.0 " HOST " Too many errors, closing connection\r\n"},
                  {.send = "NOOP\r\n"}},
        .ends_closed = 1,
    },
    {
        .name = "dot-unstuffing",
        .steps = {GREET,
                  HELLO,
                  ENVELOPE,
                  {.send = "..a\r\n...\r\n.b\r\n. \r\nc.\r\n\r\n.\r\n", .expect = OK_DATA}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;"
                  "DATA .a\r\n..\r\nb\r\n \r\nc.\r\n\r\n;",
    },
    {
        .name = "empty message",
        .steps = {GREET, HELLO, ENVELOPE, {.send = ".\r\n", .expect = OK_DATA}},
        .events = "MAIL <a@x.example> size=0 8bit=0 utf8=0;RCPT <b@y.example> n=0;DATA ;",
    },
    {
        .name = "message too big",
        .max_size = 16,
        .steps = {GREET,
                  {.send = "EHLO c.example\r\n",
                   .expect = "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE 16\r\n250-8BITMIME\r\n"
                             "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"},
                  ENVELOPE,
                  {.send = "0123456789\r\n0123\r\n.\r\n",
                   .expect = "552 5.3.4 Message too big\r\n"},
                  {.send = "RCPT TO:<c@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n",
                   .expect = OK_MAIL OK_RCPT},
                  {.send = "DATA\r\n", .expect = GO_AHEAD},
                  /* exactly 16 octets */
                  {.send = "0123456789\r\n01\r\n.\r\n", .expect = OK_DATA}},
    },
    {
        .name = "EHLO resets the transaction",
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL},
                  HELLO,
                  {.send = "RCPT TO:<b@y.example>\r\n", .expect = NEED_MAIL},
                  {.send = "HELO c.example\r\n", .expect = "250 " HOST "\r\n"},
                  {.send = "MAIL FROM:<a@x.example>\r\n", .expect = OK_MAIL}},
    },
    {
        .name = "quoted local parts",
        .steps = {GREET,
                  HELLO,
                  {.send = "MAIL FROM:<\"a>b\"@x.example> SIZE=10\r\n", .expect = OK_MAIL},
                  {.send = "RCPT TO:<\"x \\\" y\"@Y.example>\r\n", .expect = OK_RCPT},
                  {.send = "RCPT TO:<\"x\\\r\n",
                   .expect = "501 5.1.3 Bad recipient address syntax\r\n"},
                  {.send = "RCPT TO:<b@y.example\r\n",
                   .expect = "501 5.1.3 Bad recipient address syntax\r\n"},
                  {.send = "RCPT TO:<b@y.example>junk\r\n",
                   .expect = "501 5.5.4 Syntax: RCPT TO:<address>\r\n"},
                  {.send = "EHLO " R100 R100 R10 R10 R10 R10 R10 R10 "\r\n",
                   .expect = "501 5.5.4 Invalid domain name\r\n"}},
        .events = "MAIL <\"a>b\"@x.example> size=10 8bit=0 utf8=0;"
                  "RCPT <\"x \\\" y\"@y.example> n=0;",
    },
    {
        .name = "AUTH exchange framing",
        .tls_active = 1,
        .steps = {GREET,
                  HELLO_TLS,
                  {.send = "AUTH PLAIN\r\n", .expect = "334 \r\n"},
                  {.send = "AHVzZXIAcGFzcw==\n", .expect = "500 5.5.2 Bare LF in command\r\n"},
                  {.send = "AUTH LOGIN\r\n", .expect = "334 VXNlcm5hbWU6\r\n"},
                  {.send = "dXN\rlcg==\r\n", .expect = "500 5.5.2 Bare CR in command\r\n"},
                  /* "?\?>?\?\?" exercises '+' and '/' */
                  {.send = "AUTH LOGIN dXNlcg==\r\nPz8+Pz8/\r\n",
                   .expect = "334 UGFzc3dvcmQ6\r\n" OK_AUTH}},
        .events = "AUTH LOGIN z= u=user p=?\?>?\?\?;",
    },
    {
        .name = "QUIT ends reading",
        .steps = {GREET,
                  {.send = "QUIT\r\nNOOP\r\n", .expect = "221 2.0.0 Bye\r\n"},
                  {.send = "NOOP\r\n"}},
        .ends_closed = 1,
    },
};

static void test_transcript(void **state)
{
	const struct transcript *t = *state;

	run_transcript(t, 0);
	if (!t->whole_only)
		run_transcript(t, 1);
}

/* ---- tests that build their input ---------------------------------------- */

static struct smtp_server *new_server(uint64_t max_size)
{
	struct smtp_server_config cfg = {
	    .hostname = HOST,
	    .max_message_size = max_size,
	    .max_recipients = 100,
	    .max_errors = 10,
	    .tls_available = 1,
	    .auth_offered = 1,
	};
	struct smtp_server *s = smtp_server_new(&cfg);

	assert_non_null(s);
	return s;
}

static char *take_output(struct smtp_server *s)
{
	size_t n;
	const char *o = smtp_server_output(s, &n);
	char *copy = malloc(n + 1);

	assert_non_null(copy);
	memcpy(copy, o, n);
	copy[n] = '\0';
	smtp_server_output_consumed(s, n);
	return copy;
}

static void expect_output(struct smtp_server *s, const char *want)
{
	size_t n;
	char *got;

	(void)smtp_server_output(s, &n);
	got = take_output(s);
	assert_string_equal(got, want);
	assert_int_equal(n, strlen(want));
	free(got);
}

/* Feed everything, accepting every event; returns the last step result. */
static enum smtp_server_event_type feed_all(struct smtp_server *s, const char *data, size_t len)
{
	struct smtp_server_event ev;
	enum smtp_server_event_type t = smtp_server_step(s, &ev);

	for (;;) {
		while (t != SMTP_SERVER_NEED_INPUT && t != SMTP_SERVER_CLOSE) {
			smtp_server_decide(s, 250, NULL, "Ok");
			t = smtp_server_step(s, &ev);
		}
		if (len == 0 || t == SMTP_SERVER_CLOSE)
			return t;
		size_t n = smtp_server_wants_input(s);
		assert_true(n > 0);
		if (n > len)
			n = len;
		smtp_server_feed(s, data, n);
		data += n;
		len -= n;
		t = smtp_server_step(s, &ev);
	}
}

static void feed_str(struct smtp_server *s, const char *str)
{
	assert_int_equal(feed_all(s, str, strlen(str)), SMTP_SERVER_NEED_INPUT);
}

static void test_idle_memory(void **state)
{
	struct smtp_server *s = new_server(10 * 1024 * 1024);

	smtp_server_greet(s);
	free(take_output(s));
	feed_str(s, "EHLO client.example.com\r\n");
	free(take_output(s));
	assert_string_equal(smtp_server_helo(s), "client.example.com");
	assert_int_equal(smtp_server_esmtp(s), 1);
	if (smtp_server_memory(s) >= 2048)
		fail_msg("idle session holds %zu bytes", smtp_server_memory(s));
	/* A transaction's worth of state is given back when it ends. */
	feed_str(s, "MAIL FROM:<a@x.example>\r\n");
	for (int i = 0; i < 50; i++) {
		char line[64];

		snprintf(line, sizeof line, "RCPT TO:<r%d@y.example>\r\n", i);
		feed_str(s, line);
	}
	assert_int_equal(smtp_server_rcpt_count(s), 50);
	assert_string_equal(smtp_server_rcpt(s, 49)->local, "r49");
	assert_null(smtp_server_rcpt(s, 50));
	feed_str(s, "RSET\r\n");
	free(take_output(s));
	if (smtp_server_memory(s) >= 2048)
		fail_msg("session after RSET holds %zu bytes", smtp_server_memory(s));
	smtp_server_free(&s);
}

/* A 1 MB line never makes the session hold more than its input bound. */
static void test_oversize_line_bounded(void **state)
{
	struct smtp_server *s = new_server(10240);
	char chunk[4096];

	memset(chunk, 'A', sizeof chunk);
	smtp_server_greet(s);
	free(take_output(s));
	for (int i = 0; i < 256; i++) {
		assert_int_equal(feed_all(s, chunk, sizeof chunk), SMTP_SERVER_NEED_INPUT);
		assert_true(smtp_server_memory(s) < 2 * SMTP_INPUT_MAX);
	}
	feed_str(s, "\r\nNOOP\r\n");
	expect_output(s, "500 5.5.2 Line too long\r\n250 2.0.0 Ok\r\n");
	smtp_server_free(&s);
}

static void start_data(struct smtp_server *s)
{
	smtp_server_greet(s);
	feed_str(s, "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n");
	feed_str(s, "DATA\r\n");
	free(take_output(s));
}

/* A message far over the limit is read to its end in bounded memory. */
static void test_message_too_big_bounded(void **state)
{
	struct smtp_server *s = new_server(1000);
	char line[100];

	start_data(s);
	memset(line, 'x', sizeof line - 2);
	memcpy(line + sizeof line - 2, "\r\n", 2);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(feed_all(s, line, sizeof line), SMTP_SERVER_NEED_INPUT);
		assert_true(smtp_server_memory(s) < 1000 + SMTP_INPUT_MAX + 2048);
	}
	expect_output(s, "");
	feed_str(s, ".\r\n");
	expect_output(s, "552 5.3.4 Message too big\r\n");
	smtp_server_free(&s);
}

static void data_line_case(size_t octets, const char *want)
{
	struct smtp_server *s = new_server(10240);
	char *body = malloc(octets + 8);
	struct smtp_server_event ev;

	assert_non_null(body);
	start_data(s);
	memset(body, 'y', octets);
	memcpy(body + octets, "\r\n.\r\n", 5);
	smtp_server_feed(s, body, octets + 5);
	if (smtp_server_step(s, &ev) == SMTP_SERVER_DATA) {
		assert_int_equal(ev.u.data.len, octets + 2);
		smtp_server_decide(s, 250, "2.0.0", "Ok");
	}
	expect_output(s, want);
	free(body);
	smtp_server_free(&s);
}

static void test_data_line_length(void **state)
{
	data_line_case(998, "250 2.0.0 Ok\r\n");
	data_line_case(999, "550 5.5.6 Message refused: line longer than 998 octets\r\n");
	data_line_case(5000, "550 5.5.6 Message refused: line longer than 998 octets\r\n");
}

static void test_close_paths(void **state)
{
	struct smtp_server *s = new_server(10240);
	struct smtp_server_event ev;

	smtp_server_greet(s);
	smtp_server_timeout(s);
	expect_output(s, GREETING "421 4.4.2 " HOST " Timeout, closing connection\r\n");
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_CLOSE);
	assert_int_equal(smtp_server_wants_input(s), 0);
	smtp_server_free(&s);

	s = new_server(10240);
	smtp_server_greet(s);
	feed_str(s, "EHLO c.example\r\n");
	free(take_output(s));
	smtp_server_shutdown(s);
	expect_output(s, "421 4.3.2 " HOST " Service shutting down, closing connection\r\n");
	smtp_server_timeout(s); /* nothing more once closed */
	expect_output(s, "");
	smtp_server_free(&s);

	s = new_server(10240);
	smtp_server_refuse(s, 554, "5.7.1", "Go away");
	expect_output(s, "554 5.7.1 Go away\r\n");
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_CLOSE);
	smtp_server_free(&s);

	s = new_server(10240);
	smtp_server_greet(s);
	free(take_output(s));
	smtp_server_eof(s);
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_CLOSE);
	expect_output(s, "");
	smtp_server_free(&s);
}

/* The session may be freed, closed or timed out while an event waits. */
static void test_pending_event_teardown(void **state)
{
	struct smtp_server_config cfg = {
	    .hostname = HOST,
	    .max_message_size = 1024,
	    .max_recipients = 10,
	    .max_errors = 10,
	    .tls_active = 1,
	    .auth_offered = 1,
	};
	struct smtp_server *s = smtp_server_new(&cfg);
	struct smtp_server_event ev;
	const char *in = "EHLO c.example\r\nAUTH PLAIN " PLAIN_USER_PASS "\r\n";

	assert_non_null(s);
	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_AUTH);
	assert_int_equal(smtp_server_wants_input(s), 0);
	/* step again without deciding: the same event */
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_AUTH);
	smtp_server_timeout(s);
	/* the credentials stay readable until the decision */
	assert_string_equal(ev.u.auth.password, "pass");
	smtp_server_decide(s, 235, "2.7.0", "Ok");
	assert_int_equal(smtp_server_authenticated(s), 0);
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_CLOSE);
	smtp_server_free(&s);

	s = smtp_server_new(&cfg);
	in = "EHLO c.example\r\nMAIL FROM:<a@x.example> BODY=8BITMIME SMTPUTF8\r\n";
	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_MAIL);
	assert_int_equal(smtp_server_body_8bit(s), 1);
	assert_int_equal(smtp_server_smtputf8(s), 1);
	smtp_server_free(&s); /* with the event pending */

	s = smtp_server_new(&cfg);
	in = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n";
	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_MAIL);
	smtp_server_decide(s, 250, "2.1.0", "Ok");
	in = "RCPT TO:<b@y.example>\r\nDATA\r\n";
	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_RCPT);
	smtp_server_decide(s, 250, "2.1.5", "Ok");
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_NEED_INPUT);
	in = "body\r\n.\r\n";
	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_DATA);
	smtp_server_eof(s);
	assert_int_equal(ev.u.data.len, 6);
	assert_memory_equal(ev.u.data.data, "body\r\n", 6);
	smtp_server_free(&s); /* frees the message nobody took */
}

/* Decisions' text cannot break the reply into lines. */
static void test_decision_text(void **state)
{
	struct smtp_server *s = new_server(1024);
	struct smtp_server_event ev;
	const char *in = "EHLO c.example\r\nMAIL FROM:<a@x.example>\r\n";
	char big[700];

	smtp_server_feed(s, in, strlen(in));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_MAIL);
	free(take_output(s));
	smtp_server_decide(s, 550, "5.7.1", "bad\r\n250 %s", "fake");
	expect_output(s, "550 5.7.1 bad  250 fake\r\n");
	smtp_server_feed(s, in + 16, strlen(in) - 16);
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_MAIL);
	memset(big, 'z', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	smtp_server_decide(s, 451, NULL, "%s", big);
	{
		char *out = take_output(s);

		assert_int_equal(strlen(out), SMTP_REPLY_LINE_MAX);
		assert_memory_equal(out, "451 4.0.0 zzz", 13);
		assert_memory_equal(out + strlen(out) - 2, "\r\n", 2);
		free(out);
	}
	/* deciding with nothing pending is ignored */
	smtp_server_decide(s, 250, NULL, "Ok");
	expect_output(s, "");
	smtp_server_free(&s);
}

static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = al[v >> 18];
		out[o++] = al[(v >> 12) & 63];
		out[o++] = i + 1 < len ? al[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? al[v & 63] : '=';
	}
	out[o] = '\0';
}

static struct smtp_server *new_tls_server(void)
{
	struct smtp_server_config cfg = {
	    .hostname = HOST,
	    .max_message_size = 1024,
	    .max_recipients = 10,
	    .max_errors = 10,
	    .tls_active = 1,
	    .auth_offered = 1,
	};
	struct smtp_server *s = smtp_server_new(&cfg);

	assert_non_null(s);
	feed_str(s, "EHLO c.example\r\n");
	free(take_output(s));
	return s;
}

/* PLAIN fields at and over SMTP's 256-octet allowance; an AUTH line over
 * SMTP_AUTH_LINE_MAX is dropped as it arrives. */
static void test_auth_limits(void **state)
{
	unsigned char plain[3 * 300];
	char line[2048];
	char b64[1400];
	struct smtp_server *s = new_tls_server();
	struct smtp_server_event ev;
	size_t n;

	/* authzid, username, password of 256 octets each: accepted */
	memset(plain, 'z', 256);
	plain[256] = '\0';
	memset(plain + 257, 'u', 256);
	plain[513] = '\0';
	memset(plain + 514, 'p', 256);
	b64_encode(plain, 770, b64);
	snprintf(line, sizeof line, "AUTH PLAIN %s\r\n", b64);
	smtp_server_feed(s, line, strlen(line));
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_AUTH);
	assert_int_equal(strlen(ev.u.auth.authzid), 256);
	assert_int_equal(strlen(ev.u.auth.username), 256);
	assert_int_equal(strlen(ev.u.auth.password), 256);
	assert_true(smtp_server_memory(s) > 3 * 256);
	smtp_server_decide(s, 535, "5.7.8", "No");
	expect_output(s, "535 5.7.8 No\r\n");

	/* a 257-octet username in a message that is not too long overall */
	plain[0] = '\0';
	memset(plain + 1, 'u', 257);
	plain[258] = '\0';
	memset(plain + 259, 'p', 10);
	b64_encode(plain, 269, b64);
	snprintf(line, sizeof line, "AUTH PLAIN %s\r\n", b64);
	feed_str(s, line);
	expect_output(s, "501 5.5.2 Authentication data too long\r\n");
	smtp_server_free(&s);

	/* an AUTH continuation line over the limit */
	s = new_tls_server();
	feed_str(s, "AUTH LOGIN\r\n");
	expect_output(s, "334 VXNlcm5hbWU6\r\n");
	memset(b64, 'A', 1000);
	for (n = 0; n < SMTP_AUTH_LINE_MAX + 2000; n += 1000)
		feed_all(s, b64, 1000);
	expect_output(s, "500 5.5.6 Authentication exchange line too long\r\n");
	feed_str(s, "\r\nNOOP\r\n");
	expect_output(s, "250 2.0.0 Ok\r\n");
	smtp_server_free(&s);
}

/* Calls made out of turn are ignored, not obeyed. */
static void test_misuse(void **state)
{
	struct smtp_server *s = new_tls_server();
	struct smtp_server_event ev;
	size_t n = 1;

	assert_null(smtp_server_take_message(s, &n));
	assert_int_equal(n, 0);
	feed_str(s, "MAIL FROM:<a@x.example>\r\n");
	smtp_server_feed(s, "RCPT TO:<b@y.example>\r\n", 23);
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_RCPT);
	smtp_server_tls_started(s); /* not after STARTTLS: ignored */
	assert_int_equal(smtp_server_step(s, &ev), SMTP_SERVER_RCPT);
	assert_non_null(smtp_server_sender(s));
	assert_string_equal(ev.u.rcpt.rcpt->domain, "y.example");
	smtp_server_decide(s, 250, NULL, "Ok");
	assert_int_equal(smtp_server_rcpt_count(s), 1);
	assert_string_equal(smtp_server_helo(s), "c.example");
	smtp_server_free(&s);
	smtp_server_free(&s); /* NULL: nothing */
}

int main(void)
{
	size_t n = sizeof transcripts / sizeof transcripts[0];
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_idle_memory),
	    cmocka_unit_test(test_oversize_line_bounded),
	    cmocka_unit_test(test_message_too_big_bounded),
	    cmocka_unit_test(test_data_line_length),
	    cmocka_unit_test(test_close_paths),
	    cmocka_unit_test(test_pending_event_teardown),
	    cmocka_unit_test(test_decision_text),
	    cmocka_unit_test(test_auth_limits),
	    cmocka_unit_test(test_misuse),
	};
	size_t nfixed = sizeof fixed / sizeof fixed[0];
	struct CMUnitTest *tests = calloc(n + nfixed, sizeof *tests);
	int r;

	assert_non_null(tests);
	for (size_t i = 0; i < n; i++) {
		tests[i].name = transcripts[i].name;
		tests[i].test_func = test_transcript;
		tests[i].initial_state = (void *)&transcripts[i];
	}
	memcpy(tests + n, fixed, sizeof fixed);
	r = _cmocka_run_group_tests("smtp_server", tests, n + nfixed, NULL, NULL);
	free(tests);
	return r;
}
