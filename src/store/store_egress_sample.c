/*
 * store_egress_sample: the egress block's blocked-attempt counts, sampled
 * from the kernel by `sluice egress sample` (root, every minute) for
 * sluiced, which runs without the rights to read them and feeds them to
 * the tenants' containment score (issue 6, docs/egress.md).
 *
 * The kernel's counters are per source address and cumulative since the
 * source entered the table; they start again from 0 when the kernel
 * forgets the table (a reboot, a flush) or a quiet source times out of
 * it.  So the last count of each source is kept (egress_counters), and a
 * sample stores the rise since then: the difference, or the whole count
 * when it went down (it restarted) or the source is new.  A source no
 * longer listed loses its row, so its return counts from 0.  The rises
 * are summed per tenant into one egress_samples row each (attempts, and
 * the addresses that rose), all in one transaction; sluiced reads the rows
 * it has not seen yet by id.  Samples older than STORE_EGRESS_SAMPLE_KEEP
 * are dropped as new ones come.
 */
#include "store/store.h"
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define STORE_EGRESS_SAMPLE_KEEP (30 * 86400) /* seconds a sample row is kept */

static const char sql_counter_get[] = "SELECT packets FROM egress_counters WHERE addr = ?1";
static const char sql_counter_put[] =
    "INSERT INTO egress_counters (addr, packets, seen) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (addr) DO UPDATE SET packets = excluded.packets, seen = excluded.seen";
static const char sql_counter_gone[] = "DELETE FROM egress_counters WHERE seen <> ?1";
static const char sql_sample_add[] =
    "INSERT INTO egress_samples (at, tenant_id, attempts, sources) VALUES (?1, ?2, ?3, ?4)";
static const char sql_sample_prune[] = "DELETE FROM egress_samples WHERE at < ?1";
static const char sql_sample_list[] =
    "SELECT s.id, s.at, s.tenant_id, t.name, s.attempts, s.sources FROM egress_samples s"
    " JOIN tenants t ON t.id = s.tenant_id WHERE s.id > ?1 AND s.at >= ?2 ORDER BY s.id"
    " LIMIT ?3";

/* one source's rise, to sum per tenant */
struct sample_rise {
	int64_t tenant_id;
	uint64_t rise;
};

static int sample_rise_cmp(const void *a, const void *b)
{
	const struct sample_rise *x = a, *y = b;

	return x->tenant_id < y->tenant_id ? -1 : x->tenant_id > y->tenant_id;
}

/* The rise of one source since its last count; writes its new count. */
static int sample_source(struct store *st, const struct store_egress_count *c, int64_t at,
                         uint64_t *rise_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_counter_get, err_r);
	int64_t packets = c->packets > INT64_MAX ? INT64_MAX : (int64_t)c->packets;
	int rc;

	if (s == NULL)
		return -1;
	if (store_bind_text(s, 1, c->addr) < 0)
		return store_dberr(st, err_r, "reading an egress counter");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		int64_t last = sqlite3_column_int64(s, 0);
		/* went down: the kernel started it again from 0 */
		*rise_r = packets >= last ? (uint64_t)(packets - last) : (uint64_t)packets;
	} else if (rc == SQLITE_DONE) {
		*rise_r = (uint64_t)packets;
	} else {
		store_done(s);
		return store_dberr(st, err_r, "reading an egress counter");
	}
	store_done(s);
	if ((s = store_sql_stmt(st, sql_counter_put, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, c->addr) < 0 || store_bind_int(s, 2, packets) < 0 ||
	    store_bind_int(s, 3, at) < 0 || store_write(s) != SQLITE_DONE)
		return store_dberr(st, err_r, "writing an egress counter");
	return 0;
}

static int sample_write(struct store *st, int64_t at, int64_t tenant_id, uint64_t attempts,
                        uint32_t sources, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_sample_add, err_r);

	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, at) < 0 || store_bind_int(s, 2, tenant_id) < 0 ||
	    store_bind_int(s, 3, attempts > INT64_MAX ? INT64_MAX : (int64_t)attempts) < 0 ||
	    store_bind_int(s, 4, sources) < 0 || store_write(s) != SQLITE_DONE)
		return store_dberr(st, err_r, "writing an egress sample");
	return 0;
}

int store_egress_sample_add(struct store *st, const struct store_egress_count *counts, size_t n,
                            int64_t at, size_t *nsamples_r, char **err_r)
{
	struct sample_rise *rises = NULL;
	sqlite3_stmt *s;
	size_t nrises = 0, nsamples = 0;

	if (nsamples_r != NULL)
		*nsamples_r = 0;
	if (at <= 0)
		return store_checkerr(err_r, "egress sample: bad time");
	for (size_t i = 0; i < n; i++) {
		size_t len = strnlen(counts[i].addr, sizeof counts[i].addr);
		if (len == 0 || len >= sizeof counts[i].addr || counts[i].tenant_id < 0)
			return store_checkerr(err_r, "egress sample: bad source address or tenant");
	}
	if (n > 0 && (rises = calloc(n, sizeof *rises)) == NULL)
		return store_checkerr(err_r, "egress sample: out of memory");
	if (store_exec(st, "BEGIN IMMEDIATE", "starting an egress sample", err_r) < 0) {
		free(rises);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t rise = 0;
		if (sample_source(st, &counts[i], at, &rise, err_r) < 0)
			goto fail;
		if (rise > 0 && counts[i].tenant_id > 0)
			rises[nrises++] = (struct sample_rise){counts[i].tenant_id, rise};
	}
	/* sources the kernel no longer lists: their next count starts at 0 */
	if ((s = store_sql_stmt(st, sql_counter_gone, err_r)) == NULL)
		goto fail;
	if (store_bind_int(s, 1, at) < 0 || store_write(s) != SQLITE_DONE) {
		store_dberr(st, err_r, "dropping egress counters");
		goto fail;
	}
	if (nrises > 1) /* qsort wants an array, even of none */
		qsort(rises, nrises, sizeof *rises, sample_rise_cmp);
	for (size_t i = 0, j; i < nrises; i = j) {
		uint64_t attempts = 0;
		for (j = i; j < nrises && rises[j].tenant_id == rises[i].tenant_id; j++)
			attempts += rises[j].rise;
		if (sample_write(st, at, rises[i].tenant_id, attempts, (uint32_t)(j - i), err_r) <
		    0)
			goto fail;
		nsamples++;
	}
	if ((s = store_sql_stmt(st, sql_sample_prune, err_r)) == NULL)
		goto fail;
	if (store_bind_int(s, 1, at - STORE_EGRESS_SAMPLE_KEEP) < 0 ||
	    store_write(s) != SQLITE_DONE) {
		store_dberr(st, err_r, "dropping old egress samples");
		goto fail;
	}
	free(rises);
	if (store_exec(st, "COMMIT", "committing an egress sample", err_r) < 0)
		return -1;
	if (nsamples_r != NULL)
		*nsamples_r = nsamples;
	return 0;
fail:
	free(rises);
	store_exec(st, "ROLLBACK", "rolling back an egress sample", NULL);
	return -1;
}

static int sample_row(sqlite3_stmt *s, void *item)
{
	struct store_egress_sample *x = item;
	int64_t attempts = sqlite3_column_int64(s, 4), sources = sqlite3_column_int64(s, 5);

	memset(x, 0, sizeof *x);
	x->id = sqlite3_column_int64(s, 0);
	x->at = sqlite3_column_int64(s, 1);
	x->tenant_id = sqlite3_column_int64(s, 2);
	x->attempts = attempts > 0 ? (uint64_t)attempts : 0;
	x->sources = sources > 0 && sources <= UINT32_MAX ? (uint32_t)sources : 0;
	return store_col_text(s, 3, x->tenant, sizeof x->tenant);
}

int store_egress_sample_list(struct store *st, int64_t after_id, int64_t since, size_t limit,
                             struct store_egress_sample **list_r, size_t *n_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_sample_list, err_r);

	*list_r = NULL;
	*n_r = 0;
	if (s == NULL)
		return -1;
	if (store_bind_int(s, 1, after_id) < 0 || store_bind_int(s, 2, since) < 0 ||
	    store_bind_int(s, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit) < 0)
		return store_dberr(st, err_r, "listing egress samples");
	return store_get_all(st, s, sample_row, sizeof **list_r, (void **)list_r, n_r,
	                     "listing egress samples", err_r);
}
