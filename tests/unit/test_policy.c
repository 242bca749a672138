/* policy: sender authorization at MAIL FROM, the From:/Sender: headers
 * at end of DATA, and trusted-network matching, against a real SQLite
 * store in a temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "policy/policy.h"

struct fixture {
	char dir[64];
	struct store *st;
	int64_t acme, other, frozen;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char uri[128], *err = NULL;

	strcpy(f->dir, "/tmp/sluice-policy-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(uri, sizeof uri, "sqlite:%s/db", f->dir);
	assert_int_equal(store_open(uri, &f->st, &err), 0);
	assert_int_equal(store_tenant_add(f->st, "acme", &f->acme, &err), 0);
	assert_int_equal(store_tenant_add(f->st, "other", &f->other, &err), 0);
	assert_int_equal(store_tenant_add(f->st, "frozen", &f->frozen, &err), 0);
	assert_int_equal(store_domain_add(f->st, f->acme, "acme.example", 1, &err), 0);
	assert_int_equal(store_domain_add(f->st, f->acme, "new.acme.example", 0, &err), 0);
	assert_int_equal(store_domain_add(f->st, f->other, "other.example", 1, &err), 0);
	assert_int_equal(store_domain_add(f->st, f->frozen, "frozen.example", 1, &err), 0);
	assert_int_equal(store_tenant_set_suspended(f->st, "frozen", 1, &err), 0);
	assert_int_equal(store_network_add(f->st, f->acme, "10.0.0.0/8", &err), 0);
	assert_int_equal(store_network_add(f->st, f->other, "10.1.0.0/16", &err), 0);
	assert_int_equal(store_network_add(f->st, f->other, "2001:db8::/32", &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	store_close(&f->st);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void test_sender(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *tenant;
		int submission;
		const char *sender; /* "" = null sender */
		int code;
		const char *enhanced;
		const char *text_part;
	} cases[] = {
		{.tenant = "acme", .submission = 1, .sender = "a@acme.example", .code = 250,
		 .enhanced = "2.1.0", .text_part = "Ok"},
		{.tenant = "acme", .submission = 1, .sender = "a@other.example", .code = 553,
		 .enhanced = "5.7.1", .text_part = "not one of tenant acme's domains"},
		{.tenant = "acme", .submission = 1, .sender = "a@nowhere.example", .code = 553,
		 .enhanced = "5.7.1", .text_part = "not one of"},
		{.tenant = "acme", .submission = 1, .sender = "a@new.acme.example", .code = 553,
		 .enhanced = "5.7.1", .text_part = "not verified"},
		{.tenant = "acme", .submission = 1, .sender = "", .code = 550, .enhanced = "5.7.1",
		 .text_part = "null sender"},
		{.tenant = "acme", .submission = 0, .sender = "", .code = 250, .enhanced = "2.1.0",
		 .text_part = "Ok"},
		{.tenant = "other", .submission = 0, .sender = "x@acme.example", .code = 553,
		 .enhanced = "5.7.1", .text_part = "other's domains"},
		{.tenant = "frozen", .submission = 1, .sender = "a@frozen.example", .code = 550,
		 .enhanced = "5.7.1", .text_part = "suspended"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_client c = {.tenant = cases[i].tenant,
					  .submission = cases[i].submission};
		struct smtp_address a;
		struct policy_verdict v;
		const char *at = strchr(cases[i].sender, '@');

		c.tenant_id = strcmp(cases[i].tenant, "acme") == 0    ? f->acme
			      : strcmp(cases[i].tenant, "other") == 0 ? f->other
								      : f->frozen;
		memset(&a, 0, sizeof a);
		if (at == NULL) {
			a.is_null = 1;
		} else {
			memcpy(a.local, cases[i].sender, (size_t)(at - cases[i].sender));
			strcpy(a.domain, at + 1);
		}
		assert_int_equal(policy_check_sender(f->st, &c, &a, &v), 0);
		if (v.code != cases[i].code || strcmp(v.enhanced, cases[i].enhanced) != 0 ||
		    strstr(v.text, cases[i].text_part) == NULL)
			fail_msg("case %zu: got %d %s %s", i, v.code, v.enhanced, v.text);
	}
}

/* ---- From:/Sender: headers --------------------------------------------- */

/* "local@domain" of each mailbox, joined by " " (the parse result in one
 * string, for the tables below). */
static void headers_addrs(const struct policy_headers *h, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < h->nfrom; i++) {
		size_t n = strlen(out);
		snprintf(out + n, size - n, "%s%s@%s", i ? " " : "", h->from[i].local,
			 h->from[i].domain);
	}
}

static void test_headers_parse(void **state)
{
	static const struct {
		const char *name;
		const char *msg;
		size_t from_fields, sender_fields;
		const char *from;         /* mailboxes, or NULL: an error containing from_error */
		const char *from_error;
		const char *sender;       /* NULL: none, or an error containing sender_error */
		const char *sender_error;
	} cases[] = {
		{.name = "plain", .msg = "From: a@acme.example\r\nTo: b@x.example\r\n\r\nbody\r\n",
		 .from_fields = 1, .from = "a@acme.example"},
		{.name = "display name with comma and quotes",
		 .msg = "From: \"Smith, John \\\"JS\\\" <js@other.example>\" <js@acme.example>\r\n\r\n",
		 .from_fields = 1, .from = "js@acme.example"},
		{.name = "unquoted display name, dotted (obs-phrase)",
		 .msg = "From: Dr. J. Smith <js@acme.example>\r\n\r\n", .from_fields = 1,
		 .from = "js@acme.example"},
		{.name = "encoded-word display name",
		 .msg = "From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <jm@acme.example>\r\n\r\n",
		 .from_fields = 1, .from = "jm@acme.example"},
		{.name = "comments with @ and <> (nested)",
		 .msg = "From: (ceo@other.example <x@other.example>) a@acme.example "
			"(not (really) <b@other.example>)\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example"},
		{.name = "comment inside the address (obs)",
		 .msg = "From: a (x@other.example) @ (y) acme . example\r\n\r\n", .from_fields = 1,
		 .from = "a@acme.example"},
		{.name = "several mailboxes", .msg = "From: A <a@acme.example>, b@Other.Example,\r\n"
						     " \"C, c\" <c@acme.example>\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example b@other.example c@acme.example"},
		{.name = "group", .msg = "From: Team: a@acme.example, B <b@acme.example>;\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example b@acme.example"},
		{.name = "group and mailbox",
		 .msg = "From: t: a@acme.example;, c@other.example\r\n\r\n", .from_fields = 1,
		 .from = "a@acme.example c@other.example"},
		{.name = "empty group", .msg = "From: undisclosed-senders:;\r\n\r\n", .from_fields = 1,
		 .from_error = "no mailbox"},
		{.name = "nested group", .msg = "From: a: b: c@acme.example;;\r\n\r\n",
		 .from_fields = 1, .from_error = "group inside a group"},
		{.name = "unclosed group", .msg = "From: a: c@acme.example\r\n\r\n", .from_fields = 1,
		 .from_error = "not closed by ';'"},
		{.name = "folded header",
		 .msg = "Subject: x\r\nFrom: \"Folded\r\n\tName\"\r\n  <f@ACME.example>\r\n\r\n",
		 .from_fields = 1, .from = "f@acme.example"},
		{.name = "uppercase domain, quoted local part",
		 .msg = "FROM : \"A B\"@ACME.EXAMPLE\r\n\r\n", .from_fields = 1,
		 .from = "\"A B\"@acme.example"},
		{.name = "obs-route", .msg = "From: <@relay.example,@r2.example:a@acme.example>\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example"},
		{.name = "domain literal", .msg = "From: a@[192.0.2.1]\r\n\r\n", .from_fields = 1,
		 .from = "a@[192.0.2.1]"},
		{.name = "UTF-8 domain, ASCII lower-cased only",
		 .msg = "From: a@B\xc3\x9c" "CHER.example\r\n\r\n", .from_fields = 1,
		 .from = "a@b\xc3\x9c" "cher.example"},
		{.name = "missing From", .msg = "To: b@x.example\r\n\r\nFrom: a@acme.example\r\n"},
		{.name = "two From fields",
		 .msg = "From: a@acme.example\r\nTo: x@y.example\r\nfrom: b@other.example\r\n\r\n",
		 .from_fields = 2, .from = "a@acme.example"},
		{.name = "From after a line that is not a field (no blank line)",
		 .msg = "From: a@acme.example\r\nnot a header\r\nFrom: b@other.example\r\n",
		 .from_fields = 2, .from = "a@acme.example"},
		{.name = "no blank line", .msg = "Subject: x\r\nFrom: a@acme.example", .from_fields = 1,
		 .from = "a@acme.example"},
		{.name = "LF only", .msg = "From: a@acme.example\n\nbody\n", .from_fields = 1,
		 .from = "a@acme.example"},
		{.name = "Resent-From and X-From are other fields",
		 .msg = "Resent-From: r@other.example\r\nX-From: x@other.example\r\n"
			"From: a@acme.example\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example"},
		{.name = "Sender", .msg = "From: a@acme.example\r\nSender: S <s@Acme.Example>\r\n\r\n",
		 .from_fields = 1, .sender_fields = 1, .from = "a@acme.example",
		 .sender = "s@acme.example"},
		{.name = "two Sender mailboxes",
		 .msg = "From: a@acme.example\r\nSender: s@acme.example, t@acme.example\r\n\r\n",
		 .from_fields = 1, .sender_fields = 1, .from = "a@acme.example",
		 .sender_error = "more than one mailbox"},
		{.name = "Sender group",
		 .msg = "From: a@acme.example\r\nSender: g: s@acme.example;\r\n\r\n", .from_fields = 1,
		 .sender_fields = 1, .from = "a@acme.example", .sender_error = "group"},
		{.name = "name with @ unquoted before an address",
		 .msg = "From: ceo@other.example <a@acme.example>\r\n\r\n", .from_fields = 1,
		 .from_error = "text after an address"},
		{.name = "two addresses without a comma",
		 .msg = "From: <a@acme.example> <b@other.example>\r\n\r\n", .from_fields = 1,
		 .from_error = "text after an address"},
		{.name = "name only", .msg = "From: Alice\r\n\r\n", .from_fields = 1,
		 .from_error = "name without an address"},
		{.name = "empty", .msg = "From:\r\n\r\n", .from_fields = 1, .from_error = "no mailbox"},
		{.name = "empty angle", .msg = "From: <>\r\n\r\n", .from_fields = 1,
		 .from_error = "empty address"},
		{.name = "unterminated quote", .msg = "From: \"a <a@acme.example>\r\n\r\n",
		 .from_fields = 1, .from_error = "unterminated quoted string"},
		{.name = "unterminated comment", .msg = "From: a@acme.example (x (y)\r\n\r\n",
		 .from_fields = 1, .from_error = "unterminated comment"},
		{.name = "control character", .msg = "From: a@acme.example\x01\r\n\r\n",
		 .from_fields = 1, .from_error = "control character"},
		{.name = "quoted-pair of a control character",
		 .msg = "From: \"a\\\x01\" <a@acme.example>\r\n\r\n", .from_fields = 1,
		 .from_error = "control character"},
		{.name = "quoted-pairs in a comment and a quoted string",
		 .msg = "From: \"a\\\"b\\\\\" (c\\) \\( d) <a@acme.example>\r\n\r\n",
		 .from_fields = 1, .from = "a@acme.example"},
		{.name = "domain ending in a dot", .msg = "From: a@acme.example.\r\n\r\n",
		 .from_fields = 1, .from_error = "ending in '.'"},
		{.name = "no domain", .msg = "From: <a@>\r\n\r\n", .from_fields = 1,
		 .from_error = "without a domain"},
		{.name = "words without a dot", .msg = "From: John Smith@acme.example\r\n\r\n",
		 .from_fields = 1, .from_error = "space"},
		{.name = "; outside a group", .msg = "From: a@acme.example;\r\n\r\n", .from_fields = 1,
		 .from_error = "outside a group"},
	};
	char got[4096];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_headers h;

		assert_int_equal(policy_headers_parse(cases[i].msg, strlen(cases[i].msg), &h), 0);
		headers_addrs(&h, got, sizeof got);
		if (h.from_fields != cases[i].from_fields ||
		    h.sender_fields != cases[i].sender_fields || h.too_large)
			fail_msg("%s: %zu From, %zu Sender fields", cases[i].name, h.from_fields,
				 h.sender_fields);
		if (cases[i].from != NULL && (h.from_error != NULL || strcmp(got, cases[i].from) != 0))
			fail_msg("%s: From %s (%s)", cases[i].name, got,
				 h.from_error ? h.from_error : "no error");
		if (cases[i].from_error != NULL &&
		    (h.from_error == NULL || strstr(h.from_error, cases[i].from_error) == NULL ||
		     h.nfrom != 0))
			fail_msg("%s: From error %s, mailboxes %s", cases[i].name,
				 h.from_error ? h.from_error : "none", got);
		if (cases[i].sender != NULL) {
			snprintf(got, sizeof got, "%s@%s", h.sender.local, h.sender.domain);
			if (h.sender_error != NULL || strcmp(got, cases[i].sender) != 0)
				fail_msg("%s: Sender %s", cases[i].name, got);
		}
		if (cases[i].sender_error != NULL &&
		    (h.sender_error == NULL || strstr(h.sender_error, cases[i].sender_error) == NULL))
			fail_msg("%s: Sender error %s", cases[i].name,
				 h.sender_error ? h.sender_error : "none");
		policy_headers_clear(&h);
		assert_null(h.from);
	}
}

/* Limits: a long From: line, one over the field limit, too many
 * mailboxes, a header section over the limit; all bounded, none silent. */
static void test_headers_limits(void **state)
{
	struct policy_headers h;
	struct buf b = BUF_INIT;

	(void)state;
	/* a 10,000-octet From: line (a long display name) is fine */
	assert_int_equal(buf_append_str(&b, "From: \""), 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(buf_append(&b, "n", 1), 0);
	assert_int_equal(buf_append_str(&b, "\" <a@acme.example>\r\n\r\n"), 0);
	assert_int_equal(policy_headers_parse(b.data, b.len, &h), 0);
	assert_null(h.from_error);
	assert_int_equal(h.nfrom, 1);
	policy_headers_clear(&h);

	/* over POLICY_HEADER_FIELD_MAX once unfolded */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "From: a@acme.example"), 0);
	for (int i = 0; i <= POLICY_HEADER_FIELD_MAX / 8; i++) /* 8 octets unfolded */
		assert_int_equal(buf_append_str(&b, "\r\n (comm) "), 0);
	assert_int_equal(buf_append_str(&b, "\r\n\r\n"), 0);
	assert_int_equal(policy_headers_parse(b.data, b.len, &h), 0);
	assert_non_null(h.from_error);
	assert_non_null(strstr(h.from_error, "longer than"));
	policy_headers_clear(&h);

	/* POLICY_HEADER_MAILBOXES_MAX mailboxes, then one more */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "From: a@acme.example"), 0);
	for (int i = 1; i < POLICY_HEADER_MAILBOXES_MAX; i++)
		assert_int_equal(buf_printf(&b, ",\r\n m%d@acme.example", i), 0);
	assert_int_equal(buf_append_str(&b, "\r\n\r\n"), 0);
	assert_int_equal(policy_headers_parse(b.data, b.len, &h), 0);
	assert_null(h.from_error);
	assert_int_equal(h.nfrom, POLICY_HEADER_MAILBOXES_MAX);
	assert_string_equal(h.from[POLICY_HEADER_MAILBOXES_MAX - 1].local, "m99");
	policy_headers_clear(&h);
	b.len -= 4;
	assert_int_equal(buf_append_str(&b, ", x@acme.example\r\n\r\n"), 0);
	assert_int_equal(policy_headers_parse(b.data, b.len, &h), 0);
	assert_non_null(h.from_error);
	assert_int_equal(h.nfrom, 0);
	policy_headers_clear(&h);

	/* a header section over POLICY_HEADER_SECTION_MAX (no empty line) */
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "From: a@acme.example\r\n"), 0);
	while (b.len <= POLICY_HEADER_SECTION_MAX)
		assert_int_equal(buf_append_str(&b, "X-Filler: 0123456789012345678901234567\r\n"), 0);
	assert_int_equal(policy_headers_parse(b.data, b.len, &h), 0);
	assert_int_equal(h.too_large, 1);
	policy_headers_clear(&h);
	/* the same bytes after an empty line are a body: fine */
	{
		struct buf m = BUF_INIT;
		assert_int_equal(buf_append_str(&m, "From: a@acme.example\r\n\r\n"), 0);
		assert_int_equal(buf_append(&m, b.data, b.len), 0);
		assert_int_equal(policy_headers_parse(m.data, m.len, &h), 0);
		assert_int_equal(h.too_large, 0);
		assert_int_equal(h.nfrom, 1);
		policy_headers_clear(&h);
		buf_free(&m);
	}
	buf_free(&b);
}

static void test_headers_check(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *tenant;
		const char *msg;
		int code;
		const char *enhanced;
		const char *text_part;
		const char *reason;
	} cases[] = {
		{.tenant = "acme", .msg = "From: a@acme.example\r\n\r\nhi\r\n", .code = 250,
		 .enhanced = "2.0.0", .text_part = "Ok", .reason = "ok"},
		{.tenant = "acme", .msg = "From: \"x@other.example, y\" <a@ACME.example>\r\n\r\n",
		 .code = 250, .enhanced = "2.0.0", .text_part = "Ok", .reason = "ok"},
		{.tenant = "acme", .msg = "From: t: a@acme.example, b@acme.example;\r\n\r\n",
		 .code = 250, .enhanced = "2.0.0", .text_part = "Ok", .reason = "ok"},
		{.tenant = "acme", .msg = "From: ceo@other.example\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1",
		 .text_part = "From: header domain other.example is not one of tenant acme's domains",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@acme.example, ceo@other.example\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1", .text_part = "domain other.example is not one of",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: t: a@acme.example, b@nowhere.example;\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1", .text_part = "nowhere.example",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@new.acme.example\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "new.acme.example is not verified",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@sub.acme.example\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "not one of", .reason = "from-header"},
		{.tenant = "acme", .msg = "To: b@x.example\r\n\r\n", .code = 550, .enhanced = "5.7.1",
		 .text_part = "exactly one From: header (it has 0)", .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@acme.example\r\nFrom: a@acme.example\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1", .text_part = "exactly one From: header (it has 2)",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: Alice\r\n\r\n", .code = 550, .enhanced = "5.7.1",
		 .text_part = "From: header is not a valid address list: a name without an address",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@acme.example\r\nSender: s@other.example\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1",
		 .text_part = "Sender: header domain other.example is not one of tenant acme's",
		 .reason = "sender-header"},
		{.tenant = "acme",
		 .msg = "From: a@acme.example\r\nSender: s@acme.example\r\nSender: s@acme.example\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1", .text_part = "at most one Sender:",
		 .reason = "sender-header"},
		{.tenant = "acme", .msg = "From: a@acme.example\r\nSender: <>\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "Sender: header is not a valid mailbox",
		 .reason = "sender-header"},
		{.tenant = "acme", .msg = "From: o@other.example\r\nSender: s@acme.example\r\n\r\n",
		 .code = 550, .enhanced = "5.7.1", .text_part = "From: header domain other.example",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@acme.example\r\nSender: s@ACME.example\r\n\r\n",
		 .code = 250, .enhanced = "2.0.0", .text_part = "Ok", .reason = "ok"},
		{.tenant = "other", .msg = "From: x@acme.example\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "not one of tenant other's domains",
		 .reason = "from-header"},
		{.tenant = "other", .msg = "From: x@other.example\r\n\r\n", .code = 250,
		 .enhanced = "2.0.0", .text_part = "Ok", .reason = "ok"},
		/* a client's odd octets never reach the reply */
		{.tenant = "acme", .msg = "From: a@b\xc3\xbc\x63her.example\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "domain b??cher.example is not one of",
		 .reason = "from-header"},
		{.tenant = "acme", .msg = "From: a@[192.0.2.1]\r\n\r\n", .code = 550,
		 .enhanced = "5.7.1", .text_part = "domain [192.0.2.1] is not one of",
		 .reason = "from-header"},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_client c = {.tenant = cases[i].tenant, .submission = 1};
		struct policy_verdict v;
		const char *reason = NULL;

		c.tenant_id = strcmp(cases[i].tenant, "acme") == 0 ? f->acme : f->other;
		assert_int_equal(policy_check_headers(f->st, &c, cases[i].msg, strlen(cases[i].msg),
						      &v, &reason),
				 0);
		if (v.code != cases[i].code || strcmp(v.enhanced, cases[i].enhanced) != 0 ||
		    strstr(v.text, cases[i].text_part) == NULL ||
		    strcmp(reason, cases[i].reason) != 0)
			fail_msg("case %zu: got %d %s %s (reason %s)", i, v.code, v.enhanced, v.text,
				 reason);
	}
}

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static void test_networks(void **state)
{
	struct fixture *f = *state;
	struct policy_networks *nets = policy_networks_new();
	char *err = NULL;
	static const struct {
		const char *addr;
		int found;
		int other; /* 1: tenant other, 0: acme */
	} cases[] = {
		{.addr = "10.2.3.4", .found = 1, .other = 0},
		{.addr = "10.1.2.3", .found = 1, .other = 1}, /* most specific wins */
		{.addr = "::ffff:10.1.2.3", .found = 1, .other = 1},
		{.addr = "2001:db8::25", .found = 1, .other = 1},
		{.addr = "11.0.0.1", .found = 0},
		{.addr = "2001:db9::1", .found = 0},
	};

	assert_non_null(nets);
	assert_int_equal(policy_networks_refresh(nets, f->st), 0);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss = addr(cases[i].addr);
		int64_t t = 0;
		int r = policy_networks_match(nets, (struct sockaddr *)&ss, &t);

		assert_int_equal(r, cases[i].found);
		if (r)
			assert_int_equal(t, cases[i].other ? f->other : f->acme);
	}
	/* a change made by another process (the CLI) is seen at the next refresh */
	{
		struct store *cli = NULL;
		char uri[128];
		snprintf(uri, sizeof uri, "sqlite:%s/db", f->dir);
		assert_int_equal(store_open(uri, &cli, &err), 0);
		assert_int_equal(store_network_add(cli, f->other, "11.0.0.0/8", &err), 0);
		store_close(&cli);
	}
	assert_int_equal(policy_networks_refresh(nets, f->st), 0);
	{
		struct sockaddr_storage ss = addr("11.0.0.1");
		int64_t t = 0;
		assert_int_equal(policy_networks_match(nets, (struct sockaddr *)&ss, &t), 1);
		assert_int_equal(t, f->other);
	}
	policy_networks_free(&nets);
	assert_null(nets);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sender, setup, teardown),
		cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
		cmocka_unit_test(test_headers_parse),
		cmocka_unit_test(test_headers_limits),
		cmocka_unit_test_setup_teardown(test_headers_check, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
