/*
 * test_sched: the retry schedule (steps, jitter bounds, lifetime), job
 * grouping, ordering, connection and host caps, connection reuse, GCRA
 * rate smoothness over a simulated hour, holds, fairness across
 * destinations, and 100k jobs drained to the end.  The clock is fake:
 * every call gets now_ms from the test, which jumps to the wake time the
 * scheduler asked for, as the delivery engine's timer would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/sched.h"
#include "util/util.h"

#define MIN_MS (60 * 1000LL)
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)
#define T0 (1700000000LL * 1000) /* the fake clock starts here */

/* ---- helpers ---------------------------------------------------------- */

#define MAX_RCPTS 512

struct msg {
	struct spool_message m;
	struct spool_rcpt r[MAX_RCPTS];
	char addrs[MAX_RCPTS][64];
};

/* rcpts: NULL-terminated addresses, all pending. */
static void msg_init(struct msg *x, const char *id, int64_t received_s, const char *const *rcpts)
{
	size_t i;

	memset(x, 0, sizeof *x);
	util_strlcpy(x->m.id, id, sizeof x->m.id);
	x->m.received = received_s;
	x->m.sender = "sender@example.org";
	x->m.rcpts = x->r;
	for (i = 0; rcpts[i] != NULL; i++) {
		assert_true(i < MAX_RCPTS);
		util_strlcpy(x->addrs[i], rcpts[i], sizeof x->addrs[i]);
		x->r[i].addr = x->addrs[i];
	}
	x->m.nrcpts = i;
}

/* n recipients at domain. */
static void msg_init_n(struct msg *x, const char *id, int64_t received_s, const char *domain,
                       size_t n)
{
	size_t i;

	memset(x, 0, sizeof *x);
	util_strlcpy(x->m.id, id, sizeof x->m.id);
	x->m.received = received_s;
	x->m.sender = "sender@example.org";
	x->m.rcpts = x->r;
	assert_true(n <= MAX_RCPTS);
	for (i = 0; i < n; i++) {
		snprintf(x->addrs[i], sizeof x->addrs[i], "user%zu@%s", i, domain);
		x->r[i].addr = x->addrs[i];
	}
	x->m.nrcpts = n;
}

static struct sched *new_sched(const struct sched_limits *lim, uint32_t total)
{
	struct sched_config cfg;
	const char *why = NULL;
	struct sched *s;

	sched_config_default(&cfg);
	if (lim != NULL)
		cfg.limits = *lim;
	cfg.max_conns_total = total;
	cfg.seed = 42;
	s = sched_new(&cfg, &why);
	assert_non_null(s);
	return s;
}

/* One job for dest, received at T0 (seconds field from ms). */
static void add_jobs(struct sched *s, const char *domain, size_t n)
{
	static unsigned counter;
	size_t i;

	for (i = 0; i < n; i++) {
		struct msg x;
		char id[SPOOL_ID_LEN + 1];

		snprintf(id, sizeof id, "%016x", ++counter);
		msg_init_n(&x, id, T0 / 1000, domain, 1);
		assert_int_equal(sched_add(s, &x.m, NULL, NULL), 1);
	}
}

/* ---- backoff ------------------------------------------------------------ */

struct backoff_parse_case {
	const char *spec;
	int ok;
	size_t nsteps;
	uint32_t steps[8];
	const char *why;
};

/* clang-format off */
static const struct backoff_parse_case backoff_parse_cases[] = {
	{.spec = "5m,10m,20m,40m,1h,2h,4h", .ok = 1, .nsteps = 7,
	 .steps = {300, 600, 1200, 2400, 3600, 7200, 14400}},
	{.spec = "30s", .ok = 1, .nsteps = 1, .steps = {30}},
	{.spec = " 1m , 2m ,1d", .ok = 1, .nsteps = 3, .steps = {60, 120, 86400}},
	{.spec = "90", .ok = 1, .nsteps = 1, .steps = {90}},
	{.spec = "", .why = "empty schedule"},
	{.spec = "5m,", .why = "empty step"},
	{.spec = ",5m", .why = "empty step"},
	{.spec = "5m,,10m", .why = "empty step"},
	{.spec = "5x", .why = "not a duration"},
	{.spec = "0s", .why = "1s to 30d"},
	{.spec = "31d", .why = "1s to 30d"},
	{.spec = "-5m", .why = "not a duration"},
	{.spec = "1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,1m,"
	         "1m,1m,1m,1m,1m,1m,1m,1m,1m", .why = "too many"},
	{.spec = "123456789012345678901234567890123s", .why = "too long"},
};
/* clang-format on */

static void test_backoff_parse(void **state)
{
	size_t i, k;

	(void)state;
	for (i = 0; i < sizeof backoff_parse_cases / sizeof backoff_parse_cases[0]; i++) {
		const struct backoff_parse_case *c = &backoff_parse_cases[i];
		struct sched_backoff b;
		const char *why = NULL;
		int rc;

		sched_backoff_default(&b);
		rc = sched_backoff_parse(c->spec, &b, &why);
		if (!c->ok) {
			if (rc != -1 || why == NULL || strstr(why, c->why) == NULL)
				fail_msg("\"%s\": rc=%d why=\"%s\", want \"%s\"", c->spec, rc,
				         why ? why : "", c->why);
			/* unchanged */
			assert_int_equal(b.nsteps, 7);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\": %s", c->spec, why);
		assert_int_equal(b.nsteps, c->nsteps);
		for (k = 0; k < c->nsteps; k++)
			assert_int_equal(b.steps[k], c->steps[k]);
		/* jitter and lifetime are left alone */
		assert_int_equal(b.jitter_pct, SCHED_JITTER_DEFAULT);
		assert_int_equal(b.lifetime, SCHED_LIFETIME_DEFAULT);
	}
}

static void test_backoff_schedule(void **state)
{
	static const struct {
		uint32_t attempts, delay;
	} cases[] = {
	    {0, 0},    {1, 300},   {2, 600},   {3, 1200},  {4, 2400},        {5, 3600},
	    {6, 7200}, {7, 14400}, {8, 14400}, {9, 14400}, {1000000, 14400},
	};
	struct sched_backoff b;
	size_t i;

	(void)state;
	sched_backoff_default(&b);
	assert_int_equal(b.lifetime, 5 * 86400);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(sched_backoff_delay(&b, cases[i].attempts), cases[i].delay);
		/* with no jitter, next is exactly now + delay (at least 1 s) */
		b.jitter_pct = 0;
		assert_int_equal(sched_backoff_next(&b, cases[i].attempts, T0, 12345),
		                 T0 + (cases[i].delay ? cases[i].delay * 1000LL : 1000));
		b.jitter_pct = SCHED_JITTER_DEFAULT;
	}
	assert_int_equal(sched_backoff_deadline(&b, T0), T0 + 5 * DAY_MS);
}

/* +-10%: the extremes of rnd reach the bounds exactly, everything lies
 * inside, and a spread of rnd fills both sides around the mean. */
static void test_backoff_jitter(void **state)
{
	struct sched_backoff b;
	uint32_t attempts;
	uint64_t rng = 1;

	(void)state;
	sched_backoff_default(&b);
	for (attempts = 1; attempts <= 10; attempts++) {
		int64_t d = (int64_t)sched_backoff_delay(&b, attempts) * 1000;
		int64_t lo = d - d / 10, hi = d + d / 10;
		int64_t sum = 0;
		unsigned below = 0, above = 0;
		int i;

		assert_int_equal(sched_backoff_next(&b, attempts, T0, 0) - T0, lo);
		assert_int_equal(sched_backoff_next(&b, attempts, T0, UINT32_MAX) - T0, hi);
		for (i = 0; i < 10000; i++) {
			int64_t got;

			rng = rng * 6364136223846793005ull + 1442695040888963407ull;
			got = sched_backoff_next(&b, attempts, T0, (uint32_t)(rng >> 32)) - T0;
			if (got < lo || got > hi)
				fail_msg("attempt %u: delay %" PRId64 " outside [%" PRId64
				         ", %" PRId64 "]",
				         attempts, got, lo, hi);
			below += got < d;
			above += got > d;
			sum += got;
		}
		assert_true(below > 4000 && above > 4000);
		/* mean within 1% of the step */
		assert_true(llabs(sum / 10000 - d) < d / 100);
	}
	/* A short step with wide jitter still waits a second. */
	assert_int_equal(sched_backoff_parse("1s", &b, &(const char *){NULL}), 0);
	b.jitter_pct = 50;
	assert_true(sched_backoff_next(&b, 1, T0, 0) >= T0 + 1000);
	/* Jitter past 50% is clamped. */
	b.jitter_pct = 1000;
	assert_int_equal(sched_backoff_parse("1h", &b, &(const char *){NULL}), 0);
	assert_int_equal(sched_backoff_next(&b, 1, T0, 0), T0 + HOUR_MS / 2);
}

/* ---- lifetime ------------------------------------------------------------ */

struct lifetime_case {
	int64_t fail_at; /* ms after receipt */
	int expired;
	int64_t next_min; /* ms after receipt, when retried */
	int64_t next_max;
};

/* clang-format off */
static const struct lifetime_case lifetime_cases[] = {
	/* first failure: 5 min +-10% */
	{.fail_at = 0, .next_min = 270000, .next_max = 330000},
	/* late in life: the step fits before the deadline, or is cut to it */
	{.fail_at = 5 * DAY_MS - 10 * MIN_MS, .next_min = 5 * DAY_MS - 330000,
	 .next_max = 5 * DAY_MS - 270000},
	{.fail_at = 5 * DAY_MS - 4 * MIN_MS, .next_min = 5 * DAY_MS, .next_max = 5 * DAY_MS},
	{.fail_at = 5 * DAY_MS - 1, .next_min = 5 * DAY_MS, .next_max = 5 * DAY_MS},
	/* at or past the deadline: bounce */
	{.fail_at = 5 * DAY_MS, .expired = 1},
	{.fail_at = 9 * DAY_MS, .expired = 1},
};
/* clang-format on */

static void test_lifetime(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof lifetime_cases / sizeof lifetime_cases[0]; i++) {
		const struct lifetime_case *c = &lifetime_cases[i];
		struct sched *s = new_sched(NULL, 0);
		struct sched_job *j;
		struct sched_conn *conn;
		struct sched_stats st;
		int64_t wake, next;
		enum sched_defer d;

		add_jobs(s, "example.com", 1);
		assert_int_equal(sched_next(s, T0, &j, &conn, &wake), 1);
		sched_conn_close(s, &conn);
		d = sched_job_defer(s, &j, T0 + c->fail_at, &next);
		if (c->expired) {
			assert_int_equal(d, SCHED_DEFER_EXPIRED);
			assert_non_null(j); /* still ours: bounce, then done */
			assert_int_equal(j->attempts, 1);
			sched_job_done(s, &j);
			assert_null(j);
			sched_stats(s, &st);
			assert_int_equal(st.expired, 1);
			assert_int_equal(st.jobs, 0);
		} else {
			assert_int_equal(d, SCHED_DEFER_RETRY);
			assert_null(j);
			assert_true(next >= T0 + c->next_min && next <= T0 + c->next_max);
			/* nothing before its time; then it comes back */
			assert_int_equal(sched_next(s, next - 1, &j, &conn, &wake), 0);
			assert_int_equal(wake, next);
			assert_int_equal(sched_next(s, next, &j, &conn, &wake), 1);
			assert_int_equal(j->attempts, 1);
			sched_conn_close(s, &conn);
			sched_job_done(s, &j);
		}
		sched_free(&s);
		assert_null(s);
	}
}

/* A job handed out at the deadline attempt and failing again expires:
 * the whole life of one recipient whose MX never answers. */
static void test_lifetime_whole(void **state)
{
	struct sched *s = new_sched(NULL, 0);
	struct sched_job *j;
	struct sched_conn *conn;
	int64_t now = T0, wake, next;
	unsigned tries = 0;

	(void)state;
	add_jobs(s, "down.example", 1);
	for (;;) {
		if (sched_next(s, now, &j, &conn, &wake) == 0) {
			assert_true(wake != SCHED_NEVER && wake > now);
			now = wake;
			continue;
		}
		tries++;
		sched_conn_close(s, &conn);
		if (sched_job_defer(s, &j, now, &next) == SCHED_DEFER_EXPIRED)
			break;
	}
	assert_int_equal(now, T0 + 5 * DAY_MS);
	/* 7 steps (about 8h15m), then the 4h step repeated until 5 days,
	 * plus the first attempt and the one at the deadline. */
	assert_true(tries >= 34 && tries <= 36);
	assert_int_equal(j->attempts, tries);
	sched_job_done(s, &j);
	sched_free(&s);
}

/* ---- grouping ------------------------------------------------------------ */

struct group_want {
	const char *dest;
	size_t rcpts[8];
	size_t n;
};

struct group_case {
	const char *name;
	const char *rcpts[12];
	int states[12]; /* enum spool_rcpt_state per rcpt */
	uint32_t max_rcpts;
	int route; /* use the test's route function */
	int njobs;
	struct group_want want[6]; /* in the order sched_next hands them out */
};

/* Routes: anything at "corp.example" goes via "route:esp". */
static int test_route(void *ctx, const char *addr, char *key, size_t size)
{
	const char *at = strrchr(addr, '@');

	(void)ctx;
	if (at == NULL || strcmp(at + 1, "nowhere.invalid") == 0)
		return -1;
	if (strcasecmp(at + 1, "corp.example") == 0)
		return util_strlcpy(key, "route:esp", size) < size ? 0 : -1;
	return util_strlcpy(key, at + 1, size) < size ? 0 : -1;
}

/* clang-format off */
static const struct group_case group_cases[] = {
	{.name = "one domain", .rcpts = {"a@x.example", "b@x.example", "c@x.example"},
	 .njobs = 1, .want = {{"x.example", {0, 1, 2}, 3}}},
	{.name = "two domains interleaved, case folded",
	 .rcpts = {"a@x.example", "b@Y.Example", "c@X.EXAMPLE", "d@y.example"},
	 .njobs = 2, .want = {{"x.example", {0, 2}, 2}, {"y.example", {1, 3}, 2}}},
	{.name = "only pending recipients",
	 .rcpts = {"a@x.example", "b@x.example", "c@x.example", "d@x.example"},
	 .states = {SPOOL_RCPT_DELIVERED, SPOOL_RCPT_PENDING, SPOOL_RCPT_FAILED,
	            SPOOL_RCPT_PENDING},
	 .njobs = 1, .want = {{"x.example", {1, 3}, 2}}},
	{.name = "nothing pending", .rcpts = {"a@x.example"}, .states = {SPOOL_RCPT_DELIVERED},
	 .njobs = 0},
	{.name = "split past max_rcpts_per_job",
	 .rcpts = {"a@x.example", "b@x.example", "c@x.example", "d@x.example", "e@x.example"},
	 .max_rcpts = 2, .njobs = 3,
	 .want = {{"x.example", {0, 1}, 2}, {"x.example", {2, 3}, 2}, {"x.example", {4}, 1}}},
	{.name = "routes", .route = 1,
	 .rcpts = {"a@corp.example", "b@x.example", "c@CORP.example", "d@nowhere.invalid"},
	 .njobs = 2, .want = {{"route:esp", {0, 2}, 2}, {"x.example", {1}, 1}}},
	{.name = "no domain", .rcpts = {"postmaster", "a@", "b@x.example"},
	 .njobs = 1, .want = {{"x.example", {2}, 1}}},
};
/* clang-format on */

static void test_grouping(void **state)
{
	size_t i, k, n;

	(void)state;
	for (i = 0; i < sizeof group_cases / sizeof group_cases[0]; i++) {
		const struct group_case *c = &group_cases[i];
		struct sched_limits lim;
		struct sched *s;
		struct sched_job *got[6];
		struct msg x;
		int64_t wake;

		sched_limits_default(&lim);
		if (c->max_rcpts)
			lim.max_rcpts_per_job = c->max_rcpts;
		lim.max_conns = 0;
		s = new_sched(&lim, 0);
		msg_init(&x, "00000000000000aa", T0 / 1000, c->rcpts);
		for (k = 0; k < x.m.nrcpts; k++)
			x.r[k].state = (enum spool_rcpt_state)c->states[k];
		if (sched_add(s, &x.m, c->route ? test_route : NULL, NULL) != c->njobs)
			fail_msg("%s: wrong number of jobs", c->name);
		for (n = 0; n < 6; n++) {
			struct sched_conn *conn;

			if (!sched_next(s, T0, &got[n], &conn, &wake))
				break;
			sched_conn_close(s, &conn);
		}
		assert_int_equal(n, (size_t)c->njobs);
		/* The order between destinations is a detail; match by
		 * content, in order within one destination. */
		for (k = 0; k < n; k++) {
			const struct group_want *w = &c->want[k];
			size_t m, r;

			for (m = 0; m < n; m++)
				if (got[m] != NULL && strcmp(got[m]->dest, w->dest) == 0)
					break;
			if (m == n)
				fail_msg("%s: no job for %s", c->name, w->dest);
			assert_string_equal(got[m]->msg_id, "00000000000000aa");
			assert_int_equal(got[m]->nrcpts, w->n);
			for (r = 0; r < w->n; r++)
				assert_int_equal(got[m]->rcpts[r], w->rcpts[r]);
			sched_job_done(s, &got[m]);
		}
		sched_free(&s);
	}
}

/* A restart: the job takes the most attempts of its recipients and the
 * earliest next attempt, so nothing waits longer than it would have. */
static void test_grouping_from_spool_state(void **state)
{
	static const char *const rcpts[] = {"a@x.example", "b@x.example", "c@x.example", NULL};
	struct sched *s = new_sched(NULL, 0);
	struct sched_job *j;
	struct sched_conn *conn;
	struct msg x;
	int64_t wake;

	(void)state;
	msg_init(&x, "00000000000000bb", T0 / 1000 - 3600, rcpts);
	x.r[0].attempts = 2, x.r[0].next_attempt = T0 / 1000 + 600;
	x.r[1].attempts = 3, x.r[1].next_attempt = T0 / 1000 + 300;
	x.r[2].attempts = 1, x.r[2].next_attempt = T0 / 1000 + 900;
	assert_int_equal(sched_add(s, &x.m, NULL, NULL), 1);
	assert_int_equal(sched_next(s, T0, &j, &conn, &wake), 0);
	assert_int_equal(wake, T0 + 300 * 1000);
	assert_int_equal(sched_next(s, wake, &j, &conn, &wake), 1);
	assert_int_equal(j->attempts, 3);
	assert_int_equal(j->nrcpts, 3);
	assert_int_equal(j->received_ms, T0 - HOUR_MS);
	sched_conn_close(s, &conn);
	sched_job_done(s, &j);
	sched_free(&s);
}

/* ---- ordering ------------------------------------------------------------ */

/* Jobs of one destination come out by next attempt time, whatever order
 * they were deferred in; the scheduler says when the next one is due. */
static void test_ordering(void **state)
{
	static const int64_t offsets[] = {50, 10, 40, 0, 30, 20, 10};
	enum { N = sizeof offsets / sizeof offsets[0] };
	struct sched_limits lim;
	struct sched *s;
	struct sched_job *j[N];
	struct sched_conn *conn;
	int64_t wake, now, last = 0;
	size_t i;

	(void)state;
	sched_limits_default(&lim);
	lim.max_conns = 0;
	s = new_sched(&lim, 0);
	add_jobs(s, "x.example", N);
	for (i = 0; i < N; i++) {
		assert_int_equal(sched_next(s, T0, &j[i], &conn, &wake), 1);
		sched_conn_close(s, &conn);
	}
	{
		struct sched_job *none;

		assert_int_equal(sched_next(s, T0, &none, &conn, &wake), 0);
		assert_null(none);
		assert_int_equal(wake, SCHED_NEVER);
	}
	for (i = 0; i < N; i++)
		sched_job_postpone(s, &j[i], T0 + offsets[i] * 1000);
	now = T0;
	for (i = 0; i < N; i++) {
		struct sched_job *got;

		while (sched_next(s, now, &got, &conn, &wake) == 0) {
			assert_true(wake > now && wake != SCHED_NEVER);
			now = wake;
		}
		assert_true(got->next_ms >= last);
		assert_true(got->next_ms <= now);
		assert_int_equal(got->attempts, 0); /* postpone is not a failure */
		last = got->next_ms;
		sched_conn_close(s, &conn);
		sched_job_done(s, &got);
	}
	assert_int_equal(now, T0 + 50 * 1000);
	sched_free(&s);
}

/* ---- limits -------------------------------------------------------------- */

static void test_conn_caps(void **state)
{
	struct sched_limits lim;
	struct sched *s;
	struct sched_job *j[8];
	struct sched_conn *c[8];
	struct sched_stats st;
	int64_t wake;
	unsigned conns;
	int i;

	(void)state;
	sched_limits_default(&lim);
	lim.max_conns = 2;
	lim.max_conns_per_host = 3;
	s = new_sched(&lim, 5);
	add_jobs(s, "a.example", 10);
	add_jobs(s, "b.example", 10);
	add_jobs(s, "c.example", 10);

	/* Two per destination, five in all. */
	for (i = 0; i < 5; i++)
		assert_int_equal(sched_next(s, T0, &j[i], &c[i], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[5], &c[5], &wake), 0);
	assert_int_equal(wake, SCHED_NEVER);
	/* c.example has ready work only the total cap holds back */
	assert_int_equal(sched_slot_wanted(s, T0), 1);
	assert_int_equal(sched_dest_queued(s, "a.example", &conns), 8);
	assert_int_equal(conns, 2);
	sched_stats(s, &st);
	assert_int_equal(st.conns, 5);
	assert_int_equal(st.queued, 25);
	assert_int_equal(st.jobs, 30);

	/* Host caps: three at once to one MX host across destinations. */
	assert_int_equal(sched_conn_host(s, c[0], "mx.shared.example"), 0);
	assert_int_equal(sched_conn_host(s, c[1], "mx.shared.example"), 0);
	assert_int_equal(sched_conn_host(s, c[2], "mx.shared.example"), 0);
	assert_int_equal(sched_conn_host(s, c[3], "mx.shared.example"), -1);
	assert_int_equal(sched_conn_host(s, c[3], "mx2.shared.example"), 0);
	/* moving c[2] frees its place on the first host */
	assert_int_equal(sched_conn_host(s, c[2], "mx2.shared.example"), 0);
	assert_int_equal(sched_conn_host(s, c[4], "mx.shared.example"), 0);
	assert_int_equal(sched_conn_host(s, c[4], "mx.shared.example"), 0); /* same: no-op */

	/* Closing one lets exactly one more start, for a destination below
	 * its cap. */
	assert_string_equal(sched_conn_dest(c[0]), j[0]->dest);
	sched_conn_close(s, &c[0]);
	assert_null(c[0]);
	assert_int_equal(sched_next(s, T0, &j[5], &c[5], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[6], &c[6], &wake), 0);
	for (i = 1; i <= 5; i++)
		sched_conn_close(s, &c[i]);
	for (i = 0; i <= 5; i++)
		sched_job_done(s, &j[i]);
	/* Every slot is back. */
	for (i = 0; i < 5; i++)
		assert_int_equal(sched_next(s, T0, &j[i], &c[i], &wake), 1);
	for (i = 0; i < 5; i++) {
		sched_conn_close(s, &c[i]);
		sched_job_done(s, &j[i]);
	}
	sched_free(&s);
}

/* A destination resolved to n hosts opens at most n * max_conns_per_host
 * connections, below max_conns. */
static void test_dest_hosts(void **state)
{
	struct sched_limits lim;
	struct sched *s;
	struct sched_job *j[8];
	struct sched_conn *c[8];
	int64_t wake;
	int i;

	(void)state;
	sched_limits_default(&lim);
	lim.max_conns = 6;
	lim.max_conns_per_host = 2;
	s = new_sched(&lim, 0);
	add_jobs(s, "a.example", 10);
	sched_dest_hosts(s, "unknown.example", 1); /* ignored */
	assert_int_equal(sched_next(s, T0, &j[0], &c[0], &wake), 1);
	sched_dest_hosts(s, "a.example", 1);
	assert_int_equal(sched_next(s, T0, &j[1], &c[1], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[2], &c[2], &wake), 0); /* 1 host x 2 */
	assert_int_equal(wake, SCHED_NEVER);
	sched_dest_hosts(s, "a.example", 2);
	for (i = 2; i < 4; i++)
		assert_int_equal(sched_next(s, T0, &j[i], &c[i], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[4], &c[4], &wake), 0);
	sched_dest_hosts(s, "a.example", 5); /* 10 > max_conns: 6 */
	for (i = 4; i < 6; i++)
		assert_int_equal(sched_next(s, T0, &j[i], &c[i], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[6], &c[6], &wake), 0);
	sched_dest_hosts(s, "a.example", 1); /* fewer hosts now: no new ones */
	sched_conn_close(s, &c[0]);
	assert_int_equal(sched_next(s, T0, &j[6], &c[6], &wake), 0);
	for (i = 1; i < 6; i++)
		sched_conn_close(s, &c[i]);
	assert_int_equal(sched_next(s, T0, &j[6], &c[6], &wake), 1);
	sched_conn_close(s, &c[6]);
	for (i = 0; i < 7; i++)
		sched_job_done(s, &j[i]);
	sched_free(&s);
}

/* One connection carries up to max_msgs_per_conn jobs of its destination. */
static void test_conn_reuse(void **state)
{
	struct sched_limits lim;
	struct sched *s;
	struct sched_job *j;
	struct sched_conn *c;
	int64_t wake;
	int i;

	(void)state;
	sched_limits_default(&lim);
	lim.max_msgs_per_conn = 3;
	s = new_sched(&lim, 0);
	add_jobs(s, "a.example", 4);
	add_jobs(s, "b.example", 1);
	assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
	assert_string_equal(j->dest, "a.example");
	sched_job_done(s, &j);
	for (i = 0; i < 2; i++) {
		assert_int_equal(sched_conn_spent(c), 0);
		assert_int_equal(sched_next_on(s, c, T0, &j, &wake), 1);
		assert_string_equal(j->dest, "a.example"); /* never b's */
		sched_job_done(s, &j);
	}
	assert_int_equal(sched_conn_spent(c), 1);
	assert_int_equal(sched_slot_wanted(s, T0), 0); /* no total cap */
	assert_int_equal(sched_next_on(s, c, T0, &j, &wake), 0);
	assert_int_equal(wake, SCHED_NEVER);
	assert_null(j);
	sched_conn_close(s, &c);
	/* b waited its turn; a's last job follows on a new connection. */
	assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
	assert_string_equal(j->dest, "b.example");
	sched_job_done(s, &j);
	assert_int_equal(sched_next_on(s, c, T0, &j, &wake), 0);
	sched_conn_close(s, &c);
	assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
	assert_string_equal(j->dest, "a.example");
	sched_job_done(s, &j);
	/* A job not yet due does not ride along; wake says when it is. */
	add_jobs(s, "a.example", 1);
	assert_int_equal(sched_next_on(s, c, T0, &j, &wake), 1);
	sched_job_postpone(s, &j, T0 + 5000);
	assert_int_equal(sched_next_on(s, c, T0, &j, &wake), 0);
	assert_int_equal(wake, T0 + 5000);
	assert_int_equal(sched_next_on(s, c, T0 + 5000, &j, &wake), 1);
	sched_job_done(s, &j);
	sched_conn_close(s, &c);
	sched_free(&s);
}

/* Per-destination limits from the configuration; keys match without
 * regard to case, and a key given twice is refused. */
static void test_per_dest_limits(void **state)
{
	struct sched_dest_limits per[2];
	struct sched_config cfg;
	struct sched *s;
	struct sched_job *j[4];
	struct sched_conn *c[4];
	const char *why = NULL;
	int64_t wake;
	int i;

	(void)state;
	sched_config_default(&cfg);
	cfg.limits.max_conns = 3;
	per[0].dest = "Gmail.COM";
	sched_limits_default(&per[0].limits);
	per[0].limits.max_conns = 1;
	per[1].dest = "route:esp";
	sched_limits_default(&per[1].limits);
	per[1].limits.max_conns = 2;
	cfg.per_dest = per;
	cfg.nper_dest = 2;
	s = sched_new(&cfg, &why);
	assert_non_null(s);
	per[0].dest = "changed.example"; /* sched_new copied the keys */
	add_jobs(s, "gmail.com", 4);
	assert_int_equal(sched_next(s, T0, &j[0], &c[0], &wake), 1);
	assert_int_equal(sched_next(s, T0, &j[1], &c[1], &wake), 0); /* gmail.com: 1 */
	add_jobs(s, "other.example", 4);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(sched_next(s, T0, &j[i], &c[i], &wake), 1);
		assert_string_equal(j[i]->dest, "other.example");
	}
	{
		struct sched_job *none;
		struct sched_conn *cn;

		assert_int_equal(sched_next(s, T0, &none, &cn, &wake), 0); /* default: 3 */
	}
	for (i = 0; i < 4; i++) {
		sched_conn_close(s, &c[i]);
		sched_job_done(s, &j[i]);
	}
	sched_free(&s);

	per[0].dest = "a.example";
	per[1].dest = "A.example";
	assert_null(sched_new(&cfg, &why));
	assert_non_null(strstr(why, "twice"));
}

/* ---- rate ---------------------------------------------------------------- */

struct rate_case {
	const char *name;
	uint32_t per_minute, burst;
	int reuse;          /* deliver over one connection (sched_next_on) */
	int64_t hour_max;   /* starts in the hour, at most... */
	int64_t hour_min;   /* ...and at least */
	int64_t window_max; /* in any 60 s window */
	int64_t gap_min;    /* ms between starts, after the initial burst */
};

/* clang-format off */
static const struct rate_case rate_cases[] = {
	{.name = "60/min", .per_minute = 60, .burst = 1, .hour_min = 3600, .hour_max = 3600,
	 .window_max = 60, .gap_min = 1000},
	{.name = "60/min over one connection", .per_minute = 60, .burst = 1, .reuse = 1,
	 .hour_min = 3600, .hour_max = 3600, .window_max = 60, .gap_min = 1000},
	{.name = "7/min", .per_minute = 7, .burst = 1, .hour_min = 420, .hour_max = 420,
	 .window_max = 7, .gap_min = 8571},
	{.name = "600/min burst 10", .per_minute = 600, .burst = 10, .hour_min = 36000,
	 .hour_max = 36009, .window_max = 609, .gap_min = 100},
	{.name = "1/min", .per_minute = 1, .burst = 1, .hour_min = 60, .hour_max = 60,
	 .window_max = 1, .gap_min = 60000},
};
/* clang-format on */

static void run_rate_case(const struct rate_case *c)
{
	struct sched_limits lim;
	struct sched *s;
	struct sched_conn *conn = NULL;
	int64_t *starts, now = T0, wake;
	size_t n = 0, cap = 64 * 1024, i, lo;
	struct sched_stats st;

	sched_limits_default(&lim);
	lim.rate_per_minute = c->per_minute;
	lim.rate_burst = c->burst;
	lim.max_msgs_per_conn = 0;
	s = new_sched(&lim, 0);
	add_jobs(s, "rated.example", (size_t)c->hour_max + 100);
	starts = malloc(cap * sizeof *starts);
	assert_non_null(starts);
	while (now < T0 + HOUR_MS) {
		struct sched_job *j;
		int got;

		if (c->reuse && conn != NULL)
			got = sched_next_on(s, conn, now, &j, &wake);
		else
			got = sched_next(s, now, &j, &conn, &wake);
		if (!got) {
			assert_true(wake > now && wake != SCHED_NEVER);
			now = wake;
			continue;
		}
		assert_true(n < cap);
		starts[n++] = now;
		sched_job_done(s, &j);
		if (!c->reuse)
			sched_conn_close(s, &conn);
	}
	if (conn != NULL)
		sched_conn_close(s, &conn);
	/* starts in [T0, T0 + 1h) */
	while (n > 0 && starts[n - 1] >= T0 + HOUR_MS)
		n--;
	if ((int64_t)n < c->hour_min || (int64_t)n > c->hour_max)
		fail_msg("%s: %zu starts in the hour, want %" PRId64 "..%" PRId64, c->name, n,
		         c->hour_min, c->hour_max);
	/* Any 60 s window, not only whole minutes. */
	for (i = 0, lo = 0; i < n; i++) {
		while (starts[i] - starts[lo] >= MIN_MS)
			lo++;
		if ((int64_t)(i - lo + 1) > c->window_max)
			fail_msg("%s: %zu starts in 60 s ending at +%" PRId64 " ms", c->name,
			         i - lo + 1, starts[i] - T0);
	}
	/* Smooth: after the burst, evenly spaced. */
	for (i = c->burst; i < n; i++)
		if (starts[i] - starts[i - 1] < c->gap_min)
			fail_msg("%s: gap %" PRId64 " ms at start %zu", c->name,
			         starts[i] - starts[i - 1], i);
	sched_stats(s, &st);
	assert_true(st.rate_waits > 0);
	free(starts);
	sched_free(&s);
}

static void test_rate_smooth(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof rate_cases / sizeof rate_cases[0]; i++)
		run_rate_case(&rate_cases[i]);
}

static void test_gcra(void **state)
{
	struct sched_gcra g = {0};
	int64_t iv = sched_gcra_interval(50000), ready;
	int i, ok = 0;

	(void)state;
	/* 50,000 a minute is 1.2 ms apart: 50,000 in one minute, exactly. */
	assert_int_equal(iv, 1200);
	for (int64_t t = T0; t < T0 + MIN_MS; t++)
		while (sched_gcra_take(&g, iv, 1, t, &ready))
			ok++;
	assert_int_equal(ok, 50000);
	assert_int_equal(sched_gcra_interval(0), 0);
	assert_int_equal(sched_gcra_interval(UINT32_MAX), 1);

	/* Burst 3 after idling, then one per interval; ready says when. */
	memset(&g, 0, sizeof g);
	iv = sched_gcra_interval(60);
	for (i = 0; i < 3; i++)
		assert_int_equal(sched_gcra_take(&g, iv, 3, T0, &ready), 1);
	assert_int_equal(sched_gcra_take(&g, iv, 3, T0, &ready), 0);
	assert_int_equal(ready, T0 + 1000);
	assert_int_equal(sched_gcra_ready(&g, iv, 3), T0 + 1000);
	assert_int_equal(sched_gcra_take(&g, iv, 3, T0 + 999, &ready), 0);
	assert_int_equal(sched_gcra_take(&g, iv, 3, T0 + 1000, &ready), 1);
	/* A long idle spell earns back the burst, no more. */
	ok = 0;
	while (sched_gcra_take(&g, iv, 3, T0 + HOUR_MS, &ready))
		ok++;
	assert_int_equal(ok, 3);
}

/* ---- holds, fairness ----------------------------------------------------- */

/* A destination whose MX is down waits; the others do not. */
static void test_hold(void **state)
{
	struct sched *s = new_sched(NULL, 1);
	struct sched_job *j;
	struct sched_conn *c;
	int64_t wake;
	int i;

	(void)state;
	add_jobs(s, "down.example", 5);
	add_jobs(s, "up.example", 5);
	sched_dest_hold(s, "Down.Example", T0 + HOUR_MS);    /* keys in any case */
	sched_dest_hold(s, "unknown.example", T0 + HOUR_MS); /* ignored */
	for (i = 0; i < 5; i++) {
		assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
		assert_string_equal(j->dest, "up.example");
		sched_conn_close(s, &c);
		sched_job_done(s, &j);
	}
	assert_int_equal(sched_next(s, T0, &j, &c, &wake), 0);
	assert_int_equal(wake, T0 + HOUR_MS);
	assert_int_equal(sched_next(s, wake, &j, &c, &wake), 1);
	assert_string_equal(j->dest, "down.example");
	assert_int_equal(j->attempts, 0);
	sched_job_done(s, &j);
	/* A hold also stops an open connection from taking more. */
	sched_dest_hold(s, "down.example", T0 + 2 * HOUR_MS);
	assert_int_equal(sched_next_on(s, c, T0 + HOUR_MS, &j, &wake), 0);
	assert_int_equal(wake, T0 + 2 * HOUR_MS);
	sched_conn_close(s, &c);
	assert_int_equal(sched_next(s, T0 + HOUR_MS, &j, &c, &wake), 0);
	assert_int_equal(wake, T0 + 2 * HOUR_MS);
	for (i = 0; i < 4; i++) {
		assert_int_equal(sched_next(s, T0 + 2 * HOUR_MS, &j, &c, &wake), 1);
		sched_conn_close(s, &c);
		sched_job_done(s, &j);
	}
	assert_int_equal(sched_next(s, T0 + 2 * HOUR_MS, &j, &c, &wake), 0);
	assert_int_equal(wake, SCHED_NEVER);
	sched_free(&s);
}

/* With one connection at a time, destinations with ready work take
 * turns, however deep each queue is. */
static void test_fairness(void **state)
{
	struct sched *s = new_sched(NULL, 1);
	char order[64];
	size_t n, counts[3] = {0};
	int64_t wake;

	(void)state;
	add_jobs(s, "a.example", 1000);
	add_jobs(s, "b.example", 10);
	add_jobs(s, "c.example", 10);
	for (n = 0; n < 40; n++) {
		struct sched_job *j;
		struct sched_conn *c;

		assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
		order[n] = j->dest[0];
		counts[j->dest[0] - 'a']++;
		sched_conn_close(s, &c);
		sched_job_done(s, &j);
	}
	/* The first 30 go round robin: each triple has one of each. */
	for (n = 0; n < 30; n += 3) {
		assert_true(order[n] != order[n + 1] && order[n + 1] != order[n + 2] &&
		            order[n] != order[n + 2]);
	}
	/* b and c are done; a continues alone. */
	assert_int_equal(counts[1], 10);
	assert_int_equal(counts[2], 10);
	assert_int_equal(counts[0], 20);
	assert_int_equal(sched_dest_queued(s, "b.example", NULL), 0);
	assert_int_equal(sched_dest_queued(s, "a.example", NULL), 980);
	sched_free(&s);
}

/* ---- scale, gc ----------------------------------------------------------- */

/* 100k jobs over 1000 destinations, due over an hour, some deferred once:
 * each handed out exactly once per attempt, in time order per
 * destination, and everything freed at the end.  No timing asserted. */
static void test_100k(void **state)
{
	enum { NJOBS = 100000, NDEST = 1000 };
	struct sched_limits lim;
	struct sched *s;
	unsigned char *seen = calloc(NJOBS + 1, 1);
	int64_t *last = calloc(NDEST, sizeof *last);
	int64_t now = T0, wake;
	size_t done = 0, deferred = 0, i;
	struct sched_stats st;
	uint64_t rng = 7;

	(void)state;
	assert_non_null(seen);
	assert_non_null(last);
	sched_limits_default(&lim);
	lim.max_conns = 4;
	s = new_sched(&lim, 200);
	for (i = 0; i < NJOBS; i++) {
		char dom[32];
		struct msg x;
		char id[SPOOL_ID_LEN + 1];

		rng = rng * 6364136223846793005ull + 1442695040888963407ull;
		snprintf(dom, sizeof dom, "d%u.example", (unsigned)(rng >> 33) % NDEST);
		snprintf(id, sizeof id, "%016zx", i);
		msg_init_n(&x, id, T0 / 1000, dom, 1);
		x.r[0].next_attempt = T0 / 1000 + (int64_t)((rng >> 40) % 3600);
		assert_int_equal(sched_add(s, &x.m, NULL, NULL), 1);
	}
	sched_stats(s, &st);
	assert_int_equal(st.jobs, NJOBS);
	assert_int_equal(st.dests, NDEST);
	while (done < NJOBS) {
		struct sched_job *j;
		struct sched_conn *c;
		unsigned d;

		if (!sched_next(s, now, &j, &c, &wake)) {
			assert_true(wake > now && wake != SCHED_NEVER);
			now = wake;
			continue;
		}
		assert_true(j->id >= 1 && j->id <= NJOBS);
		assert_true(j->next_ms <= now);
		d = (unsigned)strtoul(j->dest + 1, NULL, 10);
		/* per destination, in time order (a deferred job comes back
		 * later, so only first attempts are compared) */
		if (j->attempts == 0) {
			assert_true(j->next_ms >= last[d]);
			last[d] = j->next_ms;
		}
		seen[j->id]++;
		sched_conn_close(s, &c);
		if (j->id % 10 == 0 && j->attempts == 0) {
			int64_t next;

			assert_int_equal(sched_job_defer(s, &j, now, &next), SCHED_DEFER_RETRY);
			deferred++;
		} else {
			sched_job_done(s, &j);
			done++;
		}
	}
	for (i = 1; i <= NJOBS; i++)
		assert_int_equal(seen[i], i % 10 == 0 ? 2 : 1);
	assert_int_equal(deferred, NJOBS / 10);
	sched_stats(s, &st);
	assert_int_equal(st.jobs, 0);
	assert_int_equal(st.queued, 0);
	assert_int_equal(st.conns, 0);
	assert_int_equal(st.started, NJOBS + NJOBS / 10);
	assert_int_equal(sched_gc(s, now), NDEST);
	sched_stats(s, &st);
	assert_int_equal(st.dests, 0);
	free(seen);
	free(last);
	sched_free(&s);
}

/* Idle destinations go; busy, held or rate-indebted ones stay. */
static void test_gc(void **state)
{
	struct sched_dest_limits per = {.dest = "rated.example"};
	struct sched_config cfg;
	const char *why;
	struct sched *s;
	struct sched_job *j;
	struct sched_conn *c;
	struct sched_stats st;
	int64_t wake;

	(void)state;
	sched_config_default(&cfg);
	sched_limits_default(&per.limits);
	per.limits.rate_per_minute = 1;
	cfg.per_dest = &per;
	cfg.nper_dest = 1;
	s = sched_new(&cfg, &why);
	assert_non_null(s);
	add_jobs(s, "idle.example", 1);
	add_jobs(s, "rated.example", 1);
	add_jobs(s, "held.example", 1);
	add_jobs(s, "busy.example", 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(sched_next(s, T0, &j, &c, &wake), 1);
		if (strcmp(j->dest, "busy.example") == 0)
			assert_int_equal(sched_conn_host(s, c, "mx.busy.example"), 0);
		sched_conn_close(s, &c);
		sched_job_done(s, &j);
	}
	assert_int_equal(sched_next(s, T0, &j, &c, &wake), 0);
	add_jobs(s, "busy.example", 1);
	sched_dest_hold(s, "held.example", T0 + HOUR_MS);
	sched_stats(s, &st);
	assert_int_equal(st.dests, 4);
	/* idle goes; rated owes its rate for a minute; held is held; busy
	 * has a job waiting (for its hold-free, rate-free turn). */
	assert_int_equal(sched_gc(s, T0), 1);
	assert_int_equal(sched_gc(s, T0), 0);
	assert_int_equal(sched_gc(s, T0 + MIN_MS), 1);
	assert_int_equal(sched_gc(s, T0 + HOUR_MS), 1);
	sched_stats(s, &st);
	assert_int_equal(st.dests, 1);
	assert_int_equal(sched_dest_queued(s, "busy.example", NULL), 1);
	assert_int_equal(sched_dest_queued(s, "idle.example", NULL), 0);
	/* A forgotten destination comes back as new when mail arrives. */
	add_jobs(s, "idle.example", 1);
	assert_int_equal(sched_dest_queued(s, "idle.example", NULL), 1);
	sched_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_parse),
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_backoff_jitter),
	    cmocka_unit_test(test_lifetime),
	    cmocka_unit_test(test_lifetime_whole),
	    cmocka_unit_test(test_grouping),
	    cmocka_unit_test(test_grouping_from_spool_state),
	    cmocka_unit_test(test_ordering),
	    cmocka_unit_test(test_conn_caps),
	    cmocka_unit_test(test_conn_reuse),
	    cmocka_unit_test(test_dest_hosts),
	    cmocka_unit_test(test_per_dest_limits),
	    cmocka_unit_test(test_gcra),
	    cmocka_unit_test(test_rate_smooth),
	    cmocka_unit_test(test_hold),
	    cmocka_unit_test(test_fairness),
	    cmocka_unit_test(test_100k),
	    cmocka_unit_test(test_gc),
	};

	log_init("test_sched", 0, LOG_LEVEL_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
