/* What the store tests share: a store file in a folder of its own,
 * opened, closed and removed, and files of an older schema made by hand
 * to show that they migrate.  Include after <cmocka.h>. */
#ifndef SLUICE_TEST_STORE_FIXTURE_H
#define SLUICE_TEST_STORE_FIXTURE_H

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_int.h" /* store_migrations[] */

struct store_fixture {
	char dir[64];
	char path[128]; /* the SQLite file */
	char uri[160];  /* "sqlite:" path, for store_open() */
	struct store *st;
};

/* A fresh folder /tmp/sluice-test-NAME-XXXXXX; nothing opened yet.
 * 0, -1 (for a cmocka setup to return). */
static inline int store_fixture_setup(struct store_fixture *sf, const char *name)
{
	memset(sf, 0, sizeof *sf);
	snprintf(sf->dir, sizeof sf->dir, "/tmp/sluice-test-%s-XXXXXX", name);
	if (mkdtemp(sf->dir) == NULL)
		return -1;
	snprintf(sf->path, sizeof sf->path, "%s/store.db", sf->dir);
	snprintf(sf->uri, sizeof sf->uri, "sqlite:%s", sf->path);
	return 0;
}

static inline void store_fixture_open(struct store_fixture *sf)
{
	char *err = NULL;

	if (store_open(sf->uri, &sf->st, &err) != 0)
		fail_msg("store_open: %s", err ? err : "?");
}

/* Close the store and remove the file, its WAL and the folder. */
static inline void store_fixture_teardown(struct store_fixture *sf)
{
	static const char *const sfx[] = {"", "-wal", "-shm"};
	char p[200];

	store_close(&sf->st);
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", sf->path, sfx[i]);
		unlink(p);
	}
	rmdir(sf->dir);
}

/* SQL run on the file directly (sqlite3), as another program would. */
static inline void store_fixture_sql(struct store_fixture *sf, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(sf->path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("sql: %s", msg ? msg : "?");
	sqlite3_close(db);
}

/* A file as sluice made it at schema version (the first version steps of
 * store_migrations[]), with sql run after them (rows of that time). */
static inline void store_fixture_old_file(struct store_fixture *sf, size_t version,
                                          const char *sql)
{
	char pragma[64];

	assert_true(store_migrations_count > version);
	for (size_t i = 0; i < version; i++)
		store_fixture_sql(sf, store_migrations[i]);
	if (sql != NULL)
		store_fixture_sql(sf, sql);
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu;", version);
	store_fixture_sql(sf, pragma);
}

#endif
