/*
 * store_sqlite: the SQLite back-end of store.h, the default for a single
 * node.  One handle is one connection, used by one thread at a time.
 *
 * The daemon and the operator CLI open the same file concurrently: WAL
 * lets readers go on while one writer commits, busy_timeout makes a
 * writer wait for another instead of failing, and synchronous=FULL makes
 * an operator's change survive a power cut once the CLI says it is done.
 * Every write is a single statement (an UPSERT where a check and a write
 * must not race), so no explicit transaction is held across calls.
 *
 * Schema version lives in PRAGMA user_version; store_open runs the steps
 * of store_migrations[] a file has not had yet (store_int.h).
 */
#include "store/store.h"
#include "store/store_check.h"
#include "store/store_int.h"
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORE_SQLITE_PREFIX "sqlite:"
#define STORE_BUSY_TIMEOUT_MS 5000

/* Version 1.  Constraints repeat the checks of store_check.c so a row
 * written by hand (sqlite3 shell) cannot break the fixed-size structs. */
static const char store_schema_v1[] =
    "CREATE TABLE tenants ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
    " suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),"
    " created INTEGER NOT NULL);"
    "CREATE TABLE credentials ("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id),"
    " username TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 64),"
    " hash TEXT NOT NULL CHECK (length(hash) BETWEEN 1 AND 128),"
    " suspended INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),"
    " created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL);"
    "CREATE INDEX credentials_tenant ON credentials (tenant_id);"
    "CREATE TABLE domains ("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id),"
    " domain TEXT NOT NULL UNIQUE"
    "  CHECK (length(domain) BETWEEN 1 AND 253 AND domain = lower(domain)),"
    " verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),"
    " created INTEGER NOT NULL);"
    "CREATE INDEX domains_tenant ON domains (tenant_id);"
    "CREATE TABLE networks ("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id),"
    " cidr TEXT NOT NULL UNIQUE CHECK (length(cidr) BETWEEN 1 AND 64),"
    " created INTEGER NOT NULL);"
    "CREATE INDEX networks_tenant ON networks (tenant_id);";

/* Version 2 (issue 5): a domain's DNS verification token and its DKIM
 * keys (store_dkim.c); both go with their domain. */
static const char store_schema_dkim[] =
    "CREATE TABLE domain_tokens ("
    " domain TEXT PRIMARY KEY REFERENCES domains (domain) ON DELETE CASCADE,"
    " token TEXT NOT NULL CHECK (length(token) BETWEEN 1 AND 64));"
    "CREATE TABLE dkim_keys ("
    " id INTEGER PRIMARY KEY,"
    " domain TEXT NOT NULL REFERENCES domains (domain) ON DELETE CASCADE,"
    " selector TEXT NOT NULL CHECK (length(selector) BETWEEN 1 AND 63),"
    " alg INTEGER NOT NULL CHECK (alg IN (0, 1)),"
    " state INTEGER NOT NULL CHECK (state IN (0, 1, 2)),"
    " private_pem TEXT NOT NULL CHECK (length(private_pem) < 4096),"
    " dns_record TEXT NOT NULL CHECK (length(dns_record) BETWEEN 1 AND 1023),"
    " created INTEGER NOT NULL,"
    " activated INTEGER NOT NULL DEFAULT 0,"
    " retired INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (domain, selector));"
    "CREATE INDEX dkim_keys_state ON dkim_keys (state);";

/* Version 3: egress exceptions (port 25 opened for a tenant's source
 * network, with a reason and an expiry), tenants' requests for one and
 * the audit log of both (store_egress.c, issue 6).  Times are unix
 * seconds, 0 for "never" / "not yet"; request state 0 pending, 1 approved,
 * 2 denied. */
static const char store_schema_egress[] =
    "CREATE TABLE egress_exceptions ("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id),"
    " cidr TEXT NOT NULL CHECK (length(cidr) BETWEEN 1 AND 64),"
    " reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),"
    " created INTEGER NOT NULL,"
    " created_by TEXT NOT NULL CHECK (length(created_by) BETWEEN 1 AND 64),"
    " expires INTEGER NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0,"
    " revoked_by TEXT NOT NULL DEFAULT '' CHECK (length(revoked_by) <= 64),"
    " request_id INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX egress_exceptions_tenant ON egress_exceptions (tenant_id);"
    "CREATE TABLE egress_requests ("
    " id INTEGER PRIMARY KEY,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id),"
    " cidr TEXT NOT NULL CHECK (length(cidr) BETWEEN 1 AND 64),"
    " reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),"
    " duration INTEGER NOT NULL DEFAULT 0,"
    " created INTEGER NOT NULL,"
    " created_by TEXT NOT NULL CHECK (length(created_by) BETWEEN 1 AND 64),"
    " state INTEGER NOT NULL DEFAULT 0 CHECK (state IN (0, 1, 2)),"
    " decided INTEGER NOT NULL DEFAULT 0,"
    " decided_by TEXT NOT NULL DEFAULT '' CHECK (length(decided_by) <= 64),"
    " note TEXT NOT NULL DEFAULT '' CHECK (length(note) <= 200),"
    " exception_id INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX egress_requests_tenant ON egress_requests (tenant_id);"
    "CREATE TABLE egress_audit ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " actor TEXT NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),"
    " action TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 32),"
    " tenant_id INTEGER NOT NULL DEFAULT 0,"
    " cidr TEXT NOT NULL DEFAULT '' CHECK (length(cidr) <= 64),"
    " ref INTEGER NOT NULL DEFAULT 0,"
    " detail TEXT NOT NULL DEFAULT '' CHECK (length(detail) <= 200));";

/* Version 4 (issue 4): the outbound policy (store_policy.c): limit
 * overrides per tenant and per credential, the networks a credential is
 * bound to and those it was seen from, suppression lists, hourly usage.
 * A usage row's credential_id is 0 without a credential and carries no
 * reference: the history stays when a credential is removed. */
static const char store_schema_policy[] =
    "CREATE TABLE tenant_limits ("
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 32),"
    " value INTEGER NOT NULL CHECK (value >= 0),"
    " PRIMARY KEY (tenant_id, name));"
    "CREATE TABLE credential_limits ("
    " credential_id INTEGER NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 32),"
    " value INTEGER NOT NULL CHECK (value >= 0),"
    " PRIMARY KEY (credential_id, name));"
    "CREATE TABLE credential_networks ("
    " credential_id INTEGER NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,"
    " cidr TEXT NOT NULL CHECK (length(cidr) BETWEEN 1 AND 64),"
    " created INTEGER NOT NULL,"
    " PRIMARY KEY (credential_id, cidr));"
    "CREATE TABLE credential_seen ("
    " credential_id INTEGER NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,"
    " network TEXT NOT NULL CHECK (length(network) BETWEEN 1 AND 64),"
    " first_seen INTEGER NOT NULL,"
    " PRIMARY KEY (credential_id, network));"
    "CREATE TABLE suppressions ("
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " address TEXT NOT NULL"
    "  CHECK (length(address) BETWEEN 3 AND 320 AND address = lower(address)),"
    " source TEXT NOT NULL CHECK (source IN ('bounce', 'operator', 'tenant')),"
    " reason TEXT NOT NULL CHECK (length(reason) <= 255),"
    " created INTEGER NOT NULL,"
    " PRIMARY KEY (tenant_id, address));"
    "CREATE TABLE usage ("
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " credential_id INTEGER NOT NULL DEFAULT 0,"
    " hour INTEGER NOT NULL,"
    " metric TEXT NOT NULL CHECK (length(metric) BETWEEN 1 AND 64),"
    " count INTEGER NOT NULL CHECK (count >= 0),"
    " PRIMARY KEY (tenant_id, credential_id, hour, metric));"
    "CREATE INDEX usage_tenant_hour ON usage (tenant_id, hour);";

/* Version 5 (issue 4): containment (store_contain.c): the level each
 * login or tenant was put at and why, every change as an event, and the
 * behaviour baselines the scores are made against, so a restart keeps
 * them.  kind: 1 tenant, 2 credential (policy.h's policy_subject_kind). */
static const char store_schema_contain[] =
    "CREATE TABLE contain_state ("
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " subject_id INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 3),"
    " reason TEXT NOT NULL CHECK (length(reason) <= 255),"
    " by TEXT NOT NULL CHECK (length(by) BETWEEN 1 AND 64),"
    " since INTEGER NOT NULL,"
    " PRIMARY KEY (kind, subject_id));"
    "CREATE TABLE contain_events ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " subject_id INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 3),"
    " reason TEXT NOT NULL CHECK (length(reason) <= 255),"
    " by TEXT NOT NULL CHECK (length(by) BETWEEN 1 AND 64));"
    "CREATE INDEX contain_events_tenant ON contain_events (tenant_id, at);"
    "CREATE TABLE contain_baseline ("
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " subject_id INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " rcpts_per_hour REAL NOT NULL CHECK (rcpts_per_hour >= 0),"
    " hours INTEGER NOT NULL CHECK (hours >= 0),"
    " domains BLOB NOT NULL CHECK (length(domains) % 8 = 0 AND length(domains) <= 65536),"
    " updated INTEGER NOT NULL,"
    " PRIMARY KEY (kind, subject_id));";

/* Version 6 (issue 6): the egress block's blocked-attempt counts sampled
 * for containment (store_egress_sample.c): each source's last kernel count,
 * to tell the rise since from a counter that started again, and the rises
 * per tenant as sample rows sluiced reads by id. */
static const char store_schema_egress_sample[] =
    "CREATE TABLE egress_counters ("
    " addr TEXT PRIMARY KEY CHECK (length(addr) BETWEEN 1 AND 64),"
    " packets INTEGER NOT NULL CHECK (packets >= 0),"
    " seen INTEGER NOT NULL);"
    "CREATE TABLE egress_samples ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " tenant_id INTEGER NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,"
    " attempts INTEGER NOT NULL CHECK (attempts >= 0),"
    " sources INTEGER NOT NULL CHECK (sources >= 0));"
    "CREATE INDEX egress_samples_at ON egress_samples (at);";

/* Version 7 (issue 4): the rate limits' GCRA state (store_limit_state.c),
 * each rate's theoretical arrival time, so a restart does not hand every
 * tenant and login a fresh burst.  No foreign keys: a subject is a tenant
 * or a login (kind as in contain_state); rows whose time has passed carry
 * nothing and are dropped at each save. */
static const char store_schema_limit_state[] =
    "CREATE TABLE limit_state ("
    " kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"
    " subject_id INTEGER NOT NULL CHECK (subject_id > 0),"
    " name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64),"
    " tat_us INTEGER NOT NULL,"
    " PRIMARY KEY (kind, subject_id, name));";

const char *const store_migrations[] = {
    store_schema_v1,
    store_schema_dkim,
    store_schema_egress,
    store_schema_policy,
    store_schema_contain,
    store_schema_egress_sample,
    store_schema_limit_state,
};
const size_t store_migrations_count = sizeof store_migrations / sizeof store_migrations[0];

enum store_query {
	Q_TENANT_ADD,
	Q_TENANT_GET,
	Q_TENANT_GET_ID,
	Q_TENANT_SUSPEND,
	Q_TENANT_LIST,
	Q_CRED_SET,
	Q_CRED_LOOKUP,
	Q_CRED_GET_ID,
	Q_CRED_LIST,
	Q_CRED_REMOVE,
	Q_CRED_SUSPEND,
	Q_DOMAIN_ADD,
	Q_DOMAIN_REMOVE,
	Q_DOMAIN_VERIFY,
	Q_DOMAIN_GET,
	Q_DOMAIN_LIST,
	Q_DOMAIN_LIST_ALL,
	Q_NET_ADD,
	Q_NET_REMOVE,
	Q_NET_OWNER,
	Q_NET_LIST,
	Q_NET_LIST_ALL,
	Q_DATA_VERSION,
	Q_COUNT
};

#define TENANT_COLS "id, name, suspended, created"
#define CRED_COLS "c.id, c.tenant_id, c.username, c.hash, c.suspended, t.suspended"
#define CRED_FROM " FROM credentials c JOIN tenants t ON t.id = c.tenant_id"
#define DOMAIN_COLS "d.tenant_id, t.name, d.domain, d.verified, d.created"
#define DOMAIN_FROM " FROM domains d JOIN tenants t ON t.id = d.tenant_id"
#define NET_COLS "n.id, n.tenant_id, t.name, n.cidr"
#define NET_FROM " FROM networks n JOIN tenants t ON t.id = n.tenant_id"

static const char *const store_sql[Q_COUNT] = {
    [Q_TENANT_ADD] = "INSERT INTO tenants (name, suspended, created) VALUES (?1, 0, ?2)",
    [Q_TENANT_GET] = "SELECT " TENANT_COLS " FROM tenants WHERE name = ?1",
    [Q_TENANT_GET_ID] = "SELECT " TENANT_COLS " FROM tenants WHERE id = ?1",
    [Q_TENANT_SUSPEND] = "UPDATE tenants SET suspended = ?2 WHERE name = ?1",
    [Q_TENANT_LIST] = "SELECT " TENANT_COLS " FROM tenants ORDER BY name",
    /* Replaces the hash only when the user is this tenant's: a user
     * name of another tenant leaves the row alone and changes() == 0. */
    [Q_CRED_SET] = "INSERT INTO credentials"
                   " (tenant_id, username, hash, suspended, created, updated)"
                   " VALUES (?1, ?2, ?3, 0, ?4, ?4)"
                   " ON CONFLICT (username) DO UPDATE"
                   " SET hash = excluded.hash, updated = excluded.updated"
                   " WHERE credentials.tenant_id = excluded.tenant_id",
    [Q_CRED_LOOKUP] = "SELECT " CRED_COLS CRED_FROM " WHERE c.username = ?1",
    [Q_CRED_GET_ID] = "SELECT " CRED_COLS CRED_FROM " WHERE c.id = ?1",
    [Q_CRED_LIST] = "SELECT " CRED_COLS CRED_FROM " WHERE c.tenant_id = ?1"
                    " ORDER BY c.username",
    [Q_CRED_REMOVE] = "DELETE FROM credentials WHERE tenant_id = ?1 AND username = ?2",
    [Q_CRED_SUSPEND] = "UPDATE credentials SET suspended = ?2, updated = ?3"
                       " WHERE username = ?1",
    [Q_DOMAIN_ADD] = "INSERT INTO domains (tenant_id, domain, verified, created)"
                     " VALUES (?1, ?2, ?3, ?4)",
    [Q_DOMAIN_REMOVE] = "DELETE FROM domains WHERE tenant_id = ?1 AND domain = ?2",
    [Q_DOMAIN_VERIFY] = "UPDATE domains SET verified = ?2 WHERE domain = ?1",
    [Q_DOMAIN_GET] = "SELECT " DOMAIN_COLS DOMAIN_FROM " WHERE d.domain = ?1",
    [Q_DOMAIN_LIST] = "SELECT " DOMAIN_COLS DOMAIN_FROM " WHERE d.tenant_id = ?1"
                      " ORDER BY d.domain",
    [Q_DOMAIN_LIST_ALL] = "SELECT " DOMAIN_COLS DOMAIN_FROM " ORDER BY d.domain",
    [Q_NET_ADD] = "INSERT INTO networks (tenant_id, cidr, created) VALUES (?1, ?2, ?3)",
    [Q_NET_REMOVE] = "DELETE FROM networks WHERE tenant_id = ?1 AND cidr = ?2",
    [Q_NET_OWNER] = "SELECT tenant_id FROM networks WHERE cidr = ?1",
    [Q_NET_LIST] = "SELECT " NET_COLS NET_FROM " WHERE n.tenant_id = ?1 ORDER BY n.cidr",
    [Q_NET_LIST_ALL] = "SELECT " NET_COLS NET_FROM " ORDER BY n.cidr",
    [Q_DATA_VERSION] = "PRAGMA data_version",
};


/* ---- errors --------------------------------------------------------------- */

void store_seterr(char **err_r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (err_r == NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*err_r = s;
}

/* A database failure: say what we were doing, on which file, and why. */
int store_dberr(struct store *st, char **err_r, const char *doing)
{
	store_seterr(err_r, "store %s: %s: %s", st->path, doing, sqlite3_errmsg(st->db));
	return -1;
}

int store_checkerr(char **err_r, const char *msg)
{
	store_seterr(err_r, "%s", msg);
	return -1;
}

/* ---- statements ---------------------------------------------------------- */

/* The statement for q, reset and unbound, ready for binding. */
static sqlite3_stmt *store_stmt(struct store *st, enum store_query q)
{
	sqlite3_stmt *s = st->stmt[q];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

sqlite3_stmt *store_sql_stmt(struct store *st, const char *sql, char **err_r)
{
	sqlite3_stmt *s;

	for (size_t i = 0; i < st->ncache; i++) {
		if (st->cache[i].sql == sql) {
			s = st->cache[i].stmt;
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return s;
		}
	}
	if (st->ncache == STORE_CACHE_MAX) {
		store_seterr(err_r, "store: more than %d cached statements", STORE_CACHE_MAX);
		return NULL;
	}
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) !=
	    SQLITE_OK) {
		store_dberr(st, err_r, "preparing a statement");
		return NULL;
	}
	st->cache[st->ncache].sql = sql;
	st->cache[st->ncache].stmt = s;
	st->ncache++;
	return s;
}

/* Release read locks and bound text as soon as a statement is done. */
void store_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

int store_bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) == SQLITE_OK ? 0 : -1;
}

int store_bind_int(sqlite3_stmt *s, int i, int64_t v)
{
	return sqlite3_bind_int64(s, i, v) == SQLITE_OK ? 0 : -1;
}

/* Run a bound statement that returns no rows, and reset it.  SQLITE_DONE,
 * or the extended code of the failure (SQLITE_CONSTRAINT_UNIQUE...); the
 * connection keeps the message for store_dberr. */
int store_write(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	if (rc != SQLITE_DONE)
		rc = sqlite3_extended_errcode(sqlite3_db_handle(s));
	store_done(s);
	return rc;
}

/* Run a bound UPDATE or DELETE: 1 when it matched a row, 0 when none, -1. */
int store_change(struct store *st, sqlite3_stmt *s, const char *doing, char **err_r)
{
	if (store_write(s) != SQLITE_DONE)
		return store_dberr(st, err_r, doing);
	return sqlite3_changes(st->db) > 0 ? 1 : 0;
}

/* Copy a text column; a value that does not fit is an error, not cut. */
int store_col_text(sqlite3_stmt *s, int col, char *dst, size_t size)
{
	const unsigned char *v = sqlite3_column_text(s, col);

	if (v == NULL) {
		dst[0] = '\0';
		return -1;
	}
	return util_strlcpy(dst, (const char *)v, size) >= size ? -1 : 0;
}

/* ---- rows ------------------------------------------------------------------ */

static int store_row_tenant(sqlite3_stmt *s, void *item)
{
	struct store_tenant *t = item;

	memset(t, 0, sizeof *t);
	t->id = sqlite3_column_int64(s, 0);
	t->suspended = sqlite3_column_int(s, 2) != 0;
	t->created = sqlite3_column_int64(s, 3);
	return store_col_text(s, 1, t->name, sizeof t->name);
}

static int store_row_credential(sqlite3_stmt *s, void *item)
{
	struct store_credential *c = item;

	memset(c, 0, sizeof *c);
	c->id = sqlite3_column_int64(s, 0);
	c->tenant_id = sqlite3_column_int64(s, 1);
	c->suspended = sqlite3_column_int(s, 4) != 0;
	c->tenant_suspended = sqlite3_column_int(s, 5) != 0;
	if (store_col_text(s, 2, c->username, sizeof c->username) < 0)
		return -1;
	return store_col_text(s, 3, c->hash, sizeof c->hash);
}

static int store_row_domain(sqlite3_stmt *s, void *item)
{
	struct store_domain *d = item;

	memset(d, 0, sizeof *d);
	d->tenant_id = sqlite3_column_int64(s, 0);
	d->verified = sqlite3_column_int(s, 3) != 0;
	d->created = sqlite3_column_int64(s, 4);
	if (store_col_text(s, 1, d->tenant, sizeof d->tenant) < 0)
		return -1;
	return store_col_text(s, 2, d->domain, sizeof d->domain);
}

static int store_row_network(sqlite3_stmt *s, void *item)
{
	struct store_network *n = item;

	memset(n, 0, sizeof *n);
	n->id = sqlite3_column_int64(s, 0);
	n->tenant_id = sqlite3_column_int64(s, 1);
	if (store_col_text(s, 2, n->tenant, sizeof n->tenant) < 0)
		return -1;
	return store_col_text(s, 3, n->cidr, sizeof n->cidr);
}

/* Read the one row of a bound query.  0, STORE_NOTFOUND (no error text:
 * the caller words it), or -1. */
int store_get_one(struct store *st, sqlite3_stmt *s, store_row_fn *read, void *item,
                         const char *doing, char **err_r)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_DONE) {
		store_done(s);
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_ROW) {
		store_dberr(st, err_r, doing);
		store_done(s);
		return -1;
	}
	if (read(s, item) < 0) {
		store_seterr(err_r, "store %s: %s: a row does not fit (edited by hand?)", st->path,
		             doing);
		store_done(s);
		return -1;
	}
	store_done(s);
	return 0;
}

/* Read every row of a bound query into a malloc'd array. */
int store_get_all(struct store *st, sqlite3_stmt *s, store_row_fn *read, size_t size,
                         void **list_r, size_t *n_r, const char *doing, char **err_r)
{
	char *list = NULL, *p;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			p = reallocarray(list, cap, size);
			if (p == NULL) {
				store_seterr(err_r, "store: %s: out of memory", doing);
				goto fail;
			}
			list = p;
		}
		if (read(s, list + n * size) < 0) {
			store_seterr(err_r, "store %s: %s: a row does not fit (edited by hand?)",
			             st->path, doing);
			goto fail;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		store_dberr(st, err_r, doing);
		goto fail;
	}
	store_done(s);
	*list_r = list;
	*n_r = n;
	return 0;
fail:
	store_done(s);
	free(list);
	*list_r = NULL;
	*n_r = 0;
	return -1;
}

/* ---- open and close ------------------------------------------------------- */

int store_exec(struct store *st, const char *sql, const char *doing, char **err_r)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return store_dberr(st, err_r, doing);
	return 0;
}

static int store_user_version(struct store *st, int *version_r, char **err_r)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return store_dberr(st, err_r, "reading the schema version");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*version_r = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return store_dberr(st, err_r, "reading the schema version");
	return 0;
}

/* Create or migrate the schema.  The version is read again inside an
 * IMMEDIATE transaction, so two processes opening an old file at once do
 * not both migrate it; a file newer than this code is refused. */
static int store_schema(struct store *st, char **err_r)
{
	const int latest = (int)store_migrations_count;
	char sql[32];
	int version;

	if (store_user_version(st, &version, err_r) < 0)
		return -1;
	if (version == latest)
		return 0;
	if (store_exec(st, "BEGIN IMMEDIATE", "starting the schema transaction", err_r) < 0)
		return -1;
	if (store_user_version(st, &version, err_r) < 0)
		goto fail;
	if (version < 0 || version > latest) {
		store_seterr(err_r,
		             "store %s: schema version %d is not known to this sluice "
		             "(it knows %d): upgrade sluice",
		             st->path, version, latest);
		goto fail;
	}
	for (; version < latest; version++) {
		if (store_exec(st, store_migrations[version], "migrating the schema", err_r) < 0)
			goto fail;
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest);
	if (store_exec(st, sql, "setting the schema version", err_r) < 0)
		goto fail;
	return store_exec(st, "COMMIT", "committing the schema", err_r);
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Create the file with mode 0600 before SQLite sees it: it holds password
 * hashes.  SQLite gives the -wal and -shm files the mode of the database.
 * (An open with O_CREAT rather than a umask change: umask is per process
 * and other threads may be creating files meanwhile.) */
static int store_create_file(const char *path, char **err_r)
{
	int fd;

	if (strcmp(path, ":memory:") == 0)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		store_seterr(err_r, "store %s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

int store_open(const char *uri, struct store **store_r, char **err_r)
{
	struct store *st;
	const char *path;
	sqlite3_stmt *s;
	int rc;

	*store_r = NULL;
	if (uri == NULL || strncmp(uri, STORE_SQLITE_PREFIX, strlen(STORE_SQLITE_PREFIX)) != 0) {
		store_seterr(err_r, "store uri '%s' is not supported (expected sqlite:PATH)",
		             uri ? uri : "");
		return -1;
	}
	path = uri + strlen(STORE_SQLITE_PREFIX);
	if (path[0] == '\0') {
		store_seterr(err_r, "store uri '%s' has no path", uri);
		return -1;
	}
	st = calloc(1, sizeof *st);
	if (st != NULL)
		st->stmt = calloc(Q_COUNT, sizeof *st->stmt);
	if (st == NULL || st->stmt == NULL || (st->path = strdup(path)) == NULL) {
		if (st != NULL)
			free(st->stmt);
		free(st);
		store_seterr(err_r, "store: out of memory");
		return -1;
	}
	if (store_create_file(path, err_r) < 0)
		goto fail;
	/* NOMUTEX: a handle belongs to one thread at a time (store.h). */
	rc = sqlite3_open_v2(
	    path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (st->db == NULL) {
			store_seterr(err_r, "store %s: cannot open: out of memory", path);
			goto fail;
		}
		store_dberr(st, err_r, "opening");
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	if (store_exec(st, "PRAGMA foreign_keys = ON", "enabling foreign keys", err_r) < 0)
		goto fail;
	/* journal_mode answers with a row; WAL sticks to the file. */
	if (store_exec(st, "PRAGMA journal_mode = WAL", "switching to WAL", err_r) < 0)
		goto fail;
	if (store_exec(st, "PRAGMA synchronous = FULL", "setting synchronous", err_r) < 0)
		goto fail;
	if (store_schema(st, err_r) < 0)
		goto fail;
	for (int q = 0; q < Q_COUNT; q++) {
		if (sqlite3_prepare_v3(st->db, store_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s,
		                       NULL) != SQLITE_OK) {
			store_dberr(st, err_r, "preparing statements");
			goto fail;
		}
		st->stmt[q] = s;
	}
	*store_r = st;
	return 0;
fail:
	store_close(&st);
	return -1;
}

void store_close(struct store **store)
{
	struct store *st = *store;

	if (st == NULL)
		return;
	*store = NULL;
	for (int q = 0; q < Q_COUNT; q++)
		sqlite3_finalize(st->stmt[q]);
	for (size_t i = 0; i < st->ncache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	free(st->stmt);
	sqlite3_close(st->db);
	free(st->path);
	free(st);
}

/* data_version changes when another connection commits; total_changes
 * when this one writes.  Both only grow, so their sum changes whenever
 * anyone changed the database.  -1 on error. */
int64_t store_generation(struct store *st)
{
	sqlite3_stmt *s = store_stmt(st, Q_DATA_VERSION);
	int64_t v = -1;

	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0) + sqlite3_total_changes64(st->db);
	store_done(s);
	return v;
}

/* ---- tenants ----------------------------------------------------------------- */

int store_tenant_add(struct store *st, const char *name, int64_t *id_r, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	if (store_check_name("tenant", name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	s = store_stmt(st, Q_TENANT_ADD);
	if (store_bind_text(s, 1, name) < 0 || store_bind_int(s, 2, util_wall_seconds()) < 0)
		return store_dberr(st, err_r, "adding a tenant");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		store_seterr(err_r, "tenant '%s' already exists", name);
		return STORE_EXISTS;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding a tenant");
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return 0;
}

int store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	if (store_check_name("tenant", name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	s = store_stmt(st, Q_TENANT_GET);
	if (store_bind_text(s, 1, name) < 0)
		return store_dberr(st, err_r, "reading a tenant");
	rc = store_get_one(st, s, store_row_tenant, t_r, "reading a tenant", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "tenant '%s' not found", name);
	return rc;
}

int store_tenant_get_id(struct store *st, int64_t id, struct store_tenant *t_r, char **err_r)
{
	sqlite3_stmt *s = store_stmt(st, Q_TENANT_GET_ID);
	int rc;

	if (store_bind_int(s, 1, id) < 0)
		return store_dberr(st, err_r, "reading a tenant");
	rc = store_get_one(st, s, store_row_tenant, t_r, "reading a tenant", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "tenant id %lld not found", (long long)id);
	return rc;
}

int store_tenant_set_suspended(struct store *st, const char *name, int suspended, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	if (store_check_name("tenant", name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	s = store_stmt(st, Q_TENANT_SUSPEND);
	if (store_bind_text(s, 1, name) < 0 || store_bind_int(s, 2, suspended != 0) < 0)
		return store_dberr(st, err_r, "suspending a tenant");
	rc = store_change(st, s, "suspending a tenant", err_r);
	if (rc == 0) {
		store_seterr(err_r, "tenant '%s' not found", name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r, char **err_r)
{
	void *list;
	int rc;

	rc = store_get_all(st, store_stmt(st, Q_TENANT_LIST), store_row_tenant, sizeof **list_r,
	                   &list, n_r, "listing tenants", err_r);
	*list_r = list;
	return rc;
}

/* ---- credentials ----------------------------------------------------------- */

int store_credential_set(struct store *st, int64_t tenant_id, const char *username,
                         const char *hash, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	struct store_tenant t;
	sqlite3_stmt *s;
	int rc;

	if (store_check_username(username, err, sizeof err) < 0 ||
	    store_check_hash(username, hash, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_CRED_SET);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, username) < 0 ||
	    store_bind_text(s, 3, hash) < 0 || store_bind_int(s, 4, util_wall_seconds()) < 0)
		return store_dberr(st, err_r, "setting a credential");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		store_seterr(err_r, "tenant id %lld not found", (long long)tenant_id);
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "setting a credential");
	if (sqlite3_changes(st->db) == 0) {
		store_seterr(err_r, "user '%s' belongs to another tenant", username);
		return STORE_EXISTS;
	}
	return 0;
}

int store_credential_lookup(struct store *st, const char *username, struct store_credential *c_r,
                            char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	/* An invalid name cannot be in the table: not found, like any
	 * unknown user at AUTH. */
	if (store_check_username(username, err, sizeof err) < 0) {
		store_checkerr(err_r, err);
		return STORE_NOTFOUND;
	}
	s = store_stmt(st, Q_CRED_LOOKUP);
	if (store_bind_text(s, 1, username) < 0)
		return store_dberr(st, err_r, "looking up a user");
	rc = store_get_one(st, s, store_row_credential, c_r, "looking up a user", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "user '%s' not found", username);
	return rc;
}

int store_credential_get_id(struct store *st, int64_t id, struct store_credential *c_r,
                            char **err_r)
{
	sqlite3_stmt *s = store_stmt(st, Q_CRED_GET_ID);
	int rc;

	if (store_bind_int(s, 1, id) < 0)
		return store_dberr(st, err_r, "looking up a user");
	rc = store_get_one(st, s, store_row_credential, c_r, "looking up a user", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "user #%lld not found", (long long)id);
	return rc;
}

int store_credential_list(struct store *st, int64_t tenant_id, struct store_credential **list_r,
                          size_t *n_r, char **err_r)
{
	struct store_tenant t;
	sqlite3_stmt *s;
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_CRED_LIST);
	if (store_bind_int(s, 1, tenant_id) < 0)
		return store_dberr(st, err_r, "listing users");
	rc = store_get_all(st, s, store_row_credential, sizeof **list_r, &list, n_r,
	                   "listing users", err_r);
	*list_r = list;
	return rc;
}

int store_credential_remove(struct store *st, int64_t tenant_id, const char *username, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	struct store_tenant t;
	sqlite3_stmt *s;
	int rc;

	if (store_check_username(username, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_CRED_REMOVE);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, username) < 0)
		return store_dberr(st, err_r, "removing a user");
	rc = store_change(st, s, "removing a user", err_r);
	if (rc == 0) {
		store_seterr(err_r, "user '%s' not found for tenant '%s'", username, t.name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_credential_set_suspended(struct store *st, const char *username, int suspended,
                                   char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	sqlite3_stmt *s;
	int rc;

	if (store_check_username(username, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	s = store_stmt(st, Q_CRED_SUSPEND);
	if (store_bind_text(s, 1, username) < 0 || store_bind_int(s, 2, suspended != 0) < 0 ||
	    store_bind_int(s, 3, util_wall_seconds()) < 0)
		return store_dberr(st, err_r, "suspending a user");
	rc = store_change(st, s, "suspending a user", err_r);
	if (rc == 0) {
		store_seterr(err_r, "user '%s' not found", username);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

/* ---- domains ------------------------------------------------------------------ */

/* After a UNIQUE conflict on domain: whose is it?  Words the error. */
static int store_domain_conflict(struct store *st, int64_t tenant_id, const char *tenant,
                                 const char *domain, char **err_r)
{
	struct store_domain d;
	sqlite3_stmt *s = store_stmt(st, Q_DOMAIN_GET);
	int rc;

	if (store_bind_text(s, 1, domain) < 0)
		return store_dberr(st, err_r, "adding a domain");
	rc = store_get_one(st, s, store_row_domain, &d, "adding a domain", err_r);
	if (rc < 0)
		return -1;
	if (rc == 0 && d.tenant_id != tenant_id)
		store_seterr(err_r, "domain '%s' belongs to another tenant", domain);
	else
		store_seterr(err_r, "domain '%s' already exists for tenant '%s'", domain, tenant);
	return STORE_EXISTS;
}

int store_domain_add(struct store *st, int64_t tenant_id, const char *domain, int verified,
                     char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], name[STORE_DOMAIN_MAX + 1];
	struct store_tenant t;
	sqlite3_stmt *s;
	int rc;

	if (store_check_domain(domain, name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_DOMAIN_ADD);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, name) < 0 ||
	    store_bind_int(s, 3, verified != 0) < 0 ||
	    store_bind_int(s, 4, util_wall_seconds()) < 0)
		return store_dberr(st, err_r, "adding a domain");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		return store_domain_conflict(st, tenant_id, t.name, name, err_r);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		store_seterr(err_r, "tenant id %lld not found", (long long)tenant_id);
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding a domain");
	return 0;
}

int store_domain_remove(struct store *st, int64_t tenant_id, const char *domain, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], name[STORE_DOMAIN_MAX + 1];
	struct store_tenant t;
	sqlite3_stmt *s;
	int rc;

	if (store_check_domain(domain, name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_DOMAIN_REMOVE);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, name) < 0)
		return store_dberr(st, err_r, "removing a domain");
	rc = store_change(st, s, "removing a domain", err_r);
	if (rc == 0) {
		store_seterr(err_r, "domain '%s' not found for tenant '%s'", name, t.name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_domain_set_verified(struct store *st, const char *domain, int verified, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if (store_check_domain(domain, name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	s = store_stmt(st, Q_DOMAIN_VERIFY);
	if (store_bind_text(s, 1, name) < 0 || store_bind_int(s, 2, verified != 0) < 0)
		return store_dberr(st, err_r, "verifying a domain");
	rc = store_change(st, s, "verifying a domain", err_r);
	if (rc == 0) {
		store_seterr(err_r, "domain '%s' not found", name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_domain_get(struct store *st, const char *domain, struct store_domain *d_r, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	/* Not a valid name: cannot be stored, so not found (a sender's
	 * domain comes from the network and may be anything). */
	if (store_check_domain(domain, name, err, sizeof err) < 0) {
		store_checkerr(err_r, err);
		return STORE_NOTFOUND;
	}
	s = store_stmt(st, Q_DOMAIN_GET);
	if (store_bind_text(s, 1, name) < 0)
		return store_dberr(st, err_r, "reading a domain");
	rc = store_get_one(st, s, store_row_domain, d_r, "reading a domain", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "domain '%s' not found", name);
	return rc;
}

int store_domain_list(struct store *st, int64_t tenant_id, struct store_domain **list_r,
                      size_t *n_r, char **err_r)
{
	struct store_tenant t;
	sqlite3_stmt *s;
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (tenant_id == 0) {
		s = store_stmt(st, Q_DOMAIN_LIST_ALL);
	} else {
		if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
			return rc;
		s = store_stmt(st, Q_DOMAIN_LIST);
		if (store_bind_int(s, 1, tenant_id) < 0)
			return store_dberr(st, err_r, "listing domains");
	}
	rc = store_get_all(st, s, store_row_domain, sizeof **list_r, &list, n_r, "listing domains",
	                   err_r);
	*list_r = list;
	return rc;
}

/* ---- trusted networks ---------------------------------------------------- */

static int store_row_owner(sqlite3_stmt *s, void *item)
{
	*(int64_t *)item = sqlite3_column_int64(s, 0);
	return 0;
}

int store_network_add(struct store *st, int64_t tenant_id, const char *cidr, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], net[STORE_CIDR_MAX + 1];
	struct store_tenant t;
	int64_t owner;
	sqlite3_stmt *s;
	int rc;

	if (store_check_cidr(cidr, net, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_NET_ADD);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, net) < 0 ||
	    store_bind_int(s, 3, util_wall_seconds()) < 0)
		return store_dberr(st, err_r, "adding a network");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		s = store_stmt(st, Q_NET_OWNER);
		if (store_bind_text(s, 1, net) < 0)
			return store_dberr(st, err_r, "adding a network");
		rc = store_get_one(st, s, store_row_owner, &owner, "adding a network", err_r);
		if (rc < 0)
			return -1;
		if (rc == 0 && owner != tenant_id)
			store_seterr(err_r, "network '%s' belongs to another tenant", net);
		else
			store_seterr(err_r, "network '%s' already exists for tenant '%s'", net,
			             t.name);
		return STORE_EXISTS;
	}
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		store_seterr(err_r, "tenant id %lld not found", (long long)tenant_id);
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding a network");
	return 0;
}

int store_network_remove(struct store *st, int64_t tenant_id, const char *cidr, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX], net[STORE_CIDR_MAX + 1];
	struct store_tenant t;
	sqlite3_stmt *s;
	int rc;

	if (store_check_cidr(cidr, net, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	s = store_stmt(st, Q_NET_REMOVE);
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, net) < 0)
		return store_dberr(st, err_r, "removing a network");
	rc = store_change(st, s, "removing a network", err_r);
	if (rc == 0) {
		store_seterr(err_r, "network '%s' not found for tenant '%s'", net, t.name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_network_list(struct store *st, int64_t tenant_id, struct store_network **list_r,
                       size_t *n_r, char **err_r)
{
	struct store_tenant t;
	sqlite3_stmt *s;
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (tenant_id == 0) {
		s = store_stmt(st, Q_NET_LIST_ALL);
	} else {
		if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
			return rc;
		s = store_stmt(st, Q_NET_LIST);
		if (store_bind_int(s, 1, tenant_id) < 0)
			return store_dberr(st, err_r, "listing networks");
	}
	rc = store_get_all(st, s, store_row_network, sizeof **list_r, &list, n_r,
	                   "listing networks", err_r);
	*list_r = list;
	return rc;
}
