/* Unit tests for auth: argon2id hashing, the verification pool, the
 * cache of successful verifications and the failed-login limiter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"

#define GOOD "correct horse battery staple"

/* One hash for every test: argon2id costs ~0.1 s (more under ASan). */
static char good_hash[AUTH_HASH_MAX];

static int group_setup(void **state)
{
	(void)state;
	if (auth_init() != 0)
		return -1;
	return auth_hash_password(GOOD, good_hash) == 0 ? 0 : -1;
}

/* ---- hashing --------------------------------------------------------------- */

static void test_hash_verify(void **state)
{
	char h2[AUTH_HASH_MAX];

	(void)state;
	assert_int_equal(strncmp(good_hash, "$argon2id$", 10), 0);
	assert_int_equal(auth_verify_password(good_hash, GOOD), 1);
	assert_int_equal(auth_verify_password(good_hash, GOOD "x"), 0);
	assert_int_equal(auth_verify_password(good_hash, ""), 0);
	assert_int_equal(auth_verify_password(good_hash, "Correct horse battery staple"), 0);
	/* salted: the same password hashes differently */
	assert_int_equal(auth_hash_password(GOOD, h2), 0);
	assert_string_not_equal(h2, good_hash);
	assert_int_equal(auth_verify_password(h2, GOOD), 1);
	/* the empty password is a password like any other */
	assert_int_equal(auth_hash_password("", h2), 0);
	assert_int_equal(auth_verify_password(h2, ""), 1);
	assert_int_equal(auth_verify_password(h2, " "), 0);
	assert_int_equal(auth_init(), 0); /* twice is fine */
}

static void test_verify_malformed(void **state)
{
	char truncated[AUTH_HASH_MAX], flipped[AUTH_HASH_MAX], unterminated[AUTH_HASH_MAX + 8];
	char longpw[AUTH_PASSWORD_MAX + 2], h[AUTH_HASH_MAX];
	const char *cases[] = {
	    "",
	    "garbage",
	    "$argon2id$",
	    "$argon2id$v=19$m=65536,t=2,p=1$",
	    "$2y$10$abcdefghijklmnopqrstuuKz0l1oXJ3vMg5Zxq8w6Q0Jq3W9e1kS2", /* bcrypt */
	    "$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
	    truncated,
	    flipped,
	    unterminated,
	};

	(void)state;
	strcpy(truncated, good_hash);
	truncated[strlen(truncated) - 5] = '\0';
	strcpy(flipped, good_hash);
	flipped[strlen(flipped) - 3] ^= 1;
	memset(unterminated, 'a', sizeof unterminated); /* no NUL within AUTH_HASH_MAX */
	memcpy(unterminated, good_hash, strlen(good_hash));
	unterminated[sizeof unterminated - 1] = '\0';
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (auth_verify_password(cases[i], GOOD) != 0)
			fail_msg("malformed hash %zu accepted", i);
	assert_int_equal(auth_verify_password(NULL, GOOD), 0);
	assert_int_equal(auth_verify_password(good_hash, NULL), 0);

	memset(longpw, 'p', sizeof longpw);
	longpw[sizeof longpw - 1] = '\0'; /* AUTH_PASSWORD_MAX + 1 characters */
	assert_int_equal(auth_hash_password(longpw, h), -1);
	assert_int_equal(auth_verify_password(good_hash, longpw), 0);
	longpw[AUTH_PASSWORD_MAX] = '\0'; /* exactly the maximum */
	assert_int_equal(auth_hash_password(longpw, h), 0);
	assert_int_equal(auth_verify_password(h, longpw), 1);
	assert_int_equal(auth_hash_password(NULL, h), -1);
}

/* ---- pool ------------------------------------------------------------------ */

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int outstanding;
};

struct job_ctx {
	struct waiter *w;
	int expect;
	int answers; /* how many times the callback ran */
	int ok;
	pthread_t thread;
};

static void job_done(void *p, int ok)
{
	struct job_ctx *j = p;

	pthread_mutex_lock(&j->w->lock);
	j->answers++;
	j->ok = ok;
	j->thread = pthread_self();
	j->w->outstanding--;
	pthread_cond_broadcast(&j->w->cond);
	pthread_mutex_unlock(&j->w->lock);
}

/* Wait until every job answered, at most limit seconds: 0, or -1. */
static int wait_all(struct waiter *w, int limit)
{
	struct timespec deadline;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += limit;
	pthread_mutex_lock(&w->lock);
	while (w->outstanding > 0 && rc == 0)
		rc = pthread_cond_timedwait(&w->cond, &w->lock, &deadline);
	rc = w->outstanding > 0 ? -1 : 0;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

static void test_pool_answers(void **state)
{
	enum { NJOBS = 24 };
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NJOBS};
	struct job_ctx jobs[NJOBS];
	struct auth_pool *pool = NULL;
	char password[64];

	(void)state;
	assert_int_equal(auth_pool_new(4, &pool), 0);
	assert_non_null(pool);
	for (int i = 0; i < NJOBS; i++) {
		const char *hash = NULL;

		jobs[i] = (struct job_ctx){.w = &w, .expect = 0, .ok = -1};
		switch (i % 3) {
		case 0: /* known user, right password */
			hash = good_hash;
			strcpy(password, GOOD);
			jobs[i].expect = 1;
			break;
		case 1: /* known user, wrong password */
			hash = good_hash;
			snprintf(password, sizeof password, "wrong-%d", i);
			break;
		case 2: /* unknown user: the right password of someone else */
			strcpy(password, GOOD);
			break;
		}
		assert_int_equal(auth_pool_submit(pool, hash, password, job_done, &jobs[i]), 0);
		memset(password, 'X', sizeof password); /* the pool has its own copy */
	}
	if (wait_all(&w, 120) != 0)
		fail_msg("pool did not answer within 120 s");
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(jobs[i].answers, 1);
		if (jobs[i].ok != jobs[i].expect)
			fail_msg("job %d: ok=%d, expected %d", i, jobs[i].ok, jobs[i].expect);
		assert_false(pthread_equal(jobs[i].thread, pthread_self()));
	}
	auth_pool_free(&pool);
	assert_null(pool);
	auth_pool_free(&pool);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds for one job through the pool, waited for. */
static double time_one(struct auth_pool *pool, const char *hash, const char *password)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1};
	struct job_ctx j = {.w = &w, .ok = -1};
	double t = now_seconds();

	assert_int_equal(auth_pool_submit(pool, hash, password, job_done, &j), 0);
	if (wait_all(&w, 60) != 0)
		fail_msg("pool did not answer within 60 s");
	assert_int_equal(j.ok, 0);
	return now_seconds() - t;
}

/* An unknown user costs a full argon2id too.  Loose bound (the best of
 * three runs, a factor of three) so a busy machine does not fail it; a
 * shortcut would be thousands of times faster. */
static void test_pool_unknown_user_timing(void **state)
{
	struct auth_pool *pool = NULL;
	double known = 1e9, unknown = 1e9, t;

	(void)state;
	assert_int_equal(auth_pool_new(1, &pool), 0);
	for (int i = 0; i < 3; i++) {
		t = time_one(pool, good_hash, "wrong");
		known = t < known ? t : known;
		t = time_one(pool, NULL, "wrong");
		unknown = t < unknown ? t : unknown;
	}
	if (unknown * 3 < known)
		fail_msg("unknown user %.4f s, known user %.4f s", unknown, known);
	auth_pool_free(&pool);
}

/* Free with jobs still queued: each is answered exactly once, the
 * queued ones with 0. */
static void test_pool_free_pending(void **state)
{
	enum { NJOBS = 6 };
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NJOBS};
	struct job_ctx jobs[NJOBS];
	struct auth_pool *pool = NULL;
	int zeros = 0;

	(void)state;
	assert_int_equal(auth_pool_new(1, &pool), 0);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct job_ctx){.w = &w, .ok = -1};
		assert_int_equal(auth_pool_submit(pool, good_hash, GOOD, job_done, &jobs[i]), 0);
	}
	auth_pool_free(&pool);
	assert_int_equal(w.outstanding, 0);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(jobs[i].answers, 1);
		zeros += jobs[i].ok == 0;
	}
	/* one thread: at most one job was running when free came */
	assert_true(zeros >= NJOBS - 1);
}

static void test_pool_limits(void **state)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 2};
	struct job_ctx j1 = {.w = &w, .ok = -1}, j2 = {.w = &w, .ok = -1};
	char longpw[AUTH_PASSWORD_MAX + 2], longhash[AUTH_HASH_MAX + 8];
	struct auth_pool *pool = NULL;

	(void)state;
	assert_int_equal(auth_pool_new(0, &pool), -1);
	assert_null(pool);
	assert_int_equal(auth_pool_new(2, &pool), 0);
	assert_int_equal(auth_pool_submit(pool, good_hash, NULL, job_done, &j1), -1);
	assert_int_equal(auth_pool_submit(pool, good_hash, GOOD, NULL, &j1), -1);
	/* too long to be right: answered 0, not an error */
	memset(longpw, 'p', sizeof longpw);
	longpw[sizeof longpw - 1] = '\0';
	assert_int_equal(auth_pool_submit(pool, good_hash, longpw, job_done, &j1), 0);
	memset(longhash, 'a', sizeof longhash);
	memcpy(longhash, good_hash, strlen(good_hash));
	longhash[sizeof longhash - 1] = '\0';
	assert_int_equal(auth_pool_submit(pool, longhash, GOOD, job_done, &j2), 0);
	if (wait_all(&w, 60) != 0)
		fail_msg("pool did not answer within 60 s");
	assert_int_equal(j1.ok, 0);
	assert_int_equal(j2.ok, 0);
	auth_pool_free(&pool);
}

/* ---- cache ----------------------------------------------------------------- */

static void test_cache(void **state)
{
	struct auth_cache *c = auth_cache_new(64, 60);
	const int64_t t0 = 1700000000;

	(void)state;
	assert_non_null(c);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0), 0);
	auth_cache_add(c, "alice", GOOD, good_hash, t0);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0), 1);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0 + 59), 1);
	/* anything different misses */
	assert_int_equal(auth_cache_check(c, "alice", GOOD "x", good_hash, t0), 0);
	assert_int_equal(auth_cache_check(c, "alice", "", good_hash, t0), 0);
	assert_int_equal(auth_cache_check(c, "bob", GOOD, good_hash, t0), 0);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, "$argon2id$other", t0), 0);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, NULL, t0), 0);
	/* the separators keep user and password apart */
	auth_cache_add(c, "ab", "c", "h", t0);
	assert_int_equal(auth_cache_check(c, "a", "bc", "h", t0), 0);
	assert_int_equal(auth_cache_check(c, "ab", "c", "h", t0), 1);
	/* a hit does not extend the expiry */
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0 + 60), 0);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0 + 1), 0);
	/* added again, it lives again */
	auth_cache_add(c, "alice", GOOD, good_hash, t0 + 100);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0 + 159), 1);
	assert_int_equal(auth_cache_check(c, "alice", GOOD, good_hash, t0 + 160), 0);
	auth_cache_free(&c);
	assert_null(c);
	auth_cache_free(&c);
}

static void test_cache_disabled(void **state)
{
	struct auth_cache *c0 = auth_cache_new(0, 60), *t0 = auth_cache_new(64, 0);

	(void)state;
	assert_non_null(c0);
	assert_non_null(t0);
	auth_cache_add(c0, "alice", GOOD, good_hash, 1000);
	auth_cache_add(t0, "alice", GOOD, good_hash, 1000);
	assert_int_equal(auth_cache_check(c0, "alice", GOOD, good_hash, 1000), 0);
	assert_int_equal(auth_cache_check(t0, "alice", GOOD, good_hash, 1000), 0);
	assert_int_equal(auth_cache_check(NULL, "alice", GOOD, good_hash, 1000), 0);
	auth_cache_free(&c0);
	auth_cache_free(&t0);
}

/* Four entries make one bucket: the least recently used goes first. */
static void test_cache_replacement(void **state)
{
	struct auth_cache *c = auth_cache_new(4, 600);
	char user[8];
	int hits = 0;

	(void)state;
	for (int i = 0; i < 4; i++) {
		snprintf(user, sizeof user, "u%d", i);
		auth_cache_add(c, user, GOOD, good_hash, 1000 + i);
	}
	assert_int_equal(auth_cache_check(c, "u0", GOOD, good_hash, 1010), 1); /* u0 used */
	auth_cache_add(c, "u4", GOOD, good_hash, 1011);
	assert_int_equal(auth_cache_check(c, "u1", GOOD, good_hash, 1012), 0); /* evicted */
	assert_int_equal(auth_cache_check(c, "u0", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "u2", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "u3", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "u4", GOOD, good_hash, 1012), 1);
	/* re-adding a present key takes no second way */
	auth_cache_add(c, "u4", GOOD, good_hash, 1013);
	assert_int_equal(auth_cache_check(c, "u0", GOOD, good_hash, 1014), 1);
	/* an expired way is reused before the least recently used live one */
	auth_cache_free(&c);
	c = auth_cache_new(4, 10);
	auth_cache_add(c, "live", GOOD, good_hash, 1005); /* least recently used */
	auth_cache_add(c, "a", GOOD, good_hash, 1005);
	auth_cache_add(c, "b", GOOD, good_hash, 1005);
	auth_cache_add(c, "old", GOOD, good_hash, 1000); /* used last, expires first */
	auth_cache_add(c, "new", GOOD, good_hash, 1012);
	assert_int_equal(auth_cache_check(c, "live", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "a", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "b", GOOD, good_hash, 1012), 1);
	assert_int_equal(auth_cache_check(c, "new", GOOD, good_hash, 1012), 1);
	/* a bigger table never holds more than its size */
	auth_cache_free(&c);
	c = auth_cache_new(64, 600);
	for (int i = 0; i < 1000; i++) {
		snprintf(user, sizeof user, "w%d", i);
		auth_cache_add(c, user, GOOD, good_hash, 1000);
	}
	for (int i = 0; i < 1000; i++) {
		snprintf(user, sizeof user, "w%d", i);
		hits += auth_cache_check(c, user, GOOD, good_hash, 1001);
	}
	assert_true(hits > 0 && hits <= 64);
	auth_cache_free(&c);
}

struct cache_thread_arg {
	struct auth_cache *c;
	int id;
	int misses;
};

static void *cache_thread(void *p)
{
	struct cache_thread_arg *a = p;
	char user[32];

	for (int i = 0; i < 2000; i++) {
		snprintf(user, sizeof user, "t%d-u%d", a->id, i % 8);
		auth_cache_add(a->c, user, GOOD, good_hash, 1000);
		if (!auth_cache_check(a->c, user, GOOD, good_hash, 1000))
			a->misses++;
	}
	return NULL;
}

static void test_cache_threads(void **state)
{
	struct auth_cache *c = auth_cache_new(1024, 60);
	struct cache_thread_arg args[4];
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		args[i] = (struct cache_thread_arg){.c = c, .id = i};
		assert_int_equal(pthread_create(&t[i], NULL, cache_thread, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		/* 32 live keys in 1024 entries: a miss right after the add
		 * would take 5 keys in one 4-way bucket */
		assert_true(args[i].misses < 100);
	}
	auth_cache_free(&c);
}

/* ---- limiter ------------------------------------------------------------- */

static void test_limiter_ip(void **state)
{
	struct auth_limiter *lim = auth_limiter_new(3, 100, 60);
	const int64_t t0 = 1700000000;

	(void)state;
	assert_non_null(lim);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u0", t0), AUTH_LIMIT_OK);
	auth_limiter_fail(lim, "192.0.2.1", "u0", t0);
	auth_limiter_fail(lim, "192.0.2.1", "u1", t0 + 1);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u2", t0 + 2), AUTH_LIMIT_OK);
	auth_limiter_fail(lim, "192.0.2.1", "u2", t0 + 2);
	/* one address, three users: the address is stopped, for any user */
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u3", t0 + 3), AUTH_LIMIT_IP);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", NULL, t0 + 3), AUTH_LIMIT_IP);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.2", "u0", t0 + 3), AUTH_LIMIT_OK);
	/* a success does not clear the address */
	auth_limiter_success(lim, "u0");
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u0", t0 + 3), AUTH_LIMIT_IP);
	/* the window opened at t0 and lasts 60 s */
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u0", t0 + 59), AUTH_LIMIT_IP);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "u0", t0 + 60), AUTH_LIMIT_OK);
	auth_limiter_free(&lim);
	assert_null(lim);
	auth_limiter_free(&lim);
}

static void test_limiter_user(void **state)
{
	struct auth_limiter *lim = auth_limiter_new(100, 3, 60);
	const int64_t t0 = 1700000000;
	char ip[32];

	(void)state;
	/* many addresses, one user */
	for (int i = 0; i < 3; i++) {
		snprintf(ip, sizeof ip, "2001:db8::%d", i + 1);
		assert_int_equal(auth_limiter_check(lim, ip, "alice", t0), AUTH_LIMIT_OK);
		auth_limiter_fail(lim, ip, "alice", t0 + i);
	}
	assert_int_equal(auth_limiter_check(lim, "2001:db8::99", "alice", t0 + 5), AUTH_LIMIT_USER);
	assert_int_equal(auth_limiter_check(lim, NULL, "alice", t0 + 5), AUTH_LIMIT_USER);
	assert_int_equal(auth_limiter_check(lim, "2001:db8::99", "bob", t0 + 5), AUTH_LIMIT_OK);
	/* user names are exact: another spelling is another user */
	assert_int_equal(auth_limiter_check(lim, "2001:db8::99", "Alice", t0 + 5), AUTH_LIMIT_OK);
	/* a success clears the user's count */
	auth_limiter_success(lim, "alice");
	assert_int_equal(auth_limiter_check(lim, "2001:db8::99", "alice", t0 + 5), AUTH_LIMIT_OK);
	auth_limiter_success(lim, "nobody"); /* harmless */
	auth_limiter_success(lim, NULL);

	/* a window that ran out starts over at the next failure */
	auth_limiter_fail(lim, "192.0.2.1", "carol", t0);
	auth_limiter_fail(lim, "192.0.2.1", "carol", t0 + 1);
	auth_limiter_fail(lim, "192.0.2.1", "carol", t0 + 61);
	auth_limiter_fail(lim, "192.0.2.1", "carol", t0 + 62);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.9", "carol", t0 + 63), AUTH_LIMIT_OK);
	auth_limiter_fail(lim, "192.0.2.1", "carol", t0 + 63);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.9", "carol", t0 + 64), AUTH_LIMIT_USER);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.9", "carol", t0 + 121), AUTH_LIMIT_OK);
	auth_limiter_free(&lim);
}

static void test_limiter_both_and_none(void **state)
{
	struct auth_limiter *lim = auth_limiter_new(2, 2, 60);
	struct auth_limiter *off = auth_limiter_new(0, 0, 60);

	(void)state;
	auth_limiter_fail(lim, "192.0.2.1", "alice", 100);
	auth_limiter_fail(lim, "192.0.2.1", "alice", 100);
	/* both exceeded: the address is reported */
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", "alice", 100), AUTH_LIMIT_IP);
	/* failures with only one side known count on that side */
	auth_limiter_fail(lim, NULL, "bob", 100);
	auth_limiter_fail(lim, NULL, "bob", 100);
	assert_int_equal(auth_limiter_check(lim, "192.0.2.7", "bob", 100), AUTH_LIMIT_USER);
	assert_int_equal(auth_limiter_check(lim, NULL, NULL, 100), AUTH_LIMIT_OK);
	/* 0: no limit */
	for (int i = 0; i < 50; i++)
		auth_limiter_fail(off, "192.0.2.1", "alice", 100);
	assert_int_equal(auth_limiter_check(off, "192.0.2.1", "alice", 100), AUTH_LIMIT_OK);
	auth_limiter_free(&lim);
	auth_limiter_free(&off);
	assert_null(auth_limiter_new_sized(1, 1, 60, 0));
}

static void test_limiter_bounded(void **state)
{
	struct auth_limiter *lim = auth_limiter_new_sized(1, 1, 60, 100);
	char ip[32];

	(void)state;
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
		auth_limiter_fail(lim, ip, NULL, 1000 + i / 100);
		assert_true(auth_limiter_entries(lim) <= 100);
	}
	assert_int_equal(auth_limiter_entries(lim), 100);
	/* the newest are still held, the oldest went */
	assert_int_equal(auth_limiter_check(lim, "10.0.3.231", NULL, 1010), AUTH_LIMIT_IP);
	assert_int_equal(auth_limiter_check(lim, "10.0.0.0", NULL, 1010), AUTH_LIMIT_OK);
	/* expired counters are pruned */
	assert_int_equal(auth_limiter_check(lim, "192.0.2.1", NULL, 1009 + 60), AUTH_LIMIT_OK);
	assert_int_equal(auth_limiter_entries(lim), 0);
	auth_limiter_free(&lim);

	/* the default table: 65536 counters per side */
	lim = auth_limiter_new(5, 5, 3600);
	for (int i = 0; i < 70000; i++) {
		snprintf(ip, sizeof ip, "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		auth_limiter_fail(lim, ip, NULL, 1000);
	}
	assert_int_equal(auth_limiter_entries(lim), 65536);
	auth_limiter_free(&lim);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_verify),
		cmocka_unit_test(test_verify_malformed),
		cmocka_unit_test(test_pool_answers),
		cmocka_unit_test(test_pool_unknown_user_timing),
		cmocka_unit_test(test_pool_free_pending),
		cmocka_unit_test(test_pool_limits),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_cache_disabled),
		cmocka_unit_test(test_cache_replacement),
		cmocka_unit_test(test_cache_threads),
		cmocka_unit_test(test_limiter_ip),
		cmocka_unit_test(test_limiter_user),
		cmocka_unit_test(test_limiter_both_and_none),
		cmocka_unit_test(test_limiter_bounded),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
