/*
 * The sluice configuration file: "key = value" lines, '#' comments, and
 * "[listener NAME]" sections.  Relative paths are resolved against the
 * folder holding the file.  Shared by sluiced and the sluice CLI.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_LISTENERS 16
#define CONFIG_MAX_ADDRS 8
#define CONFIG_GREET_PAUSE_MAX_MS 60000u

enum config_tls { CONFIG_TLS_NONE, CONFIG_TLS_STARTTLS, CONFIG_TLS_IMPLICIT };
/* submission: AUTH required before MAIL.  relay: no AUTH; only clients
 * inside a tenant's trusted networks may connect (port 25). */
enum config_mode { CONFIG_MODE_SUBMISSION, CONFIG_MODE_RELAY };

struct config_listener {
	char name[64];
	char *addrs[CONFIG_MAX_ADDRS]; /* "127.0.0.1:587", "[::1]:587" */
	size_t naddrs;
	enum config_tls tls;
	enum config_mode mode;
	/* milliseconds to wait before the 220 banner; a client that talks
	 * first is refused (554 5.5.0).  0: banner at once (still refused
	 * when its bytes are already there).  Not for implicit TLS. */
	uint32_t greet_pause_ms;
};

#define CONFIG_MAX_ROUTES 32
#define CONFIG_MAX_ROUTE_DOMAINS 16
#define CONFIG_MAX_RESOLVER_OPTIONS 8

/* Outbound TLS of a delivery route or of MX delivery.
 * opportunistic: STARTTLS when offered, no certificate check, plaintext
 *   when not offered (RFC 3207 as MTAs practise it);
 * required: STARTTLS must succeed or the message is deferred; the
 *   certificate is checked only with tls_verify = yes;
 * implicit: TLS from the first byte (port 465, RFC 8314). */
enum config_out_tls {
	CONFIG_OUT_TLS_NONE,
	CONFIG_OUT_TLS_OPPORTUNISTIC,
	CONFIG_OUT_TLS_REQUIRED,
	CONFIG_OUT_TLS_IMPLICIT,
};

enum config_ip_pref { CONFIG_IP_IPV4_FIRST, CONFIG_IP_IPV6_FIRST, CONFIG_IP_IPV4_ONLY,
		      CONFIG_IP_IPV6_ONLY };

/* [route NAME]: mail for these recipient domains goes to one host (an
 * upstream ESP or a smarthost) instead of the domain's MX. */
struct config_route {
	char name[64];
	/* "example.com" (exactly), ".example.com" (its subdomains), "*" */
	char *domains[CONFIG_MAX_ROUTE_DOMAINS];
	size_t ndomains;
	char *host;              /* name or IP literal, no MX lookup */
	uint16_t port;
	enum config_out_tls tls;
	int tls_verify;          /* check the chain and the host name */
	char *tls_ca_file;       /* trust these CAs (PEM) instead of the system's */
	char *auth_user;         /* AUTH PLAIN/LOGIN, only under TLS */
	char *auth_password;
};

struct config_delivery {
	int enabled;                  /* delivery = on | off */
	uint16_t mx_port;             /* 25; tests use another */
	char *resolver;               /* "IP" or "IP@PORT"; NULL: /etc/resolv.conf */
	char *resolver_trust_anchor;  /* DNSSEC anchors file; NULL: the root's (dnssec on) */
	/* more libunbound settings ("name: value"), NULL-terminated; the key
	 * may repeat (e.g. "local-zone: example.test. transparent") */
	char *resolver_options[CONFIG_MAX_RESOLVER_OPTIONS + 1];
	size_t nresolver_options;
	int dnssec;                   /* validate, and use DANE where TLSA is secure */
	enum config_ip_pref ip_pref;
	enum config_out_tls mx_tls;   /* none | opportunistic | required */
	char *retry_schedule;         /* "5m,10m,20m,40m,1h,2h,4h": the last repeats */
	uint32_t max_queue_lifetime;  /* seconds; then deferred recipients bounce */
	uint32_t max_received;        /* more Received headers: a loop, bounced */
	uint32_t dest_concurrency;    /* connections per destination at once */
	uint32_t host_concurrency;    /* connections per MX host at once */
	uint32_t messages_per_connection;
	uint32_t dest_rate;           /* messages per minute per recipient domain; 0 off */
	uint32_t max_connections;     /* outbound connections in all */
	/* seconds a delivery connection with nothing to send waits for the
	 * next message of its destination before QUIT; 0: QUIT at once */
	uint32_t connection_cache_time;
	/* RFC 5321 4.5.3.2, seconds */
	uint32_t timeout_connect;
	uint32_t timeout_greeting;
	uint32_t timeout_command;     /* EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT */
	uint32_t timeout_data_init;
	uint32_t timeout_data_block;
	uint32_t timeout_data_end;
	struct config_route routes[CONFIG_MAX_ROUTES];
	size_t nroutes;
};

/* Sending domains (issue 5): the SPF and DMARC records `sluice domain
 * add` prints, and DKIM key rotation. */
#define CONFIG_MAX_SENDING_ADDRESSES 32
struct config_domains {
	char *sending_addresses; /* "192.0.2.10 2001:db8::/64": SPF ip4:/ip6:; NULL none */
	char *spf_include;       /* a domain for "include:", or NULL */
	char *dmarc_rua;         /* "mailto:..."; NULL: mailto:dmarc@DOMAIN */
	uint32_t dkim_overlap;   /* seconds a retired key stays published */
};

/* Egress control (`sluice egress`, config_egress.c). */
#define CONFIG_MAX_EGRESS_NETS 256
struct config_egress {
	char *customers[CONFIG_MAX_EGRESS_NETS]; /* egress_customer_networks */
	size_t ncustomers;
	char *relays[CONFIG_MAX_EGRESS_NETS];    /* egress_relay_addresses: sluice's */
	size_t nrelays;
	char *privates[CONFIG_MAX_EGRESS_NETS];  /* egress_private_networks */
	size_t nprivates;
	uint32_t log_rate;        /* blocked-attempt log lines a minute; 0 none */
	int log_nflog;            /* egress_log = nflog:GROUP (else syslog, the kernel log) */
	uint16_t log_group;       /* its nfnetlink_log group */
	uint32_t blocked_timeout; /* seconds a quiet blocked source stays counted */
	int apply_on_change;      /* egress_apply: exception changes reload the table */
};

/* Content scanning at end of DATA (config_scan.c, src/scan/): what a
 * verdict does to the message. */
enum config_scan_action { CONFIG_SCAN_ACCEPT, CONFIG_SCAN_HOLD, CONFIG_SCAN_REFUSE };
struct config_scan {
	char *clamd;          /* "IP:PORT", "[IPv6]:PORT", "unix:/PATH"; NULL: no clamd */
	char *rspamd;         /* "http://IP:PORT[/PATH]", "unix:/PATH"; NULL: no rspamd */
	uint32_t clamd_timeout;  /* seconds for the whole exchange */
	uint32_t rspamd_timeout;
	uint64_t max_size;    /* larger messages are not scanned (logged) */
	int fail_closed;      /* a scanner down or late: 451 4.3.0 (else accept, logged) */
	enum config_scan_action clamd_virus;
	enum config_scan_action rspamd_reject;
	enum config_scan_action rspamd_add_header;
	enum config_scan_action rspamd_rewrite_subject;
	enum config_scan_action rspamd_greylist;
};

/* The outbound policy's defaults (config_policy.c, src/policy): the
 * limits every tenant has unless `sluice limit set` overrides them, in the
 * order of config_policy_limit_names (policy.h's enum policy_limit);
 * 0 is no limit. */
#define CONFIG_POLICY_LIMITS 12
struct config_policy {
	uint64_t limits[CONFIG_POLICY_LIMITS]; /* limit_NAME = N */
	int credential_network_flag;   /* credential_network_mode = flag (else refuse) */
	uint32_t usage_flush_interval; /* seconds between writes of usage counters */
	int contain;                   /* containment on (policy/contain.c) */
	uint32_t contain_rcpts_floor;  /* the usual hour is never taken below this */
	uint32_t contain_throttle_interval; /* seconds between a throttled sender's messages */
};
extern const char *const config_policy_limit_names[CONFIG_POLICY_LIMITS];

struct sluice_config {
	char *path;      /* the file it was read from */
	char *hostname;  /* our name in the banner, EHLO and Received */
	char *user;      /* drop to this user after binding, when root */
	char *store;     /* "sqlite:PATH" */
	char *spool_dir;
	char *tls_cert;  /* PEM; made self-signed on first start when missing */
	char *tls_key;
	char *control_socket;
	char *metrics_listen; /* "127.0.0.1:9325": Prometheus /metrics (cmd/metrics.h); NULL off */
	int log_syslog;  /* log = syslog */
	int log_debug;   /* log_level = debug */

	uint64_t max_message_size;   /* octets, SIZE */
	uint32_t max_recipients;     /* per message */
	uint32_t max_connections;    /* in all */
	uint32_t max_connections_per_ip;
	uint32_t max_errors;         /* protocol errors before 421 */
	uint32_t timeout_command;    /* seconds, RFC 5321 4.5.3.2.7 */
	uint32_t timeout_data;       /* seconds between DATA blocks */
	uint32_t auth_fail_limit_ip;   /* failed AUTHs per address per window */
	uint32_t auth_fail_limit_user; /* failed AUTHs per user name per window */
	uint32_t auth_fail_window;     /* seconds */
	uint32_t auth_cache_ttl;       /* seconds a verified password is cached */
	uint32_t auth_threads;         /* argon2 verification threads */
	uint32_t spool_batch_max;      /* messages per group commit at most */

	struct config_listener listeners[CONFIG_MAX_LISTENERS];
	size_t nlisteners;

	struct config_delivery delivery;
	struct config_egress egress;
	struct config_domains domains;
	struct config_policy policy;
	struct config_scan scan;
};

void config_defaults(struct sluice_config *cfg);
/* 0 ok; -1 with *err_r (malloc'd, "FILE:LINE: what") on a bad file. */
int config_load(const char *path, struct sluice_config *cfg, char **err_r);
void config_free(struct sluice_config *cfg);

/* The route for a recipient domain (exact name, then the longest
 * ".parent" suffix, then "*"), or NULL: deliver to the domain's MX. */
const struct config_route *config_route_find(const struct config_delivery *d, const char *domain);

/* For the config_*.c files: replace *slot with a copy of v.  0, -1 out of
 * memory. */
int config_set_str(char **slot, const char *v);

/* config_delivery.c, used by config_load(): defaults, the delivery keys of
 * the global section, and the keys of a [route NAME] section.  0 ok, 1 not
 * a delivery key, -1 bad value with *why set. */
void config_delivery_defaults(struct config_delivery *d);
int config_delivery_key(struct config_delivery *d, const char *dir, const char *k, const char *v,
			const char **why);
int config_route_key(struct config_route *r, const char *k, char *v, const char **why);
int config_delivery_check(struct config_delivery *d, const char **why);
void config_delivery_free(struct config_delivery *d);

/* config_domains.c: the sending-domain keys of the global section (same
 * contract as config_delivery_key). */
void config_domains_defaults(struct config_domains *d);
int config_domains_key(struct config_domains *d, const char *k, const char *v, const char **why);
void config_domains_free(struct config_domains *d);

/* config_egress.c: the egress keys of the global section (same contract
 * as config_delivery_key). */
void config_egress_defaults(struct config_egress *e);
int config_egress_key(struct config_egress *e, const char *k, const char *v, const char **why);
void config_egress_free(struct config_egress *e);

/* config_scan.c: the scan_* keys of the global section (same contract as
 * config_delivery_key). */
void config_scan_defaults(struct config_scan *s);
int config_scan_key(struct config_scan *s, const char *k, const char *v, const char **why);
void config_scan_free(struct config_scan *s);

/* config_policy.c: the limit_* keys and the other policy keys of the
 * global section (same contract as config_delivery_key). */
void config_policy_defaults(struct config_policy *p);
int config_policy_key(struct config_policy *p, const char *k, const char *v, const char **why);
/* The index of a limit name ("messages_per_hour"), or -1. */
int config_policy_limit_index(const char *name);
/* A limit's value: a number (message_size: with k/m/g), or none (0).
 * 0, or -1 when it is neither. */
int config_policy_limit_value(int index, const char *v, uint64_t *n_r);

#endif
