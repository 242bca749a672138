/*
 * sluiced's one context struct and the pieces of the daemon: listeners
 * and the main loop (sluiced.c), SMTP sessions (session.c), the control
 * socket the CLI talks to (control.c).  Everything runs on one event-loop
 * thread; the spool writer and the argon2 pool run on their own threads
 * and hand results back through the completion queue.
 */
#ifndef SLUICE_DAEMON_H
#define SLUICE_DAEMON_H

#include <pthread.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "auth/auth.h"
#include "cmd/metrics.h"
#include "deliver/deliver.h"
#include "net/net.h"
#include "policy/policy.h"
#include "scan/scan.h"
#include "spool/spool.h"
#include "store/store.h"
#include "util/config.h"
#include "util/util.h"

struct session;
struct signer;

struct daemon_listener {
	int fd;
	struct event *ev;
	const struct config_listener *cfg;
	const char *addr; /* as configured */
	struct sluiced *d;
};

/* A result from another thread, queued for the loop. */
struct daemon_completion {
	struct daemon_completion *next;
	enum { COMPLETION_AUTH, COMPLETION_SPOOL } kind;
	struct session *session;
	int status;                 /* auth: 1 ok / 0 no; spool: 0 or -errno */
	char id[SPOOL_ID_LEN + 1];
};

struct ip_count;
struct metrics_http;
struct contain_pending;

struct sluiced {
	struct sluice_config cfg;
	struct event_base *base;
	struct store *store;
	struct spool *spool;
	SSL_CTX *tls;
	struct auth_pool *auth_pool;
	struct auth_cache *auth_cache;
	struct auth_limiter *auth_limiter;
	struct policy_networks *networks;
	struct policy_limits *limits;   /* rates, quotas, counters per tenant and login */
	struct policy_usage *usage;     /* hourly usage, written every usage_flush_interval */
	struct event *usage_ev;
	struct signer *signer;          /* DKIM keys (signer.h) */
	struct deliver_engine *deliver; /* NULL: delivery = off */
	struct scan *scan;              /* NULL: no content scanners */
	struct policy_contain *contain; /* containment model (contain.c) */
	int64_t egress_sample_id;       /* the last egress sample read (contain_egress.c) */
	int64_t egress_sample_since;    /* and the hour sluiced started in */
	struct daemon_metrics *metrics; /* counters (metrics.h); never NULL once started */
	struct metrics_http *metrics_http; /* NULL: no metrics_listen */
	struct contain_pending *contain_pending; /* bounces on their way to it */

	struct daemon_listener listeners[CONFIG_MAX_LISTENERS * CONFIG_MAX_ADDRS];
	size_t nlisteners;

	pthread_mutex_t done_lock;
	struct daemon_completion *done_head, **done_tail;
	int done_fd; /* eventfd */
	struct event *done_ev;

	struct event *sig_term, *sig_int, *sig_hup;
	int control_fd;
	struct event *control_ev;

	struct session *sessions; /* doubly linked, for shutdown */
	size_t nsessions;
	struct ip_count **ip_table; /* connections per client address */
	size_t ip_buckets;
	uint64_t next_session_id;
	int stopping;
};

/* session.c */
void session_accept(struct sluiced *d, struct daemon_listener *l, int fd,
		    const struct sockaddr_storage *ss);
void session_complete(struct daemon_completion *c);
void session_shutdown_all(struct sluiced *d);
/* At exit, after the spool drained: free every session left. */
void session_free_all(struct sluiced *d);

/* sluiced.c: queue a completion from any thread */
void daemon_complete(struct sluiced *d, struct daemon_completion *c);

/* contain.c: containment levels in effect */
struct contain_msg {
	uint64_t session_id;
	int64_t tenant_id, credential_id; /* credential 0: a trusted network */
	const char *tenant, *user;
	const char *const *rcpts;         /* addresses */
	size_t nrcpts;
	const char *data;                 /* the message as received */
	size_t len;
};
int daemon_contain_start(struct sluiced *d, char **err_r);
void daemon_contain_save(struct sluiced *d);
void daemon_contain_stop(struct sluiced *d);
void daemon_contain_auth(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			 int new_network, int outside);
/* MAIL: 0 go on, -1 refused with *v (suspended 550 5.7.1, throttled 451 4.7.1). */
int daemon_contain_mail(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			struct policy_verdict *v);
/* End of DATA, before the spool: count the message and say its level
 * (HOLD: queue it held; SUSPEND: refused with *v). */
enum policy_contain_level daemon_contain_data(struct sluiced *d, const struct contain_msg *m,
					      struct policy_verdict *v);
/* Recipients of the sender refused for good (the suppression list at
 * RCPT) on the main loop: the failures signal.  user may be NULL. */
void daemon_contain_failed(struct sluiced *d, uint64_t session_id, int64_t tenant_id,
			   const char *tenant, int64_t credential_id, const char *user,
			   uint32_t failed);
/* Any thread (the delivery thread): a recipient of the sender's mail
 * bounced.  Counted on the main loop soon after. */
void daemon_contain_bounced(struct sluiced *d, int64_t tenant_id, int64_t credential_id);
/* A level went up: log it with why (the signals) or reason, store it with
 * an event, and a suspension in the store too.  session_id 0: none. */
void daemon_contain_raised(struct sluiced *d, uint64_t session_id, enum policy_subject_kind kind,
			   int64_t id, int64_t tenant_id, const char *name,
			   enum policy_contain_level level,
			   const struct policy_contain_signals *why, const char *reason);
/* contain_egress.c: the blocked port-25 attempts `sluice egress sample`
 * stored since the last call, fed to the tenants' scores (usage flush). */
void daemon_contain_egress(struct sluiced *d);
/* A scanner found spam or a virus in the sender's message: a signal. */
void daemon_contain_scan(struct sluiced *d, uint64_t session_id, int64_t tenant_id,
			 const char *tenant, int64_t credential_id, const char *user, int spam,
			 int virus);

/* control.c */
int control_open(struct sluiced *d, char **err_r);
void control_close(struct sluiced *d);
void control_accept(evutil_socket_t fd, short what, void *arg);

#endif
