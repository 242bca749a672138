/*
 * The sluice CLI's internals, shared by sluice.c (main, argument dispatch,
 * common helpers), cli_tenant.c (tenant, domain, network), cli_queue.c
 * (queue) and cli_probe.c (probe).  Not a module interface: nothing
 * outside src/cmd includes it.
 *
 * Contract of a command: it gets a struct cli whose configuration is
 * loaded and whose positional arguments were counted against the
 * command's table entry; it returns an exit code (CLI_EXIT_*) after
 * printing any error itself ("sluice: what went wrong" on stderr).
 */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "auth/auth.h"
#include "store/store.h"
#include "util/config.h"
#include "util/util.h"

enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_ERROR = 1, /* not found, exists, store or spool error */
	CLI_EXIT_USAGE = 2, /* unknown command or option, missing argument */
};

enum cli_flag {
	CLI_FLAG_JSON = 1 << 0,
	CLI_FLAG_PASSWORD_STDIN = 1 << 1,
	CLI_FLAG_VERIFIED = 1 << 2,
	CLI_FLAG_RAW = 1 << 3,
	CLI_FLAG_PORTS = 1 << 4,   /* --ports LIST: cli->opt_ports */
	CLI_FLAG_TIMEOUT = 1 << 5, /* --timeout SECONDS: cli->opt_timeout */
	CLI_FLAG_FORCE = 1 << 6,   /* domain verify --force: no DNS check */
	CLI_FLAG_TENANT = 1 << 7,  /* --tenant NAME: cli->opt_tenant (egress) */
	CLI_FLAG_REASON = 1 << 8,  /* --reason TEXT: cli->opt_reason (egress) */
	CLI_FLAG_EXPIRES = 1 << 9, /* --expires DURATION: cli->opt_expires (egress) */
	CLI_FLAG_ALL = 1 << 10,    /* --all: revoked, expired, decided rows too */
	CLI_FLAG_LOGIN = 1 << 11,  /* --login USER: cli->opt_login (limit) */
	CLI_FLAG_SINCE = 1 << 12,  /* --since WHEN: cli->opt_since (tenant usage) */
};

#define CLI_MAX_ARGS 16 /* limit set TENANT KEY=VALUE..., credential bind USER CIDR... */
#define CLI_PASSWORD_LEN 20 /* generated passwords */
#define CLI_TIME_MAX 32     /* "2026-11-23T19:30:00Z" and its NUL */

struct cli {
	const char *config_path; /* -c FILE; NULL: the embedded defaults */
	struct sluice_config cfg;
	int state_ready;     /* cli_state_prepare() ran */
	struct store *store; /* opened by cli_store() */
	unsigned flags;      /* enum cli_flag given on the command line */
	const char *args[CLI_MAX_ARGS];
	size_t nargs;
	const char *opt_ports;   /* --ports, NULL when not given */
	const char *opt_timeout; /* --timeout, NULL when not given */
	const char *opt_tenant;  /* --tenant */
	const char *opt_reason;  /* --reason */
	const char *opt_expires; /* --expires */
	const char *opt_login;   /* --login */
	const char *opt_since;   /* --since */
};

/* ---- sluice.c: helpers every command uses ------------------------------- */

/* "sluice: TEXT" and the usage of group (NULL: all) on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *group, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* "sluice: TEXT" on stderr; returns CLI_EXIT_ERROR. */
int cli_error(const char *fmt, ...) UTIL_PRINTF(1, 2);
/* Print a store error (and free it) for store return code rc, returns
 * CLI_EXIT_ERROR; what words it when the store left no text. */
int cli_store_error(int rc, char **err, const char *what);
/* Copy s for a message: non-printable bytes become '?', long input is
 * cut with "...".  Returns out. */
const char *cli_safe(const char *s, char *out, size_t size);

/* Before touching the store or the spool: as root, become the owner of the
 * store's folder (the daemon's user); when that folder is missing (./var
 * of the embedded defaults before sluiced ever ran), create it (0750) and
 * go on as the current user.  Idempotent.  0 ok, -1 printed. */
int cli_state_prepare(struct cli *cli);
/* The store, opened on first use.  NULL after printing the error. */
struct store *cli_store(struct cli *cli);
/* Look up a tenant by name; prints "tenant 'x' not found" etc.
 * Returns 0 or CLI_EXIT_ERROR. */
int cli_tenant_find(struct cli *cli, const char *name, struct store_tenant *t_r);

/* Unix seconds as "YYYY-MM-DDTHH:MM:SSZ". */
void cli_time_iso(int64_t t, char out[CLI_TIME_MAX]);
/* Print v (sorted keys, two-space indent) and a newline, then drop the
 * reference.  NULL v (a failed allocation) is an error.  Exit code. */
int cli_json_print(json_t *v);
/* json_string() that never fails on bad UTF-8: such bytes become U+FFFD. */
json_t *cli_json_string(const char *s);

/* The password for tenant add / passwd: one line of standard input with
 * --password-stdin (1 .. AUTH_PASSWORD_MAX bytes, no NUL or line breaks
 * inside), or else a random one (*generated_r = 1) the caller prints once.
 * out has AUTH_PASSWORD_MAX + 1 bytes; wipe it after use.  0 or exit code. */
int cli_password(struct cli *cli, char out[AUTH_PASSWORD_MAX + 1], int *generated_r);

/* ---- commands ------------------------------------------------------------- */

int cli_tenant_add(struct cli *cli);
int cli_tenant_list(struct cli *cli);
int cli_tenant_show(struct cli *cli);
int cli_tenant_suspend(struct cli *cli);
int cli_tenant_resume(struct cli *cli);
int cli_tenant_passwd(struct cli *cli);

/* cli_domain.c: a sending domain's DNS side (issue 5) */
int cli_domain_add(struct cli *cli);
int cli_domain_verify(struct cli *cli);
int cli_domain_records(struct cli *cli);
int cli_domain_check(struct cli *cli);
int cli_domain_rotate_dkim(struct cli *cli);
int cli_domain_list(struct cli *cli);
int cli_domain_remove(struct cli *cli);

int cli_network_add(struct cli *cli);
int cli_network_list(struct cli *cli);
int cli_network_remove(struct cli *cli);

int cli_queue_list(struct cli *cli);
int cli_queue_show(struct cli *cli);
int cli_queue_delete(struct cli *cli);
int cli_queue_retry(struct cli *cli);
int cli_queue_hold(struct cli *cli);
int cli_queue_release(struct cli *cli);
int cli_queue_bounce(struct cli *cli);

int cli_probe(struct cli *cli);

/* cli_egress.c: the port-25 egress table and its exceptions (issue 6) */
int cli_egress_render(struct cli *cli);
int cli_egress_apply(struct cli *cli);
int cli_egress_status(struct cli *cli);
int cli_egress_blocked(struct cli *cli);
int cli_egress_allow(struct cli *cli);
int cli_egress_revoke(struct cli *cli);
int cli_egress_list(struct cli *cli);
int cli_egress_request(struct cli *cli);
int cli_egress_requests(struct cli *cli);
int cli_egress_approve(struct cli *cli);
int cli_egress_deny(struct cli *cli);
int cli_egress_audit(struct cli *cli);
/* The kernel's table read and parsed (st->present 0: not loaded), and its
 * blocked sources named with their tenants from the store's networks. */
struct egress_status;
struct cli_nft;
int cli_egress_read(struct cli_nft *nft, struct egress_status *st);
int cli_egress_name(struct cli *cli, struct egress_status *st);
/* Both, through a root helper of its own (st freed on failure). */
int cli_egress_read_named(struct cli *cli, struct egress_status *st);
/* cli_egress_sample.c: blocked counts into the store for containment */
int cli_egress_sample(struct cli *cli);
/* Store a sample of st (read and named); quiet: print nothing. */
int cli_egress_sample_store(struct cli *cli, const struct egress_status *st, int quiet);
/* cli_nft.c: libnftables with root's rights kept; start it before the
 * store is opened (cli_state_prepare may drop root).  cli_nft_run: rc 0,
 * 1 (no table, listing), -1; *out_r (malloc'd) the output or the error. */
enum cli_nft_op { CLI_NFT_APPLY = 'A', CLI_NFT_JSON = 'J', CLI_NFT_TEXT = 'T' };
struct cli_nft;
int cli_nft_start(struct cli_nft **nft_r);
int cli_nft_run(struct cli_nft *nft, int op, const char *text, char **out_r);
void cli_nft_stop(struct cli_nft **nft);
/* After a tenant is suspended: revoke its egress exceptions, reload the
 * table through nft (NULL: egress_apply is off, only say so). */
int cli_egress_tenant_suspended(struct cli *cli, const char *tenant, struct cli_nft *nft);

/* cli_policy.c: limits, usage, suppression list, bound networks (issue 4) */
int cli_limit_show(struct cli *cli);
int cli_limit_set(struct cli *cli);
int cli_tenant_usage(struct cli *cli);
int cli_suppression_add(struct cli *cli);
int cli_suppression_remove(struct cli *cli);
int cli_suppression_list(struct cli *cli);
int cli_credential_bind(struct cli *cli);
int cli_credential_unbind(struct cli *cli);
int cli_credential_show(struct cli *cli);
/* cli_contain.c: containment undone by the operator (issue 4) */
int cli_contain_list(struct cli *cli);
int cli_credential_resume(struct cli *cli);
int cli_tenant_release(struct cli *cli);

#endif
