/*
 * test_resolve: the DNS side of net/: name normalisation and the answer
 * packet parser on hand-made and hostile packets (no network), then the
 * libunbound resolver against the test DNS server (tests/dns: nsd on
 * loopback): every answer status, DNSSEC secure and bogus, MX, A, AAAA,
 * TXT and TLSA records, CNAMEs, timeouts, cancelling and freeing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../dns/testdns.h"
#include "net/net.h"
#include "util/util.h"

/* ---- net_dns_name_normalize ---------------------------------------------------- */

struct name_case {
	const char *in;
	const char *out; /* NULL: rejected */
};

/* clang-format off */
static const struct name_case name_cases[] = {
	{.in = "Example.COM", .out = "example.com"},
	{.in = "example.com.", .out = "example.com"},
	{.in = ".", .out = "."},
	{.in = "_25._tcp.MX.example", .out = "_25._tcp.mx.example"},
	{.in = "a-b.c9", .out = "a-b.c9"},
	{.in = "x", .out = "x"},
	{.in = "", .out = NULL},
	{.in = "..", .out = NULL},
	{.in = "a..b", .out = NULL},
	{.in = ".a", .out = NULL},
	{.in = "a b", .out = NULL},
	{.in = "a\\.b", .out = NULL},
	{.in = "caf\xc3\xa9.example", .out = NULL},
	{.in = "a*b.example", .out = NULL},
	{.in = "[127.0.0.1]", .out = NULL},
	/* a 64-character label */
	{.in = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	 .out = NULL},
};
/* clang-format on */

static void test_name_normalize(void **state)
{
	char out[NET_DNS_NAME_MAX], in[400];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof name_cases / sizeof name_cases[0]; i++) {
		const struct name_case *c = &name_cases[i];
		int rc = net_dns_name_normalize(c->in, out);

		if (c->out == NULL) {
			if (rc != -1) {
				print_error("\"%s\": accepted as \"%s\"\n", c->in, out);
				fail();
			}
			continue;
		}
		if (rc != 0) {
			print_error("\"%s\": rejected\n", c->in);
			fail();
		}
		assert_string_equal(out, c->out);
	}
	/* 63-character labels: 253 characters fit, 254 do not */
	memset(in, 'a', sizeof in);
	for (i = 63; i < 253; i += 64)
		in[i] = '.';
	in[253] = '\0';
	assert_int_equal(net_dns_name_normalize(in, out), 0);
	assert_int_equal(strlen(out), 253);
	in[253] = '.';
	in[254] = '\0';
	assert_int_equal(net_dns_name_normalize(in, out), 0); /* trailing dot */
	in[253] = 'a';
	assert_int_equal(net_dns_name_normalize(in, out), -1);
	assert_int_equal(net_dns_name_normalize(NULL, out), -1);
}

/* ---- net_dns_parse_answer: hand-made packets ------------------------------------- */

struct pkt {
	uint8_t b[2048];
	size_t len;
};

static void put(struct pkt *p, const void *d, size_t n)
{
	assert_true(p->len + n <= sizeof p->b);
	memcpy(p->b + p->len, d, n);
	p->len += n;
}

static void put8(struct pkt *p, unsigned v)
{
	uint8_t b = (uint8_t)v;

	put(p, &b, 1);
}

static void put16(struct pkt *p, unsigned v)
{
	put8(p, v >> 8);
	put8(p, v & 0xff);
}

/* Labels of a dotted name, then the root unless it ends in '@' (the
 * caller adds a pointer).  Returns where the name starts. */
static size_t put_name(struct pkt *p, const char *name)
{
	size_t start = p->len;
	const char *s = name;

	while (*s != '\0' && *s != '@') {
		size_t n = strcspn(s, ".@");

		put8(p, (unsigned)n);
		put(p, s, n);
		s += n;
		if (*s == '.')
			s++;
	}
	if (*s != '@')
		put8(p, 0);
	return start;
}

static void put_ptr(struct pkt *p, size_t off)
{
	put16(p, 0xc000 | (unsigned)off);
}

/* Header (a response, NOERROR) and the question; returns the offset of
 * the question name, for pointers. */
static size_t put_head(struct pkt *p, const char *qname, unsigned qtype, unsigned ancount)
{
	size_t q;

	memset(p, 0, sizeof *p);
	put16(p, 0x1234);
	put16(p, 0x8180);
	put16(p, 1);
	put16(p, ancount);
	put16(p, 0);
	put16(p, 0);
	q = put_name(p, qname);
	put16(p, qtype);
	put16(p, 1);
	return q;
}

/* An RR whose owner is a pointer to off; returns where RDLENGTH is. */
static size_t put_rr_head(struct pkt *p, size_t owner, unsigned type)
{
	size_t at;

	put_ptr(p, owner);
	put16(p, type);
	put16(p, 1);
	put16(p, 0);
	put16(p, 300);
	at = p->len;
	put16(p, 0);
	return at;
}

static void end_rdata(struct pkt *p, size_t at)
{
	size_t n = p->len - at - 2;

	p->b[at] = (uint8_t)(n >> 8);
	p->b[at + 1] = (uint8_t)(n & 0xff);
}

static void build_mx(struct pkt *p)
{
	size_t q = put_head(p, "example.test", NET_DNS_MX, 3), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 20);
	put_name(p, "mx2@");
	put_ptr(p, q); /* mx2.example.test */
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_name(p, "MX1.Example.Test"); /* uncompressed, mixed case */
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 30);
	put_ptr(p, q + 8); /* "test": a suffix of the question */
	end_rdata(p, at);
}

static void build_null_mx(struct pkt *p)
{
	size_t q = put_head(p, "nullmx.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 0);
	put8(p, 0);
	end_rdata(p, at);
}

static void build_cname_a(struct pkt *p)
{
	size_t q = put_head(p, "alias.test", NET_DNS_A, 3), at, target;
	const uint8_t a1[4] = {127, 0, 0, 51}, a2[4] = {127, 0, 0, 52};

	at = put_rr_head(p, q, 5 /* CNAME */);
	target = put_name(p, "real@");
	put_ptr(p, q + 6);
	end_rdata(p, at);
	at = put_rr_head(p, target, NET_DNS_A);
	put(p, a1, 4);
	end_rdata(p, at);
	at = put_rr_head(p, target, NET_DNS_A);
	put(p, a2, 4);
	end_rdata(p, at);
}

static void build_aaaa_rrsig(struct pkt *p)
{
	size_t q = put_head(p, "v6.test", NET_DNS_AAAA, 2), at;
	struct in6_addr a6 = IN6ADDR_LOOPBACK_INIT;
	const uint8_t sig[20] = {0, 28, 13, 2};

	at = put_rr_head(p, q, NET_DNS_AAAA);
	put(p, &a6, 16);
	end_rdata(p, at);
	at = put_rr_head(p, q, 46 /* RRSIG */);
	put(p, sig, sizeof sig);
	end_rdata(p, at);
}

static void build_txt(struct pkt *p)
{
	size_t q = put_head(p, "txt.test", NET_DNS_TXT, 3), at;

	at = put_rr_head(p, q, NET_DNS_TXT);
	put8(p, 10);
	put(p, "part one, ", 10);
	put8(p, 8);
	put(p, "part two", 8);
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_TXT);
	put8(p, 0);
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_TXT);
	put8(p, 3);
	put(p, "a\0b", 3);
	end_rdata(p, at);
}

static void build_tlsa(struct pkt *p)
{
	size_t q = put_head(p, "_25._tcp.mx.test", NET_DNS_TLSA, 2), at;
	uint8_t h[32];

	for (unsigned i = 0; i < 32; i++)
		h[i] = (uint8_t)i;
	at = put_rr_head(p, q, NET_DNS_TLSA);
	put8(p, 3);
	put8(p, 1);
	put8(p, 1);
	put(p, h, 32);
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_TLSA);
	put8(p, 2);
	put8(p, 0);
	put8(p, 0);
	end_rdata(p, at); /* empty data: the DANE code judges it */
}

static void build_mx_bad_chars(struct pkt *p)
{
	size_t q = put_head(p, "odd.test", NET_DNS_MX, 3), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_name(p, "with space.test");
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 20);
	put8(p, 3);
	put(p, "a.b", 3); /* a dot inside a label */
	put8(p, 0);
	end_rdata(p, at);
	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 30);
	put_name(p, "ok.test");
	end_rdata(p, at);
}

/* -- malformed -- */

static void build_ptr_self(struct pkt *p)
{
	size_t q = put_head(p, "loop.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_ptr(p, p->len); /* points at itself */
	end_rdata(p, at);
}

static void build_ptr_forward(struct pkt *p)
{
	size_t q = put_head(p, "fwd.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_ptr(p, p->len + 2);
	put_name(p, "mx.test");
	end_rdata(p, at);
}

static void build_ptr_cycle(struct pkt *p)
{
	/* a label, then a pointer back to that label: a -> a -> a ... */
	size_t q = put_head(p, "cycle.test", NET_DNS_MX, 1), at, lab;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	lab = p->len;
	put8(p, 1);
	put8(p, 'a');
	put_ptr(p, lab);
	end_rdata(p, at);
}

static void build_ptr_cycle_back(struct pkt *p)
{
	/* x at A jumps back to B; B's labels run forward and jump to A: each
	 * pointer targets an earlier offset than itself, yet they loop */
	size_t q = put_head(p, "cyc2.test", NET_DNS_MX, 1), at, b;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	b = p->len;
	put8(p, 1);
	put8(p, 'b');
	put_ptr(p, b + 4); /* forward to "x" */
	put8(p, 1);
	put8(p, 'x');
	put_ptr(p, b);
	end_rdata(p, at);
}

static void build_ptr_outside(struct pkt *p)
{
	size_t q = put_head(p, "out.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_ptr(p, 0x3fff);
	end_rdata(p, at);
}

static void build_label_type(struct pkt *p)
{
	size_t q = put_head(p, "lt.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put8(p, 0x41); /* 01xxxxxx: extended label type */
	put8(p, 'a');
	put8(p, 0);
	end_rdata(p, at);
}

static void build_long_name(struct pkt *p)
{
	size_t q = put_head(p, "long.test", NET_DNS_MX, 1), at;
	char label[64];

	memset(label, 'a', sizeof label);
	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	for (int i = 0; i < 4; i++) { /* 4 * 64 + 1 = 257 octets */
		put8(p, 63);
		put(p, label, 63);
	}
	put8(p, 0);
	end_rdata(p, at);
}

static void build_rdlen_past_end(struct pkt *p)
{
	size_t q = put_head(p, "short.test", NET_DNS_A, 1), at;

	at = put_rr_head(p, q, NET_DNS_A);
	put8(p, 127);
	put8(p, 0);
	put8(p, 0);
	put8(p, 1);
	end_rdata(p, at);
	p->b[at + 1] = 40;
}

static void build_a_len5(struct pkt *p)
{
	size_t q = put_head(p, "a5.test", NET_DNS_A, 1), at;
	const uint8_t a[5] = {127, 0, 0, 1, 0};

	at = put_rr_head(p, q, NET_DNS_A);
	put(p, a, 5);
	end_rdata(p, at);
}

static void build_mx_name_short(struct pkt *p)
{
	size_t q = put_head(p, "mxs.test", NET_DNS_MX, 1), at;

	at = put_rr_head(p, q, NET_DNS_MX);
	put16(p, 10);
	put_name(p, "mx.test");
	put8(p, 0xab); /* a byte past the name inside the RDATA */
	end_rdata(p, at);
}

static void build_txt_overrun(struct pkt *p)
{
	size_t q = put_head(p, "txto.test", NET_DNS_TXT, 1), at;

	at = put_rr_head(p, q, NET_DNS_TXT);
	put8(p, 9);
	put(p, "abc", 3);
	end_rdata(p, at);
}

static void build_tlsa_short(struct pkt *p)
{
	size_t q = put_head(p, "_25._tcp.s.test", NET_DNS_TLSA, 1), at;

	at = put_rr_head(p, q, NET_DNS_TLSA);
	put8(p, 3);
	put8(p, 1);
	end_rdata(p, at);
}

static void build_ancount_huge(struct pkt *p)
{
	build_mx(p);
	p->b[6] = 0xff;
	p->b[7] = 0xff;
}

static void build_ancount_more(struct pkt *p)
{
	build_null_mx(p);
	p->b[7] = 2;
}

static void build_query(struct pkt *p)
{
	build_null_mx(p);
	p->b[2] &= 0x7f; /* QR clear */
}

static void build_empty_answer(struct pkt *p)
{
	put_head(p, "empty.test", NET_DNS_MX, 0);
}

struct parse_case {
	const char *what;
	void (*build)(struct pkt *p);
	int rrtype;
	int rc;
	size_t count, skipped;
};

/* clang-format off */
static const struct parse_case parse_cases[] = {
	{.what = "MX, compressed and not", .build = build_mx, .rrtype = NET_DNS_MX, .count = 3},
	{.what = "null MX", .build = build_null_mx, .rrtype = NET_DNS_MX, .count = 1},
	{.what = "CNAME then A", .build = build_cname_a, .rrtype = NET_DNS_A, .count = 2},
	{.what = "AAAA and its RRSIG", .build = build_aaaa_rrsig, .rrtype = NET_DNS_AAAA,
	 .count = 1},
	{.what = "TXT strings", .build = build_txt, .rrtype = NET_DNS_TXT, .count = 3},
	{.what = "TLSA", .build = build_tlsa, .rrtype = NET_DNS_TLSA, .count = 2},
	{.what = "MX exchange not a host name", .build = build_mx_bad_chars, .rrtype = NET_DNS_MX,
	 .count = 1, .skipped = 2},
	{.what = "other type asked", .build = build_mx, .rrtype = NET_DNS_A, .count = 0},
	{.what = "no answers", .build = build_empty_answer, .rrtype = NET_DNS_MX, .count = 0},
	{.what = "pointer to itself", .build = build_ptr_self, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "pointer forward", .build = build_ptr_forward, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "pointer cycle", .build = build_ptr_cycle, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "backward pointers that loop", .build = build_ptr_cycle_back, .rrtype = NET_DNS_MX,
	 .rc = -1},
	{.what = "pointer outside", .build = build_ptr_outside, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "label type 01", .build = build_label_type, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "name over 255 octets", .build = build_long_name, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "RDLENGTH past the end", .build = build_rdlen_past_end, .rrtype = NET_DNS_A,
	 .rc = -1},
	{.what = "A of 5 octets", .build = build_a_len5, .rrtype = NET_DNS_A, .rc = -1},
	{.what = "MX name ends early", .build = build_mx_name_short, .rrtype = NET_DNS_MX,
	 .rc = -1},
	{.what = "TXT string overruns", .build = build_txt_overrun, .rrtype = NET_DNS_TXT,
	 .rc = -1},
	{.what = "TLSA too short", .build = build_tlsa_short, .rrtype = NET_DNS_TLSA, .rc = -1},
	{.what = "ANCOUNT the packet cannot hold", .build = build_ancount_huge,
	 .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "ANCOUNT more than present", .build = build_ancount_more, .rrtype = NET_DNS_MX,
	 .rc = -1},
	{.what = "a query, not a response", .build = build_query, .rrtype = NET_DNS_MX, .rc = -1},
	{.what = "type not taken", .build = build_mx, .rrtype = 5 /* CNAME */, .rc = -1},
};
/* clang-format on */

static void test_parse_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		const struct parse_case *c = &parse_cases[i];
		struct net_dns_answer a;
		struct pkt p;
		int rc;

		memset(&a, 0, sizeof a);
		c->build(&p);
		rc = net_dns_parse_answer(p.b, p.len, c->rrtype, &a);
		if (rc != c->rc || (rc == 0 && (a.count != c->count || a.skipped != c->skipped))) {
			print_error("%s: rc=%d count=%zu skipped=%zu, want rc=%d count=%zu "
			            "skipped=%zu\n",
			            c->what, rc, a.count, a.skipped, c->rc, c->count, c->skipped);
			fail();
		}
		if (rc < 0)
			assert_null(a.mem);
		net_dns_answer_clear(&a);
	}
}

static void test_parse_records(void **state)
{
	struct net_dns_answer a;
	struct pkt p;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	memset(&a, 0, sizeof a);
	build_mx(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_MX, &a), 0);
	assert_int_equal(a.rrs[0].mx.preference, 20);
	assert_string_equal(a.rrs[0].mx.exchange, "mx2.example.test");
	assert_int_equal(a.rrs[1].mx.preference, 10);
	assert_string_equal(a.rrs[1].mx.exchange, "mx1.example.test");
	assert_string_equal(a.rrs[2].mx.exchange, "test");
	net_dns_answer_clear(&a);

	build_null_mx(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_MX, &a), 0);
	assert_int_equal(a.rrs[0].mx.preference, 0);
	assert_string_equal(a.rrs[0].mx.exchange, ".");
	net_dns_answer_clear(&a);

	build_cname_a(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_A, &a), 0);
	inet_ntop(AF_INET, &a.rrs[1].a, text, sizeof text);
	assert_string_equal(text, "127.0.0.52");
	net_dns_answer_clear(&a);

	build_aaaa_rrsig(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_AAAA, &a), 0);
	inet_ntop(AF_INET6, &a.rrs[0].aaaa, text, sizeof text);
	assert_string_equal(text, "::1");
	net_dns_answer_clear(&a);

	build_txt(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_TXT, &a), 0);
	assert_string_equal(a.rrs[0].txt.text, "part one, part two");
	assert_int_equal(a.rrs[0].txt.len, 18);
	assert_string_equal(a.rrs[1].txt.text, "");
	assert_int_equal(a.rrs[2].txt.len, 3);
	assert_memory_equal(a.rrs[2].txt.text, "a\0b", 4);
	net_dns_answer_clear(&a);

	build_tlsa(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_TLSA, &a), 0);
	assert_int_equal(a.rrs[0].tlsa.usage, 3);
	assert_int_equal(a.rrs[0].tlsa.selector, 1);
	assert_int_equal(a.rrs[0].tlsa.mtype, 1);
	assert_int_equal(a.rrs[0].tlsa.len, 32);
	assert_int_equal(a.rrs[0].tlsa.data[31], 31);
	assert_int_equal(a.rrs[1].tlsa.usage, 2);
	assert_int_equal(a.rrs[1].tlsa.len, 0);
	net_dns_answer_clear(&a);

	build_mx_bad_chars(&p);
	assert_int_equal(net_dns_parse_answer(p.b, p.len, NET_DNS_MX, &a), 0);
	assert_string_equal(a.rrs[0].mx.exchange, "ok.test");
	net_dns_answer_clear(&a);
}

/* Every prefix of every well-formed packet, and every single-byte change,
 * must parse or fail cleanly (ASan watches the bounds). */
static void test_parse_truncated_and_mutated(void **state)
{
	static const int types[] = {NET_DNS_A, NET_DNS_AAAA, NET_DNS_MX, NET_DNS_TXT, NET_DNS_TLSA};
	size_t i, n, k;

	(void)state;
	for (i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		struct pkt p, m;

		if (parse_cases[i].rc != 0)
			continue;
		parse_cases[i].build(&p);
		for (n = 0; n < p.len; n++) {
			struct net_dns_answer a;
			int rc;

			memset(&a, 0, sizeof a);
			rc = net_dns_parse_answer(p.b, n, parse_cases[i].rrtype, &a);
			/* the answers are the whole packet: any cut loses one */
			if (rc == 0 &&
			    a.count + a.skipped >= parse_cases[i].count + parse_cases[i].skipped &&
			    parse_cases[i].count > 0) {
				print_error("%s cut at %zu parsed whole\n", parse_cases[i].what, n);
				fail();
			}
			net_dns_answer_clear(&a);
		}
		for (n = 0; n < p.len; n++) {
			static const uint8_t flips[] = {0x01, 0x3f, 0x40, 0x80, 0xc0, 0xff};

			for (k = 0; k < sizeof flips; k++) {
				struct net_dns_answer a;

				m = p;
				m.b[n] ^= flips[k];
				for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
					memset(&a, 0, sizeof a);
					if (net_dns_parse_answer(m.b, m.len, types[t], &a) == 0) {
						for (size_t r = 0; r < a.count; r++) {
							if (types[t] == NET_DNS_MX)
								assert_true(
								    strlen(a.rrs[r].mx.exchange) <
								    NET_DNS_NAME_MAX);
						}
					}
					net_dns_answer_clear(&a);
				}
			}
		}
	}
	assert_int_equal(net_dns_parse_answer(NULL, 0, NET_DNS_MX,
	                                      &(struct net_dns_answer){.status = NET_DNS_OK}),
	                 -1);
}

/* ---- resolver set-up, no server needed -------------------------------------------- */

struct cfg_case {
	const char *what;
	struct net_resolver_config cfg;
	const char *err; /* substring; NULL: must succeed */
};

static void test_resolver_config(void **state)
{
	static const char *const bad_opt[] = {"no colon here", NULL};
	static const char *const unknown_opt[] = {"no-such-option: 1", NULL};
	/* clang-format off */
	const struct cfg_case cases[] = {
		{.what = "forwarder", .cfg = {.server = "127.0.0.1@5353"}},
		{.what = "two forwarders", .cfg = {.server = "127.0.0.1@5353, ::1@5353"}},
		{.what = "hostname", .cfg = {.server = "localhost"}, .err = "bad resolver address"},
		{.what = "empty list", .cfg = {.server = " , "}, .err = "empty"},
		{.what = "bad option", .cfg = {.server = "127.0.0.1", .options = bad_opt},
		 .err = "name: value"},
		{.what = "unknown option", .cfg = {.server = "127.0.0.1", .options = unknown_opt},
		 .err = "bad resolver option"},
		{.what = "missing anchor", .cfg = {.server = "127.0.0.1",
		 .trust_anchor_file = "/nonexistent/anchors"}, .err = "cannot read"},
		{.what = "anchor not DNS", .cfg = {.server = "127.0.0.1",
		 .trust_anchor_file = "/etc/hostname"}, .err = "trust anchor"},
	};
	/* clang-format on */
	struct event_base *base = event_base_new();
	size_t i;

	(void)state;
	assert_non_null(base);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *err = NULL;
		struct net_resolver *r = net_resolver_new(base, &cases[i].cfg, &err);

		if (cases[i].err == NULL) {
			if (r == NULL) {
				print_error("%s: %s\n", cases[i].what, err);
				fail();
			}
		} else if (r != NULL || err == NULL || strstr(err, cases[i].err) == NULL) {
			print_error("%s: err=\"%s\", want \"%s\"\n", cases[i].what, err ? err : "",
			            cases[i].err);
			fail();
		}
		free(err);
		net_resolver_free(&r);
		assert_null(r);
	}

	/* dnssec without an anchor file takes the root's, if installed */
	{
		struct net_resolver_config c = {.server = "127.0.0.1", .dnssec = 1};
		char *err = NULL;
		struct net_resolver *r = net_resolver_new(base, &c, &err);

		if (access("/usr/share/dns/root.key", R_OK) == 0 ||
		    access("/var/lib/unbound/root.key", R_OK) == 0) {
			assert_non_null(r);
		} else {
			assert_null(r);
			assert_non_null(strstr(err, "root anchor"));
		}
		free(err);
		net_resolver_free(&r);
	}
	event_base_free(base);
}

static void never_cb(void *ctx, const struct net_dns_answer *a)
{
	(void)ctx;
	(void)a;
	fail_msg("callback must not run");
}

static void test_resolve_refuses(void **state)
{
	struct event_base *base = event_base_new();
	struct net_resolver_config c = {.server = "127.0.0.1@9"};
	char *err = NULL;
	struct net_resolver *r = net_resolver_new(base, &c, &err);
	uint64_t id = 7;

	(void)state;
	assert_non_null(r);
	assert_int_equal(net_resolve(r, "bad name", NET_DNS_A, never_cb, NULL, &id), -1);
	assert_int_equal(id, 0);
	assert_int_equal(net_resolve(r, ".", NET_DNS_A, never_cb, NULL, &id), -1);
	assert_int_equal(net_resolve(r, "", NET_DNS_A, never_cb, NULL, &id), -1);
	assert_int_equal(net_resolve(r, "ok.test", 5 /* CNAME */, never_cb, NULL, &id), -1);
	assert_int_equal(net_resolve(r, "ok.test", NET_DNS_A, NULL, NULL, &id), -1);
	assert_int_equal(net_resolver_pending(r), 0);
	assert_int_equal(net_resolve_cancel(r, 1), -1);
	assert_ptr_equal(net_resolver_base(r), base);
	net_resolver_free(&r);
	net_resolver_free(&r); /* NULL: nothing */
	event_base_free(base);
}

/* ---- against the test DNS server ---------------------------------------------------- */

static struct testdns dns;

static int dns_setup(void **state)
{
	(void)state;
	return testdns_start(&dns);
}

static int dns_teardown(void **state)
{
	(void)state;
	testdns_stop(&dns);
	return 0;
}

struct loop {
	struct event_base *base;
	struct net_resolver *r;
	struct event *deadline;
	int expired;
};

static void loop_expired(evutil_socket_t fd, short what, void *arg)
{
	struct loop *l = arg;

	(void)fd;
	(void)what;
	l->expired = 1;
	event_base_loopbreak(l->base);
}

static void loop_open(struct loop *l, const char *server, uint32_t timeout_ms)
{
	struct net_resolver_config c = {
	    .server = server,
	    .trust_anchor_file = dns.anchor,
	    .timeout_ms = timeout_ms,
	    .options = testdns_resolver_options,
	};
	char *err = NULL;

	memset(l, 0, sizeof *l);
	l->base = event_base_new();
	assert_non_null(l->base);
	l->r = net_resolver_new(l->base, &c, &err);
	if (l->r == NULL)
		fail_msg("resolver: %s", err);
	l->deadline = evtimer_new(l->base, loop_expired, l);
}

/* Run until *done reaches want or ms pass; 0 when it did. */
static int loop_run(struct loop *l, const int *done, int want, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	l->expired = 0;
	evtimer_add(l->deadline, &tv);
	while (*done < want && !l->expired)
		event_base_loop(l->base, EVLOOP_ONCE);
	evtimer_del(l->deadline);
	return *done >= want ? 0 : -1;
}

static void loop_close(struct loop *l)
{
	net_resolver_free(&l->r);
	event_free(l->deadline);
	event_base_free(l->base);
}

/* What a query must come back with.  addrs/mx/txt: the records in any
 * order, as text ("10 mx1.multi.sluice.test"), "|"-separated. */
struct live_case {
	const char *name;
	int rrtype;
	enum net_dns_status status;
	int secure;
	const char *records;
	const char *canonname;
	const char *why; /* substring */
};

/* clang-format off */
static const struct live_case live_cases[] = {
	{.name = "multi.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK,
	 .records = "20 mx2.multi.sluice.test|10 mx1.multi.sluice.test|30 mx3.multi.sluice.test"},
	{.name = "MULTI.Sluice.Test.", .rrtype = NET_DNS_MX, .status = NET_DNS_OK,
	 .records = "20 mx2.multi.sluice.test|10 mx1.multi.sluice.test|30 mx3.multi.sluice.test"},
	{.name = "equal.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK,
	 .records = "10 mxa.equal.sluice.test|10 mxb.equal.sluice.test|20 mxc.equal.sluice.test"},
	{.name = "nullmx.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK,
	 .records = "0 ."},
	{.name = "numeric.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK,
	 .records = "10 127.0.0.9"},
	{.name = "nomx.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_NODATA},
	{.name = "nomx.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_OK,
	 .records = "127.0.0.31"},
	{.name = "nomx.sluice.test", .rrtype = NET_DNS_AAAA, .status = NET_DNS_OK,
	 .records = "::1"},
	{.name = "mx2.multi.sluice.test", .rrtype = NET_DNS_AAAA, .status = NET_DNS_NODATA},
	{.name = "nx.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_NXDOMAIN},
	{.name = "missing.noaddr.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_NXDOMAIN},
	{.name = "servfail.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_TEMPFAIL,
	 .why = "SERVFAIL"},
	{.name = "mx.servfail.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_TEMPFAIL},
	/* nsd refuses what it does not serve; libunbound makes that SERVFAIL */
	{.name = "elsewhere.test", .rrtype = NET_DNS_A, .status = NET_DNS_TEMPFAIL},
	{.name = "alias.cname.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_OK,
	 .records = "127.0.0.51", .canonname = "real.cname.sluice.test"},
	{.name = "spf.sluice.test", .rrtype = NET_DNS_TXT, .status = NET_DNS_OK,
	 .records = "v=spf1 ip4:127.0.0.1 -all"},
	{.name = "split.sluice.test", .rrtype = NET_DNS_TXT, .status = NET_DNS_OK,
	 .records = "part one, part two|"},
	/* DNSSEC */
	{.name = "dnssec.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK, .secure = 1,
	 .records = "10 mx.dnssec.sluice.test"},
	{.name = "mx.dnssec.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_OK, .secure = 1,
	 .records = "127.0.0.61"},
	{.name = "mx.dnssec.sluice.test", .rrtype = NET_DNS_AAAA, .status = NET_DNS_OK,
	 .secure = 1, .records = "::1"},
	{.name = "nomx.dnssec.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_NODATA,
	 .secure = 1},
	{.name = "nx.dnssec.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_NXDOMAIN,
	 .secure = 1},
	{.name = "_25._tcp.plain.dnssec.sluice.test", .rrtype = NET_DNS_TLSA,
	 .status = NET_DNS_NXDOMAIN, .secure = 1},
	{.name = "_25._tcp.mx.dnssec.sluice.test", .rrtype = NET_DNS_TLSA, .status = NET_DNS_OK,
	 .secure = 1, .records = "3 1 1 TLSA311|2 0 1 000102030405060708090a0b0c0d0e0f"
	 "101112131415161718191a1b1c1d1e1f"},
	{.name = "_2525._tcp.mx.dnssec.sluice.test", .rrtype = NET_DNS_TLSA, .status = NET_DNS_OK,
	 .secure = 1, .records = "3 1 1 TLSA311"},
	{.name = "good.bogus.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_OK, .secure = 1,
	 .records = "10 mx.bogus.sluice.test"},
	{.name = "bogus.sluice.test", .rrtype = NET_DNS_MX, .status = NET_DNS_BOGUS,
	 .why = "validation failure"},
	{.name = "mxbad.bogus.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_BOGUS},
	{.name = "_25._tcp.mx.bogus.sluice.test", .rrtype = NET_DNS_TLSA, .status = NET_DNS_BOGUS},
	/* outside the anchors: insecure, not bogus */
	{.name = "mx1.multi.sluice.test", .rrtype = NET_DNS_A, .status = NET_DNS_OK,
	 .records = "127.0.0.11"},
};
/* clang-format on */

#define LIVE_N (sizeof live_cases / sizeof live_cases[0])

struct live_result {
	int calls;
	int *done;
	struct net_dns_answer a; /* copied scalars */
	char records[1024];
};

static void record_text(const struct net_dns_answer *a, const struct net_dns_rr *rr, char *out,
                        size_t size)
{
	char t[INET6_ADDRSTRLEN];
	size_t n;

	switch (a->rrtype) {
	case NET_DNS_A:
		inet_ntop(AF_INET, &rr->a, out, (socklen_t)size);
		break;
	case NET_DNS_AAAA:
		inet_ntop(AF_INET6, &rr->aaaa, t, sizeof t);
		snprintf(out, size, "%s", t);
		break;
	case NET_DNS_MX:
		snprintf(out, size, "%u %s", rr->mx.preference, rr->mx.exchange);
		break;
	case NET_DNS_TXT:
		snprintf(out, size, "%s", rr->txt.text);
		break;
	case NET_DNS_TLSA:
		n = (size_t)snprintf(out, size, "%u %u %u ", rr->tlsa.usage, rr->tlsa.selector,
		                     rr->tlsa.mtype);
		for (size_t i = 0; i < rr->tlsa.len && n + 3 < size; i++)
			n += (size_t)snprintf(out + n, size - n, "%02x", rr->tlsa.data[i]);
		break;
	}
}

static void live_cb(void *ctx, const struct net_dns_answer *a)
{
	struct live_result *res = ctx;

	res->calls++;
	(*res->done)++;
	res->a = *a;
	res->a.rrs = NULL;
	res->a.mem = NULL;
	res->a.why = NULL;
	res->records[0] = '\0';
	for (size_t i = 0; i < a->count; i++) {
		char one[320];

		record_text(a, &a->rrs[i], one, sizeof one);
		if (i > 0)
			strcat(res->records, "|");
		strcat(res->records, one);
	}
	if (a->why != NULL)
		snprintf(res->records, sizeof res->records, "why=%s", a->why);
}

/* "a|b|c" and "c|a|b" are the same set */
static int same_set(const char *got, const char *want)
{
	char g[1024], w[1024], *tok, *save = NULL;
	size_t ng = 0, nw = 0;

	snprintf(g, sizeof g, "|%s|", got);
	snprintf(w, sizeof w, "%s", want);
	for (const char *p = got; *p; p++)
		ng += *p == '|';
	for (const char *p = want; *p; p++)
		nw += *p == '|';
	if (ng != nw)
		return 0;
	for (tok = strtok_r(w, "|", &save); tok != NULL; tok = strtok_r(NULL, "|", &save)) {
		char item[300];

		snprintf(item, sizeof item, "|%s|", tok);
		if (strstr(g, item) == NULL)
			return 0;
	}
	return 1;
}

static void expand_tlsa(const char *in, char *out, size_t size)
{
	const char *p = strstr(in, "TLSA311");

	if (p == NULL) {
		snprintf(out, size, "%s", in);
		return;
	}
	snprintf(out, size, "%.*s%s", (int)(p - in), in, dns.tlsa311);
	expand_tlsa(p + 7, out + strlen(out), size - strlen(out));
}

/* Every case in flight at once on one resolver. */
static void test_live_table(void **state)
{
	static struct live_result res[LIVE_N];
	struct loop l;
	int done = 0;
	size_t i;

	(void)state;
	loop_open(&l, dns.server, 10000);
	for (i = 0; i < LIVE_N; i++) {
		uint64_t id = 0;

		memset(&res[i], 0, sizeof res[i]);
		res[i].done = &done;
		assert_int_equal(net_resolve(l.r, live_cases[i].name, live_cases[i].rrtype, live_cb,
		                             &res[i], &id),
		                 0);
		assert_true(id > 0);
	}
	assert_int_equal(done, 0); /* never from inside net_resolve() */
	assert_int_equal(net_resolver_pending(l.r), LIVE_N);
	assert_int_equal(loop_run(&l, &done, (int)LIVE_N, 30000), 0);
	assert_int_equal(net_resolver_pending(l.r), 0);

	for (i = 0; i < LIVE_N; i++) {
		const struct live_case *c = &live_cases[i];
		const struct live_result *r = &res[i];
		char want[1024];

		if (r->calls != 1 || r->a.status != c->status || r->a.secure != c->secure) {
			print_error("%s %s: calls=%d status=%s secure=%d (%s), want %s secure=%d\n",
			            c->name, net_dns_type_name(c->rrtype), r->calls,
			            net_dns_status_name(r->a.status), r->a.secure, r->records,
			            net_dns_status_name(c->status), c->secure);
			fail();
		}
		assert_int_equal(r->a.rrtype, c->rrtype);
		if (c->records != NULL) {
			expand_tlsa(c->records, want, sizeof want);
			if (!same_set(r->records, want)) {
				print_error("%s: records \"%s\", want \"%s\"\n", c->name,
				            r->records, want);
				fail();
			}
		}
		if (c->why != NULL && strstr(r->records, c->why) == NULL) {
			print_error("%s: \"%s\", want why with \"%s\"\n", c->name, r->records,
			            c->why);
			fail();
		}
		if (c->status == NET_DNS_OK)
			assert_true(r->a.ttl > 0 && r->a.ttl <= 300);
		assert_string_equal(r->a.canonname, c->canonname ? c->canonname : r->a.qname);
	}
	assert_string_equal(res[1].a.qname, "multi.sluice.test");
	loop_close(&l);
}

/* A server that takes the packets and never answers. */
struct silent {
	int udp, tcp;
	char server[64];
};

static void silent_open(struct silent *s)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;

	s->udp = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s->udp >= 0);
	assert_int_equal(bind(s->udp, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(getsockname(s->udp, (struct sockaddr *)&sin, &len), 0);
	/* TCP too, so a retry over TCP hangs in the same way instead of
	 * being refused */
	s->tcp = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->tcp >= 0);
	assert_int_equal(bind(s->tcp, (struct sockaddr *)&sin, sizeof sin), 0);
	assert_int_equal(listen(s->tcp, 16), 0);
	snprintf(s->server, sizeof s->server, "127.0.0.1@%u", ntohs(sin.sin_port));
}

static void test_timeout(void **state)
{
	struct silent s;
	struct live_result res;
	struct loop l;
	int done = 0;
	uint64_t t0;

	(void)state;
	silent_open(&s);
	loop_open(&l, s.server, 300);
	memset(&res, 0, sizeof res);
	res.done = &done;
	t0 = util_now_ms();
	assert_int_equal(net_resolve(l.r, "multi.sluice.test", NET_DNS_MX, live_cb, &res, NULL), 0);
	assert_int_equal(loop_run(&l, &done, 1, 10000), 0);
	assert_int_equal(res.a.status, NET_DNS_TEMPFAIL);
	assert_string_equal(res.records, "why=timeout");
	assert_true(util_now_ms() - t0 >= 290);
	assert_int_equal(net_resolver_pending(l.r), 0);
	/* libunbound's answer, when it gives up, must not reach anyone */
	loop_close(&l);
	close(s.udp);
	close(s.tcp);
}

static void test_cancel(void **state)
{
	struct live_result res[3];
	struct loop l;
	int done = 0, never = 0;
	uint64_t id[3];

	(void)state;
	loop_open(&l, dns.server, 5000);
	memset(res, 0, sizeof res);
	for (int i = 0; i < 3; i++) {
		res[i].done = &done;
		assert_int_equal(
		    net_resolve(l.r, "multi.sluice.test", NET_DNS_MX, live_cb, &res[i], &id[i]), 0);
	}
	assert_true(id[0] != id[1] && id[1] != id[2]);
	assert_int_equal(net_resolve_cancel(l.r, id[1]), 0);
	assert_int_equal(net_resolve_cancel(l.r, id[1]), -1);
	assert_int_equal(loop_run(&l, &done, 2, 10000), 0);
	/* give a stray callback for the cancelled query the time to come */
	assert_int_equal(loop_run(&l, &never, 1, 300), -1);
	assert_int_equal(res[0].calls, 1);
	assert_int_equal(res[1].calls, 0);
	assert_int_equal(res[2].calls, 1);
	assert_int_equal(net_resolve_cancel(l.r, id[0]), -1); /* answered already */
	loop_close(&l);
}

/* Freeing the resolver from a callback while other answers are pending
 * (some already read by the same ub_process() call). */
struct free_ctx {
	struct net_resolver **r;
	int calls;
	int *done;
};

static void free_cb(void *ctx, const struct net_dns_answer *a)
{
	struct free_ctx *f = ctx;

	(void)a;
	f->calls++;
	(*f->done)++;
	net_resolver_free(f->r);
}

static void test_free_in_callback(void **state)
{
	struct free_ctx f[20];
	struct loop l;
	int done = 0, never = 0;

	(void)state;
	loop_open(&l, dns.server, 5000);
	for (int i = 0; i < 20; i++) {
		f[i] = (struct free_ctx){.r = &l.r, .done = &done};
		assert_int_equal(net_resolve(l.r, i % 2 ? "nomx.sluice.test" : "multi.sluice.test",
		                             NET_DNS_MX, free_cb, &f[i], NULL),
		                 0);
	}
	assert_int_equal(loop_run(&l, &done, 1, 10000), 0);
	assert_null(l.r);
	loop_run(&l, &never, 1, 200);
	assert_int_equal(done, 1);
	loop_close(&l);
}

static void test_free_pending(void **state)
{
	struct loop l;
	int never = 0;

	(void)state;
	loop_open(&l, dns.server, 5000);
	for (int i = 0; i < 10; i++)
		assert_int_equal(
		    net_resolve(l.r, "equal.sluice.test", NET_DNS_MX, never_cb, NULL, NULL), 0);
	net_resolver_free(&l.r);
	loop_run(&l, &never, 1, 200);
	loop_close(&l);
}

/* A callback that starts the next query: a chain, each answer cached or
 * not, each callback after its net_resolve() returned. */
struct chain {
	struct net_resolver *r;
	int steps, in_resolve, bad;
};

static void chain_cb(void *ctx, const struct net_dns_answer *a)
{
	struct chain *c = ctx;

	if (c->in_resolve || a->status != NET_DNS_OK)
		c->bad++;
	if (++c->steps < 6) {
		c->in_resolve = 1;
		if (net_resolve(c->r, "mx1.multi.sluice.test", NET_DNS_A, chain_cb, c, NULL) < 0)
			c->bad++;
		c->in_resolve = 0;
	}
}

static void test_chain(void **state)
{
	struct chain c = {0};
	struct loop l;

	(void)state;
	loop_open(&l, dns.server, 5000);
	c.r = l.r;
	c.in_resolve = 1;
	assert_int_equal(net_resolve(l.r, "mx1.multi.sluice.test", NET_DNS_A, chain_cb, &c, NULL),
	                 0);
	c.in_resolve = 0;
	assert_int_equal(loop_run(&l, &c.steps, 6, 10000), 0);
	assert_int_equal(c.bad, 0);
	loop_close(&l);
}

/* Without anchors nothing is secure, and the tampered zone is not bogus. */
static void test_no_dnssec(void **state)
{
	struct net_resolver_config cfg = {.server = dns.server,
	                                  .options = testdns_resolver_options};
	struct live_result res[2];
	struct loop l;
	char *err = NULL;
	int done = 0;

	(void)state;
	loop_open(&l, dns.server, 5000);
	net_resolver_free(&l.r);
	l.r = net_resolver_new(l.base, &cfg, &err);
	assert_non_null(l.r);
	memset(res, 0, sizeof res);
	res[0].done = res[1].done = &done;
	assert_int_equal(net_resolve(l.r, "dnssec.sluice.test", NET_DNS_MX, live_cb, &res[0], NULL),
	                 0);
	assert_int_equal(net_resolve(l.r, "bogus.sluice.test", NET_DNS_MX, live_cb, &res[1], NULL),
	                 0);
	assert_int_equal(loop_run(&l, &done, 2, 10000), 0);
	assert_int_equal(res[0].a.status, NET_DNS_OK);
	assert_int_equal(res[0].a.secure, 0);
	assert_int_equal(res[1].a.status, NET_DNS_OK);
	assert_string_equal(res[1].records, "20 mx.bogus.sluice.test");
	loop_close(&l);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_name_normalize),
	    cmocka_unit_test(test_parse_table),
	    cmocka_unit_test(test_parse_records),
	    cmocka_unit_test(test_parse_truncated_and_mutated),
	    cmocka_unit_test(test_resolver_config),
	    cmocka_unit_test(test_resolve_refuses),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_live_table),   cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_cancel),       cmocka_unit_test(test_free_in_callback),
	    cmocka_unit_test(test_free_pending), cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_no_dnssec),
	};
	int failed = cmocka_run_group_tests_name("resolve (no network)", pure, NULL, NULL);

	failed +=
	    cmocka_run_group_tests_name("resolve (test DNS server)", live, dns_setup, dns_teardown);
	return failed;
}
