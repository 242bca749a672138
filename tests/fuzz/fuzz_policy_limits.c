/*
 * libFuzzer harness for the limits model (policy/limits.c over util's
 * GCRA): the input picks limits, then a sequence of MAIL, RCPT, commit,
 * release, size checks and clock jumps.  Besides what ASan/UBSan catch
 * (overflow in the rate arithmetic with extreme limits and times), it
 * checks the model's promises: a refused command reserves nothing, a
 * released transaction gives back every recipient, and within one day
 * the quota count is exactly the recipients committed plus those
 * reserved.  One in-memory store for the whole run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static struct store *st;
static int64_t tenant;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_setup(void)
{
	char *err = NULL;

	if (st != NULL)
		return;
	if (store_open("sqlite::memory:", &st, &err) != 0 ||
	    store_tenant_add(st, "acme", &tenant, &err) != 0) {
		fprintf(stderr, "store: %s\n", err ? err : "?");
		abort();
	}
}

static uint64_t limit_value(uint8_t b)
{
	/* mostly small, sometimes none, sometimes huge */
	if (b == 0xff)
		return (uint64_t)INT64_MAX;
	if (b >= 0xf0)
		return (uint64_t)1 << (b - 0xd0);
	return b % 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_client c = {.tenant_id = 0, .tenant = "acme", .submission = 1};
	struct policy_limits *pl;
	struct policy_txn txn = {0};
	struct policy_verdict v;
	struct policy_stats s;
	const char *reason;
	int64_t now = 1796083200LL * 1000000; /* midnight UTC */
	int64_t day0 = now / 1000000 / 86400;
	uint64_t committed = 0;
	size_t i = 0;
	char *err = NULL;

	fuzz_setup();
	c.tenant_id = tenant;
	if (size < POLICY_LIMIT_COUNT)
		return 0;
	for (int k = 0; k < POLICY_LIMIT_COUNT; k++)
		if (store_limit_set(st, tenant, 0, policy_limit_name((enum policy_limit)k),
		                    limit_value(data[i++]), &err) != 0)
			abort();
	if ((pl = policy_limits_new(NULL)) == NULL)
		return 0;
	while (i < size) {
		uint8_t op = data[i++], arg = i < size ? data[i++] : 0;
		uint32_t before = txn.rcpts;

		switch (op % 6) {
		case 0:
			policy_limits_mail(pl, st, &c, arg * 1000u, now, &txn, &v, &reason);
			if (v.code != 250 && (txn.message || txn.rcpts))
				abort(); /* a refused MAIL holds nothing (the old one went back) */
			break;
		case 1:
			policy_limits_rcpt(pl, st, &c, now, &txn, &v, &reason);
			if (txn.rcpts != before + (v.code == 250 ? 1u : 0u))
				abort();
			break;
		case 2:
			committed += txn.rcpts;
			policy_limits_commit(pl, &txn);
			break;
		case 3:
			policy_limits_release(pl, &txn, now);
			if (txn.message || txn.rcpts)
				abort();
			break;
		case 4:
			now += (int64_t)arg * (arg > 200 ? 3600 : 1) * 1000000 / 4;
			break;
		case 5:
			policy_limits_data(pl, st, &c, (size_t)arg * 100, now, &v, &reason);
			break;
		}
		if (policy_limits_stats(pl, POLICY_TENANT, tenant, &s) == 0 &&
		    now / 1000000 / 86400 == day0 && s.quota_day_used != committed + txn.rcpts)
			abort();
	}
	policy_limits_release(pl, &txn, now);
	policy_limits_free(&pl);
	return 0;
}
