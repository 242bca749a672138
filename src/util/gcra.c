/*
 * GCRA, the generic cell rate algorithm, shared by the delivery
 * scheduler (a rate per destination) and the policy limits (rates per
 * tenant and per credential).  The state is one number, the theoretical
 * arrival time (TAT) of the next cell.  With emission interval I and a
 * burst of B cells (tau = (B - 1) * I), n cells conform at now when
 *     max(TAT, now) + n * I - now <= B * I
 * and taking them moves TAT to max(TAT, now) + n * I.  The rate is smooth
 * at every scale: an exhausted limit admits the next cell one interval
 * later, not at the start of a new window, and an idle spell earns back
 * at most B cells.
 *
 * Times are microseconds, so 50,000 a minute (1.2 ms) or one a month are
 * both exact enough; a day's interval for one cell fits easily in int64.
 */
#include "util/util.h"

int64_t util_gcra_interval(int64_t period_us, uint64_t count)
{
	if (count == 0 || period_us <= 0)
		return 0;
	/* rounded up: never above the configured rate */
	return (int64_t)(((uint64_t)period_us + count - 1) / count);
}

int64_t util_gcra_ready_us(const struct util_gcra *g, int64_t interval_us, uint32_t burst)
{
	int64_t tau = burst > 1 ? (int64_t)(burst - 1) * interval_us : 0;

	return g->tat_us - tau;
}

int util_gcra_check(const struct util_gcra *g, int64_t interval_us, uint32_t burst, uint32_t n,
                    int64_t now_us, int64_t *wait_us_r)
{
	int64_t start, end, allowance;

	*wait_us_r = 0;
	if (interval_us <= 0 || n == 0)
		return 1;
	if (burst == 0)
		burst = 1;
	if (n > burst) {
		*wait_us_r = -1; /* never: more cells than the bucket holds */
		return 0;
	}
	start = g->tat_us > now_us ? g->tat_us : now_us;
	end = start + (int64_t)n * interval_us;
	allowance = (int64_t)burst * interval_us;
	if (end - now_us <= allowance)
		return 1;
	*wait_us_r = end - now_us - allowance;
	return 0;
}

void util_gcra_add(struct util_gcra *g, int64_t interval_us, uint32_t n, int64_t now_us)
{
	if (interval_us <= 0 || n == 0)
		return;
	g->tat_us = (g->tat_us > now_us ? g->tat_us : now_us) + (int64_t)n * interval_us;
}

void util_gcra_refund(struct util_gcra *g, int64_t interval_us, uint32_t n)
{
	/* A TAT pushed back below now is a full bucket, never more: every
	 * check takes max(TAT, now). */
	if (interval_us > 0)
		g->tat_us -= (int64_t)n * interval_us;
}
