/* util: buffers, bounded strings, size/duration parsing, config files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "util/config.h"
#include "util/util.h"

static void test_buf(void **state)
{
	struct buf b = BUF_INIT;
	char *p;
	size_t len;

	(void)state;
	assert_int_equal(buf_append_str(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, " %d %s", 42, "world"), 0);
	assert_string_equal(b.data, "hello 42 world");
	buf_consume(&b, 6);
	assert_string_equal(b.data, "42 world");
	assert_int_equal(b.len, 8);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_append(&b, "x", 1), 0);
	assert_int_equal(b.len, 1008);
	p = buf_export(&b, &len);
	assert_int_equal(len, 1008);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
	buf_free(&b);
}

static void test_strlcpy(void **state)
{
	char small[4];

	(void)state;
	assert_true(util_strlcpy(small, "abcdef", sizeof small) >= sizeof small);
	assert_string_equal(small, "abc");
	assert_int_equal(util_strlcpy(small, "ab", sizeof small), 2);
	assert_string_equal(small, "ab");
	assert_true(util_strlcat(small, "cd", sizeof small) >= sizeof small);
	assert_string_equal(small, "abc");
}

static void test_parse(void **state)
{
	static const struct {
		const char *in;
		int size_ok;
		uint64_t size;
		int dur_ok;
		uint64_t dur;
	} cases[] = {
		{.in = "0", .size_ok = 0, .size = 0, .dur_ok = 0, .dur = 0},
		{.in = "25m", .size_ok = 0, .size = 25ULL << 20, .dur_ok = 0, .dur = 1500},
		{.in = "1k", .size_ok = 0, .size = 1024, .dur_ok = -1},
		{.in = "2h", .size_ok = -1, .dur_ok = 0, .dur = 7200},
		{.in = "7d", .size_ok = -1, .dur_ok = 0, .dur = 604800},
		{.in = "1g", .size_ok = 0, .size = 1ULL << 30, .dur_ok = -1},
		{.in = "", .size_ok = -1, .dur_ok = -1},
		{.in = "-1", .size_ok = -1, .dur_ok = -1},
		{.in = "12x", .size_ok = -1, .dur_ok = -1},
		{.in = "5mm", .size_ok = -1, .dur_ok = -1},
		{.in = "99999999999999999999", .size_ok = -1, .dur_ok = -1},
		{.in = "18446744073709551615g", .size_ok = -1, .dur_ok = -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 0;
		assert_int_equal(util_parse_size(cases[i].in, &v), cases[i].size_ok);
		if (cases[i].size_ok == 0)
			assert_int_equal(v, cases[i].size);
		assert_int_equal(util_parse_duration(cases[i].in, &v), cases[i].dur_ok);
		if (cases[i].dur_ok == 0)
			assert_int_equal(v, cases[i].dur);
	}
}

static void test_date(void **state)
{
	char d[64];

	(void)state;
	util_rfc5322_date(1795462200, d, sizeof d);
	assert_string_equal(d, "Mon, 23 Nov 2026 19:30:00 +0000");
}

static char *write_tmp(const char *text)
{
	char *path = strdup("/tmp/sluice-conf-XXXXXX");
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_config_good(void **state)
{
	struct sluice_config cfg;
	char *err = NULL;
	char *path = write_tmp("hostname = mx.example.net  # ours\n"
			       "store = sqlite:state/db\n"
			       "spool_dir = /abs/spool\n"
			       "max_message_size = 10m\n"
			       "timeout_command = 2m\n"
			       "metrics_listen = [::1]:9325\n"
			       "[listener relay]\n"
			       "listen = 127.0.0.1:25, [::1]:25\n"
			       "greet_pause = 300ms\n"
			       "[listener submissions]\n"
			       "listen = *:465\n"
			       "[listener alt]\n"
			       "listen = *:2525\n"
			       "greet_pause = 2s\n");

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg.hostname, "mx.example.net");
	assert_string_equal(cfg.store, "sqlite:/tmp/state/db");
	assert_string_equal(cfg.spool_dir, "/abs/spool");
	assert_int_equal(cfg.max_message_size, 10 << 20);
	assert_int_equal(cfg.timeout_command, 120);
	assert_string_equal(cfg.metrics_listen, "[::1]:9325"); /* parsed by sluiced (net/) */
	assert_int_equal(cfg.max_recipients, 100);
	assert_int_equal(cfg.nlisteners, 3);
	assert_int_equal(cfg.listeners[0].greet_pause_ms, 300);
	assert_int_equal(cfg.listeners[1].greet_pause_ms, 0);
	assert_int_equal(cfg.listeners[2].greet_pause_ms, 2000);
	assert_int_equal(cfg.listeners[0].mode, CONFIG_MODE_RELAY);
	assert_int_equal(cfg.listeners[0].naddrs, 2);
	assert_string_equal(cfg.listeners[0].addrs[1], "[::1]:25");
	assert_int_equal(cfg.listeners[1].tls, CONFIG_TLS_IMPLICIT);
	assert_int_equal(cfg.listeners[1].mode, CONFIG_MODE_SUBMISSION);
	config_free(&cfg);
	unlink(path);
	free(path);
}

static void test_config_delivery(void **state)
{
	struct sluice_config cfg;
	char *err = NULL;
	char *path = write_tmp("store = sqlite:db\nspool_dir = spool\n"
			       "mx_port = 2525\nresolver = 127.0.0.1@5353\n"
			       "retry_schedule = 1s, 2s,1m\nmax_queue_lifetime = 2h\n"
			       "ip_preference = ipv6-only\ndest_rate = 0\n"
			       "timeout_data_end = 1m\n"
			       "[route esp]\n"
			       "domains = Example.COM, .corp.example\n"
			       "host = [::1]:2525\n"
			       "auth_user = relay\nauth_password = s3cret\n"
			       "[route all]\ndomains = *\nhost = smarthost.example\ntls = implicit\n"
			       "[route sub]\ndomains = .a.corp.example\nhost = 127.0.0.2:26\n"
			       "tls = none\n");

	(void)state;
	config_defaults(&cfg);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_int_equal(cfg.delivery.mx_port, 2525);
	assert_string_equal(cfg.delivery.resolver, "127.0.0.1@5353");
	assert_string_equal(cfg.delivery.retry_schedule, "1s, 2s,1m");
	assert_int_equal(cfg.delivery.max_queue_lifetime, 7200);
	assert_int_equal(cfg.delivery.ip_pref, CONFIG_IP_IPV6_ONLY);
	assert_int_equal(cfg.delivery.timeout_data_end, 60);
	assert_int_equal(cfg.delivery.timeout_data_init, 120); /* RFC default kept */
	assert_int_equal(cfg.delivery.nroutes, 3);
	{
		const struct config_route *r = &cfg.delivery.routes[0];
		assert_string_equal(r->host, "::1");
		assert_int_equal(r->port, 2525);
		assert_string_equal(r->domains[0], "example.com");
		/* AUTH never in the clear: opportunistic is raised to required */
		assert_int_equal(r->tls, CONFIG_OUT_TLS_REQUIRED);
		assert_int_equal(cfg.delivery.routes[1].port, 465); /* implicit default */
		assert_int_equal(cfg.delivery.routes[2].port, 26);
	}
	static const struct {
		const char *domain;
		const char *route;
	} finds[] = {
		{"example.com", "esp"},     {"EXAMPLE.com", "esp"},   {"x.corp.example", "esp"},
		{"b.a.corp.example", "sub"}, {"corp.example", "all"}, {"other.example", "all"},
	};
	for (size_t i = 0; i < sizeof finds / sizeof finds[0]; i++) {
		const struct config_route *r = config_route_find(&cfg.delivery, finds[i].domain);
		assert_non_null(r);
		if (strcmp(r->name, finds[i].route) != 0)
			fail_msg("%s: route %s, want %s", finds[i].domain, r->name, finds[i].route);
	}
	config_free(&cfg);
	unlink(path);
	free(path);

	/* no routes: MX delivery, default schedule */
	path = write_tmp("store = sqlite:db\nspool_dir = spool\n");
	config_defaults(&cfg);
	assert_int_equal(config_load(path, &cfg, &err), 0);
	assert_null(config_route_find(&cfg.delivery, "example.com"));
	assert_null(cfg.metrics_listen); /* no endpoint unless asked */
	assert_string_equal(cfg.delivery.retry_schedule, "5m,10m,20m,40m,1h,2h,4h");
	assert_int_equal(cfg.delivery.mx_port, 25);
	assert_int_equal(cfg.delivery.max_queue_lifetime, 5 * 86400);
	config_free(&cfg);
	unlink(path);
	free(path);
}

/* The example configuration documents every key: it must load as it is. */
static void test_config_example(void **state)
{
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	struct sluice_config cfg;
	char path[4096], *err = NULL;

	(void)state;
	if (root == NULL)
		skip();
	snprintf(path, sizeof path, "%s/etc/sluice.conf.example", root);
	config_defaults(&cfg);
	if (config_load(path, &cfg, &err) != 0)
		fail_msg("%s", err);
	assert_int_equal(cfg.nlisteners, 4);
	assert_int_equal(cfg.listeners[0].greet_pause_ms, 300);
	assert_int_equal(cfg.delivery.connection_cache_time, 2);
	config_free(&cfg);
}

static void test_config_bad(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{"store = sqlite:x\nspool_dir = y\nbogus = 1\n", ":3: bogus: unknown key"},
		{"max_recipients = lots\n", ":1: max_recipients: bad number"},
		{"store = mysql:x\n", ":1: store: store must be sqlite:PATH"},
		{"[listener]\n", ":1: expected [listener NAME]"},
		{"[listener a]\ntls = maybe\n", ":2: tls: tls must be none, starttls or implicit"},
		{"hostname\n", ":1: expected key = value"},
		{"[listener a]\ngreet_pause = 61s\n", ":2: greet_pause: greet_pause must be a duration"},
		{"[listener a]\ngreet_pause = 60001ms\n", ":2: greet_pause: greet_pause must be"},
		{"[listener a]\ngreet_pause = -5ms\n", ":2: greet_pause: greet_pause must be"},
		{"[listener a]\ngreet_pause = soonms\n", ":2: greet_pause: greet_pause must be"},
		{"store = sqlite:x\nspool_dir = y\n[listener a]\n", ":0: a listener has no listen"},
		{"hostname = x\n", ":0: store and spool_dir are required"},
		{"mx_port = 0\n", ":1: mx_port: bad port"},
		{"retry_schedule = 5m,soon\n", ":1: retry_schedule: must be a comma-separated"},
		{"dest_concurrency = 0\n", ":1: dest_concurrency: must be greater than 0"},
		{"mx_tls = implicit\n", ":1: mx_tls: must be none, opportunistic or required"},
		{"[route r]\nhost = ::1:25\n", ":2: host: bad host: write an IPv6 address as"},
		{"[route r]\nport = 25\n", ":2: port: unknown route key"},
		{"store = sqlite:x\nspool_dir = y\n[route r]\ndomains = *\n",
		 ":0: a route needs domains and host"},
		{"store = sqlite:x\nspool_dir = y\n[route r]\ndomains = *\nhost = h\n"
		 "tls = none\nauth_user = u\nauth_password = p\n",
		 ":0: a route with AUTH needs tls"},
		{"[route]\n", ":1: expected [listener NAME] or [route NAME]"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sluice_config cfg;
		char *err = NULL;
		char *path = write_tmp(cases[i].text);

		config_defaults(&cfg);
		assert_int_equal(config_load(path, &cfg, &err), -1);
		assert_non_null(err);
		if (strstr(err, cases[i].err) == NULL)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err, cases[i].err);
		free(err);
		config_free(&cfg);
		unlink(path);
		free(path);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf),         cmocka_unit_test(test_strlcpy),
		cmocka_unit_test(test_parse),       cmocka_unit_test(test_date),
		cmocka_unit_test(test_config_good), cmocka_unit_test(test_config_example),
		cmocka_unit_test(test_config_bad),
		cmocka_unit_test(test_config_delivery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
