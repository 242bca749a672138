/*
 * test_dsn: the DSNs deliver_dsn_build() makes (RFC 3464/6522): the
 * header fields, the three parts in order with their types, the
 * per-message and per-recipient fields, the status derivation table,
 * CRLF only and no line over 998 octets whatever the remote sent,
 * hostile replies kept on one line, the original's header copied without
 * its body, 8-bit and UTF-8 handling, the header size cap, refusals.
 * tests/unit/dsn_check.py parses the same DSNs with Python's email
 * package.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "util/util.h"

#define HOST "mail.sluice.example"
#define SENDER "alice@tenant.example"
#define NOW 1764460800LL /* Sun, 30 Nov 2025 00:00:00 +0000 */

static const char original[] =
    "Received: from client.tenant.example by mail.sluice.example\r\n"
    "\twith ESMTPSA id 0123456789abcdef; Sat, 29 Nov 2025 23:00:00 +0000\r\n"
    "From: Alice <alice@tenant.example>\r\n"
    "To: bob@remote.example, carol@other.example\r\n"
    "Subject: quarterly report\r\n"
    "Message-ID: <abc@tenant.example>\r\n"
    "\r\n"
    "SECRET-BODY-LINE the body must never come back\r\n"
    "more body\r\n";

/* ---- helpers ------------------------------------------------------------ */

struct dsn {
	char *data;
	size_t len;
	char boundary[80];
	/* the three part bodies (after their headers), and their headers */
	const char *part[3], *part_hdr[3];
	size_t part_len[3];
};

static void dsn_free(struct dsn *x)
{
	free(x->data);
	memset(x, 0, sizeof *x);
}

/* Every line ends CRLF, none is longer than 998, no NUL. */
static void check_lines(const char *p, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		assert_int_not_equal(p[i], '\0');
		if (p[i] == '\r') {
			assert_true(i + 1 < len && p[i + 1] == '\n');
			continue;
		}
		if (p[i] == '\n') {
			assert_true(i > 0 && p[i - 1] == '\r');
			col = 0;
			continue;
		}
		if (++col > 998)
			fail_msg("line over 998 octets at offset %zu", i);
	}
	assert_true(len >= 2 && p[len - 2] == '\r' && p[len - 1] == '\n');
}

/* The value of header field name in [p, p + len) (unfolded, first one),
 * or NULL.  Static buffer: tests only. */
static const char *field(const char *p, size_t len, const char *name)
{
	static char value[8192];
	size_t n = strlen(name), i = 0, o = 0;

	while (i < len) {
		const char *eol = memmem(p + i, len - i, "\r\n", 2);
		size_t linelen = eol ? (size_t)(eol - (p + i)) : len - i;

		if (linelen > n && strncasecmp(p + i, name, n) == 0 && p[i + n] == ':') {
			size_t j = i + n + 1;

			while (j < len && p[j] == ' ')
				j++;
			for (;;) {
				eol = memmem(p + j, len - j, "\r\n", 2);
				linelen = eol ? (size_t)(eol - (p + j)) : len - j;
				assert_true(o + linelen < sizeof value);
				memcpy(value + o, p + j, linelen);
				o += linelen;
				j += linelen + 2;
				if (j >= len || (p[j] != ' ' && p[j] != '\t'))
					break;
			}
			value[o] = '\0';
			return value;
		}
		if (linelen == 0)
			break; /* end of this header block */
		i += linelen + 2;
	}
	return NULL;
}

/* Build, check the envelope of the structure, split into parts. */
static void build(const struct deliver_dsn *d, struct dsn *x)
{
	char *err = NULL, *b, delim[96];
	const char *ct, *p, *end;
	int rc, i;

	memset(x, 0, sizeof *x);
	rc = deliver_dsn_build(d, &x->data, &x->len, &err);
	if (rc != 0)
		fail_msg("deliver_dsn_build: %d %s", rc, err ? err : "");
	assert_null(err);
	assert_non_null(x->data);
	assert_int_equal(strlen(x->data), x->len);
	check_lines(x->data, x->len);

	ct = field(x->data, x->len, "Content-Type");
	assert_non_null(ct);
	assert_non_null(strstr(ct, "multipart/report"));
	assert_non_null(strstr(ct, "report-type=delivery-status"));
	b = strstr(ct, "boundary=\"");
	assert_non_null(b);
	b += strlen("boundary=\"");
	assert_non_null(strchr(b, '"'));
	assert_true((size_t)(strchr(b, '"') - b) < sizeof x->boundary);
	memcpy(x->boundary, b, (size_t)(strchr(b, '"') - b));
	assert_true(strlen(x->boundary) >= 1 && strlen(x->boundary) <= 70); /* RFC 2046 */

	/* Three delimiters, then the close delimiter, and nothing else
	 * looks like one. */
	snprintf(delim, sizeof delim, "\r\n--%s", x->boundary);
	p = x->data;
	end = x->data + x->len;
	for (i = 0; i < 3; i++) {
		const char *hdr_end;

		p = memmem(p, (size_t)(end - p), delim, strlen(delim));
		assert_non_null(p);
		p += strlen(delim);
		assert_memory_equal(p, "\r\n", 2);
		p += 2;
		x->part_hdr[i] = p;
		hdr_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		assert_non_null(hdr_end);
		x->part[i] = hdr_end + 4;
		if (i > 0)
			x->part_len[i - 1] =
			    (size_t)(x->part_hdr[i] - strlen(delim) - 2 - x->part[i - 1]);
	}
	p = memmem(x->part[2], (size_t)(end - x->part[2]), delim, strlen(delim));
	assert_non_null(p);
	x->part_len[2] = (size_t)(p - x->part[2]);
	p += strlen(delim);
	assert_memory_equal(p, "--\r\n", 4);
	assert_ptr_equal(p + 4, end);
	{
		/* the boundary string appears exactly 4 times + once in the header */
		size_t count = 0;
		const char *q = x->data;

		while ((q = memmem(q, (size_t)(end - q), x->boundary, strlen(x->boundary)))) {
			count++;
			q++;
		}
		assert_int_equal(count, 5);
	}
}

static const char *part_field(const struct dsn *x, int part, const char *name)
{
	return field(x->part_hdr[part], (size_t)(x->part[part] - x->part_hdr[part]), name);
}

static int part_has(const struct dsn *x, int part, const char *s)
{
	return memmem(x->part[part], x->part_len[part], s, strlen(s)) != NULL;
}

/* As part_has, with the text part's line breaks taken as spaces. */
static int part_has_unwrapped(const struct dsn *x, int part, const char *s)
{
	char *flat = malloc(x->part_len[part] + 1);
	size_t i, o = 0;
	int found;

	assert_non_null(flat);
	for (i = 0; i < x->part_len[part]; i++) {
		if (x->part[part][i] == '\r')
			continue;
		flat[o++] = x->part[part][i] == '\n' ? ' ' : x->part[part][i];
	}
	flat[o] = '\0';
	found = strstr(flat, s) != NULL;
	free(flat);
	return found;
}

/* The nth (0-based) per-recipient block of the delivery-status part. */
static void rcpt_block(const struct dsn *x, int n, const char **p_r, size_t *len_r)
{
	const char *p = x->part[1], *end = x->part[1] + x->part_len[1];
	int i;

	for (i = 0; i <= n; i++) {
		p = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		assert_non_null(p);
		p += 4;
	}
	*p_r = p;
	*len_r = (size_t)(end - p);
}

static const char *rcpt_field(const struct dsn *x, int n, const char *name)
{
	const char *p;
	size_t len;

	rcpt_block(x, n, &p, &len);
	return field(p, len, name);
}

static void base(struct deliver_dsn *d, struct deliver_dsn_rcpt *r, size_t n)
{
	memset(d, 0, sizeof *d);
	d->reporting_mta = HOST;
	d->original_sender = SENDER;
	d->original = original;
	d->original_len = sizeof original - 1;
	d->queue_id = "0123456789abcdef";
	d->arrival = NOW - 3600;
	d->now = NOW;
	d->rcpts = r;
	d->nrcpts = n;
}

/* ---- the whole ------------------------------------------------------------ */

static void test_failed_two_rcpts(void **state)
{
	struct deliver_dsn_rcpt r[2] = {
	    {.addr = "bob@remote.example",
	     .reply = "550 5.1.1 <bob@remote.example>: Recipient address rejected: User unknown",
	     .remote_mta = "mx.remote.example[192.0.2.25]:25",
	     .last_attempt = NOW - 60},
	    {.addr = "carol@other.example",
	     .diagnostic = "Host or domain name not found. Name service error for "
	                   "name=other.example type=MX: Host not found",
	     .status = "5.1.2",
	     .last_attempt = NOW - 30},
	};
	struct deliver_dsn d;
	struct dsn x;
	const char *v;

	(void)state;
	base(&d, r, 2);
	assert_int_equal(deliver_dsn_flags(&d), 0);
	build(&d, &x);

	/* the message header */
	assert_string_equal(field(x.data, x.len, "From"),
	                    "Mail Delivery System <MAILER-DAEMON@" HOST ">");
	assert_string_equal(field(x.data, x.len, "To"), "<" SENDER ">");
	assert_string_equal(field(x.data, x.len, "Subject"), "Undelivered Mail Returned to Sender");
	assert_string_equal(field(x.data, x.len, "Date"), "Sun, 30 Nov 2025 00:00:00 +0000");
	v = field(x.data, x.len, "Message-ID");
	assert_non_null(v);
	assert_true(v[0] == '<' && v[strlen(v) - 1] == '>');
	assert_non_null(strstr(v, "@" HOST ">"));
	assert_string_equal(field(x.data, x.len, "Auto-Submitted"), "auto-replied");
	assert_string_equal(field(x.data, x.len, "MIME-Version"), "1.0");
	assert_string_equal(field(x.data, x.len, "Content-Transfer-Encoding"), "7bit");

	/* part 1: people */
	assert_string_equal(part_field(&x, 0, "Content-Type"), "text/plain; charset=us-ascii");
	assert_true(part_has(&x, 0, "<bob@remote.example>: host mx.remote.example[192.0.2.25]:25"));
	assert_true(part_has(&x, 0, "User unknown"));
	assert_true(part_has(&x, 0, "<carol@other.example>: Host or domain name not found."));

	/* part 2: software */
	assert_string_equal(part_field(&x, 1, "Content-Type"), "message/delivery-status");
	assert_string_equal(field(x.part[1], x.part_len[1], "Reporting-MTA"), "dns; " HOST);
	assert_string_equal(field(x.part[1], x.part_len[1], "X-Sluice-Queue-ID"),
	                    "0123456789abcdef");
	assert_string_equal(field(x.part[1], x.part_len[1], "Arrival-Date"),
	                    "Sat, 29 Nov 2025 23:00:00 +0000");
	assert_null(field(x.part[1], x.part_len[1], "Final-Recipient")); /* not per-message */

	assert_string_equal(rcpt_field(&x, 0, "Final-Recipient"), "rfc822; bob@remote.example");
	assert_string_equal(rcpt_field(&x, 0, "Action"), "failed");
	assert_string_equal(rcpt_field(&x, 0, "Status"), "5.1.1");
	assert_string_equal(rcpt_field(&x, 0, "Remote-MTA"), "dns; mx.remote.example");
	assert_string_equal(rcpt_field(&x, 0, "Diagnostic-Code"),
	                    "smtp; 550 5.1.1 <bob@remote.example>: Recipient address rejected: "
	                    "User unknown");
	assert_string_equal(rcpt_field(&x, 0, "Last-Attempt-Date"),
	                    "Sat, 29 Nov 2025 23:59:00 +0000");
	assert_null(rcpt_field(&x, 0, "Will-Retry-Until"));

	assert_string_equal(rcpt_field(&x, 1, "Final-Recipient"), "rfc822; carol@other.example");
	assert_string_equal(rcpt_field(&x, 1, "Status"), "5.1.2");
	assert_null(rcpt_field(&x, 1, "Remote-MTA"));
	assert_non_null(strstr(rcpt_field(&x, 1, "Diagnostic-Code"), "X-Sluice; Host or domain"));

	/* part 3: the header, not the body */
	assert_string_equal(part_field(&x, 2, "Content-Type"), "text/rfc822-headers");
	assert_null(part_field(&x, 2, "Content-Transfer-Encoding"));
	assert_string_equal(field(x.part[2], x.part_len[2], "Subject"), "quarterly report");
	assert_string_equal(field(x.part[2], x.part_len[2], "Message-ID"), "<abc@tenant.example>");
	assert_non_null(strstr(field(x.part[2], x.part_len[2], "Received"), "with ESMTPSA id"));
	assert_null(memmem(x.data, x.len, "SECRET-BODY-LINE", 16));
	assert_null(memmem(x.data, x.len, "more body", 9));
	dsn_free(&x);
}

static void test_delayed(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example",
	                             .reply = "451 4.7.1 Greylisted, try again later",
	                             .remote_mta = "mx.remote.example",
	                             .last_attempt = NOW,
	                             .will_retry_until = NOW + 4 * 86400};
	struct deliver_dsn d;
	struct dsn x;

	(void)state;
	base(&d, &r, 1);
	d.delayed = 1;
	build(&d, &x);
	assert_string_equal(field(x.data, x.len, "Subject"), "Delivery delayed");
	assert_string_equal(rcpt_field(&x, 0, "Action"), "delayed");
	assert_string_equal(rcpt_field(&x, 0, "Status"), "4.7.1");
	assert_string_equal(rcpt_field(&x, 0, "Will-Retry-Until"),
	                    "Thu, 4 Dec 2025 00:00:00 +0000");
	assert_true(part_has(&x, 0, "WARNING ONLY"));
	assert_true(part_has(&x, 0, "will be tried until Thu, 4 Dec 2025"));
	dsn_free(&x);
}

/* ---- status ---------------------------------------------------------------- */

struct status_case {
	const char *reply, *status;
	int delayed;
	const char *want;
};

/* clang-format off */
static const struct status_case status_cases[] = {
	{.reply = "550 5.1.1 User unknown", .want = "5.1.1"},
	{.reply = "550-5.7.1 first line\r\n550 5.7.1 second line", .want = "5.7.1"},
	{.reply = "554 Transaction failed", .want = "5.0.0"},
	{.reply = "550 4.2.2 class disagrees with the code", .want = "5.0.0"},
	{.reply = "550 5.1.1234 detail too long", .want = "5.0.0"},
	{.reply = "550 5.1", .want = "5.0.0"},
	{.reply = "550", .want = "5.0.0"},
	{.reply = "garbage", .want = "5.0.0"},
	{.reply = NULL, .want = "5.0.0"},
	{.reply = "550 5.1.1 x", .status = "5.1.10", .want = "5.1.10"},
	{.reply = "550 5.1.1 x", .status = "bogus", .want = "5.1.1"},
	{.reply = "550 5.1.1 x", .status = "5.1", .want = "5.1.1"},
	/* failed for good after temporary replies: expired */
	{.reply = "452 4.2.2 Mailbox full", .want = "5.4.7"},
	{.reply = "421 Service not available", .want = "5.4.7"},
	{.reply = NULL, .status = "4.4.1", .want = "5.4.7"},
	/* warnings are class 4 */
	{.reply = "452 4.2.2 Mailbox full", .delayed = 1, .want = "4.2.2"},
	{.reply = NULL, .delayed = 1, .want = "4.0.0"},
	{.reply = "421 try later", .delayed = 1, .want = "4.0.0"},
	{.reply = NULL, .status = "5.4.4", .delayed = 1, .want = "4.4.4"},
};
/* clang-format on */

static void test_status_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof status_cases / sizeof status_cases[0]; i++) {
		const struct status_case *c = &status_cases[i];
		struct deliver_dsn_rcpt r = {
		    .addr = "bob@remote.example", .reply = c->reply, .status = c->status};
		struct deliver_dsn d;
		struct dsn x;
		const char *got;

		base(&d, &r, 1);
		d.delayed = c->delayed;
		build(&d, &x);
		got = rcpt_field(&x, 0, "Status");
		if (got == NULL || strcmp(got, c->want) != 0)
			fail_msg("reply \"%s\" status %s delayed %d: got %s, want %s",
			         c->reply ? c->reply : "(none)", c->status ? c->status : "(none)",
			         c->delayed, got ? got : "(none)", c->want);
		dsn_free(&x);
	}
}

/* ---- Remote-MTA ------------------------------------------------------------- */

static void test_remote_mta_table(void **state)
{
	static const struct {
		const char *remote, *want; /* want NULL: no Remote-MTA */
	} cases[] = {
	    {"mx.remote.example", "dns; mx.remote.example"},
	    {"mx.remote.example[192.0.2.25]:25", "dns; mx.remote.example"},
	    {"mx.remote.example:25", "dns; mx.remote.example"},
	    {"mx.remote.example.", "dns; mx.remote.example"},
	    {"[192.0.2.25]:25", NULL},
	    {"[2001:db8::25]:25", NULL},
	    {"bad host\r\nX: y", NULL},
	    {"mx.remote.example\r\nX: y", NULL},
	    {"mx.remote.example x", NULL},
	    {"", NULL},
	    {NULL, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct deliver_dsn_rcpt r = {.addr = "bob@remote.example",
		                             .reply = "550 5.1.1 no",
		                             .remote_mta = cases[i].remote};
		struct deliver_dsn d;
		struct dsn x;
		const char *got;

		base(&d, &r, 1);
		build(&d, &x);
		got = rcpt_field(&x, 0, "Remote-MTA");
		if (cases[i].want == NULL)
			assert_null(got);
		else
			assert_string_equal(got, cases[i].want);
		/* a hostile remote never reaches the text either */
		assert_null(memmem(x.data, x.len, "\r\nX: y", 6));
		dsn_free(&x);
	}
}

/* ---- hostile and long replies ------------------------------------------------ */

static void test_reply_sanitized(void **state)
{
	struct deliver_dsn_rcpt r = {
	    .addr = "bob@remote.example",
	    .reply = "550-5.7.1 first\r\n550-5.7.1 second\n550 5.7.1 \x01third\t\xc3\xa9t\xc3\xa9"
	             "\r\nBcc: victim@elsewhere.example\r\n\r\n--fake-boundary--",
	    .remote_mta = "mx.remote.example"};
	struct deliver_dsn d;
	struct dsn x;

	(void)state;
	base(&d, &r, 1);
	build(&d, &x);
	assert_string_equal(rcpt_field(&x, 0, "Diagnostic-Code"),
	                    "smtp; 550-5.7.1 first 550-5.7.1 second 550 5.7.1 third ??t?? Bcc: "
	                    "victim@elsewhere.example --fake-boundary--");
	/* no line of its own anywhere */
	assert_null(memmem(x.data, x.len, "\r\nBcc:", 6));
	assert_null(memmem(x.data, x.len, "\r\n--fake-boundary", 17));
	assert_string_equal(field(x.data, x.len, "Content-Transfer-Encoding"), "7bit");
	dsn_free(&x);
}

static void test_long_reply(void **state)
{
	enum { N = 6000 };
	char *reply = malloc(N + 1);
	struct deliver_dsn_rcpt r = {
	    .addr = "bob@remote.example", .reply = reply, .remote_mta = "mx.remote.example"};
	struct deliver_dsn d;
	struct dsn x;
	const char *dc;
	size_t i;

	(void)state;
	assert_non_null(reply);
	/* words, then one 3000-octet word */
	memcpy(reply, "550 5.0.0 ", 10);
	for (i = 10; i < N; i++)
		reply[i] = i < 2000 ? (i % 7 == 0 ? ' ' : 'a') : 'W';
	reply[N] = '\0';
	base(&d, &r, 1);
	build(&d, &x); /* line lengths checked there */
	dc = rcpt_field(&x, 0, "Diagnostic-Code");
	assert_non_null(dc);
	/* cut with a visible mark, near 2048 octets of reply */
	assert_non_null(strstr(dc, " [...]"));
	assert_true(strlen(dc) < 2048 + 64 && strlen(dc) > 2000);
	/* folded lines in the status part stay near 78 where words allow */
	{
		size_t col = 0, longest = 0;
		int has_w = 0;

		/* lines holding the long word may be long, others not */
		for (i = 0; i < x.part_len[1]; i++) {
			char ch = x.part[1][i];

			if (ch == '\r')
				continue;
			if (ch == '\n') {
				if (!has_w && col > longest)
					longest = col;
				col = 0;
				has_w = 0;
				continue;
			}
			col++;
			has_w |= ch == 'W';
		}
		assert_true(longest <= 78);
	}
	free(reply);
	dsn_free(&x);
}

/* ---- the original header ------------------------------------------------- */

static void test_header_8bit(void **state)
{
	static const char orig8[] = "From: =?utf-8?q?J=C3=B6rg?= <joerg@tenant.example>\r\n"
	                            "Subject: Gr\xc3\xbc\xc3\x9f"
	                            "e aus M\xc3\xbcnchen\r\n"
	                            "\r\n"
	                            "K\xc3\xb6rper\r\n";
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example", .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	struct dsn x;

	(void)state;
	base(&d, &r, 1);
	d.original = orig8;
	d.original_len = sizeof orig8 - 1;
	assert_int_equal(deliver_dsn_flags(&d), SPOOL_MSG_8BIT);
	build(&d, &x);
	assert_string_equal(field(x.data, x.len, "Content-Transfer-Encoding"), "8bit");
	assert_string_equal(part_field(&x, 2, "Content-Transfer-Encoding"), "8bit");
	assert_true(part_has(&x, 2,
	                     "Subject: Gr\xc3\xbc\xc3\x9f"
	                     "e aus M\xc3\xbcnchen\r\n"));
	assert_null(memmem(x.data, x.len, "K\xc3\xb6rper", 7));
	/* the rest stays 7-bit */
	assert_string_equal(part_field(&x, 0, "Content-Type"), "text/plain; charset=us-ascii");
	dsn_free(&x);
}

static void test_utf8_addresses(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "j\xc3\xb6rg+x=y@b\xc3\xbc"
	                                     "cher.example",
	                             .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	struct dsn x;

	(void)state;
	base(&d, &r, 1);
	assert_int_equal(deliver_dsn_flags(&d), SPOOL_MSG_8BIT);
	build(&d, &x);
	/* RFC 6533 utf-8-addr-xtext: the report part stays 7-bit */
	assert_string_equal(rcpt_field(&x, 0, "Final-Recipient"),
	                    "utf-8; j\\x{F6}rg\\x{2B}x\\x{3D}y@b\\x{FC}cher.example");
	assert_string_equal(part_field(&x, 0, "Content-Type"), "text/plain; charset=utf-8");
	assert_string_equal(part_field(&x, 0, "Content-Transfer-Encoding"), "8bit");
	assert_true(part_has(&x, 0,
	                     "<j\xc3\xb6rg+x=y@b\xc3\xbc"
	                     "cher.example>"));
	dsn_free(&x);

	/* A UTF-8 sender: the DSN needs SMTPUTF8 on its way back. */
	base(&d, &r, 1);
	d.original_sender = "\xc3\xa9lise@tenant.example";
	assert_int_equal(deliver_dsn_flags(&d), SPOOL_MSG_8BIT | SPOOL_MSG_SMTPUTF8);
	build(&d, &x);
	assert_string_equal(field(x.data, x.len, "To"), "<\xc3\xa9lise@tenant.example>");
	dsn_free(&x);

	/* Invalid UTF-8 shows as U+FFFD. */
	r.addr = "a\xff\xc3@x.example";
	base(&d, &r, 1);
	build(&d, &x);
	assert_string_equal(rcpt_field(&x, 0, "Final-Recipient"),
	                    "utf-8; a\\x{FFFD}\\x{FFFD}@x.example");
	dsn_free(&x);
}

/* Lines over 998 are folded, LF-only line ends become CRLF, a message
 * without a body is all header. */
static void test_header_shapes(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example", .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	struct dsn x;
	char *big = malloc(4000);
	size_t n;

	(void)state;
	assert_non_null(big);
	n = (size_t)snprintf(big, 4000, "X-Long: ");
	memset(big + n, 'L', 2500);
	n += 2500;
	memcpy(big + n, "\nSubject: lf only\n\nbody\n", 25);
	base(&d, &r, 1);
	d.original = big;
	d.original_len = strlen(big);
	build(&d, &x);
	assert_true(part_has(&x, 2, "\r\nSubject: lf only\r\n"));
	assert_false(part_has(&x, 2, "body"));
	/* unfolded, the long field keeps its 2500 L's (and gains 2 spaces) */
	assert_int_equal(strlen(field(x.part[2], x.part_len[2], "X-Long")), 2500 + 2);
	dsn_free(&x);

	base(&d, &r, 1);
	d.original = "Subject: no body\r\nX-A: 1\r\n";
	d.original_len = strlen(d.original);
	build(&d, &x);
	assert_true(part_has(&x, 2, "Subject: no body\r\nX-A: 1\r\n"));
	dsn_free(&x);

	/* No original at all: the third part is empty, still there. */
	base(&d, &r, 1);
	d.original = NULL;
	d.original_len = 0;
	build(&d, &x);
	assert_int_equal(x.part_len[2], 0);
	dsn_free(&x);
	free(big);
}

/* More header than DELIVER_DSN_HEADER_MAX: cut before the field that
 * does not fit, and the text part says so. */
static void test_header_cap(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example", .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	struct buf b = BUF_INIT;
	struct dsn x;
	int i;

	(void)state;
	assert_int_equal(buf_append_str(&b, "Subject: first\r\n"), 0);
	for (i = 0; i < 4000; i++)
		assert_int_equal(buf_printf(&b, "X-Filler-%04d: %s\r\n\t%s\r\n", i,
		                            "some words to fill the header of this message",
		                            "and a continuation line of the same field"),
		                 0);
	assert_int_equal(buf_append_str(&b, "\r\nbody\r\n"), 0);
	base(&d, &r, 1);
	d.original = b.data;
	d.original_len = b.len;
	build(&d, &x);
	assert_true(x.part_len[2] <= DELIVER_DSN_HEADER_MAX);
	assert_true(x.part_len[2] > DELIVER_DSN_HEADER_MAX - 200);
	assert_true(part_has(&x, 2, "Subject: first\r\n"));
	assert_false(part_has(&x, 2, "X-Filler-3999"));
	/* ends after a whole field: a continuation line, then nothing */
	{
		static const char tail[] = "\tand a continuation line of the same field\r\n";

		assert_memory_equal(x.part[2] + x.part_len[2] - (sizeof tail - 1), tail,
		                    sizeof tail - 1);
	}
	assert_true(part_has_unwrapped(&x, 0,
	                               "longer than 262144 octets: the fields past that are "
	                               "left out."));
	dsn_free(&x);
	buf_free(&b);
}

/* ---- refusals ---------------------------------------------------------------- */

static void test_null_sender(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example", .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	char *out = (char *)1, *err = (char *)1;
	size_t len = 1;

	(void)state;
	base(&d, &r, 1);
	d.original_sender = "";
	assert_int_equal(deliver_dsn_build(&d, &out, &len, &err), DELIVER_DSN_NULL_SENDER);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_null(err);
	d.original_sender = NULL;
	assert_int_equal(deliver_dsn_build(&d, &out, &len, &err), DELIVER_DSN_NULL_SENDER);
	assert_int_equal(deliver_dsn_flags(&d), 0);
}

static void test_refusals(void **state)
{
	static const struct {
		const char *sender, *host, *rcpt, *msgid;
		size_t nrcpts;
		const char *why;
	} cases[] = {
	    {.sender = "a@b\r\nBcc: x@y", .why = "control"},
	    {.host = "bad host", .why = "host name"},
	    {.host = "", .why = "host name"},
	    {.rcpt = "bob@x\r\nBcc: y@z", .why = "control"},
	    {.rcpt = "", .why = "empty"},
	    {.nrcpts = 0, .rcpt = "none", .why = "no recipients"},
	    {.msgid = "no-brackets@x", .why = "message id"},
	    {.msgid = "<a@b>\r\nX: y", .why = "message id"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct deliver_dsn_rcpt r = {.addr = "bob@remote.example"};
		struct deliver_dsn d;
		char *out = NULL, *err = NULL;
		size_t len;

		base(&d, &r, 1);
		if (cases[i].sender)
			d.original_sender = cases[i].sender;
		if (cases[i].host)
			d.reporting_mta = cases[i].host;
		if (cases[i].rcpt)
			r.addr = cases[i].rcpt;
		if (cases[i].rcpt && strcmp(cases[i].rcpt, "none") == 0)
			d.nrcpts = 0;
		d.message_id = cases[i].msgid;
		assert_int_equal(deliver_dsn_build(&d, &out, &len, &err), -1);
		assert_null(out);
		assert_non_null(err);
		if (strstr(err, cases[i].why) == NULL)
			fail_msg("case %zu: \"%s\", want \"%s\"", i, err, cases[i].why);
		free(err);
	}
}

/* Two DSNs for the same message differ in boundary and Message-ID. */
static void test_unique(void **state)
{
	struct deliver_dsn_rcpt r = {.addr = "bob@remote.example", .reply = "550 5.1.1 no"};
	struct deliver_dsn d;
	struct dsn a, b;
	char id_a[256];

	(void)state;
	base(&d, &r, 1);
	build(&d, &a);
	util_strlcpy(id_a, field(a.data, a.len, "Message-ID"), sizeof id_a);
	build(&d, &b);
	assert_string_not_equal(a.boundary, b.boundary);
	assert_string_not_equal(id_a, field(b.data, b.len, "Message-ID"));
	dsn_free(&a);
	dsn_free(&b);
	d.message_id = "<given@" HOST ">";
	build(&d, &a);
	assert_string_equal(field(a.data, a.len, "Message-ID"), "<given@" HOST ">");
	dsn_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failed_two_rcpts), cmocka_unit_test(test_delayed),
	    cmocka_unit_test(test_status_table),     cmocka_unit_test(test_remote_mta_table),
	    cmocka_unit_test(test_reply_sanitized),  cmocka_unit_test(test_long_reply),
	    cmocka_unit_test(test_header_8bit),      cmocka_unit_test(test_utf8_addresses),
	    cmocka_unit_test(test_header_shapes),    cmocka_unit_test(test_header_cap),
	    cmocka_unit_test(test_null_sender),      cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_unique),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
