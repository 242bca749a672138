/*
 * test_mx: MX routing.  The pure steps first, table-driven and without
 * DNS: preference order and the shuffling of equal preferences, the MX
 * answer's verdicts (NXDOMAIN, null MX, implicit MX, our own names...),
 * the targets' order per address family, duplicates and DANE.  Then the
 * whole lookup against the test DNS server (tests/dns): every verdict end
 * to end, DNSSEC flags, TLSA records, domain literals, cancelling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../dns/testdns.h"
#include "deliver/deliver.h"
#include "net/net.h"

#define DRAWS_MAX 400 /* bound on draws to see every order; miss chance < 2^-100 */

/* ---- deliver_mx_sort ---------------------------------------------------------------- */

static uint32_t rnd_zero(void *ctx, uint32_t n)
{
	(void)ctx;
	(void)n;
	return 0;
}

static uint32_t rnd_last(void *ctx, uint32_t n)
{
	(void)ctx;
	return n - 1;
}

static void recs_text(const struct deliver_mx_rec *r, size_t n, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(out);

		snprintf(out + len, size - len, "%s%u %s", i ? "|" : "", r[i].preference,
		         r[i].name);
	}
}

struct sort_case {
	const char *in;   /* "pref name|pref name" */
	const char *zero; /* order with rnd_zero */
	const char *last; /* order with rnd_last */
};

/* clang-format off */
static const struct sort_case sort_cases[] = {
	{.in = "", .zero = "", .last = ""},
	{.in = "10 a", .zero = "10 a", .last = "10 a"},
	{.in = "30 c|10 a|20 b", .zero = "10 a|20 b|30 c", .last = "10 a|20 b|30 c"},
	{.in = "0 z|65535 y|1 x", .zero = "0 z|1 x|65535 y", .last = "0 z|1 x|65535 y"},
	/* rnd_zero moves the run's first element to the end at each step of
	 * Fisher-Yates; rnd_last leaves it as qsort left it: the order
	 * depends on the random source alone */
	{.in = "10 a|10 b", .zero = "10 b|10 a", .last = NULL},
	{.in = "20 c|10 a|10 b|5 d", .zero = NULL, .last = NULL},
};
/* clang-format on */

static size_t recs_parse(const char *in, struct deliver_mx_rec *r, char names[][8])
{
	size_t n = 0;
	const char *p = in;

	while (*p != '\0') {
		unsigned pref;
		int used;

		assert_int_equal(sscanf(p, "%u %7[a-z]%n", &pref, names[n], &used), 2);
		r[n].preference = (uint16_t)pref;
		r[n].name = names[n];
		n++;
		p += used;
		if (*p == '|')
			p++;
	}
	return n;
}

static void test_sort_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof sort_cases / sizeof sort_cases[0]; i++) {
		const struct sort_case *c = &sort_cases[i];
		struct deliver_mx_rec r[8];
		char names[8][8], out[128];
		size_t n = recs_parse(c->in, r, names);

		deliver_mx_sort(r, n, rnd_zero, NULL);
		for (size_t k = 1; k < n; k++)
			assert_true(r[k - 1].preference <= r[k].preference);
		recs_text(r, n, out, sizeof out);
		if (c->zero != NULL)
			assert_string_equal(out, c->zero);
		n = recs_parse(c->in, r, names);
		deliver_mx_sort(r, n, rnd_last, NULL);
		for (size_t k = 1; k < n; k++)
			assert_true(r[k - 1].preference <= r[k].preference);
		recs_text(r, n, out, sizeof out);
		if (c->last != NULL)
			assert_string_equal(out, c->last);
	}
}

/* With the real random source: both orders of two equal MX, and all six
 * of three, show up within a bounded number of draws, and the backup
 * always comes last. */
static void test_sort_shuffles(void **state)
{
	int seen2 = 0, seen3[6] = {0}, nseen3 = 0, draws;

	(void)state;
	for (draws = 0; draws < DRAWS_MAX && seen2 != 3; draws++) {
		struct deliver_mx_rec r[3] = {{20, "backup"}, {10, "a"}, {10, "b"}};

		deliver_mx_sort(r, 3, NULL, NULL);
		assert_string_equal(r[2].name, "backup");
		seen2 |= strcmp(r[0].name, "a") == 0 ? 1 : 2;
	}
	assert_int_equal(seen2, 3);
	for (draws = 0; draws < DRAWS_MAX * 3 && nseen3 < 6; draws++) {
		struct deliver_mx_rec r[3] = {{5, "a"}, {5, "b"}, {5, "c"}};
		int perm;

		deliver_mx_sort(r, 3, NULL, NULL);
		perm = (r[0].name[0] - 'a') * 2 + (r[1].name[0] - 'a' > r[2].name[0] - 'a');
		if (!seen3[perm]++)
			nseen3++;
	}
	assert_int_equal(nseen3, 6);
}

/* ---- deliver_mx_hosts -------------------------------------------------------------- */

struct hosts_case {
	const char *what;
	enum net_dns_status status;
	int secure;
	const char *mx; /* "pref name|..." answer records */
	size_t skipped;
	const char *why;
	const char *const *local;
	enum deliver_mx_status want;
	const char *enhanced;
	const char *hosts; /* the hosts, in order; equal preferences may come either way */
	const char *text;  /* substring */
};

static const char *const local_me[] = {"ME.Example.TEST.", NULL};

/* clang-format off */
static const struct hosts_case hosts_cases[] = {
	{.what = "three MX", .mx = "20 b.test|10 a.test|30 c.test",
	 .hosts = "10 a.test|20 b.test|30 c.test"},
	{.what = "secure MX", .mx = "10 a.test", .secure = 1, .hosts = "10 a.test"},
	{.what = "no MX: implicit", .status = NET_DNS_NODATA, .secure = 1,
	 .hosts = "0 example.test"},
	{.what = "NXDOMAIN", .status = NET_DNS_NXDOMAIN, .want = DELIVER_MX_PERM,
	 .enhanced = "5.1.2", .text = "not found"},
	{.what = "SERVFAIL", .status = NET_DNS_TEMPFAIL, .why = "SERVFAIL",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.3", .text = "SERVFAIL"},
	{.what = "timeout", .status = NET_DNS_TEMPFAIL, .why = "timeout",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.3", .text = "timeout"},
	{.what = "bogus", .status = NET_DNS_BOGUS, .why = "signature expired",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.3", .text = "failed DNSSEC validation"},
	{.what = "null MX", .mx = "0 .", .want = DELIVER_MX_PERM, .enhanced = "5.1.10",
	 .text = "does not accept mail (null MX)"},
	{.what = "null MX, other preference", .mx = "10 .", .want = DELIVER_MX_PERM,
	 .enhanced = "5.1.10"},
	{.what = "root among others", .mx = "0 .|10 mx.test", .hosts = "10 mx.test",
	 .text = "\".\" among others"},
	{.what = "address as MX host", .mx = "10 127.0.0.9", .want = DELIVER_MX_TEMP,
	 .enhanced = "4.4.4", .text = "127.0.0.9 is an address"},
	{.what = "address among names", .mx = "10 192.0.2.1|20 mx.test", .hosts = "20 mx.test"},
	{.what = "only unusable names", .mx = "", .skipped = 2, .want = DELIVER_MX_TEMP,
	 .enhanced = "4.4.4", .text = "2 MX records with a host that is not a name"},
	{.what = "we are a backup MX", .mx = "10 a.test|20 me.example.test|30 c.test",
	 .local = local_me, .hosts = "10 a.test"},
	{.what = "we are the best MX", .mx = "10 me.example.test|20 b.test", .local = local_me,
	 .want = DELIVER_MX_PERM, .enhanced = "5.4.6", .text = "loops back to myself"},
	{.what = "we share the best preference", .mx = "10 a.test|10 me.example.test",
	 .local = local_me, .want = DELIVER_MX_PERM, .enhanced = "5.4.6"},
	{.what = "not us", .mx = "10 a.test", .local = local_me, .hosts = "10 a.test"},
	{.what = "more than the hosts kept",
	 .mx = "1 a.t|2 b.t|3 c.t|4 d.t|5 e.t|6 f.t|7 g.t|8 h.t|9 i.t|10 j.t|11 k.t|12 l.t",
	 .hosts = "1 a.t|2 b.t|3 c.t|4 d.t|5 e.t|6 f.t|7 g.t|8 h.t|9 i.t|10 j.t",
	 .text = "2 less preferred MX hosts not tried"},
};
/* clang-format on */

static size_t answer_from(const char *mx, struct net_dns_rr *rrs)
{
	size_t n = 0;
	const char *p = mx;

	while (*p != '\0') {
		unsigned pref;
		int used;

		assert_int_equal(sscanf(p, "%u %253[^|]%n", &pref, rrs[n].mx.exchange, &used), 2);
		rrs[n].mx.preference = (uint16_t)pref;
		n++;
		p += used;
		if (*p == '|')
			p++;
	}
	return n;
}

static void test_hosts_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof hosts_cases / sizeof hosts_cases[0]; i++) {
		const struct hosts_case *c = &hosts_cases[i];
		struct net_dns_rr rrs[16];
		struct net_dns_answer a;
		struct deliver_mx_options o = {.local_names = c->local};
		struct deliver_mx_host hosts[DELIVER_MX_HOSTS_MAX];
		struct deliver_mx_result res;
		char got[512] = "";
		size_t n = 99;
		enum deliver_mx_status st;

		memset(&a, 0, sizeof a);
		memset(&res, 0, sizeof res);
		a.status = c->status;
		a.secure = c->secure;
		a.rrtype = NET_DNS_MX;
		a.why = c->why;
		a.rrs = rrs;
		a.count = c->mx ? answer_from(c->mx, rrs) : 0;
		a.skipped = c->skipped;
		st = deliver_mx_hosts("example.test", &a, &o, hosts, &n, &res);
		for (size_t k = 0; st == DELIVER_MX_OK && k < n; k++) {
			size_t len = strlen(got);

			snprintf(got + len, sizeof got - len, "%s%u %.253s", k ? "|" : "",
			         hosts[k].preference, hosts[k].name);
			assert_int_equal(hosts[k].mx_secure, c->secure);
			assert_int_equal(hosts[k].implicit, c->status == NET_DNS_NODATA);
		}
		if (st != c->want || (c->enhanced && strcmp(res.enhanced, c->enhanced) != 0) ||
		    (c->hosts && strcmp(got, c->hosts) != 0) ||
		    (c->text && strstr(res.text, c->text) == NULL) ||
		    (st != DELIVER_MX_OK && n != 0)) {
			print_error("%s: status=%d enhanced=%s hosts=\"%s\" text=\"%s\"\n", c->what,
			            (int)st, res.enhanced, got, res.text);
			fail();
		}
		assert_int_equal(res.status, st);
		assert_string_equal(res.domain, "example.test");
	}
}

/* ---- deliver_mx_targets ------------------------------------------------------------- */

/* Hosts in a small language, ';' between hosts:
 *   "name pref [implicit] [mxsec] A=addr A:status Asec AAAA=addr ... tlsa:ok|temp"
 * A=/AAAA= add an address (status ok); A:nxdomain etc. set the status;
 * a family not mentioned was not asked. */
static size_t hosts_parse(const char *spec, struct deliver_mx_host *h, struct net_tls_tlsa *tlsa)
{
	char buf[1024], *hs, *save1 = NULL;
	size_t n = 0;

	snprintf(buf, sizeof buf, "%s", spec);
	for (hs = strtok_r(buf, ";", &save1); hs != NULL; hs = strtok_r(NULL, ";", &save1)) {
		char *tok, *save2 = NULL;
		struct deliver_mx_host *x = &h[n++];
		int field = 0;

		memset(x, 0, sizeof *x);
		for (tok = strtok_r(hs, " ", &save2); tok != NULL;
		     tok = strtok_r(NULL, " ", &save2)) {
			struct deliver_mx_family *f =
			    strncmp(tok, "AAAA", 4) == 0 ? &x->v6 : &x->v4;
			const char *rest = tok + (f == &x->v6 ? 4 : 1);

			if (field == 0) {
				snprintf(x->name, sizeof x->name, "%s", tok);
				field++;
			} else if (field == 1) {
				x->preference = (uint16_t)atoi(tok);
				field++;
			} else if (strcmp(tok, "implicit") == 0) {
				x->implicit = 1;
			} else if (strcmp(tok, "mxsec") == 0) {
				x->mx_secure = 1;
			} else if (strcmp(tok, "tlsa:ok") == 0) {
				x->tlsa_status = DELIVER_TLSA_OK;
				x->tlsa = tlsa;
				x->ntlsa = 1;
				snprintf(x->tlsa_base, sizeof x->tlsa_base, "%s", x->name);
			} else if (strcmp(tok, "tlsa:temp") == 0) {
				x->tlsa_status = DELIVER_TLSA_TEMP;
			} else if (strncmp(tok, "canon=", 6) == 0) {
				snprintf(x->canonname, sizeof x->canonname, "%s", tok + 6);
			} else if (strcmp(rest, "sec") == 0) {
				f->secure = 1;
			} else if (rest[0] == '=') {
				f->asked = 1;
				f->status = NET_DNS_OK;
				assert_int_equal(inet_pton(f == &x->v6 ? AF_INET6 : AF_INET,
				                           rest + 1, f->addr[f->n++]),
				                 1);
			} else if (rest[0] == ':') {
				f->asked = 1;
				if (strcmp(rest + 1, "nxdomain") == 0)
					f->status = NET_DNS_NXDOMAIN;
				else if (strcmp(rest + 1, "nodata") == 0)
					f->status = NET_DNS_NODATA;
				else if (strcmp(rest + 1, "bogus") == 0)
					f->status = NET_DNS_BOGUS;
				else
					f->status = NET_DNS_TEMPFAIL;
			} else {
				fail_msg("bad host spec token %s", tok);
			}
		}
	}
	return n;
}

static void target_text(const struct deliver_mx_target *t, char *out, size_t size)
{
	char addr[NET_ADDR_STRLEN];

	net_addr_str((const struct sockaddr *)&t->addr, addr);
	snprintf(out, size, "%s %s", t->host, addr);
}

static void targets_text(const struct deliver_mx_result *res, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < res->ntargets; i++) {
		char one[400];
		size_t len = strlen(out);

		target_text(&res->targets[i], one, sizeof one);
		snprintf(out + len, size - len, "%s%s", i ? "|" : "", one);
	}
}

struct targets_case {
	const char *what;
	const char *hosts;
	enum config_ip_pref pref;
	enum deliver_mx_status want;
	const char *enhanced;
	const char *targets;
	const char *text;
};

#define TWO_HOSTS "a.test 10 A=192.0.2.1 AAAA=2001:db8::1;b.test 20 A=192.0.2.2 AAAA=2001:db8::2"

/* clang-format off */
static const struct targets_case targets_cases[] = {
	{.what = "IPv4 first", .hosts = TWO_HOSTS, .pref = CONFIG_IP_IPV4_FIRST,
	 .targets = "a.test 192.0.2.1|a.test 2001:db8::1|b.test 192.0.2.2|b.test 2001:db8::2"},
	{.what = "IPv6 first", .hosts = TWO_HOSTS, .pref = CONFIG_IP_IPV6_FIRST,
	 .targets = "a.test 2001:db8::1|a.test 192.0.2.1|b.test 2001:db8::2|b.test 192.0.2.2"},
	{.what = "IPv4 only (AAAA not asked)", .pref = CONFIG_IP_IPV4_ONLY,
	 .hosts = "a.test 10 A=192.0.2.1;b.test 20 A=192.0.2.2",
	 .targets = "a.test 192.0.2.1|b.test 192.0.2.2"},
	{.what = "IPv6 only (A not asked)", .pref = CONFIG_IP_IPV6_ONLY,
	 .hosts = "a.test 10 AAAA=2001:db8::1;b.test 20 AAAA:nodata",
	 .targets = "a.test 2001:db8::1", .text = "b.test: no address"},
	{.what = "several addresses, one repeated",
	 .hosts = "a.test 10 A=192.0.2.1 A=192.0.2.9;b.test 20 A=192.0.2.9 A=192.0.2.2",
	 .targets = "a.test 192.0.2.1|a.test 192.0.2.9|b.test 192.0.2.2"},
	{.what = "a host without addresses is left out",
	 .hosts = "a.test 10 A:nxdomain AAAA:nxdomain;b.test 20 A=192.0.2.2 AAAA:nodata",
	 .targets = "b.test 192.0.2.2", .text = "a.test: no address"},
	{.what = "a failed lookup is left out",
	 .hosts = "a.test 10 A:tempfail AAAA:nodata;b.test 20 A=192.0.2.2",
	 .targets = "b.test 192.0.2.2", .text = "a.test: A tempfail AAAA nodata"},
	{.what = "one family failed, the other used",
	 .hosts = "a.test 10 A:tempfail AAAA=2001:db8::1",
	 .targets = "a.test 2001:db8::1", .text = "other addresses used"},
	{.what = "no host has an address",
	 .hosts = "a.test 10 A:nxdomain AAAA:nxdomain;b.test 20 A:nodata AAAA:nodata",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.4", .text = "no MX host of example.test"},
	{.what = "implicit MX without an address",
	 .hosts = "example.test 0 implicit A:nodata AAAA:nodata",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.4", .text = "neither MX records nor an address"},
	{.what = "lookups failed",
	 .hosts = "a.test 10 A:tempfail AAAA:nodata;b.test 20 A:bogus AAAA:nxdomain",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.3", .text = "b.test: A bogus"},
	{.what = "TLSA failure leaves the host out",
	 .hosts = "a.test 10 mxsec A=192.0.2.1 Asec tlsa:temp;b.test 20 A=192.0.2.2",
	 .targets = "b.test 192.0.2.2", .text = "a.test: TLSA lookup failed"},
	{.what = "TLSA failure everywhere",
	 .hosts = "a.test 10 mxsec A=192.0.2.1 Asec tlsa:temp;b.test 20 A:nxdomain",
	 .want = DELIVER_MX_TEMP, .enhanced = "4.7.5"},
	{.what = "nothing at all", .hosts = "", .want = DELIVER_MX_TEMP, .enhanced = "4.4.4"},
};
/* clang-format on */

static void test_targets_table(void **state)
{
	struct net_tls_tlsa tlsa = {.usage = 3, .selector = 1, .mtype = 1};

	(void)state;
	for (size_t i = 0; i < sizeof targets_cases / sizeof targets_cases[0]; i++) {
		const struct targets_case *c = &targets_cases[i];
		struct deliver_mx_host hosts[DELIVER_MX_HOSTS_MAX];
		struct deliver_mx_options o = {.ip_pref = c->pref};
		struct deliver_mx_result res;
		size_t n = hosts_parse(c->hosts, hosts, &tlsa);
		char got[1024];
		enum deliver_mx_status st;

		memset(&res, 0, sizeof res);
		snprintf(res.domain, sizeof res.domain, "example.test");
		st = deliver_mx_targets(hosts, n, &o, &res);
		targets_text(&res, got, sizeof got);
		if (st != c->want || (c->enhanced && strcmp(res.enhanced, c->enhanced) != 0) ||
		    (c->targets && strcmp(got, c->targets) != 0) ||
		    (c->text && strstr(res.text, c->text) == NULL) ||
		    (st != DELIVER_MX_OK && res.ntargets != 0)) {
			print_error("%s: status=%d enhanced=%s targets=\"%s\" text=\"%s\"\n",
			            c->what, (int)st, res.enhanced, got, res.text);
			fail();
		}
		deliver_mx_result_clear(&res);
		assert_null(res.targets);
	}
}

static void test_targets_fields(void **state)
{
	static const unsigned char data[32] = {1, 2, 3};
	struct net_tls_tlsa tlsa = {.usage = 3, .selector = 1, .mtype = 1, .data = data, .len = 32};
	struct deliver_mx_host hosts[DELIVER_MX_HOSTS_MAX];
	struct deliver_mx_options o = {.ip_pref = CONFIG_IP_IPV6_FIRST, .port = 2525};
	struct deliver_mx_result res;
	size_t n =
	    hosts_parse("a.test 10 mxsec canon=real.test A=192.0.2.1 AAAA=2001:db8::1 AAAAsec "
	                "tlsa:ok;b.test 20 A=192.0.2.2",
	                hosts, &tlsa);

	(void)state;
	memset(&res, 0, sizeof res);
	snprintf(hosts[0].tlsa_base, sizeof hosts[0].tlsa_base, "real.test");
	assert_int_equal(deliver_mx_targets(hosts, n, &o, &res), DELIVER_MX_OK);
	assert_int_equal(res.ntargets, 3);
	/* the secure IPv6 address of a DANE host: DANE */
	assert_int_equal(res.targets[0].addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((const struct sockaddr_in6 *)&res.targets[0].addr)->sin6_port),
	                 2525);
	assert_int_equal(res.targets[0].addrlen, sizeof(struct sockaddr_in6));
	assert_int_equal(res.targets[0].mx_secure, 1);
	assert_int_equal(res.targets[0].addr_secure, 1);
	assert_int_equal(res.targets[0].tlsa_secure, 1);
	assert_int_equal(res.targets[0].ntlsa, 1);
	assert_ptr_equal(res.targets[0].tlsa[0].data, data);
	assert_string_equal(res.targets[0].tlsa_base, "real.test");
	assert_int_equal(res.targets[0].preference, 10);
	/* its insecure IPv4 address: no DANE */
	assert_int_equal(res.targets[1].addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&res.targets[1].addr)->sin_port), 2525);
	assert_int_equal(res.targets[1].addr_secure, 0);
	assert_int_equal(res.targets[1].tlsa_secure, 0);
	assert_int_equal(res.targets[1].ntlsa, 0);
	assert_string_equal(res.targets[1].tlsa_base, "real.test");
	/* an insecure host */
	assert_int_equal(res.targets[2].mx_secure, 0);
	assert_string_equal(res.targets[2].tlsa_base, "b.test");
	assert_int_equal(res.targets[2].preference, 20);
	deliver_mx_result_clear(&res);

	/* port 0 is 25 */
	o.port = 0;
	assert_int_equal(deliver_mx_targets(hosts, n, &o, &res), DELIVER_MX_OK);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&res.targets[2].addr)->sin_port), 25);
	deliver_mx_result_clear(&res);
}

/* A long list of notes is cut, visibly, and the verdict stays whole. */
static void test_text_cut(void **state)
{
	struct deliver_mx_host hosts[DELIVER_MX_HOSTS_MAX];
	struct deliver_mx_options o = {0};
	struct deliver_mx_result res;
	char spec[2048] = "";

	(void)state;
	for (int i = 0; i < DELIVER_MX_HOSTS_MAX; i++) {
		size_t len = strlen(spec);

		snprintf(spec + len, sizeof spec - len,
		         "%sa-rather-long-host-name-number-%02d.example.test %d A:tempfail "
		         "AAAA:tempfail",
		         i ? ";" : "", i, i);
	}
	memset(&res, 0, sizeof res);
	snprintf(res.domain, sizeof res.domain, "example.test");
	assert_int_equal(deliver_mx_targets(hosts, hosts_parse(spec, hosts, NULL), &o, &res),
	                 DELIVER_MX_TEMP);
	assert_string_equal(res.enhanced, "4.4.3");
	{
		const char *verdict = "address lookup failed for the MX hosts of example.test: ";

		assert_true(strncmp(res.text, verdict, strlen(verdict)) == 0);
	}
	assert_int_equal(strlen(res.text), DELIVER_MX_TEXT_MAX - 1);
	assert_string_equal(res.text + DELIVER_MX_TEXT_MAX - 4, "...");
}

/* ---- against the test DNS server ------------------------------------------------------ */

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

struct world {
	struct event_base *base;
	struct net_resolver *r;
	struct deliver_mx *mx;
	struct event *deadline;
	int expired;
};

static void world_expired(evutil_socket_t fd, short what, void *arg)
{
	struct world *w = arg;

	(void)fd;
	(void)what;
	w->expired = 1;
	event_base_loopbreak(w->base);
}

static void world_open(struct world *w)
{
	struct net_resolver_config c = {
	    .server = dns.server,
	    .trust_anchor_file = dns.anchor,
	    .timeout_ms = 10000,
	    .options = testdns_resolver_options,
	};
	char *err = NULL;

	memset(w, 0, sizeof *w);
	w->base = event_base_new();
	assert_non_null(w->base);
	if ((w->r = net_resolver_new(w->base, &c, &err)) == NULL)
		fail_msg("resolver: %s", err);
	w->mx = deliver_mx_new(w->r);
	assert_non_null(w->mx);
	w->deadline = evtimer_new(w->base, world_expired, w);
}

static int world_run(struct world *w, const int *done, int want, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	w->expired = 0;
	evtimer_add(w->deadline, &tv);
	while (*done < want && !w->expired)
		event_base_loop(w->base, EVLOOP_ONCE);
	evtimer_del(w->deadline);
	return *done >= want ? 0 : -1;
}

static void world_close(struct world *w)
{
	deliver_mx_free(&w->mx);
	net_resolver_free(&w->r);
	event_free(w->deadline);
	event_base_free(w->base);
}

/* What a routing callback saw, copied. */
struct seen {
	int calls;
	int *done;
	struct deliver_mx_result res; /* scalars; targets copied below */
	struct deliver_mx_target targets[64];
	struct net_tls_tlsa tlsa[8];
	unsigned char tlsa_data[8][64];
	size_t ntlsa;
	char text[2048];
};

static void seen_cb(void *ctx, const struct deliver_mx_result *res)
{
	struct seen *s = ctx;

	s->calls++;
	(*s->done)++;
	s->res = *res;
	s->res.targets = NULL;
	assert_true(res->ntargets <= 64);
	if (res->ntargets > 0)
		memcpy(s->targets, res->targets, res->ntargets * sizeof *res->targets);
	/* the first DANE target's records */
	for (size_t i = 0; i < res->ntargets && s->ntlsa == 0; i++) {
		for (size_t k = 0; k < res->targets[i].ntlsa && k < 8; k++) {
			s->tlsa[k] = res->targets[i].tlsa[k];
			assert_true(s->tlsa[k].len <= 64);
			memcpy(s->tlsa_data[k], s->tlsa[k].data, s->tlsa[k].len);
			s->tlsa[k].data = s->tlsa_data[k];
			s->ntlsa = k + 1;
		}
	}
	s->text[0] = '\0';
	for (size_t i = 0; i < res->ntargets; i++) {
		char one[400];
		size_t len = strlen(s->text);

		target_text(&res->targets[i], one, sizeof one);
		snprintf(s->text + len, sizeof s->text - len, "%s%s", i ? "|" : "", one);
	}
}

struct route_case {
	const char *domain;
	struct deliver_mx_options o;
	enum deliver_mx_status want;
	const char *enhanced;
	const char *targets; /* exact order; "*" where any order of equal MX is fine */
	const char *text;
	int mx_secure, addr_secure, dane;
	size_t ntlsa;
	const char *tlsa_base;
};

static const char *const local_mx1[] = {"mx1.multi.sluice.test", NULL};
static const char *const local_mx2[] = {"MX2.multi.sluice.test.", NULL};

#define V4F                                                                                        \
	{                                                                                          \
		.ip_pref = CONFIG_IP_IPV4_FIRST                                                    \
	}

/* clang-format off */
static const struct route_case route_cases[] = {
	/* mx3's only address, ::1, is mx1's too: it is tried once */
	{.domain = "multi.sluice.test", .o = V4F,
	 .targets = "mx1.multi.sluice.test 127.0.0.11|mx1.multi.sluice.test ::1|"
		    "mx2.multi.sluice.test 127.0.0.12"},
	{.domain = "Multi.Sluice.Test.", .o = {.ip_pref = CONFIG_IP_IPV6_FIRST},
	 .targets = "mx1.multi.sluice.test ::1|mx1.multi.sluice.test 127.0.0.11|"
		    "mx2.multi.sluice.test 127.0.0.12"},
	{.domain = "multi.sluice.test", .o = {.ip_pref = CONFIG_IP_IPV4_ONLY},
	 .targets = "mx1.multi.sluice.test 127.0.0.11|mx2.multi.sluice.test 127.0.0.12",
	 .text = "mx3.multi.sluice.test: no address"},
	{.domain = "multi.sluice.test", .o = {.ip_pref = CONFIG_IP_IPV6_ONLY},
	 .targets = "mx1.multi.sluice.test ::1"},
	{.domain = "equal.sluice.test", .o = V4F,
	 .targets = "*|*|mxc.equal.sluice.test 127.0.0.23"},
	{.domain = "nomx.sluice.test", .o = V4F,
	 .targets = "nomx.sluice.test 127.0.0.31|nomx.sluice.test ::1"},
	{.domain = "partial.sluice.test", .o = V4F, .targets = "mx.partial.sluice.test 127.0.0.41",
	 .text = "missing.noaddr.sluice.test: no address"},
	{.domain = "cname.sluice.test", .o = V4F, .targets = "alias.cname.sluice.test 127.0.0.51"},
	{.domain = "nullmx.sluice.test", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.10"},
	{.domain = "nx.sluice.test", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2",
	 .text = "nx.sluice.test not found"},
	{.domain = "noaddr.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.4",
	 .text = "no MX host of noaddr.sluice.test has an address"},
	{.domain = "txtonly.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.4",
	 .text = "neither MX records nor an address"},
	{.domain = "numeric.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.4",
	 .text = "MX host 127.0.0.9 is an address"},
	{.domain = "lame.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.3",
	 .text = "mx.servfail.sluice.test: A SERVFAIL"},
	{.domain = "servfail.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.3",
	 .text = "SERVFAIL"},
	{.domain = "dead.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.3"},
	{.domain = "v6only.sluice.test", .o = {.ip_pref = CONFIG_IP_IPV4_ONLY},
	 .want = DELIVER_MX_TEMP, .enhanced = "4.4.4"},
	{.domain = "v6only.sluice.test", .o = V4F, .targets = "mx.v6only.sluice.test ::1"},
	{.domain = "multi.sluice.test", .o = {.local_names = local_mx1}, .want = DELIVER_MX_PERM,
	 .enhanced = "5.4.6"},
	{.domain = "multi.sluice.test", .o = {.local_names = local_mx2},
	 .targets = "mx1.multi.sluice.test 127.0.0.11|mx1.multi.sluice.test ::1"},
	/* DNSSEC and DANE */
	{.domain = "dnssec.sluice.test", .o = {.dane = 1},
	 .targets = "mx.dnssec.sluice.test 127.0.0.61|mx.dnssec.sluice.test ::1",
	 .mx_secure = 1, .addr_secure = 1, .dane = 1, .ntlsa = 2,
	 .tlsa_base = "mx.dnssec.sluice.test"},
	{.domain = "dnssec.sluice.test", .o = {.dane = 1, .port = 2525},
	 .targets = "mx.dnssec.sluice.test 127.0.0.61|mx.dnssec.sluice.test ::1",
	 .mx_secure = 1, .addr_secure = 1, .dane = 1, .ntlsa = 1},
	{.domain = "dnssec.sluice.test", .o = {.dane = 1, .port = 2500, .tlsa_port = 25},
	 .targets = "mx.dnssec.sluice.test 127.0.0.61|mx.dnssec.sluice.test ::1",
	 .mx_secure = 1, .addr_secure = 1, .dane = 1, .ntlsa = 2},
	{.domain = "dnssec.sluice.test", .o = {.dane = 0},
	 .targets = "mx.dnssec.sluice.test 127.0.0.61|mx.dnssec.sluice.test ::1",
	 .mx_secure = 1, .addr_secure = 1},
	{.domain = "notlsa.dnssec.sluice.test", .o = {.dane = 1},
	 .targets = "plain.dnssec.sluice.test 127.0.0.63", .mx_secure = 1, .addr_secure = 1},
	{.domain = "nomx.dnssec.sluice.test", .o = {.dane = 1},
	 .targets = "nomx.dnssec.sluice.test 127.0.0.62", .mx_secure = 1, .addr_secure = 1},
	{.domain = "insecuremx.dnssec.sluice.test", .o = {.dane = 1},
	 .targets = "mx2.multi.sluice.test 127.0.0.12", .mx_secure = 1},
	{.domain = "good.bogus.sluice.test", .o = {.dane = 1}, .want = DELIVER_MX_TEMP,
	 .enhanced = "4.7.5", .text = "_25._tcp.mx.bogus.sluice.test"},
	{.domain = "good.bogus.sluice.test", .o = {.dane = 0},
	 .targets = "mx.bogus.sluice.test 127.0.0.71", .mx_secure = 1, .addr_secure = 1},
	{.domain = "bogus.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP, .enhanced = "4.4.3",
	 .text = "failed DNSSEC validation"},
	{.domain = "badaddr.bogus.sluice.test", .o = V4F, .want = DELIVER_MX_TEMP,
	 .enhanced = "4.4.3", .text = "A validation failure"},
	/* not resolved */
	{.domain = "[127.0.0.1]", .o = V4F, .targets = "[127.0.0.1] 127.0.0.1"},
	{.domain = "[IPv6:::1]", .o = V4F, .targets = "[IPv6:::1] ::1"},
	{.domain = "[ipv6:::1]", .o = {.ip_pref = CONFIG_IP_IPV4_ONLY}, .want = DELIVER_MX_TEMP,
	 .enhanced = "4.4.4"},
	{.domain = "[mx.sluice.test]", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2"},
	{.domain = "[IPv6:127.0.0.1]", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2"},
	{.domain = "[]", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2"},
	{.domain = "bad domain.test", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2",
	 .text = "not a valid domain name"},
	{.domain = ".", .o = V4F, .want = DELIVER_MX_PERM, .enhanced = "5.1.2"},
};
/* clang-format on */

#define ROUTE_N (sizeof route_cases / sizeof route_cases[0])

static int targets_match(const char *got, const char *want)
{
	char g[2048], w[2048], *gs = NULL, *ws = NULL, *gt, *wt;

	snprintf(g, sizeof g, "%s", got);
	snprintf(w, sizeof w, "%s", want);
	gt = strtok_r(g, "|", &gs);
	wt = strtok_r(w, "|", &ws);
	while (gt != NULL && wt != NULL) {
		if (strcmp(wt, "*") != 0 && strcmp(gt, wt) != 0)
			return 0;
		gt = strtok_r(NULL, "|", &gs);
		wt = strtok_r(NULL, "|", &ws);
	}
	return gt == NULL && wt == NULL;
}

/* Every case in flight at once. */
static void test_route_table(void **state)
{
	static struct seen seen[ROUTE_N];
	struct world w;
	int done = 0;

	(void)state;
	world_open(&w);
	for (size_t i = 0; i < ROUTE_N; i++) {
		uint64_t id = 0;

		memset(&seen[i], 0, sizeof seen[i]);
		seen[i].done = &done;
		assert_int_equal(deliver_mx_resolve(w.mx, route_cases[i].domain, &route_cases[i].o,
		                                    seen_cb, &seen[i], &id),
		                 0);
		assert_true(id > 0);
	}
	assert_int_equal(done, 0); /* never from inside the call */
	assert_int_equal(world_run(&w, &done, (int)ROUTE_N, 30000), 0);

	for (size_t i = 0; i < ROUTE_N; i++) {
		const struct route_case *c = &route_cases[i];
		const struct seen *s = &seen[i];
		int ok = s->calls == 1 && s->res.status == c->want;

		if (ok && c->enhanced)
			ok = strcmp(s->res.enhanced, c->enhanced) == 0;
		if (ok && c->want == DELIVER_MX_OK)
			ok = s->res.enhanced[0] == '\0';
		if (ok && c->targets)
			ok = targets_match(s->text, c->targets);
		if (ok && c->text)
			ok = strstr(s->res.text, c->text) != NULL;
		if (ok && c->want != DELIVER_MX_OK)
			ok = s->res.ntargets == 0;
		for (size_t k = 0; ok && k < s->res.ntargets; k++) {
			const struct deliver_mx_target *t = &s->targets[k];

			ok = t->mx_secure == c->mx_secure && t->addr_secure == c->addr_secure &&
			     t->tlsa_secure == c->dane && t->ntlsa == c->ntlsa;
			if (ok && c->tlsa_base)
				ok = strcmp(t->tlsa_base, c->tlsa_base) == 0;
		}
		if (!ok) {
			print_error("%s: calls=%d status=%d enhanced=\"%s\" targets=\"%s\" "
			            "text=\"%s\" secure=%d/%d dane=%d ntlsa=%zu\n",
			            c->domain, s->calls, (int)s->res.status, s->res.enhanced,
			            s->text, s->res.text,
			            s->res.ntargets ? s->targets[0].mx_secure : -1,
			            s->res.ntargets ? s->targets[0].addr_secure : -1,
			            s->res.ntargets ? s->targets[0].tlsa_secure : -1,
			            s->res.ntargets ? s->targets[0].ntlsa : 0);
			fail();
		}
	}
	/* the implicit MX and the domain literal are marked, the port is 25 */
	for (size_t i = 0; i < ROUTE_N; i++) {
		if (strcmp(route_cases[i].domain, "nomx.sluice.test") == 0) {
			assert_int_equal(seen[i].targets[0].implicit, 1);
			assert_int_equal(seen[i].targets[0].preference, 0);
			assert_int_equal(
			    ntohs(((const struct sockaddr_in *)&seen[i].targets[0].addr)->sin_port),
			    25);
		}
		if (strcmp(route_cases[i].domain, "multi.sluice.test") == 0 && seen[i].res.ntargets)
			assert_int_equal(seen[i].targets[0].implicit, 0);
		if (strcmp(route_cases[i].domain, "cname.sluice.test") == 0)
			assert_string_equal(seen[i].targets[0].tlsa_base, "real.cname.sluice.test");
		if (strcmp(route_cases[i].domain, "Multi.Sluice.Test.") == 0)
			assert_string_equal(seen[i].res.domain, "multi.sluice.test");
		if (route_cases[i].o.port == 2525 && route_cases[i].o.dane) {
			assert_int_equal(
			    ntohs(((const struct sockaddr_in *)&seen[i].targets[0].addr)->sin_port),
			    2525);
			assert_int_equal(seen[i].tlsa[0].usage, 3);
		}
	}
	world_close(&w);
}

/* The DANE records themselves: the test's certificate hash and the fixed
 * 00..1f record. */
static void test_route_tlsa_records(void **state)
{
	struct deliver_mx_options o = {.dane = 1};
	struct seen s;
	struct world w;
	int done = 0, found311 = 0, found201 = 0;

	(void)state;
	world_open(&w);
	memset(&s, 0, sizeof s);
	s.done = &done;
	assert_int_equal(deliver_mx_resolve(w.mx, "dnssec.sluice.test", &o, seen_cb, &s, NULL), 0);
	assert_int_equal(world_run(&w, &done, 1, 10000), 0);
	assert_int_equal(s.ntlsa, 2);
	for (size_t k = 0; k < s.ntlsa; k++) {
		char hex[65] = "";

		assert_int_equal(s.tlsa[k].len, 32);
		for (size_t b = 0; b < 32; b++)
			snprintf(hex + 2 * b, 3, "%02x", s.tlsa[k].data[b]);
		if (s.tlsa[k].usage == 3 && s.tlsa[k].selector == 1 && s.tlsa[k].mtype == 1 &&
		    strcmp(hex, dns.tlsa311) == 0)
			found311++;
		if (s.tlsa[k].usage == 2 && s.tlsa[k].selector == 0 && s.tlsa[k].mtype == 1 &&
		    s.tlsa[k].data[0] == 0 && s.tlsa[k].data[31] == 31)
			found201++;
	}
	assert_int_equal(found311, 1);
	assert_int_equal(found201, 1);
	world_close(&w);
}

/* RFC 5321 5.1 end to end: both orders of the two equal MX, within a
 * bounded number of lookups (the answers come from the cache). */
static void test_route_shuffles(void **state)
{
	struct deliver_mx_options o = V4F;
	struct world w;
	int seen_ab = 0, seen_ba = 0, done = 0, n;

	(void)state;
	world_open(&w);
	for (n = 0; n < DRAWS_MAX && !(seen_ab && seen_ba); n++) {
		struct seen s;

		memset(&s, 0, sizeof s);
		s.done = &done;
		assert_int_equal(
		    deliver_mx_resolve(w.mx, "equal.sluice.test", &o, seen_cb, &s, NULL), 0);
		assert_int_equal(world_run(&w, &done, n + 1, 10000), 0);
		assert_int_equal(s.res.ntargets, 3);
		assert_string_equal(s.targets[2].host, "mxc.equal.sluice.test");
		if (strcmp(s.targets[0].host, "mxa.equal.sluice.test") == 0)
			seen_ab = 1;
		else
			seen_ba = 1;
	}
	assert_true(seen_ab && seen_ba);
	world_close(&w);
}

struct tlsa_seen {
	int calls;
	int *done;
	enum deliver_tlsa_status status;
	char base[NET_DNS_NAME_MAX];
	char text[DELIVER_MX_TEXT_MAX];
	size_t ntlsa;
	uint8_t usage0;
};

static void tlsa_cb(void *ctx, const struct deliver_tlsa_result *res)
{
	struct tlsa_seen *s = ctx;

	s->calls++;
	(*s->done)++;
	s->status = res->status;
	snprintf(s->base, sizeof s->base, "%s", res->base);
	snprintf(s->text, sizeof s->text, "%s", res->text);
	s->ntlsa = res->ntlsa;
	s->usage0 = res->ntlsa ? res->tlsa[0].usage : 255;
}

struct tlsa_case {
	const char *host, *canon;
	int secure;
	uint16_t port;
	enum deliver_tlsa_status want;
	size_t ntlsa;
	const char *base;
};

/* clang-format off */
static const struct tlsa_case tlsa_cases[] = {
	{.host = "mx.dnssec.sluice.test", .secure = 1, .want = DELIVER_TLSA_OK, .ntlsa = 2,
	 .base = "mx.dnssec.sluice.test"},
	{.host = "mx.dnssec.sluice.test", .secure = 1, .port = 2525, .want = DELIVER_TLSA_OK,
	 .ntlsa = 1},
	{.host = "mx.dnssec.sluice.test", .secure = 1, .port = 587, .want = DELIVER_TLSA_NONE},
	{.host = "mx.dnssec.sluice.test", .secure = 0, .want = DELIVER_TLSA_NONE},
	{.host = "plain.dnssec.sluice.test", .secure = 1, .want = DELIVER_TLSA_NONE},
	{.host = "mx.bogus.sluice.test", .secure = 1, .want = DELIVER_TLSA_TEMP},
	{.host = "mx1.multi.sluice.test", .secure = 1, .want = DELIVER_TLSA_NONE},
	{.host = "mx.servfail.sluice.test", .secure = 1, .want = DELIVER_TLSA_TEMP},
	/* RFC 7672 2.2.2: the CNAME target first ... */
	{.host = "alias.example.test", .canon = "MX.dnssec.sluice.test.", .secure = 1,
	 .want = DELIVER_TLSA_OK, .ntlsa = 2, .base = "mx.dnssec.sluice.test"},
	/* ... then the name itself */
	{.host = "mx.dnssec.sluice.test", .canon = "plain.dnssec.sluice.test", .secure = 1,
	 .want = DELIVER_TLSA_OK, .ntlsa = 2, .base = "mx.dnssec.sluice.test"},
	{.host = "mx.dnssec.sluice.test", .canon = "mx.dnssec.sluice.test", .secure = 1,
	 .want = DELIVER_TLSA_OK, .ntlsa = 2},
};
/* clang-format on */

static void test_tlsa_helper(void **state)
{
	struct tlsa_seen s[sizeof tlsa_cases / sizeof tlsa_cases[0]];
	size_t n = sizeof tlsa_cases / sizeof tlsa_cases[0];
	struct world w;
	int done = 0;

	(void)state;
	world_open(&w);
	memset(s, 0, sizeof s);
	for (size_t i = 0; i < n; i++) {
		s[i].done = &done;
		assert_int_equal(deliver_tlsa_resolve(w.mx, tlsa_cases[i].host, tlsa_cases[i].canon,
		                                      tlsa_cases[i].secure, tlsa_cases[i].port,
		                                      tlsa_cb, &s[i], NULL),
		                 0);
	}
	assert_int_equal(done, 0);
	assert_int_equal(world_run(&w, &done, (int)n, 20000), 0);
	for (size_t i = 0; i < n; i++) {
		const struct tlsa_case *c = &tlsa_cases[i];

		if (s[i].calls != 1 || s[i].status != c->want || s[i].ntlsa != c->ntlsa ||
		    (c->base && strcmp(s[i].base, c->base) != 0)) {
			print_error("%s (canon %s, port %u): calls=%d status=%d ntlsa=%zu base=%s "
			            "text=\"%s\"\n",
			            c->host, c->canon ? c->canon : "-", c->port, s[i].calls,
			            (int)s[i].status, s[i].ntlsa, s[i].base, s[i].text);
			fail();
		}
	}
	assert_int_equal(deliver_tlsa_resolve(w.mx, "bad name", NULL, 1, 25, tlsa_cb, &s[0], NULL),
	                 -1);
	world_close(&w);
}

static void never_cb(void *ctx, const struct deliver_mx_result *res)
{
	(void)ctx;
	(void)res;
	fail_msg("callback must not run");
}

static void never_tlsa_cb(void *ctx, const struct deliver_tlsa_result *res)
{
	(void)ctx;
	(void)res;
	fail_msg("callback must not run");
}

static void test_cancel(void **state)
{
	struct deliver_mx_options o = {.dane = 1};
	struct world w;
	struct seen s;
	uint64_t a, b, c, d;
	int done = 0, never = 0;

	(void)state;
	world_open(&w);
	memset(&s, 0, sizeof s);
	s.done = &done;
	assert_int_equal(deliver_mx_resolve(w.mx, "dnssec.sluice.test", &o, never_cb, NULL, &a), 0);
	assert_int_equal(deliver_mx_resolve(w.mx, "[127.0.0.1]", &o, never_cb, NULL, &b), 0);
	assert_int_equal(deliver_tlsa_resolve(w.mx, "mx.dnssec.sluice.test", NULL, 1, 25,
	                                      never_tlsa_cb, NULL, &c),
	                 0);
	assert_int_equal(deliver_mx_resolve(w.mx, "multi.sluice.test", &o, seen_cb, &s, &d), 0);
	assert_int_equal(deliver_mx_cancel(w.mx, a), 0);
	assert_int_equal(deliver_mx_cancel(w.mx, b), 0);
	assert_int_equal(deliver_mx_cancel(w.mx, c), 0);
	assert_int_equal(deliver_mx_cancel(w.mx, a), -1);
	assert_int_equal(world_run(&w, &done, 1, 10000), 0);
	assert_int_equal(deliver_mx_cancel(w.mx, d), -1); /* ended */
	assert_int_equal(net_resolver_pending(w.r), 0);   /* the cancelled queries too */
	world_run(&w, &never, 1, 200);
	world_close(&w);
}

/* Freeing everything from a callback, and with lookups pending. */
struct free_ctx {
	struct world *w;
	int *done;
};

static void free_cb(void *ctx, const struct deliver_mx_result *res)
{
	struct free_ctx *f = ctx;

	(void)res;
	(*f->done)++;
	deliver_mx_free(&f->w->mx);
}

static void test_free_everything(void **state)
{
	struct deliver_mx_options o = {.dane = 1};
	struct world w;
	struct free_ctx f;
	int done = 0, never = 0;

	(void)state;
	world_open(&w);
	f.w = &w;
	f.done = &done;
	assert_int_equal(deliver_mx_resolve(w.mx, "[127.0.0.1]", &o, free_cb, &f, NULL), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    deliver_mx_resolve(w.mx, "dnssec.sluice.test", &o, never_cb, NULL, NULL), 0);
	assert_int_equal(world_run(&w, &done, 1, 10000), 0);
	assert_null(w.mx);
	assert_int_equal(net_resolver_pending(w.r), 0);
	world_run(&w, &never, 1, 200);

	w.mx = deliver_mx_new(w.r);
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    deliver_mx_resolve(w.mx, "multi.sluice.test", &o, never_cb, NULL, NULL), 0);
	deliver_mx_free(&w.mx);
	assert_int_equal(net_resolver_pending(w.r), 0);
	world_run(&w, &never, 1, 200);
	world_close(&w);
}

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_sort_table),     cmocka_unit_test(test_sort_shuffles),
	    cmocka_unit_test(test_hosts_table),    cmocka_unit_test(test_targets_table),
	    cmocka_unit_test(test_targets_fields), cmocka_unit_test(test_text_cut),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_route_table),    cmocka_unit_test(test_route_tlsa_records),
	    cmocka_unit_test(test_route_shuffles), cmocka_unit_test(test_tlsa_helper),
	    cmocka_unit_test(test_cancel),         cmocka_unit_test(test_free_everything),
	};
	int failed = cmocka_run_group_tests_name("mx (no network)", pure, NULL, NULL);

	failed +=
	    cmocka_run_group_tests_name("mx (test DNS server)", live, dns_setup, dns_teardown);
	return failed;
}
