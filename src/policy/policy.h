/*
 * policy: the decisions an SMTP stage asks for: sender authorization at
 * MAIL FROM, the From:/Sender: headers at end of DATA, the trusted
 * networks that may use the relay listener without AUTH, and the
 * outbound policy of issue 4: limits and quotas per tenant and per login
 * (limits.c), the networks a login may AUTH from (credential.c), the
 * suppression list (suppress.c) and usage per tenant and hour (usage.c).
 * Each check fills a verdict with the reply the client gets, so every
 * caller (SMTP now, the HTTP API later) refuses with the same code and
 * text.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/net.h"
#include "smtp/smtp.h"
#include "store/store.h"

struct policy_verdict {
	int code;             /* SMTP reply code; 2xx accepts */
	char enhanced[16];
	char text[256];
};

/* Who is sending: an authenticated credential or a trusted network. */
struct policy_client {
	int64_t tenant_id;
	const char *tenant;    /* name, for texts */
	int submission;        /* a submission listener (587/465/2525) */
	int64_t credential_id; /* the AUTH login; 0 for a trusted network */
	const char *user;      /* its name, for texts; NULL without one */
};

/*
 * MAIL FROM: the tenant may use only its own verified domains; the null
 * sender is refused on submission listeners (bounces come from sluice
 * itself, never from a customer).  A suspended tenant is refused.
 * Returns 0 with *v_r filled, -1 on a store error (v_r then holds 451).
 */
int policy_check_sender(struct store *st, const struct policy_client *c,
			const struct smtp_address *sender, struct policy_verdict *v_r);

/* ---- sender identity in the header section (end of DATA) -------------- */

/* Limits of the scan; past them the message is refused, never half-read. */
#define POLICY_HEADER_SECTION_MAX (1024 * 1024) /* octets before the empty line */
#define POLICY_HEADER_FIELD_MAX 16384           /* one From:/Sender: field, unfolded */
#define POLICY_HEADER_MAILBOXES_MAX 100         /* mailboxes of the From: field */

struct policy_mailbox {
	char local[SMTP_LOCALPART_MAX * 4 + 1]; /* CFWS removed, quoted form kept */
	char domain[SMTP_DOMAIN_MAX + 1];       /* ASCII lower-cased, other octets as sent */
};

/* What the header section says about who sends. */
struct policy_headers {
	size_t from_fields;   /* From: fields in the header section */
	size_t sender_fields; /* Sender: fields */
	int too_large;        /* no empty line within POLICY_HEADER_SECTION_MAX: not parsed */
	/* NULL, or why the first From: field is not an address list (static text);
	 * else its mailboxes, group members included (malloc'ed) */
	const char *from_error;
	struct policy_mailbox *from;
	size_t nfrom;
	/* the first Sender: field: one mailbox, or why not */
	const char *sender_error;
	struct policy_mailbox sender;
};

/*
 * Parse the header section of data (the message as received: CRLF lines;
 * it ends at the first empty line, or at the end of data when there is
 * none).  Every line is scanned, folded lines are unfolded; only the
 * first From: (RFC 5322 3.6.2 mailbox-list; groups too, RFC 6854) and
 * the first Sender: (one mailbox) are parsed; further ones are counted.
 * Display names, quoted strings, nested comments, obs-route and other
 * harmless obsolete forms are accepted; encoded-words stay as they are.
 * A pure function: 0 with *h_r filled, -1 no memory (*h_r empty).
 * Free with policy_headers_clear().
 */
int policy_headers_parse(const char *data, size_t len, struct policy_headers *h_r);
void policy_headers_clear(struct policy_headers *h);

/*
 * The rule (issue 4): exactly one From: field, at most one Sender:, and
 * the domain of every From: mailbox and of the Sender: mailbox is a
 * verified domain of c's tenant (the same look-up as at MAIL FROM; the
 * envelope sender, null or not, does not matter).  Refusals are 550 5.7.1
 * naming the header and the domain (552 5.3.4 for a header section over
 * the limit).  *reason_r is a static key for the log ("from-header",
 * "sender-header", "header-size", "store-error", "ok").  Returns 0 with
 * *v_r filled (2xx accepts), -1 on a store error (451 4.3.0).
 */
int policy_headers_check(struct store *st, const struct policy_client *c,
			 const struct policy_headers *h, struct policy_verdict *v_r,
			 const char **reason_r);
/* Both: parse data, then check.  -1 also when out of memory (451). */
int policy_check_headers(struct store *st, const struct policy_client *c, const char *data,
			 size_t len, struct policy_verdict *v_r, const char **reason_r);

/* Trusted networks, loaded from the store and reloaded when it changes. */
struct policy_networks;

struct policy_networks *policy_networks_new(void);
void policy_networks_free(struct policy_networks **nets);
/* Reload if the store's generation moved.  0 ok, -1 error (old list kept). */
int policy_networks_refresh(struct policy_networks *nets, struct store *st);
/* The tenant whose trusted network holds sa (most specific prefix wins):
 * 1 found (*tenant_id_r set), 0 none. */
int policy_networks_match(const struct policy_networks *nets, const struct sockaddr *sa,
			  int64_t *tenant_id_r);

/* ---- limits and quotas, per tenant and per credential (limits.c) -------
 *
 * Rates are GCRA (util/gcra.c): "N per period" is an emission interval of
 * period/N and a burst of N, so an idle tenant may send N back to back,
 * then one every period/N; a refusal says exactly when the next one
 * fits.  Quotas count recipients per calendar day and month (UTC), from
 * the usage the store keeps, so they survive a restart; rates live in
 * memory.  Each limit applies to the tenant (all its logins and trusted
 * networks together) and, when set, to one login.
 *
 * A transaction reserves what it asks for as it goes (a message at MAIL,
 * each recipient at RCPT), so concurrent sessions of one tenant cannot
 * overshoot; policy_limits_commit() keeps the reservation when the
 * message is queued, policy_limits_release() gives it back otherwise:
 * nothing refused or abandoned counts as sent. */

enum policy_limit {
	POLICY_MESSAGES_PER_SECOND,
	POLICY_MESSAGES_PER_MINUTE,
	POLICY_MESSAGES_PER_HOUR,
	POLICY_MESSAGES_PER_DAY,
	POLICY_RECIPIENTS_PER_SECOND,
	POLICY_RECIPIENTS_PER_MINUTE,
	POLICY_RECIPIENTS_PER_HOUR,
	POLICY_RECIPIENTS_PER_DAY,
	POLICY_QUOTA_DAY,              /* recipients per calendar day (UTC) */
	POLICY_QUOTA_MONTH,            /* recipients per calendar month (UTC) */
	POLICY_RECIPIENTS_PER_MESSAGE,
	POLICY_MESSAGE_SIZE,           /* octets as received */
	POLICY_LIMIT_COUNT
};

/* The names (config keys without "limit_", CLI keys) are config.h's
 * config_policy_limit_names[], in this order. */
const char *policy_limit_name(enum policy_limit l);
/* -1 for an unknown name. */
int policy_limit_from_name(const char *name);

enum policy_subject_kind { POLICY_TENANT = 1, POLICY_CREDENTIAL = 2 };

/* What containment reads: counters of one tenant or login since start. */
struct policy_stats {
	uint64_t messages;        /* accepted (queued) */
	uint64_t recipients;
	uint64_t refused;         /* refusals by a limit */
	uint64_t auth_new_network;   /* AUTH from a network this login never used */
	uint64_t auth_outside;       /* AUTH from outside its bound networks */
	int64_t last_new_network;    /* unix seconds, 0 never */
	uint64_t quota_day_used;     /* recipients today, this month (when loaded) */
	uint64_t quota_month_used;
};

/* One SMTP transaction's reservations. */
struct policy_txn {
	int64_t tenant_id, credential_id;
	int message;       /* a message reserved at MAIL */
	uint32_t rcpts;    /* recipients reserved */
	int64_t day, month;
};

struct policy_limits;

/* defaults: config_policy.limits (copied). */
struct policy_limits *policy_limits_new(const uint64_t defaults[POLICY_LIMIT_COUNT]);
void policy_limits_free(struct policy_limits **pl);

/*
 * MAIL: the message rates and, with a SIZE= parameter (size > 0), the
 * size limit.  now_us: wall clock, microseconds.  On 250, txn holds the
 * message (release it when the transaction ends without one).  Refusals:
 * 451 4.7.1 (a rate; the text names the limit and when to retry), 552
 * 5.3.4 (size).  *reason_r: the limit's name, or "ok", "store-error".
 * Returns 0, or -1 on a store error (451 4.3.0).
 */
int policy_limits_mail(struct policy_limits *pl, struct store *st, const struct policy_client *c,
		       uint64_t size, int64_t now_us, struct policy_txn *txn,
		       struct policy_verdict *v_r, const char **reason_r);
/* RCPT: one more recipient: recipients per message (452 4.5.3), the
 * monthly quota (550 5.7.1), the daily quota (452 4.5.3), the recipient
 * rates (451 4.7.1).  On 250 it is reserved in txn. */
int policy_limits_rcpt(struct policy_limits *pl, struct store *st, const struct policy_client *c,
		       int64_t now_us, struct policy_txn *txn, struct policy_verdict *v_r,
		       const char **reason_r);
/* End of DATA: the size of the message as received (552 5.3.4). */
int policy_limits_data(struct policy_limits *pl, struct store *st, const struct policy_client *c,
		       size_t len, int64_t now_us, struct policy_verdict *v_r,
		       const char **reason_r);
/* The message is queued: its reservations stay, counted as sent. */
void policy_limits_commit(struct policy_limits *pl, struct policy_txn *txn);
/* The transaction ended without a message: give everything back. */
void policy_limits_release(struct policy_limits *pl, struct policy_txn *txn, int64_t now_us);

/* Counters of a tenant or login; 0, or -1 when it has none yet. */
int policy_limits_stats(const struct policy_limits *pl, enum policy_subject_kind kind, int64_t id,
			struct policy_stats *r);
/* Count in c's stats a refusal by a check other than the limits (the
 * suppression list...); the limits count their own. */
void policy_limits_count_refusal(struct policy_limits *pl, const struct policy_client *c);
/* The rates' state of every subject whose rates moved since the last
 * export (all its rates, passed ones too, for store_limit_state_save to
 * drop); *list_r malloc'd, free().  0, -1 out of memory. */
int policy_limits_export(struct policy_limits *pl, struct store_limit_state **list_r, size_t *n_r);
/* Rates' state loaded from the store at start.  0, -1 out of memory. */
int policy_limits_import(struct policy_limits *pl, const struct store_limit_state *list, size_t n);

/* ---- the networks a login may AUTH from (credential.c) ---------------- */

/* After a good password: *outside_r 1 when the login is bound to networks
 * (sluice credential bind) and sa is in none of them; *new_r 1 when sa's
 * network (/24, /64) was never seen for this login before and others
 * were (the first one is a baseline, not an anomaly).  The network is
 * recorded as seen unless the login is refused (outside, with
 * refuse_outside).  *network_r gets that network.  Both count in the
 * stats of the login and its tenant.  0, or -1 on a store error. */
int policy_auth_network(struct policy_limits *pl, struct store *st, int64_t tenant_id,
			int64_t credential_id, const struct sockaddr *sa, int refuse_outside,
			int *outside_r, int *new_r, char network_r[STORE_CIDR_MAX + 1]);
/* The network an address counts in for "seen before": /24 or /64. */
int policy_address_network(const struct sockaddr *sa, char out[STORE_CIDR_MAX + 1]);

/* ---- suppression list (suppress.c) ------------------------------------ */

/* RCPT: 550 5.1.1 naming the tenant's suppression list when rcpt is on
 * it.  0 with *v_r (2xx: not listed), -1 on a store error (451 4.3.0). */
int policy_check_suppressed(struct store *st, const struct policy_client *c,
			    const struct smtp_address *rcpt, struct policy_verdict *v_r);
/* Whether a reply is a hard bounce that suppresses the recipient: a 5xx
 * with enhanced code 5.1.x (bad mailbox, bad domain, null MX...), taken
 * from enhanced, or else from the start of the reply text "550 5.1.1 ...". */
int policy_suppress_reply(int code, const char *enhanced, const char *reply);

/* ---- usage per tenant and hour (usage.c) -------------------------------
 * Counters are aggregated in memory (any thread: one mutex, no I/O) and
 * written to the store by policy_usage_flush() on sluiced's loop, every
 * usage_flush_interval and at shutdown.  Metrics: accepted_messages,
 * accepted_recipients, refused:REASON, delivered, deferred, bounced
 * (per recipient). */

struct policy_usage;

struct policy_usage *policy_usage_new(void);
void policy_usage_free(struct policy_usage **u);
void policy_usage_count(struct policy_usage *u, int64_t tenant_id, int64_t credential_id,
			const char *metric, uint64_t n, int64_t now);
/* "refused:" reason. */
void policy_usage_refused(struct policy_usage *u, int64_t tenant_id, int64_t credential_id,
			  const char *reason, int64_t now);
/* Put address on the tenant's suppression list at the next flush. */
void policy_usage_suppress(struct policy_usage *u, int64_t tenant_id, const char *address,
			   const char *reason, int64_t now);
/* Write what was counted; what could not be written stays for the next
 * flush.  0, or -1 (logged). */
int policy_usage_flush(struct policy_usage *u, struct store *st);

/* ---- containment: a compromised login told from its behaviour (contain.c)
 * The model only: scores each accepted message's hour against the
 * subject's baseline and says what to do; sluiced acts on the level. */

enum policy_contain_level {
	POLICY_CONTAIN_NONE,
	POLICY_CONTAIN_THROTTLE, /* slow it down (lifts with the hour) */
	POLICY_CONTAIN_HOLD,     /* queue its new mail on hold for review */
	POLICY_CONTAIN_SUSPEND,  /* refuse it */
};

struct policy_contain_config {
	uint32_t min_hours;      /* hours with traffic before unfamiliar domains count */
	double alpha;            /* weight of a new hour in the baseline */
	double rcpts_floor;      /* the usual hour is never taken below this */
	double volume_free;      /* a burst up to this many times the usual is free */
	uint32_t domains_full;   /* unfamiliar domains for the full domain signal */
	uint32_t fanout_full;    /* recipients of one body at unfamiliar domains */
	size_t max_domains;      /* domains remembered per subject */
	double throttle, hold, suspend; /* score thresholds */
	uint32_t tenant_suspend_logins; /* suspended logins that suspend the tenant */
	uint32_t suspend_after;  /* messages held and still scoring before suspend */
	uint32_t throttle_interval; /* seconds between messages of a throttled subject */
	uint32_t egress_full;    /* blocked port-25 attempts an hour for the full egress signal */
};

/* The signals of one subject's current hour, and their sum. */
struct policy_contain_signals {
	double domains, volume, network, fanout, failures, content, egress, total;
};

/* One accepted message: recipient domains as policy_contain_hash(). */
struct policy_contain_message {
	int64_t tenant_id;
	int64_t credential_id; /* 0: no login (a trusted network) */
	const uint64_t *rcpt_domains;
	size_t nrcpts;
	uint64_t body_hash;    /* 0: unknown */
};

struct policy_contain_verdict {
	enum policy_contain_level credential_level, tenant_level;
	struct policy_contain_signals credential, tenant;
};

struct policy_contain;

void policy_contain_config_default(struct policy_contain_config *c_r);
/* cfg NULL: the defaults. */
struct policy_contain *policy_contain_new(const struct policy_contain_config *cfg);
void policy_contain_free(struct policy_contain **pc);
/* A domain (or body) as the model keeps it: case-insensitive, never 0. */
uint64_t policy_contain_hash(const char *s, size_t len);
/* A good AUTH: from a network new to the login, or outside its bound ones. */
void policy_contain_auth(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			 int new_network, int outside, int64_t now);
/* Count an accepted message and judge: the higher of the login's and the
 * tenant's levels; *v_r has both, and the signals. */
enum policy_contain_level policy_contain_message(struct policy_contain *pc,
						 const struct policy_contain_message *m,
						 int64_t now, struct policy_contain_verdict *v_r);
/* Recipients refused or bounced after acceptance. */
void policy_contain_outcome(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			    uint32_t failed, int64_t now);
/* A scanner verdict on an accepted or refused message. */
void policy_contain_scan(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			 int spam, int virus, int64_t now);
/* Port-25 attempts the egress block refused from the tenant's networks
 * since the last call (`sluice egress sample`), from sources distinct
 * addresses: a tenant signal, judged as its mail without a login is.
 * Returns the tenant's level after. */
enum policy_contain_level policy_contain_blocked(struct policy_contain *pc, int64_t tenant_id,
						 uint64_t attempts, uint32_t sources, int64_t now,
						 struct policy_contain_signals *sig_r);
enum policy_contain_level policy_contain_level(struct policy_contain *pc,
					       enum policy_subject_kind kind, int64_t id,
					       int64_t now);
/* The signals of a subject's current hour (all 0 for one unknown). */
void policy_contain_signals_of(struct policy_contain *pc, enum policy_subject_kind kind,
			       int64_t id, int64_t now, struct policy_contain_signals *sig_r);
/* The operator's word: back to NONE (tenant release, credential resume);
 * the hour's unfamiliar domains join the baseline. */
void policy_contain_release(struct policy_contain *pc, enum policy_subject_kind kind, int64_t id);
const char *policy_contain_level_name(enum policy_contain_level l);
/* Baselines changed since the last export, for store_contain_baselines_
 * save(); free the list with store_contain_baselines_free().  0, -1 out
 * of memory (nothing marked saved). */
int policy_contain_export(struct policy_contain *pc, struct store_contain_baseline **list_r,
			  size_t *n_r);
/* Baselines loaded from the store at start.  0, -1 out of memory. */
int policy_contain_import(struct policy_contain *pc, const struct store_contain_baseline *list,
			  size_t n);
/* Seconds a throttled subject must still wait before its next message
 * (0: it may send now, or it is not throttled). */
int64_t policy_contain_wait(struct policy_contain *pc, enum policy_subject_kind kind, int64_t id,
			    int64_t now);
/* A level kept in the store (at start): raise the subject to it; since:
 * when it was set (a throttle lifts when that hour ends). */
void policy_contain_set_level(struct policy_contain *pc, enum policy_subject_kind kind,
			      int64_t id, int64_t tenant_id, enum policy_contain_level level,
			      int64_t since);
/* Throttles that lifted with their hour: those seen since the last call,
 * and those whose hour is over now (lifted here), at most max into out.
 * Each is reported once. */
struct policy_contain_lift {
	enum policy_subject_kind kind;
	int64_t id, tenant_id;
};
size_t policy_contain_lifts(struct policy_contain *pc, int64_t now, struct policy_contain_lift *out,
			    size_t max);

#endif
