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
};

struct sluice_config {
	char *path;      /* the file it was read from */
	char *hostname;  /* our name in the banner, EHLO and Received */
	char *user;      /* drop to this user after binding, when root */
	char *store;     /* "sqlite:PATH" */
	char *spool_dir;
	char *tls_cert;  /* PEM; made self-signed on first start when missing */
	char *tls_key;
	char *control_socket;
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
};

void config_defaults(struct sluice_config *cfg);
/* 0 ok; -1 with *err_r (malloc'd, "FILE:LINE: what") on a bad file. */
int config_load(const char *path, struct sluice_config *cfg, char **err_r);
void config_free(struct sluice_config *cfg);

#endif
