/*
 * limits: what may start, and how often.  The per-destination limits
 * from the configuration (a sorted table, exact keys), and the rate per
 * destination: GCRA (util/gcra.c): each destination keeps one number, the
 * theoretical arrival time (TAT) of its next job.  A job may start when
 * TAT - tau <= now (tau = (burst - 1) * interval); starting one moves TAT
 * to max(TAT, now) + interval.  So the rate is smooth at every scale: no
 * window boundary where twice the limit can pass, and an idle
 * destination earns back at most burst back-to-back starts.
 *
 * Times are kept in microseconds: 50,000 a minute is an interval of
 * 1.2 ms, which whole milliseconds would round to 60,000 or 30,000.
 */
#include <stdlib.h>
#include <string.h>

#include "sched/sched_int.h"

#define SCHED_US_PER_MINUTE 60000000LL

void sched_limits_default(struct sched_limits *l_r)
{
	*l_r = (struct sched_limits){
	    .max_conns = SCHED_MAX_CONNS_DEFAULT,
	    .max_conns_per_host = SCHED_MAX_CONNS_PER_HOST_DEFAULT,
	    .max_msgs_per_conn = SCHED_MAX_MSGS_PER_CONN_DEFAULT,
	    .max_rcpts_per_job = SCHED_MAX_RCPTS_PER_JOB_DEFAULT,
	    .rate_per_minute = 0,
	    .rate_burst = 1,
	};
}

static int sched_dest_limits_cmp(const void *a, const void *b)
{
	const struct sched_dest_limits *x = a, *y = b;

	return strcmp(x->dest, y->dest);
}

int sched_limits_sort(struct sched_dest_limits *per_dest, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(per_dest, n, sizeof *per_dest, sched_dest_limits_cmp);
	for (i = 1; i < n; i++)
		if (strcmp(per_dest[i - 1].dest, per_dest[i].dest) == 0)
			return -1;
	return 0;
}

const struct sched_limits *sched_limits_for(const struct sched_dest_limits *per_dest, size_t n,
                                            const struct sched_limits *def, const char *key)
{
	struct sched_dest_limits probe = {.dest = key};
	const struct sched_dest_limits *hit;

	if (n == 0)
		return def;
	hit = bsearch(&probe, per_dest, n, sizeof *per_dest, sched_dest_limits_cmp);
	return hit != NULL ? &hit->limits : def;
}

/* ---- GCRA (util/gcra.c, shared with the policy limits) -------------------- */

int64_t sched_gcra_interval(uint32_t per_minute)
{
	return util_gcra_interval(SCHED_US_PER_MINUTE, per_minute);
}

/* The millisecond a time in microseconds falls in (floor division). */
static int64_t sched_us_to_ms(int64_t us)
{
	return us >= 0 ? us / 1000 : -((-us + 999) / 1000);
}

/* A start is allowed in the millisecond its slot (TAT - tau) falls in:
 * the caller's clock has whole milliseconds, and waiting for the next
 * one would lose the fraction each time (1.2 ms intervals would become
 * 2 ms, 30,000 a minute instead of 50,000). */
int64_t sched_gcra_ready(const struct sched_gcra *g, int64_t interval_us, uint32_t burst)
{
	return sched_us_to_ms(util_gcra_ready_us(&g->u, interval_us, burst));
}

int sched_gcra_take(struct sched_gcra *g, int64_t interval_us, uint32_t burst, int64_t now_ms,
                    int64_t *ready_r)
{
	int64_t ready;

	*ready_r = now_ms;
	if (interval_us <= 0)
		return 1;
	ready = sched_gcra_ready(g, interval_us, burst);
	if (ready > now_ms) {
		*ready_r = ready;
		return 0;
	}
	util_gcra_add(&g->u, interval_us, 1, now_ms * 1000);
	return 1;
}
