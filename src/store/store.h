/*
 * store: tenants, SMTP credentials, sending domains, trusted networks.
 * One interface; the SQLite backend (store_sqlite.c) is the default and
 * a PostgreSQL backend can plug in behind the same functions later.
 *
 * Conventions: functions return 0 on success, STORE_NOTFOUND when the
 * named object does not exist, STORE_EXISTS when it already does, -1 on
 * any other error; *err_r (when err_r is not NULL) then gets a malloc'd
 * text the caller frees.  A store handle is used by one thread at a time;
 * open one per thread.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_NOTFOUND 1
#define STORE_EXISTS 2

#define STORE_NAME_MAX 64     /* tenant and user names */
#define STORE_DOMAIN_MAX 255
#define STORE_CIDR_MAX 64
#define STORE_HASH_MAX 128    /* crypto_pwhash_STRBYTES */

struct store;

struct store_tenant {
	int64_t id;
	char name[STORE_NAME_MAX + 1];
	int suspended;
	int64_t created;   /* unix seconds */
};

struct store_credential {
	int64_t id;
	int64_t tenant_id;
	char username[STORE_NAME_MAX + 1];
	char hash[STORE_HASH_MAX + 1];   /* argon2id encoded string */
	int suspended;                   /* this credential */
	int tenant_suspended;            /* its tenant */
};

struct store_domain {
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1]; /* lower case */
	int verified;
	int64_t created;
};

struct store_network {
	int64_t id;
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char cidr[STORE_CIDR_MAX + 1];     /* canonical "10.0.0.0/8", "2001:db8::/32" */
};

/* uri: "sqlite:PATH".  Creates the schema when missing. */
int store_open(const char *uri, struct store **store_r, char **err_r);
void store_close(struct store **store);
/* A counter that changes when any process commits a change (SQLite's
 * data_version): lets a daemon know when to reload cached tables. */
int64_t store_generation(struct store *store);

/* tenants; names are [A-Za-z0-9._-]{1,64} */
int store_tenant_add(struct store *st, const char *name, int64_t *id_r, char **err_r);
int store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r, char **err_r);
int store_tenant_get_id(struct store *st, int64_t id, struct store_tenant *t_r, char **err_r);
int store_tenant_set_suspended(struct store *st, const char *name, int suspended, char **err_r);
/* *list_r malloc'd, ordered by name; free(). */
int store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r, char **err_r);

/* credentials (SMTP AUTH user names are unique across tenants) */
int store_credential_set(struct store *st, int64_t tenant_id, const char *username,
			 const char *hash, char **err_r); /* add or replace the hash */
int store_credential_lookup(struct store *st, const char *username,
			    struct store_credential *c_r, char **err_r);
/* The same by the credential's id (a login named in the spool or a
 * containment record). */
int store_credential_get_id(struct store *st, int64_t id, struct store_credential *c_r,
			    char **err_r);
int store_credential_list(struct store *st, int64_t tenant_id, struct store_credential **list_r,
			  size_t *n_r, char **err_r);
int store_credential_remove(struct store *st, int64_t tenant_id, const char *username,
			    char **err_r);
/* Suspends one login; its tenant's other logins keep working. */
int store_credential_set_suspended(struct store *st, const char *username, int suspended,
				   char **err_r);

/* domains (unique across tenants; stored lower-case) */
int store_domain_add(struct store *st, int64_t tenant_id, const char *domain, int verified,
		     char **err_r);
int store_domain_remove(struct store *st, int64_t tenant_id, const char *domain, char **err_r);
int store_domain_set_verified(struct store *st, const char *domain, int verified, char **err_r);
int store_domain_get(struct store *st, const char *domain, struct store_domain *d_r,
		     char **err_r);
/* tenant_id 0: every tenant's */
int store_domain_list(struct store *st, int64_t tenant_id, struct store_domain **list_r,
		      size_t *n_r, char **err_r);

/* trusted networks: a client address inside one may use the relay
 * listener (port 25) without AUTH, as that tenant */
int store_network_add(struct store *st, int64_t tenant_id, const char *cidr, char **err_r);
int store_network_remove(struct store *st, int64_t tenant_id, const char *cidr, char **err_r);
/* tenant_id 0: every tenant's.  A network belongs to one tenant. */
int store_network_list(struct store *st, int64_t tenant_id, struct store_network **list_r,
		       size_t *n_r, char **err_r);

/* ---- sending domains: verification token and DKIM keys (store_dkim.c) ---- */

#define STORE_TOKEN_MAX 64
#define STORE_SELECTOR_MAX 63
#define STORE_DKIM_PEM_MAX 4096    /* PKCS#8 PEM of RSA-2048 is ~1.7 KB */
#define STORE_DKIM_RECORD_MAX 1024 /* "v=DKIM1; k=rsa; p=..." is ~410 bytes */

enum store_dkim_alg { STORE_DKIM_RSA = 0, STORE_DKIM_ED25519 = 1 };
/* pending: published, not signing; active: signing; retired: no longer
 * signing, its record stays in DNS for the overlap, then its key is wiped */
enum store_dkim_state { STORE_DKIM_PENDING = 0, STORE_DKIM_ACTIVE = 1, STORE_DKIM_RETIRED = 2 };

struct store_dkim_key {
	int64_t id;
	char domain[STORE_DOMAIN_MAX + 1];
	char selector[STORE_SELECTOR_MAX + 1];
	int alg;   /* enum store_dkim_alg */
	int state; /* enum store_dkim_state */
	char pem[STORE_DKIM_PEM_MAX];          /* "" once wiped */
	char record[STORE_DKIM_RECORD_MAX];    /* the TXT value to publish */
	int64_t created, activated, retired;   /* unix seconds; 0 not yet */
};

/* The domain's DNS verification token (one per domain; set replaces). */
int store_domain_token_set(struct store *st, const char *domain, const char *token,
			   char **err_r);
int store_domain_token_get(struct store *st, const char *domain,
			   char token_r[STORE_TOKEN_MAX + 1], char **err_r);
/* Add a key, state pending or active (activated = created then). */
int store_dkim_add(struct store *st, const struct store_dkim_key *k, char **err_r);
/* domain: its keys, oldest first; NULL: every domain's active keys (what
 * sluiced signs with).  *list_r malloc'd; wipe (it holds keys) and free. */
int store_dkim_list(struct store *st, const char *domain, struct store_dkim_key **list_r,
		    size_t *n_r, char **err_r);
/* Move a key to state, stamping activated or retired with when. */
int store_dkim_set_state(struct store *st, const char *domain, const char *selector, int state,
			 int64_t when, char **err_r);
/* Forget a retired key's private half (its record may leave DNS). */
int store_dkim_wipe(struct store *st, const char *domain, const char *selector, char **err_r);
/* A number that changes when any key is added, removed, changes state or
 * is wiped (a digest of the table's counts and dates): a cheap "reload?". */
int store_dkim_version(struct store *st, uint64_t *version_r, char **err_r);

/* ---- egress exceptions, requests and their audit log (store_egress.c) ---- */

#define STORE_EGRESS_REASON_MAX 200
#define STORE_EGRESS_ACTOR_MAX 64

/* An exception opens port 25 for a tenant's source network until expires
 * (0: until revoked).  Active: not revoked and not expired. */
struct store_egress_exception {
	int64_t id;
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char cidr[STORE_CIDR_MAX + 1];   /* canonical, as store_network */
	char reason[STORE_EGRESS_REASON_MAX + 1];
	int64_t created;
	char created_by[STORE_EGRESS_ACTOR_MAX + 1];
	int64_t expires;                 /* unix seconds; 0 never */
	int64_t revoked;                 /* unix seconds; 0 not revoked */
	char revoked_by[STORE_EGRESS_ACTOR_MAX + 1];
	int64_t request_id;              /* the request it grants; 0 none */
};

enum store_egress_state { STORE_EGRESS_PENDING = 0, STORE_EGRESS_APPROVED = 1,
			  STORE_EGRESS_DENIED = 2 };

struct store_egress_request {
	int64_t id;
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char cidr[STORE_CIDR_MAX + 1];
	char reason[STORE_EGRESS_REASON_MAX + 1];
	int64_t duration;                /* seconds the exception would last; 0 no expiry */
	int64_t created;
	char created_by[STORE_EGRESS_ACTOR_MAX + 1];
	int state;                       /* enum store_egress_state */
	int64_t decided;
	char decided_by[STORE_EGRESS_ACTOR_MAX + 1];
	char note[STORE_EGRESS_REASON_MAX + 1];
	int64_t exception_id;            /* the exception an approval made */
};

struct store_egress_audit {
	int64_t id;
	int64_t at;
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	char action[33];  /* allow, revoke, request, approve, deny */
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1]; /* "" when none */
	char cidr[STORE_CIDR_MAX + 1];
	int64_t ref;                     /* exception or request id */
	char detail[STORE_EGRESS_REASON_MAX + 1];
};

/* reason: 1-200 printable characters; actor: who does it ("root",
 * "operator:alice", "tenant:acme"), 1-64 printable characters.  Each
 * change and its audit row are written in one transaction.  Overlaps with
 * other exceptions are the caller's to check (egress_cidr_overlap). */
int store_egress_exception_add(struct store *st, int64_t tenant_id, const char *cidr,
			       const char *reason, int64_t expires, const char *actor,
			       int64_t *id_r, char **err_r);
/* STORE_NOTFOUND when no active exception has this id. */
int store_egress_exception_revoke(struct store *st, int64_t id, const char *actor,
				  char **err_r);
/* Every active exception of the tenant (a suspended tenant loses them);
 * *n_r how many.  why: the audit detail ("tenant suspended"). */
int store_egress_exception_revoke_tenant(struct store *st, int64_t tenant_id, const char *actor,
					 const char *why, size_t *n_r, char **err_r);
/* tenant_id 0: every tenant's.  all 0: the active ones at now; 1: every
 * row, revoked and expired too.  Ordered by id; *list_r malloc'd. */
int store_egress_exception_list(struct store *st, int64_t tenant_id, int all, int64_t now,
				struct store_egress_exception **list_r, size_t *n_r,
				char **err_r);
int store_egress_exception_get(struct store *st, int64_t id,
			       struct store_egress_exception *x_r, char **err_r);

int store_egress_request_add(struct store *st, int64_t tenant_id, const char *cidr,
			     const char *reason, int64_t duration, const char *actor,
			     int64_t *id_r, char **err_r);
int store_egress_request_get(struct store *st, int64_t id, struct store_egress_request *r_r,
			     char **err_r);
/* A pending request approved: its exception made (expiring duration
 * seconds from now), the request marked, both audited, in one
 * transaction.  STORE_NOTFOUND: no such request; STORE_EXISTS: decided. */
int store_egress_request_approve(struct store *st, int64_t id, const char *actor,
				 int64_t *exception_id_r, char **err_r);
int store_egress_request_deny(struct store *st, int64_t id, const char *actor, const char *note,
			      char **err_r);
/* tenant_id 0: every tenant's; pending_only: state pending. */
int store_egress_request_list(struct store *st, int64_t tenant_id, int pending_only,
			      struct store_egress_request **list_r, size_t *n_r, char **err_r);

/* The audit log, newest first, at most limit rows; tenant_id 0: all. */
int store_egress_audit_list(struct store *st, int64_t tenant_id, size_t limit,
			    struct store_egress_audit **list_r, size_t *n_r, char **err_r);

/* ---- outbound policy: limits, credential networks, suppressions, usage ----
 * (store_policy.c, issue 4) */

#define STORE_LIMIT_NAME_MAX 32 /* "recipients_per_message" */
#define STORE_ADDRESS_MAX 320   /* local@domain as SMTP formats it */
#define STORE_REASON_MAX 255
#define STORE_METRIC_MAX 64

struct store_limit {
	char name[STORE_LIMIT_NAME_MAX + 1]; /* [a-z_]; policy.h knows which */
	uint64_t value;                      /* 0: no limit */
};

/* Limit overrides of a tenant (credential_id 0) or of one of its
 * credentials: set adds or replaces, unset removes (STORE_NOTFOUND). */
int store_limit_set(struct store *st, int64_t tenant_id, int64_t credential_id, const char *name,
		    uint64_t value, char **err_r);
int store_limit_unset(struct store *st, int64_t tenant_id, int64_t credential_id,
		      const char *name, char **err_r);
int store_limit_list(struct store *st, int64_t tenant_id, int64_t credential_id,
		     struct store_limit **list_r, size_t *n_r, char **err_r);

struct store_credential_network {
	int64_t credential_id;
	char cidr[STORE_CIDR_MAX + 1]; /* canonical; or a network seen ("192.0.2.0/24") */
	int64_t created;               /* bound, or first seen */
};

/* The networks a credential may AUTH from (none: anywhere).  A CIDR is
 * checked and made canonical as for trusted networks. */
int store_credential_network_add(struct store *st, int64_t credential_id, const char *cidr,
				 char **err_r);
int store_credential_network_remove(struct store *st, int64_t credential_id, const char *cidr,
				    char **err_r);
int store_credential_network_list(struct store *st, int64_t credential_id,
				  struct store_credential_network **list_r, size_t *n_r,
				  char **err_r);
/* Record that the credential authenticated from network: *new_r 1 when
 * it was not seen before, *before_r how many networks were seen before. */
int store_credential_seen(struct store *st, int64_t credential_id, const char *network,
			  int64_t now, int *new_r, size_t *before_r, char **err_r);
int store_credential_seen_list(struct store *st, int64_t credential_id,
			       struct store_credential_network **list_r, size_t *n_r,
			       char **err_r);

struct store_suppression {
	int64_t tenant_id;
	char address[STORE_ADDRESS_MAX + 1]; /* lower-cased */
	char source[16];                     /* "bounce", "operator", "tenant" */
	char reason[STORE_REASON_MAX + 1];   /* the bounce's reply, or a note */
	int64_t created;
};

/* Per tenant; addresses compare case-insensitively (stored lower-case).
 * add: STORE_EXISTS when listed already. */
int store_suppression_add(struct store *st, const struct store_suppression *x, char **err_r);
int store_suppression_remove(struct store *st, int64_t tenant_id, const char *address,
			     char **err_r);
int store_suppression_get(struct store *st, int64_t tenant_id, const char *address,
			  struct store_suppression *x_r, char **err_r);
int store_suppression_list(struct store *st, int64_t tenant_id,
			   struct store_suppression **list_r, size_t *n_r, char **err_r);

struct store_usage {
	int64_t tenant_id;
	int64_t credential_id; /* 0: none (relay, delivery outcomes) */
	int64_t hour;          /* unix seconds / 3600 */
	char metric[STORE_METRIC_MAX + 1];
	uint64_t count;
};

/* Add each row's count to what is stored and put each suppression on its
 * tenant's list (kept as it is when listed already), in one transaction. */
int store_usage_add(struct store *st, const struct store_usage *rows, size_t n,
		    const struct store_suppression *supp, size_t nsupp, char **err_r);
/* The sum of metric for a tenant (credential_id -1: all of its rows) over
 * hours [from_hour, to_hour). */
int store_usage_sum(struct store *st, int64_t tenant_id, int64_t credential_id,
		    const char *metric, int64_t from_hour, int64_t to_hour, uint64_t *sum_r,
		    char **err_r);
/* A tenant's rows from since_hour on, summed over credentials
 * (credential_id 0), ordered by hour then metric. */
int store_usage_list(struct store *st, int64_t tenant_id, int64_t since_hour,
		     struct store_usage **list_r, size_t *n_r, char **err_r);


/* ---- containment (store_contain.c) ---------------------------------------
 * kind: 1 tenant, 2 credential; level: 0 none, 1 throttle, 2 hold, 3
 * suspend (policy.h).  Every change of level is also an event. */

#define STORE_CONTAIN_DOMAINS_MAX 8192 /* hashes in one baseline */

struct store_contain_state {
	int kind;
	int64_t subject_id;
	int64_t tenant_id;
	int level;
	char reason[256];
	char by[STORE_NAME_MAX + 1]; /* "sluiced", or the operator's login */
	int64_t since;               /* unix seconds */
};

struct store_contain_baseline {
	int kind;
	int64_t subject_id;
	int64_t tenant_id;
	double rcpts_per_hour;
	uint32_t hours;
	uint64_t *domains; /* malloc'd; free with store_contain_baselines_free */
	size_t ndomains;
};

/* Set a subject's level (0 removes the row) and log the event, in one
 * transaction. */
int store_contain_set(struct store *st, const struct store_contain_state *s, char **err_r);
/* STORE_NOTFOUND: level 0. */
int store_contain_get(struct store *st, int kind, int64_t subject_id,
		      struct store_contain_state *s_r, char **err_r);
/* Subjects above level 0; tenant_id 0: every tenant's. */
int store_contain_list(struct store *st, int64_t tenant_id, struct store_contain_state **list_r,
		       size_t *n_r, char **err_r);
/* A tenant's events since (unix seconds), oldest first. */
int store_contain_events(struct store *st, int64_t tenant_id, int64_t since,
			 struct store_contain_state **list_r, size_t *n_r, char **err_r);
/* Save baselines (replace), in one transaction. */
int store_contain_baselines_save(struct store *st, const struct store_contain_baseline *b,
				 size_t n, char **err_r);
int store_contain_baselines_load(struct store *st, struct store_contain_baseline **list_r,
				 size_t *n_r, char **err_r);
void store_contain_baselines_free(struct store_contain_baseline *list, size_t n);

/* ---- egress samples: blocked attempts per tenant (store_egress_sample.c) --
 * Written by `sluice egress sample` (root) from the kernel's cumulative
 * per-source counters, read by sluiced for the containment score. */

/* One source's count as the kernel has it now. */
struct store_egress_count {
	char addr[64];     /* "198.18.1.5", "2001:2::5" */
	int64_t tenant_id; /* 0: in no tenant's network (counted, not sampled) */
	uint64_t packets;  /* blocked attempts since the source entered the table */
};

/* The rise of a tenant's counts from one sample to the next. */
struct store_egress_sample {
	int64_t id;
	int64_t at; /* unix seconds */
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	uint64_t attempts; /* blocked attempts since the sample before */
	uint32_t sources;  /* addresses whose count rose */
};

/* Record the counts read at `at`: per source the rise since its last count
 * (all of it when new, or when it went down: the kernel started it again),
 * summed per tenant into one sample row per tenant with a rise; sources not
 * listed are forgotten.  One transaction.  *nsamples_r (may be NULL): rows
 * written. */
int store_egress_sample_add(struct store *st, const struct store_egress_count *counts, size_t n,
			    int64_t at, size_t *nsamples_r, char **err_r);
/* Samples with id > after_id and at >= since, oldest first, at most limit. */
int store_egress_sample_list(struct store *st, int64_t after_id, int64_t since, size_t limit,
			     struct store_egress_sample **list_r, size_t *n_r, char **err_r);

/* ---- rate-limit state (store_limit_state.c) --------------------------------
 * The GCRA state of the policy's rates per tenant and login, saved by
 * sluiced with the usage flush and at exit, loaded at start. */

struct store_limit_state {
	int kind;                      /* 1 tenant, 2 credential */
	int64_t subject_id;
	char name[STORE_NAME_MAX + 1]; /* the limit: "messages_per_hour"... */
	int64_t tat_us;                /* the rate's theoretical arrival time */
};

/* In one transaction: keep each row whose tat_us is after now_us, drop
 * the others (a rate back to its full burst), and drop every stored row
 * whose time has passed. */
int store_limit_state_save(struct store *st, const struct store_limit_state *rows, size_t n,
			   int64_t now_us, char **err_r);
/* The rows whose tat_us is after now_us; *list_r malloc'd, free(). */
int store_limit_state_load(struct store *st, int64_t now_us, struct store_limit_state **list_r,
			   size_t *n_r, char **err_r);

#endif
