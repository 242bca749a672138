/* scan: the parsers of clamd and rspamd replies (whole and fed one byte
 * at a time), the requests sluice writes, addresses, the verdict table,
 * and whole jobs on a libevent loop against fake scanners on loopback
 * sockets in the same loop (INSTREAM framing checked octet by octet, a
 * scanner that never answers, one that is down, cancel, counts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>
#include <event2/event.h>

#include "scan/scan_int.h"

/* ---- clamd replies ---------------------------------------------------------- */

struct clamd_case {
	const char *in;
	size_t len; /* 0: strlen(in) + 1 (the NUL of z-commands) */
	int eof;
	int want;
	enum scan_outcome outcome;
	const char *name;
};

static void test_clamd_reply(void **state)
{
	static const struct clamd_case cases[] = {
	    {.in = "stream: OK", .want = 1, .outcome = SCAN_OUT_CLEAN},
	    {.in = "stream: Sluice.Test.EICAR.UNOFFICIAL FOUND",
	     .want = 1,
	     .outcome = SCAN_OUT_VIRUS,
	     .name = "Sluice.Test.EICAR.UNOFFICIAL"},
	    {.in = "stream: Win.Test.EICAR_HDB-1 FOUND\n",
	     .len = 35,
	     .want = 1,
	     .outcome = SCAN_OUT_VIRUS,
	     .name = "Win.Test.EICAR_HDB-1"},
	    {.in = "INSTREAM size limit exceeded. ERROR", .want = 1, .outcome = SCAN_OUT_FAILED},
	    {.in = "stream: OK\r\n", .len = 12, .want = 1, .outcome = SCAN_OUT_CLEAN},
	    {.in = "stream: OK", .len = 10, .eof = 1, .want = 1, .outcome = SCAN_OUT_CLEAN},
	    {.in = "stream: OK", .len = 10, .want = 0},
	    {.in = "", .len = 0, .eof = 1, .want = -1},
	    {.in = "stream: FOUND", .want = -1},
	    {.in = "stream: two words FOUND", .want = -1},
	    {.in = "stream: \x01 FOUND", .want = -1},
	    {.in = "UNKNOWN COMMAND", .want = -1},
	    {.in = "stream: OKAY", .want = -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct clamd_case *c = &cases[i];
		size_t len = c->len ? c->len : strlen(c->in) + (c->eof ? 0 : 1);
		struct scan_result r;
		int got;

		if (c->len == 0 && c->want == 0)
			len = strlen(c->in);
		got = scan_clamd_reply_parse(c->in, len, c->eof, &r);
		if (got != c->want)
			fail_msg("case %zu \"%s\": got %d want %d", i, c->in, got, c->want);
		if (got == 1) {
			assert_int_equal(r.outcome, c->outcome);
			if (c->name)
				assert_string_equal(r.name, c->name);
		}
		/* trickle: every shorter prefix without EOF needs more */
		for (size_t k = 0; got == 1 && !c->eof && k < len; k++) {
			const char *term = memchr(c->in, c->in[len - 1] == '\0' ? '\0' : '\n', k);
			if (term == NULL && k < len - 1)
				assert_int_equal(scan_clamd_reply_parse(c->in, k, 0, &r), 0);
		}
	}
	{ /* a reply without an end, at the bound */
		char big[SCAN_CLAMD_REPLY_MAX];
		struct scan_result r;
		memset(big, 'A', sizeof big);
		assert_int_equal(scan_clamd_reply_parse(big, sizeof big, 0, &r), -1);
		assert_int_equal(scan_clamd_reply_parse(big, sizeof big - 1, 0, &r), 0);
	}
	{ /* a name longer than the result holds */
		char line[SCAN_NAME_MAX + 32];
		struct scan_result r;
		memset(line, 'V', sizeof line);
		memcpy(line + sizeof line - 7, " FOUND", 7);
		assert_int_equal(scan_clamd_reply_parse(line, sizeof line, 0, &r), -1);
	}
}

/* ---- HTTP ------------------------------------------------------------------- */

static const char RSPAMD_REPLY[] =
    "HTTP/1.1 200 OK\r\nConnection: close\r\nServer: rspamd/3.4\r\n"
    "Content-Length: 144\r\nContent-Type: application/json\r\n\r\n"
    "{\"is_skipped\":false,\"score\":0.0,\"required_score\":15.0,\"action\":\"no action\","
    "\"symbols\":{},\"messages\":{},\"message-id\":\"undef\",\"time_real\":0.131953}";

static void test_http_response(void **state)
{
	struct scan_http_response h;
	size_t len = strlen(RSPAMD_REPLY);
	static const char *bad[] = {
	    "HTTP/2 200 OK\r\n\r\n",
	    "HTTP/1.1 2000 OK\r\n\r\n",
	    "HTTP/1.1 20 OK\r\n\r\n",
	    "SMTP/1.1 200 OK\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
	    "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
	};

	(void)state;
	assert_int_equal(scan_http_response_parse(RSPAMD_REPLY, len, 0, &h), 1);
	assert_int_equal(h.status, 200);
	assert_int_equal(h.body_len, 144);
	assert_int_equal(RSPAMD_REPLY[h.body_off], '{');
	for (size_t k = 0; k < len; k++)
		assert_int_equal(scan_http_response_parse(RSPAMD_REPLY, k, 0, &h), 0);
	/* cut short by EOF */
	assert_int_equal(scan_http_response_parse(RSPAMD_REPLY, len - 1, 1, &h), -1);
	/* without Content-Length: the body is what came before EOF; LF alone ends lines */
	{
		const char *r = "HTTP/1.0 500 Internal\nServer: x\n\n{\"error\":\"boom\"}";
		assert_int_equal(scan_http_response_parse(r, strlen(r), 0, &h), 0);
		assert_int_equal(scan_http_response_parse(r, strlen(r), 1, &h), 1);
		assert_int_equal(h.status, 500);
		assert_int_equal(h.body_len, strlen("{\"error\":\"boom\"}"));
	}
	{
		const char *r = "HTTP/1.1 204 No Content\r\nTransfer-Encoding: identity\r\n"
		                "Content-Length: 0\r\n\r\n";
		assert_int_equal(scan_http_response_parse(r, strlen(r), 0, &h), 1);
		assert_int_equal(h.body_len, 0);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (scan_http_response_parse(bad[i], strlen(bad[i]), 1, &h) != -1)
			fail_msg("bad response %zu accepted", i);
	{ /* headers without an end, at the bound */
		char *big = malloc(SCAN_HTTP_HEADER_MAX);
		assert_non_null(big);
		memset(big, 'h', SCAN_HTTP_HEADER_MAX);
		memcpy(big, "HTTP/1.1 200 OK\r\n", 17);
		assert_int_equal(scan_http_response_parse(big, SCAN_HTTP_HEADER_MAX, 0, &h), -1);
		free(big);
	}
}

/* ---- rspamd JSON -------------------------------------------------------------- */

static void test_rspamd_reply(void **state)
{
	struct scan_result r;
	const char *body = strchr(RSPAMD_REPLY, '{');
	const char *reject =
	    "{\"is_skipped\":false,\"score\":16.5,\"required_score\":15.0,\"action\":\"reject\","
	    "\"symbols\":{\"A\":{\"name\":\"A\",\"score\":1.0},\"B\":{\"name\":\"B\",\"score\":9.5}"
	    ","
	    "\"C\":{\"name\":\"C\",\"score\":-2},\"D\":{\"score\":3},\"E\":{\"score\":0.5},"
	    "\"F\":{\"score\":2},\"G\":{}},"
	    "\"messages\":{\"smtp_message\":\"spam\\r\\nInjected: yes\"}}";

	(void)state;
	assert_int_equal(scan_rspamd_reply_parse(body, strlen(body), &r), 0);
	assert_int_equal(r.outcome, SCAN_OUT_CLEAN);
	assert_string_equal(r.name, "no action");
	assert_true(r.required == 15.0);

	assert_int_equal(scan_rspamd_reply_parse(reject, strlen(reject), &r), 0);
	assert_int_equal(r.outcome, SCAN_OUT_REJECT);
	assert_true(r.score == 16.5);
	/* control characters never reach a reply text */
	assert_string_equal(r.text, "spam??Injected: yes");
	/* the five highest, highest first */
	assert_string_equal(r.symbols, "B(9.50),D(3.00),F(2.00),A(1.00),E(0.50)");

	{
		static const struct {
			const char *json;
			int want;
			enum scan_outcome outcome;
		} cases[] = {
		    {"{\"action\":\"soft reject\"}", 0, SCAN_OUT_SOFT_REJECT},
		    {"{\"action\":\"add header\",\"score\":7}", 0, SCAN_OUT_ADD_HEADER},
		    {"{\"action\":\"rewrite subject\"}", 0, SCAN_OUT_REWRITE_SUBJECT},
		    {"{\"action\":\"greylist\"}", 0, SCAN_OUT_GREYLIST},
		    {"{\"action\":\"discard\"}", 0, SCAN_OUT_FAILED},
		    {"{\"action\":\"reject\\u0000x\"}", 0, SCAN_OUT_FAILED},
		    {"{\"error\":\"cannot parse input\"}", 0, SCAN_OUT_FAILED},
		    {"{\"action\":5}", -1, SCAN_OUT_FAILED},
		    {"[\"action\"]", -1, SCAN_OUT_FAILED},
		    {"{\"action\":\"reject\"", -1, SCAN_OUT_FAILED},
		    {"", -1, SCAN_OUT_FAILED},
		};
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			int got = scan_rspamd_reply_parse(cases[i].json, strlen(cases[i].json), &r);
			if (got != cases[i].want)
				fail_msg("json case %zu: got %d", i, got);
			if (got == 0 && r.outcome != cases[i].outcome)
				fail_msg("json case %zu: outcome %d", i, (int)r.outcome);
		}
	}
	assert_int_equal(scan_rspamd_reply_parse("{\"error\":\"bad\"}", 15, &r), 0);
	assert_string_equal(r.text, "bad");
}

/* ---- endpoints --------------------------------------------------------------- */

static void test_endpoints(void **state)
{
	struct scan_endpoint e;
	const char *why = NULL;

	(void)state;
	assert_int_equal(scan_endpoint_parse("127.0.0.1:3310", 0, &e, &why), 0);
	assert_int_equal(e.ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&e.ss)->sin_port), 3310);
	assert_int_equal(scan_endpoint_parse("[::1]:3310", 0, &e, &why), 0);
	assert_int_equal(e.ss.ss_family, AF_INET6);
	assert_int_equal(scan_endpoint_parse("unix:/run/clamav/clamd.ctl", 0, &e, &why), 0);
	assert_int_equal(e.ss.ss_family, AF_UNIX);
	assert_string_equal(((struct sockaddr_un *)&e.ss)->sun_path, "/run/clamav/clamd.ctl");
	assert_int_equal(scan_endpoint_parse("/run/x.sock", 1, &e, &why), 0);
	assert_string_equal(e.path, "/checkv2");
	assert_string_equal(e.host, "localhost");
	assert_int_equal(scan_endpoint_parse("http://127.0.0.1:11333", 1, &e, &why), 0);
	assert_string_equal(e.host, "127.0.0.1:11333");
	assert_string_equal(e.path, "/checkv2");
	assert_int_equal(scan_endpoint_parse("http://[::1]:11333/checkv2?x=1", 1, &e, &why), 0);
	assert_string_equal(e.path, "/checkv2?x=1");
	assert_int_equal(e.ss.ss_family, AF_INET6);

	assert_int_equal(scan_endpoint_parse("localhost:3310", 0, &e, &why), -1);
	assert_int_equal(scan_endpoint_parse("127.0.0.1", 0, &e, &why), -1);
	assert_int_equal(scan_endpoint_parse("127.0.0.1:11333", 1, &e, &why), -1);
	assert_int_equal(scan_endpoint_parse("https://127.0.0.1:11333", 1, &e, &why), -1);
	assert_int_equal(scan_endpoint_parse("http://127.0.0.1:11333/a b", 1, &e, &why), -1);
	assert_int_equal(scan_endpoint_parse("unix:relative", 0, &e, &why), -1);
	{
		char longpath[200] = "unix:/";
		memset(longpath + 6, 'p', 150);
		longpath[156] = '\0';
		assert_int_equal(scan_endpoint_parse(longpath, 0, &e, &why), -1);
	}
}

/* ---- requests ------------------------------------------------------------------ */

/* The bytes the iovecs of c hold, in order. */
static char *iov_join(const struct scan_conn *c, size_t *len_r)
{
	size_t n = 0, off = 0;
	char *out;

	for (size_t i = 0; i < c->niov; i++)
		n += c->iov[i].iov_len;
	out = malloc(n + 1);
	assert_non_null(out);
	for (size_t i = 0; i < c->niov; i++) {
		memcpy(out + off, c->iov[i].iov_base, c->iov[i].iov_len);
		off += c->iov[i].iov_len;
	}
	*len_r = n;
	return out;
}

/* Undo INSTREAM framing: the payload, or -1 when the framing is wrong. */
static int instream_decode(const unsigned char *p, size_t len, struct buf *out)
{
	size_t off = 10;

	if (len < 14 || memcmp(p, "zINSTREAM\0", 10) != 0)
		return -1;
	for (;;) {
		uint32_t n;
		if (off + 4 > len)
			return -1;
		n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
		    (uint32_t)p[off + 2] << 8 | p[off + 3];
		off += 4;
		if (n == 0)
			return off == len ? 0 : -1;
		if (n > SCAN_CLAMD_CHUNK || off + n > len)
			return -1;
		buf_append(out, p + off, n);
		off += n;
	}
}

static void test_clamd_request(void **state)
{
	static const size_t sizes[] = {0,
	                               1,
	                               100,
	                               SCAN_CLAMD_CHUNK - 1,
	                               SCAN_CLAMD_CHUNK,
	                               SCAN_CLAMD_CHUNK + 1,
	                               3 * SCAN_CLAMD_CHUNK + 17};
	char *data = malloc(4 * SCAN_CLAMD_CHUNK);

	(void)state;
	assert_non_null(data);
	for (size_t i = 0; i < 4 * SCAN_CLAMD_CHUNK; i++)
		data[i] = (char)(i * 7 + 3);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		struct scan_conn c;
		struct buf payload = BUF_INIT;
		size_t len;
		char *wire;

		memset(&c, 0, sizeof c);
		c.fd = -1;
		assert_int_equal(scan_clamd_request(&c, data, sizes[k]), 0);
		wire = iov_join(&c, &len);
		assert_int_equal(
		    len,
		    10 + 4 * ((sizes[k] + SCAN_CLAMD_CHUNK - 1) / SCAN_CLAMD_CHUNK + 1) + sizes[k]);
		assert_int_equal(instream_decode((unsigned char *)wire, len, &payload), 0);
		assert_int_equal(payload.len, sizes[k]);
		if (sizes[k])
			assert_memory_equal(payload.data, data, sizes[k]);
		free(wire);
		buf_free(&payload);
		scan_conn_clear(&c);
	}
	free(data);
}

static void test_rspamd_request(void **state)
{
	struct scan_conn c;
	struct scan_endpoint ep;
	const char *why, *rcpts[] = {"bob@example.org", "carol@example.net"};
	const char body[] = "From: a@acme.example\r\n\r\nhi\r\n";
	struct scan_request rq = {
	    .data = body,
	    .len = sizeof body - 1,
	    .queue_id = "0123456789abcdef",
	    .sender = "alice@acme.example",
	    .rcpts = rcpts,
	    .nrcpts = 2,
	    .client_addr = "192.0.2.7",
	    .helo = "evil\r\nX-Injected: 1",
	    .user = "acme",
	    .hostname = "mx.sluice.test",
	};
	size_t len;
	char *wire;

	(void)state;
	assert_int_equal(scan_endpoint_parse("http://127.0.0.1:11333/checkv2", 1, &ep, &why), 0);
	memset(&c, 0, sizeof c);
	c.fd = -1;
	assert_int_equal(scan_rspamd_request(&c, &ep, &rq), 0);
	wire = iov_join(&c, &len);
	wire[len] = '\0';
	assert_non_null(strstr(wire, "POST /checkv2 HTTP/1.0\r\nHost: 127.0.0.1:11333\r\n"
	                             "Content-Length: 28\r\n"));
	assert_non_null(strstr(wire, "\r\nQueue-Id: 0123456789abcdef\r\n"));
	assert_non_null(strstr(wire, "\r\nFrom: alice@acme.example\r\n"));
	assert_non_null(strstr(wire, "\r\nRcpt: bob@example.org\r\nRcpt: carol@example.net\r\n"));
	assert_non_null(strstr(wire, "\r\nIP: 192.0.2.7\r\n"));
	assert_non_null(strstr(wire, "\r\nHelo: evil??X-Injected: 1\r\n"));
	assert_null(strstr(wire, "\r\nX-Injected"));
	assert_non_null(strstr(wire, "\r\nUser: acme\r\n"));
	assert_non_null(strstr(wire, "\r\nMTA-Name: mx.sluice.test\r\n\r\nFrom: a@acme.example"));
	assert_int_equal(len - (size_t)(strstr(wire, "\r\n\r\n") + 4 - wire), sizeof body - 1);
	free(wire);
	scan_conn_clear(&c);

	/* the null sender and no AUTH: no From:, no User: */
	rq.sender = "";
	rq.user = NULL;
	memset(&c, 0, sizeof c);
	c.fd = -1;
	assert_int_equal(scan_rspamd_request(&c, &ep, &rq), 0);
	wire = iov_join(&c, &len);
	wire[len] = '\0';
	*strstr(wire, "\r\n\r\n") = '\0';
	assert_null(strstr(wire, "\r\nFrom:"));
	assert_null(strstr(wire, "\r\nUser:"));
	free(wire);
	scan_conn_clear(&c);
}

/* ---- the verdict ----------------------------------------------------------------- */

static struct config_scan test_cfg(void)
{
	struct config_scan cfg;

	config_scan_defaults(&cfg);
	return cfg;
}

static void test_decide(void **state)
{
	struct config_scan cfg = test_cfg();
	struct scan_result r[SCAN_NSCANNERS];
	int both[SCAN_NSCANNERS] = {1, 1}, clamd_only[SCAN_NSCANNERS] = {1, 0};
	struct scan_verdict v;

	(void)state;
	memset(r, 0, sizeof r);
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_ACCEPT);
	assert_int_equal(v.code, 250);
	assert_string_equal(v.reason, "clean");
	assert_int_equal(v.by, -1);

	r[SCAN_CLAMD].outcome = SCAN_OUT_VIRUS;
	strcpy(r[SCAN_CLAMD].name, "Eicar-Test");
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_REFUSE);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enhanced, "5.7.1");
	assert_string_equal(v.text, "Message refused: virus found (clamd: Eicar-Test)");
	assert_string_equal(v.reason, "virus");
	assert_int_equal(v.by, SCAN_CLAMD);

	/* refuse beats a soft reject from the other scanner */
	r[SCAN_RSPAMD].outcome = SCAN_OUT_SOFT_REJECT;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_REFUSE);
	assert_int_equal(v.by, SCAN_CLAMD);

	/* a virus held by configuration; the soft reject (451 4.7.1) is more severe */
	cfg.clamd_virus = CONFIG_SCAN_HOLD;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_TEMPFAIL);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enhanced, "4.7.1");
	assert_int_equal(v.by, SCAN_RSPAMD);
	r[SCAN_RSPAMD].outcome = SCAN_OUT_CLEAN;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_HOLD);
	assert_int_equal(v.code, 250);
	assert_string_equal(v.reason, "virus");

	/* rspamd reject with its score and message */
	cfg = test_cfg();
	memset(r, 0, sizeof r);
	r[SCAN_RSPAMD].outcome = SCAN_OUT_REJECT;
	strcpy(r[SCAN_RSPAMD].name, "reject");
	strcpy(r[SCAN_RSPAMD].text, "Spam message rejected");
	r[SCAN_RSPAMD].score = 17.25;
	r[SCAN_RSPAMD].required = 15;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_REFUSE);
	assert_string_equal(v.text, "Message refused as spam (rspamd: reject, score 17.25/15.00): "
	                            "Spam message rejected");
	assert_string_equal(v.reason, "spam");

	/* add header: accept by default, hold or refuse when configured */
	r[SCAN_RSPAMD].outcome = SCAN_OUT_ADD_HEADER;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_ACCEPT);
	assert_string_equal(v.reason, "add-header");
	cfg.rspamd_add_header = CONFIG_SCAN_HOLD;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_HOLD);
	cfg.rspamd_add_header = CONFIG_SCAN_REFUSE;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_REFUSE);
	assert_int_equal(v.code, 550);

	/* a failed scanner: 451 4.3.0 closed, accept open */
	cfg = test_cfg();
	memset(r, 0, sizeof r);
	r[SCAN_CLAMD].outcome = SCAN_OUT_FAILED;
	strcpy(r[SCAN_CLAMD].text, "connect: Connection refused");
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_TEMPFAIL);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enhanced, "4.3.0");
	assert_string_equal(v.text, "Content scanner unavailable (clamd), try again later");
	cfg.fail_closed = 0;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_ACCEPT);
	assert_string_equal(v.reason, "fail-open");
	/* a failed clamd open, rspamd still refuses */
	r[SCAN_RSPAMD].outcome = SCAN_OUT_REJECT;
	scan_decide(&cfg, both, r, &v);
	assert_int_equal(v.action, SCAN_REFUSE);
	/* a scanner that did not run does not count */
	scan_decide(&cfg, clamd_only, r, &v);
	assert_int_equal(v.action, SCAN_ACCEPT);
	assert_int_equal(v.ran[SCAN_RSPAMD], 0);

	/* skipped (too large) is an accept, named */
	memset(r, 0, sizeof r);
	r[SCAN_CLAMD].outcome = SCAN_OUT_SKIPPED;
	scan_decide(&cfg, clamd_only, r, &v);
	assert_int_equal(v.action, SCAN_ACCEPT);
	assert_string_equal(v.reason, "skipped");
}

/* ---- jobs on a loop, against fake scanners ---------------------------------------- */

enum fake_mode { FAKE_CLAMD_FOUND, FAKE_SILENT, FAKE_RSPAMD_REJECT, FAKE_CLAMD_EARLY_CLOSE };

struct fake {
	struct event_base *base;
	enum fake_mode mode;
	int lfd, cfd;
	struct event *lev, *cev;
	struct buf in;
	struct buf payload; /* the message clamd got, unframed */
	int served;
};

struct done {
	int calls;
	struct scan_verdict v;
};

static void on_done(void *ctx, const struct scan_verdict *v)
{
	struct done *d = ctx;

	d->calls++;
	d->v = *v;
}

static void fake_reply(struct fake *f, const char *reply, size_t len)
{
	if (write(f->cfd, reply, len) != (ssize_t)len)
		fail_msg("fake scanner write");
	event_free(f->cev);
	f->cev = NULL;
	close(f->cfd);
	f->cfd = -1;
	f->served++;
}

static void fake_read(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	char chunk[65536];
	ssize_t n = read(fd, chunk, sizeof chunk);

	(void)what;
	if (n <= 0) {
		if (f->mode == FAKE_CLAMD_EARLY_CLOSE)
			return;
		event_free(f->cev);
		f->cev = NULL;
		close(f->cfd);
		f->cfd = -1;
		return;
	}
	buf_append(&f->in, chunk, (size_t)n);
	if (f->mode == FAKE_SILENT)
		return;
	if (f->mode == FAKE_CLAMD_EARLY_CLOSE) {
		/* as clamd past StreamMaxLength: answer at once and close */
		static const char r[] = "INSTREAM size limit exceeded. ERROR";
		fake_reply(f, r, sizeof r);
		return;
	}
	if (f->mode == FAKE_CLAMD_FOUND) {
		buf_reset(&f->payload);
		if (f->in.len >= 4 && memcmp(f->in.data + f->in.len - 4, "\0\0\0\0", 4) == 0 &&
		    instream_decode((unsigned char *)f->in.data, f->in.len, &f->payload) == 0) {
			static const char r[] = "stream: Test.Virus FOUND";
			fake_reply(f, r, sizeof r);
		}
		return;
	}
	{
		const char *end = strstr(f->in.data, "\r\n\r\n"), *cl;
		static const char body[] =
		    "{\"score\":20.5,\"required_score\":15,\"action\":\"reject\","
		    "\"symbols\":{\"X\":{\"score\":20.5}}}";
		char reply[512];
		int rl;

		if (end == NULL || (cl = strstr(f->in.data, "Content-Length: ")) == NULL)
			return;
		if (f->in.len - (size_t)(end + 4 - f->in.data) < strtoul(cl + 16, NULL, 10))
			return;
		rl = snprintf(reply, sizeof reply,
		              "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body),
		              body);
		fake_reply(f, reply, (size_t)rl);
	}
}

static void fake_accept(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	(void)what;
	if (c < 0)
		return;
	if (f->cfd >= 0) {
		close(c);
		return;
	}
	f->cfd = c;
	buf_reset(&f->in);
	f->cev = event_new(f->base, c, EV_READ | EV_PERSIST, fake_read, f);
	event_add(f->cev, NULL);
}

/* A fake on a free loopback port; with accept_them 0 nothing is accepted
 * (the kernel completes connections into the backlog: a hung scanner). */
static int fake_start(struct fake *f, struct event_base *base, enum fake_mode mode, int accept_them)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof sin;

	memset(f, 0, sizeof *f);
	f->base = base;
	f->mode = mode;
	f->cfd = -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &len), 0);
	if (accept_them) {
		f->lev = event_new(base, f->lfd, EV_READ | EV_PERSIST, fake_accept, f);
		event_add(f->lev, NULL);
	}
	return ntohs(sin.sin_port);
}

static void fake_stop(struct fake *f)
{
	if (f->cev)
		event_free(f->cev);
	if (f->lev)
		event_free(f->lev);
	if (f->cfd >= 0)
		close(f->cfd);
	close(f->lfd);
	buf_free(&f->in);
	buf_free(&f->payload);
}

/* Run the loop until d has its call, at most limit_ms. */
static void run_until(struct event_base *base, struct done *d, int limit_ms)
{
	uint64_t end = util_now_ms() + (uint64_t)limit_ms;

	while (d->calls == 0 && util_now_ms() < end) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = 20000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static char *big_message(size_t len)
{
	char *m = malloc(len);

	assert_non_null(m);
	for (size_t i = 0; i < len; i++)
		m[i] = (char)('a' + i % 26);
	return m;
}

static void test_job_clamd_found_and_counts(void **state)
{
	struct event_base *base = event_base_new();
	struct config_scan cfg = test_cfg();
	struct fake f;
	char addr[64], *err = NULL, *msg = big_message(200000);
	struct scan *sc;
	struct scan_job *job;
	struct done d = {0};
	struct scan_counts cnt;
	struct scan_request rq = {
	    .data = msg, .len = 200000, .session = 1, .tenant_id = 7, .user = "acme"};

	(void)state;
	snprintf(addr, sizeof addr, "127.0.0.1:%d", fake_start(&f, base, FAKE_CLAMD_FOUND, 1));
	cfg.clamd = addr;
	assert_non_null(sc = scan_new(base, &cfg, &err));
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	assert_int_equal(d.calls, 0); /* never from inside scan_start() */
	run_until(base, &d, 5000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.v.action, SCAN_REFUSE);
	assert_string_equal(d.v.results[SCAN_CLAMD].name, "Test.Virus");
	/* the fake saw exactly the message through the framing */
	assert_int_equal(f.payload.len, 200000);
	assert_memory_equal(f.payload.data, msg, 200000);

	/* too large for scan_max_size: not asked, accepted */
	cfg.max_size = 1000;
	d.calls = 0;
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	assert_int_equal(d.calls, 0);
	run_until(base, &d, 2000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.v.action, SCAN_ACCEPT);
	assert_string_equal(d.v.reason, "skipped");
	assert_int_equal(f.served, 1);

	assert_int_equal(scan_counts_get(sc, 7, NULL, &cnt), 1);
	assert_int_equal(cnt.messages, 2);
	assert_int_equal(cnt.outcome[SCAN_OUT_VIRUS], 1);
	assert_int_equal(cnt.outcome[SCAN_OUT_SKIPPED], 1);
	assert_int_equal(cnt.action[SCAN_REFUSE], 1);
	assert_int_equal(cnt.action[SCAN_ACCEPT], 1);
	assert_int_equal(scan_counts_get(sc, 7, "acme", &cnt), 1);
	assert_int_equal(cnt.messages, 2);
	assert_int_equal(scan_counts_get(sc, 7, "", &cnt), 0);
	assert_int_equal(scan_counts_get(sc, 8, NULL, &cnt), 0);
	assert_int_equal(cnt.messages, 0);

	scan_free(&sc);
	assert_null(sc);
	fake_stop(&f);
	free(msg);
	event_base_free(base);
}

static void test_job_rspamd_and_failures(void **state)
{
	struct event_base *base = event_base_new();
	struct config_scan cfg = test_cfg();
	struct fake rs, silent, early;
	char url[64], clamd[64], *err = NULL, *msg = big_message(5000);
	const char *rcpts[] = {"bob@example.org"};
	struct scan *sc;
	struct scan_job *job;
	struct done d = {0};
	struct scan_request rq = {.data = msg,
	                          .len = 5000,
	                          .session = 2,
	                          .tenant_id = 9,
	                          .sender = "a@acme.example",
	                          .rcpts = rcpts,
	                          .nrcpts = 1,
	                          .client_addr = "127.0.0.1",
	                          .helo = "h"};
	uint64_t t0;
	int closed_port;

	(void)state;
	snprintf(url, sizeof url, "http://127.0.0.1:%d",
	         fake_start(&rs, base, FAKE_RSPAMD_REJECT, 1));
	snprintf(clamd, sizeof clamd, "127.0.0.1:%d", fake_start(&silent, base, FAKE_SILENT, 0));
	cfg.rspamd = url;
	cfg.clamd = clamd;
	cfg.clamd_timeout = 1;
	assert_non_null(sc = scan_new(base, &cfg, &err));

	/* rspamd refuses; clamd never answers: the job ends at clamd's deadline,
	 * and the refusal wins over the failure */
	t0 = util_now_ms();
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	run_until(base, &d, 5000);
	assert_int_equal(d.calls, 1);
	assert_true(util_now_ms() - t0 >= 900);
	assert_int_equal(d.v.action, SCAN_REFUSE);
	assert_int_equal(d.v.by, SCAN_RSPAMD);
	assert_int_equal(d.v.results[SCAN_RSPAMD].outcome, SCAN_OUT_REJECT);
	assert_true(d.v.results[SCAN_RSPAMD].score == 20.5);
	assert_int_equal(d.v.results[SCAN_CLAMD].outcome, SCAN_OUT_FAILED);
	assert_string_equal(d.v.results[SCAN_CLAMD].text, "timeout after 1s");
	assert_non_null(strstr(rs.in.data, "\r\nRcpt: bob@example.org\r\n"));
	scan_free(&sc);

	/* clamd down (nothing listens): failed at once, 451 with fail closed */
	{
		struct fake tmp;
		closed_port = fake_start(&tmp, base, FAKE_SILENT, 0);
		fake_stop(&tmp);
	}
	snprintf(clamd, sizeof clamd, "127.0.0.1:%d", closed_port);
	cfg.rspamd = NULL;
	assert_non_null(sc = scan_new(base, &cfg, &err));
	d.calls = 0;
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	run_until(base, &d, 3000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.v.action, SCAN_TEMPFAIL);
	assert_string_equal(d.v.enhanced, "4.3.0");
	assert_string_equal(d.v.results[SCAN_CLAMD].text, "connect: Connection refused");
	scan_free(&sc);

	/* a unix socket nobody listens on fails at connect(), still from the loop */
	cfg.clamd = "unix:/nonexistent/sluice-test.sock";
	assert_non_null(sc = scan_new(base, &cfg, &err));
	d.calls = 0;
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	assert_int_equal(d.calls, 0);
	run_until(base, &d, 3000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.v.results[SCAN_CLAMD].outcome, SCAN_OUT_FAILED);
	assert_string_equal(d.v.results[SCAN_CLAMD].text, "connect: No such file or directory");
	scan_free(&sc);

	/* clamd answers before it took everything and closes: its reply counts */
	snprintf(clamd, sizeof clamd, "127.0.0.1:%d",
	         fake_start(&early, base, FAKE_CLAMD_EARLY_CLOSE, 1));
	cfg.clamd = clamd;
	free(msg);
	rq.len = 8 << 20;
	msg = big_message(rq.len);
	rq.data = msg;
	assert_non_null(sc = scan_new(base, &cfg, &err));
	d.calls = 0;
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	run_until(base, &d, 5000);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.v.results[SCAN_CLAMD].outcome, SCAN_OUT_FAILED);
	assert_string_equal(d.v.results[SCAN_CLAMD].text, "INSTREAM size limit exceeded. ERROR");
	scan_free(&sc);

	fake_stop(&rs);
	fake_stop(&silent);
	fake_stop(&early);
	free(msg);
	event_base_free(base);
}

static void test_job_cancel(void **state)
{
	struct event_base *base = event_base_new();
	struct config_scan cfg = test_cfg();
	struct fake silent;
	char clamd[64], *err = NULL;
	struct scan *sc;
	struct scan_job *job, *job2;
	struct done d = {0};
	struct scan_request rq = {.data = "x", .len = 1};

	(void)state;
	snprintf(clamd, sizeof clamd, "127.0.0.1:%d", fake_start(&silent, base, FAKE_SILENT, 1));
	cfg.clamd = clamd;
	cfg.clamd_timeout = 1;
	assert_non_null(sc = scan_new(base, &cfg, &err));
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job2), 0);
	run_until(base, &d, 200); /* connected, request sent */
	scan_job_cancel(&job);
	assert_null(job);
	scan_job_cancel(&job); /* NULL: nothing */
	{
		struct done none = {0};
		run_until(base, &none, 1500); /* past the deadline */
	}
	assert_int_equal(d.calls, 1); /* only job2 */
	/* a job still running when the context goes is cancelled with it */
	d.calls = 0;
	assert_int_equal(scan_start(sc, &rq, on_done, &d, &job), 0);
	scan_free(&sc);
	{
		struct done none = {0};
		run_until(base, &none, 100);
	}
	assert_int_equal(d.calls, 0);
	fake_stop(&silent);
	event_base_free(base);
}

static void test_scan_new_bad_address(void **state)
{
	struct config_scan cfg = test_cfg();
	struct event_base *base = event_base_new();
	char *err = NULL;

	(void)state;
	assert_int_equal(scan_configured(&cfg), 0);
	cfg.rspamd = "http://localhost:11333";
	assert_int_equal(scan_configured(&cfg), 1);
	assert_null(scan_new(base, &cfg, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "scan_rspamd = http://localhost:11333"));
	free(err);
	event_base_free(base);
}

/* ---- configuration keys ------------------------------------------------------------ */

static void test_config_keys(void **state)
{
	struct config_scan s;
	const char *why = NULL;

	(void)state;
	config_scan_defaults(&s);
	assert_int_equal(s.fail_closed, 1);
	assert_int_equal(s.clamd_virus, CONFIG_SCAN_REFUSE);
	assert_int_equal(s.rspamd_add_header, CONFIG_SCAN_ACCEPT);
	assert_int_equal(config_scan_key(&s, "scan_clamd", "127.0.0.1:3310", &why), 0);
	assert_int_equal(config_scan_key(&s, "scan_clamd", "unix:/run/clamav/clamd.ctl", &why), 0);
	assert_string_equal(s.clamd, "unix:/run/clamav/clamd.ctl");
	assert_int_equal(config_scan_key(&s, "scan_rspamd", "http://[::1]:11333/checkv2", &why), 0);
	assert_int_equal(config_scan_key(&s, "scan_rspamd", "127.0.0.1:11333", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_rspamd", "http://unix:/x", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_clamd", "nocolon", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_fail", "open", &why), 0);
	assert_int_equal(s.fail_closed, 0);
	assert_int_equal(config_scan_key(&s, "scan_fail", "ajar", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_rspamd_add_header", "hold", &why), 0);
	assert_int_equal(s.rspamd_add_header, CONFIG_SCAN_HOLD);
	assert_int_equal(config_scan_key(&s, "scan_clamd_virus", "drop", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_clamd_timeout", "2m", &why), 0);
	assert_int_equal(s.clamd_timeout, 120);
	assert_int_equal(config_scan_key(&s, "scan_rspamd_timeout", "0", &why), -1);
	assert_int_equal(config_scan_key(&s, "scan_max_size", "10m", &why), 0);
	assert_int_equal(s.max_size, 10 << 20);
	assert_int_equal(config_scan_key(&s, "scan_bogus", "1", &why), 1);
	assert_int_equal(config_scan_key(&s, "max_recipients", "1", &why), 1);
	config_scan_free(&s);
	assert_null(s.clamd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clamd_reply),
	    cmocka_unit_test(test_http_response),
	    cmocka_unit_test(test_rspamd_reply),
	    cmocka_unit_test(test_endpoints),
	    cmocka_unit_test(test_clamd_request),
	    cmocka_unit_test(test_rspamd_request),
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_job_clamd_found_and_counts),
	    cmocka_unit_test(test_job_rspamd_and_failures),
	    cmocka_unit_test(test_job_cancel),
	    cmocka_unit_test(test_scan_new_bad_address),
	    cmocka_unit_test(test_config_keys),
	};

	log_init("test_scan", 0, LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
