/*
 * test_contain: the containment model (policy/contain.c) on replayed
 * traffic.  Two figures of issue 4 come from here: how many messages a
 * simulated compromise gets out before its login is held, and that an
 * honest tenant's normal fortnight, with a newsletter at 5 times its usual
 * rate, triggers nothing.  Both are printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/policy.h"

#define T0 1795996800 /* Monday 2026-11-30 00:00 UTC */
#define HOUR 3600
#define NDOMAINS 40
#define MAX_RCPTS 50

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((rng_state >> 33) % n);
}

/* "PREFIXi.example" */
static uint64_t dom(const char *prefix, unsigned i)
{
	char name[64];
	int n = snprintf(name, sizeof name, "%s%u.example", prefix, i);

	return policy_contain_hash(name, (size_t)n);
}

struct sent {
	unsigned msgs, rcpts, hours;
	enum policy_contain_level worst;
	double max_score;
};

/* One message of nrcpts recipients, domains from the tenant's usual set
 * (or PREFIXn.example from base on, when prefix is set). */
static enum policy_contain_level send_msg(struct policy_contain *pc, int64_t tenant, int64_t cred,
				      int64_t now, size_t nrcpts, const char *prefix, unsigned base,
				      uint64_t body, struct sent *st)
{
	uint64_t domains[MAX_RCPTS];
	struct policy_contain_message m = {.tenant_id = tenant, .credential_id = cred,
					   .rcpt_domains = domains, .nrcpts = nrcpts,
					   .body_hash = body};
	struct policy_contain_verdict v;
	enum policy_contain_level l;

	assert_true(nrcpts <= MAX_RCPTS);
	for (size_t i = 0; i < nrcpts; i++)
		domains[i] = prefix ? dom(prefix, base + (unsigned)i) : dom("customer",
								    rnd(NDOMAINS));
	l = policy_contain_message(pc, &m, now, &v);
	if (st != NULL) {
		st->msgs++;
		st->rcpts += (unsigned)nrcpts;
		if (l > st->worst)
			st->worst = l;
		if (v.credential.total > st->max_score)
			st->max_score = v.credential.total;
	}
	return l;
}

/* A fortnight of office hours: 8 to 18 on weekdays, 10 to 30 messages an
 * hour of 1 to 3 recipients each at the tenant's 40 customer domains,
 * a new customer domain now and then, logins from its two networks. */
static void honest_fortnight(struct policy_contain *pc, int64_t tenant, int64_t cred,
			     struct sent *st)
{
	for (int day = 0; day < 14; day++) {
		if (day % 7 >= 5)
			continue;
		for (int h = 8; h < 18; h++) {
			int64_t t = T0 + (int64_t)day * 24 * HOUR + (int64_t)h * HOUR;
			unsigned n = 10 + rnd(21);
			if (st != NULL)
				st->hours++;
			policy_contain_auth(pc, tenant, cred, 0, 0, t);
			for (unsigned i = 0; i < n; i++)
				send_msg(pc, tenant, cred, t + 60 * i, 1 + rnd(3), NULL, 0,
				     rnd(1000) + 1, st);
			if (rnd(20) == 0) /* a new customer */
				send_msg(pc, tenant, cred, t + 3000, 1, "new",
				     (unsigned)(day * 100 + h), 7, st);
		}
	}
}

static void test_honest_tenant_and_newsletter(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	struct sent st = {0}, nl = {0};
	int64_t t = T0 + 15 * 24 * HOUR + 10 * HOUR; /* the Tuesday after */

	(void)state;
	rng_state = 1;
	assert_non_null(pc);
	honest_fortnight(pc, 1, 11, &st);
	assert_int_equal(st.worst, POLICY_CONTAIN_NONE);
	/* the newsletter: 5 times the usual hour's recipients, one body, to
	 * the usual customers, three new subscribers among them */
	policy_contain_auth(pc, 1, 11, 0, 0, t);
	send_msg(pc, 1, 11, t, 3, "subscriber", 1, 0xbeef, &nl);
	for (unsigned i = 0; nl.rcpts < 5 * st.rcpts / st.hours; i++)
		send_msg(pc, 1, 11, t + 60 + 10 * i, 5, NULL, 0, 0xbeef, &nl);
	printf("# honest fortnight: %u messages, %u recipients in %u hours, highest score %.2f, "
	       "level %s\n",
	       st.msgs, st.rcpts, st.hours, st.max_score, policy_contain_level_name(st.worst));
	printf("# newsletter: %u recipients in one hour (%.1fx the usual), highest score %.2f, "
	       "level %s\n",
	       nl.rcpts, (double)nl.rcpts * st.hours / st.rcpts, nl.max_score,
	       policy_contain_level_name(nl.worst));
	assert_true(nl.rcpts * st.hours >= 5 * st.rcpts);
	assert_int_equal(nl.worst, POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 11, t + 1700),
			 POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 1, t + 1700), POLICY_CONTAIN_NONE);
	policy_contain_free(&pc);
	assert_null(pc);
}

/* The same login, its password stolen: from a new network, bursts of
 * recipients at domains it never wrote to, one body.  Count what leaves
 * before it is held (a held message does not leave). */
static void test_compromise_contained(void **state)
{
	static const size_t per_msg[] = {1, 5, 20};
	(void)state;

	for (size_t k = 0; k < sizeof per_msg / sizeof per_msg[0]; k++) {
		struct policy_contain *pc = policy_contain_new(NULL);
		int64_t t = T0 + 15 * 24 * HOUR + 3 * HOUR; /* 3 am */
		unsigned left = 0;
		enum policy_contain_level l = POLICY_CONTAIN_NONE;

		rng_state = 2;
		honest_fortnight(pc, 1, 11, NULL);
		policy_contain_auth(pc, 1, 11, 1, 0, t);
		for (unsigned i = 0; i < 100 && l < POLICY_CONTAIN_HOLD; i++) {
			l = send_msg(pc, 1, 11, t + i, per_msg[k], "victim",
				 i * (unsigned)per_msg[k], 0x5ba3, NULL);
			if (l < POLICY_CONTAIN_HOLD)
				left++;
		}
		printf("# compromise, %zu recipients a message: %u messages left before %s\n",
		       per_msg[k], left, policy_contain_level_name(l));
		assert_true(l >= POLICY_CONTAIN_HOLD);
		assert_true(left <= 10);
		/* the login, not its tenant: the tenant's other login sends on */
		assert_int_not_equal(policy_contain_level(pc, POLICY_TENANT, 1, t + 200),
				     POLICY_CONTAIN_SUSPEND);
		assert_int_equal(send_msg(pc, 1, 12, t + 300, 1, NULL, 0, 1, NULL), POLICY_CONTAIN_NONE);
		policy_contain_free(&pc);
	}
}

/* Hold comes before suspend; suspend stays until released; two suspended
 * logins suspend their tenant, and releasing one lifts that count. */
static void test_grades_and_release(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	int64_t t = T0 + 15 * 24 * HOUR + 3 * HOUR;
	enum policy_contain_level l = POLICY_CONTAIN_NONE, seen_hold = POLICY_CONTAIN_NONE;

	(void)state;
	rng_state = 3;
	honest_fortnight(pc, 1, 11, NULL);
	honest_fortnight(pc, 1, 12, NULL);
	policy_contain_auth(pc, 1, 11, 0, 1, t); /* outside its bound networks */
	for (unsigned i = 0; i < 200 && l < POLICY_CONTAIN_SUSPEND; i++) {
		l = send_msg(pc, 1, 11, t + i, 20, "spam", i * 20, 0x5ba3, NULL);
		if (l == POLICY_CONTAIN_HOLD)
			seen_hold = l;
	}
	assert_int_equal(l, POLICY_CONTAIN_SUSPEND);
	assert_int_equal(seen_hold, POLICY_CONTAIN_HOLD);
	/* a later hour does not lift it */
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 11, t + 5 * HOUR),
			 POLICY_CONTAIN_SUSPEND);
	assert_int_not_equal(policy_contain_level(pc, POLICY_TENANT, 1, t + 5 * HOUR),
			     POLICY_CONTAIN_SUSPEND);
	/* the second login goes the same way: now the tenant is suspended */
	t += 6 * HOUR;
	policy_contain_auth(pc, 1, 12, 0, 1, t);
	l = POLICY_CONTAIN_NONE;
	for (unsigned i = 0; i < 200 && l < POLICY_CONTAIN_SUSPEND; i++)
		l = send_msg(pc, 1, 12, t + i, 20, "spam", 9000 + i * 20, 0x5ba3, NULL);
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 1, t + 300),
			 POLICY_CONTAIN_SUSPEND);
	/* the operator: the tenant released, one login resumed */
	policy_contain_release(pc, POLICY_TENANT, 1);
	policy_contain_release(pc, POLICY_CREDENTIAL, 11);
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 1, t + 400), POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 11, t + 400),
			 POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 12, t + 400),
			 POLICY_CONTAIN_SUSPEND);
	policy_contain_release(pc, POLICY_CREDENTIAL, 12);
	policy_contain_release(pc, POLICY_CREDENTIAL, 99); /* unknown: nothing */
	policy_contain_free(&pc);
}

/* A new tenant has no baseline: every domain is new to it, and that alone
 * must not count; a throttle lifts with the hour. */
static void test_young_tenant_and_throttle(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	struct sent st = {0};
	int64_t t = T0;

	(void)state;
	for (unsigned i = 0; i < 30; i++)
		send_msg(pc, 2, 21, t + i * 60, 2, "first", i * 2, i + 1, &st);
	assert_int_equal(st.worst, POLICY_CONTAIN_NONE);
	/* failures: half of 40 recipients bounced, from a new network */
	policy_contain_auth(pc, 2, 21, 1, 0, t + 1900);
	policy_contain_outcome(pc, 2, 21, 40, t + 2000);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 21, t + 2000),
			 POLICY_CONTAIN_THROTTLE);
	/* throttled: one message a minute */
	assert_int_equal(policy_contain_wait(pc, POLICY_CREDENTIAL, 21, t + 2000), 0);
	send_msg(pc, 2, 21, t + 2000, 1, "first", 0, 1, NULL);
	assert_int_equal(policy_contain_wait(pc, POLICY_CREDENTIAL, 21, t + 2010), 50);
	assert_int_equal(policy_contain_wait(pc, POLICY_CREDENTIAL, 21, t + 2060), 0);
	assert_int_equal(policy_contain_wait(pc, POLICY_CREDENTIAL, 99, t + 2060), 0);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 21, t + HOUR + 10),
			 POLICY_CONTAIN_NONE);
	/* content: a virus, then spam, from a login */
	policy_contain_scan(pc, 2, 21, 0, 1, t + 2 * HOUR);
	policy_contain_scan(pc, 2, 21, 1, 0, t + 2 * HOUR + 1);
	policy_contain_scan(pc, 2, 21, 1, 0, t + 2 * HOUR + 2);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 21, t + 2 * HOUR + 3),
			 POLICY_CONTAIN_THROTTLE);
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 2, t + 2 * HOUR + 3),
			 POLICY_CONTAIN_NONE);
	assert_string_equal(policy_contain_level_name(POLICY_CONTAIN_HOLD), "hold");
	policy_contain_free(&pc);
}

/* Mail without a login (a trusted network on the relay port) is judged
 * on the tenant's own traffic. */
static void test_relay_tenant_judged(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	int64_t t = T0 + 15 * 24 * HOUR + 3 * HOUR;
	enum policy_contain_level l = POLICY_CONTAIN_NONE;
	unsigned left = 0;

	(void)state;
	rng_state = 4;
	honest_fortnight(pc, 3, 0, NULL);
	for (unsigned i = 0; i < 100 && l < POLICY_CONTAIN_HOLD; i++) {
		l = send_msg(pc, 3, 0, t + i, 5, "victim", i * 5, 0x5ba3, NULL);
		left += l < POLICY_CONTAIN_HOLD;
	}
	printf("# compromised machine on a trusted network: %u messages left before %s\n", left,
	       policy_contain_level_name(l));
	assert_true(l >= POLICY_CONTAIN_HOLD);
	assert_true(left <= 10);
	policy_contain_free(&pc);
}

/* A restart: the baselines exported after the fortnight, imported into a
 * new model, judge the same; a second export has nothing new; a stored
 * suspension comes back as it was. */
static void test_export_import(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL), *again = policy_contain_new(NULL);
	struct store_contain_baseline *list = NULL;
	int64_t t = T0 + 15 * 24 * HOUR + 3 * HOUR;
	enum policy_contain_level l = POLICY_CONTAIN_NONE;
	size_t n = 0;
	unsigned left = 0;

	(void)state;
	rng_state = 5;
	honest_fortnight(pc, 1, 11, NULL);
	policy_contain_level(pc, POLICY_CREDENTIAL, 11, t); /* the last hour folds in */
	policy_contain_level(pc, POLICY_TENANT, 1, t);
	assert_int_equal(policy_contain_export(pc, &list, &n), 0);
	assert_int_equal(n, 2); /* the login and its tenant */
	for (size_t i = 0; i < n; i++) {
		assert_true(list[i].hours >= 24);
		assert_true(list[i].ndomains >= NDOMAINS);
		assert_int_equal(list[i].tenant_id, 1);
	}
	assert_int_equal(policy_contain_import(again, list, n), 0);
	store_contain_baselines_free(list, n);
	assert_int_equal(policy_contain_export(pc, &list, &n), 0);
	assert_int_equal(n, 0);
	store_contain_baselines_free(list, n);

	/* the restarted model knows the customers (nothing raised) and
	 * still catches the compromise */
	assert_int_equal(send_msg(again, 1, 11, t - 2 * HOUR, 3, NULL, 0, 9, NULL),
			 POLICY_CONTAIN_NONE);
	policy_contain_auth(again, 1, 11, 1, 0, t);
	for (unsigned i = 0; i < 100 && l < POLICY_CONTAIN_HOLD; i++) {
		l = send_msg(again, 1, 11, t + i, 5, "victim", i * 5, 0x5ba3, NULL);
		left += l < POLICY_CONTAIN_HOLD;
	}
	assert_true(l >= POLICY_CONTAIN_HOLD);
	assert_true(left <= 10);

	policy_contain_set_level(pc, POLICY_CREDENTIAL, 11, 1, POLICY_CONTAIN_SUSPEND, 0);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 11, t), POLICY_CONTAIN_SUSPEND);
	policy_contain_free(&pc);
	policy_contain_free(&again);
}

/* A throttle lifts when the hour it was set in ends, and each lift is
 * reported once: found by policy_contain_lifts() itself, or after a MAIL
 * found it lifted.  Holds and suspensions wait for the operator. */
static void test_throttle_lifts(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	struct policy_contain_lift out[4];
	int64_t t = T0 + 10 * HOUR + 1800; /* half past */

	(void)state;
	policy_contain_set_level(pc, POLICY_CREDENTIAL, 21, 2, POLICY_CONTAIN_THROTTLE, t);
	policy_contain_set_level(pc, POLICY_TENANT, 3, 3, POLICY_CONTAIN_THROTTLE, t - 2 * HOUR);
	policy_contain_set_level(pc, POLICY_CREDENTIAL, 22, 2, POLICY_CONTAIN_HOLD, t - 2 * HOUR);
	/* the tenant's throttle is of an hour that is over: lifted now */
	assert_int_equal(policy_contain_lifts(pc, t, out, 4), 1);
	assert_int_equal(out[0].kind, POLICY_TENANT);
	assert_int_equal(out[0].id, 3);
	assert_int_equal(out[0].tenant_id, 3);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 21, t), POLICY_CONTAIN_THROTTLE);
	assert_int_equal(policy_contain_lifts(pc, t + 1799, out, 4), 0);
	/* the hour ends: the login's throttle lifts, reported once */
	assert_int_equal(policy_contain_lifts(pc, t + 1800, out, 4), 1);
	assert_int_equal(out[0].kind, POLICY_CREDENTIAL);
	assert_int_equal(out[0].id, 21);
	assert_int_equal(out[0].tenant_id, 2);
	assert_int_equal(policy_contain_lifts(pc, t + 1900, out, 4), 0);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 21, t + 1900),
			 POLICY_CONTAIN_NONE);
	/* lifted by a look at it first: still reported, once */
	policy_contain_set_level(pc, POLICY_CREDENTIAL, 23, 2, POLICY_CONTAIN_THROTTLE, t + 1900);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 23, t + 5 * HOUR),
			 POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_lifts(pc, t + 5 * HOUR, out, 4), 1);
	assert_int_equal(out[0].id, 23);
	assert_int_equal(policy_contain_lifts(pc, t + 5 * HOUR, out, 4), 0);
	/* the hold stays */
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 22, t + 5 * HOUR),
			 POLICY_CONTAIN_HOLD);
	policy_contain_free(&pc);
}

/* Egress: port-25 attempts refused from a tenant's networks.  Nothing for
 * an honest tenant with none; alone at most a throttle (several machines),
 * never a hold; together with another signal of its relay mail, a hold. */
static void test_egress_blocked(void **state)
{
	struct policy_contain *pc = policy_contain_new(NULL);
	struct policy_contain_signals sig;
	int64_t t = T0 + 15 * 24 * HOUR + 3 * HOUR;
	enum policy_contain_level l = POLICY_CONTAIN_NONE;
	unsigned left = 0;

	(void)state;
	rng_state = 6;
	honest_fortnight(pc, 3, 0, NULL);
	/* zero blocks: nothing, and nothing for a tenant the model never saw */
	assert_int_equal(policy_contain_blocked(pc, 3, 0, 0, t, &sig), POLICY_CONTAIN_NONE);
	assert_true(sig.egress == 0.0 && sig.total < 1.0);
	assert_int_equal(policy_contain_blocked(pc, 77, 0, 0, t, &sig), POLICY_CONTAIN_NONE);
	assert_true(sig.total == 0.0);
	assert_int_equal(send_msg(pc, 3, 0, t + 1, 2, NULL, 0, 5, NULL), POLICY_CONTAIN_NONE);
	/* one machine retrying, many times: 2.5 at most, no throttle */
	assert_int_equal(policy_contain_blocked(pc, 3, 40, 1, t + 60, &sig), POLICY_CONTAIN_NONE);
	assert_true(sig.egress > 0.9 && sig.egress < 1.1);
	assert_int_equal(policy_contain_blocked(pc, 3, 5000, 1, t + 120, &sig),
			 POLICY_CONTAIN_NONE);
	assert_true(sig.egress > 2.49 && sig.egress < 2.51);
	/* three machines: the throttle, and no more however many attempts */
	assert_int_equal(policy_contain_blocked(pc, 3, 100, 3, t + 180, &sig),
			 POLICY_CONTAIN_THROTTLE);
	assert_true(sig.egress > 2.99 && sig.egress <= 3.0);
	assert_int_equal(policy_contain_blocked(pc, 3, 100000, 500, t + 240, &sig),
			 POLICY_CONTAIN_THROTTLE);
	assert_true(sig.egress <= 3.0);
	printf("# egress alone: 100,000 attempts from 500 addresses score %.2f, level %s\n",
	       sig.total, policy_contain_level_name(POLICY_CONTAIN_THROTTLE));
	/* relay mail is paced, a login's is not the tenant's to pace */
	send_msg(pc, 3, 0, t + 300, 1, NULL, 0, 5, NULL);
	assert_true(policy_contain_wait(pc, POLICY_TENANT, 3, t + 310) > 0);
	/* the hour ends: the throttle lifts, the signal is gone */
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 3, t + HOUR), POLICY_CONTAIN_NONE);
	assert_int_equal(policy_contain_blocked(pc, 3, 0, 0, t + HOUR, &sig), POLICY_CONTAIN_NONE);
	assert_true(sig.egress == 0.0);

	/* one bot (2.5) and a virus in the relay mail (2): hold */
	t += 2 * HOUR;
	policy_contain_blocked(pc, 3, 200, 1, t, NULL);
	policy_contain_scan(pc, 3, 0, 0, 1, t + 10);
	assert_int_equal(policy_contain_level(pc, POLICY_TENANT, 3, t + 11), POLICY_CONTAIN_HOLD);
	policy_contain_release(pc, POLICY_TENANT, 3);

	/* one bot and the trusted network blasting unfamiliar domains: held
	 * sooner than without the bot (test_relay_tenant_judged: 2 left) */
	t += 2 * HOUR;
	policy_contain_blocked(pc, 3, 200, 1, t, NULL);
	for (unsigned i = 0; i < 100 && l < POLICY_CONTAIN_HOLD; i++) {
		l = send_msg(pc, 3, 0, t + 1 + i, 5, "victim", i * 5, 0x5ba3, NULL);
		left += l < POLICY_CONTAIN_HOLD;
	}
	printf("# compromised machine on a trusted network, with a bot's port-25 attempts: "
	       "%u messages left before %s\n",
	       left, policy_contain_level_name(l));
	assert_true(l >= POLICY_CONTAIN_HOLD);
	assert_true(left <= 1);
	/* samples never suspend: that stays graded on messages */
	for (unsigned i = 0; i < 20; i++)
		assert_true(policy_contain_blocked(pc, 3, 1000, 10, t + 200 + i, NULL) <
			    POLICY_CONTAIN_SUSPEND);
	/* a login's own judgement does not see its tenant's blocks */
	policy_contain_auth(pc, 4, 41, 0, 0, t);
	policy_contain_blocked(pc, 4, 100000, 50, t, NULL);
	assert_int_equal(policy_contain_level(pc, POLICY_CREDENTIAL, 41, t + 1),
			 POLICY_CONTAIN_NONE);
	policy_contain_free(&pc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_honest_tenant_and_newsletter),
	    cmocka_unit_test(test_compromise_contained),
	    cmocka_unit_test(test_grades_and_release),
	    cmocka_unit_test(test_young_tenant_and_throttle),
	    cmocka_unit_test(test_relay_tenant_judged),
	    cmocka_unit_test(test_export_import),
	    cmocka_unit_test(test_egress_blocked),
	    cmocka_unit_test(test_throttle_lifts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
