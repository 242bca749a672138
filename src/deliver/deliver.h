/*
 * deliver: from the spool to the recipients' MX (or a configured route):
 * routing, outbound TLS policy, delivery sessions, retries, DSN bounces.
 * Sections: the engine (sluiced's delivery thread), MX routing, DSNs.
 */
#ifndef SLUICE_DELIVER_H
#define SLUICE_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "util/config.h"

/* ---- the engine ----------------------------------------------------------- */

struct deliver_engine;

struct deliver_stats {
	uint64_t delivered; /* recipients */
	uint64_t deferred;  /* recipient attempts that will be retried */
	uint64_t bounced;   /* recipients failed for good */
};

/* Start the delivery thread: load the queue from spool (envelopes only),
 * then deliver.  cfg and spool must outlive the engine.  0 ok, -1 with
 * *err_r (malloc'd). */
int deliver_engine_start(const struct sluice_config *cfg, struct spool *spool,
			 struct deliver_engine **e_r, char **err_r);
/* Stop: connections in progress are closed (their recipients stay queued
 * and are tried again at the next start), the thread is joined; the engine
 * makes no more spool calls.  Call before spool_close(): the spool's last
 * callbacks may still notify the engine, which is freed after it. */
void deliver_engine_stop(struct deliver_engine *e);
/* After spool_close().  Sets *e to NULL. */
void deliver_engine_free(struct deliver_engine **e);
/* A message is durable in the spool: deliver it.  Any thread; ignored
 * once stopped. */
void deliver_engine_notify(struct deliver_engine *e, const char *id);
/* The operator's queue commands, from any thread but the engine's own:
 * op is "retry" (every pending recipient now), "hold", "release",
 * "delete", "bounce" (fail every pending recipient, with a DSN).  Waits
 * until the engine did it.  0 ok, -1 refused; text_r says what happened. */
int deliver_engine_command(struct deliver_engine *e, const char *op, const char *id,
			   char *text_r, size_t text_size);
void deliver_engine_stats(struct deliver_engine *e, struct deliver_stats *stats_r);

/* ---- DSN: delivery status notifications (RFC 3464, 3461, 6522) ------------ */

/* One recipient a DSN reports on. */
struct deliver_dsn_rcpt {
	const char *addr;         /* as in RCPT TO; UTF-8 allowed */
	const char *orcpt;        /* RFC 3461 ORCPT "rfc822;xtext", or NULL */
	const char *status;       /* RFC 3463 "5.1.1"; NULL: taken from reply */
	const char *reply;        /* the remote's reply, lines joined by CRLF
	                           * or LF ("550 5.1.1 No such user"), or NULL */
	const char *diagnostic;   /* our own reason when there is no reply
	                           * ("Host or domain name not found"), or NULL */
	const char *remote_mta;   /* "mx.example.com", "mx.example.com[192.0.2.1]:25"
	                           * or NULL: not known */
	int64_t last_attempt;     /* unix seconds; 0: not shown */
	int64_t will_retry_until; /* delay warnings; 0: not shown */
};

struct deliver_dsn {
	const char *reporting_mta;   /* our host name: From:, Reporting-MTA */
	const char *original_sender; /* MAIL FROM of the original; "" or NULL:
	                              * the null sender, who gets no DSN */
	const char *original;        /* the original message (CRLF); only its
	                              * header is copied, never the body */
	size_t original_len;
	const char *queue_id;        /* the original's, or NULL */
	const char *envid;           /* RFC 3461 ENVID (xtext), or NULL */
	int64_t arrival;             /* unix seconds the original arrived */
	int64_t now;                 /* Date:; 0 = the clock */
	int delayed;                 /* 1: a warning (Action: delayed) */
	const char *message_id;      /* "<...>"; NULL: made up */
	const struct deliver_dsn_rcpt *rcpts;
	size_t nrcpts;
};

#define DELIVER_DSN_NULL_SENDER 1          /* deliver_dsn_build: no DSN */
#define DELIVER_DSN_HEADER_MAX (256 * 1024) /* of the original, copied at most */

/* Build the DSN: a multipart/report (report-type=delivery-status) from
 * MAILER-DAEMON@reporting_mta to the original sender: a text part naming
 * each recipient and the remote's reply, a message/delivery-status part,
 * and the original's header as text/rfc822-headers.  CRLF line ends, no
 * line over 998 octets.  The caller queues it with the null sender and
 * the original sender as its one recipient, with the spool flags
 * deliver_dsn_flags() gives.  0 ok with *dsn_r (malloc'd) and *len_r;
 * DELIVER_DSN_NULL_SENDER when the original sender is null (RFC 3461
 * 6.2: never bounce a bounce), nothing made; -1 with *err_r (malloc'd). */
int deliver_dsn_build(const struct deliver_dsn *d, char **dsn_r, size_t *len_r, char **err_r);
/* SPOOL_MSG_8BIT when the DSN carries 8-bit text (the original's header
 * had some, or a recipient address is UTF-8: they are passed through as
 * Content-Transfer-Encoding 8bit, the next hop needs 8BITMIME), and
 * SPOOL_MSG_SMTPUTF8 too when the original sender is a UTF-8 address. */
uint32_t deliver_dsn_flags(const struct deliver_dsn *d);

#endif
