/*
 * store_contain: containment (policy/contain.c, issue 4) as the store
 * keeps it: each login's or tenant's level with its reason and who set
 * it, the log of every change, and the behaviour baselines, so that a
 * restart neither forgets a suspension nor starts every tenant from an
 * empty baseline.  A level change and its event are one transaction.
 */
#include "store/store.h"
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define STATE_COLS "kind, subject_id, tenant_id, level, reason, by, since"

static const char sql_state_set[] =
    "INSERT INTO contain_state (" STATE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    " ON CONFLICT (kind, subject_id) DO UPDATE SET tenant_id = excluded.tenant_id,"
    " level = excluded.level, reason = excluded.reason, by = excluded.by,"
    " since = excluded.since";
static const char sql_state_clear[] = "DELETE FROM contain_state WHERE kind = ?1 AND subject_id = ?2";
static const char sql_event_add[] =
    "INSERT INTO contain_events (kind, subject_id, tenant_id, level, reason, by, at)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
static const char sql_state_get[] =
    "SELECT " STATE_COLS " FROM contain_state WHERE kind = ?1 AND subject_id = ?2";
static const char sql_state_list[] =
    "SELECT " STATE_COLS " FROM contain_state WHERE ?1 = 0 OR tenant_id = ?1"
    " ORDER BY tenant_id, kind, subject_id";
static const char sql_events[] =
    "SELECT kind, subject_id, tenant_id, level, reason, by, at FROM contain_events"
    " WHERE tenant_id = ?1 AND at >= ?2 ORDER BY at, id";
static const char sql_baseline_put[] =
    "INSERT INTO contain_baseline"
    " (kind, subject_id, tenant_id, rcpts_per_hour, hours, domains, updated)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    " ON CONFLICT (kind, subject_id) DO UPDATE SET tenant_id = excluded.tenant_id,"
    " rcpts_per_hour = excluded.rcpts_per_hour, hours = excluded.hours,"
    " domains = excluded.domains, updated = excluded.updated";
static const char sql_baseline_all[] =
    "SELECT b.kind, b.subject_id, b.tenant_id, b.rcpts_per_hour, b.hours, b.domains"
    " FROM contain_baseline b ORDER BY b.kind, b.subject_id";

static int contain_check(const struct store_contain_state *s, char **err_r)
{
	if ((s->kind != 1 && s->kind != 2) || s->level < 0 || s->level > 3 || s->subject_id <= 0 ||
	    s->tenant_id <= 0 || s->by[0] == '\0')
		return store_checkerr(err_r, "containment: bad kind, level, subject or author");
	return 0;
}

static int contain_row_state(sqlite3_stmt *s, void *item)
{
	struct store_contain_state *c = item;

	memset(c, 0, sizeof *c);
	c->kind = sqlite3_column_int(s, 0);
	c->subject_id = sqlite3_column_int64(s, 1);
	c->tenant_id = sqlite3_column_int64(s, 2);
	c->level = sqlite3_column_int(s, 3);
	c->since = sqlite3_column_int64(s, 6);
	if (store_col_text(s, 4, c->reason, sizeof c->reason) < 0)
		return -1;
	return store_col_text(s, 5, c->by, sizeof c->by);
}

static int contain_bind_state(sqlite3_stmt *s, const struct store_contain_state *c, int64_t when)
{
	return store_bind_int(s, 1, c->kind) < 0 || store_bind_int(s, 2, c->subject_id) < 0 ||
			   store_bind_int(s, 3, c->tenant_id) < 0 || store_bind_int(s, 4, c->level) < 0 ||
			   store_bind_text(s, 5, c->reason) < 0 || store_bind_text(s, 6, c->by) < 0 ||
			   store_bind_int(s, 7, when) < 0
		   ? -1
		   : 0;
}

int store_contain_set(struct store *st, const struct store_contain_state *c, char **err_r)
{
	int64_t now = c->since ? c->since : util_wall_seconds();
	sqlite3_stmt *s;

	if (contain_check(c, err_r) < 0)
		return -1;
	if (store_exec(st, "BEGIN IMMEDIATE", "starting a containment change", err_r) < 0)
		return -1;
	if (c->level == 0) {
		if ((s = store_sql_stmt(st, sql_state_clear, err_r)) == NULL)
			goto fail;
		if (store_bind_int(s, 1, c->kind) < 0 || store_bind_int(s, 2, c->subject_id) < 0 ||
		    store_change(st, s, "clearing a containment level", err_r) < 0)
			goto fail;
	} else {
		if ((s = store_sql_stmt(st, sql_state_set, err_r)) == NULL)
			goto fail;
		if (contain_bind_state(s, c, now) < 0 || store_write(s) != SQLITE_DONE) {
			store_dberr(st, err_r, "setting a containment level");
			goto fail;
		}
	}
	if ((s = store_sql_stmt(st, sql_event_add, err_r)) == NULL)
		goto fail;
	if (contain_bind_state(s, c, now) < 0 || store_write(s) != SQLITE_DONE) {
		store_dberr(st, err_r, "logging a containment change");
		goto fail;
	}
	return store_exec(st, "COMMIT", "committing a containment change", err_r);
fail:
	store_exec(st, "ROLLBACK", "rolling back a containment change", NULL);
	return -1;
}

int store_contain_get(struct store *st, int kind, int64_t subject_id,
		      struct store_contain_state *c_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_state_get, err_r);

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, kind) < 0 || store_bind_int(s, 2, subject_id) < 0)
		return store_dberr(st, err_r, "reading a containment level");
	return store_get_one(st, s, contain_row_state, c_r, "reading a containment level", err_r);
}

int store_contain_list(struct store *st, int64_t tenant_id, struct store_contain_state **list_r,
		       size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_state_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0)
		return store_dberr(st, err_r, "listing containment levels");
	return store_get_all(st, s, contain_row_state, sizeof **list_r, (void **)list_r, n_r,
			     "listing containment levels", err_r);
}

int store_contain_events(struct store *st, int64_t tenant_id, int64_t since,
			 struct store_contain_state **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_events, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, tenant_id) < 0 || store_bind_int(s, 2, since) < 0)
		return store_dberr(st, err_r, "reading containment events");
	return store_get_all(st, s, contain_row_state, sizeof **list_r, (void **)list_r, n_r,
			     "reading containment events", err_r);
}

/* Hashes are stored little-endian, 8 bytes each, whatever the host. */
static void contain_put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t contain_get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int store_contain_baselines_save(struct store *st, const struct store_contain_baseline *b,
				 size_t n, char **err_r)
{
	unsigned char *blob = NULL;
	sqlite3_stmt *s = NULL;
	int64_t now = util_wall_seconds();

	if (store_exec(st, "BEGIN IMMEDIATE", "starting a baseline save", err_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t nd = b[i].ndomains;

		if ((b[i].kind != 1 && b[i].kind != 2) || b[i].tenant_id <= 0 ||
		    nd > STORE_CONTAIN_DOMAINS_MAX || !(b[i].rcpts_per_hour >= 0)) {
			store_checkerr(err_r, "containment: bad baseline");
			goto fail;
		}
		free(blob);
		if ((blob = malloc(nd * 8 + 1)) == NULL) {
			store_checkerr(err_r, "store: out of memory");
			goto fail;
		}
		for (size_t k = 0; k < nd; k++)
			contain_put_u64(blob + 8 * k, b[i].domains[k]);
		if ((s = store_sql_stmt(st, sql_baseline_put, err_r)) == NULL)
			goto fail;
		if (store_bind_int(s, 1, b[i].kind) < 0 || store_bind_int(s, 2, b[i].subject_id) < 0 ||
		    store_bind_int(s, 3, b[i].tenant_id) < 0 ||
		    sqlite3_bind_double(s, 4, b[i].rcpts_per_hour) != SQLITE_OK ||
		    store_bind_int(s, 5, b[i].hours) < 0 ||
		    sqlite3_bind_blob(s, 6, blob, (int)(nd * 8), SQLITE_TRANSIENT) != SQLITE_OK ||
		    store_bind_int(s, 7, now) < 0 || store_write(s) != SQLITE_DONE) {
			store_dberr(st, err_r, "saving a baseline");
			goto fail;
		}
	}
	free(blob);
	return store_exec(st, "COMMIT", "committing baselines", err_r);
fail:
	free(blob);
	store_exec(st, "ROLLBACK", "rolling back baselines", NULL);
	return -1;
}

static int contain_row_baseline(sqlite3_stmt *s, void *item)
{
	struct store_contain_baseline *b = item;
	const unsigned char *blob;
	int len;

	memset(b, 0, sizeof *b);
	b->kind = sqlite3_column_int(s, 0);
	b->subject_id = sqlite3_column_int64(s, 1);
	b->tenant_id = sqlite3_column_int64(s, 2);
	b->rcpts_per_hour = sqlite3_column_double(s, 3);
	b->hours = (uint32_t)sqlite3_column_int64(s, 4);
	blob = sqlite3_column_blob(s, 5);
	len = sqlite3_column_bytes(s, 5);
	if (len < 0 || len % 8 != 0 || (size_t)len / 8 > STORE_CONTAIN_DOMAINS_MAX)
		return -1;
	b->ndomains = (size_t)len / 8;
	if (b->ndomains > 0) {
		if (blob == NULL || (b->domains = calloc(b->ndomains, sizeof *b->domains)) == NULL)
			return -1;
		for (size_t k = 0; k < b->ndomains; k++)
			b->domains[k] = contain_get_u64(blob + 8 * k);
	}
	return 0;
}

int store_contain_baselines_load(struct store *st, struct store_contain_baseline **list_r,
				 size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_baseline_all, err_r);
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	rc = store_get_all(st, s, contain_row_baseline, sizeof **list_r, (void **)list_r, n_r,
			   "loading baselines", err_r);
	return rc;
}

void store_contain_baselines_free(struct store_contain_baseline *list, size_t n)
{
	for (size_t i = 0; list != NULL && i < n; i++)
		free(list[i].domains);
	free(list);
}
