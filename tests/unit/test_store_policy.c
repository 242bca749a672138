/* Unit tests for store_policy.c: limit overrides, credential networks
 * (bound and seen), suppression lists, hourly usage (add, sum, list),
 * rows following their credential, and a version-1 file migrating. */
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
	int64_t acme, beta, cred;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || store_fixture_setup(&f->sf, "policystore") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static void open_store(struct fixture *f)
{
	struct store_credential c;
	char *err = NULL;

	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_add(f->sf.st, "acme", &f->acme, &err), 0);
	assert_int_equal(store_tenant_add(f->sf.st, "beta", &f->beta, &err), 0);
	assert_int_equal(store_credential_set(f->sf.st, f->acme, "app1",
	                                      "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA", &err),
	                 0);
	assert_int_equal(store_credential_lookup(f->sf.st, "app1", &c, &err), 0);
	f->cred = c.id;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_teardown(&f->sf);
	free(f);
	return 0;
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	struct store_limit *l = NULL;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	assert_int_equal(store_limit_set(f->sf.st, f->acme, 0, "messages_per_hour", 100, &err), 0);
	assert_int_equal(store_limit_set(f->sf.st, f->acme, 0, "messages_per_hour", 200, &err), 0);
	assert_int_equal(store_limit_set(f->sf.st, f->acme, 0, "quota_month", 0, &err), 0);
	assert_int_equal(store_limit_set(f->sf.st, f->acme, f->cred, "recipients_per_day", 7, &err),
	                 0);
	assert_int_equal(store_limit_set(f->sf.st, f->acme, 0, "Bad-Name", 1, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_limit_set(f->sf.st, 999, 0, "messages_per_hour", 1, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_limit_list(f->sf.st, f->acme, 0, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].name, "messages_per_hour");
	assert_int_equal(l[0].value, 200);
	assert_string_equal(l[1].name, "quota_month");
	assert_int_equal(l[1].value, 0);
	free(l);
	assert_int_equal(store_limit_list(f->sf.st, f->acme, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(l[0].value, 7);
	free(l);
	assert_int_equal(store_limit_list(f->sf.st, f->beta, 0, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	free(l);
	assert_int_equal(store_limit_unset(f->sf.st, f->acme, 0, "quota_month", &err), 0);
	assert_int_equal(store_limit_unset(f->sf.st, f->acme, 0, "quota_month", &err), STORE_NOTFOUND);
	free(err);
	err = NULL;
	/* the credential's rows go with it */
	assert_int_equal(store_credential_remove(f->sf.st, f->acme, "app1", &err), 0);
	assert_int_equal(store_limit_list(f->sf.st, f->acme, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	free(l);
}

static void test_networks(void **state)
{
	struct fixture *f = *state;
	struct store_credential_network *l = NULL;
	size_t n = 0, before = 0;
	char *err = NULL;
	int isnew = 0;

	open_store(f);
	assert_int_equal(store_credential_network_add(f->sf.st, f->cred, "10.1.0.0/16", &err), 0);
	assert_int_equal(store_credential_network_add(f->sf.st, f->cred, "2001:DB8::/32", &err), 0);
	assert_int_equal(store_credential_network_add(f->sf.st, f->cred, "10.1.0.0/16", &err),
	                 STORE_EXISTS);
	free(err);
	err = NULL;
	assert_int_equal(store_credential_network_add(f->sf.st, f->cred, "10.1.0.1/16", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_credential_network_list(f->sf.st, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].cidr, "10.1.0.0/16");
	assert_string_equal(l[1].cidr, "2001:db8::/32");
	free(l);
	assert_int_equal(store_credential_network_remove(f->sf.st, f->cred, "10.1.0.0/16", &err), 0);
	assert_int_equal(store_credential_network_remove(f->sf.st, f->cred, "10.1.0.0/16", &err),
	                 STORE_NOTFOUND);
	free(err);
	err = NULL;

	assert_int_equal(
	    store_credential_seen(f->sf.st, f->cred, "192.0.2.0/24", 100, &isnew, &before, &err), 0);
	assert_true(isnew);
	assert_int_equal(before, 0);
	assert_int_equal(
	    store_credential_seen(f->sf.st, f->cred, "192.0.2.0/24", 200, &isnew, &before, &err), 0);
	assert_false(isnew);
	assert_int_equal(before, 1);
	assert_int_equal(
	    store_credential_seen(f->sf.st, f->cred, "198.51.100.0/24", 300, &isnew, &before, &err),
	    0);
	assert_true(isnew);
	assert_int_equal(before, 1);
	assert_int_equal(store_credential_seen_list(f->sf.st, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(l[0].cidr, "192.0.2.0/24");
	assert_int_equal(l[0].created, 100);
	free(l);
	assert_int_equal(store_credential_remove(f->sf.st, f->acme, "app1", &err), 0);
	assert_int_equal(store_credential_network_list(f->sf.st, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	free(l);
	assert_int_equal(store_credential_seen_list(f->sf.st, f->cred, &l, &n, &err), 0);
	assert_int_equal(n, 0);
	free(l);
}

static void test_suppressions(void **state)
{
	struct fixture *f = *state;
	struct store_suppression x = {0}, got, *l = NULL;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	x.tenant_id = f->acme;
	strcpy(x.address, "Bob@Example.ORG");
	strcpy(x.source, "operator");
	strcpy(x.reason, "asked to stop");
	x.created = 42;
	assert_int_equal(store_suppression_add(f->sf.st, &x, &err), 0);
	assert_int_equal(store_suppression_add(f->sf.st, &x, &err), STORE_EXISTS);
	free(err);
	err = NULL;
	/* per tenant */
	assert_int_equal(store_suppression_get(f->sf.st, f->beta, "bob@example.org", &got, &err),
	                 STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_suppression_get(f->sf.st, f->acme, "BOB@example.org", &got, &err), 0);
	assert_string_equal(got.address, "bob@example.org");
	assert_string_equal(got.source, "operator");
	assert_string_equal(got.reason, "asked to stop");
	assert_int_equal(got.created, 42);
	strcpy(x.source, "nobody");
	assert_int_equal(store_suppression_add(f->sf.st, &x, &err), -1);
	free(err);
	err = NULL;
	strcpy(x.source, "bounce");
	strcpy(x.address, "no-at-sign");
	assert_int_equal(store_suppression_add(f->sf.st, &x, &err), -1);
	free(err);
	err = NULL;
	strcpy(x.address, "a b@example.org");
	assert_int_equal(store_suppression_add(f->sf.st, &x, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_suppression_list(f->sf.st, f->acme, &l, &n, &err), 0);
	assert_int_equal(n, 1);
	free(l);
	assert_int_equal(store_suppression_remove(f->sf.st, f->acme, "bob@EXAMPLE.org", &err), 0);
	assert_int_equal(store_suppression_remove(f->sf.st, f->acme, "bob@example.org", &err),
	                 STORE_NOTFOUND);
	free(err);
}

static struct store_usage urow(int64_t t, int64_t c, int64_t h, const char *m, uint64_t n)
{
	struct store_usage u = {.tenant_id = t, .credential_id = c, .hour = h, .count = n};

	strcpy(u.metric, m);
	return u;
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	struct store_usage rows[5], *l = NULL;
	struct store_suppression s[2] = {0}, got;
	uint64_t sum = 0;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	rows[0] = urow(f->acme, f->cred, 10, "accepted_recipients", 3);
	rows[1] = urow(f->acme, 0, 10, "accepted_recipients", 2);
	rows[2] = urow(f->acme, f->cred, 11, "accepted_recipients", 5);
	rows[3] = urow(f->acme, 0, 11, "delivered", 4);
	rows[4] = urow(f->beta, 0, 11, "delivered", 9);
	s[0].tenant_id = f->acme;
	strcpy(s[0].address, "gone@example.org");
	strcpy(s[0].source, "bounce");
	strcpy(s[0].reason, "550 5.1.1 no such user");
	s[1] = s[0]; /* twice in one batch: kept once */
	assert_int_equal(store_usage_add(f->sf.st, rows, 5, s, 2, &err), 0);
	assert_int_equal(store_usage_add(f->sf.st, rows, 1, NULL, 0, &err), 0); /* adds up */
	assert_int_equal(store_suppression_get(f->sf.st, f->acme, "gone@example.org", &got, &err), 0);
	assert_string_equal(got.source, "bounce");

	assert_int_equal(
	    store_usage_sum(f->sf.st, f->acme, -1, "accepted_recipients", 10, 12, &sum, &err), 0);
	assert_int_equal(sum, 3 + 3 + 2 + 5);
	assert_int_equal(
	    store_usage_sum(f->sf.st, f->acme, f->cred, "accepted_recipients", 10, 11, &sum, &err), 0);
	assert_int_equal(sum, 6);
	assert_int_equal(
	    store_usage_sum(f->sf.st, f->beta, -1, "accepted_recipients", 0, 100, &sum, &err), 0);
	assert_int_equal(sum, 0);

	assert_int_equal(store_usage_list(f->sf.st, f->acme, 11, &l, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(l[0].hour, 11);
	assert_string_equal(l[0].metric, "accepted_recipients");
	assert_int_equal(l[0].count, 5);
	assert_string_equal(l[1].metric, "delivered");
	assert_int_equal(l[1].count, 4);
	free(l);
	assert_int_equal(store_usage_list(f->sf.st, f->acme, 0, &l, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(l[0].count, 8); /* hour 10, summed over credentials */
	free(l);
}

/* A file made by the version-1 schema opens, migrates through every step,
 * keeps its tenants and takes policy rows. */
static void test_migrates_v1(void **state)
{
	struct fixture *f = *state;
	struct store_tenant t;
	struct store_limit *l = NULL;
	size_t n = 0;
	char *err = NULL;

	store_fixture_old_file(&f->sf, 1,
	                       "INSERT INTO tenants VALUES (1, 'old', 0, 1)");
	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_get(f->sf.st, "old", &t, &err), 0);
	assert_int_equal(store_limit_set(f->sf.st, t.id, 0, "messages_per_day", 5, &err), 0);
	assert_int_equal(store_limit_list(f->sf.st, t.id, 0, &l, &n, &err), 0);
	assert_int_equal(n, 1);
	free(l);
}

/* Rate states: kept while their time is ahead, dropped when a save says
 * it passed and at every save once it has; bad rows refused whole. */
static void test_limit_state(void **state)
{
	struct fixture *f = *state;
	struct store_limit_state rows[3] = {
	    {.kind = 1, .subject_id = 0, .name = "messages_per_hour", .tat_us = 5000},
	    {.kind = 2, .subject_id = 0, .name = "recipients_per_day", .tat_us = 9000},
	    {.kind = 2, .subject_id = 0, .name = "messages_per_second", .tat_us = 100},
	};
	struct store_limit_state *list = NULL, bad;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	rows[0].subject_id = f->acme;
	rows[1].subject_id = rows[2].subject_id = f->cred;
	/* at 1000: the third has passed, so it is not kept */
	assert_int_equal(store_limit_state_save(f->sf.st, rows, 3, 1000, &err), 0);
	assert_int_equal(store_limit_state_load(f->sf.st, 1000, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].kind, 1);
	assert_int_equal(list[0].subject_id, f->acme);
	assert_string_equal(list[0].name, "messages_per_hour");
	assert_int_equal(list[0].tat_us, 5000);
	assert_string_equal(list[1].name, "recipients_per_day");
	assert_int_equal(list[1].tat_us, 9000);
	free(list);
	/* loading later: only what is still ahead */
	assert_int_equal(store_limit_state_load(f->sf.st, 6000, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "recipients_per_day");
	free(list);
	/* a save that says a rate is back to its burst drops it; an update
	 * replaces; a save at 9500 drops the passed ones of everyone */
	rows[0].tat_us = 900;
	rows[1].tat_us = 20000;
	assert_int_equal(store_limit_state_save(f->sf.st, rows, 2, 1000, &err), 0);
	assert_int_equal(store_limit_state_load(f->sf.st, 0, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].tat_us, 20000);
	free(list);
	assert_int_equal(store_limit_state_save(f->sf.st, NULL, 0, 30000, &err), 0);
	assert_int_equal(store_limit_state_load(f->sf.st, 0, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	/* bad rows: nothing of the save is written */
	rows[1].tat_us = 50000;
	bad = rows[1];
	bad.kind = 3;
	{
		struct store_limit_state two[2] = {rows[1], bad};
		assert_int_equal(store_limit_state_save(f->sf.st, two, 2, 1000, &err), -1);
		assert_non_null(err);
		free(err);
		err = NULL;
		two[1] = rows[1];
		two[1].name[0] = '\0';
		assert_int_equal(store_limit_state_save(f->sf.st, two, 2, 1000, &err), -1);
		free(err);
		err = NULL;
	}
	assert_int_equal(store_limit_state_load(f->sf.st, 0, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
}

/* A file of the schema before rate states (version 6) migrates and
 * takes them. */
static void test_migrates_v6(void **state)
{
	struct fixture *f = *state;
	struct store_limit_state row = {.kind = 1, .subject_id = 1, .name = "messages_per_minute",
	                                .tat_us = 777};
	struct store_limit_state *list = NULL;
	struct store_tenant t;
	size_t n = 0;
	char *err = NULL;

	store_fixture_old_file(&f->sf, 6, "INSERT INTO tenants VALUES (1, 'old', 0, 1)");
	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_get(f->sf.st, "old", &t, &err), 0);
	assert_int_equal(store_limit_state_save(f->sf.st, &row, 1, 1, &err), 0);
	assert_int_equal(store_limit_state_load(f->sf.st, 1, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].tat_us, 777);
	free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suppressions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_limit_state, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v6, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
