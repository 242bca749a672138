/* Unit tests for the store's egress exceptions, requests and audit log,
 * and a file of the schema before them (version 2) migrating. */
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
#include "store/store_int.h" /* store_migrations */

struct fixture {
	struct store_fixture sf;
	int64_t acme, beta;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (f == NULL || store_fixture_setup(&f->sf, "egress") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int setup_tenants(void **state)
{
	struct fixture *f;
	char *err = NULL;

	if (setup(state) != 0)
		return -1;
	f = *state;
	store_fixture_open(&f->sf);
	if (store_tenant_add(f->sf.st, "acme", &f->acme, &err) != 0 ||
	    store_tenant_add(f->sf.st, "beta", &f->beta, &err) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	store_fixture_teardown(&f->sf);
	free(f);
	return 0;
}

static void test_exceptions(void **state)
{
	struct fixture *f = *state;
	struct store_egress_exception *list = NULL, x;
	int64_t now = util_wall_seconds(), id1, id2, id3;
	size_t n = 0;
	char *err = NULL;

	assert_int_equal(store_egress_exception_add(f->sf.st, f->acme, "198.18.1.7", "migration",
	                                            now + 3600, "operator:alice", &id1, &err),
	                 0);
	assert_int_equal(store_egress_exception_add(f->sf.st, f->beta, "2001:DB8::/64", "own MX", 0,
	                                            "operator:bob", &id2, &err),
	                 0);
	assert_int_equal(store_egress_exception_add(f->sf.st, f->acme, "198.18.1.8", "short", now + 2,
	                                            "operator:alice", &id3, &err),
	                 0);
	assert_int_equal(store_egress_exception_get(f->sf.st, id1, &x, &err), 0);
	assert_string_equal(x.cidr, "198.18.1.7/32");
	assert_string_equal(x.tenant, "acme");
	assert_string_equal(x.reason, "migration");
	assert_string_equal(x.created_by, "operator:alice");
	assert_int_equal(x.expires, now + 3600);
	assert_int_equal(x.revoked, 0);

	/* active now: all three; later: the short one has expired */
	assert_int_equal(store_egress_exception_list(f->sf.st, 0, 0, now, &list, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[1].cidr, "2001:db8::/64");
	free(list);
	assert_int_equal(store_egress_exception_list(f->sf.st, 0, 0, now + 10, &list, &n, &err), 0);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(store_egress_exception_list(f->sf.st, f->beta, 0, now, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	free(list);

	/* revoke: once; a second time is not found */
	assert_int_equal(store_egress_exception_revoke(f->sf.st, id1, "operator:carol", &err), 0);
	assert_int_equal(store_egress_exception_revoke(f->sf.st, id1, "operator:carol", &err),
	                 STORE_NOTFOUND);
	assert_non_null(strstr(err, "not active"));
	free(err);
	err = NULL;
	assert_int_equal(store_egress_exception_revoke(f->sf.st, 999, "operator:carol", &err),
	                 STORE_NOTFOUND);
	free(err);
	err = NULL;
	assert_int_equal(store_egress_exception_get(f->sf.st, id1, &x, &err), 0);
	assert_true(x.revoked >= now);
	assert_string_equal(x.revoked_by, "operator:carol");
	assert_int_equal(store_egress_exception_list(f->sf.st, 0, 1, now, &list, &n, &err), 0);
	assert_int_equal(n, 3); /* history stays */
	free(list);

	/* bad inputs change nothing */
	assert_int_equal(
	    store_egress_exception_add(f->sf.st, f->acme, "10.0.0.1/8", "x", 0, "op", NULL, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(
	    store_egress_exception_add(f->sf.st, f->acme, "10.0.0.0/8", "", 0, "op", NULL, &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(store_egress_exception_add(f->sf.st, f->acme, "10.0.0.0/8", "bad\nline", 0,
	                                            "op", NULL, &err),
	                 -1);
	free(err);
	err = NULL;
	assert_int_equal(store_egress_exception_add(f->sf.st, f->acme, "10.0.0.0/8", "past", now - 1,
	                                            "op", NULL, &err),
	                 -1);
	free(err);
	err = NULL;
	assert_int_equal(
	    store_egress_exception_add(f->sf.st, 999, "10.0.0.0/8", "x", 0, "op", NULL, &err),
	    STORE_NOTFOUND);
	free(err);
	err = NULL;
	(void)id2;
	(void)id3;
}

static void test_requests_and_audit(void **state)
{
	struct fixture *f = *state;
	struct store_egress_request *reqs = NULL, r;
	struct store_egress_exception x;
	struct store_egress_audit *audit = NULL;
	int64_t rid, rid2, xid;
	size_t n = 0;
	char *err = NULL;

	assert_int_equal(store_egress_request_add(f->sf.st, f->acme, "198.18.1.0/28", "our MX", 86400,
	                                          "tenant:acme", &rid, &err),
	                 0);
	assert_int_equal(store_egress_request_add(f->sf.st, f->beta, "198.18.2.0/28", "spam?", 0,
	                                          "tenant:beta", &rid2, &err),
	                 0);
	assert_int_equal(store_egress_request_list(f->sf.st, 0, 1, &reqs, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(reqs[0].state, STORE_EGRESS_PENDING);
	assert_int_equal(reqs[0].duration, 86400);
	free(reqs);

	assert_int_equal(store_egress_request_approve(f->sf.st, rid, "operator:alice", &xid, &err), 0);
	assert_int_equal(store_egress_request_approve(f->sf.st, rid, "operator:alice", &xid, &err),
	                 STORE_EXISTS);
	assert_non_null(strstr(err, "already approved"));
	free(err);
	err = NULL;
	assert_int_equal(store_egress_exception_get(f->sf.st, xid, &x, &err), 0);
	assert_int_equal(x.request_id, rid);
	assert_true(x.expires >= x.created + 86400 && x.expires <= x.created + 86401);
	assert_int_equal(store_egress_request_get(f->sf.st, rid, &r, &err), 0);
	assert_int_equal(r.state, STORE_EGRESS_APPROVED);
	assert_int_equal(r.exception_id, xid);
	assert_string_equal(r.decided_by, "operator:alice");

	assert_int_equal(
	    store_egress_request_deny(f->sf.st, rid2, "operator:bob", "no reason given", &err), 0);
	assert_int_equal(store_egress_request_deny(f->sf.st, rid2, "operator:bob", "", &err),
	                 STORE_EXISTS);
	free(err);
	err = NULL;
	assert_int_equal(store_egress_request_list(f->sf.st, 0, 1, &reqs, &n, &err), 0);
	assert_int_equal(n, 0);
	free(reqs);

	/* suspension takes every active exception of the tenant */
	size_t revoked = 0;
	assert_int_equal(store_egress_exception_add(f->sf.st, f->acme, "198.18.5.5", "more", 0,
	                                            "operator:alice", NULL, &err),
	                 0);
	assert_int_equal(store_egress_exception_revoke_tenant(f->sf.st, f->acme, "operator:alice",
	                                                      "tenant suspended", &revoked, &err),
	                 0);
	assert_int_equal(revoked, 2);
	assert_int_equal(store_egress_exception_revoke_tenant(f->sf.st, f->acme, "operator:alice",
	                                                      "tenant suspended", &revoked, &err),
	                 0);
	assert_int_equal(revoked, 0);

	/* the audit log, newest first, every change once */
	assert_int_equal(store_egress_audit_list(f->sf.st, 0, 100, &audit, &n, &err), 0);
	static const char *const want[] = {"revoke",  "revoke", "allow",   "deny",
	                                   "approve", "allow",  "request", "request"};
	assert_int_equal(n, 8);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(audit[i].action, want[i]);
	assert_string_equal(audit[0].detail, "tenant suspended");
	assert_string_equal(audit[3].detail, "no reason given");
	assert_string_equal(audit[3].tenant, "beta");
	assert_string_equal(audit[7].actor, "tenant:acme");
	free(audit);
	assert_int_equal(store_egress_audit_list(f->sf.st, f->beta, 100, &audit, &n, &err), 0);
	assert_int_equal(n, 2);
	free(audit);
	assert_int_equal(store_egress_audit_list(f->sf.st, 0, 3, &audit, &n, &err), 0);
	assert_int_equal(n, 3);
	free(audit);
}

/* A file of the schema before egress (version 2) opens, migrates, keeps
 * its tenants and takes exceptions. */
static void test_migrates_v2(void **state)
{
	struct fixture *f = *state;
	struct store_egress_exception *list = NULL;
	struct store_tenant t;
	int64_t id;
	size_t n = 0;
	char *err = NULL;

	store_fixture_old_file(&f->sf, 2, "INSERT INTO tenants VALUES (1, 'old', 0, 1)");
	store_fixture_open(&f->sf);
	assert_int_equal(store_tenant_get(f->sf.st, "old", &t, &err), 0);
	assert_int_equal(store_egress_exception_add(f->sf.st, t.id, "198.18.9.0/24", "legacy", 0,
	                                            "operator:root", &id, &err),
	                 0);
	assert_int_equal(store_egress_exception_list(f->sf.st, t.id, 0, 0, &list, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].tenant, "old");
	free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exceptions, setup_tenants, teardown),
	    cmocka_unit_test_setup_teardown(test_requests_and_audit, setup_tenants, teardown),
	    cmocka_unit_test_setup_teardown(test_migrates_v2, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
