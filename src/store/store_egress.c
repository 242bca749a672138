/*
 * store_egress: port-25 egress exceptions, tenants' requests for one, and
 * the audit log of every change to either (issue 6, docs/egress.md).
 *
 * An exception is never deleted: revoking stamps it, expiry is a time, so
 * the table is its own history.  Every change writes its audit row in the
 * same transaction (BEGIN IMMEDIATE ... COMMIT), so the log cannot miss a
 * change nor record one that did not happen.  The kernel enforces expiry
 * (set element timeouts); the store only answers "active at time t".
 */
#include "store/store.h"
#include "store/store_check.h"
#include "store/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define X_COLS                                                                                     \
	"x.id, x.tenant_id, t.name, x.cidr, x.reason, x.created, x.created_by, x.expires, "        \
	"x.revoked, x.revoked_by, x.request_id"
#define X_FROM " FROM egress_exceptions x JOIN tenants t ON t.id = x.tenant_id"
#define X_ACTIVE " x.revoked = 0 AND (x.expires = 0 OR x.expires > ?2)"
#define R_COLS                                                                                     \
	"r.id, r.tenant_id, t.name, r.cidr, r.reason, r.duration, r.created, r.created_by, "       \
	"r.state, r.decided, r.decided_by, r.note, r.exception_id"
#define R_FROM " FROM egress_requests r JOIN tenants t ON t.id = r.tenant_id"

static const char sql_x_add[] =
    "INSERT INTO egress_exceptions (tenant_id, cidr, reason, created, created_by, expires,"
    " request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_x_revoke[] =
    "UPDATE egress_exceptions SET revoked = ?2, revoked_by = ?3"
    " WHERE id = ?1 AND revoked = 0 AND (expires = 0 OR expires > ?2)";
static const char sql_x_get[] = "SELECT " X_COLS X_FROM " WHERE x.id = ?1";
static const char sql_x_list_active[] =
    "SELECT " X_COLS X_FROM " WHERE (?1 = 0 OR x.tenant_id = ?1) AND" X_ACTIVE " ORDER BY x.id";
static const char sql_x_list_all[] =
    "SELECT " X_COLS X_FROM " WHERE (?1 = 0 OR x.tenant_id = ?1) ORDER BY x.id";
static const char sql_r_add[] =
    "INSERT INTO egress_requests (tenant_id, cidr, reason, duration, created, created_by)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
static const char sql_r_get[] = "SELECT " R_COLS R_FROM " WHERE r.id = ?1";
static const char sql_r_decide[] =
    "UPDATE egress_requests SET state = ?2, decided = ?3, decided_by = ?4, note = ?5,"
    " exception_id = ?6 WHERE id = ?1 AND state = 0";
static const char sql_r_list[] =
    "SELECT " R_COLS R_FROM " WHERE (?1 = 0 OR r.tenant_id = ?1) AND (?2 = 0 OR r.state = 0)"
    " ORDER BY r.id";
static const char sql_audit_add[] =
    "INSERT INTO egress_audit (at, actor, action, tenant_id, cidr, ref, detail)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_audit_list[] =
    "SELECT a.id, a.at, a.actor, a.action, a.tenant_id, coalesce(t.name, ''), a.cidr, a.ref,"
    " a.detail FROM egress_audit a LEFT JOIN tenants t ON t.id = a.tenant_id"
    " WHERE (?1 = 0 OR a.tenant_id = ?1) ORDER BY a.id DESC LIMIT ?2";

/* ---- checks ----------------------------------------------------------------- */

/* 1..max printable ASCII characters */
static int store_egress_text(const char *what, const char *s, size_t max, int empty_ok,
                             char **err_r)
{
	size_t len = s ? strnlen(s, max + 1) : 0;

	if (len == 0 && !empty_ok)
		return store_checkerr(err_r, what[0] == 'r' ? "the reason is empty"
		                                            : "the actor is empty");
	if (len > max) {
		store_seterr(err_r, "the %s is longer than %zu characters", what, max);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) {
			store_seterr(err_r, "the %s has a character that is not printable ASCII",
			             what);
			return -1;
		}
	return 0;
}

static int store_egress_check(const char *cidr, char net[STORE_CIDR_MAX + 1], const char *reason,
                              const char *actor, char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];

	if (store_check_cidr(cidr, net, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	if (store_egress_text("reason", reason, STORE_EGRESS_REASON_MAX, 0, err_r) < 0 ||
	    store_egress_text("actor", actor, STORE_EGRESS_ACTOR_MAX, 0, err_r) < 0)
		return -1;
	return 0;
}

/* ---- rows ------------------------------------------------------------------ */

static int store_row_exception(sqlite3_stmt *s, void *item)
{
	struct store_egress_exception *x = item;

	memset(x, 0, sizeof *x);
	x->id = sqlite3_column_int64(s, 0);
	x->tenant_id = sqlite3_column_int64(s, 1);
	x->created = sqlite3_column_int64(s, 5);
	x->expires = sqlite3_column_int64(s, 7);
	x->revoked = sqlite3_column_int64(s, 8);
	x->request_id = sqlite3_column_int64(s, 10);
	if (store_col_text(s, 2, x->tenant, sizeof x->tenant) < 0 ||
	    store_col_text(s, 3, x->cidr, sizeof x->cidr) < 0 ||
	    store_col_text(s, 4, x->reason, sizeof x->reason) < 0 ||
	    store_col_text(s, 6, x->created_by, sizeof x->created_by) < 0 ||
	    store_col_text(s, 9, x->revoked_by, sizeof x->revoked_by) < 0)
		return -1;
	return 0;
}

static int store_row_request(sqlite3_stmt *s, void *item)
{
	struct store_egress_request *r = item;

	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(s, 0);
	r->tenant_id = sqlite3_column_int64(s, 1);
	r->duration = sqlite3_column_int64(s, 5);
	r->created = sqlite3_column_int64(s, 6);
	r->state = sqlite3_column_int(s, 8);
	r->decided = sqlite3_column_int64(s, 9);
	r->exception_id = sqlite3_column_int64(s, 12);
	if (store_col_text(s, 2, r->tenant, sizeof r->tenant) < 0 ||
	    store_col_text(s, 3, r->cidr, sizeof r->cidr) < 0 ||
	    store_col_text(s, 4, r->reason, sizeof r->reason) < 0 ||
	    store_col_text(s, 7, r->created_by, sizeof r->created_by) < 0 ||
	    store_col_text(s, 10, r->decided_by, sizeof r->decided_by) < 0 ||
	    store_col_text(s, 11, r->note, sizeof r->note) < 0)
		return -1;
	return 0;
}

static int store_row_audit(sqlite3_stmt *s, void *item)
{
	struct store_egress_audit *a = item;

	memset(a, 0, sizeof *a);
	a->id = sqlite3_column_int64(s, 0);
	a->at = sqlite3_column_int64(s, 1);
	a->tenant_id = sqlite3_column_int64(s, 4);
	a->ref = sqlite3_column_int64(s, 7);
	if (store_col_text(s, 2, a->actor, sizeof a->actor) < 0 ||
	    store_col_text(s, 3, a->action, sizeof a->action) < 0 ||
	    store_col_text(s, 5, a->tenant, sizeof a->tenant) < 0 ||
	    store_col_text(s, 6, a->cidr, sizeof a->cidr) < 0 ||
	    store_col_text(s, 8, a->detail, sizeof a->detail) < 0)
		return -1;
	return 0;
}

/* ---- transactions and the audit row ---------------------------------------- */

static int store_egress_begin(struct store *st, char **err_r)
{
	return store_exec(st, "BEGIN IMMEDIATE", "starting an egress change", err_r);
}

static int store_egress_commit(struct store *st, int rc, char **err_r)
{
	if (rc == 0)
		return store_exec(st, "COMMIT", "committing an egress change", err_r);
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int store_egress_audit(struct store *st, int64_t at, const char *actor, const char *action,
                              int64_t tenant_id, const char *cidr, int64_t ref, const char *detail,
                              char **err_r)
{
	char cut[STORE_EGRESS_REASON_MAX + 1];
	sqlite3_stmt *s = store_sql_stmt(st, sql_audit_add, err_r);

	if (s == NULL)
		return -1;
	util_strlcpy(cut, detail ? detail : "", sizeof cut); /* a note cut for the log only */
	if (store_bind_int(s, 1, at) < 0 || store_bind_text(s, 2, actor) < 0 ||
	    store_bind_text(s, 3, action) < 0 || store_bind_int(s, 4, tenant_id) < 0 ||
	    store_bind_text(s, 5, cidr ? cidr : "") < 0 || store_bind_int(s, 6, ref) < 0 ||
	    store_bind_text(s, 7, cut) < 0 || store_write(s) != SQLITE_DONE)
		return store_dberr(st, err_r, "writing the egress audit log");
	return 0;
}

/* ---- exceptions --------------------------------------------------------------- */

static int store_egress_insert(struct store *st, int64_t tenant_id, const char *net,
                               const char *reason, int64_t now, int64_t expires, const char *actor,
                               int64_t request_id, int64_t *id_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_x_add, err_r);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, net) < 0 ||
	    store_bind_text(s, 3, reason) < 0 || store_bind_int(s, 4, now) < 0 ||
	    store_bind_text(s, 5, actor) < 0 || store_bind_int(s, 6, expires) < 0 ||
	    store_bind_int(s, 7, request_id) < 0)
		return store_dberr(st, err_r, "adding an egress exception");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		store_seterr(err_r, "tenant id %lld not found", (long long)tenant_id);
		return STORE_NOTFOUND;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding an egress exception");
	*id_r = sqlite3_last_insert_rowid(st->db);
	return store_egress_audit(st, now, actor, "allow", tenant_id, net, *id_r, reason, err_r);
}

int store_egress_exception_add(struct store *st, int64_t tenant_id, const char *cidr,
                               const char *reason, int64_t expires, const char *actor,
                               int64_t *id_r, char **err_r)
{
	char net[STORE_CIDR_MAX + 1];
	struct store_tenant t;
	int64_t now = util_wall_seconds(), id = 0;
	int rc;

	if (store_egress_check(cidr, net, reason, actor, err_r) < 0)
		return -1;
	if (expires != 0 && expires <= now)
		return store_checkerr(err_r, "the expiry is in the past");
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	rc = store_egress_insert(st, tenant_id, net, reason, now, expires, actor, 0, &id, err_r);
	if ((rc = store_egress_commit(st, rc, err_r)) == 0 && id_r != NULL)
		*id_r = id;
	return rc;
}

int store_egress_exception_get(struct store *st, int64_t id, struct store_egress_exception *x_r,
                               char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_x_get, err_r);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, id) < 0)
		return store_dberr(st, err_r, "reading an egress exception");
	rc = store_get_one(st, s, store_row_exception, x_r, "reading an egress exception", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "egress exception %lld not found", (long long)id);
	return rc;
}

/* Revoke one active exception inside a transaction: 1 done, 0 none. */
static int store_egress_revoke_one(struct store *st, const struct store_egress_exception *x,
                                   int64_t now, const char *actor, const char *why, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_x_revoke, err_r);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, x->id) < 0 || store_bind_int(s, 2, now) < 0 ||
	    store_bind_text(s, 3, actor) < 0)
		return store_dberr(st, err_r, "revoking an egress exception");
	if ((rc = store_change(st, s, "revoking an egress exception", err_r)) <= 0)
		return rc;
	if (store_egress_audit(st, now, actor, "revoke", x->tenant_id, x->cidr, x->id, why, err_r) <
	    0)
		return -1;
	return 1;
}

int store_egress_exception_revoke(struct store *st, int64_t id, const char *actor, char **err_r)
{
	struct store_egress_exception x = {0};
	int64_t now = util_wall_seconds();
	int rc;

	if (store_egress_text("actor", actor, STORE_EGRESS_ACTOR_MAX, 0, err_r) < 0)
		return -1;
	if ((rc = store_egress_exception_get(st, id, &x, err_r)) != 0)
		return rc;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	rc = store_egress_revoke_one(st, &x, now, actor, "", err_r);
	if (rc == 0) {
		store_seterr(err_r, "egress exception %lld is not active (revoked or expired)",
		             (long long)id);
		rc = STORE_NOTFOUND;
	} else if (rc == 1) {
		rc = 0;
	}
	return store_egress_commit(st, rc, err_r);
}

int store_egress_exception_revoke_tenant(struct store *st, int64_t tenant_id, const char *actor,
                                         const char *why, size_t *n_r, char **err_r)
{
	struct store_egress_exception *list = NULL;
	int64_t now = util_wall_seconds();
	size_t n = 0, done = 0;
	int rc;

	*n_r = 0;
	if (store_egress_text("actor", actor, STORE_EGRESS_ACTOR_MAX, 0, err_r) < 0)
		return -1;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	rc = store_egress_exception_list(st, tenant_id, 0, now, &list, &n, err_r);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		int r = store_egress_revoke_one(st, &list[i], now, actor, why, err_r);
		if (r < 0)
			rc = -1;
		else
			done += (size_t)r;
	}
	free(list);
	if ((rc = store_egress_commit(st, rc, err_r)) == 0)
		*n_r = done;
	return rc;
}

int store_egress_exception_list(struct store *st, int64_t tenant_id, int all, int64_t now,
                                struct store_egress_exception **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, all ? sql_x_list_all : sql_x_list_active, err_r);
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || (!all && store_bind_int(s, 2, now) < 0))
		return store_dberr(st, err_r, "listing egress exceptions");
	rc = store_get_all(st, s, store_row_exception, sizeof **list_r, &list, n_r,
	                   "listing egress exceptions", err_r);
	*list_r = list;
	return rc;
}

/* ---- requests ------------------------------------------------------------------- */

int store_egress_request_add(struct store *st, int64_t tenant_id, const char *cidr,
                             const char *reason, int64_t duration, const char *actor, int64_t *id_r,
                             char **err_r)
{
	char net[STORE_CIDR_MAX + 1];
	struct store_tenant t;
	int64_t now = util_wall_seconds(), id = 0;
	sqlite3_stmt *s;
	int rc;

	if (store_egress_check(cidr, net, reason, actor, err_r) < 0)
		return -1;
	if (duration < 0 || duration > 10LL * 365 * 86400)
		return store_checkerr(err_r, "the duration must be 0 (none) to 10 years");
	if ((rc = store_tenant_get_id(st, tenant_id, &t, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_r_add, err_r)) == NULL)
		return -1;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_text(s, 2, net) < 0 ||
	    store_bind_text(s, 3, reason) < 0 || store_bind_int(s, 4, duration) < 0 ||
	    store_bind_int(s, 5, now) < 0 || store_bind_text(s, 6, actor) < 0 ||
	    store_write(s) != SQLITE_DONE) {
		rc = store_dberr(st, err_r, "adding an egress request");
	} else {
		id = sqlite3_last_insert_rowid(st->db);
		rc = store_egress_audit(st, now, actor, "request", tenant_id, net, id, reason,
		                        err_r);
	}
	if ((rc = store_egress_commit(st, rc, err_r)) == 0 && id_r != NULL)
		*id_r = id;
	return rc;
}

int store_egress_request_get(struct store *st, int64_t id, struct store_egress_request *r_r,
                             char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_r_get, err_r);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, id) < 0)
		return store_dberr(st, err_r, "reading an egress request");
	rc = store_get_one(st, s, store_row_request, r_r, "reading an egress request", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "egress request %lld not found", (long long)id);
	return rc;
}

/* Mark a pending request decided, inside the caller's transaction. */
static int store_egress_decide(struct store *st, const struct store_egress_request *r, int state,
                               int64_t now, const char *actor, const char *note,
                               int64_t exception_id, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_r_decide, err_r);
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, r->id) < 0 || store_bind_int(s, 2, state) < 0 ||
	    store_bind_int(s, 3, now) < 0 || store_bind_text(s, 4, actor) < 0 ||
	    store_bind_text(s, 5, note ? note : "") < 0 || store_bind_int(s, 6, exception_id) < 0)
		return store_dberr(st, err_r, "deciding an egress request");
	rc = store_change(st, s, "deciding an egress request", err_r);
	if (rc == 0) {
		store_seterr(err_r, "egress request %lld is already decided", (long long)r->id);
		return STORE_EXISTS;
	}
	if (rc < 0)
		return -1;
	return store_egress_audit(st, now, actor,
	                          state == STORE_EGRESS_APPROVED ? "approve" : "deny", r->tenant_id,
	                          r->cidr, r->id, note ? note : "", err_r);
}

static int store_egress_pending(struct store *st, int64_t id, struct store_egress_request *r,
                                char **err_r)
{
	int rc = store_egress_request_get(st, id, r, err_r);

	if (rc != 0)
		return rc;
	if (r->state != STORE_EGRESS_PENDING) {
		store_seterr(err_r, "egress request %lld is already %s", (long long)id,
		             r->state == STORE_EGRESS_APPROVED ? "approved" : "denied");
		return STORE_EXISTS;
	}
	return 0;
}

int store_egress_request_approve(struct store *st, int64_t id, const char *actor,
                                 int64_t *exception_id_r, char **err_r)
{
	struct store_egress_request r = {0};
	int64_t now = util_wall_seconds(), xid = 0;
	char note[64];
	int rc;

	if (store_egress_text("actor", actor, STORE_EGRESS_ACTOR_MAX, 0, err_r) < 0)
		return -1;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	rc = store_egress_pending(st, id, &r, err_r);
	if (rc == 0)
		rc = store_egress_insert(st, r.tenant_id, r.cidr, r.reason, now,
		                         r.duration ? now + r.duration : 0, actor, r.id, &xid,
		                         err_r);
	snprintf(note, sizeof note, "exception %lld", (long long)xid);
	if (rc == 0)
		rc = store_egress_decide(st, &r, STORE_EGRESS_APPROVED, now, actor, note, xid,
		                         err_r);
	if ((rc = store_egress_commit(st, rc, err_r)) == 0 && exception_id_r != NULL)
		*exception_id_r = xid;
	return rc;
}

int store_egress_request_deny(struct store *st, int64_t id, const char *actor, const char *note,
                              char **err_r)
{
	struct store_egress_request r = {0};
	int rc;

	if (store_egress_text("actor", actor, STORE_EGRESS_ACTOR_MAX, 0, err_r) < 0 ||
	    store_egress_text("note", note, STORE_EGRESS_REASON_MAX, 1, err_r) < 0)
		return -1;
	if (store_egress_begin(st, err_r) < 0)
		return -1;
	rc = store_egress_pending(st, id, &r, err_r);
	if (rc == 0)
		rc = store_egress_decide(st, &r, STORE_EGRESS_DENIED, util_wall_seconds(), actor,
		                         note, 0, err_r);
	return store_egress_commit(st, rc, err_r);
}

int store_egress_request_list(struct store *st, int64_t tenant_id, int pending_only,
                              struct store_egress_request **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_r_list, err_r);
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_int(s, 2, pending_only != 0) < 0)
		return store_dberr(st, err_r, "listing egress requests");
	rc = store_get_all(st, s, store_row_request, sizeof **list_r, &list, n_r,
	                   "listing egress requests", err_r);
	*list_r = list;
	return rc;
}

int store_egress_audit_list(struct store *st, int64_t tenant_id, size_t limit,
                            struct store_egress_audit **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_audit_list, err_r);
	void *list;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_int(s, 2, (int64_t)limit) < 0)
		return store_dberr(st, err_r, "reading the egress audit log");
	rc = store_get_all(st, s, store_row_audit, sizeof **list_r, &list, n_r,
	                   "reading the egress audit log", err_r);
	*list_r = list;
	return rc;
}
