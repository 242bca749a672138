/* policy: sender authorization at MAIL FROM and trusted-network matching,
 * against a real SQLite store in a temporary folder. */
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
