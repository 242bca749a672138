/*
 * metrics: sluiced's metric set (metrics.c) and the Prometheus endpoint
 * that serves it (metrics_http.c, `metrics_listen = 127.0.0.1:9325`).
 *
 * The counters are bumped where things happen: the SMTP sessions and
 * containment on the loop thread, the scanners' verdicts on it too; the
 * bump functions are lock-free (util/metrics.h) so any thread may call
 * them, and each takes NULL (no metrics) and does nothing.  What other
 * modules count themselves (the spool, delivery, DKIM signing) is read
 * when a scrape comes, into struct daemon_metrics_read.
 *
 * Every label value is one of a fixed set named here: a refusal reason
 * the set does not know counts as "other", so no client input and no
 * tenant name ever becomes a label (bounded series, nothing private).
 */
#ifndef SLUICE_CMD_METRICS_H
#define SLUICE_CMD_METRICS_H

#include <stdint.h>

#include "deliver/deliver.h"
#include "policy/policy.h"
#include "scan/scan.h"
#include "spool/spool.h"
#include "util/config.h"
#include "util/util.h"

struct daemon_metrics;
struct sluiced;

/* start_time: unix seconds, for sluice_start_time_seconds.  NULL when
 * out of memory. */
struct daemon_metrics *daemon_metrics_new(double start_time);
void daemon_metrics_free(struct daemon_metrics **m);

/* ---- counting (any thread) ----------------------------------------------- */

/* A session accepted on l (opened 1), or ended (opened 0). */
void daemon_metrics_session(struct daemon_metrics *m, const struct config_listener *l, int opened);
/* AUTH: failure NULL for a success, else why ("credentials", "suspended",
 * "network", "rate-limit", "authzid"). */
void daemon_metrics_auth(struct daemon_metrics *m, const char *failure);
/* A message queued with its recipients (after the spool's 250). */
void daemon_metrics_accepted(struct daemon_metrics *m, uint32_t rcpts);
/* A refusal: at connect ("relay-denied", "connections", ...), MAIL, RCPT
 * or DATA (the reasons the usage counters get: "sender", a limit name,
 * "suppressed", "contained", ...). */
void daemon_metrics_refused(struct daemon_metrics *m, const char *reason);
/* A subject's containment level changed: raised by sluiced, or back to
 * POLICY_CONTAIN_NONE by the operator. */
void daemon_metrics_contain(struct daemon_metrics *m, enum policy_subject_kind kind,
                            enum policy_contain_level level);
/* The scanners' word on one message. */
void daemon_metrics_scan(struct daemon_metrics *m, const struct scan_verdict *v);

/* ---- reading ------------------------------------------------------------- */

/* Counts other modules keep, read at each scrape. */
struct daemon_metrics_read {
	uint64_t queue_messages; /* spool_count() */
	struct spool_stats spool;
	int delivery; /* delivery = on: deliver is read */
	struct deliver_stats deliver;
	uint64_t dkim_rsa, dkim_ed25519, dkim_failed; /* signer_stats() */
	int contain;                                  /* containment on: contained is read */
	uint64_t contained[2][4]; /* [kind - 1][level]: subjects at a level now */
};

/* The whole exposition, appended to out.  0, or -1 out of memory. */
int daemon_metrics_render(struct daemon_metrics *m, const struct daemon_metrics_read *r,
                          struct buf *out);

/* ---- the endpoint (metrics_http.c, on the loop thread) --------------------- */

/* Make d->metrics, and bind metrics_listen when set: before privileges
 * are dropped, like the SMTP listeners.  Fatal on error. */
void daemon_metrics_open(struct sluiced *d);
/* Serve /metrics on d->base (once the loop exists).  Fatal on error. */
void daemon_metrics_start(struct sluiced *d);
/* Stop serving and free d->metrics; before event_base_free(). */
void daemon_metrics_stop(struct sluiced *d);

#endif
