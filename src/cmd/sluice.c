/*
 * sluice: the operator CLI.  This file owns main(), the command table and
 * its argument parsing, and the helpers every command shares (errors,
 * JSON output, passwords, privileges, the store handle).  The commands
 * themselves live in cli_tenant.c (tenant, domain, network),
 * cli_queue.c (queue) and cli_probe.c (probe).
 *
 * Exit codes: 0 done; 1 an operational error (not found, exists, store or
 * spool trouble), one line on stderr; 2 a usage error, with the usage of
 * the command group.  No argument makes it crash: every input is checked
 * here or by the store before use, and echoed only through cli_safe().
 */
#include "cmd/cli.h"
#include "cmd/defaults.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

/* ---- the command table ----------------------------------------------------- */

struct cli_command {
	const char *group;
	const char *name; /* NULL: the group is the command ("sluice probe HOST") */
	size_t min_args, max_args;
	unsigned flags; /* enum cli_flag accepted */
	int (*run)(struct cli *cli);
	const char *synopsis; /* after "sluice [-c FILE] GROUP " */
	const char *summary;
};

static const struct cli_command cli_commands[] = {
    {"tenant", "add", 1, 1, CLI_FLAG_PASSWORD_STDIN, cli_tenant_add, "add NAME [--password-stdin]",
     "create a tenant and its SMTP login NAME"},
    {"tenant", "list", 0, 0, CLI_FLAG_JSON, cli_tenant_list, "list [--json]", "list tenants"},
    {"tenant", "show", 1, 1, CLI_FLAG_JSON, cli_tenant_show, "show NAME [--json]",
     "a tenant with its logins, domains and networks"},
    {"tenant", "suspend", 1, 1, 0, cli_tenant_suspend, "suspend NAME",
     "refuse the tenant's new mail, hold its queue"},
    {"tenant", "resume", 1, 1, 0, cli_tenant_resume, "resume NAME", "undo suspend"},
    {"tenant", "passwd", 1, 1, CLI_FLAG_PASSWORD_STDIN, cli_tenant_passwd,
     "passwd NAME [--password-stdin]", "set the password of the login NAME"},
    {"tenant", "usage", 1, 1, CLI_FLAG_JSON | CLI_FLAG_SINCE, cli_tenant_usage,
     "usage NAME [--since WHEN] [--json]", "accepted, refused, delivered... per hour"},
    {"tenant", "release", 1, 1, 0, cli_tenant_release, "release NAME",
     "undo a tenant's containment"},
    {"domain", "add", 2, 2, CLI_FLAG_VERIFIED, cli_domain_add, "add TENANT DOMAIN [--verified]",
     "let a tenant send as DOMAIN once verified"},
    {"domain", "verify", 1, 1, CLI_FLAG_FORCE, cli_domain_verify, "verify DOMAIN [--force]",
     "verify by the DNS token (--force: without DNS)"},
    {"domain", "records", 1, 1, 0, cli_domain_records, "records DOMAIN",
     "the DNS records to publish (token, DKIM, SPF, DMARC)"},
    {"domain", "check", 1, 1, CLI_FLAG_JSON, cli_domain_check, "check DOMAIN [--json]",
     "check the published records, each with its fix"},
    {"domain", "rotate-dkim", 1, 1, 0, cli_domain_rotate_dkim, "rotate-dkim DOMAIN",
     "new DKIM keys: publish, then switch once in DNS"},
    {"domain", "list", 0, 1, CLI_FLAG_JSON, cli_domain_list, "list [TENANT] [--json]",
     "list domains"},
    {"domain", "remove", 2, 2, 0, cli_domain_remove, "remove TENANT DOMAIN",
     "remove a tenant's domain"},
    {"network", "add", 2, 2, 0, cli_network_add, "add TENANT CIDR",
     "let CIDR relay on port 25 without AUTH"},
    {"network", "list", 0, 1, CLI_FLAG_JSON, cli_network_list, "list [TENANT] [--json]",
     "list trusted networks"},
    {"network", "remove", 2, 2, 0, cli_network_remove, "remove TENANT CIDR",
     "stop trusting a network"},
    {"queue", "list", 0, 0, CLI_FLAG_JSON, cli_queue_list, "list [--json]", "list queued messages"},
    {"queue", "show", 1, 1, CLI_FLAG_JSON | CLI_FLAG_RAW, cli_queue_show,
     "show ID [--json | --raw]", "a message's envelope, recipients and headers"},
    {"queue", "delete", 1, 1, 0, cli_queue_delete, "delete ID",
     "delete a message (through sluiced when it runs)"},
    {"queue", "retry", 1, 1, 0, cli_queue_retry, "retry ID",
     "try every pending recipient now"},
    {"queue", "hold", 1, 1, 0, cli_queue_hold, "hold ID", "keep a message from delivery"},
    {"queue", "release", 1, 1, 0, cli_queue_release, "release ID",
     "deliver a held message again, at once"},
    {"queue", "bounce", 1, 1, 0, cli_queue_bounce, "bounce ID",
     "fail every pending recipient, with a DSN to the sender (needs sluiced)"},
    {"probe", NULL, 0, 1, CLI_FLAG_JSON | CLI_FLAG_PORTS | CLI_FLAG_TIMEOUT, cli_probe,
     "[HOST] [--ports LIST] [--timeout S] [--json]",
     "which SMTP ports reach HOST: TLS, AUTH, a verdict"},
    {"egress", "render", 0, 0, 0, cli_egress_render, "render",
     "print the nftables table of the port-25 block"},
    {"egress", "apply", 0, 0, 0, cli_egress_apply, "apply",
     "load it into the kernel, atomically (root)"},
    {"egress", "status", 0, 0, CLI_FLAG_JSON, cli_egress_status, "status [--json]",
     "the rules in force and their counters"},
    {"egress", "blocked", 0, 0, CLI_FLAG_JSON, cli_egress_blocked, "blocked [--json]",
     "sources hitting the block, most first"},
    {"egress", "sample", 0, 0, 0, cli_egress_sample, "sample",
     "store the blocked counts per tenant for containment (root, each minute)"},
    {"egress", "allow", 1, 1, CLI_FLAG_TENANT | CLI_FLAG_REASON | CLI_FLAG_EXPIRES,
     cli_egress_allow, "allow CIDR --tenant T --reason TEXT --expires DUR",
     "open port 25 for CIDR"},
    {"egress", "revoke", 1, 1, 0, cli_egress_revoke, "revoke ID", "close it again"},
    {"egress", "list", 0, 0, CLI_FLAG_JSON | CLI_FLAG_ALL, cli_egress_list,
     "list [--all] [--json]", "exceptions (in force; --all: every one)"},
    {"egress", "request", 1, 1, CLI_FLAG_TENANT | CLI_FLAG_REASON | CLI_FLAG_EXPIRES,
     cli_egress_request, "request CIDR --tenant T --reason TEXT --expires DUR",
     "a tenant asks for an exception"},
    {"egress", "requests", 0, 0, CLI_FLAG_JSON | CLI_FLAG_ALL, cli_egress_requests,
     "requests [--all] [--json]", "requests (pending; --all: every one)"},
    {"egress", "approve", 1, 1, 0, cli_egress_approve, "approve ID",
     "grant a request: its exception"},
    {"egress", "deny", 1, 1, CLI_FLAG_REASON, cli_egress_deny, "deny ID [--reason TEXT]",
     "refuse a request"},
    {"egress", "audit", 0, 1, CLI_FLAG_JSON, cli_egress_audit, "audit [TENANT] [--json]",
     "who changed what, newest first"},
    {"limit", "show", 1, 1, CLI_FLAG_JSON | CLI_FLAG_LOGIN, cli_limit_show,
     "show TENANT [--login U] [--json]", "the limits in force, and where each comes from"},
    {"limit", "set", 2, CLI_MAX_ARGS, CLI_FLAG_LOGIN, cli_limit_set,
     "set TENANT KEY=VAL... [--login U]", "override limits (none: no limit; default)"},
    {"suppression", "add", 2, 2, CLI_FLAG_REASON, cli_suppression_add,
     "add TENANT ADDR [--reason T]", "never send to ADDR for TENANT"},
    {"suppression", "remove", 2, 2, 0, cli_suppression_remove, "remove TENANT ADDR",
     "send to ADDR again"},
    {"suppression", "list", 1, 1, CLI_FLAG_JSON, cli_suppression_list, "list TENANT [--json]",
     "the tenant's suppressed addresses"},
    {"credential", "bind", 2, CLI_MAX_ARGS, 0, cli_credential_bind, "bind USER CIDR...",
     "AUTH as USER only from these networks"},
    {"credential", "unbind", 2, CLI_MAX_ARGS, 0, cli_credential_unbind, "unbind USER CIDR...",
     "undo bind (none left: AUTH from anywhere)"},
    {"credential", "show", 1, 1, CLI_FLAG_JSON, cli_credential_show, "show USER [--json]",
     "a login's bound networks and the networks seen"},
    {"credential", "resume", 1, 1, 0, cli_credential_resume, "resume USER",
     "undo a login's containment (suspended, held or throttled)"},
    {"contain", "list", 0, 1, CLI_FLAG_JSON, cli_contain_list, "list [TENANT] [--json]",
     "logins and tenants throttled, held or suspended, and why"},
};

#define CLI_NCOMMANDS (sizeof cli_commands / sizeof cli_commands[0])

static const struct {
	const char *name;
	unsigned flag;
	int takes_value; /* "--ports LIST": the next argument, see cli_flag_value() */
} cli_flags[] = {
    {"--json", CLI_FLAG_JSON, 0},
    {"--password-stdin", CLI_FLAG_PASSWORD_STDIN, 0},
    {"--verified", CLI_FLAG_VERIFIED, 0},
    {"--raw", CLI_FLAG_RAW, 0},
    {"--ports", CLI_FLAG_PORTS, 1},
    {"--timeout", CLI_FLAG_TIMEOUT, 1},
    {"--force", CLI_FLAG_FORCE, 0},
    {"--tenant", CLI_FLAG_TENANT, 1},
    {"--reason", CLI_FLAG_REASON, 1},
    {"--expires", CLI_FLAG_EXPIRES, 1},
    {"--all", CLI_FLAG_ALL, 0},
    {"--login", CLI_FLAG_LOGIN, 1},
    {"--since", CLI_FLAG_SINCE, 1},
};

static const char *const cli_groups[] = {"tenant", "domain", "network", "queue", "probe",
                                         "egress", "limit", "suppression", "credential", "contain"};

/* Where the value of an option that takes one goes. */
static const char **cli_flag_value(struct cli *cli, unsigned flag)
{
	switch (flag) {
	case CLI_FLAG_PORTS:
		return &cli->opt_ports;
	case CLI_FLAG_TIMEOUT:
		return &cli->opt_timeout;
	case CLI_FLAG_TENANT:
		return &cli->opt_tenant;
	case CLI_FLAG_REASON:
		return &cli->opt_reason;
	case CLI_FLAG_EXPIRES:
		return &cli->opt_expires;
	case CLI_FLAG_LOGIN:
		return &cli->opt_login;
	case CLI_FLAG_SINCE:
		return &cli->opt_since;
	default:
		return NULL;
	}
}

static int cli_group_known(const char *group)
{
	for (size_t i = 0; i < sizeof cli_groups / sizeof cli_groups[0]; i++)
		if (strcmp(cli_groups[i], group) == 0)
			return 1;
	return 0;
}

/* group NULL: every group. */
static void cli_usage(FILE *f, const char *group)
{
	int first = 1;

	for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
		const struct cli_command *c = &cli_commands[i];
		if (group && strcmp(group, c->group) != 0)
			continue;
		char line[80];
		snprintf(line, sizeof line, "%s %s", c->group, c->synopsis);
		fprintf(f, "%s sluice [-c FILE] %-38s %s\n", first ? "usage:" : "      ", line,
		        c->summary);
		first = 0;
	}
	if (group == NULL)
		fprintf(f, "\n"
		           "  -c FILE   configuration file (default: the embedded defaults, state "
		           "in ./var)\n"
		           "  sluice help [GROUP], sluice GROUP --help, sluice --version\n");
}

int cli_usage_error(const char *group, const char *fmt, ...)
{
	va_list ap;

	fputs("sluice: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_usage(stderr, group);
	return CLI_EXIT_USAGE;
}

/* ---- messages ------------------------------------------------------------- */

int cli_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("sluice: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_EXIT_ERROR;
}

int cli_store_error(int rc, char **err, const char *what)
{
	(void)rc;
	if (err && *err) {
		cli_error("%s", *err);
		free(*err);
		*err = NULL;
	} else {
		cli_error("%s failed", what);
	}
	return CLI_EXIT_ERROR;
}

const char *cli_safe(const char *s, char *out, size_t size)
{
	size_t i = 0;

	if (size == 0)
		return out;
	for (; *s && i + 1 < size; s++)
		out[i++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
	out[i] = '\0';
	if (*s && size > 4)
		memcpy(out + size - 4, "...", 4);
	return out;
}

void cli_time_iso(int64_t t, char out[CLI_TIME_MAX])
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, CLI_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		util_strlcpy(out, "?", CLI_TIME_MAX);
}

/* ---- JSON -------------------------------------------------------------------- */

int cli_json_print(json_t *v)
{
	char *s;

	if (v == NULL)
		return cli_error("out of memory");
	s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	json_decref(v);
	if (s == NULL)
		return cli_error("out of memory");
	printf("%s\n", s);
	free(s);
	return CLI_EXIT_OK;
}

json_t *cli_json_string(const char *s)
{
	json_t *v;
	char *copy;

	if (s == NULL)
		return json_null();
	if ((v = json_string(s)) != NULL)
		return v;
	/* not UTF-8 (a remote server's reply, say): keep the ASCII */
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return v;
}

/* ---- privileges and state --------------------------------------------------- */

/* The folder holding the SQLite file of "sqlite:PATH". */
static int cli_store_dir(const struct cli *cli, char *out, size_t size)
{
	const char *path, *slash;

	if (cli->cfg.store == NULL || strncmp(cli->cfg.store, "sqlite:", 7) != 0)
		return -1;
	path = cli->cfg.store + 7;
	slash = strrchr(path, '/');
	if (slash == NULL)
		return util_strlcpy(out, ".", size) < size ? 0 : -1;
	if (slash == path)
		return util_strlcpy(out, "/", size) < size ? 0 : -1;
	if ((size_t)(slash - path) >= size)
		return -1;
	memcpy(out, path, (size_t)(slash - path));
	out[slash - path] = '\0';
	return 0;
}

/* Root becomes the owner of the store's folder, so what the CLI creates
 * (the database, its -wal and -shm, spool segments) stays the daemon's. */
static int cli_become(uid_t uid, gid_t gid_hint, const char *dir)
{
	struct passwd *pw = getpwuid(uid);
	gid_t gid = pw ? pw->pw_gid : gid_hint;

	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return cli_error("cannot switch to uid %ld, the owner of %s: %s", (long)uid, dir,
		                 strerror(errno));
	if (setuid(0) == 0)
		return cli_error("cannot drop root privileges to uid %ld", (long)uid);
	return 0;
}

int cli_state_prepare(struct cli *cli)
{
	char dir[4096];
	struct stat st;

	if (cli->state_ready)
		return 0;
	if (cli_store_dir(cli, dir, sizeof dir) < 0) {
		cli_error("store '%s' is not sqlite:PATH", cli->cfg.store ? cli->cfg.store : "");
		return -1;
	}
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT) {
			cli_error("store folder %s: %s", dir, strerror(errno));
			return -1;
		}
		/* Before sluiced ever ran (./var of the embedded defaults, or
		 * the configured folder): made as the current user, 0750 as
		 * sluiced makes it; sluiced gives it to its user at start. */
		if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
			cli_error("cannot create %s: %s", dir, strerror(errno));
			return -1;
		}
	} else if (geteuid() == 0 && st.st_uid != 0) {
		if (cli_become(st.st_uid, st.st_gid, dir) != 0)
			return -1;
	}
	cli->state_ready = 1;
	return 0;
}

struct store *cli_store(struct cli *cli)
{
	char *err = NULL;

	if (cli->store)
		return cli->store;
	if (cli_state_prepare(cli) < 0)
		return NULL;
	if (store_open(cli->cfg.store, &cli->store, &err) != 0) {
		cli_store_error(-1, &err, "opening the store");
		return NULL;
	}
	return cli->store;
}

int cli_tenant_find(struct cli *cli, const char *name, struct store_tenant *t_r)
{
	struct store *st = cli_store(cli);
	char *err = NULL;
	int rc;

	if (st == NULL)
		return CLI_EXIT_ERROR;
	rc = store_tenant_get(st, name, t_r, &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "reading the tenant");
	return 0;
}

/* ---- passwords ---------------------------------------------------------------- */

/* One line of standard input, without echo when it is a terminal. */
static int cli_password_read(char out[AUTH_PASSWORD_MAX + 1])
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), echo_off = 0, c, rc = 0;
	size_t len = 0;
	int too_long = 0, bad = 0;

	if (tty) {
		fputs("Password: ", stderr);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
	}
	while ((c = getchar()) != EOF && c != '\n') {
		if (c == '\0')
			bad = 1;
		if (len < AUTH_PASSWORD_MAX + 1)
			out[len++] = (char)c; /* one byte over the limit tells "too long" */
		else
			too_long = 1;
	}
	if (echo_off) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	if (len > 0 && out[len - 1] == '\r' && !too_long)
		len--;
	if (len > AUTH_PASSWORD_MAX)
		too_long = 1;
	out[len < AUTH_PASSWORD_MAX ? len : AUTH_PASSWORD_MAX] = '\0';
	if (ferror(stdin))
		rc = cli_error("reading the password from standard input: %s", strerror(errno));
	else if (too_long)
		rc = cli_error("password longer than %d bytes", AUTH_PASSWORD_MAX);
	else if (bad || memchr(out, '\r', len))
		rc = cli_error("password contains a NUL or CR byte");
	else if (len == 0)
		rc = cli_error("empty password (give one line on standard input)");
	if (rc != 0)
		util_wipe(out, AUTH_PASSWORD_MAX + 1);
	return rc;
}

int cli_password(struct cli *cli, char out[AUTH_PASSWORD_MAX + 1], int *generated_r)
{
	/* no 0/O, 1/l/I: read aloud or copied by hand without mistakes */
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

	*generated_r = 0;
	if (cli->flags & CLI_FLAG_PASSWORD_STDIN)
		return cli_password_read(out);
	for (size_t i = 0; i < CLI_PASSWORD_LEN; i++)
		out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
	out[CLI_PASSWORD_LEN] = '\0';
	*generated_r = 1;
	return 0;
}

/* ---- main ------------------------------------------------------------------------ */

/* name NULL: the group's command when the group is one ("probe"). */
static const struct cli_command *cli_find(const char *group, const char *name)
{
	for (size_t i = 0; i < CLI_NCOMMANDS; i++) {
		const struct cli_command *c = &cli_commands[i];
		if (strcmp(c->group, group) != 0)
			continue;
		if (name == NULL ? c->name == NULL : c->name != NULL && strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

static int cli_is_help(const char *arg)
{
	return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

/* Flags anywhere after the command; "--" ends them. */
static int cli_parse_args(struct cli *cli, const struct cli_command *c, int argc, char **argv,
                          int *help_r)
{
	char safe[80];
	int only_args = 0;
	/* "queue show" in messages; "probe" for a one-word command */
	const char *sep = c->name ? " " : "", *name = c->name ? c->name : "";

	*help_r = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!only_args && strcmp(a, "--") == 0) {
			only_args = 1;
			continue;
		}
		if (!only_args && a[0] == '-' && a[1] != '\0') {
			if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
				*help_r = 1;
				return 0;
			}
			size_t f;
			for (f = 0; f < sizeof cli_flags / sizeof cli_flags[0]; f++)
				if (strcmp(a, cli_flags[f].name) == 0)
					break;
			if (f == sizeof cli_flags / sizeof cli_flags[0] ||
			    !(c->flags & cli_flags[f].flag))
				return cli_usage_error(c->group, "%s%s%s: unknown option '%s'",
				                       c->group, sep, name,
				                       cli_safe(a, safe, sizeof safe));
			cli->flags |= cli_flags[f].flag;
			if (cli_flags[f].takes_value) {
				if (i + 1 == argc)
					return cli_usage_error(c->group, "%s%s%s: %s needs a value",
					                       c->group, sep, name, a);
				*cli_flag_value(cli, cli_flags[f].flag) = argv[++i];
			}
			continue;
		}
		if (cli->nargs == c->max_args)
			return cli_usage_error(c->group, "%s%s%s: too many arguments ('%s')",
			                       c->group, sep, name, cli_safe(a, safe, sizeof safe));
		cli->args[cli->nargs++] = a;
	}
	if (cli->nargs < c->min_args)
		return cli_usage_error(c->group, "%s%s%s: missing argument", c->group, sep, name);
	if ((cli->flags & CLI_FLAG_JSON) && (cli->flags & CLI_FLAG_RAW))
		return cli_usage_error(c->group, "%s%s%s: --json and --raw exclude each other",
		                       c->group, sep, name);
	return 0;
}

int main(int argc, char **argv)
{
	const struct cli_command *c;
	struct cli cli;
	char safe[80], *err = NULL;
	int i = 1, first, rc, help;

	memset(&cli, 0, sizeof cli);
	/* the spool and store log warnings on stderr; their info lines are
	 * for the daemon's log */
	log_init("sluice", 0, LOG_LEVEL_WARN);

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 == argc)
				return cli_usage_error(NULL, "-c needs a FILE");
			cli.config_path = argv[++i];
		} else if (strncmp(argv[i], "-c", 2) == 0) {
			cli.config_path = argv[i] + 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			cli_usage(stdout, NULL);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("sluice %s\n", SLUICE_VERSION);
			return CLI_EXIT_OK;
		} else if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else {
			return cli_usage_error(NULL, "unknown option '%s'",
			                       cli_safe(argv[i], safe, sizeof safe));
		}
	}
	if (i == argc)
		return cli_usage_error(NULL, "missing command");
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc && cli_group_known(argv[i + 1])) {
			cli_usage(stdout, argv[i + 1]);
			return CLI_EXIT_OK;
		}
		if (i + 1 < argc)
			return cli_usage_error(NULL, "unknown command '%s'",
			                       cli_safe(argv[i + 1], safe, sizeof safe));
		cli_usage(stdout, NULL);
		return CLI_EXIT_OK;
	}
	if (!cli_group_known(argv[i]))
		return cli_usage_error(NULL, "unknown command '%s'",
		                       cli_safe(argv[i], safe, sizeof safe));
	if ((c = cli_find(argv[i], NULL)) != NULL) {
		first = i + 1; /* a one-word command: its arguments follow at once */
	} else {
		if (i + 1 == argc)
			return cli_usage_error(argv[i], "%s: missing subcommand", argv[i]);
		if (cli_is_help(argv[i + 1])) {
			cli_usage(stdout, argv[i]);
			return CLI_EXIT_OK;
		}
		if ((c = cli_find(argv[i], argv[i + 1])) == NULL)
			return cli_usage_error(argv[i], "%s: unknown subcommand '%s'", argv[i],
			                       cli_safe(argv[i + 1], safe, sizeof safe));
		first = i + 2;
	}
	if ((rc = cli_parse_args(&cli, c, argc - first, argv + first, &help)) != 0)
		return rc;
	if (help) {
		cli_usage(stdout, c->group);
		return CLI_EXIT_OK;
	}

	if (defaults_load(cli.config_path, &cli.cfg, &err) < 0) {
		cli_error("%s", err ? err : "cannot load the configuration");
		free(err);
		config_free(&cli.cfg);
		return CLI_EXIT_ERROR;
	}
	rc = c->run(&cli);
	store_close(&cli.store);
	config_free(&cli.cfg);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "sluice: writing the output: %s\n", strerror(errno));
		if (rc == CLI_EXIT_OK)
			rc = CLI_EXIT_ERROR;
	}
	return rc;
}
