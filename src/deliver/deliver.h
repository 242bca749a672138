/*
 * deliver: from the spool to the recipients' MX (or a configured route):
 * routing, outbound TLS policy, delivery sessions, retries, DSN bounces.
 * Sections: the engine (sluiced's delivery thread), MX routing, DSNs.
 */
#ifndef SLUICE_DELIVER_H
#define SLUICE_DELIVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/net.h"
#include "spool/spool.h"
#include "util/config.h"

/* ---- the engine ----------------------------------------------------------- */

struct deliver_engine;

struct deliver_stats {
	uint64_t delivered; /* recipients */
	uint64_t deferred;  /* recipient attempts that will be retried */
	uint64_t bounced;   /* recipients failed for good */
	uint64_t connections; /* outbound connections open now */
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

/* What became of one recipient after an attempt, for the usage counters
 * and the suppression list (policy/usage.c). */
enum deliver_outcome { DELIVER_DELIVERED, DELIVER_DEFERRED, DELIVER_FAILED };
struct deliver_outcome_info {
	int64_t tenant_id;
	int64_t credential_id; /* the login that submitted it; 0 none */
	const char *sender;    /* "" for a DSN */
	const char *rcpt;
	enum deliver_outcome outcome;
	int code;              /* the reply's (sluice's own for local faults) */
	const char *enhanced;  /* "" when the reply had none */
	const char *reply;     /* "550 5.1.1 text" */
	int expired;           /* failed: only temporary failures, out of time */
	int local;             /* the reply is sluice's own, no server said it */
};
/* Called on the delivery thread for every recipient's outcome; must not
 * block (no store, no network). */
typedef void deliver_outcome_fn(void *ctx, const struct deliver_outcome_info *o);
/* Any thread; outcomes from then on are reported. */
void deliver_engine_set_outcome_hook(struct deliver_engine *e, deliver_outcome_fn *fn, void *ctx);

/* ---- MX routing (mx.c) ------------------------------------------------------
 *
 * Where mail for a recipient domain goes (RFC 5321 5.1, RFC 7505): the MX
 * records by preference, equal preferences in random order; no MX
 * (NODATA): the domain itself, preference 0 (the implicit MX); then each
 * host's A and AAAA records, in the order the options ask; with DANE,
 * each DNSSEC-secure host's TLSA records (RFC 7672).  Verdicts:
 *   NXDOMAIN, or a domain that is not a domain name      5.1.2  permanent
 *   null MX: one MX record whose host is "."              5.1.10 permanent
 *   MX lookup SERVFAIL, timeout, or bogus                 4.4.3  temporary
 *   the MX hosts are ours (local_names)                   5.4.6  permanent
 *   no host has an address                                4.4.4  temporary
 *     (4.4.3 when an address lookup failed or was bogus)
 *   every host with addresses failed its TLSA lookup      4.7.5  temporary
 * A host without addresses, whose lookups failed, or whose TLSA lookup
 * failed (bogus or SERVFAIL: never delivered to without DANE, RFC 7672
 * 2.2) is left out, and the others stay.  MX hosts that are not host
 * names (an IPv4 address written as a name, "." among other records) are
 * left out too.  A domain literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is
 * not resolved.  CNAMEs are followed by the resolver.
 *
 * The pure steps (sorting, the MX answer's verdict, the targets' order)
 * are separate functions, unit-tested without DNS; deliver_mx_resolve()
 * runs them around the lookups. */

#define DELIVER_MX_HOSTS_MAX 10  /* most preferred MX hosts whose addresses are looked up */
#define DELIVER_MX_ADDRS_MAX 8   /* addresses kept per host and family */
#define DELIVER_MX_TLSA_MAX 16   /* TLSA records kept per host */
#define DELIVER_MX_TEXT_MAX 256
#define DELIVER_SMTP_PORT 25

enum deliver_mx_status { DELIVER_MX_OK, DELIVER_MX_TEMP, DELIVER_MX_PERM };

enum deliver_tlsa_status {
	DELIVER_TLSA_NONE, /* no DANE: not secure, or no TLSA records (securely or not) */
	DELIVER_TLSA_OK,   /* secure TLSA records: DANE applies, TLS and authentication required */
	DELIVER_TLSA_TEMP, /* failed or bogus: not this host now, not even in plaintext */
};

struct deliver_mx_options {
	enum config_ip_pref ip_pref;
	uint16_t port;      /* in the targets' addresses; 0: 25 */
	int dane;           /* look up TLSA records of secure hosts */
	uint16_t tlsa_port; /* _PORT._tcp; 0: port */
	/* Our own host names, NULL-terminated, or NULL: an MX record naming
	 * one is dropped with every record of the same or a higher
	 * preference (RFC 5321 5.1).  Must outlive the lookup. */
	const char *const *local_names;
};

struct deliver_mx_target {
	char host[NET_DNS_NAME_MAX]; /* the MX host; the domain (implicit MX); "[addr]" (literal) */
	struct sockaddr_storage addr; /* with the options' port */
	socklen_t addrlen;
	uint16_t preference;
	int implicit;    /* no MX records: the domain itself */
	int mx_secure;   /* the MX RRset, or for the implicit MX its denial, was validated */
	int addr_secure; /* the A or AAAA RRset of this address was validated */
	/* DANE (options.dane): tlsa_secure with ntlsa > 0 means DANE applies
	 * to this target.  tlsa_base is the TLSA base domain (the host after
	 * CNAMEs, RFC 7672 2.2.2), the name to verify the certificate for. */
	int tlsa_secure;
	char tlsa_base[NET_DNS_NAME_MAX];
	const struct net_tls_tlsa *tlsa;
	size_t ntlsa;
};

struct deliver_mx_result {
	enum deliver_mx_status status;
	char enhanced[16]; /* RFC 3463 code, "" when OK */
	/* why, for the log and the DSN; when OK, hosts that were left out */
	char text[DELIVER_MX_TEXT_MAX];
	char domain[NET_DNS_NAME_MAX];
	const struct deliver_mx_target *targets; /* in the order to try them */
	size_t ntargets;
};

struct deliver_tlsa_result {
	enum deliver_tlsa_status status;
	char base[NET_DNS_NAME_MAX]; /* the TLSA base domain the records are for */
	char text[DELIVER_MX_TEXT_MAX];
	const struct net_tls_tlsa *tlsa;
	size_t ntlsa;
};

/* The lookups of one event loop: its resolver, and the pending lookups so
 * they are cancelled by id, or all at once when it is freed (free it
 * before the resolver). */
struct deliver_mx;

struct deliver_mx *deliver_mx_new(struct net_resolver *r);
/* Pending lookups end without their callbacks. */
void deliver_mx_free(struct deliver_mx **mx);

/* Results and what they point to live during the callback only.  As with
 * net_resolve(): 0 and the callback runs exactly once, later, from the
 * loop; or -1 and it never runs.  *id_r (may be NULL) for cancelling. */
typedef void deliver_mx_cb(void *ctx, const struct deliver_mx_result *res);
typedef void deliver_tlsa_cb(void *ctx, const struct deliver_tlsa_result *res);

int deliver_mx_resolve(struct deliver_mx *mx, const char *domain,
		       const struct deliver_mx_options *o, deliver_mx_cb *cb, void *ctx,
		       uint64_t *id_r);
/* DANE for one host: when secure (its MX RRset and address were
 * validated), the TLSA records at _PORT._tcp.canonname, then (none there)
 * at _PORT._tcp.host; canonname NULL or host when there was no CNAME.
 * Not secure: DELIVER_TLSA_NONE without any lookup. */
int deliver_tlsa_resolve(struct deliver_mx *mx, const char *host, const char *canonname,
			 int secure, uint16_t port, deliver_tlsa_cb *cb, void *ctx, uint64_t *id_r);
/* Either kind of lookup.  0, or -1 when it has ended. */
int deliver_mx_cancel(struct deliver_mx *mx, uint64_t id);

/* -- the pure steps -- */

/* Sort by preference, equal preferences shuffled (RFC 5321 5.1) with
 * rnd(ctx, n) uniform in [0, n); rnd NULL: arc4random_uniform(). */
struct deliver_mx_rec {
	uint16_t preference;
	const char *name;
};
void deliver_mx_sort(struct deliver_mx_rec *recs, size_t n,
		     uint32_t (*rnd)(void *ctx, uint32_t n), void *rnd_ctx);

/* A host to deliver to, and what its lookups found. */
struct deliver_mx_family {
	int asked;
	enum net_dns_status status;
	int secure;
	char why[48];     /* TEMPFAIL, BOGUS: the resolver's reason, for the text */
	size_t n;
	uint8_t addr[DELIVER_MX_ADDRS_MAX][16]; /* 4 or 16 bytes, network order */
};

struct deliver_mx_host {
	char name[NET_DNS_NAME_MAX];
	uint16_t preference;
	int implicit;
	int mx_secure;
	struct deliver_mx_family v4, v6;
	char canonname[NET_DNS_NAME_MAX]; /* from the address lookups; "" if none */
	enum deliver_tlsa_status tlsa_status;
	char tlsa_base[NET_DNS_NAME_MAX];
	struct net_tls_tlsa *tlsa; /* malloc'd with the data after the records */
	size_t ntlsa;
};

/* From the MX answer for domain (normalised) to the hosts to look up,
 * most preferred first, at most DELIVER_MX_HOSTS_MAX.  DELIVER_MX_OK with
 * *nhosts_r > 0, or a verdict in res (status, enhanced, text). */
enum deliver_mx_status deliver_mx_hosts(const char *domain, const struct net_dns_answer *a,
					const struct deliver_mx_options *o,
					struct deliver_mx_host hosts_r[DELIVER_MX_HOSTS_MAX],
					size_t *nhosts_r, struct deliver_mx_result *res);
/* From the looked-up hosts to res->targets (malloc'd: free with
 * deliver_mx_result_clear()) in delivery order: hosts in order, each
 * host's addresses in the options' family order, repeated addresses once;
 * or a verdict when none is left.  The targets point into hosts (TLSA). */
enum deliver_mx_status deliver_mx_targets(const struct deliver_mx_host *hosts, size_t nhosts,
					  const struct deliver_mx_options *o,
					  struct deliver_mx_result *res);
void deliver_mx_result_clear(struct deliver_mx_result *res);

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
