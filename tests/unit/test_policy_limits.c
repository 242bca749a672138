/* policy limits (issue 4): GCRA rates at each window, quotas per day and
 * month, recipients per message counted per recipient, size, per-login
 * limits apart from the tenant's, reservations given back so nothing
 * refused counts as sent; credential networks; suppression; usage
 * counters and their flush.  Against a real SQLite store, with a fake
 * clock (microseconds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "policy/policy.h"

#define S 1000000LL           /* a second in microseconds */
#define T0 (1796083200LL * S) /* 2026-12-01T00:00:00Z */

struct fixture {
	char dir[64];
	struct store *st;
	struct policy_limits *pl;
	int64_t acme, beta, app1, app2;
	struct policy_client c1, c2, relay;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	struct store_credential c;
	char uri[128], *err = NULL;

	strcpy(f->dir, "/tmp/sluice-plimits-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(uri, sizeof uri, "sqlite:%s/db", f->dir);
	assert_int_equal(store_open(uri, &f->st, &err), 0);
	assert_int_equal(store_tenant_add(f->st, "acme", &f->acme, &err), 0);
	assert_int_equal(store_tenant_add(f->st, "beta", &f->beta, &err), 0);
	assert_int_equal(store_credential_set(f->st, f->acme, "app1", "$argon2id$v=19$x", &err), 0);
	assert_int_equal(store_credential_set(f->st, f->acme, "app2", "$argon2id$v=19$y", &err), 0);
	assert_int_equal(store_credential_lookup(f->st, "app1", &c, &err), 0);
	f->app1 = c.id;
	assert_int_equal(store_credential_lookup(f->st, "app2", &c, &err), 0);
	f->app2 = c.id;
	f->c1 = (struct policy_client){.tenant_id = f->acme,
	                               .tenant = "acme",
	                               .submission = 1,
	                               .credential_id = f->app1,
	                               .user = "app1"};
	f->c2 = (struct policy_client){.tenant_id = f->acme,
	                               .tenant = "acme",
	                               .submission = 1,
	                               .credential_id = f->app2,
	                               .user = "app2"};
	f->relay = (struct policy_client){.tenant_id = f->beta, .tenant = "beta"};
	f->pl = policy_limits_new(NULL);
	assert_non_null(f->pl);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	policy_limits_free(&f->pl);
	store_close(&f->st);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void set_limit(struct fixture *f, int64_t tenant, int64_t cred, const char *name, uint64_t v)
{
	char *err = NULL;

	assert_int_equal(store_limit_set(f->st, tenant, cred, name, v, &err), 0);
}

/* MAIL then commit one message: the code MAIL got. */
static int mail(struct fixture *f, const struct policy_client *c, int64_t now,
                struct policy_verdict *v, const char **reason)
{
	struct policy_txn txn = {0};

	policy_limits_mail(f->pl, f->st, c, 0, now, &txn, v, reason);
	if (v->code == 250)
		policy_limits_commit(f->pl, &txn);
	return v->code;
}

/* Each window: N fit back to back, the next is refused with 451 4.7.1
 * naming the limit and the wait; one interval later one more fits. */
static void test_rate_windows(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *name;
		uint64_t n;
		int64_t period;
	} cases[] = {
	    {"messages_per_second", 4, 1},
	    {"messages_per_minute", 6, 60},
	    {"messages_per_hour", 3, 3600},
	    {"messages_per_day", 2, 86400},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_limits *fresh = policy_limits_new(NULL);
		struct policy_verdict v;
		const char *reason;
		char want[64];
		int64_t now = T0, interval = cases[i].period * S / (int64_t)cases[i].n;

		policy_limits_free(&f->pl);
		f->pl = fresh;
		set_limit(f, f->acme, 0, cases[i].name, cases[i].n);
		for (uint64_t k = 0; k < cases[i].n; k++)
			assert_int_equal(mail(f, &f->c1, now, &v, &reason), 250);
		assert_int_equal(mail(f, &f->c1, now, &v, &reason), 451);
		assert_string_equal(v.enhanced, "4.7.1");
		assert_string_equal(reason, cases[i].name);
		assert_non_null(strstr(v.text, cases[i].name));
		assert_non_null(strstr(v.text, "tenant acme"));
		snprintf(want, sizeof want, "retry in %llds", (long long)((interval + S - 1) / S));
		assert_non_null(strstr(v.text, want));
		/* smooth: not the next window, one interval later */
		assert_int_equal(mail(f, &f->c1, now + interval - 1, &v, &reason), 451);
		assert_int_equal(mail(f, &f->c1, now + interval, &v, &reason), 250);
		assert_int_equal(mail(f, &f->c1, now + interval, &v, &reason), 451);
		/* an idle period earns back the whole burst, no more */
		now += interval + cases[i].period * S * 2;
		for (uint64_t k = 0; k < cases[i].n; k++)
			assert_int_equal(mail(f, &f->c1, now, &v, &reason), 250);
		assert_int_equal(mail(f, &f->c1, now, &v, &reason), 451);
		set_limit(f, f->acme, 0, cases[i].name, 0);
	}
}

/* The rates' state survives a restart through the store: a tenant that
 * used its burst finds it used in a new policy_limits, not fresh; the
 * state of a login apart; nothing exported when nothing moved. */
static void test_state_restart(void **state)
{
	struct fixture *f = *state;
	struct store_limit_state *rows = NULL;
	struct policy_verdict v;
	const char *reason;
	size_t n = 0;
	char *err = NULL;
	int64_t now = T0;

	assert_int_equal(policy_limits_export(f->pl, &rows, &n), 0);
	assert_int_equal(n, 0);
	set_limit(f, f->acme, 0, "messages_per_hour", 3);
	set_limit(f, 0, f->app2, "messages_per_minute", 1);
	for (int k = 0; k < 3; k++)
		assert_int_equal(mail(f, &f->c1, now, &v, &reason), 250);
	assert_int_equal(mail(f, &f->c2, now, &v, &reason), 451); /* the tenant's */
	/* the tenant's rates moved, all eight go out; app1 has none of its own */
	assert_int_equal(policy_limits_export(f->pl, &rows, &n), 0);
	assert_int_equal(n, 8);
	assert_int_equal(store_limit_state_save(f->st, rows, n, now, &err), 0);
	free(rows);
	assert_int_equal(policy_limits_export(f->pl, &rows, &n), 0);
	assert_int_equal(n, 0); /* saved: nothing new */
	/* "restart" one second later */
	policy_limits_free(&f->pl);
	assert_non_null(f->pl = policy_limits_new(NULL));
	assert_int_equal(store_limit_state_load(f->st, now + S, &rows, &n, &err), 0);
	assert_true(n >= 1);
	assert_int_equal(policy_limits_import(f->pl, rows, n), 0);
	free(rows);
	assert_int_equal(mail(f, &f->c1, now + S, &v, &reason), 451);
	assert_string_equal(reason, "messages_per_hour");
	/* the state carried is the real one: one interval (20 min) frees one */
	assert_int_equal(mail(f, &f->c1, now + 1200 * S, &v, &reason), 250);
	assert_int_equal(mail(f, &f->c1, now + 1200 * S, &v, &reason), 451);
	/* without the import (the old behaviour) the burst would be fresh */
	policy_limits_free(&f->pl);
	assert_non_null(f->pl = policy_limits_new(NULL));
	assert_int_equal(mail(f, &f->c1, now + S, &v, &reason), 250);
	/* rows for an unknown limit or a bad subject are skipped */
	{
		struct store_limit_state odd[2] = {
		    {.kind = 1, .subject_id = 1, .name = "max_message_size", .tat_us = now * 2},
		    {.kind = 9, .subject_id = 1, .name = "messages_per_hour", .tat_us = now * 2}};
		assert_int_equal(policy_limits_import(f->pl, odd, 2), 0);
	}
}

/* Over a long run the rate holds at every scale: never more than N plus
 * the burst in any period. */
static void test_rate_smooth(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;
	const char *reason;
	int64_t now = T0;
	int sent = 0;

	set_limit(f, f->acme, 0, "messages_per_minute", 60);
	/* a client trying every 100 ms for 10 minutes */
	for (int i = 0; i < 6000; i++, now += S / 10)
		if (mail(f, &f->c1, now, &v, &reason) == 250)
			sent++;
	/* 60 at once, then one a second */
	assert_in_range(sent, 60 + 599, 60 + 601);
}

/* Recipients count one by one; a refused one is not counted, and a
 * transaction given back returns its recipients. */
static void test_recipients(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;
	struct policy_txn txn = {0}, txn2 = {0};
	struct policy_stats st;
	const char *reason;

	set_limit(f, f->acme, 0, "recipients_per_minute", 5);
	set_limit(f, f->acme, 0, "recipients_per_message", 3);
	policy_limits_mail(f->pl, f->st, &f->c1, 0, T0, &txn, &v, &reason);
	assert_int_equal(v.code, 250);
	for (int i = 0; i < 3; i++) {
		policy_limits_rcpt(f->pl, f->st, &f->c1, T0, &txn, &v, &reason);
		assert_int_equal(v.code, 250);
	}
	policy_limits_rcpt(f->pl, f->st, &f->c1, T0, &txn, &v, &reason);
	assert_int_equal(v.code, 452);
	assert_string_equal(v.enhanced, "4.5.3");
	assert_string_equal(reason, "recipients_per_message");
	assert_non_null(strstr(v.text, "3 per message"));
	assert_int_equal(txn.rcpts, 3);
	policy_limits_commit(f->pl, &txn);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_TENANT, f->acme, &st), 0);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.recipients, 3);

	/* two more fit the minute, the third does not */
	policy_limits_mail(f->pl, f->st, &f->c2, 0, T0, &txn2, &v, &reason);
	for (int i = 0; i < 2; i++) {
		policy_limits_rcpt(f->pl, f->st, &f->c2, T0, &txn2, &v, &reason);
		assert_int_equal(v.code, 250);
	}
	policy_limits_rcpt(f->pl, f->st, &f->c2, T0, &txn2, &v, &reason);
	assert_int_equal(v.code, 451);
	assert_string_equal(v.enhanced, "4.7.1");
	assert_string_equal(reason, "recipients_per_minute");
	/* abandoned (RSET, QUIT, refused DATA): both recipients come back */
	policy_limits_release(f->pl, &txn2, T0);
	assert_int_equal(txn2.rcpts, 0);
	policy_limits_mail(f->pl, f->st, &f->c2, 0, T0, &txn2, &v, &reason);
	for (int i = 0; i < 2; i++) {
		policy_limits_rcpt(f->pl, f->st, &f->c2, T0, &txn2, &v, &reason);
		assert_int_equal(v.code, 250);
	}
	policy_limits_release(f->pl, &txn2, T0);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_TENANT, f->acme, &st), 0);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.recipients, 3);
	assert_int_equal(st.quota_day_used, 3);
	assert_true(st.refused >= 2);
}

/* Quotas: recipients per calendar day (452 4.5.3) and month (550 5.7.1),
 * including what the store's usage already counts. */
static void test_quotas(void **state)
{
	struct fixture *f = *state;
	struct store_usage u = {.tenant_id = 0,
	                        .credential_id = 0,
	                        .hour = T0 / S / 3600 - 48,
	                        .metric = "accepted_recipients",
	                        .count = 7};
	struct policy_verdict v;
	struct policy_txn txn = {0};
	const char *reason;
	char *err = NULL;
	int ok = 0;

	u.tenant_id = f->acme;
	/* 7 recipients two days ago, in November: neither today's nor this
	 * month's */
	assert_int_equal(store_usage_add(f->st, &u, 1, NULL, 0, &err), 0);
	u.hour = T0 / S / 3600 + 1; /* 01:00 today */
	u.count = 2;
	assert_int_equal(store_usage_add(f->st, &u, 1, NULL, 0, &err), 0);
	set_limit(f, f->acme, 0, "quota_day", 5);
	set_limit(f, f->acme, 0, "quota_month", 8);
	policy_limits_mail(f->pl, f->st, &f->c1, 0, T0 + 2 * 3600 * S, &txn, &v, &reason);
	for (int i = 0; i < 10; i++) {
		policy_limits_rcpt(f->pl, f->st, &f->c1, T0 + 2 * 3600 * S, &txn, &v, &reason);
		if (v.code != 250)
			break;
		ok++;
	}
	assert_int_equal(ok, 3); /* 2 already today */
	assert_int_equal(v.code, 452);
	assert_string_equal(v.enhanced, "4.5.3");
	assert_string_equal(reason, "quota_day");
	assert_non_null(strstr(v.text, "renews at 2026-12-02T00:00:00Z"));
	policy_limits_commit(f->pl, &txn);
	/* the next day: the day renews, the month has 5 + 3 more */
	policy_limits_mail(f->pl, f->st, &f->c1, 0, T0 + 86400 * S, &txn, &v, &reason);
	ok = 0;
	for (int i = 0; i < 10; i++) {
		policy_limits_rcpt(f->pl, f->st, &f->c1, T0 + 86400 * S, &txn, &v, &reason);
		if (v.code != 250)
			break;
		ok++;
	}
	assert_int_equal(ok, 3);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enhanced, "5.7.1");
	assert_string_equal(reason, "quota_month");
	assert_non_null(strstr(v.text, "renews at 2027-01-01T00:00:00Z"));
	policy_limits_commit(f->pl, &txn);
}

/* A login's limits are its own; the tenant's hold for all its logins. */
static void test_per_credential(void **state)
{
	struct fixture *f = *state;
	struct policy_verdict v;
	struct policy_stats st;
	const char *reason;

	set_limit(f, f->acme, f->app1, "messages_per_hour", 1);
	set_limit(f, f->acme, 0, "messages_per_hour", 3);
	assert_int_equal(mail(f, &f->c1, T0, &v, &reason), 250);
	assert_int_equal(mail(f, &f->c1, T0, &v, &reason), 451);
	assert_non_null(strstr(v.text, "login app1"));
	assert_int_equal(mail(f, &f->c2, T0, &v, &reason), 250);
	assert_int_equal(mail(f, &f->c2, T0, &v, &reason), 250);
	assert_int_equal(mail(f, &f->c2, T0, &v, &reason), 451);
	assert_non_null(strstr(v.text, "tenant acme"));
	/* another tenant is untouched; an override removed is the default */
	assert_int_equal(mail(f, &f->relay, T0, &v, &reason), 250);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_CREDENTIAL, f->app1, &st), 0);
	assert_int_equal(st.messages, 1);
	assert_int_equal(st.refused, 1);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_TENANT, f->acme, &st), 0);
	assert_int_equal(st.messages, 3);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_TENANT, 9999, &st), -1);
}

/* Defaults come from the configuration; a tenant override replaces them,
 * 0 lifts them. */
static void test_defaults(void **state)
{
	struct fixture *f = *state;
	uint64_t def[POLICY_LIMIT_COUNT] = {0};
	struct policy_verdict v;
	struct policy_txn txn = {0};
	const char *reason;

	def[POLICY_MESSAGE_SIZE] = 1000;
	def[POLICY_MESSAGES_PER_MINUTE] = 1;
	policy_limits_free(&f->pl);
	f->pl = policy_limits_new(def);
	policy_limits_mail(f->pl, f->st, &f->relay, 1001, T0, &txn, &v, &reason);
	assert_int_equal(v.code, 552);
	assert_string_equal(v.enhanced, "5.3.4");
	assert_string_equal(reason, "message_size");
	policy_limits_mail(f->pl, f->st, &f->relay, 1000, T0, &txn, &v, &reason);
	assert_int_equal(v.code, 250);
	policy_limits_data(f->pl, f->st, &f->relay, 1001, T0, &v, &reason);
	assert_int_equal(v.code, 552);
	policy_limits_data(f->pl, f->st, &f->relay, 1000, T0, &v, &reason);
	assert_int_equal(v.code, 250);
	policy_limits_commit(f->pl, &txn);
	assert_int_equal(mail(f, &f->relay, T0, &v, &reason), 451);
	set_limit(f, f->beta, 0, "messages_per_minute", 0);
	assert_int_equal(mail(f, &f->relay, T0, &v, &reason), 250);
	assert_int_equal(policy_limit_from_name("quota_month"), POLICY_QUOTA_MONTH);
	assert_string_equal(policy_limit_name(POLICY_RECIPIENTS_PER_MESSAGE),
	                    "recipients_per_message");
	assert_int_equal(policy_limit_from_name("nope"), -1);
}

static void sin4(struct sockaddr_storage *ss, const char *a)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof *ss);
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
}

static void test_auth_network(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	struct policy_stats st;
	char net[STORE_CIDR_MAX + 1], *err = NULL;
	int outside, isnew;

	/* not bound: anywhere; the first network is a baseline */
	sin4(&ss, "192.0.2.77");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_false(outside);
	assert_false(isnew);
	assert_string_equal(net, "192.0.2.0/24");
	sin4(&ss, "192.0.2.1");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_false(isnew);
	sin4(&ss, "203.0.113.9");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_true(isnew);
	assert_false(outside);
	/* bound */
	assert_int_equal(store_credential_network_add(f->st, f->app1, "192.0.2.0/25", &err), 0);
	sin4(&ss, "192.0.2.200");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_true(outside);
	assert_false(isnew);
	/* refused from a network never seen: not recorded, so still new later */
	sin4(&ss, "198.51.100.5");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_true(outside);
	assert_false(isnew);
	/* the same network where outside logins are only flagged: new, then known */
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     0, &outside, &isnew, net),
	                 0);
	assert_true(outside);
	assert_true(isnew);
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     0, &outside, &isnew, net),
	                 0);
	assert_false(isnew);
	sin4(&ss, "192.0.2.100");
	assert_int_equal(policy_auth_network(f->pl, f->st, f->acme, f->app1, (struct sockaddr *)&ss,
	                                     1, &outside, &isnew, net),
	                 0);
	assert_false(outside);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_CREDENTIAL, f->app1, &st), 0);
	assert_int_equal(st.auth_new_network, 2);
	assert_int_equal(st.auth_outside, 4);
	assert_true(st.last_new_network > 0);
	assert_int_equal(policy_limits_stats(f->pl, POLICY_TENANT, f->acme, &st), 0);
	assert_int_equal(st.auth_new_network, 2);
	/* IPv6 counts by /64 */
	memset(&ss, 0, sizeof ss);
	s6->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &s6->sin6_addr), 1);
	assert_int_equal(policy_address_network((struct sockaddr *)&ss, net), 0);
	assert_string_equal(net, "2001:db8:1:2::/64");
}

static void test_suppression(void **state)
{
	struct fixture *f = *state;
	struct store_suppression x = {0};
	struct smtp_address a;
	struct policy_verdict v;
	const char *why;
	char *err = NULL;

	x.tenant_id = f->acme;
	strcpy(x.address, "gone@example.org");
	strcpy(x.source, "bounce");
	assert_int_equal(store_suppression_add(f->st, &x, &err), 0);
	assert_int_equal(smtp_address_parse("<Gone@Example.ORG>", 18, 0, &a, &why), 0);
	assert_int_equal(policy_check_suppressed(f->st, &f->c1, &a, &v), 0);
	assert_int_equal(v.code, 550);
	assert_string_equal(v.enhanced, "5.1.1");
	assert_non_null(strstr(v.text, "tenant acme's suppression list"));
	/* another tenant's list is its own */
	assert_int_equal(policy_check_suppressed(f->st, &f->relay, &a, &v), 0);
	assert_int_equal(v.code, 250);
	assert_true(policy_suppress_reply(550, "5.1.1", "550 5.1.1 no"));
	assert_true(policy_suppress_reply(550, "5.1.10", "550 5.1.10 null MX"));
	assert_false(policy_suppress_reply(550, "5.7.1", "550 5.7.1 spam"));
	assert_false(policy_suppress_reply(450, "4.1.1", "450 4.1.1 later"));
	assert_false(policy_suppress_reply(550, "", "550 no such user"));
	/* no ENHANCEDSTATUSCODES: from the text */
	assert_true(policy_suppress_reply(550, "", "550 5.1.1 No such user here"));
	assert_true(policy_suppress_reply(553, NULL, "553-5.1.3 bad address"));
	assert_false(policy_suppress_reply(550, "", "550 5.1.x"));
	assert_false(policy_suppress_reply(550, "", "550 5.7.1 denied"));
	assert_false(policy_suppress_reply(450, "", "450 5.1.1 odd"));
	assert_false(policy_suppress_reply(550, "", "550"));
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	struct policy_usage *u = policy_usage_new();
	struct store_usage *rows = NULL;
	struct store_suppression x;
	int64_t now = T0 / S;
	size_t n = 0;
	char *err = NULL;

	assert_non_null(u);
	for (int i = 0; i < 10; i++)
		policy_usage_count(u, f->acme, f->app1, "accepted_messages", 1, now);
	policy_usage_count(u, f->acme, 0, "delivered", 4, now);
	policy_usage_count(u, f->acme, 0, "delivered", 1, now + 3600);
	policy_usage_refused(u, f->acme, f->app1, "quota_day", now);
	policy_usage_suppress(u, f->acme, "Dead@Example.org", "550 5.1.1 no", now);
	assert_int_equal(policy_usage_flush(u, f->st), 0);
	assert_int_equal(policy_usage_flush(u, f->st), 0); /* nothing twice */
	assert_int_equal(store_usage_list(f->st, f->acme, 0, &rows, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(rows[0].metric, "accepted_messages");
	assert_int_equal(rows[0].count, 10);
	assert_string_equal(rows[1].metric, "delivered");
	assert_int_equal(rows[1].count, 4);
	assert_string_equal(rows[2].metric, "refused:quota_day");
	assert_int_equal(rows[3].hour, now / 3600 + 1);
	free(rows);
	assert_int_equal(store_suppression_get(f->st, f->acme, "dead@example.org", &x, &err), 0);
	assert_string_equal(x.source, "bounce");
	assert_string_equal(x.reason, "550 5.1.1 no");
	policy_usage_free(&u);
	assert_null(u);
}

/* util/gcra.c itself: several cells at once, the wait, "never", refunds. */
static void test_gcra_cells(void **state)
{
	struct util_gcra g = {0};
	int64_t i = util_gcra_interval(60 * S, 6), wait; /* 6 a minute: 10 s */

	(void)state;
	assert_int_equal(i, 10 * S);
	assert_int_equal(util_gcra_interval(S, 0), 0);
	assert_int_equal(util_gcra_interval(S, 3), 333334); /* rounded up */
	/* a burst of 6: 4 cells, then 2, then none */
	assert_true(util_gcra_check(&g, i, 6, 4, T0, &wait));
	util_gcra_add(&g, i, 4, T0);
	assert_false(util_gcra_check(&g, i, 6, 3, T0, &wait));
	assert_int_equal(wait, 10 * S);
	assert_true(util_gcra_check(&g, i, 6, 2, T0, &wait));
	util_gcra_add(&g, i, 2, T0);
	assert_false(util_gcra_check(&g, i, 6, 1, T0, &wait));
	assert_int_equal(wait, 10 * S);
	assert_true(util_gcra_check(&g, i, 6, 1, T0 + 10 * S, &wait));
	/* more than the burst never fits */
	assert_false(util_gcra_check(&g, i, 6, 7, T0 + 3600 * S, &wait));
	assert_int_equal(wait, -1);
	/* given back: fits again at once */
	util_gcra_refund(&g, i, 2);
	assert_true(util_gcra_check(&g, i, 6, 2, T0, &wait));
	/* refunds never make more than a full bucket */
	util_gcra_refund(&g, i, 100);
	assert_false(util_gcra_check(&g, i, 6, 7, T0, &wait));
	assert_true(util_gcra_check(&g, i, 6, 6, T0, &wait));
	/* no limit: always */
	assert_true(util_gcra_check(&g, 0, 1, 1000, T0, &wait));
	assert_int_equal(util_gcra_ready_us(&g, i, 6), g.tat_us - 5 * i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gcra_cells),
	    cmocka_unit_test_setup_teardown(test_rate_windows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_smooth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recipients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quotas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_per_credential, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth_network, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_suppression, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
