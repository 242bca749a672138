/*
 * store_policy: what the outbound policy (src/policy, issue 4) keeps:
 * limit overrides per tenant and per credential, the networks a
 * credential is bound to and those it was seen from, each tenant's
 * suppression list, and hourly usage counters.
 *
 * Usage rows are counts per (tenant, credential, hour, metric); sluiced
 * aggregates them in memory and adds them here in one transaction every
 * few seconds (store_usage_add), together with the addresses hard bounces
 * suppressed meanwhile.  credential_id 0 in a usage row: no credential
 * (the relay listener, delivery outcomes).  A tenant's figures are the
 * sum over its credentials.
 *
 * Rows follow their tenant or credential (ON DELETE CASCADE), except the
 * usage history, which stays when a credential goes.
 */
#include "store/store.h"
#include "store/store_check.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sql_limit_set_tenant[] =
    "INSERT INTO tenant_limits (tenant_id, name, value) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (tenant_id, name) DO UPDATE SET value = excluded.value";
static const char sql_limit_set_cred[] =
    "INSERT INTO credential_limits (credential_id, name, value) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (credential_id, name) DO UPDATE SET value = excluded.value";
static const char sql_limit_unset_tenant[] =
    "DELETE FROM tenant_limits WHERE tenant_id = ?1 AND name = ?2";
static const char sql_limit_unset_cred[] =
    "DELETE FROM credential_limits WHERE credential_id = ?1 AND name = ?2";
static const char sql_limit_list_tenant[] =
    "SELECT name, value FROM tenant_limits WHERE tenant_id = ?1 ORDER BY name";
static const char sql_limit_list_cred[] =
    "SELECT name, value FROM credential_limits WHERE credential_id = ?1 ORDER BY name";

static const char sql_cnet_add[] =
    "INSERT INTO credential_networks (credential_id, cidr, created) VALUES (?1, ?2, ?3)";
static const char sql_cnet_remove[] =
    "DELETE FROM credential_networks WHERE credential_id = ?1 AND cidr = ?2";
static const char sql_cnet_list[] = "SELECT credential_id, cidr, created FROM credential_networks"
                                    " WHERE credential_id = ?1 ORDER BY cidr";
static const char sql_seen_add[] =
    "INSERT INTO credential_seen (credential_id, network, first_seen) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (credential_id, network) DO NOTHING";
static const char sql_seen_count[] =
    "SELECT count(*) FROM credential_seen WHERE credential_id = ?1";
static const char sql_seen_list[] = "SELECT credential_id, network, first_seen FROM credential_seen"
                                    " WHERE credential_id = ?1 ORDER BY first_seen, network";

#define SUPP_COLS "tenant_id, address, source, reason, created"
static const char sql_supp_add[] =
    "INSERT INTO suppressions (" SUPP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)";
static const char sql_supp_add_keep[] =
    "INSERT INTO suppressions (" SUPP_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (tenant_id, address) DO NOTHING";
static const char sql_supp_remove[] =
    "DELETE FROM suppressions WHERE tenant_id = ?1 AND address = ?2";
static const char sql_supp_get[] =
    "SELECT " SUPP_COLS " FROM suppressions WHERE tenant_id = ?1 AND address = ?2";
static const char sql_supp_list[] =
    "SELECT " SUPP_COLS " FROM suppressions WHERE tenant_id = ?1 ORDER BY address";

static const char sql_usage_add[] =
    "INSERT INTO usage (tenant_id, credential_id, hour, metric, count)"
    " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant_id, credential_id, hour, metric)"
    " DO UPDATE SET count = count + excluded.count";
static const char sql_usage_sum[] =
    "SELECT coalesce(sum(count), 0) FROM usage WHERE tenant_id = ?1"
    " AND (?2 < 0 OR credential_id = ?2) AND metric = ?3 AND hour >= ?4 AND hour < ?5";
static const char sql_usage_list[] =
    "SELECT tenant_id, 0, hour, metric, sum(count) FROM usage WHERE tenant_id = ?1"
    " AND hour >= ?2 GROUP BY hour, metric ORDER BY hour, metric";

/* ---- checks ------------------------------------------------------------- */

static int store_check_limit_name(const char *name, char **err_r)
{
	size_t n = strlen(name);

	if (n == 0 || n > STORE_LIMIT_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz_") != n) {
		store_seterr(err_r, "limit name must be 1-%d of [a-z_]", STORE_LIMIT_NAME_MAX);
		return -1;
	}
	return 0;
}

/* An address as SMTP formats it (local@domain), lower-cased (ASCII) into
 * out: suppression is case-insensitive, as every ESP's is. */
static int store_check_address(const char *addr, char out[STORE_ADDRESS_MAX + 1], char **err_r)
{
	size_t n = strlen(addr), i;
	const char *at = strrchr(addr, '@');

	if (n < 3 || n > STORE_ADDRESS_MAX || at == NULL || at == addr || at[1] == '\0') {
		store_seterr(err_r, "'%.80s' is not an address (local@domain, at most %d octets)",
		             addr, STORE_ADDRESS_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c <= 0x20 || c == 0x7f) {
			store_seterr(err_r, "an address holds no spaces or control characters");
			return -1;
		}
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* ---- limits ------------------------------------------------------------- */

static int store_row_limit(sqlite3_stmt *s, void *item)
{
	struct store_limit *l = item;
	sqlite3_int64 v = sqlite3_column_int64(s, 1);

	memset(l, 0, sizeof *l);
	l->value = v < 0 ? 0 : (uint64_t)v;
	return store_col_text(s, 0, l->name, sizeof l->name);
}

int store_limit_set(struct store *st, int64_t tenant_id, int64_t credential_id, const char *name,
                    uint64_t value, char **err_r)
{
	sqlite3_stmt *s;
	int rc;

	if (store_check_limit_name(name, err_r) < 0)
		return -1;
	if (value > INT64_MAX)
		return store_checkerr(err_r, "limit value too large");
	s = store_sql_stmt(st, credential_id ? sql_limit_set_cred : sql_limit_set_tenant, err_r);
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, credential_id ? credential_id : tenant_id);
	store_bind_text(s, 2, name);
	store_bind_int(s, 3, (int64_t)value);
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return store_checkerr(err_r, "no such tenant or credential");
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "setting a limit");
	return 0;
}

int store_limit_unset(struct store *st, int64_t tenant_id, int64_t credential_id, const char *name,
                      char **err_r)
{
	sqlite3_stmt *s;
	int r;

	if (store_check_limit_name(name, err_r) < 0)
		return -1;
	s = store_sql_stmt(st, credential_id ? sql_limit_unset_cred : sql_limit_unset_tenant,
	                   err_r);
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, credential_id ? credential_id : tenant_id);
	store_bind_text(s, 2, name);
	r = store_change(st, s, "removing a limit", err_r);
	if (r < 0)
		return -1;
	return r == 0 ? STORE_NOTFOUND : 0;
}

int store_limit_list(struct store *st, int64_t tenant_id, int64_t credential_id,
                     struct store_limit **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s =
	    store_sql_stmt(st, credential_id ? sql_limit_list_cred : sql_limit_list_tenant, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, credential_id ? credential_id : tenant_id);
	return store_get_all(st, s, store_row_limit, sizeof **list_r, (void **)list_r, n_r,
	                     "listing limits", err_r);
}

/* ---- credential networks ---------------------------------------------------- */

static int store_row_cnet(sqlite3_stmt *s, void *item)
{
	struct store_credential_network *n = item;

	memset(n, 0, sizeof *n);
	n->credential_id = sqlite3_column_int64(s, 0);
	n->created = sqlite3_column_int64(s, 2);
	return store_col_text(s, 1, n->cidr, sizeof n->cidr);
}

int store_credential_network_add(struct store *st, int64_t credential_id, const char *cidr,
                                 char **err_r)
{
	char canon[STORE_CIDR_MAX + 1], err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	if (store_check_cidr(cidr, canon, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((s = store_sql_stmt(st, sql_cnet_add, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	store_bind_text(s, 2, canon);
	store_bind_int(s, 3, util_wall_seconds());
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		store_seterr(err_r, "network %s is already bound to this login", canon);
		return STORE_EXISTS;
	}
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return store_checkerr(err_r, "no such login");
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "binding a network");
	return 0;
}

int store_credential_network_remove(struct store *st, int64_t credential_id, const char *cidr,
                                    char **err_r)
{
	char canon[STORE_CIDR_MAX + 1], err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int r;

	if (store_check_cidr(cidr, canon, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((s = store_sql_stmt(st, sql_cnet_remove, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	store_bind_text(s, 2, canon);
	r = store_change(st, s, "unbinding a network", err_r);
	if (r < 0)
		return -1;
	if (r == 0) {
		store_seterr(err_r, "network %s is not bound to this login", canon);
		return STORE_NOTFOUND;
	}
	return 0;
}

int store_credential_network_list(struct store *st, int64_t credential_id,
                                  struct store_credential_network **list_r, size_t *n_r,
                                  char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_cnet_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	return store_get_all(st, s, store_row_cnet, sizeof **list_r, (void **)list_r, n_r,
	                     "listing a login's networks", err_r);
}

int store_credential_seen(struct store *st, int64_t credential_id, const char *network, int64_t now,
                          int *new_r, size_t *before_r, char **err_r)
{
	sqlite3_stmt *s;
	int rc;

	*new_r = 0;
	*before_r = 0;
	if (strlen(network) == 0 || strlen(network) > STORE_CIDR_MAX)
		return store_checkerr(err_r, "bad network");
	if ((s = store_sql_stmt(st, sql_seen_count, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		store_dberr(st, err_r, "counting a login's networks");
		store_done(s);
		return -1;
	}
	*before_r = (size_t)sqlite3_column_int64(s, 0);
	store_done(s);
	if ((s = store_sql_stmt(st, sql_seen_add, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	store_bind_text(s, 2, network);
	store_bind_int(s, 3, now);
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return store_checkerr(err_r, "no such login");
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "recording a login's network");
	*new_r = sqlite3_changes(st->db) > 0;
	return 0;
}

int store_credential_seen_list(struct store *st, int64_t credential_id,
                               struct store_credential_network **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_seen_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, credential_id);
	return store_get_all(st, s, store_row_cnet, sizeof **list_r, (void **)list_r, n_r,
	                     "listing a login's networks seen", err_r);
}

/* ---- suppression list --------------------------------------------------------- */

static int store_row_supp(sqlite3_stmt *s, void *item)
{
	struct store_suppression *x = item;

	memset(x, 0, sizeof *x);
	x->tenant_id = sqlite3_column_int64(s, 0);
	x->created = sqlite3_column_int64(s, 4);
	if (store_col_text(s, 1, x->address, sizeof x->address) < 0 ||
	    store_col_text(s, 2, x->source, sizeof x->source) < 0)
		return -1;
	return store_col_text(s, 3, x->reason, sizeof x->reason);
}

static int store_check_source(const char *source, char **err_r)
{
	if (strcmp(source, "bounce") != 0 && strcmp(source, "operator") != 0 &&
	    strcmp(source, "tenant") != 0)
		return store_checkerr(err_r,
		                      "suppression source must be bounce, operator or tenant");
	return 0;
}

static int store_supp_bind(sqlite3_stmt *s, const struct store_suppression *x, const char *addr)
{
	return store_bind_int(s, 1, x->tenant_id) | store_bind_text(s, 2, addr) |
	       store_bind_text(s, 3, x->source) | store_bind_text(s, 4, x->reason) |
	       store_bind_int(s, 5, x->created);
}

int store_suppression_add(struct store *st, const struct store_suppression *x, char **err_r)
{
	char addr[STORE_ADDRESS_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if (store_check_address(x->address, addr, err_r) < 0 ||
	    store_check_source(x->source, err_r) < 0)
		return -1;
	if (strlen(x->reason) > STORE_REASON_MAX)
		return store_checkerr(err_r, "suppression reason too long");
	if ((s = store_sql_stmt(st, sql_supp_add, err_r)) == NULL)
		return -1;
	store_supp_bind(s, x, addr);
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		store_seterr(err_r, "%s is already on the suppression list", addr);
		return STORE_EXISTS;
	}
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return store_checkerr(err_r, "no such tenant");
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding a suppression");
	return 0;
}

int store_suppression_remove(struct store *st, int64_t tenant_id, const char *address, char **err_r)
{
	char addr[STORE_ADDRESS_MAX + 1];
	sqlite3_stmt *s;
	int r;

	if (store_check_address(address, addr, err_r) < 0)
		return -1;
	if ((s = store_sql_stmt(st, sql_supp_remove, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, tenant_id);
	store_bind_text(s, 2, addr);
	r = store_change(st, s, "removing a suppression", err_r);
	if (r < 0)
		return -1;
	if (r == 0) {
		store_seterr(err_r, "%s is not on the suppression list", addr);
		return STORE_NOTFOUND;
	}
	return 0;
}

int store_suppression_get(struct store *st, int64_t tenant_id, const char *address,
                          struct store_suppression *x_r, char **err_r)
{
	char addr[STORE_ADDRESS_MAX + 1];
	sqlite3_stmt *s;

	if (store_check_address(address, addr, err_r) < 0)
		return -1;
	if ((s = store_sql_stmt(st, sql_supp_get, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, tenant_id);
	store_bind_text(s, 2, addr);
	return store_get_one(st, s, store_row_supp, x_r, "looking up a suppression", err_r);
}

int store_suppression_list(struct store *st, int64_t tenant_id, struct store_suppression **list_r,
                           size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_supp_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, tenant_id);
	return store_get_all(st, s, store_row_supp, sizeof **list_r, (void **)list_r, n_r,
	                     "listing suppressions", err_r);
}

/* ---- usage ------------------------------------------------------------------------ */

static int store_row_usage(sqlite3_stmt *s, void *item)
{
	struct store_usage *u = item;
	sqlite3_int64 c = sqlite3_column_int64(s, 4);

	memset(u, 0, sizeof *u);
	u->tenant_id = sqlite3_column_int64(s, 0);
	u->credential_id = sqlite3_column_int64(s, 1);
	u->hour = sqlite3_column_int64(s, 2);
	u->count = c < 0 ? 0 : (uint64_t)c;
	return store_col_text(s, 3, u->metric, sizeof u->metric);
}

/* One row of a flush; a bad row (a bug) is skipped with a message rather
 * than losing the whole batch.  0, or -1 on a database error. */
static int store_usage_add_one(struct store *st, const struct store_usage *u, char **err_r)
{
	size_t n = strlen(u->metric);
	sqlite3_stmt *s;
	int rc;

	if (n == 0 || n > STORE_METRIC_MAX || u->count > INT64_MAX) {
		log_err("store usage row skipped tenant=%lld metric=\"%.64s\"",
		        (long long)u->tenant_id, u->metric);
		return 0;
	}
	if ((s = store_sql_stmt(st, sql_usage_add, err_r)) == NULL)
		return -1;
	store_bind_int(s, 1, u->tenant_id);
	store_bind_int(s, 2, u->credential_id);
	store_bind_int(s, 3, u->hour);
	store_bind_text(s, 4, u->metric);
	store_bind_int(s, 5, (int64_t)u->count);
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		log_warn("store usage row of a tenant that is gone skipped tenant=%lld",
		         (long long)u->tenant_id);
		return 0;
	}
	return rc == SQLITE_DONE ? 0 : store_dberr(st, err_r, "adding usage");
}

static int store_supp_add_keep(struct store *st, const struct store_suppression *x, char **err_r)
{
	char addr[STORE_ADDRESS_MAX + 1], *why = NULL;
	sqlite3_stmt *s;
	int rc;

	if (store_check_address(x->address, addr, &why) < 0 ||
	    store_check_source(x->source, &why) < 0 || strlen(x->reason) > STORE_REASON_MAX) {
		log_err("store suppression skipped tenant=%lld address=\"%.80s\" error=\"%s\"",
		        (long long)x->tenant_id, x->address, why ? why : "reason too long");
		free(why);
		return 0;
	}
	if ((s = store_sql_stmt(st, sql_supp_add_keep, err_r)) == NULL)
		return -1;
	store_supp_bind(s, x, addr);
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return 0;
	return rc == SQLITE_DONE ? 0 : store_dberr(st, err_r, "adding a suppression");
}

int store_usage_add(struct store *st, const struct store_usage *rows, size_t n,
                    const struct store_suppression *supp, size_t nsupp, char **err_r)
{
	if (n == 0 && nsupp == 0)
		return 0;
	if (store_exec(st, "BEGIN IMMEDIATE", "starting the usage transaction", err_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (store_usage_add_one(st, &rows[i], err_r) < 0)
			goto fail;
	for (size_t i = 0; i < nsupp; i++)
		if (store_supp_add_keep(st, &supp[i], err_r) < 0)
			goto fail;
	if (store_exec(st, "COMMIT", "committing usage", err_r) < 0)
		goto fail;
	return 0;
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int store_usage_sum(struct store *st, int64_t tenant_id, int64_t credential_id, const char *metric,
                    int64_t from_hour, int64_t to_hour, uint64_t *sum_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_usage_sum, err_r);
	int rc;

	*sum_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, tenant_id);
	store_bind_int(s, 2, credential_id);
	store_bind_text(s, 3, metric);
	store_bind_int(s, 4, from_hour);
	store_bind_int(s, 5, to_hour);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		store_dberr(st, err_r, "summing usage");
		store_done(s);
		return -1;
	}
	if (sqlite3_column_int64(s, 0) > 0)
		*sum_r = (uint64_t)sqlite3_column_int64(s, 0);
	store_done(s);
	return 0;
}

int store_usage_list(struct store *st, int64_t tenant_id, int64_t since_hour,
                     struct store_usage **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_usage_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, tenant_id);
	store_bind_int(s, 2, since_hour);
	return store_get_all(st, s, store_row_usage, sizeof **list_r, (void **)list_r, n_r,
	                     "listing usage", err_r);
}
