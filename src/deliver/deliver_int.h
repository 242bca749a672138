/*
 * deliver internals shared by the engine (deliver.c: thread, queue,
 * destinations, commands), the delivery connection (session.c: connect,
 * TLS, the SMTP client) and the bookkeeping of outcomes (outcome.c:
 * recipient states, retries, DSNs).  Not for other modules.
 *
 * Everything here runs on the engine's own thread and event loop; only
 * deliver_engine_notify() and deliver_engine_command() are called from
 * other threads, and they hand over through a locked list and an event.
 */
#ifndef SLUICE_DELIVER_INT_H
#define SLUICE_DELIVER_INT_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "deliver/deliver.h"
#include "net/net.h"
#include "sched/sched.h"
#include "smtp/smtp.h"
#include "spool/spool.h"
#include "util/config.h"
#include "util/util.h"

#define DL_REPLY_MAX 512

struct dl_conn;

struct dl_rcpt {
	char *addr;
	enum spool_rcpt_state state;
	uint32_t attempts;
	int64_t next_attempt; /* unix seconds */
	char *last_reply;
	int busy;             /* in a job on a connection now */
};

/* A queued message as the engine knows it (the body stays in the spool
 * until a job needs it).  Jobs in the scheduler name it by id only: a job
 * that comes due for a held, deleted or already-final recipient is
 * filtered when handed out, so commands need not find queued jobs. */
struct dl_msg {
	struct dl_msg *hnext;
	char id[SPOOL_ID_LEN + 1];
	int64_t tenant_id, credential_id, received;
	uint32_t flags;
	char *sender;
	struct dl_rcpt *rcpts;
	size_t nrcpts;
	unsigned busy;  /* jobs on connections, DSNs being written */
	/* the message as read when it was queued, kept for its first job so
	 * that the spool file is not read twice (NULL: read it then) */
	char *data;
	size_t len;
	int held;
	int gone;       /* deleted: free once not busy */
};

/* A job handed out by the scheduler, on a connection. */
struct dl_job {
	struct sched_job *sj; /* the scheduler's; sj->rcpts index m->rcpts */
	struct dl_msg *m;
	char *data;           /* the message from the spool */
	size_t len;
	int own_sj;           /* sj is not the scheduler's (operator bounce) */
};

/* A target of a destination: one address of one MX host (or of a route's
 * host), in the order to try. */
#define DL_TLSA_MAX 8
#define DL_TLSA_DATA_MAX 64
struct dl_target {
	char host[256];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint16_t port;
	/* DANE: the host's DNSSEC-validated usable TLSA records; .data is
	 * NULL (the bytes are in tlsa_data: targets are copied and moved) */
	struct net_tls_tlsa tlsa[DL_TLSA_MAX];
	unsigned char tlsa_data[DL_TLSA_MAX][DL_TLSA_DATA_MAX];
	size_t tlsa_n;
	int dane_required;    /* a secure TLSA RRset exists: TLS or nothing */
	char tlsa_base[256];  /* the name the certificate is checked for */
};

/* What resolution found for a destination. */
struct dl_resolution {
	struct smtp_client_reply why; /* code 0 ok; else 4xx/5xx for every recipient */
	struct dl_target *targets;
	size_t ntargets;
};
typedef void dl_resolve_cb(void *ctx, const struct dl_resolution *r);

struct dl_command {
	struct dl_command *next;
	char op[16];
	char id[SPOOL_ID_LEN + 1];
	int done, status;
	char text[256];
};

struct deliver_engine {
	const struct sluice_config *cfg;
	const struct config_delivery *dc;
	struct spool *spool;
	struct event_base *base;
	pthread_t thread;
	int started;

	/* handed over from other threads */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char (*new_ids)[SPOOL_ID_LEN + 1];
	size_t nnew, new_cap;
	struct dl_command *cmds;
	int stop;
	struct event *wake_ev;
	/* outcome records made durable (writer thread -> loop) */
	struct dl_durable *durable;

	struct net_resolver *resolver;
	struct deliver_mx *mx;
	const char *local_names[2]; /* our hostname: an MX naming it is a loop */
	SSL_CTX *tls_ctx;   /* MX and routes without their own CA */

	SSL_CTX *route_ctx[CONFIG_MAX_ROUTES]; /* routes with their own CA file */

	struct dl_msg **msgs;
	size_t nbuckets, nmsgs;
	size_t cached_bytes; /* sum of the messages' kept data */
	struct sched *sched;
	struct event *timer;   /* the scheduler's next wake time */
	int64_t timer_at;

	struct dl_conn *conns;
	unsigned nconns;
	/* connections waiting for their destination's next message, the
	 * longest idle first (conn.c) */
	struct dl_conn *idle_head, **idle_tail;
	unsigned nidle;
	int pumping, pump_again; /* dl_pump is running; run it once more */
	uint64_t next_resolve_id;
	struct dl_pending_resolve *resolves;
	uint64_t next_conn_id;
	int stopping;

	struct deliver_stats stats;
	/* the outcome hook (deliver_engine_set_outcome_hook), under mu */
	deliver_outcome_fn *outcome_fn;
	void *outcome_ctx;
};

/* A reply sluice makes up itself (.local = 1): a failure to connect, to
 * resolve, a loop...  text is printf-style. */
void dl_reply_set(struct smtp_client_reply *r, int code, const char *enhanced, const char *fmt,
		  ...) UTIL_PRINTF(4, 5);

/* engine.c */
struct dl_msg *dl_msg_find(struct deliver_engine *e, const char *id);
/* The message's kept data, handed to a job (*data_r NULL: none kept). */
void dl_msg_take_data(struct deliver_engine *e, struct dl_msg *m, char **data_r, size_t *len_r);
/* Free the message when nothing is pending (or it is gone) and not busy. */
void dl_msg_release(struct deliver_engine *e, struct dl_msg *m);
/* Queue the message's pending idle recipients with the scheduler;
 * now: ignore their next attempt times. */
void dl_msg_schedule(struct deliver_engine *e, struct dl_msg *m, int now);
/* Hand out what the scheduler lets start; arm the timer. */
void dl_pump(struct deliver_engine *e);
/* The next job for an open connection (1), or 0 with *wake_r: nothing
 * before then (SCHED_NEVER: the connection has carried its share, or
 * sluiced stops; quit). */
int dl_next_on(struct deliver_engine *e, struct sched_conn *sc, struct dl_job **j_r,
	       int64_t *wake_r);
void dl_job_free(struct dl_job *j);
void dl_engine_wake(struct deliver_engine *e);
/* Make sure the engine looks again by wake_ms (SCHED_NEVER: no-op). */
void dl_wake_at(struct deliver_engine *e, int64_t wake_ms);
int64_t dl_now_ms(void);

/* resolve.c: the targets of a destination (a route's host, or the
 * recipient domain's MX per RFC 5321 5.1).  cb runs later, never from
 * inside this call.  0 started (*id_r to cancel), -1 not started. */
int dl_resolve(struct deliver_engine *e, const char *dest, const struct config_route *route,
	       dl_resolve_cb *cb, void *ctx, uint64_t *id_r);
void dl_resolve_cancel(struct deliver_engine *e, uint64_t id);

/* conn.c */
void dl_conn_open(struct deliver_engine *e, struct sched_conn *sc, struct dl_job *first);
void dl_conn_close_all(struct deliver_engine *e);
/* Hand ready jobs to idle connections; the earliest time one of them may
 * get one is lowered into *wake_r.  Idle connections that will get no
 * more (their share carried) QUIT; with want_slot, the longest idle one
 * QUITs too, to make room for another destination. */
void dl_conn_feed_idle(struct deliver_engine *e, int64_t *wake_r, int want_slot);

/* outcome.c: a job ended.  replies[i * stride] decides recipient
 * sj->rcpts[i] (stride 0: one reply for all).  Takes the job. */
void dl_outcome(struct deliver_engine *e, struct dl_job *j,
		const struct smtp_client_reply *replies, size_t stride, const char *remote);
/* Fail every pending recipient (operator bounce): DSN, then states. */
int dl_outcome_bounce(struct deliver_engine *e, struct dl_msg *m, const char *enhanced,
		      const char *text);
/* DSNs made durable (or not) on the writer thread, finished on the loop. */
void dl_outcome_durable_run(struct deliver_engine *e);

#endif
