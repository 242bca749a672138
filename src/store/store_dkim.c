/*
 * store_dkim: a sending domain's DNS verification token and its DKIM keys
 * (issue 5).  Keys are stored as unencrypted PKCS#8 PEM in the store file,
 * which is 0600 and owned by sluiced's user (store_open, sluiced's
 * prepare_dirs): only sluice reads them.  Rows follow their domain: a
 * removed domain takes its token and keys with it (ON DELETE CASCADE).
 *
 * A key's life: pending (made, published, not signing yet) -> active
 * (signing) -> retired (no longer signing; its DNS record stays for the
 * overlap period, then its private key is wiped and the record may go).
 */
#include "store/store.h"
#include "store/store_check.h"
#include "store/store_int.h"

#include <stdlib.h>
#include <string.h>

#define DKIM_COLS                                                                                  \
	"k.id, k.domain, k.selector, k.alg, k.state, k.private_pem, k.dns_record, k.created, "     \
	"k.activated, k.retired"

static const char sql_token_set[] = "INSERT INTO domain_tokens (domain, token) VALUES (?1, ?2)"
                                    " ON CONFLICT (domain) DO UPDATE SET token = excluded.token";
static const char sql_token_get[] = "SELECT token FROM domain_tokens WHERE domain = ?1";
static const char sql_key_add[] =
    "INSERT INTO dkim_keys (domain, selector, alg, state, private_pem, dns_record, created,"
    " activated, retired) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0)";
static const char sql_key_list[] = "SELECT " DKIM_COLS " FROM dkim_keys k WHERE k.domain = ?1"
                                   " ORDER BY k.created, k.id";
static const char sql_key_list_active[] =
    "SELECT " DKIM_COLS " FROM dkim_keys k JOIN domains d ON d.domain = k.domain"
    " WHERE k.state = 1 ORDER BY k.domain, k.id";
static const char sql_key_state[] = "UPDATE dkim_keys SET state = ?3,"
                                    " activated = CASE WHEN ?3 = 1 THEN ?4 ELSE activated END,"
                                    " retired = CASE WHEN ?3 = 2 THEN ?4 ELSE retired END"
                                    " WHERE domain = ?1 AND selector = ?2";
static const char sql_key_wipe[] =
    "UPDATE dkim_keys SET private_pem = '' WHERE domain = ?1 AND selector = ?2 AND state = 2";

/* What changes whenever a key is added, removed (with its domain), moves
 * state or is wiped: sluiced compares it before parsing keys again. */
static const char sql_key_version[] =
    "SELECT count(*), coalesce(max(id), 0), coalesce(sum(state), 0),"
    " coalesce(max(activated), 0), coalesce(max(retired), 0),"
    " coalesce(sum(length(private_pem)), 0) FROM dkim_keys";

static int store_row_dkim(sqlite3_stmt *s, void *item)
{
	struct store_dkim_key *k = item;

	memset(k, 0, sizeof *k);
	k->id = sqlite3_column_int64(s, 0);
	k->alg = sqlite3_column_int(s, 3);
	k->state = sqlite3_column_int(s, 4);
	k->created = sqlite3_column_int64(s, 7);
	k->activated = sqlite3_column_int64(s, 8);
	k->retired = sqlite3_column_int64(s, 9);
	if (store_col_text(s, 1, k->domain, sizeof k->domain) < 0 ||
	    store_col_text(s, 2, k->selector, sizeof k->selector) < 0 ||
	    store_col_text(s, 5, k->pem, sizeof k->pem) < 0 ||
	    store_col_text(s, 6, k->record, sizeof k->record) < 0)
		return -1;
	return 0;
}

static int store_row_token(sqlite3_stmt *s, void *item)
{
	return store_col_text(s, 0, item, STORE_TOKEN_MAX + 1);
}

/* The canonical name of a stored domain, or STORE_NOTFOUND/-1 worded. */
static int store_dkim_domain(struct store *st, const char *domain, char name[STORE_DOMAIN_MAX + 1],
                             char **err_r)
{
	char err[STORE_CHECK_ERR_MAX];
	struct store_domain d;

	if (store_check_domain(domain, name, err, sizeof err) < 0)
		return store_checkerr(err_r, err);
	return store_domain_get(st, name, &d, err_r);
}

int store_domain_token_set(struct store *st, const char *domain, const char *token, char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if (token == NULL || token[0] == '\0' || strlen(token) > STORE_TOKEN_MAX)
		return store_checkerr(err_r, "verification token empty or too long");
	if ((rc = store_dkim_domain(st, domain, name, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_token_set, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, name) < 0 || store_bind_text(s, 2, token) < 0 ||
	    store_write(s) != SQLITE_DONE)
		return store_dberr(st, err_r, "setting a verification token");
	return 0;
}

int store_domain_token_get(struct store *st, const char *domain, char token_r[STORE_TOKEN_MAX + 1],
                           char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if ((rc = store_dkim_domain(st, domain, name, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_token_get, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, name) < 0)
		return store_dberr(st, err_r, "reading a verification token");
	rc = store_get_one(st, s, store_row_token, token_r, "reading a verification token", err_r);
	if (rc == STORE_NOTFOUND)
		store_seterr(err_r, "domain '%s' has no verification token", name);
	return rc;
}

int store_dkim_add(struct store *st, const struct store_dkim_key *k, char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if (k->selector[0] == '\0' || k->pem[0] == '\0' || k->record[0] == '\0' ||
	    (k->alg != STORE_DKIM_RSA && k->alg != STORE_DKIM_ED25519) ||
	    (k->state != STORE_DKIM_PENDING && k->state != STORE_DKIM_ACTIVE))
		return store_checkerr(err_r, "DKIM key incomplete");
	if ((rc = store_dkim_domain(st, k->domain, name, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_key_add, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, name) < 0 || store_bind_text(s, 2, k->selector) < 0 ||
	    store_bind_int(s, 3, k->alg) < 0 || store_bind_int(s, 4, k->state) < 0 ||
	    store_bind_text(s, 5, k->pem) < 0 || store_bind_text(s, 6, k->record) < 0 ||
	    store_bind_int(s, 7, k->created) < 0 ||
	    store_bind_int(s, 8, k->state == STORE_DKIM_ACTIVE ? k->created : 0) < 0)
		return store_dberr(st, err_r, "adding a DKIM key");
	rc = store_write(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
		store_seterr(err_r, "selector '%s' already exists for '%s'", k->selector, name);
		return STORE_EXISTS;
	}
	if (rc != SQLITE_DONE)
		return store_dberr(st, err_r, "adding a DKIM key");
	return 0;
}

int store_dkim_list(struct store *st, const char *domain, struct store_dkim_key **list_r,
                    size_t *n_r, char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	void *list = NULL;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	if (domain == NULL) {
		if ((s = store_sql_stmt(st, sql_key_list_active, err_r)) == NULL)
			return -1;
	} else {
		if ((rc = store_dkim_domain(st, domain, name, err_r)) != 0)
			return rc;
		if ((s = store_sql_stmt(st, sql_key_list, err_r)) == NULL)
			return -1;
		if (store_bind_text(s, 1, name) < 0)
			return store_dberr(st, err_r, "listing DKIM keys");
	}
	rc = store_get_all(st, s, store_row_dkim, sizeof **list_r, &list, n_r, "listing DKIM keys",
	                   err_r);
	*list_r = list;
	return rc;
}

int store_dkim_set_state(struct store *st, const char *domain, const char *selector, int state,
                         int64_t when, char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if (state < STORE_DKIM_PENDING || state > STORE_DKIM_RETIRED)
		return store_checkerr(err_r, "bad DKIM key state");
	if ((rc = store_dkim_domain(st, domain, name, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_key_state, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, name) < 0 || store_bind_text(s, 2, selector) < 0 ||
	    store_bind_int(s, 3, state) < 0 || store_bind_int(s, 4, when) < 0)
		return store_dberr(st, err_r, "changing a DKIM key");
	rc = store_change(st, s, "changing a DKIM key", err_r);
	if (rc == 0) {
		store_seterr(err_r, "selector '%s' not found for '%s'", selector, name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

int store_dkim_wipe(struct store *st, const char *domain, const char *selector, char **err_r)
{
	char name[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *s;
	int rc;

	if ((rc = store_dkim_domain(st, domain, name, err_r)) != 0)
		return rc;
	if ((s = store_sql_stmt(st, sql_key_wipe, err_r)) == NULL)
		return -1;
	if (store_bind_text(s, 1, name) < 0 || store_bind_text(s, 2, selector) < 0)
		return store_dberr(st, err_r, "wiping a DKIM key");
	rc = store_change(st, s, "wiping a DKIM key", err_r);
	if (rc == 0) {
		store_seterr(err_r, "no retired selector '%s' for '%s'", selector, name);
		return STORE_NOTFOUND;
	}
	return rc < 0 ? -1 : 0;
}

static int store_row_version(sqlite3_stmt *s, void *item)
{
	uint64_t v = 1469598103934665603ULL;

	for (int i = 0; i < 6; i++)
		v = (v ^ (uint64_t)sqlite3_column_int64(s, i)) * 1099511628211ULL;
	*(uint64_t *)item = v;
	return 0;
}

int store_dkim_version(struct store *st, uint64_t *version_r, char **err_r)
{
	sqlite3_stmt *s = store_sql_stmt(st, sql_key_version, err_r);

	if (s == NULL)
		return -1;
	return store_get_one(st, s, store_row_version, version_r, "reading the DKIM key version",
	                     err_r) == 0
	           ? 0
	           : -1;
}
