/*
 * libFuzzer target for the SMTP client session: the input plays a
 * (hostile) server.
 *
 * Input: byte 0 chooses the session (TLS mode, AUTH, pipelining allowed,
 * how the input ends), byte 1 how the server's bytes are read (a line at
 * a time, as a server that answers what it was sent; up to each 0xff
 * octet, which is dropped, so a read may hold several replies or bytes
 * nobody asked for; fixed-size chunks; or all at once, which a strict
 * client takes for replies ahead of their commands), byte 2 the messages (how many, which
 * recipients and flags), byte 3 the length of the message body taken from the bytes that follow,
 * byte 4 the write size; the rest is what the server sends.  The harness plays the caller: it feeds
 * no more than smtp_client_wants_input(), completes STARTTLS at once, sends the messages when
 * READY, then QUITs, and ends the input with EOF or a timeout.
 *
 * Oracles: every reply reported has a code in 200..599 (a failure 4xx or
 * 5xx); DONE and CLOSED carry one outcome per recipient; the session
 * never waits for input it will not take, ends after the input does, and
 * takes a bounded number of steps; memory stays bounded; the output is
 * CRLF lines only, and the message body on the wire is exactly the
 * message dot-stuffed with its line ends repaired (or a prefix of it when
 * the session failed), so no end-of-data look-alike ever goes out.
 * Leaks are caught by ASan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

#define FUZZ_BODY_MAX 64
/* dot-stuffed: each octet at most 2 (a CR or LF becomes CRLF, a "." after
 * a line end is doubled), plus a final CRLF and ".\r\n" */
#define FUZZ_STUFFED_MAX (2 * FUZZ_BODY_MAX + 8)
/* struct + input + one pipelined group or body chunk + outcomes */
#define FUZZ_MEMORY_MAX (2 * SMTP_CLIENT_INPUT_MAX + 48 * 1024)
#define FUZZ_LINE_MAX (SMTP_CLIENT_ADDRESS_MAX + 100)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_rcpts[] = {"b@y.example", "c@y.example",
                                         "\xe7\x94\xa8@\xe4\xbe\x8b.example", "not an address"};

struct fuzz {
	struct smtp_client *c;
	struct smtp_client_message msg;
	/* the message body as it must go out */
	char want[FUZZ_STUFFED_MAX];
	size_t want_len;
	/* the body seen on the wire so far */
	char body[FUZZ_STUFFED_MAX];
	size_t body_len;
	int in_body;
	/* command lines: where the current one started */
	size_t line_len;
	int line_cr;
	enum smtp_client_tls tls;
	int quit;          /* QUIT was asked for */
	size_t after_quit; /* octets sent since */
};

/* Reference dot-stuffing, written apart from the client's: split into
 * lines at CRLF, CR or LF; double a leading "."; end every line with
 * CRLF; then ".". */
static void fuzz_stuff(struct fuzz *f, const char *m, size_t len)
{
	size_t o = 0, i = 0;

	while (i < len) {
		size_t start = i;

		while (i < len && m[i] != '\r' && m[i] != '\n')
			i++;
		if (i > start && m[start] == '.')
			f->want[o++] = '.';
		memcpy(f->want + o, m + start, i - start);
		o += i - start;
		memcpy(f->want + o, "\r\n", 2);
		o += 2;
		if (i < len && m[i] == '\r' && i + 1 < len && m[i + 1] == '\n')
			i++;
		if (i < len)
			i++;
	}
	memcpy(f->want + o, ".\r\n", 3);
	f->want_len = o + 3;
}

static void fuzz_check_reply(const struct smtp_client_reply *r)
{
	if (r->code < 200 || r->code > 599)
		__builtin_trap();
	if (memchr(r->text, '\0', sizeof r->text) == NULL ||
	    memchr(r->enhanced, '\0', sizeof r->enhanced) == NULL)
		__builtin_trap();
	for (const char *p = r->text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			__builtin_trap();
	if (smtp_client_reply_status(r)[0] == '\0')
		__builtin_trap();
}

static void fuzz_check_rcpts(const struct smtp_client_event *ev, size_t nrcpts)
{
	if (ev->rcpts == NULL)
		return;
	if (ev->nrcpts != nrcpts)
		__builtin_trap();
	for (size_t i = 0; i < ev->nrcpts; i++)
		fuzz_check_reply(&ev->rcpts[i]);
}

/* Commands: CRLF lines, no bare CR or LF, no NUL, bounded; credentials
 * and mail only under TLS when it is needed; nothing after QUIT. */
static void fuzz_check_commands(struct fuzz *f, const char *o, size_t n)
{
	int tls = smtp_client_tls_active(f->c);

	if (!tls && (memmem(o, n, "AUTH", 4) || memmem(o, n, "cGFzcw", 6)))
		__builtin_trap();
	if (!tls && f->tls == SMTP_CLIENT_TLS_REQUIRED && memmem(o, n, "MAIL", 4))
		__builtin_trap();
	if (f->quit) {
		f->after_quit += n;
		if (f->after_quit > 6 || memcmp(o, &"QUIT\r\n"[f->after_quit - n], n) != 0)
			__builtin_trap();
	}
	for (size_t i = 0; i < n; i++) {
		char ch = o[i];

		if (ch == '\0' || (f->line_cr && ch != '\n'))
			__builtin_trap();
		if (ch == '\n') {
			if (!f->line_cr)
				__builtin_trap();
			f->line_cr = 0;
			f->line_len = 0;
			continue;
		}
		f->line_cr = ch == '\r';
		if (++f->line_len > FUZZ_LINE_MAX)
			__builtin_trap();
	}
}

static void fuzz_check_body(struct fuzz *f, const char *o, size_t n)
{
	if (f->body_len + n > sizeof f->body)
		__builtin_trap();
	memcpy(f->body + f->body_len, o, n);
	f->body_len += n;
	/* the message, or "." alone when nobody was accepted */
	if (memcmp(f->body, f->want, f->body_len < f->want_len ? f->body_len : f->want_len) != 0 &&
	    (f->body_len > 3 || memcmp(f->body, ".\r\n", f->body_len) != 0))
		__builtin_trap();
	if (f->body_len > f->want_len && f->body_len > 3)
		__builtin_trap();
}

/* Send what the client has, checking it; odd-sized writes on purpose. */
static void fuzz_drain(struct fuzz *f, uint8_t write_size)
{
	size_t n;
	const char *o;

	while ((o = smtp_client_output(f->c, &n)), n > 0) {
		if (n > 16384 + 8 && smtp_client_stage(f->c) == SMTP_CLIENT_STAGE_BODY)
			__builtin_trap();
		if (write_size && n > write_size)
			n = write_size;
		if (smtp_client_stage(f->c) == SMTP_CLIENT_STAGE_BODY) {
			if (!f->in_body) {
				f->in_body = 1;
				f->body_len = 0;
			}
			fuzz_check_body(f, o, n);
		} else {
			fuzz_check_commands(f, o, n);
		}
		smtp_client_output_consumed(f->c, n);
	}
	if (f->in_body && smtp_client_stage(f->c) != SMTP_CLIENT_STAGE_BODY) {
		f->in_body = 0;
		/* all of it went out: it must be whole */
		if (smtp_client_stage(f->c) == SMTP_CLIENT_STAGE_DATA_END &&
		    !(f->body_len == f->want_len ||
		      (f->body_len == 3 && memcmp(f->body, ".\r\n", 3) == 0)))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum smtp_client_tls modes[] = {
	    SMTP_CLIENT_TLS_NONE, SMTP_CLIENT_TLS_OPPORTUNISTIC, SMTP_CLIENT_TLS_REQUIRED,
	    SMTP_CLIENT_TLS_IMPLICIT};
	struct smtp_client_config cfg = {.helo_name = "client.example"};
	struct fuzz f;
	const char *rcpts[3];
	size_t pos, chunk, body_len, nmsgs, sent = 0, done = 0, iterations = 0, budget;
	uint8_t mode, msgs;
	int turns;
	int quit = 0, ended = 0;

	if (size < 5)
		return 0;
	memset(&f, 0, sizeof f);
	mode = data[0];
	msgs = data[2];
	cfg.tls = modes[mode & 3];
	f.tls = cfg.tls;
	if (mode & 4) {
		cfg.auth_user = "user";
		cfg.auth_password = "pass";
	}
	cfg.no_pipelining = (mode >> 3) & 1;
	/* 0: a line at a time; 3: up to each 0xff */
	chunk = (data[1] & 3) == 1   ? (size_t)(data[1] >> 2) + 1
	        : (data[1] & 3) == 2 ? SMTP_CLIENT_INPUT_MAX
	                             : 0;
	turns = (data[1] & 3) == 3;
	body_len = data[3] % (FUZZ_BODY_MAX + 1);
	pos = 5;
	if (body_len > size - pos)
		body_len = size - pos;

	/* the message: 1-3 recipients from the list, flags from msgs */
	f.msg.nrcpts = 1 + (msgs & 3) % 3;
	for (size_t i = 0; i < f.msg.nrcpts; i++)
		rcpts[i] = fuzz_rcpts[(msgs >> (2 + i)) & 3];
	f.msg.rcpts = rcpts;
	f.msg.sender = msgs & 0x20 ? "" : "a@x.example";
	f.msg.data = (const char *)data + pos;
	f.msg.len = body_len;
	f.msg.eightbit = (msgs >> 6) & 1;
	f.msg.smtputf8 = (mode >> 6) & 1;
	nmsgs = 1 + (msgs >> 7);
	fuzz_stuff(&f, f.msg.data, f.msg.len);
	pos += body_len;

	f.c = smtp_client_new(&cfg);
	if (f.c == NULL)
		__builtin_trap();
	/* every iteration feeds input or handles one of a bounded number of
	 * events: a loop means the client stopped making progress */
	budget = (size - pos) + 8 * nmsgs + 16;
	for (;;) {
		struct smtp_client_event ev;
		enum smtp_client_action a = smtp_client_step(f.c, &ev);

		if (ev.action != a || ++iterations > budget)
			__builtin_trap();
		fuzz_drain(&f, data[4]);
		if (smtp_client_memory(f.c) > FUZZ_MEMORY_MAX)
			__builtin_trap();
		if (a == SMTP_CLIENT_CLOSED) {
			if (ev.failed && (ev.reply.code < 400 || ev.reply.code > 599))
				__builtin_trap();
			if (ev.failed || ev.reply.code != 0)
				fuzz_check_reply(&ev.reply);
			if (!ev.failed && ev.rcpts != NULL)
				__builtin_trap();
			fuzz_check_rcpts(&ev, f.msg.nrcpts);
			if (smtp_client_wants_input(f.c) != 0 ||
			    smtp_client_step(f.c, NULL) != SMTP_CLIENT_CLOSED)
				__builtin_trap();
			break;
		}
		switch (a) {
		case SMTP_CLIENT_STARTTLS: {
			size_t n;

			(void)smtp_client_output(f.c, &n);
			if (n != 0 || smtp_client_wants_input(f.c) != 0 ||
			    smtp_client_tls_active(f.c))
				__builtin_trap();
			smtp_client_tls_started(f.c);
			if (!smtp_client_tls_active(f.c) || smtp_client_extensions(f.c) != 0)
				__builtin_trap();
			continue;
		}
		case SMTP_CLIENT_READY:
			if (quit || smtp_client_timeout_ms(f.c) != 0)
				__builtin_trap();
			if (cfg.auth_user && !smtp_client_authenticated(f.c))
				__builtin_trap();
			if (cfg.tls == SMTP_CLIENT_TLS_REQUIRED && !smtp_client_tls_active(f.c))
				__builtin_trap();
			if (sent < nmsgs) {
				if (smtp_client_send(f.c, &f.msg) != 0)
					__builtin_trap();
				sent++;
			} else {
				smtp_client_quit(f.c);
				quit = 1;
				f.quit = 1;
			}
			continue;
		case SMTP_CLIENT_DONE:
			if (++done > sent || ev.rcpts == NULL)
				__builtin_trap();
			fuzz_check_reply(&ev.reply);
			fuzz_check_rcpts(&ev, f.msg.nrcpts);
			continue;
		default:
			break;
		}
		/* NEED_INPUT */
		if (smtp_client_wants_input(f.c) == 0 || smtp_client_timeout_ms(f.c) == 0)
			__builtin_trap();
		if (pos >= size) {
			if (ended)
				__builtin_trap(); /* still waiting after the end */
			ended = 1;
			if (mode & 0x80)
				smtp_client_timeout(f.c);
			else
				smtp_client_eof(f.c);
			continue;
		}
		{
			size_t n = size - pos, want = smtp_client_wants_input(f.c);

			if (n > want)
				n = want;
			if (turns) {
				const uint8_t *sep = memchr(data + pos, 0xff, n);

				if (sep == data + pos) {
					pos++; /* an empty turn */
					continue;
				}
				if (sep != NULL)
					n = (size_t)(sep - (data + pos));
			} else if (chunk == 0) {
				const uint8_t *lf = memchr(data + pos, '\n', n);

				if (lf != NULL)
					n = (size_t)(lf - (data + pos)) + 1;
			} else if (n > chunk) {
				n = chunk;
			}
			smtp_client_feed(f.c, data + pos, n);
			pos += n;
		}
	}
	smtp_client_free(&f.c);
	if (f.c != NULL)
		__builtin_trap();
	return 0;
}
