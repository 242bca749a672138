/* Unit tests for store_dkim.c: verification tokens, DKIM keys and their
 * states, removal with the domain, and a version-1 file migrating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store_fixture.h"

struct fixture {
	struct store_fixture sf;
	int64_t tenant;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || store_fixture_setup(&f->sf, "dkimstore") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static void open_store(struct fixture *f)
{
	char *err = NULL;

	store_fixture_open(&f->sf);
	if (store_tenant_get(f->sf.st, "acme", &(struct store_tenant){0}, &err) == STORE_NOTFOUND) {
		free(err);
		err = NULL;
		assert_int_equal(store_tenant_add(f->sf.st, "acme", &f->tenant, &err), 0);
	}
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_teardown(&f->sf);
	free(f);
	return 0;
}

static struct store_dkim_key key(const char *domain, const char *sel, int alg, int state)
{
	struct store_dkim_key k;

	memset(&k, 0, sizeof k);
	snprintf(k.domain, sizeof k.domain, "%s", domain);
	snprintf(k.selector, sizeof k.selector, "%s", sel);
	k.alg = alg;
	k.state = state;
	snprintf(k.pem, sizeof k.pem, "-----BEGIN PRIVATE KEY-----\n%s\n", sel);
	snprintf(k.record, sizeof k.record, "v=DKIM1; k=%s; p=%s",
	         alg == STORE_DKIM_RSA ? "rsa" : "ed25519", sel);
	k.created = 1000;
	return k;
}

static void test_tokens(void **state)
{
	struct fixture *f = *state;
	char token[STORE_TOKEN_MAX + 1], *err = NULL;

	open_store(f);
	assert_int_equal(store_domain_add(f->sf.st, f->tenant, "acme.example", 0, &err), 0);
	assert_int_equal(store_domain_token_get(f->sf.st, "acme.example", token, &err),
	                 STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_domain_token_set(f->sf.st, "ACME.example", "t1", &err), 0);
	assert_int_equal(store_domain_token_set(f->sf.st, "acme.example", "t2", &err), 0);
	assert_int_equal(store_domain_token_get(f->sf.st, "acme.example", token, &err), 0);
	assert_string_equal(token, "t2");
	assert_int_equal(store_domain_token_set(f->sf.st, "nosuch.example", "t", &err),
	                 STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_domain_token_set(f->sf.st, "acme.example", "", &err), -1);
	free(err);
}

static void test_keys(void **state)
{
	struct fixture *f = *state;
	struct store_dkim_key k, *list = NULL;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	assert_int_equal(store_domain_add(f->sf.st, f->tenant, "acme.example", 1, &err), 0);
	assert_int_equal(store_domain_add(f->sf.st, f->tenant, "beta.example", 1, &err), 0);
	k = key("acme.example", "s1r", STORE_DKIM_RSA, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	k = key("acme.example", "s1e", STORE_DKIM_ED25519, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	k = key("acme.example", "s2r", STORE_DKIM_RSA, STORE_DKIM_PENDING);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), STORE_EXISTS);
	free(err);
	err = NULL;
	k = key("beta.example", "s1e", STORE_DKIM_ED25519, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	k = key("nosuch.example", "s1e", STORE_DKIM_ED25519, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), STORE_NOTFOUND);
	free(err);
	err = NULL;
	k = key("acme.example", "bad", 7, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), -1);
	free(err);
	err = NULL;

	assert_int_equal(store_dkim_list(f->sf.st, "acme.example", &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].selector, "s1r");
	assert_int_equal(list[0].activated, 1000);
	assert_int_equal(list[2].state, STORE_DKIM_PENDING);
	assert_int_equal(list[2].activated, 0);
	assert_non_null(strstr(list[1].record, "k=ed25519"));
	free(list);

	/* every domain's active keys: what sluiced signs with */
	assert_int_equal(store_dkim_list(f->sf.st, NULL, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	free(list);

	/* rotate: the pending key becomes active, the old one retires */
	assert_int_equal(
	    store_dkim_set_state(f->sf.st, "acme.example", "s2r", STORE_DKIM_ACTIVE, 2000, &err), 0);
	assert_int_equal(
	    store_dkim_set_state(f->sf.st, "acme.example", "s1r", STORE_DKIM_RETIRED, 2000, &err), 0);
	assert_int_equal(
	    store_dkim_set_state(f->sf.st, "acme.example", "zz", STORE_DKIM_RETIRED, 2000, &err),
	    STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_dkim_wipe(f->sf.st, "acme.example", "s1e", &err), STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_dkim_wipe(f->sf.st, "acme.example", "s1r", &err), 0);
	assert_int_equal(store_dkim_list(f->sf.st, "acme.example", &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].state, STORE_DKIM_RETIRED);
	assert_int_equal(list[0].retired, 2000);
	assert_string_equal(list[0].pem, "");
	assert_int_equal(list[2].state, STORE_DKIM_ACTIVE);
	assert_int_equal(list[2].activated, 2000);
	free(list);

	/* a removed domain takes its keys and token along */
	assert_int_equal(store_domain_token_set(f->sf.st, "acme.example", "t", &err), 0);
	assert_int_equal(store_domain_remove(f->sf.st, f->tenant, "acme.example", &err), 0);
	assert_int_equal(store_domain_add(f->sf.st, f->tenant, "acme.example", 0, &err), 0);
	assert_int_equal(store_dkim_list(f->sf.st, "acme.example", &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(store_dkim_list(f->sf.st, NULL, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].domain, "beta.example");
	free(list);
}

/* The keys' version moves with the keys, not with other tables. */
static void test_version(void **state)
{
	struct fixture *f = *state;
	struct store_dkim_key k;
	uint64_t v0, v1, v2;
	char *err = NULL;

	open_store(f);
	assert_int_equal(store_dkim_version(f->sf.st, &v0, &err), 0);
	assert_int_equal(store_domain_add(f->sf.st, f->tenant, "acme.example", 1, &err), 0);
	assert_int_equal(store_tenant_add(f->sf.st, "beta", NULL, &err), 0);
	assert_int_equal(store_dkim_version(f->sf.st, &v1, &err), 0);
	assert_true(v0 == v1);
	k = key("acme.example", "s1r", STORE_DKIM_RSA, STORE_DKIM_PENDING);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	assert_int_equal(store_dkim_version(f->sf.st, &v2, &err), 0);
	assert_true(v2 != v1);
	assert_int_equal(
	    store_dkim_set_state(f->sf.st, "acme.example", "s1r", STORE_DKIM_ACTIVE, 5000, &err), 0);
	assert_int_equal(store_dkim_version(f->sf.st, &v1, &err), 0);
	assert_true(v2 != v1);
	assert_int_equal(store_domain_remove(f->sf.st, f->tenant, "acme.example", &err), 0);
	assert_int_equal(store_dkim_version(f->sf.st, &v2, &err), 0);
	assert_true(v2 != v1 && v2 == v0);
}

/* A file made by the version-1 schema (before DKIM) opens, migrates, and
 * keeps its domains. */
static void test_migrates_v1(void **state)
{
	struct fixture *f = *state;
	struct store_dkim_key k, *list = NULL;
	struct store_domain d;
	size_t n = 0;
	char *err = NULL;

	store_fixture_old_file(&f->sf, 1,
	                       "INSERT INTO tenants VALUES (1, 'acme', 0, 1);"
	                       "INSERT INTO domains VALUES (1, 1, 'old.example', 1, 1)");
	open_store(f);
	assert_int_equal(store_domain_get(f->sf.st, "old.example", &d, &err), 0);
	assert_true(d.verified);
	k = key("old.example", "s1e", STORE_DKIM_ED25519, STORE_DKIM_ACTIVE);
	assert_int_equal(store_dkim_add(f->sf.st, &k, &err), 0);
	assert_int_equal(store_dkim_list(f->sf.st, NULL, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_version, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
