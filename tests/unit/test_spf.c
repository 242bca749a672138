/* Unit tests for policy/spf.c: RFC 7208 check_host() over a table of
 * DNS records, one case per rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/spf.h"

/* The fake DNS: type, name, data ("TEMP" fails the look-up). */
struct fake_rr {
	enum spf_rrtype type;
	const char *name;
	const char *data;
};

static const struct fake_rr fake_zone[] = {
    {SPF_RR_TXT, "ip.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"},
    {SPF_RR_TXT, "soft.test", "v=spf1 ip4:198.51.100.1 ~all"},
    {SPF_RR_TXT, "neutral.test", "v=spf1 ?all"},
    {SPF_RR_TXT, "nomatch.test", "v=spf1 ip4:198.51.100.1"},
    {SPF_RR_TXT, "other.test", "not spf at all"},
    {SPF_RR_TXT, "two.test", "v=spf1 -all"},
    {SPF_RR_TXT, "two.test", "v=spf1 +all"},
    {SPF_RR_TXT, "inc.test", "v=spf1 include:ip.test -all"},
    {SPF_RR_TXT, "incnone.test", "v=spf1 include:nothing.test -all"},
    {SPF_RR_TXT, "incfail.test", "v=spf1 include:soft.test ?all"},
    {SPF_RR_TXT, "redir.test", "v=spf1 redirect=ip.test"},
    {SPF_RR_TXT, "redirnone.test", "v=spf1 redirect=nothing.test"},
    {SPF_RR_TXT, "a.test", "v=spf1 a:host.test/24 -all"},
    {SPF_RR_TXT, "aself.test", "v=spf1 a -all"},
    {SPF_RR_A, "aself.test", "192.0.2.9"},
    {SPF_RR_A, "host.test", "192.0.2.200"},
    {SPF_RR_TXT, "mx.test", "v=spf1 mx -all"},
    {SPF_RR_MX, "mx.test", "mx1.test"},
    {SPF_RR_MX, "mx.test", "mx2.test"},
    {SPF_RR_A, "mx2.test", "203.0.113.7"},
    {SPF_RR_TXT, "exists.test", "v=spf1 exists:%{i}.list.test -all"},
    {SPF_RR_A, "203.0.113.7.list.test", "127.0.0.2"},
    {SPF_RR_TXT, "loop.test", "v=spf1 include:loop.test -all"},
    {SPF_RR_TXT, "voids.test", "v=spf1 a:n1.test a:n2.test a:n3.test +all"},
    {SPF_RR_TXT, "temp.test", "TEMP"},
    {SPF_RR_TXT, "inctemp.test", "v=spf1 include:temp.test -all"},
    {SPF_RR_TXT, "bad.test", "v=spf1 ip4:300.1.2.3 -all"},
    {SPF_RR_TXT, "badcidr.test", "v=spf1 ip4:192.0.2.1/33 -all"},
    {SPF_RR_TXT, "mod.test", "v=spf1 foo=bar exp=explain.test ip4:192.0.2.1 -all"},
    {SPF_RR_TXT, "macro.test", "v=spf1 exists:%{l1r}.test -all"},
    {SPF_RR_TXT, "ptr.test", "v=spf1 ptr -all"},
    {SPF_RR_TXT, "case.test", "V=SPF1 IP4:192.0.2.1 -ALL"},
    {SPF_RR_TXT, "unknown.test", "v=spf1 frob:x.test -all"},
};

static int fake_calls;

static int fake_lookup(void *ctx, const char *name, enum spf_rrtype type, struct spf_rrset *out)
{
	(void)ctx;
	fake_calls++;
	out->status = SPF_DNS_NONE;
	for (size_t i = 0; i < sizeof fake_zone / sizeof fake_zone[0]; i++) {
		const struct fake_rr *r = &fake_zone[i];

		if (r->type != type || strcmp(r->name, name) != 0)
			continue;
		if (strcmp(r->data, "TEMP") == 0) {
			out->status = SPF_DNS_TEMP;
			return 0;
		}
		out->status = SPF_DNS_OK;
		if (type == SPF_RR_TXT) {
			out->txt[out->n] = strdup(r->data);
		} else if (type == SPF_RR_MX) {
			snprintf(out->name[out->n], sizeof out->name[0], "%s", r->data);
		} else {
			assert_int_equal(spf_ip_parse(r->data, &out->ip[out->n]), 0);
		}
		out->n++;
	}
	return 0;
}

struct spf_case {
	const char *domain;
	const char *ip;
	enum spf_result want;
	const char *why; /* substring of the explanation, or NULL */
};

static const struct spf_case spf_cases[] = {
    {.domain = "ip.test", .ip = "192.0.2.55", .want = SPF_PASS, .why = "+ip4:192.0.2.0/24"},
    {.domain = "ip.test", .ip = "2001:db8::1", .want = SPF_PASS, .why = "ip6:"},
    {.domain = "ip.test", .ip = "198.51.100.1", .want = SPF_FAIL, .why = "-all"},
    {.domain = "ip.test", .ip = "2001:db9::1", .want = SPF_FAIL},
    {.domain = "soft.test", .ip = "192.0.2.1", .want = SPF_SOFTFAIL},
    {.domain = "neutral.test", .ip = "192.0.2.1", .want = SPF_NEUTRAL},
    {.domain = "nomatch.test", .ip = "192.0.2.1", .want = SPF_NEUTRAL, .why = "no term"},
    {.domain = "other.test", .ip = "192.0.2.1", .want = SPF_NONE, .why = "no SPF record"},
    {.domain = "nothing.test", .ip = "192.0.2.1", .want = SPF_NONE},
    {.domain = "two.test", .ip = "192.0.2.1", .want = SPF_PERMERROR, .why = "2 SPF records"},
    {.domain = "inc.test", .ip = "192.0.2.1", .want = SPF_PASS, .why = "through"},
    {.domain = "inc.test", .ip = "198.51.100.9", .want = SPF_FAIL},
    {.domain = "incnone.test", .ip = "192.0.2.1", .want = SPF_PERMERROR},
    {.domain = "incfail.test", .ip = "192.0.2.1", .want = SPF_NEUTRAL},
    {.domain = "redir.test", .ip = "192.0.2.1", .want = SPF_PASS},
    {.domain = "redirnone.test", .ip = "192.0.2.1", .want = SPF_PERMERROR},
    {.domain = "a.test", .ip = "192.0.2.1", .want = SPF_PASS, .why = "a:host.test/24"},
    {.domain = "a.test", .ip = "192.0.3.1", .want = SPF_FAIL},
    {.domain = "aself.test", .ip = "192.0.2.9", .want = SPF_PASS},
    {.domain = "aself.test", .ip = "2001:db8::9", .want = SPF_FAIL},
    {.domain = "mx.test", .ip = "203.0.113.7", .want = SPF_PASS},
    {.domain = "mx.test", .ip = "203.0.113.8", .want = SPF_FAIL},
    {.domain = "exists.test", .ip = "203.0.113.7", .want = SPF_PASS},
    {.domain = "exists.test", .ip = "203.0.113.8", .want = SPF_FAIL},
    {.domain = "loop.test", .ip = "192.0.2.1", .want = SPF_PERMERROR, .why = "DNS-querying terms"},
    {.domain = "voids.test", .ip = "192.0.2.1", .want = SPF_PERMERROR, .why = "void"},
    {.domain = "temp.test", .ip = "192.0.2.1", .want = SPF_TEMPERROR},
    {.domain = "inctemp.test", .ip = "192.0.2.1", .want = SPF_TEMPERROR},
    {.domain = "bad.test", .ip = "192.0.2.1", .want = SPF_PERMERROR, .why = "bad term"},
    {.domain = "badcidr.test", .ip = "192.0.2.1", .want = SPF_PERMERROR},
    {.domain = "mod.test", .ip = "192.0.2.1", .want = SPF_PASS},
    {.domain = "macro.test", .ip = "192.0.2.1", .want = SPF_PERMERROR},
    {.domain = "ptr.test", .ip = "192.0.2.1", .want = SPF_FAIL},
    {.domain = "case.test", .ip = "192.0.2.1", .want = SPF_PASS},
    {.domain = "unknown.test", .ip = "192.0.2.1", .want = SPF_PERMERROR},
    {.domain = "bad..name", .ip = "192.0.2.1", .want = SPF_NONE},
};

static void test_check_host(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof spf_cases / sizeof spf_cases[0]; i++) {
		const struct spf_case *c = &spf_cases[i];
		struct spf_ip ip;
		char why[256];
		enum spf_result r;

		assert_int_equal(spf_ip_parse(c->ip, &ip), 0);
		fake_calls = 0;
		r = spf_check_host(fake_lookup, NULL, &ip, c->domain, NULL, why, sizeof why);
		if (r != c->want || (c->why != NULL && strstr(why, c->why) == NULL))
			fail_msg("%s from %s: got %s (%s), want %s", c->domain, c->ip,
			         spf_result_name(r), why, spf_result_name(c->want));
		assert_true(fake_calls <= 25);
	}
}

static void test_small_why(void **state)
{
	struct spf_ip ip;
	char why[8];

	(void)state;
	assert_int_equal(spf_ip_parse("192.0.2.1", &ip), 0);
	assert_int_equal(spf_check_host(fake_lookup, NULL, &ip, "inc.test", NULL, why, sizeof why),
	                 SPF_PASS);
	assert_int_equal(strlen(why), 7);
	assert_int_equal(spf_check_host(fake_lookup, NULL, &ip, "inc.test", NULL, NULL, 0),
	                 SPF_PASS);
	assert_int_equal(spf_ip_parse("not an address", &ip), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_host),
	    cmocka_unit_test(test_small_why),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
