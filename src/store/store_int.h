/*
 * store_int: what the SQLite back-end's files share.  store_sqlite.c
 * holds the handle, the schema and the tenants/credentials/domains/
 * networks tables; each further area (DKIM keys, egress exceptions,
 * policy state...) lives in a store_<area>.c of its own that adds its
 * tables as a step of store_migrations[] and prepares its queries
 * through store_sql_stmt().
 */
#ifndef SLUICE_STORE_INT_H
#define SLUICE_STORE_INT_H

#include "store/store.h"
#include "util/util.h"

#include <sqlite3.h>

#define STORE_CACHE_MAX 96 /* statements prepared through store_sql_stmt() */

struct store_cached {
	const char *sql; /* compared by address: a static string of one file */
	sqlite3_stmt *stmt;
};

struct store {
	sqlite3 *db;
	char *path;
	sqlite3_stmt **stmt;          /* store_sqlite.c's own, by enum */
	struct store_cached cache[STORE_CACHE_MAX];
	size_t ncache;
};

/* Schema steps: store_migrations[i] takes a file from version i to
 * version i + 1 (version 0 is an empty file).  Each step is SQL run in
 * the schema transaction; it must not set user_version (store_open does).
 * Append new steps at the end; never edit a step that has shipped. */
extern const char *const store_migrations[];
extern const size_t store_migrations_count;

void store_seterr(char **err_r, const char *fmt, ...) UTIL_PRINTF(2, 3);
/* A database failure: "store PATH: DOING: sqlite's message"; returns -1. */
int store_dberr(struct store *st, char **err_r, const char *doing);
/* A caller's error text as the error; returns -1. */
int store_checkerr(char **err_r, const char *msg);

/* The prepared statement for a static SQL string, reset and unbound,
 * ready for binding; prepared on first use and kept until store_close.
 * NULL (with *err_r) when it does not prepare. */
sqlite3_stmt *store_sql_stmt(struct store *st, const char *sql, char **err_r);
void store_done(sqlite3_stmt *s);
int store_bind_text(sqlite3_stmt *s, int i, const char *v);
int store_bind_int(sqlite3_stmt *s, int i, int64_t v);
/* Run a bound statement that returns no rows and reset it: SQLITE_DONE or
 * the extended code of the failure (SQLITE_CONSTRAINT_UNIQUE...). */
int store_write(sqlite3_stmt *s);
/* Run a bound UPDATE or DELETE: 1 when it matched a row, 0 when none, -1. */
int store_change(struct store *st, sqlite3_stmt *s, const char *doing, char **err_r);
/* Copy a text column; a value that does not fit is an error, not cut. */
int store_col_text(sqlite3_stmt *s, int col, char *dst, size_t size);
int store_exec(struct store *st, const char *sql, const char *doing, char **err_r);

typedef int store_row_fn(sqlite3_stmt *s, void *item);
/* The one row of a bound query: 0, STORE_NOTFOUND (no error text), -1. */
int store_get_one(struct store *st, sqlite3_stmt *s, store_row_fn *read, void *item,
                  const char *doing, char **err_r);
/* Every row of a bound query into a malloc'd array of items of size. */
int store_get_all(struct store *st, sqlite3_stmt *s, store_row_fn *read, size_t size,
                  void **list_r, size_t *n_r, const char *doing, char **err_r);

#endif
