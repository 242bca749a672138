/*
 * store_limit_state: the rate limits' GCRA state (policy/limits.c), so
 * a restart does not give every tenant and login a fresh burst.  A row
 * is a rate's theoretical arrival time; one whose time has passed means
 * the rate is back to its full burst and is not kept.
 */
#include "store/store.h"
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

static const char sql_state_put[] =
    "INSERT INTO limit_state (kind, subject_id, name, tat_us) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (kind, subject_id, name) DO UPDATE SET tat_us = excluded.tat_us";
static const char sql_state_drop[] =
    "DELETE FROM limit_state WHERE kind = ?1 AND subject_id = ?2 AND name = ?3";
static const char sql_state_expire[] = "DELETE FROM limit_state WHERE tat_us <= ?1";
static const char sql_state_load[] =
    "SELECT kind, subject_id, name, tat_us FROM limit_state WHERE tat_us > ?1"
    " ORDER BY kind, subject_id, name";

static int limit_state_valid(const struct store_limit_state *r)
{
	size_t len = strnlen(r->name, sizeof r->name);

	return (r->kind == 1 || r->kind == 2) && r->subject_id > 0 && len > 0 &&
	       len < sizeof r->name;
}

int store_limit_state_save(struct store *st, const struct store_limit_state *rows, size_t n,
			   int64_t now_us, char **err_r)
{
	sqlite3_stmt *s;

	for (size_t i = 0; i < n; i++)
		if (!limit_state_valid(&rows[i]))
			return store_checkerr(err_r, "limits: bad rate state");
	if (store_exec(st, "BEGIN IMMEDIATE", "starting a rate state save", err_r) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int keep = rows[i].tat_us > now_us;

		if ((s = store_sql_stmt(st, keep ? sql_state_put : sql_state_drop, err_r)) == NULL)
			goto fail;
		if (store_bind_int(s, 1, rows[i].kind) < 0 ||
		    store_bind_int(s, 2, rows[i].subject_id) < 0 ||
		    store_bind_text(s, 3, rows[i].name) < 0 ||
		    (keep && store_bind_int(s, 4, rows[i].tat_us) < 0) ||
		    store_write(s) != SQLITE_DONE) {
			store_dberr(st, err_r, "saving a rate state");
			goto fail;
		}
	}
	if ((s = store_sql_stmt(st, sql_state_expire, err_r)) == NULL)
		goto fail;
	if (store_bind_int(s, 1, now_us) < 0 || store_write(s) != SQLITE_DONE) {
		store_dberr(st, err_r, "dropping passed rate states");
		goto fail;
	}
	return store_exec(st, "COMMIT", "committing rate states", err_r);
fail:
	store_exec(st, "ROLLBACK", "rolling back rate states", NULL);
	return -1;
}

static int limit_state_row(sqlite3_stmt *s, void *item)
{
	struct store_limit_state *r = item;

	memset(r, 0, sizeof *r);
	r->kind = sqlite3_column_int(s, 0);
	r->subject_id = sqlite3_column_int64(s, 1);
	if (store_col_text(s, 2, r->name, sizeof r->name) < 0)
		return -1;
	r->tat_us = sqlite3_column_int64(s, 3);
	return 0;
}

int store_limit_state_load(struct store *st, int64_t now_us, struct store_limit_state **list_r,
			   size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_state_load, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	store_bind_int(s, 1, now_us);
	return store_get_all(st, s, limit_state_row, sizeof **list_r, (void **)list_r, n_r,
			     "loading rate states", err_r);
}
