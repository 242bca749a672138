/*
 * test_message: the Received header (variants and injection), header
 * lookup in the header section, Received counting, and assembly adding
 * Message-ID and Date only when missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "message/message.h"

#define WHEN_2026 INT64_C(1795462200) /* Mon, 23 Nov 2026 19:30:00 +0000 */

/* ---- Received ----------------------------------------------------------- */

struct received_case {
	const char *label;
	struct message_trace t;
	const char *want;
};

/* clang-format off */
static const struct received_case received_cases[] = {
	{
		.label = "plain SMTP, HELO, several recipients",
		.t = {.helo = "client.example", .client_addr = "192.0.2.1",
		      .client_name = "client.example", .by = "mail.example.net",
		      .queue_id = "0123456789ABCDEF", .esmtp = 0, .when = WHEN_2026},
		.want = "Received: from client.example (client.example [192.0.2.1])\r\n"
			"\tby mail.example.net (sluice) with SMTP id 0123456789ABCDEF;\r\n"
			"\tMon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "ESMTP plain, one recipient",
		.t = {.helo = "client.helo", .client_addr = "192.0.2.1", .client_name = "name",
		      .by = "mail.example.net", .queue_id = "0123456789ABCDEF", .esmtp = 1,
		      .single_rcpt = "rcpt@example.org", .when = WHEN_2026},
		.want = "Received: from client.helo (name [192.0.2.1])\r\n"
			"\tby mail.example.net (sluice) with ESMTP id 0123456789ABCDEF\r\n"
			"\tfor <rcpt@example.org>; Mon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "ESMTPSA with TLS",
		.t = {.helo = "client.helo", .client_addr = "192.0.2.1", .client_name = "name",
		      .by = "mail.example.net", .queue_id = "0123456789ABCDEF",
		      .tls_version = "TLSv1.3", .tls_cipher = "TLS_AES_256_GCM_SHA384",
		      .tls_bits = 256, .auth_user = "demo", .esmtp = 1,
		      .single_rcpt = "rcpt@example.org", .when = WHEN_2026},
		.want = "Received: from client.helo (name [192.0.2.1])\r\n"
			"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
			"\t(Authenticated sender: demo)\r\n"
			"\tby mail.example.net (sluice) with ESMTPSA id 0123456789ABCDEF\r\n"
			"\tfor <rcpt@example.org>; Mon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "ESMTPS: TLS, no auth",
		.t = {.helo = "h", .client_addr = "192.0.2.1", .client_name = "n", .by = "b",
		      .queue_id = "Q", .tls_version = "TLSv1.2",
		      .tls_cipher = "ECDHE-ECDSA-AES128-GCM-SHA256", .tls_bits = 128,
		      .esmtp = 1, .when = WHEN_2026},
		.want = "Received: from h (n [192.0.2.1])\r\n"
			"\t(using TLSv1.2 with cipher ECDHE-ECDSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
			"\tby b (sluice) with ESMTPS id Q;\r\n"
			"\tMon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "ESMTPA: auth, no TLS",
		.t = {.helo = "h", .client_addr = "192.0.2.1", .client_name = "n", .by = "b",
		      .queue_id = "Q", .auth_user = "u", .esmtp = 1, .when = WHEN_2026},
		.want = "Received: from h (n [192.0.2.1])\r\n"
			"\t(Authenticated sender: u)\r\n"
			"\tby b (sluice) with ESMTPA id Q;\r\n"
			"\tMon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "IPv6 client, no reverse name",
		.t = {.helo = "v6.example", .client_addr = "2001:db8::1", .client_name = NULL,
		      .by = "mail.example.net", .queue_id = "Q", .esmtp = 1,
		      .single_rcpt = "a@b.example", .when = WHEN_2026},
		.want = "Received: from v6.example (unknown [IPv6:2001:db8::1])\r\n"
			"\tby mail.example.net (sluice) with ESMTP id Q\r\n"
			"\tfor <a@b.example>; Mon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "address-literal HELO keeps its brackets",
		.t = {.helo = "[192.0.2.1]", .client_addr = "192.0.2.1", .by = "b",
		      .queue_id = "Q", .esmtp = 1, .when = WHEN_2026},
		.want = "Received: from [192.0.2.1] (unknown [192.0.2.1])\r\n"
			"\tby b (sluice) with ESMTP id Q;\r\n"
			"\tMon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "HELO with CRLF injection and comment specials",
		.t = {.helo = "evil\r\nX-Injected: yes\r\n\t(x) [y]\\",
		      .client_addr = "192.0.2.1", .client_name = "ptr(\r\nX: y)",
		      .by = "b", .queue_id = "Q", .auth_user = "u)\r\nBcc: z",
		      .esmtp = 1, .single_rcpt = "a@b>\r\nX: y", .when = WHEN_2026},
		.want = "Received: from evil??X-Injected:?yes????x???y?? (ptr???X: y? [192.0.2.1])\r\n"
			"\t(Authenticated sender: u???Bcc: z)\r\n"
			"\tby b (sluice) with ESMTPA id Q\r\n"
			"\tfor <a@b???X: y>; Mon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "quoted local part keeps its space and backslash",
		.t = {.helo = "h", .client_addr = "192.0.2.1", .by = "b", .queue_id = "Q",
		      .esmtp = 1, .single_rcpt = "\"john \\\"j\\\" doe\"@example.org",
		      .when = WHEN_2026},
		.want = "Received: from h (unknown [192.0.2.1])\r\n"
			"\tby b (sluice) with ESMTP id Q\r\n"
			"\tfor <\"john \\\"j\\\" doe\"@example.org>; Mon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
	{
		.label = "no HELO at all, non-ASCII name",
		.t = {.helo = NULL, .client_addr = "192.0.2.1", .client_name = "caf\xc3\xa9.example",
		      .by = "b", .queue_id = "Q", .when = WHEN_2026},
		.want = "Received: from unknown (caf??.example [192.0.2.1])\r\n"
			"\tby b (sluice) with SMTP id Q;\r\n"
			"\tMon, 23 Nov 2026 19:30:00 +0000\r\n",
	},
};
/* clang-format on */

static void test_received_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof received_cases / sizeof received_cases[0]; i++) {
		const struct received_case *rc = &received_cases[i];
		struct buf out = BUF_INIT;

		assert_int_equal(message_received(&rc->t, &out), 0);
		if (strcmp(out.data, rc->want) != 0) {
			print_error("case \"%s\":\n got: %s\nwant: %s\n", rc->label, out.data,
			            rc->want);
			fail();
		}
		buf_free(&out);
	}
}

/* Whatever the client sends, every line of the header is ours: it starts
 * with "Received:" or a TAB, and has no CR or LF except its CRLF end. */
static void test_received_no_injection_any_byte(void **state)
{
	char helo[300];
	int b;

	(void)state;
	for (b = 1; b < 256; b++) {
		struct message_trace t = {.helo = helo,
		                          .client_addr = "192.0.2.1",
		                          .client_name = helo,
		                          .auth_user = helo,
		                          .single_rcpt = helo,
		                          .by = "b",
		                          .queue_id = "Q",
		                          .esmtp = 1,
		                          .when = WHEN_2026};
		struct buf out = BUF_INIT;
		const char *p;

		memset(helo, b, sizeof helo - 1);
		helo[sizeof helo - 1] = '\0';
		assert_int_equal(message_received(&t, &out), 0);
		assert_memory_equal(out.data, "Received: ", 10);
		for (p = out.data; (p = strchr(p, '\n')) != NULL; p++) {
			assert_true(p > out.data && p[-1] == '\r');
			assert_true(p[1] == '\0' || p[1] == '\t');
		}
		for (p = out.data; (p = strchr(p, '\r')) != NULL; p++)
			assert_int_equal(p[1], '\n');
		buf_free(&out);
	}
}

static void test_received_caps_length(void **state)
{
	char helo[2000];
	struct message_trace t = {.helo = helo,
	                          .client_addr = "192.0.2.1",
	                          .by = "b",
	                          .queue_id = "Q",
	                          .when = WHEN_2026};
	struct buf out = BUF_INIT;
	const char *first_nl;

	(void)state;
	memset(helo, 'a', sizeof helo - 1);
	helo[sizeof helo - 1] = '\0';
	assert_int_equal(message_received(&t, &out), 0);
	first_nl = strchr(out.data, '\n');
	assert_non_null(first_nl);
	/* "Received: from " + 255 + " (unknown [192.0.2.1])\r" */
	assert_int_equal((size_t)(first_nl - out.data), 15 + 255 + 23);
	buf_free(&out);
}

static void test_received_appends(void **state)
{
	struct message_trace t = {
	    .helo = "h", .client_addr = "192.0.2.1", .by = "b", .queue_id = "Q", .when = WHEN_2026};
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(buf_append_str(&out, "X-Before: 1\r\n"), 0);
	assert_int_equal(message_received(&t, &out), 0);
	assert_memory_equal(out.data, "X-Before: 1\r\nReceived: from h ", 30);
	buf_free(&out);
}

/* ---- header lookup ------------------------------------------------------ */

struct header_case {
	const char *label;
	const char *data;
	const char *name;
	int want;
};

/* clang-format off */
static const struct header_case header_cases[] = {
	{.label = "simple", .data = "From: a@b\r\nSubject: x\r\n\r\nbody\r\n",
	 .name = "Subject", .want = 1},
	{.label = "case-insensitive name", .data = "message-id: <x@y>\r\n\r\n",
	 .name = "Message-ID", .want = 1},
	{.label = "first line", .data = "Date: Mon, 1 Jan 2026 00:00:00 +0000\r\n\r\n",
	 .name = "date", .want = 1},
	{.label = "WSP before colon (obsolete syntax)", .data = "Date : x\r\n\r\n",
	 .name = "Date", .want = 1},
	{.label = "absent", .data = "From: a@b\r\n\r\nbody\r\n", .name = "Date", .want = 0},
	{.label = "prefix of a longer name", .data = "Date-Received: x\r\n\r\n",
	 .name = "Date", .want = 0},
	{.label = "longer than the field name", .data = "Dat: x\r\n\r\n", .name = "Date",
	 .want = 0},
	{.label = "in body only", .data = "From: a@b\r\n\r\nMessage-ID: <x@y>\r\n",
	 .name = "Message-ID", .want = 0},
	{.label = "in a folded continuation",
	 .data = "Subject: hello\r\n Message-ID: <x@y>\r\n\tDate: no\r\n\r\n",
	 .name = "Message-ID", .want = 0},
	{.label = "after a folded field",
	 .data = "Subject: hello\r\n\tworld\r\nMessage-ID: <x@y>\r\n\r\n",
	 .name = "Message-ID", .want = 1},
	{.label = "no separator: all header", .data = "From: a@b\r\nDate: x\r\n",
	 .name = "Date", .want = 1},
	{.label = "no separator, no final CRLF", .data = "From: a@b\r\nDate: x",
	 .name = "Date", .want = 1},
	{.label = "empty header section", .data = "\r\nDate: x\r\n", .name = "Date",
	 .want = 0},
	{.label = "empty data", .data = "", .name = "Date", .want = 0},
	{.label = "bare LF line ends", .data = "From: a@b\nDate: x\n\nbody\n", .name = "Date",
	 .want = 1},
	{.label = "bare LF separator hides body", .data = "From: a@b\n\nDate: x\n",
	 .name = "Date", .want = 0},
	{.label = "name without colon", .data = "Date\r\n\r\n", .name = "Date", .want = 0},
};
/* clang-format on */

static void test_has_header_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof header_cases / sizeof header_cases[0]; i++) {
		const struct header_case *hc = &header_cases[i];
		int got = message_has_header(hc->data, strlen(hc->data), hc->name);

		if (got != hc->want) {
			print_error("case \"%s\": got %d want %d\n", hc->label, got, hc->want);
			fail();
		}
	}
}

/* Length is honoured: no read past len, and a match beyond it is not seen. */
static void test_has_header_respects_len(void **state)
{
	const char data[] = "From: a@b\r\nDate: x\r\n\r\n";

	(void)state;
	assert_int_equal(message_has_header(data, 11, "Date"), 0);
	assert_int_equal(message_has_header(data, 15, "Date"), 0); /* "Date" without ':' */
	assert_int_equal(message_has_header(data, 16, "Date"), 1);
}

struct count_case {
	const char *data;
	size_t want;
};

/* clang-format off */
static const struct count_case count_cases[] = {
	{.data = "", .want = 0},
	{.data = "From: a\r\n\r\n", .want = 0},
	{.data = "Received: a\r\n\tb\r\nreceived: c\r\nFrom: x\r\nRECEIVED: d\r\n\r\n", .want = 3},
	{.data = "Received: a\r\n\r\nReceived: in body\r\n", .want = 1},
	{.data = "Received: a\r\n Received: folded\r\n\r\n", .want = 1},
	{.data = "X-Received: a\r\nReceived-SPF: pass\r\n\r\n", .want = 0},
};
/* clang-format on */

static void test_count_received(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof count_cases / sizeof count_cases[0]; i++) {
		const struct count_case *cc = &count_cases[i];

		if (message_count_received(cc->data, strlen(cc->data)) != cc->want) {
			print_error("case %zu: got %zu want %zu\n", i,
			            message_count_received(cc->data, strlen(cc->data)), cc->want);
			fail();
		}
	}
}

/* ---- assembly ----------------------------------------------------------- */

/* clang-format off */
#define TRACE_HDR                                                                        \
	"Received: from h (unknown [192.0.2.1])\r\n"                                     \
	"\tby mail.example.net (sluice) with ESMTP id 0123456789ABCDEF;\r\n"             \
	"\tMon, 23 Nov 2026 19:30:00 +0000\r\n"
#define MSGID_HDR "Message-ID: <0123456789ABCDEF.1795462200@mail.example.net>\r\n"
#define DATE_HDR "Date: Mon, 23 Nov 2026 19:30:00 +0000\r\n"
/* clang-format on */

struct assemble_case {
	const char *label;
	const char *data;
	const char *want;
};

/* clang-format off */
static const struct assemble_case assemble_cases[] = {
	{.label = "both present",
	 .data = "Date: Sun, 1 Nov 2026 00:00:00 +0000\r\nMessage-Id: <a@b>\r\n\r\nhi\r\n",
	 .want = TRACE_HDR
	 "Date: Sun, 1 Nov 2026 00:00:00 +0000\r\nMessage-Id: <a@b>\r\n\r\nhi\r\n"},
	{.label = "Message-ID missing",
	 .data = "Date: x\r\nSubject: s\r\n\r\nhi\r\n",
	 .want = TRACE_HDR MSGID_HDR "Date: x\r\nSubject: s\r\n\r\nhi\r\n"},
	{.label = "Date missing", .data = "Message-ID: <a@b>\r\n\r\nhi\r\n",
	 .want = TRACE_HDR DATE_HDR "Message-ID: <a@b>\r\n\r\nhi\r\n"},
	{.label = "both missing", .data = "Subject: s\r\n\r\nhi\r\n",
	 .want = TRACE_HDR MSGID_HDR DATE_HDR "Subject: s\r\n\r\nhi\r\n"},
	{.label = "only in the body: still missing",
	 .data = "Subject: s\r\n\r\nDate: x\r\nMessage-ID: <a@b>\r\n",
	 .want = TRACE_HDR MSGID_HDR DATE_HDR "Subject: s\r\n\r\nDate: x\r\nMessage-ID: <a@b>\r\n"},
	{.label = "no separator: appended as is",
	 .data = "Subject: s\r\nDate: x",
	 .want = TRACE_HDR MSGID_HDR "Subject: s\r\nDate: x"},
	{.label = "empty data", .data = "", .want = TRACE_HDR MSGID_HDR DATE_HDR},
};
/* clang-format on */

static void test_assemble_table(void **state)
{
	const struct message_trace t = {.helo = "h",
	                                .client_addr = "192.0.2.1",
	                                .by = "mail.example.net",
	                                .queue_id = "0123456789ABCDEF",
	                                .esmtp = 1,
	                                .when = WHEN_2026};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof assemble_cases / sizeof assemble_cases[0]; i++) {
		const struct assemble_case *ac = &assemble_cases[i];
		struct buf out = BUF_INIT;

		assert_int_equal(message_assemble(&t, ac->data, strlen(ac->data), &out), 0);
		if (out.len != strlen(ac->want) || memcmp(out.data, ac->want, out.len) != 0) {
			print_error("case \"%s\":\n got: %s\nwant: %s\n", ac->label, out.data,
			            ac->want);
			fail();
		}
		assert_int_equal(message_count_received(out.data, out.len),
		                 1 + message_count_received(ac->data, strlen(ac->data)));
		buf_free(&out);
	}
}

/* Binary-safe: a NUL in the body is copied, not a string end. */
static void test_assemble_binary_body(void **state)
{
	const struct message_trace t = {.helo = "h",
	                                .client_addr = "192.0.2.1",
	                                .by = "mail.example.net",
	                                .queue_id = "0123456789ABCDEF",
	                                .esmtp = 1,
	                                .when = WHEN_2026};
	const char data[] = "Date: x\r\nMessage-ID: <a@b>\r\n\r\na\0b\r\n";
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(message_assemble(&t, data, sizeof data - 1, &out), 0);
	assert_int_equal(out.len, strlen(TRACE_HDR) + sizeof data - 1);
	assert_memory_equal(out.data + strlen(TRACE_HDR), data, sizeof data - 1);
	buf_free(&out);
}

/* A message with five trace headers (four old + ours) is counted so. */
static void test_count_after_assemble(void **state)
{
	const struct message_trace t = {.helo = "h",
	                                .client_addr = "192.0.2.1",
	                                .by = "b",
	                                .queue_id = "Q",
	                                .esmtp = 1,
	                                .when = WHEN_2026};
	struct buf msg = BUF_INIT, out = BUF_INIT;
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		assert_int_equal(buf_printf(&msg, "Received: from hop%d\r\n\tby x; date\r\n", i),
		                 0);
	assert_int_equal(buf_append_str(&msg, "Subject: loop\r\n\r\nReceived: body\r\n"), 0);
	assert_int_equal(message_assemble(&t, msg.data, msg.len, &out), 0);
	assert_int_equal(message_count_received(out.data, out.len), 5);
	buf_free(&msg);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_received_table),
	    cmocka_unit_test(test_received_no_injection_any_byte),
	    cmocka_unit_test(test_received_caps_length),
	    cmocka_unit_test(test_received_appends),
	    cmocka_unit_test(test_has_header_table),
	    cmocka_unit_test(test_has_header_respects_len),
	    cmocka_unit_test(test_count_received),
	    cmocka_unit_test(test_assemble_table),
	    cmocka_unit_test(test_assemble_binary_body),
	    cmocka_unit_test(test_count_after_assemble),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
