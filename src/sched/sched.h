/*
 * sched: when to try each recipient again, and which delivery may start
 * now.  Pure logic: no sockets, no timers, no clock of its own.  The
 * delivery engine passes the time in (int64_t milliseconds, unix epoch,
 * "now_ms") and arms one timer for the wake time sched_next() returns.
 *
 * Model:
 *   job          one SMTP transaction: one message's pending recipients
 *                that share a destination (RFC 5321 lets one transaction
 *                carry many RCPT TO), at most max_rcpts_per_job of them.
 *   destination  a recipient domain (lower case) or a route key such as
 *                "route:esp": its jobs wait in their own min-heap on the
 *                next attempt time, so a destination whose MX is down
 *                (sched_dest_hold) or saturated never delays another.
 *   connection   a slot counted against the limits of its destination,
 *                of its MX host once known (sched_conn_host) and of the
 *                whole scheduler; it carries up to max_msgs_per_conn jobs
 *                in turn (sched_next_on).
 * Destinations with work wait in a second min-heap keyed on the time
 * their next job may start (its attempt time, the rate limit, a hold);
 * ties go to the destination served longest ago, so many destinations
 * with ready work take turns (round robin) however deep each queue is.
 * Every operation is O(log n) in jobs or destinations, except
 * sched_gc() (O(destinations)).
 *
 * Rates are GCRA (a virtual scheduling clock per destination, no fixed
 * windows): "60 per minute" means one each second, not 60 at hh:mm:00;
 * rate_burst lets that many go back to back.
 */
#ifndef SLUICE_SCHED_H
#define SLUICE_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "util/util.h"

#define SCHED_NEVER INT64_MAX /* no time: wait for a job or a slot to come back */

/* ---- backoff: the retry schedule ---------------------------------------- */

#define SCHED_BACKOFF_MAX 32 /* steps in a schedule */
#define SCHED_BACKOFF_DEFAULT "5m,10m,20m,40m,1h,2h,4h"
#define SCHED_LIFETIME_DEFAULT (5u * 86400) /* seconds: bounce after 5 days */
#define SCHED_JITTER_DEFAULT 10             /* percent either way */

struct sched_backoff {
	uint32_t steps[SCHED_BACKOFF_MAX]; /* seconds; the last one repeats */
	size_t nsteps;
	uint32_t jitter_pct; /* 0..50 */
	uint32_t lifetime;   /* seconds in the queue at most */
};

/* The defaults above. */
void sched_backoff_default(struct sched_backoff *b_r);
/* "5m,10m,1h" (util_parse_duration per step, spaces around commas
 * allowed, each step > 0).  Leaves jitter_pct and lifetime as they were.
 * 0 ok, -1 with *why_r (static text), b_r unchanged. */
int sched_backoff_parse(const char *spec, struct sched_backoff *b_r, const char **why_r);
/* The delay after the attempts-th failure, without jitter, in seconds:
 * steps[attempts - 1], the last step once past the end; 0 for 0. */
uint32_t sched_backoff_delay(const struct sched_backoff *b, uint32_t attempts);
/* now_ms + the delay +-jitter_pct, where rnd (uniform over uint32_t)
 * picks the point in the jitter range; never before now_ms + 1 s. */
int64_t sched_backoff_next(const struct sched_backoff *b, uint32_t attempts, int64_t now_ms,
                           uint32_t rnd);
/* The time a message received at received_ms bounces. */
int64_t sched_backoff_deadline(const struct sched_backoff *b, int64_t received_ms);

/* ---- rate: GCRA ----------------------------------------------------------- */

/* util's GCRA state (util/gcra.c), shared with the policy limits */
struct sched_gcra {
	struct util_gcra u;
};

/* Emission interval for per_minute events a minute, in microseconds (so
 * that high rates do not round to whole milliseconds); 0 for 0. */
int64_t sched_gcra_interval(uint32_t per_minute);
/* 1 and the event counted if allowed at now_ms; 0 if not, with
 * *ready_r = the first millisecond it will be.  burst >= 1 events may go
 * back to back after an idle spell (0 counts as 1). */
int sched_gcra_take(struct sched_gcra *g, int64_t interval_us, uint32_t burst, int64_t now_ms,
                    int64_t *ready_r);
/* The first millisecond the next event is allowed, without counting
 * one (possibly in the past). */
int64_t sched_gcra_ready(const struct sched_gcra *g, int64_t interval_us, uint32_t burst);

/* ---- limits --------------------------------------------------------------- */

struct sched_limits {
	uint32_t max_conns;          /* at once to this destination; 0 = no cap */
	uint32_t max_conns_per_host; /* at once to one MX host; 0 = no cap */
	uint32_t max_msgs_per_conn;  /* jobs one connection carries; 0 = no cap */
	uint32_t max_rcpts_per_job;  /* RCPT TO per transaction; 0 = 100 */
	uint32_t rate_per_minute;    /* jobs started a minute; 0 = no limit */
	uint32_t rate_burst;         /* back to back; 0 = 1 */
};

#define SCHED_MAX_CONNS_DEFAULT 20 /* Postfix's destination concurrency */
#define SCHED_MAX_CONNS_PER_HOST_DEFAULT 10
#define SCHED_MAX_MSGS_PER_CONN_DEFAULT 100
#define SCHED_MAX_RCPTS_PER_JOB_DEFAULT 100 /* RFC 5321 4.5.3.1.8 minimum */

void sched_limits_default(struct sched_limits *l_r);

/* Limits for one destination key, exact match (lower case), e.g. from a
 * "[destination gmail.com]" section of the configuration. */
struct sched_dest_limits {
	const char *dest;
	struct sched_limits limits;
};

/* ---- the scheduler -------------------------------------------------------- */

struct sched_config {
	struct sched_backoff backoff;
	struct sched_limits limits;               /* destinations not listed below */
	const struct sched_dest_limits *per_dest; /* copied by sched_new */
	size_t nper_dest;
	uint32_t max_conns_total; /* at once, all destinations; 0 = no cap */
	uint64_t seed;            /* jitter; 0 = fixed default */
};

/* sched_backoff_default + sched_limits_default, max_conns_total 0. */
void sched_config_default(struct sched_config *cfg_r);

struct sched;
struct sched_dest;
struct sched_conn;

struct sched_job {
	uint64_t id; /* unique in this scheduler */
	char msg_id[SPOOL_ID_LEN + 1];
	const char *dest; /* destination key, the scheduler's */
	size_t *rcpts;    /* indexes into the message's rcpts */
	size_t nrcpts;
	uint32_t attempts; /* failed attempts so far */
	int64_t received_ms;
	int64_t next_ms; /* not before this */
	/* the scheduler's own */
	struct sched_dest *d;
	size_t heap_idx;
	uint64_t seq;
};

/* NULL when out of memory (or per_dest repeats a key, *why_r says). */
struct sched *sched_new(const struct sched_config *cfg, const char **why_r);
/* Frees every job and connection still known. */
void sched_free(struct sched **s);

/* Writes the destination key of recipient addr into key (size bytes);
 * 0 ok, -1 to leave the recipient out (unroutable: the caller bounces
 * it). */
typedef int sched_dest_fn(void *ctx, const char *addr, char *key, size_t size);
#define SCHED_DEST_MAX 320

/* Queue m's PENDING recipients (m->data unused): one job per destination,
 * split past max_rcpts_per_job, in recipient order.  A job's attempts are
 * the most any of its recipients had and its time the earliest
 * next_attempt (0 = at once), so a restart never postpones mail.  dest_fn
 * NULL: the domain after the last '@', lower case.  Returns jobs queued,
 * -1 out of memory (nothing queued). */
int sched_add(struct sched *s, const struct spool_message *m, sched_dest_fn *dest_fn, void *ctx);

/* The next job to start on a new connection: 1 with *job_r and *conn_r
 * (the job is the caller's until sched_job_done/defer/postpone, the
 * connection until sched_conn_close); 0 nothing may start now, *wake_r =
 * the time to ask again, SCHED_NEVER when only a done job or a closed
 * connection can change that. */
int sched_next(struct sched *s, int64_t now_ms, struct sched_job **job_r,
               struct sched_conn **conn_r, int64_t *wake_r);
/* The next job of the connection's destination, to send over it (after
 * RSET): 1 with *job_r; 0 when the connection should close: nothing ready
 * before *wake_r, or max_msgs_per_conn reached (*wake_r = SCHED_NEVER). */
int sched_next_on(struct sched *s, struct sched_conn *conn, int64_t now_ms,
                  struct sched_job **job_r, int64_t *wake_r);
/* dest resolved to nhosts distinct MX hosts (0: unknown): it opens at
 * most nhosts * max_conns_per_host connections at once, since more would
 * only find their host full.  An unknown dest is ignored. */
void sched_dest_hosts(struct sched *s, const char *dest, uint32_t nhosts);
/* 1 when a destination has a job ready at now_ms that only the cap on
 * connections in all (max_conns_total) keeps from starting: the caller
 * may close an idle connection to make room. */
int sched_slot_wanted(const struct sched *s, int64_t now_ms);
/* 1 when conn has carried max_msgs_per_conn jobs: it gets no more. */
int sched_conn_spent(const struct sched_conn *conn);
/* Count conn against its MX host (after resolution, before connect); a
 * second call moves it to another host.  0 ok, -1 host at its cap (conn
 * still counted for its old host, if any). */
int sched_conn_host(struct sched *s, struct sched_conn *conn, const char *host);
const char *sched_conn_dest(const struct sched_conn *conn);
/* The slot comes back; *conn = NULL. */
void sched_conn_close(struct sched *s, struct sched_conn **conn);

/* Every recipient of the job is final (delivered or failed); *job = NULL. */
void sched_job_done(struct sched *s, struct sched_job **job);

enum sched_defer {
	SCHED_DEFER_RETRY,   /* queued again for *next_r; *job = NULL */
	SCHED_DEFER_EXPIRED, /* past the lifetime: the job stays the caller's,
	                      * who fails its recipients (DSN) and then calls
	                      * sched_job_done */
};
/* A temporary failure.  Recipients that became final may first be
 * dropped by compacting job->rcpts and lowering job->nrcpts (none left:
 * call sched_job_done instead).  attempts + 1, next time from the backoff
 * but never past the deadline: the last attempt is made at the deadline,
 * and a failure then is SCHED_DEFER_EXPIRED. */
enum sched_defer sched_job_defer(struct sched *s, struct sched_job **job, int64_t now_ms,
                                 int64_t *next_r);
/* Back to its queue without counting an attempt (its MX host was at its
 * cap, the message is held...), not before until_ms; *job = NULL. */
void sched_job_postpone(struct sched *s, struct sched_job **job, int64_t until_ms);

/* Nothing starts for dest before until_ms (all its MX hosts failed to
 * connect: the others' jobs would fail the same way).  Queued jobs keep
 * their attempts; an unknown dest is ignored. */
void sched_dest_hold(struct sched *s, const char *dest, int64_t until_ms);

/* Forget destinations without jobs, connections, hold or rate debt.
 * O(destinations); call now and then (e.g. each minute). */
size_t sched_gc(struct sched *s, int64_t now_ms);

struct sched_stats {
	size_t jobs;   /* queued or handed out */
	size_t queued; /* waiting in a destination queue */
	size_t dests;
	size_t conns;
	uint64_t started; /* jobs handed out */
	uint64_t expired;
	uint64_t rate_waits; /* times a ready job had to wait for the rate */
};
void sched_stats(const struct sched *s, struct sched_stats *stats_r);
/* Jobs waiting for dest (0 if unknown), and its open connections. */
size_t sched_dest_queued(const struct sched *s, const char *dest, unsigned *conns_r);

#endif
