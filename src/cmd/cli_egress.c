/*
 * sluice egress: the port-25 egress table (render, apply, status, blocked)
 * and its exceptions (allow, revoke, list, request, requests, approve,
 * deny, audit).  docs/egress.md tells the whole story.
 *
 * The table is rendered from the configuration (egress_* keys) and the
 * store's active exceptions by the egress module; this file gathers the
 * model, prints, and talks to the kernel through libnftables.
 *
 * Privileges: as root, cli_state_prepare() becomes the owner of the
 * store's folder before the store is opened, and netlink then refuses to
 * change the ruleset.  So a command that loads or lists the table starts
 * an nft helper first (cli_nft.c): a child forked while still root,
 * which only runs libnftables for the parent.
 */
#include "cmd/cli.h"
#include "egress/egress.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_EGRESS_MAX_DURATION (10LL * 365 * 86400)
#define CLI_EGRESS_AUDIT_ROWS 200

/* ---- the model ---------------------------------------------------------------- */

/* "operator:NAME": the login that ran the command (sudo's caller first). */
static void cli_egress_actor(char out[STORE_EGRESS_ACTOR_MAX + 1])
{
	const char *who = getenv("SUDO_USER");
	struct passwd *pw;
	char name[48];

	if (who == NULL || who[0] == '\0') {
		pw = getpwuid(getuid());
		who = pw ? pw->pw_name : NULL;
	}
	if (who == NULL)
		snprintf(name, sizeof name, "uid%ld", (long)getuid());
	else
		cli_safe(who, name, sizeof name);
	snprintf(out, STORE_EGRESS_ACTOR_MAX + 1, "operator:%s", name);
}

/* The active exceptions as the egress module wants them; *list_r malloc'd. */
/* Is the tenant suspended?  A tenant suspended behind the CLI's back (by
 * sluiced itself, or by hand in the store) keeps its exception rows until
 * someone revokes them, but they never reach the table. */
static int cli_egress_suspended(const struct store_tenant *ts, size_t nts, int64_t tenant_id)
{
	for (size_t i = 0; i < nts; i++)
		if (ts[i].id == tenant_id)
			return ts[i].suspended;
	return 0;
}

/* The active exceptions of tenants not suspended, as the egress module
 * wants them; *list_r malloc'd. */
static int cli_egress_exceptions(struct cli *cli, int64_t now, struct egress_exception **list_r,
                                 size_t *n_r)
{
	struct store_egress_exception *rows = NULL;
	struct store_tenant *ts = NULL;
	struct egress_exception *list;
	char *err = NULL;
	size_t n = 0, nts = 0, k = 0;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_egress_exception_list(cli->store, 0, 0, now, &rows, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing egress exceptions");
	if (n == 0)
		return 0;
	if ((rc = store_tenant_list(cli->store, &ts, &nts, &err)) != 0) {
		free(rows);
		return cli_store_error(rc, &err, "listing tenants");
	}
	if ((list = calloc(n, sizeof *list)) == NULL) {
		free(rows);
		free(ts);
		return cli_error("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (cli_egress_suspended(ts, nts, rows[i].tenant_id))
			continue;
		list[k].id = rows[i].id;
		list[k].expires = rows[i].expires;
		util_strlcpy(list[k].tenant, rows[i].tenant, sizeof list[k].tenant);
		util_strlcpy(list[k].cidr, rows[i].cidr, sizeof list[k].cidr);
		k++;
	}
	free(rows);
	free(ts);
	*list_r = list;
	*n_r = k;
	return 0;
}

/* Render the table; carry: counts to keep (NULL none).  *text_r malloc'd. */
static int cli_egress_render_text(struct cli *cli, const struct egress_status *carry, char **text_r)
{
	const struct config_egress *e = &cli->cfg.egress;
	struct egress_exception *xs = NULL;
	struct buf out = BUF_INIT;
	char *warn = NULL, *err = NULL;
	int64_t now = util_wall_seconds();
	size_t nxs = 0;
	int rc;

	*text_r = NULL;
	if ((rc = cli_egress_exceptions(cli, now, &xs, &nxs)) != 0)
		return rc;
	struct egress_model m = {
	    .customers = (const char *const *)e->customers,
	    .ncustomers = e->ncustomers,
	    .relays = (const char *const *)e->relays,
	    .nrelays = e->nrelays,
	    .privates = (const char *const *)e->privates,
	    .nprivates = e->nprivates,
	    .exceptions = xs,
	    .nexceptions = nxs,
	    .carry = carry ? carry->blocked : NULL,
	    .ncarry = carry ? carry->nblocked : 0,
	    .log_rate = e->log_rate,
	    .log_nflog = e->log_nflog,
	    .log_group = e->log_group,
	    .blocked_timeout = e->blocked_timeout,
	    .now = now,
	};
	rc = egress_render(&m, &out, &warn, &err);
	free(xs);
	if (rc < 0) {
		buf_free(&out);
		cli_error("%s", err ? err : "egress render failed");
		free(err);
		return CLI_EXIT_ERROR;
	}
	if (warn != NULL) {
		fprintf(stderr, "sluice: warning: %s", warn);
		free(warn);
	}
	*text_r = buf_export(&out, NULL);
	return *text_r ? 0 : cli_error("out of memory");
}

/* The table in the kernel, parsed; st->present 0 when it is not loaded. */
int cli_egress_read(struct cli_nft *nft, struct egress_status *st)
{
	char *out = NULL, *err = NULL;
	int rc;

	memset(st, 0, sizeof *st);
	rc = cli_nft_run(nft, CLI_NFT_JSON, "", &out);
	if (rc == 1) {
		free(out);
		return 0;
	}
	if (rc < 0) {
		cli_error("%s", out ? out : "nft failed");
		free(out);
		return CLI_EXIT_ERROR;
	}
	rc = egress_status_parse(out, strlen(out), util_wall_seconds(), st, &err);
	free(out);
	if (rc < 0) {
		cli_error("%s", err ? err : "reading nft's JSON failed");
		free(err);
		return CLI_EXIT_ERROR;
	}
	return 0;
}

/* Render and load: the blocked counts of the table in force carry over. */
static int cli_egress_load(struct cli *cli, struct cli_nft *nft, int quiet)
{
	struct egress_status old;
	char *text = NULL, *out = NULL;
	int rc;

	/* the counts are worth keeping, not worth failing the apply for; a
	 * sample first, so the attempts since the last one reach containment
	 * whatever happens to the counters now */
	if (cli_egress_read(nft, &old) != 0)
		fprintf(stderr, "sluice: warning: the blocked counts of the table in force "
		                "are not carried over\n");
	else if (cli_egress_name(cli, &old) != 0 || cli_egress_sample_store(cli, &old, 1) != 0)
		fprintf(stderr, "sluice: warning: the blocked counts were not sampled\n");
	rc = cli_egress_render_text(cli, &old, &text);
	egress_status_free(&old);
	if (rc != 0)
		return rc;
	if (cli_nft_run(nft, CLI_NFT_APPLY, text, &out) != 0) {
		free(text);
		rc = cli_error("%s", out ? out : "nft failed");
		free(out);
		return rc;
	}
	free(text);
	free(out);
	if (!quiet)
		printf("table %s %s loaded\n", EGRESS_FAMILY, EGRESS_TABLE);
	return CLI_EXIT_OK;
}

/* After an exception changed: reload when egress_apply = on. */
static int cli_egress_changed(struct cli *cli, struct cli_nft *nft)
{
	if (nft == NULL) {
		printf("(egress_apply is off: run 'sluice egress apply' to load the change)\n");
		return CLI_EXIT_OK;
	}
	if (cli_egress_load(cli, nft, 1) != 0)
		return cli_error("the store changed, but the table was not reloaded: "
		                 "run 'sluice egress apply'");
	printf("table %s %s reloaded\n", EGRESS_FAMILY, EGRESS_TABLE);
	return CLI_EXIT_OK;
}

/* ---- arguments ------------------------------------------------------------------ */

/* --expires: a duration ("30d", "12h", "90s") or "never"; *secs_r 0 for never. */
static int cli_egress_expires(struct cli *cli, int64_t *secs_r)
{
	char safe[64];
	uint64_t s;

	if (cli->opt_expires == NULL)
		return cli_usage_error("egress", "egress: --expires DURATION is required "
		                                 "(30d, 12h, 90s, or never)");
	if (strcmp(cli->opt_expires, "never") == 0) {
		*secs_r = 0;
		return 0;
	}
	if (util_parse_duration(cli->opt_expires, &s) < 0 || s == 0 ||
	    s > (uint64_t)CLI_EGRESS_MAX_DURATION)
		return cli_usage_error("egress",
		                       "egress: bad --expires '%s' (a duration from 1s to 3650d, "
		                       "or never)",
		                       cli_safe(cli->opt_expires, safe, sizeof safe));
	*secs_r = (int64_t)s;
	return 0;
}

static int cli_egress_id(const char *s, int64_t *id_r)
{
	char *end, safe[64];
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] < '1' || s[0] > '9' || *end != '\0' || errno != 0 || v <= 0)
		return cli_usage_error("egress", "egress: '%s' is not an id",
		                       cli_safe(s, safe, sizeof safe));
	*id_r = v;
	return 0;
}

/* The tenant of --tenant, and the reason: both required. */
static int cli_egress_who(struct cli *cli, struct store_tenant *t)
{
	if (cli->opt_tenant == NULL || cli->opt_reason == NULL)
		return cli_usage_error("egress", "egress: --tenant TENANT and --reason TEXT are "
		                                 "required");
	return cli_tenant_find(cli, cli->opt_tenant, t);
}

/* Refuse a network that overlaps an active exception: nftables refuses
 * overlapping intervals, and two grants for one address are one too many. */
static int cli_egress_overlap(struct cli *cli, const char *cidr)
{
	struct store_egress_exception *list = NULL;
	struct egress_cidr c, o;
	char err[256], *serr = NULL;
	size_t n = 0;
	int rc;

	if (egress_cidr_parse(cidr, &c, err, sizeof err) < 0)
		return cli_error("%s", err);
	if ((rc = store_egress_exception_list(cli->store, 0, 0, util_wall_seconds(), &list, &n,
	                                      &serr)) != 0)
		return cli_store_error(rc, &serr, "listing egress exceptions");
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		if (egress_cidr_parse(list[i].cidr, &o, err, sizeof err) == 0 &&
		    egress_cidr_overlap(&c, &o))
			rc = cli_error(
			    "%s overlaps exception %lld (%s of tenant '%s'): revoke it first", cidr,
			    (long long)list[i].id, list[i].cidr, list[i].tenant);
	free(list);
	return rc;
}

static void cli_egress_expiry(int64_t expires, char out[CLI_TIME_MAX])
{
	if (expires == 0)
		util_strlcpy(out, "never", CLI_TIME_MAX);
	else
		cli_time_iso(expires, out);
}

/* ---- render, apply, status, blocked ------------------------------------------------ */

int cli_egress_render(struct cli *cli)
{
	char *text = NULL;
	int rc;

	if ((rc = cli_egress_render_text(cli, NULL, &text)) != 0)
		return rc;
	fputs(text, stdout);
	free(text);
	return CLI_EXIT_OK;
}

int cli_egress_apply(struct cli *cli)
{
	struct cli_nft *nft;
	int rc;

	/* before the kernel is asked anything */
	if (cli->cfg.egress.ncustomers == 0)
		return cli_error("egress_customer_networks is not set: there is nothing to block");
	if ((rc = cli_nft_start(&nft)) != 0)
		return rc;
	rc = cli_egress_load(cli, nft, 0);
	cli_nft_stop(&nft);
	return rc;
}

static json_t *cli_egress_source_json(const struct egress_source *s)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:o}", "address", s->addr, "attempts",
	                 (json_int_t)s->packets, "bytes", (json_int_t)s->bytes, "expires_in",
	                 (json_int_t)s->expires_s, "tenant",
	                 s->tenant_id ? json_string(s->tenant) : json_null());
}

/* Name the tenants of the blocked sources from the store's networks. */
int cli_egress_name(struct cli *cli, struct egress_status *st)
{
	struct store_network *nets = NULL;
	struct egress_owner *owners;
	char *err = NULL;
	size_t n = 0;
	int rc;

	if (st->nblocked == 0)
		return 0;
	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_network_list(cli->store, 0, &nets, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing networks");
	if ((owners = calloc(n ? n : 1, sizeof *owners)) == NULL) {
		free(nets);
		return cli_error("out of memory");
	}
	for (size_t i = 0; i < n; i++)
		owners[i] = (struct egress_owner){nets[i].tenant_id, nets[i].tenant, nets[i].cidr};
	egress_sources_name(st->blocked, st->nblocked, owners, n);
	free(owners);
	free(nets);
	return 0;
}

int cli_egress_read_named(struct cli *cli, struct egress_status *st)
{
	struct cli_nft *nft;
	int rc;

	if ((rc = cli_nft_start(&nft)) != 0)
		return rc;
	rc = cli_egress_read(nft, st);
	cli_nft_stop(&nft);
	if (rc != 0)
		return rc;
	if ((rc = cli_egress_name(cli, st)) != 0)
		egress_status_free(st);
	return rc;
}

int cli_egress_status(struct cli *cli)
{
	struct egress_status st;
	struct cli_nft *nft;
	char *text = NULL, when[CLI_TIME_MAX];
	int rc;

	if ((rc = cli_nft_start(&nft)) != 0)
		return rc;
	rc = cli_egress_read(nft, &st);
	if (rc == 0 && st.present && !(cli->flags & CLI_FLAG_JSON) &&
	    cli_nft_run(nft, CLI_NFT_TEXT, "", &text) != 0) {
		rc = cli_error("%s", text ? text : "nft failed");
		egress_status_free(&st);
	}
	cli_nft_stop(&nft);
	if (rc != 0) {
		free(text);
		return rc;
	}
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *xs = json_array(), *doc;
		for (size_t i = 0; xs && i < st.nexceptions; i++) {
			cli_egress_expiry(st.exceptions[i].expires, when);
			json_array_append_new(xs,
			                      json_pack("{s:I, s:s, s:s, s:s}", "id",
			                                (json_int_t)st.exceptions[i].id, "tenant",
			                                st.exceptions[i].tenant, "cidr",
			                                st.exceptions[i].cidr, "expires", when));
		}
		doc =
		    json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "table",
		              EGRESS_FAMILY " " EGRESS_TABLE, "loaded", st.present,
		              "rejected_packets", (json_int_t)st.rejected_packets, "rejected_bytes",
		              (json_int_t)st.rejected_bytes, "customer_networks",
		              (json_int_t)st.ncustomers, "relay_addresses", (json_int_t)st.nrelays,
		              "private_networks", (json_int_t)st.nprivates, "blocked_sources",
		              (json_int_t)st.nblocked, "exceptions", xs);
		egress_status_free(&st);
		return cli_json_print(doc);
	}
	if (!st.present) {
		printf("table %s %s is not loaded (run 'sluice egress apply')\n", EGRESS_FAMILY,
		       EGRESS_TABLE);
		return CLI_EXIT_OK;
	}
	printf("table %s %s loaded\n"
	       "  customer networks  %zu\n  sluice addresses   %zu\n  private subnets    %zu\n"
	       "  rejected packets   %" PRIu64 "\n  blocked sources    %zu\n"
	       "  exceptions         %zu\n",
	       EGRESS_FAMILY, EGRESS_TABLE, st.ncustomers, st.nrelays, st.nprivates,
	       st.rejected_packets, st.nblocked, st.nexceptions);
	for (size_t i = 0; i < st.nexceptions; i++) {
		cli_egress_expiry(st.exceptions[i].expires, when);
		printf("    %-6lld %-20s %-16s expires %s\n", (long long)st.exceptions[i].id,
		       st.exceptions[i].cidr, st.exceptions[i].tenant, when);
	}
	printf("\n%s", text ? text : "");
	free(text);
	egress_status_free(&st);
	return CLI_EXIT_OK;
}

/* The sums the containment score reads: attempts and addresses per tenant. */
static void cli_egress_per_tenant(const struct egress_status *st)
{
	struct egress_tenant_count *counts = NULL;
	size_t n = 0;

	if (egress_tenant_counts(st->blocked, st->nblocked, &counts, &n) < 0 || n == 0) {
		free(counts);
		return;
	}
	printf("\n%-40s %10s  %s\n", "TENANT", "ATTEMPTS", "ADDRESSES");
	for (size_t i = 0; i < n; i++) {
		const char *name = "?";
		for (size_t j = 0; j < st->nblocked; j++)
			if (st->blocked[j].tenant_id == counts[i].tenant_id)
				name = st->blocked[j].tenant;
		printf("%-40s %10" PRIu64 "  %zu\n", name, counts[i].attempts, counts[i].sources);
	}
	free(counts);
}

int cli_egress_blocked(struct cli *cli)
{
	struct egress_status st;
	int rc;

	if ((rc = cli_egress_read_named(cli, &st)) != 0)
		return rc;
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *list = json_array();
		for (size_t i = 0; list && i < st.nblocked; i++)
			json_array_append_new(list, cli_egress_source_json(&st.blocked[i]));
		egress_status_free(&st);
		return cli_json_print(list);
	}
	if (!st.present)
		printf("table %s %s is not loaded (run 'sluice egress apply')\n", EGRESS_FAMILY,
		       EGRESS_TABLE);
	else if (st.nblocked == 0)
		printf("no blocked port-25 attempts\n");
	else
		printf("%-40s %10s  %s\n", "SOURCE", "ATTEMPTS", "TENANT");
	for (size_t i = 0; i < st.nblocked; i++)
		printf("%-40s %10" PRIu64 "  %s\n", st.blocked[i].addr, st.blocked[i].packets,
		       st.blocked[i].tenant_id ? st.blocked[i].tenant : "-");
	cli_egress_per_tenant(&st);
	egress_status_free(&st);
	return CLI_EXIT_OK;
}

/* ---- exceptions --------------------------------------------------------------- */

int cli_egress_allow(struct cli *cli)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1], when[CLI_TIME_MAX];
	struct store_egress_exception x;
	struct store_tenant t = {0};
	struct cli_nft *nft = NULL;
	char *err = NULL;
	int64_t secs = 0, id = 0;
	int rc;

	if ((rc = cli_egress_expires(cli, &secs)) != 0)
		return rc;
	if (cli->cfg.egress.apply_on_change && (rc = cli_nft_start(&nft)) != 0)
		return rc;
	if ((rc = cli_egress_who(cli, &t)) != 0)
		goto done;
	if ((rc = cli_egress_overlap(cli, cli->args[0])) != 0)
		goto done;
	cli_egress_actor(actor);
	rc = store_egress_exception_add(cli->store, t.id, cli->args[0], cli->opt_reason,
	                                secs ? util_wall_seconds() + secs : 0, actor, &id, &err);
	if (rc != 0) {
		rc = cli_store_error(rc, &err, "adding the exception");
		goto done;
	}
	if ((rc = store_egress_exception_get(cli->store, id, &x, &err)) != 0) {
		rc = cli_store_error(rc, &err, "reading the exception");
		goto done;
	}
	cli_egress_expiry(x.expires, when);
	printf("exception %lld: port 25 open for %s (tenant '%s') until %s\n", (long long)x.id,
	       x.cidr, x.tenant, when);
	rc = cli_egress_changed(cli, nft);
done:
	cli_nft_stop(&nft);
	return rc;
}

int cli_egress_revoke(struct cli *cli)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	struct cli_nft *nft = NULL;
	char *err = NULL;
	int64_t id = 0;
	int rc;

	if ((rc = cli_egress_id(cli->args[0], &id)) != 0)
		return rc;
	if (cli->cfg.egress.apply_on_change && (rc = cli_nft_start(&nft)) != 0)
		return rc;
	if (cli_store(cli) == NULL) {
		rc = CLI_EXIT_ERROR;
		goto done;
	}
	cli_egress_actor(actor);
	if ((rc = store_egress_exception_revoke(cli->store, id, actor, &err)) != 0) {
		rc = cli_store_error(rc, &err, "revoking the exception");
		goto done;
	}
	printf("exception %lld revoked\n", (long long)id);
	rc = cli_egress_changed(cli, nft);
done:
	cli_nft_stop(&nft);
	return rc;
}

/* active, or why not: revoked, expired, or (still to be revoked) its
 * tenant is suspended and it is left out of the table */
static const char *cli_egress_xstate(const struct store_egress_exception *x, int64_t now,
                                     int suspended)
{
	if (x->revoked)
		return "revoked";
	if (x->expires != 0 && x->expires <= now)
		return "expired";
	return suspended ? "held" : "active";
}

int cli_egress_list(struct cli *cli)
{
	struct store_egress_exception *list = NULL;
	struct store_tenant *ts = NULL;
	int64_t now = util_wall_seconds();
	int all = (cli->flags & CLI_FLAG_ALL) != 0;
	char when[CLI_TIME_MAX], made[CLI_TIME_MAX], *err = NULL;
	size_t n = 0, nts = 0;
	int rc;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_egress_exception_list(cli->store, 0, all, now, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing egress exceptions");
	if ((rc = store_tenant_list(cli->store, &ts, &nts, &err)) != 0) {
		free(list);
		return cli_store_error(rc, &err, "listing tenants");
	}
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++) {
			cli_egress_expiry(list[i].expires, when);
			cli_time_iso(list[i].created, made);
			json_array_append_new(
			    a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id",
			                 (json_int_t)list[i].id, "tenant", list[i].tenant, "cidr",
			                 list[i].cidr, "reason", list[i].reason, "created", made,
			                 "created_by", list[i].created_by, "expires", when, "state",
			                 cli_egress_xstate(
			                     &list[i], now,
			                     cli_egress_suspended(ts, nts, list[i].tenant_id))));
		}
		free(list);
		free(ts);
		return cli_json_print(a);
	}
	if (n == 0)
		printf(all ? "no egress exceptions\n" : "no egress exceptions in force\n");
	else
		printf("%-6s %-20s %-16s %-8s %-20s %s\n", "ID", "NETWORK", "TENANT", "STATE",
		       "EXPIRES", "REASON");
	for (size_t i = 0; i < n; i++) {
		char reason[64];
		cli_egress_expiry(list[i].expires, when);
		printf("%-6lld %-20s %-16s %-8s %-20s %s\n", (long long)list[i].id, list[i].cidr,
		       list[i].tenant,
		       cli_egress_xstate(&list[i], now,
		                         cli_egress_suspended(ts, nts, list[i].tenant_id)),
		       when, cli_safe(list[i].reason, reason, sizeof reason));
	}
	free(list);
	free(ts);
	return CLI_EXIT_OK;
}

/* ---- requests -------------------------------------------------------------------- */

int cli_egress_request(struct cli *cli)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	struct store_tenant t = {0};
	char *err = NULL;
	int64_t secs = 0, id = 0;
	int rc;

	if ((rc = cli_egress_expires(cli, &secs)) != 0)
		return rc;
	if ((rc = cli_egress_who(cli, &t)) != 0)
		return rc;
	cli_egress_actor(actor);
	rc = store_egress_request_add(cli->store, t.id, cli->args[0], cli->opt_reason, secs, actor,
	                              &id, &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "adding the request");
	printf("request %lld: port 25 for %s (tenant '%s') awaits the operator "
	       "(sluice egress approve %lld)\n",
	       (long long)id, cli->args[0], t.name, (long long)id);
	return CLI_EXIT_OK;
}

static const char *cli_egress_rstate(int state)
{
	return state == STORE_EGRESS_PENDING    ? "pending"
	       : state == STORE_EGRESS_APPROVED ? "approved"
	                                        : "denied";
}

static void cli_egress_duration(int64_t secs, char *out, size_t size)
{
	if (secs == 0)
		snprintf(out, size, "never");
	else if (secs % 86400 == 0)
		snprintf(out, size, "%lldd", (long long)(secs / 86400));
	else if (secs % 3600 == 0)
		snprintf(out, size, "%lldh", (long long)(secs / 3600));
	else
		snprintf(out, size, "%llds", (long long)secs);
}

int cli_egress_requests(struct cli *cli)
{
	struct store_egress_request *list = NULL;
	int pending = !(cli->flags & CLI_FLAG_ALL);
	char dur[32], made[CLI_TIME_MAX], *err = NULL;
	size_t n = 0;
	int rc;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_egress_request_list(cli->store, 0, pending, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing egress requests");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++) {
			cli_time_iso(list[i].created, made);
			json_array_append_new(
			    a, json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "id",
			                 (json_int_t)list[i].id, "tenant", list[i].tenant, "cidr",
			                 list[i].cidr, "reason", list[i].reason, "duration",
			                 (json_int_t)list[i].duration, "created", made, "state",
			                 cli_egress_rstate(list[i].state), "decided_by",
			                 list[i].decided_by, "note", list[i].note, "exception",
			                 (json_int_t)list[i].exception_id));
		}
		free(list);
		return cli_json_print(a);
	}
	if (n == 0)
		printf(pending ? "no pending egress requests\n" : "no egress requests\n");
	else
		printf("%-6s %-20s %-16s %-8s %-8s %s\n", "ID", "NETWORK", "TENANT", "STATE", "FOR",
		       "REASON");
	for (size_t i = 0; i < n; i++) {
		char reason[64];
		cli_egress_duration(list[i].duration, dur, sizeof dur);
		printf("%-6lld %-20s %-16s %-8s %-8s %s\n", (long long)list[i].id, list[i].cidr,
		       list[i].tenant, cli_egress_rstate(list[i].state), dur,
		       cli_safe(list[i].reason, reason, sizeof reason));
	}
	free(list);
	return CLI_EXIT_OK;
}

int cli_egress_approve(struct cli *cli)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	struct store_egress_request r = {0};
	struct cli_nft *nft = NULL;
	char *err = NULL;
	int64_t id = 0, xid = 0;
	int rc;

	if ((rc = cli_egress_id(cli->args[0], &id)) != 0)
		return rc;
	if (cli->cfg.egress.apply_on_change && (rc = cli_nft_start(&nft)) != 0)
		return rc;
	if (cli_store(cli) == NULL) {
		rc = CLI_EXIT_ERROR;
		goto done;
	}
	if ((rc = store_egress_request_get(cli->store, id, &r, &err)) != 0) {
		rc = cli_store_error(rc, &err, "reading the request");
		goto done;
	}
	if (r.state == STORE_EGRESS_PENDING && (rc = cli_egress_overlap(cli, r.cidr)) != 0)
		goto done;
	cli_egress_actor(actor);
	if ((rc = store_egress_request_approve(cli->store, id, actor, &xid, &err)) != 0) {
		rc = cli_store_error(rc, &err, "approving the request");
		goto done;
	}
	printf("request %lld approved: exception %lld opens port 25 for %s (tenant '%s')\n",
	       (long long)id, (long long)xid, r.cidr, r.tenant);
	rc = cli_egress_changed(cli, nft);
done:
	cli_nft_stop(&nft);
	return rc;
}

int cli_egress_deny(struct cli *cli)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	char *err = NULL;
	int64_t id = 0;
	int rc;

	if ((rc = cli_egress_id(cli->args[0], &id)) != 0)
		return rc;
	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	cli_egress_actor(actor);
	rc = store_egress_request_deny(cli->store, id, actor,
	                               cli->opt_reason ? cli->opt_reason : "", &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "denying the request");
	printf("request %lld denied\n", (long long)id);
	return CLI_EXIT_OK;
}

int cli_egress_audit(struct cli *cli)
{
	struct store_egress_audit *list = NULL;
	struct store_tenant t = {0};
	char when[CLI_TIME_MAX], *err = NULL;
	size_t n = 0;
	int rc;

	if (cli->nargs == 1 && (rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	rc = store_egress_audit_list(cli->store, t.id, CLI_EGRESS_AUDIT_ROWS, &list, &n, &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "reading the audit log");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++) {
			cli_time_iso(list[i].at, when);
			json_array_append_new(
			    a, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "id",
			                 (json_int_t)list[i].id, "at", when, "actor", list[i].actor,
			                 "action", list[i].action, "tenant", list[i].tenant, "cidr",
			                 list[i].cidr, "ref", (json_int_t)list[i].ref, "detail",
			                 list[i].detail));
		}
		free(list);
		return cli_json_print(a);
	}
	if (n == 0)
		printf("no egress changes yet\n");
	for (size_t i = 0; i < n; i++) {
		char detail[80];
		cli_time_iso(list[i].at, when);
		printf("%s %-8s %-6lld %-16s %-20s by %s%s%s\n", when, list[i].action,
		       (long long)list[i].ref, list[i].tenant[0] ? list[i].tenant : "-",
		       list[i].cidr[0] ? list[i].cidr : "-", list[i].actor,
		       list[i].detail[0] ? ": " : "",
		       cli_safe(list[i].detail, detail, sizeof detail));
	}
	free(list);
	return CLI_EXIT_OK;
}

/* ---- tenant suspend -------------------------------------------------------------- */

int cli_egress_tenant_suspended(struct cli *cli, const char *tenant, struct cli_nft *nft)
{
	char actor[STORE_EGRESS_ACTOR_MAX + 1];
	struct store_tenant t = {0};
	char *err = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cli_tenant_find(cli, tenant, &t)) != 0)
		return rc;
	cli_egress_actor(actor);
	rc = store_egress_exception_revoke_tenant(cli->store, t.id, actor, "tenant suspended", &n,
	                                          &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "revoking the tenant's egress exceptions");
	if (n == 0)
		return CLI_EXIT_OK;
	printf("%zu egress exception%s of tenant '%s' revoked\n", n, n == 1 ? "" : "s", t.name);
	return cli_egress_changed(cli, nft);
}
