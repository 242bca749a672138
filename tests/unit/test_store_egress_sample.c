/* Unit tests for store_egress_sample.c: the rise of the kernel's
 * cumulative counters from one sample to the next, per tenant, across a
 * counter that starts again (a reload, a reboot) and a source that leaves
 * the table; samples read back by id; bad input refused; and a version-5
 * file (before egress samples) migrating. */
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

	if (f == NULL || store_fixture_setup(&f->sf, "egsample") < 0) {
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

static struct store_egress_count count_of(const char *addr, int64_t tenant, uint64_t packets)
{
	struct store_egress_count c;

	memset(&c, 0, sizeof c);
	snprintf(c.addr, sizeof c.addr, "%s", addr);
	c.tenant_id = tenant;
	c.packets = packets;
	return c;
}

/* The samples after *last, as (tenant, attempts, sources); *last moves on. */
static size_t read_new(struct fixture *f, int64_t *last, struct store_egress_sample out[8])
{
	struct store_egress_sample *list = NULL;
	char *err = NULL;
	size_t n = 0;

	assert_int_equal(store_egress_sample_list(f->sf.st, *last, 0, 100, &list, &n, &err), 0);
	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++) {
		out[i] = list[i];
		assert_true(list[i].id > *last);
		*last = list[i].id;
	}
	free(list);
	return n;
}

static void test_rises_per_tenant(void **state)
{
	struct fixture *f = *state;
	struct store_egress_sample got[8];
	struct store_egress_count c[4];
	int64_t last = 0;
	size_t ns = 0;
	char *err = NULL;

	open_store(f);
	/* first sample: everything counted so far is new */
	c[0] = count_of("198.18.1.2", f->acme, 10);
	c[1] = count_of("2001:2::2", f->acme, 5);
	c[2] = count_of("198.18.1.3", f->beta, 3);
	c[3] = count_of("198.18.1.9", 0, 50); /* nobody's: kept, not sampled */
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 4, 1000, &ns, &err), 0);
	assert_int_equal(ns, 2);
	assert_int_equal(read_new(f, &last, got), 2);
	assert_int_equal(got[0].tenant_id, f->acme);
	assert_string_equal(got[0].tenant, "acme");
	assert_int_equal(got[0].attempts, 15);
	assert_int_equal(got[0].sources, 2);
	assert_int_equal(got[0].at, 1000);
	assert_int_equal(got[1].tenant_id, f->beta);
	assert_int_equal(got[1].attempts, 3);
	assert_int_equal(got[1].sources, 1);

	/* a minute on: only the rise; beta did not move, so no row */
	c[0].packets = 17;
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 4, 1060, &ns, &err), 0);
	assert_int_equal(ns, 1);
	assert_int_equal(read_new(f, &last, got), 1);
	assert_int_equal(got[0].attempts, 7);
	assert_int_equal(got[0].sources, 1);

	/* the table reloaded without its counts: 2 is less than 17, so it
	 * started again and all 2 are new; the IPv6 source rose from 5 to 9 */
	c[0].packets = 2;
	c[1].packets = 9;
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 4, 1120, &ns, &err), 0);
	assert_int_equal(read_new(f, &last, got), 1);
	assert_int_equal(got[0].attempts, 6);
	assert_int_equal(got[0].sources, 2);

	/* the same counts again: nothing */
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 4, 1180, &ns, &err), 0);
	assert_int_equal(ns, 0);
	assert_int_equal(read_new(f, &last, got), 0);

	/* a reboot: the table is gone (no sources at all), then back with
	 * fresh counters that happen to be higher than before */
	assert_int_equal(store_egress_sample_add(f->sf.st, NULL, 0, 1240, &ns, &err), 0);
	assert_int_equal(ns, 0);
	c[2].packets = 4; /* was 3 before the reboot: all 4 are new */
	assert_int_equal(store_egress_sample_add(f->sf.st, &c[2], 1, 1300, &ns, &err), 0);
	assert_int_equal(read_new(f, &last, got), 1);
	assert_int_equal(got[0].tenant_id, f->beta);
	assert_int_equal(got[0].attempts, 4);

	/* since: rows older than the time are skipped */
	{
		struct store_egress_sample *list = NULL;
		size_t n = 0;
		assert_int_equal(store_egress_sample_list(f->sf.st, 0, 1100, 100, &list, &n, &err), 0);
		assert_int_equal(n, 2);
		assert_true(list[0].at >= 1100);
		free(list);
		assert_int_equal(store_egress_sample_list(f->sf.st, 0, 0, 1, &list, &n, &err), 0);
		assert_int_equal(n, 1);
		free(list);
	}
}

static void test_bad_input_and_old_rows(void **state)
{
	struct fixture *f = *state;
	struct store_egress_sample *list = NULL;
	struct store_egress_count c[2];
	char *err = NULL;
	size_t n = 0;

	open_store(f);
	c[0] = count_of("198.18.1.2", f->acme, 1);
	c[1] = count_of("", f->acme, 1);
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 2, 1000, NULL, &err), -1);
	assert_non_null(err);
	free(err);
	err = NULL;
	/* refused whole: the first source was not written either */
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 1, 1000, NULL, &err), 0);
	assert_int_equal(store_egress_sample_list(f->sf.st, 0, 0, 10, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].attempts, 1);
	free(list);
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 1, 0, NULL, &err), -1);
	free(err);
	err = NULL;
	/* 31 days on, the old row is dropped */
	c[0].packets = 2;
	assert_int_equal(store_egress_sample_add(f->sf.st, c, 1, 1000 + 31 * 86400, NULL, &err), 0);
	assert_int_equal(store_egress_sample_list(f->sf.st, 0, 0, 10, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].at, 1000 + 31 * 86400);
	free(list);
}

/* A file of the schema before egress samples (version 5) opens and migrates. */
static void test_migrates_v5(void **state)
{
	struct fixture *f = *state;
	struct store_egress_sample *list = NULL;
	struct store_egress_count c;
	struct store_tenant t;
	char *err = NULL;
	size_t n = 0;

	store_fixture_old_file(&f->sf, 5,
	                       "INSERT INTO tenants (id, name, suspended, created)"
	                       " VALUES (1, 'old', 0, 1)");
	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_get(f->sf.st, "old", &t, &err), 0);
	c = count_of("198.18.1.2", t.id, 3);
	assert_int_equal(store_egress_sample_add(f->sf.st, &c, 1, 500, NULL, &err), 0);
	assert_int_equal(store_egress_sample_list(f->sf.st, 0, 0, 10, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].tenant, "old");
	assert_int_equal(list[0].attempts, 3);
	free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_rises_per_tenant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input_and_old_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v5, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
