/* Unit tests for the egress module's pure parts: addresses and networks,
 * the rendered table, the kernel's JSON read back, tenants of sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress/egress.h"
#include "util/config.h"

/* ---- cidr ------------------------------------------------------------------- */

static void test_cidr_parse(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
	    {.in = "198.18.1.0/24", .out = "198.18.1.0/24"},
	    {.in = "198.18.1.7", .out = "198.18.1.7/32"},
	    {.in = "2001:DB8:0:0::/32", .out = "2001:db8::/32"},
	    {.in = "2001:db8::1", .out = "2001:db8::1/128"},
	    {.in = "10.0.0.0/8", .out = "10.0.0.0/8"},
	    {.in = "10.0.0.1/8"}, /* host bits */
	    {.in = "10.0.0.0/0"}, /* everything */
	    {.in = "0.0.0.0/0"},
	    {.in = "10.0.0.0/33"},
	    {.in = "10.0.0.0/08"}, /* leading zero */
	    {.in = "10.0.0.0/"},
	    {.in = "/8"},
	    {.in = ""},
	    {.in = "::ffff:10.0.0.1"}, /* v4-mapped */
	    {.in = "example.org"},
	    {.in = "10.0.0.0/8 "},
	    {.in = "1.2.3.4/+8"},
	    {.in = "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee/128"},
	};
	char out[EGRESS_CIDR_MAX], err[256];
	struct egress_cidr c;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = egress_cidr_parse(cases[i].in, &c, err, sizeof err);
		if (cases[i].out == NULL) {
			if (rc != -1)
				fail_msg("'%s' accepted", cases[i].in);
			assert_non_null(strstr(err, "'"));
			continue;
		}
		if (rc != 0)
			fail_msg("'%s' refused: %s", cases[i].in, err);
		assert_int_equal(egress_cidr_format(&c, out), 0);
		assert_string_equal(out, cases[i].out);
	}
}

static void test_cidr_contains(void **state)
{
	struct egress_cidr net, a, b, v6;
	char err[256];

	(void)state;
	assert_int_equal(egress_cidr_parse("198.18.1.0/24", &net, err, sizeof err), 0);
	assert_int_equal(egress_cidr_parse("198.18.1.200", &a, err, sizeof err), 0);
	assert_int_equal(egress_cidr_parse("198.18.2.1", &b, err, sizeof err), 0);
	assert_int_equal(egress_cidr_parse("2001:db8::/32", &v6, err, sizeof err), 0);
	assert_true(egress_cidr_contains(&net, &a));
	assert_false(egress_cidr_contains(&net, &b));
	assert_false(egress_cidr_contains(&a, &net));
	assert_true(egress_cidr_overlap(&a, &net));
	assert_false(egress_cidr_overlap(&b, &net));
	assert_false(egress_cidr_overlap(&v6, &net));
	assert_int_equal(egress_cidr_parse("198.18.1.128/25", &b, err, sizeof err), 0);
	assert_true(egress_cidr_contains(&net, &b));
	assert_true(egress_cidr_contains(&b, &a));
	assert_int_equal(egress_cidr_parse("198.18.1.0/25", &b, err, sizeof err), 0);
	assert_false(egress_cidr_contains(&b, &a));
}

/* ---- render --------------------------------------------------------------------- */

static const char *const customers[] = {"198.18.1.0/24", "2001:db8:1::/48"};
static const char *const relays[] = {"198.18.2.10"};
static const char *const privates[] = {"10.0.0.0/8"};

static char *render(const struct egress_model *m, char **warn_r, int want_rc)
{
	struct buf out = BUF_INIT;
	char *err = NULL, *warn = NULL;
	int rc = egress_render(m, &out, &warn, &err);

	if (rc != want_rc)
		fail_msg("render rc %d: %s", rc, err ? err : "");
	if (warn_r != NULL)
		*warn_r = warn;
	else
		free(warn);
	if (rc < 0) {
		buf_free(&out);
		return err;
	}
	free(err);
	return buf_export(&out, NULL);
}

static void test_render_table(void **state)
{
	const struct egress_exception xs[] = {
	    {.id = 1, .tenant = "acme", .cidr = "198.18.1.7/32", .expires = 1000 + 30},
	    {.id = 2, .tenant = "acme", .cidr = "198.18.1.9/32", .expires = 1000}, /* expired */
	    {.id = 3, .tenant = "beta", .cidr = "2001:db8:1::/64", .expires = 0},
	    {.id = 4, .tenant = "beta", .cidr = "198.18.1.0/28", .expires = 0}, /* overlaps 1 */
	};
	const struct egress_source carry[] = {
	    {.addr = "198.18.1.5", .family = 4, .packets = 3, .bytes = 180},
	    {.addr = "2001:db8:1::5", .family = 6, .packets = 1, .bytes = 80},
	    {.addr = "bogus", .family = 4, .packets = 1},
	};
	struct egress_model m = {
	    .customers = customers,
	    .ncustomers = 2,
	    .relays = relays,
	    .nrelays = 1,
	    .privates = privates,
	    .nprivates = 1,
	    .exceptions = xs,
	    .nexceptions = 4,
	    .carry = carry,
	    .ncarry = 3,
	    .log_rate = 10,
	    .blocked_timeout = 86400,
	    .now = 1000,
	};
	char *warn = NULL, *t = render(&m, &warn, 0), *again;

	(void)state;
	/* one transaction that replaces only our table */
	assert_memory_equal(t,
	                    "add table inet sluice\ndelete table inet sluice\n"
	                    "table inet sluice {\n",
	                    63);
	assert_non_null(strstr(t, "\tset customers4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
	                          "\t\tauto-merge\n\t\telements = { 198.18.1.0/24 }\n\t}\n"));
	assert_non_null(strstr(t, "elements = { 2001:db8:1::/48 }"));
	assert_non_null(strstr(t, "elements = { 198.18.2.10/32 }"));
	assert_non_null(strstr(t, "elements = { 10.0.0.0/8 }"));
	/* time left to the stored expiry; never-expiring without a timeout */
	assert_non_null(strstr(t, "elements = { 198.18.1.7/32 timeout 30s comment "
	                          "\"exception 1 tenant acme\" }"));
	assert_non_null(strstr(t, "elements = { 2001:db8:1::/64 comment "
	                          "\"exception 3 tenant beta\" }"));
	assert_null(strstr(t, "198.18.1.9"));   /* expired: left out */
	assert_null(strstr(t, "exception 4 ")); /* overlapping: left out, said */
	assert_non_null(warn);
	assert_non_null(
	    strstr(warn, "exception 4 (198.18.1.0/28) left out: it overlaps exception 1"));
	/* counts carried over; the bad one dropped */
	assert_non_null(strstr(t, "elements = { 198.18.1.5 counter packets 3 bytes 180 }"));
	assert_non_null(strstr(t, "elements = { 2001:db8:1::5 counter packets 1 bytes 80 }"));
	assert_null(strstr(t, "bogus"));
	assert_non_null(strstr(t, "\t\ttimeout 86400s\n\t\tcounter\n"));
	/* the rules: allow before counting, count SYNs, reset */
	const char *allow = strstr(t, "ip saddr @exceptions4 accept");
	const char *count = strstr(t, "update @blocked4 { ip saddr }");
	const char *reject = strstr(t, "counter reject with tcp reset");
	assert_non_null(allow);
	assert_non_null(count);
	assert_non_null(reject);
	assert_true(strstr(t, "ip daddr @relays4 accept") < allow && allow < count &&
	            count < reject);
	assert_non_null(strstr(t, "ip saddr @customers4 tcp dport 25 jump port25"));
	assert_non_null(strstr(t, "ip6 saddr @customers6 tcp dport 25 jump port25"));
	assert_non_null(strstr(t, "limit rate 10/minute burst 5 packets log prefix "
	                          "\"sluice egress blocked: \" level info"));
	/* pure: the same model, the same bytes */
	again = render(&m, NULL, 0);
	assert_string_equal(t, again);
	free(again);
	free(warn);
	free(t);

	/* a row edited by hand cannot put nft syntax into the comment */
	const struct egress_exception evil[] = {
	    {.id = 9, .tenant = "x\" ; flush ruleset ; \"", .cidr = "198.18.1.7/32"},
	};
	m.exceptions = evil;
	m.nexceptions = 1;
	t = render(&m, NULL, 0);
	assert_non_null(strstr(t, "198.18.1.7/32 comment \"exception 9 tenant ?\""));
	assert_null(strstr(t, "flush"));
	free(t);

	/* egress_log = nflog:5: the same rate, to nfnetlink_log group 5 */
	m.log_nflog = 1;
	m.log_group = 5;
	t = render(&m, NULL, 0);
	assert_non_null(strstr(t, "\t\ttcp flags & (syn | ack) == syn limit rate 10/minute burst 5 "
	                          "packets log group 5 prefix \"sluice egress blocked: \"\n"));
	assert_null(strstr(t, "level info"));
	free(t);
	m.log_nflog = 0;

	m.log_rate = 0;
	m.nexceptions = 0;
	m.ncarry = 0;
	t = render(&m, &warn, 0);
	assert_null(warn);
	assert_null(strstr(t, " log "));
	assert_non_null(strstr(t, "\tset exceptions4 {\n\t\ttype ipv4_addr\n"
	                          "\t\tflags interval,timeout\n\t}\n"));
	free(t);
}

static void test_render_errors(void **state)
{
	static const char *const bad[] = {"198.18.1.0/24", "198.18.1.1/24"};
	struct egress_model m = {.customers = bad, .ncustomers = 2, .now = 1};
	char *err;

	(void)state;
	err = render(&m, NULL, -1);
	assert_non_null(strstr(err, "egress_customer_networks: '198.18.1.1/24' has host bits set"));
	free(err);
	m.ncustomers = 0;
	err = render(&m, NULL, -1);
	assert_non_null(strstr(err, "egress_customer_networks is not set"));
	free(err);
	m.customers = customers;
	m.ncustomers = 1;
	m.relays = bad + 1;
	m.nrelays = 1;
	err = render(&m, NULL, -1);
	assert_non_null(strstr(err, "egress_relay_addresses: "));
	free(err);
}

/* ---- status ------------------------------------------------------------------------ */

/* What nft 1.0.6 prints for a loaded table (trimmed to what matters). */
static const char status_json[] =
    "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\", \"json_schema_version\": 1}},"
    " {\"table\": {\"family\": \"inet\", \"name\": \"sluice\", \"handle\": 3}},"
    " {\"set\": {\"family\": \"inet\", \"name\": \"customers4\", \"table\": \"sluice\","
    "  \"type\": \"ipv4_addr\", \"flags\": [\"interval\"],"
    "  \"elem\": [{\"prefix\": {\"addr\": \"198.18.1.0\", \"len\": 24}},"
    "            {\"range\": [\"198.18.3.1\", \"198.18.3.9\"]}]}},"
    " {\"set\": {\"family\": \"inet\", \"name\": \"relays4\", \"table\": \"sluice\","
    "  \"type\": \"ipv4_addr\", \"elem\": [\"198.18.2.10\"]}},"
    " {\"set\": {\"family\": \"inet\", \"name\": \"exceptions4\", \"table\": \"sluice\","
    "  \"type\": \"ipv4_addr\", \"flags\": [\"interval\", \"timeout\"],"
    "  \"elem\": [{\"elem\": {\"val\": \"198.18.1.7\", \"timeout\": 30, \"expires\": 29,"
    "             \"comment\": \"exception 1 tenant acme\"}},"
    "            {\"elem\": {\"val\": {\"prefix\": {\"addr\": \"198.18.1.64\", \"len\": 26}},"
    "             \"comment\": \"exception 2 tenant beta\"}}]}},"
    " {\"set\": {\"family\": \"inet\", \"name\": \"blocked4\", \"table\": \"sluice\","
    "  \"type\": \"ipv4_addr\", \"size\": 65536, \"flags\": [\"timeout\"], \"timeout\": 604800,"
    "  \"elem\": [{\"elem\": {\"val\": \"198.18.1.5\", \"expires\": 604799,"
    "              \"counter\": {\"packets\": 3, \"bytes\": 180}}},"
    "            {\"elem\": {\"val\": \"198.18.9.9\", \"expires\": 100,"
    "              \"counter\": {\"packets\": 7, \"bytes\": 420}}}],"
    "  \"stmt\": [{\"counter\": null}]}},"
    " {\"set\": {\"family\": \"inet\", \"name\": \"blocked6\", \"table\": \"sluice\","
    "  \"type\": \"ipv6_addr\", \"elem\": [{\"elem\": {\"val\": \"2001:db8:1::5\","
    "              \"counter\": {\"packets\": 3, \"bytes\": 240}}}]}},"
    " {\"rule\": {\"family\": \"inet\", \"table\": \"sluice\", \"chain\": \"port25\","
    "  \"expr\": [{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"l4proto\"}},"
    "  \"right\": \"tcp\"}}, {\"counter\": {\"packets\": 14, \"bytes\": 840}},"
    "  {\"reject\": {\"type\": \"tcp reset\"}}]}}]}";

static void test_status_parse(void **state)
{
	struct egress_status st;
	char *err = NULL;

	(void)state;
	assert_int_equal(egress_status_parse(status_json, strlen(status_json), 5000, &st, &err), 0);
	assert_true(st.present);
	assert_int_equal(st.rejected_packets, 14);
	assert_int_equal(st.rejected_bytes, 840);
	assert_int_equal(st.ncustomers, 2);
	assert_int_equal(st.nrelays, 1);
	assert_int_equal(st.nexceptions, 2);
	assert_string_equal(st.exceptions[0].cidr, "198.18.1.7/32");
	assert_string_equal(st.exceptions[0].tenant, "acme");
	assert_int_equal(st.exceptions[0].id, 1);
	assert_int_equal(st.exceptions[0].expires, 5029);
	assert_string_equal(st.exceptions[1].cidr, "198.18.1.64/26");
	assert_int_equal(st.exceptions[1].expires, 0);
	/* most attempts first, ties by family then address */
	assert_int_equal(st.nblocked, 3);
	assert_string_equal(st.blocked[0].addr, "198.18.9.9");
	assert_int_equal(st.blocked[0].packets, 7);
	assert_string_equal(st.blocked[1].addr, "198.18.1.5");
	assert_int_equal(st.blocked[1].expires_s, 604799);
	assert_string_equal(st.blocked[2].addr, "2001:db8:1::5");
	assert_int_equal(st.blocked[2].family, 6);

	const struct egress_owner owners[] = {
	    {.tenant_id = 1, .tenant = "acme", .cidr = "198.18.1.0/24"},
	    {.tenant_id = 2, .tenant = "beta", .cidr = "198.18.1.5/32"}, /* the longest wins */
	    {.tenant_id = 3, .tenant = "gamma", .cidr = "2001:db8::/32"},
	    {.tenant_id = 4, .tenant = "bad", .cidr = "nonsense"},
	};
	struct egress_tenant_count *counts = NULL;
	size_t n = 0;

	egress_sources_name(st.blocked, st.nblocked, owners, 4);
	assert_int_equal(st.blocked[0].tenant_id, 0);
	assert_string_equal(st.blocked[1].tenant, "beta");
	assert_string_equal(st.blocked[2].tenant, "gamma");
	assert_int_equal(egress_tenant_counts(st.blocked, st.nblocked, &counts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(counts[0].tenant_id, 2);
	assert_int_equal(counts[0].attempts, 3);
	assert_int_equal(counts[1].tenant_id, 3);
	assert_int_equal(counts[1].sources, 1);
	free(counts);
	egress_status_free(&st);
	assert_null(st.blocked);
}

static void test_status_bad_json(void **state)
{
	static const char *const bad[] = {
	    "", "{", "[]", "{\"nftables\": 5}", "{\"nftables\": [1, 2]} x", "{\"a\": 1, \"a\": 2}",
	};
	static const char *const odd[] = {
	    /* well-formed but odd: ignored, not fatal */
	    "{\"nftables\": [{\"set\": {\"name\": \"blocked4\", \"elem\": [5, null, {},"
	    " {\"elem\": {\"val\": \"10.0.0.0/8\"}}, {\"elem\": {\"val\": \"300.1.1.1\"}},"
	    " {\"elem\": {\"val\": {\"prefix\": {\"addr\": \"10.0.0.0\", \"len\": -1}}}}]}},"
	    " {\"set\": {\"name\": 7}}, {\"rule\": {\"chain\": \"port25\", \"expr\": 1}},"
	    " {\"table\": {\"name\": \"other\"}}]}",
	};
	struct egress_status st;
	char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(egress_status_parse(bad[i], strlen(bad[i]), 0, &st, &err), -1);
		assert_non_null(err);
		free(err);
		err = NULL;
	}
	assert_int_equal(egress_status_parse(odd[0], strlen(odd[0]), 0, &st, &err), 0);
	assert_false(st.present);
	assert_int_equal(st.nblocked, 0);
	egress_status_free(&st);
	/* too large: refused unread */
	assert_int_equal(
	    egress_status_parse(status_json, (size_t)EGRESS_JSON_MAX + 1, 0, &st, &err), -1);
	assert_non_null(strstr(err, "larger than"));
	free(err);
}

/* ---- configuration -------------------------------------------------------------- */

static int load(const char *text, struct sluice_config *cfg, char **err_r)
{
	char path[] = "/tmp/sluice-test-egress-conf-XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("store = sqlite:/tmp/x.db\nspool_dir = /tmp/spool\n", f);
	fputs(text, f);
	fclose(f);
	config_defaults(cfg);
	*err_r = NULL;
	rc = config_load(path, cfg, err_r);
	unlink(path);
	return rc;
}

static void test_config_keys(void **state)
{
	struct sluice_config cfg;
	char *err = NULL;

	(void)state;
	assert_int_equal(load("", &cfg, &err), 0);
	assert_int_equal(cfg.egress.ncustomers, 0);
	assert_int_equal(cfg.egress.log_rate, 10);
	assert_int_equal(cfg.egress.blocked_timeout, 7 * 86400);
	assert_false(cfg.egress.apply_on_change);
	assert_false(cfg.egress.log_nflog);
	config_free(&cfg);
	assert_int_equal(load("egress_log = nflog:7\n", &cfg, &err), 0);
	assert_true(cfg.egress.log_nflog);
	assert_int_equal(cfg.egress.log_group, 7);
	config_free(&cfg);
	assert_int_equal(load("egress_log = nflog:7\negress_log = syslog\n", &cfg, &err), 0);
	assert_false(cfg.egress.log_nflog);
	config_free(&cfg);

	assert_int_equal(load("egress_customer_networks = 198.18.1.0/24, 2001:db8::/32\n"
	                      "egress_customer_networks = 198.18.3.0/24\n"
	                      "egress_relay_addresses = 198.18.2.10\n"
	                      "egress_private_networks = 10.0.0.0/8 192.168.0.0/16\n"
	                      "egress_log_rate = 0\n"
	                      "egress_blocked_timeout = 12h\n"
	                      "egress_apply = on\n",
	                      &cfg, &err),
	                 0);
	assert_int_equal(cfg.egress.ncustomers, 3);
	assert_string_equal(cfg.egress.customers[1], "2001:db8::/32");
	assert_string_equal(cfg.egress.customers[2], "198.18.3.0/24");
	assert_int_equal(cfg.egress.nrelays, 1);
	assert_int_equal(cfg.egress.nprivates, 2);
	assert_int_equal(cfg.egress.log_rate, 0);
	assert_int_equal(cfg.egress.blocked_timeout, 43200);
	assert_true(cfg.egress.apply_on_change);
	config_free(&cfg);

	static const char *const bad[] = {
	    "egress_customer_networks = example.org\n",
	    "egress_relay_addresses = 198.18.2.10;flush\n",
	    "egress_log_rate = lots\n",
	    "egress_log_rate = 1000000\n",
	    "egress_blocked_timeout = 0\n",
	    "egress_blocked_timeout = 400d\n",
	    "egress_apply = maybe\n",
	    "egress_log = nflog:\n",
	    "egress_log = nflog:65536\n",
	    "egress_log = nflog:-1\n",
	    "egress_log = kmsg\n",
	    "egress_nosuch = 1\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (load(bad[i], &cfg, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err, ":3: egress_"));
		free(err);
		config_free(&cfg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_parse),   cmocka_unit_test(test_cidr_contains),
	    cmocka_unit_test(test_render_table), cmocka_unit_test(test_render_errors),
	    cmocka_unit_test(test_status_parse), cmocka_unit_test(test_status_bad_json),
	    cmocka_unit_test(test_config_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
