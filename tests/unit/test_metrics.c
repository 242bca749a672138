/* metrics: the exposition writer (util/metrics.c) and sluiced's metric set
 * (cmd/metrics.c): names, escaping, values, counts from many threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmd/metrics.h"
#include "util/metrics.h"

static void test_names(void **state)
{
	static const struct {
		const char *name;
		int metric, label;
	} cases[] = {
	    {"sluice_smtp_sessions_total", 1, 1},
	    {"_x", 1, 1},
	    {"a:b", 1, 0}, /* colons: metric names only */
	    {":a", 1, 0},
	    {"__reserved", 1, 0}, /* "__" labels are Prometheus' own */
	    {"A9", 1, 1},
	    {"9a", 0, 0},
	    {"", 0, 0},
	    {"a-b", 0, 0},
	    {"a b", 0, 0},
	    {"a\"", 0, 0},
	    {"caf\xc3\xa9", 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (metrics_name_valid(cases[i].name) != cases[i].metric)
			fail_msg("metric name \"%s\": want %d", cases[i].name, cases[i].metric);
		if (metrics_label_name_valid(cases[i].name) != cases[i].label)
			fail_msg("label name \"%s\": want %d", cases[i].name, cases[i].label);
	}
	assert_int_equal(metrics_name_valid(NULL), 0);
	assert_int_equal(metrics_label_name_valid(NULL), 0);
}

static void test_format(void **state)
{
	struct buf b = BUF_INIT;
	const struct metrics_label two[] = {{"kind", "credential"}, {"level", "hold"}};

	(void)state;
	assert_int_equal(metrics_family(&b, "x_total", METRICS_COUNTER, "Things done."), 0);
	assert_int_equal(metrics_sample(&b, "x_total", NULL, 0, 0), 0);
	assert_int_equal(metrics_sample(&b, "x_total", two, 2, UINT64_MAX), 0);
	assert_int_equal(metrics_family(&b, "g", METRICS_GAUGE, NULL), 0);
	assert_int_equal(metrics_sample_i64(&b, "g", two, 1, -42), 0);
	assert_string_equal(b.data,
	                    "# HELP x_total Things done.\n"
	                    "# TYPE x_total counter\n"
	                    "x_total 0\n"
	                    "x_total{kind=\"credential\",level=\"hold\"} 18446744073709551615\n"
	                    "# HELP g \n"
	                    "# TYPE g gauge\n"
	                    "g{kind=\"credential\"} -42\n");
	buf_free(&b);
}

static void test_doubles(void **state)
{
	static const struct {
		double v;
		const char *want;
	} cases[] = {
	    {0, "d 0\n"},   {1.5, "d 1.5\n"},      {0.1, "d 0.1\n"},
	    {-2, "d -2\n"}, {1e300, "d 1e+300\n"}, {1764500000.25, "d 1764500000.25\n"},
	};
	struct buf b = BUF_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_reset(&b);
		assert_int_equal(metrics_sample_double(&b, "d", NULL, 0, cases[i].v), 0);
		assert_string_equal(b.data, cases[i].want);
	}
	buf_reset(&b);
	assert_int_equal(metrics_sample_double(&b, "d", NULL, 0, INFINITY), 0);
	assert_int_equal(metrics_sample_double(&b, "d", NULL, 0, -INFINITY), 0);
	assert_int_equal(metrics_sample_double(&b, "d", NULL, 0, NAN), 0);
	assert_string_equal(b.data, "d +Inf\nd -Inf\nd NaN\n");
	/* a value %.15g cannot carry reads back exactly */
	buf_reset(&b);
	assert_int_equal(metrics_sample_double(&b, "d", NULL, 0, 0.1 + 0.2), 0);
	assert_true(strtod(b.data + 2, NULL) == 0.1 + 0.2);
	assert_string_equal(b.data, "d 0.30000000000000004\n");
	buf_free(&b);
}

static void test_escaping(void **state)
{
	struct buf b = BUF_INIT;
	const struct metrics_label l[] = {
	    {"v", "back\\slash \"quoted\"\nnext line caf\xc3\xa9 {a=\"b\"},"}};

	(void)state;
	/* HELP: backslash and line feed escaped, quotes kept as they are */
	assert_int_equal(metrics_family(&b, "e", METRICS_GAUGE, "a \\ b \"c\"\nd"), 0);
	assert_int_equal(metrics_sample(&b, "e", l, 1, 7), 0);
	assert_string_equal(
	    b.data,
	    "# HELP e a \\\\ b \"c\"\\nd\n"
	    "# TYPE e gauge\n"
	    "e{v=\"back\\\\slash \\\"quoted\\\"\\nnext line caf\xc3\xa9 {a=\\\"b\\\"},\"} 7\n");
	/* empty value, and only specials */
	buf_reset(&b);
	assert_int_equal(metrics_sample(&b, "e", (struct metrics_label[]){{"v", ""}}, 1, 1), 0);
	assert_int_equal(metrics_sample(&b, "e", (struct metrics_label[]){{"v", "\\\"\n"}}, 1, 2),
	                 0);
	assert_string_equal(b.data, "e{v=\"\"} 1\ne{v=\"\\\\\\\"\\n\"} 2\n");
	buf_free(&b);
}

/* Refused input leaves the buffer as it was. */
static void test_refused(void **state)
{
	struct buf b = BUF_INIT;
	struct metrics_label many[METRICS_LABELS_MAX + 1];
	char names[METRICS_LABELS_MAX + 1][8];

	(void)state;
	for (size_t i = 0; i < METRICS_LABELS_MAX + 1; i++) {
		snprintf(names[i], sizeof names[i], "l%zu", i);
		many[i] = (struct metrics_label){names[i], "v"};
	}
	assert_int_equal(buf_append_str(&b, "kept\n"), 0);
	assert_int_equal(metrics_family(&b, "bad name", METRICS_COUNTER, "x"), -1);
	assert_int_equal(metrics_sample(&b, "9x", NULL, 0, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", (struct metrics_label[]){{"a-b", "v"}}, 1, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", (struct metrics_label[]){{"__a", "v"}}, 1, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", (struct metrics_label[]){{"a", NULL}}, 1, 1), -1);
	assert_int_equal(
	    metrics_sample(&b, "x", (struct metrics_label[]){{"a", "1"}, {"a", "2"}}, 2, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", NULL, 1, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", many, METRICS_LABELS_MAX + 1, 1), -1);
	assert_int_equal(metrics_sample(&b, "x", many, METRICS_LABELS_MAX, 1), 0);
	assert_int_equal(strncmp(b.data, "kept\nx{l0=\"v\",", 14), 0);
	buf_free(&b);
}

/* ---- sluiced's set ---------------------------------------------------------- */

/* The value of the sample line "series value" in text; fails when absent. */
static uint64_t value_of(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (*p) {
		const char *eol = strchr(p, '\n');
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtoull(p + n + 1, NULL, 10);
		if (eol == NULL)
			break;
		p = eol + 1;
	}
	fail_msg("no sample %s in:\n%s", series, text);
	return 0;
}

/* Every sample's family is declared once, before it, with HELP and TYPE;
 * no series twice; no label value "?" or "other" that was not asked for. */
static void check_structure(const char *text)
{
	char *copy = strdup(text), *save = NULL, family[128] = "", seen[512][160], fams[64][128];
	size_t nseen = 0, nfams = 0;

	assert_non_null(copy);
	assert_true(text[strlen(text) - 1] == '\n');
	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[128], type[16];
		if (sscanf(line, "# TYPE %127s %15s", name, type) == 2) {
			assert_true(strcmp(type, "counter") == 0 || strcmp(type, "gauge") == 0);
			assert_true(strcmp(type, "gauge") == 0 || strstr(name, "_total") != NULL);
			for (size_t i = 0; i < nfams; i++)
				if (strcmp(fams[i], name) == 0)
					fail_msg("family %s declared twice", name);
			assert_true(nfams < 64);
			util_strlcpy(fams[nfams++], name, sizeof fams[0]);
			util_strlcpy(family, name, sizeof family);
			continue;
		}
		if (strncmp(line, "# HELP ", 7) == 0)
			continue;
		assert_true(line[0] != '#');
		/* a sample: of the family declared last */
		size_t n = strcspn(line, "{ ");
		if (strlen(family) != n || strncmp(line, family, n) != 0)
			fail_msg("sample \"%s\" outside its family (%s)", line, family);
		assert_null(strstr(line, "\"?\""));
		{
			char series[160];
			snprintf(series, sizeof series, "%.*s", (int)strcspn(line, " "), line);
			for (size_t i = 0; i < nseen; i++)
				if (strcmp(seen[i], series) == 0)
					fail_msg("series %s twice", series);
			assert_true(nseen < 512);
			util_strlcpy(seen[nseen++], series, sizeof seen[0]);
		}
	}
	free(copy);
}

static void test_daemon_set(void **state)
{
	struct daemon_metrics *m = daemon_metrics_new(1764500000.5);
	struct config_listener sub = {.mode = CONFIG_MODE_SUBMISSION, .tls = CONFIG_TLS_STARTTLS},
	                       smtps = {.mode = CONFIG_MODE_SUBMISSION, .tls = CONFIG_TLS_IMPLICIT},
	                       relay = {.mode = CONFIG_MODE_RELAY, .tls = CONFIG_TLS_STARTTLS};
	struct daemon_metrics_read rd = {
	    .queue_messages = 7,
	    .spool = {.batches = 3, .fsyncs = 4},
	    .delivery = 1,
	    .deliver = {.delivered = 5, .deferred = 6, .bounced = 1, .connections = 2},
	    .dkim_rsa = 9,
	    .dkim_ed25519 = 8,
	    .dkim_failed = 1,
	    .contain = 1};
	struct scan_verdict v = {.action = SCAN_REFUSE, .ran = {1, 1}};
	struct buf b = BUF_INIT;

	(void)state;
	assert_non_null(m);
	daemon_metrics_session(m, &sub, 1);
	daemon_metrics_session(m, &sub, 1);
	daemon_metrics_session(m, &sub, 0);
	daemon_metrics_session(m, &smtps, 1);
	daemon_metrics_session(m, &relay, 1);
	daemon_metrics_session(m, &relay, 0);
	daemon_metrics_auth(m, NULL);
	daemon_metrics_auth(m, NULL);
	daemon_metrics_auth(m, "credentials");
	daemon_metrics_auth(m, "no-such-reason");
	daemon_metrics_auth(m, "temporary");
	daemon_metrics_auth(m, "temporary");
	daemon_metrics_accepted(m, 3);
	daemon_metrics_accepted(m, 2);
	daemon_metrics_refused(m, "relay-denied");
	daemon_metrics_refused(m, "messages_per_minute");
	daemon_metrics_refused(m, "messages_per_minute");
	daemon_metrics_refused(m, "quota_month");
	daemon_metrics_refused(m, "scan");
	daemon_metrics_refused(m, "Tenant \"x\"\n"); /* never a label */
	daemon_metrics_refused(m, NULL);
	daemon_metrics_contain(m, POLICY_CREDENTIAL, POLICY_CONTAIN_HOLD);
	daemon_metrics_contain(m, POLICY_CREDENTIAL, POLICY_CONTAIN_SUSPEND);
	daemon_metrics_contain(m, POLICY_TENANT, POLICY_CONTAIN_THROTTLE);
	daemon_metrics_contain(m, POLICY_CREDENTIAL, POLICY_CONTAIN_NONE);
	daemon_metrics_contain(m, (enum policy_subject_kind)7, POLICY_CONTAIN_HOLD); /* ignored */
	v.results[SCAN_CLAMD].outcome = SCAN_OUT_VIRUS;
	v.results[SCAN_RSPAMD].outcome = SCAN_OUT_FAILED;
	daemon_metrics_scan(m, &v);
	v = (struct scan_verdict){.action = SCAN_ACCEPT, .ran = {1, 0}};
	daemon_metrics_scan(m, &v); /* clamd clean; rspamd did not run */
	rd.contained[POLICY_CREDENTIAL - 1][POLICY_CONTAIN_HOLD] = 2;
	/* NULL: nothing counted, nothing crashes */
	daemon_metrics_session(NULL, &sub, 1);
	daemon_metrics_refused(NULL, "scan");
	daemon_metrics_scan(NULL, &v);

	assert_int_equal(daemon_metrics_render(m, &rd, &b), 0);
	check_structure(b.data);
	assert_non_null(strstr(b.data, "sluice_build_info{version=\"" SLUICE_VERSION "\"} 1\n"));
	assert_non_null(strstr(b.data, "sluice_start_time_seconds 1764500000.5\n"));
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions_total{listener=\"submission\"}"),
	                 2);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions_total{listener=\"smtps\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions_total{listener=\"relay\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions{listener=\"submission\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions{listener=\"relay\"}"), 0);
	assert_int_equal(value_of(b.data, "sluice_smtp_auth_successes_total"), 2);
	assert_int_equal(
	    value_of(b.data, "sluice_smtp_auth_failures_total{reason=\"credentials\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_auth_failures_total{reason=\"other\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_auth_failures_total{reason=\"temporary\"}"),
	                 2);
	assert_int_equal(value_of(b.data, "sluice_smtp_auth_failures_total{reason=\"suspended\"}"),
	                 0);
	assert_int_equal(value_of(b.data, "sluice_smtp_messages_accepted_total"), 2);
	assert_int_equal(value_of(b.data, "sluice_smtp_recipients_accepted_total"), 5);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"relay-denied\"}"),
	                 1);
	assert_int_equal(
	    value_of(b.data, "sluice_smtp_refusals_total{reason=\"messages_per_minute\"}"), 2);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"quota_month\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"scan\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"other\"}"), 2);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"sender\"}"), 0);
	assert_null(strstr(b.data, "Tenant"));
	assert_int_equal(value_of(b.data, "sluice_queue_messages"), 7);
	assert_int_equal(value_of(b.data, "sluice_spool_commits_total"), 3);
	assert_int_equal(value_of(b.data, "sluice_spool_fsyncs_total"), 4);
	assert_int_equal(
	    value_of(b.data, "sluice_delivery_recipients_total{outcome=\"delivered\"}"), 5);
	assert_int_equal(value_of(b.data, "sluice_delivery_recipients_total{outcome=\"deferred\"}"),
	                 6);
	assert_int_equal(value_of(b.data, "sluice_delivery_recipients_total{outcome=\"bounced\"}"),
	                 1);
	assert_int_equal(value_of(b.data, "sluice_delivery_connections"), 2);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_changes_total{kind=\"credential\",level=\"hold\"}"),
	    1);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_changes_total{kind=\"credential\",level=\"suspend\"}"),
	    1);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_changes_total{kind=\"credential\",level=\"none\"}"),
	    1);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_changes_total{kind=\"tenant\",level=\"throttle\"}"),
	    1);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_changes_total{kind=\"tenant\",level=\"hold\"}"), 0);
	assert_int_equal(
	    value_of(b.data, "sluice_contain_subjects{kind=\"credential\",level=\"hold\"}"), 2);
	assert_null(strstr(b.data, "sluice_contain_subjects{kind=\"tenant\",level=\"none\"}"));
	assert_int_equal(
	    value_of(b.data, "sluice_scan_results_total{scanner=\"clamd\",outcome=\"virus\"}"), 1);
	assert_int_equal(
	    value_of(b.data, "sluice_scan_results_total{scanner=\"clamd\",outcome=\"clean\"}"), 1);
	assert_int_equal(
	    value_of(b.data, "sluice_scan_results_total{scanner=\"rspamd\",outcome=\"failed\"}"),
	    1);
	assert_int_equal(
	    value_of(b.data, "sluice_scan_results_total{scanner=\"rspamd\",outcome=\"clean\"}"), 0);
	assert_int_equal(value_of(b.data, "sluice_scan_verdicts_total{action=\"refuse\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_scan_verdicts_total{action=\"accept\"}"), 1);
	assert_int_equal(value_of(b.data, "sluice_dkim_signatures_total{algorithm=\"rsa-sha256\"}"),
	                 9);
	assert_int_equal(
	    value_of(b.data, "sluice_dkim_signatures_total{algorithm=\"ed25519-sha256\"}"), 8);
	assert_int_equal(value_of(b.data, "sluice_dkim_failures_total"), 1);

	/* delivery off and containment off: zeros, and no subjects gauge */
	buf_reset(&b);
	rd.delivery = 0;
	rd.contain = 0;
	assert_int_equal(daemon_metrics_render(m, &rd, &b), 0);
	check_structure(b.data);
	assert_int_equal(
	    value_of(b.data, "sluice_delivery_recipients_total{outcome=\"delivered\"}"), 0);
	assert_int_equal(value_of(b.data, "sluice_delivery_connections"), 0);
	assert_null(strstr(b.data, "sluice_contain_subjects"));
	buf_free(&b);
	daemon_metrics_free(&m);
	assert_null(m);
	daemon_metrics_free(&m); /* twice is harmless */
}

#define THREADS 4
#define BUMPS 100000

static void *bump(void *arg)
{
	struct daemon_metrics *m = arg;
	struct config_listener relay = {.mode = CONFIG_MODE_RELAY};

	for (int i = 0; i < BUMPS; i++) {
		daemon_metrics_accepted(m, 2);
		daemon_metrics_refused(m, "suppressed");
		daemon_metrics_session(m, &relay, 1);
		daemon_metrics_session(m, &relay, 0);
	}
	return NULL;
}

/* Counters bumped from several threads at once lose nothing. */
static void test_threads(void **state)
{
	struct daemon_metrics *m = daemon_metrics_new(0);
	struct daemon_metrics_read rd = {0};
	pthread_t t[THREADS];
	struct buf b = BUF_INIT;

	(void)state;
	assert_non_null(m);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, bump, m), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(daemon_metrics_render(m, &rd, &b), 0);
	assert_int_equal(value_of(b.data, "sluice_smtp_messages_accepted_total"), THREADS * BUMPS);
	assert_int_equal(value_of(b.data, "sluice_smtp_recipients_accepted_total"),
	                 2 * THREADS * BUMPS);
	assert_int_equal(value_of(b.data, "sluice_smtp_refusals_total{reason=\"suppressed\"}"),
	                 THREADS * BUMPS);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions_total{listener=\"relay\"}"),
	                 THREADS * BUMPS);
	assert_int_equal(value_of(b.data, "sluice_smtp_sessions{listener=\"relay\"}"), 0);
	buf_free(&b);
	daemon_metrics_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),   cmocka_unit_test(test_format),
	    cmocka_unit_test(test_doubles), cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_refused), cmocka_unit_test(test_daemon_set),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
