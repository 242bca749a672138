/* Unit tests for store_contain.c: containment levels with their events,
 * baselines saved and loaded back, rows following their tenant, bad input
 * refused, and a version-4 file (before containment) migrating. */
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
	int64_t acme, beta;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || store_fixture_setup(&f->sf, "containstore") < 0) {
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
	assert_int_equal(store_tenant_add(f->sf.st, "acme", &f->acme, &err), 0);
	assert_int_equal(store_tenant_add(f->sf.st, "beta", &f->beta, &err), 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_teardown(&f->sf);
	free(f);
	return 0;
}

static struct store_contain_state state_of(int kind, int64_t id, int64_t tenant, int level,
					   const char *reason, const char *by, int64_t since)
{
	struct store_contain_state s;

	memset(&s, 0, sizeof s);
	s.kind = kind;
	s.subject_id = id;
	s.tenant_id = tenant;
	s.level = level;
	snprintf(s.reason, sizeof s.reason, "%s", reason);
	snprintf(s.by, sizeof s.by, "%s", by);
	s.since = since;
	return s;
}

static void test_levels_and_events(void **state)
{
	struct fixture *f = *state;
	struct store_contain_state s, got, *list = NULL;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	assert_int_equal(store_contain_get(f->sf.st, 2, 7, &got, &err), STORE_NOTFOUND);
	s = state_of(2, 7, f->acme, 2, "score 5.1: domains 3.0 network 1.5", "sluiced", 1000);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);
	s = state_of(2, 7, f->acme, 3, "score 6.2 after the hold", "sluiced", 1010);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);
	s = state_of(1, f->beta, f->beta, 2, "relay score 4.8", "sluiced", 1020);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);

	assert_int_equal(store_contain_get(f->sf.st, 2, 7, &got, &err), 0);
	assert_int_equal(got.level, 3);
	assert_int_equal(got.since, 1010);
	assert_string_equal(got.reason, "score 6.2 after the hold");
	assert_string_equal(got.by, "sluiced");
	assert_int_equal(store_contain_list(f->sf.st, 0, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(store_contain_list(f->sf.st, f->beta, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].kind, 1);
	free(list);

	/* the operator resumes the login: the row goes, the event stays */
	s = state_of(2, 7, f->acme, 0, "checked with the customer", "ops", 1100);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);
	assert_int_equal(store_contain_get(f->sf.st, 2, 7, &got, &err), STORE_NOTFOUND);
	assert_int_equal(store_contain_events(f->sf.st, f->acme, 0, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].level, 2);
	assert_int_equal(list[1].level, 3);
	assert_int_equal(list[2].level, 0);
	assert_string_equal(list[2].by, "ops");
	free(list);
	assert_int_equal(store_contain_events(f->sf.st, f->acme, 1005, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	free(list);

	/* bad input changes nothing */
	s = state_of(3, 7, f->acme, 1, "x", "sluiced", 0);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), -1);
	assert_non_null(err);
	free(err);
	err = NULL;
	s = state_of(2, 7, f->acme, 4, "x", "sluiced", 0);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), -1);
	free(err);
	err = NULL;
	s = state_of(2, 7, 999, 1, "x", "sluiced", 0); /* no such tenant */
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_contain_events(f->sf.st, f->acme, 0, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	free(list);
}

static void test_baselines(void **state)
{
	struct fixture *f = *state;
	struct store_contain_baseline b[3], *got = NULL;
	uint64_t many[STORE_CONTAIN_DOMAINS_MAX], few[2] = {1, UINT64_MAX};
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	for (size_t i = 0; i < STORE_CONTAIN_DOMAINS_MAX; i++)
		many[i] = 0x9e3779b97f4a7c15ULL * (i + 1);
	memset(b, 0, sizeof b);
	b[0] = (struct store_contain_baseline){.kind = 2, .subject_id = 7, .tenant_id = f->acme,
					       .rcpts_per_hour = 38.5, .hours = 100,
					       .domains = many,
					       .ndomains = STORE_CONTAIN_DOMAINS_MAX};
	b[1] = (struct store_contain_baseline){.kind = 1, .subject_id = f->acme,
					       .tenant_id = f->acme, .rcpts_per_hour = 40,
					       .hours = 120, .domains = few, .ndomains = 2};
	b[2] = (struct store_contain_baseline){.kind = 1, .subject_id = f->beta,
					       .tenant_id = f->beta};
	assert_int_equal(store_contain_baselines_save(f->sf.st, b, 3, &err), 0);
	b[1].hours = 121; /* saved again: replaced */
	assert_int_equal(store_contain_baselines_save(f->sf.st, &b[1], 1, &err), 0);
	assert_int_equal(store_contain_baselines_load(f->sf.st, &got, &n, &err), 0);
	assert_int_equal(n, 3);
	/* ordered by kind, subject */
	assert_int_equal(got[0].kind, 1);
	assert_int_equal(got[0].subject_id, f->acme);
	assert_int_equal(got[0].hours, 121);
	assert_int_equal(got[0].ndomains, 2);
	assert_true(got[0].domains[1] == UINT64_MAX);
	assert_int_equal(got[1].ndomains, 0);
	assert_null(got[1].domains);
	assert_int_equal(got[2].kind, 2);
	assert_true(got[2].rcpts_per_hour == 38.5);
	assert_int_equal(got[2].ndomains, STORE_CONTAIN_DOMAINS_MAX);
	assert_memory_equal(got[2].domains, many, sizeof many);
	store_contain_baselines_free(got, n);

	/* too many domains: refused, and nothing of that save is kept */
	b[0].ndomains = STORE_CONTAIN_DOMAINS_MAX + 1;
	b[1].hours = 500;
	assert_int_equal(store_contain_baselines_save(f->sf.st, &b[0], 2, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_contain_baselines_load(f->sf.st, &got, &n, &err), 0);
	assert_int_equal(got[0].hours, 121);
	store_contain_baselines_free(got, n);
}

/* A tenant removed by hand takes its containment rows with it. */
static void test_rows_follow_tenant(void **state)
{
	struct fixture *f = *state;
	struct store_contain_state s, *list = NULL;
	struct store_contain_baseline b = {.kind = 1, .tenant_id = 0};
	struct store_contain_baseline *got = NULL;
	size_t n = 0;
	char *err = NULL;

	open_store(f);
	s = state_of(1, f->beta, f->beta, 2, "held", "sluiced", 5);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);
	b.subject_id = f->beta;
	b.tenant_id = f->beta;
	assert_int_equal(store_contain_baselines_save(f->sf.st, &b, 1, &err), 0);
	store_close(&f->sf.st);
	store_fixture_sql(&f->sf, "PRAGMA foreign_keys = ON; DELETE FROM tenants WHERE name = 'beta'");
	assert_int_equal(store_open(f->sf.uri, &f->sf.st, &err), 0);
	assert_int_equal(store_contain_list(f->sf.st, 0, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(store_contain_events(f->sf.st, f->beta, 0, &list, &n, &err), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(store_contain_baselines_load(f->sf.st, &got, &n, &err), 0);
	assert_int_equal(n, 0);
	store_contain_baselines_free(got, n);
}

/* A file of the schema before containment (version 4) opens and migrates. */
static void test_migrates_v4(void **state)
{
	struct fixture *f = *state;
	struct store_contain_state s, got;
	struct store_tenant t;
	char *err = NULL;

	store_fixture_old_file(&f->sf, 4,
			       "INSERT INTO tenants (id, name, suspended, created)"
			       " VALUES (1, 'old', 0, 1)");
	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_get(f->sf.st, "old", &t, &err), 0);
	s = state_of(1, t.id, t.id, 3, "two logins suspended", "sluiced", 9);
	assert_int_equal(store_contain_set(f->sf.st, &s, &err), 0);
	assert_int_equal(store_contain_get(f->sf.st, 1, t.id, &got, &err), 0);
	assert_int_equal(got.level, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_levels_and_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_baselines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rows_follow_tenant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v4, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
