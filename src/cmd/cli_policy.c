/*
 * sluice limit|suppression|credential and tenant usage: the outbound
 * policy of issue 4 as the operator sees it (src/policy reads the same
 * rows in sluiced).
 *
 *   limit show TENANT [--login USER]       limits in force and where each comes from
 *   limit set TENANT KEY=VALUE... [--login USER]
 *                                         VALUE: a number (message_size: k/m/g), none
 *                                         (no limit) or default (remove the override)
 *   tenant usage NAME [--since WHEN]       hourly usage (WHEN: 24h, 7d, 2026-11-30,
 *                                         2026-11-30T06)
 *   suppression add|remove TENANT ADDRESS, list TENANT
 *   credential bind|unbind USER CIDR..., show USER
 *
 * A change takes effect in a running sluiced at its next MAIL (limits
 * are re-read when the store changes), RCPT (suppressions) or AUTH
 * (bound networks).
 */
#include "cmd/cli.h"
#include "smtp/smtp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- limits ------------------------------------------------------------------ */

/* The login named by --login, which must be the tenant's.  0 or an exit
 * code; *cred_r zeroed without --login. */
static int cli_login(struct cli *cli, const struct store_tenant *t, struct store_credential *cred_r)
{
	char *err = NULL, safe[80];
	int rc;

	memset(cred_r, 0, sizeof *cred_r);
	if (cli->opt_login == NULL)
		return 0;
	rc = store_credential_lookup(cli->store, cli->opt_login, cred_r, &err);
	free(err);
	if (rc < 0)
		return cli_error("reading login '%s' failed",
		                 cli_safe(cli->opt_login, safe, sizeof safe));
	if (rc != 0 || cred_r->tenant_id != t->id)
		return cli_error("login '%s' does not belong to tenant '%s'",
		                 cli_safe(cli->opt_login, safe, sizeof safe), t->name);
	return 0;
}

/* The stored overrides of a tenant or login as a value per limit; set[i]
 * says whether limit i has one. */
static int cli_overrides(struct cli *cli, int64_t tenant_id, int64_t cred_id,
                         uint64_t v[CONFIG_POLICY_LIMITS], int set[CONFIG_POLICY_LIMITS])
{
	struct store_limit *rows = NULL;
	size_t n = 0;
	char *err = NULL;
	int rc;

	memset(set, 0, sizeof(int) * CONFIG_POLICY_LIMITS);
	if ((rc = store_limit_list(cli->store, tenant_id, cred_id, &rows, &n, &err)) != 0)
		return cli_store_error(rc, &err, "reading limits");
	for (size_t i = 0; i < n; i++) {
		int k = config_policy_limit_index(rows[i].name);
		if (k >= 0) {
			v[k] = rows[i].value;
			set[k] = 1;
		}
	}
	free(rows);
	return 0;
}

static void cli_limit_value(uint64_t v, char *out, size_t size)
{
	if (v == 0)
		snprintf(out, size, "none");
	else
		snprintf(out, size, "%llu", (unsigned long long)v);
}

/* Recipients counted against the quotas: today and this month (UTC). */
static void cli_quota_used(struct cli *cli, int64_t tenant_id, int64_t cred_id, uint64_t *day_r,
                           uint64_t *month_r)
{
	int64_t now = util_wall_seconds(), mstart, mend;
	time_t t = (time_t)now;
	struct tm tm;
	char *err = NULL;

	*day_r = *month_r = 0;
	gmtime_r(&t, &tm);
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	mstart = (int64_t)timegm(&tm);
	tm.tm_mon++;
	mend = (int64_t)timegm(&tm);
	if (store_usage_sum(cli->store, tenant_id, cred_id ? cred_id : -1, "accepted_recipients",
	                    now / 86400 * 24, now / 86400 * 24 + 24, day_r, &err) != 0 ||
	    store_usage_sum(cli->store, tenant_id, cred_id ? cred_id : -1, "accepted_recipients",
	                    mstart / 3600, mend / 3600, month_r, &err) != 0)
		free(err);
}

int cli_limit_show(struct cli *cli)
{
	uint64_t v[CONFIG_POLICY_LIMITS], day, month;
	int set[CONFIG_POLICY_LIMITS];
	struct store_credential cred;
	struct store_tenant t;
	json_t *o = NULL, *lims = NULL;
	char val[32];
	int rc;

	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0 ||
	    (rc = cli_login(cli, &t, &cred)) != 0)
		return rc;
	/* a login has no defaults: only its own overrides */
	for (int i = 0; i < CONFIG_POLICY_LIMITS; i++)
		v[i] = cred.id ? 0 : cli->cfg.policy.limits[i];
	if ((rc = cli_overrides(cli, t.id, cred.id, v, set)) != 0)
		return rc;
	cli_quota_used(cli, t.id, cred.id, &day, &month);
	if (cli->flags & CLI_FLAG_JSON) {
		o = json_pack("{s:s, s:I, s:I}", "tenant", t.name, "quota_day_used",
		              (json_int_t)day, "quota_month_used", (json_int_t)month);
		lims = json_object();
		if (o == NULL || lims == NULL || json_object_set_new(o, "limits", lims) < 0) {
			json_decref(o);
			return cli_error("out of memory");
		}
		if (cred.id && json_object_set_new(o, "login", json_string(cred.username)) < 0) {
			json_decref(o);
			return cli_error("out of memory");
		}
		for (int i = 0; i < CONFIG_POLICY_LIMITS; i++)
			json_object_set_new(lims, config_policy_limit_names[i],
			                    json_pack("{s:I, s:s}", "value", (json_int_t)v[i],
			                              "from",
			                              set[i] ? (cred.id ? "login" : "tenant")
			                                     : (cred.id ? "none" : "default")));
		return cli_json_print(o);
	}
	if (cred.id)
		printf("login '%s' of tenant '%s' (the tenant's limits apply too)\n", cred.username,
		       t.name);
	else
		printf("tenant '%s'\n", t.name);
	printf("%-24s %-12s %s\n", "LIMIT", "VALUE", "FROM");
	for (int i = 0; i < CONFIG_POLICY_LIMITS; i++) {
		cli_limit_value(v[i], val, sizeof val);
		printf("%-24s %-12s %s\n", config_policy_limit_names[i], val,
		       set[i] ? (cred.id ? "login" : "tenant") : (cred.id ? "-" : "default"));
	}
	printf("recipients today: %llu, this month: %llu (UTC)\n", (unsigned long long)day,
	       (unsigned long long)month);
	return CLI_EXIT_OK;
}

/* "KEY=VALUE" into a limit index and a value; *unset_r for "default". */
static int cli_limit_arg(const char *arg, int *k_r, uint64_t *v_r, int *unset_r)
{
	char key[64], safe[80];
	const char *eq = strchr(arg, '=');

	*unset_r = 0;
	if (eq == NULL || (size_t)(eq - arg) >= sizeof key)
		return cli_usage_error("limit", "limit set: expected KEY=VALUE, not '%s'",
		                       cli_safe(arg, safe, sizeof safe));
	memcpy(key, arg, (size_t)(eq - arg));
	key[eq - arg] = '\0';
	if ((*k_r = config_policy_limit_index(key)) < 0)
		return cli_error(
		    "unknown limit '%s' (one of: messages_per_{second,minute,hour,day}, "
		    "recipients_per_{second,minute,hour,day}, quota_day, quota_month, "
		    "recipients_per_message, message_size)",
		    cli_safe(key, safe, sizeof safe));
	if (strcmp(eq + 1, "default") == 0) {
		*unset_r = 1;
		return 0;
	}
	if (config_policy_limit_value(*k_r, eq + 1, v_r) < 0)
		return cli_error("limit %s: '%s' is not a number, none or default", key,
		                 cli_safe(eq + 1, safe, sizeof safe));
	return 0;
}

int cli_limit_set(struct cli *cli)
{
	struct store_credential cred;
	struct store_tenant t;
	char *err = NULL, val[32], who[160];
	int rc, k = 0, unset = 0;
	uint64_t v;

	/* every argument checked before anything changes */
	for (size_t i = 1; i < cli->nargs; i++)
		if ((rc = cli_limit_arg(cli->args[i], &k, &v, &unset)) != 0)
			return rc;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0 ||
	    (rc = cli_login(cli, &t, &cred)) != 0)
		return rc;
	if (cred.id)
		snprintf(who, sizeof who, "login '%s'", cred.username);
	else
		snprintf(who, sizeof who, "tenant '%s'", t.name);
	for (size_t i = 1; i < cli->nargs; i++) {
		cli_limit_arg(cli->args[i], &k, &v, &unset);
		if (unset) {
			rc = store_limit_unset(cli->store, t.id, cred.id,
			                       config_policy_limit_names[k], &err);
			free(err);
			err = NULL;
			if (rc < 0)
				return cli_error("removing limit %s failed",
				                 config_policy_limit_names[k]);
			printf("%s: %s = default\n", who, config_policy_limit_names[k]);
			continue;
		}
		if ((rc = store_limit_set(cli->store, t.id, cred.id, config_policy_limit_names[k],
		                          v, &err)) != 0)
			return cli_store_error(rc, &err, "setting a limit");
		cli_limit_value(v, val, sizeof val);
		printf("%s: %s = %s\n", who, config_policy_limit_names[k], val);
	}
	return CLI_EXIT_OK;
}

/* ---- usage --------------------------------------------------------------------- */

/* --since: "24h"/"7d" back from now, "YYYY-MM-DD" or "YYYY-MM-DDTHH" (UTC).
 * The first hour, or -1 (printed). */
static int64_t cli_since_hour(const char *since)
{
	int64_t now = util_wall_seconds();
	struct tm tm;
	uint64_t secs;
	char safe[80];
	const char *end;

	if (since == NULL)
		return now / 3600 - 23; /* the last 24 hours, this one included */
	if (util_parse_duration(since, &secs) == 0 && secs <= (uint64_t)now)
		return (now - (int64_t)secs) / 3600;
	memset(&tm, 0, sizeof tm);
	if (((end = strptime(since, "%Y-%m-%dT%H", &tm)) != NULL && *end == '\0') ||
	    (memset(&tm, 0, sizeof tm),
	     (end = strptime(since, "%Y-%m-%d", &tm)) != NULL && *end == '\0'))
		return (int64_t)timegm(&tm) / 3600;
	cli_error("--since: '%s' is not a duration (24h, 7d) or a UTC date (2026-11-30, "
	          "2026-11-30T06)",
	          cli_safe(since, safe, sizeof safe));
	return -1;
}

static const char *const cli_usage_cols[] = {"accepted_messages", "accepted_recipients",
                                             "delivered", "deferred", "bounced"};
#define CLI_USAGE_COLS 5

struct cli_usage_hour {
	int64_t hour;
	uint64_t col[CLI_USAGE_COLS];
	uint64_t refused;
};

int cli_tenant_usage(struct cli *cli)
{
	struct store_usage *rows = NULL;
	struct cli_usage_hour *hours = NULL, total;
	struct store_tenant t;
	size_t n = 0, nh = 0;
	int64_t since;
	char when[CLI_TIME_MAX], *err = NULL;
	json_t *o = NULL, *ha = NULL, *reasons = NULL, *hr = NULL;
	int rc;

	if ((since = cli_since_hour(cli->opt_since)) < 0)
		return CLI_EXIT_USAGE;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_usage_list(cli->store, t.id, since, &rows, &n, &err)) != 0)
		return cli_store_error(rc, &err, "reading usage");
	hours = calloc(n ? n : 1, sizeof *hours);
	reasons = json_object();
	if (hours == NULL || reasons == NULL) {
		free(rows);
		free(hours);
		json_decref(reasons);
		return cli_error("out of memory");
	}
	memset(&total, 0, sizeof total);
	/* rows come by hour, then metric */
	for (size_t i = 0; i < n; i++) {
		struct cli_usage_hour *h;
		if (nh == 0 || hours[nh - 1].hour != rows[i].hour)
			hours[nh++].hour = rows[i].hour;
		h = &hours[nh - 1];
		if (strncmp(rows[i].metric, "refused:", 8) == 0) {
			json_t *c = json_object_get(reasons, rows[i].metric + 8);
			json_int_t prev = c ? json_integer_value(c) : 0;
			h->refused += rows[i].count;
			total.refused += rows[i].count;
			json_object_set_new(reasons, rows[i].metric + 8,
			                    json_integer(prev + (json_int_t)rows[i].count));
			continue;
		}
		for (int c = 0; c < CLI_USAGE_COLS; c++)
			if (strcmp(rows[i].metric, cli_usage_cols[c]) == 0) {
				h->col[c] += rows[i].count;
				total.col[c] += rows[i].count;
			}
	}
	cli_time_iso(since * 3600, when);
	if (cli->flags & CLI_FLAG_JSON) {
		o = json_pack("{s:s, s:s}", "tenant", t.name, "since", when);
		ha = json_array();
		if (o != NULL && ha != NULL && json_object_set_new(o, "hours", ha) == 0) {
			for (size_t i = 0; i < nh; i++) {
				char hw[CLI_TIME_MAX];
				cli_time_iso(hours[i].hour * 3600, hw);
				hr = json_pack("{s:s, s:I}", "hour", hw, "refused",
				               (json_int_t)hours[i].refused);
				for (int c = 0; hr && c < CLI_USAGE_COLS; c++)
					json_object_set_new(
					    hr, cli_usage_cols[c],
					    json_integer((json_int_t)hours[i].col[c]));
				json_array_append_new(ha, hr);
			}
			hr = json_pack("{s:I}", "refused", (json_int_t)total.refused);
			for (int c = 0; hr && c < CLI_USAGE_COLS; c++)
				json_object_set_new(hr, cli_usage_cols[c],
				                    json_integer((json_int_t)total.col[c]));
			json_object_set_new(o, "total", hr);
			json_object_set_new(o, "refused_by_reason", reasons);
			reasons = NULL;
		}
		json_decref(reasons);
		free(rows);
		free(hours);
		return cli_json_print(o);
	}
	if (nh == 0) {
		printf("tenant '%s': no usage since %s\n", t.name, when);
	} else {
		printf("tenant '%s' since %s (messages; recipients for the others)\n", t.name,
		       when);
		printf("%-21s %9s %10s %9s %9s %8s %8s\n", "HOUR", "ACCEPTED", "RECIPIENTS",
		       "REFUSED", "DELIVERED", "DEFERRED", "BOUNCED");
		for (size_t i = 0; i <= nh; i++) {
			const struct cli_usage_hour *h = i < nh ? &hours[i] : &total;
			if (i < nh)
				cli_time_iso(h->hour * 3600, when);
			printf("%-21s %9llu %10llu %9llu %9llu %8llu %8llu\n",
			       i < nh ? when : "total", (unsigned long long)h->col[0],
			       (unsigned long long)h->col[1], (unsigned long long)h->refused,
			       (unsigned long long)h->col[2], (unsigned long long)h->col[3],
			       (unsigned long long)h->col[4]);
		}
		if (total.refused > 0) {
			const char *key;
			json_t *val;
			printf("refused by reason:");
			json_object_foreach(reasons, key, val)
			    printf(" %s=%lld", key, (long long)json_integer_value(val));
			printf("\n");
		}
	}
	json_decref(reasons);
	free(rows);
	free(hours);
	return CLI_EXIT_OK;
}

/* ---- suppression list ------------------------------------------------------------- */

/* ADDRESS as SMTP would take it in RCPT TO ("<a@b>" or "a@b"), normalised. */
static int cli_address(const char *in, char out[STORE_ADDRESS_MAX + 1])
{
	struct smtp_address a;
	char path[SMTP_PATH_MAX + 8], safe[80];
	const char *why = "?";
	size_t n = strlen(in);

	if (n + 3 > sizeof path)
		return cli_error("address too long");
	if (in[0] == '<')
		memcpy(path, in, n + 1);
	else
		snprintf(path, sizeof path, "<%s>", in);
	if (smtp_address_parse(path, strlen(path), SMTP_ADDRESS_ALLOW_UTF8, &a, &why) < 0 ||
	    smtp_address_format(&a, out, STORE_ADDRESS_MAX + 1) < 0)
		return cli_error("'%s' is not an address: %s", cli_safe(in, safe, sizeof safe),
		                 why);
	/* as the store keeps it: the list compares without case */
	for (char *p = out; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return 0;
}

int cli_suppression_add(struct cli *cli)
{
	struct store_suppression x;
	struct store_tenant t;
	char *err = NULL;
	int rc;

	memset(&x, 0, sizeof x);
	if ((rc = cli_address(cli->args[1], x.address)) != 0)
		return rc;
	if (cli->opt_reason && strlen(cli->opt_reason) > STORE_REASON_MAX)
		return cli_error("--reason: at most %d octets", STORE_REASON_MAX);
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	x.tenant_id = t.id;
	x.created = util_wall_seconds();
	util_strlcpy(x.source, "operator", sizeof x.source);
	util_strlcpy(x.reason, cli->opt_reason ? cli->opt_reason : "", sizeof x.reason);
	if ((rc = store_suppression_add(cli->store, &x, &err)) != 0)
		return cli_store_error(rc, &err, "adding the address");
	printf("tenant '%s': %s suppressed\n", t.name, x.address);
	return CLI_EXIT_OK;
}

int cli_suppression_remove(struct cli *cli)
{
	char addr[STORE_ADDRESS_MAX + 1], *err = NULL;
	struct store_tenant t;
	int rc;

	if ((rc = cli_address(cli->args[1], addr)) != 0)
		return rc;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_suppression_remove(cli->store, t.id, addr, &err)) != 0)
		return cli_store_error(rc, &err, "removing the address");
	printf("tenant '%s': %s no longer suppressed\n", t.name, addr);
	return CLI_EXIT_OK;
}

int cli_suppression_list(struct cli *cli)
{
	struct store_suppression *list = NULL;
	struct store_tenant t;
	char when[CLI_TIME_MAX], reason[80], *err = NULL;
	size_t n = 0, w = 7;
	int rc;

	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_suppression_list(cli->store, t.id, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing suppressions");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++) {
			cli_time_iso(list[i].created, when);
			json_array_append_new(
			    a, json_pack("{s:s, s:s, s:o, s:s}", "address", list[i].address,
			                 "source", list[i].source, "reason",
			                 cli_json_string(list[i].reason), "created", when));
		}
		free(list);
		return cli_json_print(a);
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i].address) > w)
			w = strlen(list[i].address);
	if (n == 0)
		printf("tenant '%s': no suppressed addresses\n", t.name);
	else
		printf("%-*s %-8s %-20s %s\n", (int)w, "ADDRESS", "SOURCE", "ADDED", "REASON");
	for (size_t i = 0; i < n; i++) {
		cli_time_iso(list[i].created, when);
		printf("%-*s %-8s %-20s %s\n", (int)w, list[i].address, list[i].source, when,
		       list[i].reason[0] ? cli_safe(list[i].reason, reason, sizeof reason) : "-");
	}
	free(list);
	return CLI_EXIT_OK;
}

/* ---- credentials: bound networks ------------------------------------------------------ */

static int cli_credential_find(struct cli *cli, struct store_credential *c_r,
                               struct store_tenant *t_r)
{
	char *err = NULL, safe[80];
	int rc;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	rc = store_credential_lookup(cli->store, cli->args[0], c_r, &err);
	free(err);
	err = NULL;
	if (rc == STORE_NOTFOUND)
		return cli_error("login '%s' not found", cli_safe(cli->args[0], safe, sizeof safe));
	if (rc != 0)
		return cli_error("reading login '%s' failed",
		                 cli_safe(cli->args[0], safe, sizeof safe));
	if ((rc = store_tenant_get_id(cli->store, c_r->tenant_id, t_r, &err)) != 0)
		return cli_store_error(rc, &err, "reading the tenant");
	return 0;
}

static int cli_credential_change(struct cli *cli, int bind)
{
	struct store_credential c;
	struct store_tenant t;
	char *err = NULL;
	int rc;

	if ((rc = cli_credential_find(cli, &c, &t)) != 0)
		return rc;
	for (size_t i = 1; i < cli->nargs; i++) {
		rc = bind ? store_credential_network_add(cli->store, c.id, cli->args[i], &err)
		          : store_credential_network_remove(cli->store, c.id, cli->args[i], &err);
		if (rc != 0)
			return cli_store_error(rc, &err, bind ? "binding" : "unbinding");
	}
	printf("login '%s' %s %zu network%s\n", c.username, bind ? "bound to" : "unbound from",
	       cli->nargs - 1, cli->nargs == 2 ? "" : "s");
	return CLI_EXIT_OK;
}

int cli_credential_bind(struct cli *cli)
{
	return cli_credential_change(cli, 1);
}

int cli_credential_unbind(struct cli *cli)
{
	return cli_credential_change(cli, 0);
}

int cli_credential_show(struct cli *cli)
{
	struct store_credential_network *bound = NULL, *seen = NULL;
	struct store_credential c;
	struct store_tenant t;
	size_t nb = 0, ns = 0;
	char when[CLI_TIME_MAX], *err = NULL;
	int rc;

	if ((rc = cli_credential_find(cli, &c, &t)) != 0)
		return rc;
	if ((rc = store_credential_network_list(cli->store, c.id, &bound, &nb, &err)) != 0 ||
	    (rc = store_credential_seen_list(cli->store, c.id, &seen, &ns, &err)) != 0) {
		free(bound);
		return cli_store_error(rc, &err, "reading the login's networks");
	}
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *o =
		    json_pack("{s:s, s:s, s:s, s:[], s:[]}", "login", c.username, "tenant", t.name,
		              "status", c.suspended ? "suspended" : "active", "bound", "seen");
		for (size_t i = 0; o && i < nb; i++)
			json_array_append_new(json_object_get(o, "bound"),
			                      json_string(bound[i].cidr));
		for (size_t i = 0; o && i < ns; i++) {
			cli_time_iso(seen[i].created, when);
			json_array_append_new(
			    json_object_get(o, "seen"),
			    json_pack("{s:s, s:s}", "network", seen[i].cidr, "first_seen", when));
		}
		free(bound);
		free(seen);
		return cli_json_print(o);
	}
	printf("login:   %s\ntenant:  %s\nstatus:  %s\n", c.username, t.name,
	       c.suspended ? "suspended" : "active");
	printf("bound:%s\n", nb ? "" : "   none (AUTH from anywhere)");
	for (size_t i = 0; i < nb; i++)
		printf("  %s\n", bound[i].cidr);
	printf("seen:%s\n", ns ? "" : "    none");
	for (size_t i = 0; i < ns; i++) {
		cli_time_iso(seen[i].created, when);
		printf("  %-20s first %s\n", seen[i].cidr, when);
	}
	free(bound);
	free(seen);
	return CLI_EXIT_OK;
}
