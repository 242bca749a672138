/* Unit tests for the store (SQLite back-end) and its input checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_check.h"
#include "store/store_int.h" /* store_migrations_count */

#define HASH_A "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
#define HASH_B "$argon2id$v=19$m=65536,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNob3RoZXJoYQ"

struct fixture {
	char dir[64];
	char path[128];
	char uri[160];
	struct store *st;
};

static void fixture_paths(struct fixture *f)
{
	snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
	snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char *err = NULL;

	if (f == NULL)
		return -1;
	strcpy(f->dir, "/tmp/sluice-test-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	fixture_paths(f);
	if (store_open(f->uri, &f->st, &err) != 0) {
		fprintf(stderr, "store_open: %s\n", err ? err : "?");
		free(err);
		rmdir(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[200];

	store_close(&f->st);
	unlink(f->path);
	snprintf(p, sizeof p, "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* rc as expected, and an error text that contains want (when not NULL). */
static void check_err(int rc, int want_rc, char **err, const char *want)
{
	if (rc != want_rc)
		fail_msg("rc %d, expected %d (err: %s)", rc, want_rc, *err ? *err : "none");
	if (want != NULL) {
		assert_non_null(*err);
		if (strstr(*err, want) == NULL)
			fail_msg("error '%s' does not contain '%s'", *err, want);
	}
	free(*err);
	*err = NULL;
}

static int64_t add_tenant(struct store *st, const char *name)
{
	int64_t id = 0;
	char *err = NULL;

	check_err(store_tenant_add(st, name, &id, &err), 0, &err, NULL);
	assert_true(id > 0);
	return id;
}

/* ---- open ---------------------------------------------------------------- */

static void test_open_mode_and_pragmas(void **state)
{
	struct fixture *f = *state;
	char p[200];
	struct stat sb;
	sqlite3 *db;
	sqlite3_stmt *s;

	/* setup opened a new file under the test's umask */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	add_tenant(f->st, "acme");
	snprintf(p, sizeof p, "%s-wal", f->path);
	assert_int_equal(stat(p, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(s, 0), (int)store_migrations_count);
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static void test_open_bad_uri(void **state)
{
	struct store *st = (struct store *)1;
	char *err = NULL;

	(void)state;
	check_err(store_open("postgres://db", &st, &err), -1, &err, "not supported");
	assert_null(st);
	check_err(store_open("sqlite:", &st, &err), -1, &err, "no path");
	check_err(store_open("sqlite:/nonexistent-dir/x/store.db", &st, &err), -1, &err,
	          "cannot open");
	assert_null(st);
}

static void test_open_newer_schema(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char *err = NULL;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	check_err(store_open(f->uri, &st, &err), -1, &err, "schema version 99");
	assert_null(st);
}

static void test_open_not_a_database(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char *err = NULL, path[160], uri[200];
	FILE *fp;

	snprintf(path, sizeof path, "%s/junk.db", f->dir);
	snprintf(uri, sizeof uri, "sqlite:%s", path);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, but it is long enough to look like one...\n", fp);
	fclose(fp);
	check_err(store_open(uri, &st, &err), -1, &err, path);
	assert_null(st);
	unlink(path);
}

/* ---- tenants ----------------------------------------------------------- */

static void test_tenants(void **state)
{
	struct fixture *f = *state;
	struct store_tenant t, *list = NULL;
	char *err = NULL;
	int64_t id1, id2;
	size_t n;

	id1 = add_tenant(f->st, "zeta");
	id2 = add_tenant(f->st, "acme");
	assert_int_not_equal(id1, id2);

	check_err(store_tenant_get(f->st, "acme", &t, &err), 0, &err, NULL);
	assert_int_equal(t.id, id2);
	assert_string_equal(t.name, "acme");
	assert_int_equal(t.suspended, 0);
	assert_true(t.created > 1600000000);

	check_err(store_tenant_get_id(f->st, id1, &t, &err), 0, &err, NULL);
	assert_string_equal(t.name, "zeta");

	check_err(store_tenant_add(f->st, "acme", NULL, &err), STORE_EXISTS, &err,
	          "tenant 'acme' already exists");
	check_err(store_tenant_get(f->st, "nobody", &t, &err), STORE_NOTFOUND, &err,
	          "tenant 'nobody' not found");
	check_err(store_tenant_get_id(f->st, 999, &t, &err), STORE_NOTFOUND, &err, "999");
	/* no err_r: still the right code */
	assert_int_equal(store_tenant_get(f->st, "nobody", &t, NULL), STORE_NOTFOUND);

	check_err(store_tenant_set_suspended(f->st, "acme", 1, &err), 0, &err, NULL);
	check_err(store_tenant_get(f->st, "acme", &t, &err), 0, &err, NULL);
	assert_int_equal(t.suspended, 1);
	check_err(store_tenant_set_suspended(f->st, "acme", 0, &err), 0, &err, NULL);
	check_err(store_tenant_get(f->st, "acme", &t, &err), 0, &err, NULL);
	assert_int_equal(t.suspended, 0);
	check_err(store_tenant_set_suspended(f->st, "nobody", 1, &err), STORE_NOTFOUND, &err,
	          "not found");

	check_err(store_tenant_list(f->st, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "acme");
	assert_string_equal(list[1].name, "zeta");
	free(list);
}

static void test_tenant_list_empty(void **state)
{
	struct fixture *f = *state;
	struct store_tenant *list = (struct store_tenant *)1;
	char *err = NULL;
	size_t n = 99;

	check_err(store_tenant_list(f->st, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 0);
	free(list);
}

static void test_tenant_names(void **state)
{
	static const struct {
		const char *name;
		int ok;
	} cases[] = {
	    {.name = "a", .ok = 1},
	    {.name = "Acme-Corp_2.eu", .ok = 1},
	    {.name = "0123456789012345678901234567890123456789012345678901234567890123",
	     .ok = 1}, /* 64 */
	    {.name = "01234567890123456789012345678901234567890123456789012345678901234",
	     .ok = 0}, /* 65 */
	    {.name = "", .ok = 0},
	    {.name = "with space", .ok = 0},
	    {.name = "semi;colon", .ok = 0},
	    {.name = "quote'", .ok = 0},
	    {.name = "slash/", .ok = 0},
	    {.name = "at@sign", .ok = 0},
	    {.name = "caf\xc3\xa9", .ok = 0},
	    {.name = "new\nline", .ok = 0},
	};
	struct fixture *f = *state;
	char *err = NULL;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = store_tenant_add(f->st, cases[i].name, NULL, &err);

		if (cases[i].ok) {
			check_err(rc, 0, &err, NULL);
		} else {
			check_err(rc, -1, &err, "tenant name");
		}
	}
	/* a control character shows as '?' in the message */
	check_err(store_tenant_add(f->st, "bad\x01name", NULL, &err), -1, &err, "bad?name");
}

/* ---- credentials ---------------------------------------------------------- */

static void test_credentials(void **state)
{
	struct fixture *f = *state;
	struct store_credential c, *list = NULL;
	char *err = NULL;
	int64_t acme, other;
	size_t n;

	acme = add_tenant(f->st, "acme");
	other = add_tenant(f->st, "other");

	check_err(store_credential_set(f->st, acme, "mailer", HASH_A, &err), 0, &err, NULL);
	check_err(store_credential_set(f->st, acme, "alice@acme.example", HASH_A, &err), 0, &err,
	          NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_int_equal(c.tenant_id, acme);
	assert_string_equal(c.username, "mailer");
	assert_string_equal(c.hash, HASH_A);
	assert_int_equal(c.suspended, 0);
	assert_int_equal(c.tenant_suspended, 0);

	/* replace the hash: same row */
	int64_t id = c.id;
	check_err(store_credential_set(f->st, acme, "mailer", HASH_B, &err), 0, &err, NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_string_equal(c.hash, HASH_B);
	assert_int_equal(c.id, id);
	/* by id: the same row; an unknown id is not found */
	memset(&c, 0, sizeof c);
	check_err(store_credential_get_id(f->st, id, &c, &err), 0, &err, NULL);
	assert_string_equal(c.username, "mailer");
	assert_int_equal(c.tenant_id, acme);
	assert_string_equal(c.hash, HASH_B);
	check_err(store_credential_get_id(f->st, id + 1000, &c, &err), STORE_NOTFOUND, &err,
	          "not found");

	/* user names are unique across tenants */
	check_err(store_credential_set(f->st, other, "mailer", HASH_A, &err), STORE_EXISTS, &err,
	          "user 'mailer' belongs to another tenant");
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_string_equal(c.hash, HASH_B);
	assert_int_equal(c.tenant_id, acme);

	check_err(store_credential_set(f->st, 4242, "x", HASH_A, &err), STORE_NOTFOUND, &err,
	          "tenant id 4242 not found");
	check_err(store_credential_set(f->st, acme, "plain", "hunter2", &err), -1, &err,
	          "not an argon2 encoded string");
	check_err(store_credential_set(f->st, acme, "bad user", HASH_A, &err), -1, &err,
	          "user name");
	check_err(store_credential_lookup(f->st, "nobody", &c, &err), STORE_NOTFOUND, &err,
	          "user 'nobody' not found");
	check_err(store_credential_lookup(f->st, "bad user", &c, &err), STORE_NOTFOUND, &err, NULL);

	/* the tenant's suspension shows on its credentials */
	check_err(store_tenant_set_suspended(f->st, "acme", 1, &err), 0, &err, NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_int_equal(c.tenant_suspended, 1);
	assert_int_equal(c.suspended, 0);
	check_err(store_tenant_set_suspended(f->st, "acme", 0, &err), 0, &err, NULL);

	/* and a credential's own */
	check_err(store_credential_set_suspended(f->st, "mailer", 1, &err), 0, &err, NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_int_equal(c.suspended, 1);
	assert_int_equal(c.tenant_suspended, 0);
	check_err(store_credential_set_suspended(f->st, "nobody", 1, &err), STORE_NOTFOUND, &err,
	          "not found");

	check_err(store_credential_list(f->st, acme, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].username, "alice@acme.example");
	assert_string_equal(list[1].username, "mailer");
	free(list);
	check_err(store_credential_list(f->st, other, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 0);
	free(list);
	check_err(store_credential_list(f->st, 4242, &list, &n, &err), STORE_NOTFOUND, &err,
	          "not found");
	assert_null(list);

	check_err(store_credential_remove(f->st, other, "mailer", &err), STORE_NOTFOUND, &err,
	          "user 'mailer' not found for tenant 'other'");
	check_err(store_credential_remove(f->st, acme, "mailer", &err), 0, &err, NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), STORE_NOTFOUND, &err, NULL);
	/* now free for another tenant */
	check_err(store_credential_set(f->st, other, "mailer", HASH_A, &err), 0, &err, NULL);
}

/* ---- domains ------------------------------------------------------------ */

static void test_domains(void **state)
{
	struct fixture *f = *state;
	struct store_domain d, *list = NULL;
	char *err = NULL;
	int64_t acme, other;
	size_t n;

	acme = add_tenant(f->st, "acme");
	other = add_tenant(f->st, "other");

	check_err(store_domain_add(f->st, acme, "Mail.Example.COM", 0, &err), 0, &err, NULL);
	check_err(store_domain_add(f->st, acme, "acme.example.", 1, &err), 0, &err, NULL);
	check_err(store_domain_add(f->st, other, "other.example", 0, &err), 0, &err, NULL);

	check_err(store_domain_get(f->st, "MAIL.example.com", &d, &err), 0, &err, NULL);
	assert_string_equal(d.domain, "mail.example.com");
	assert_string_equal(d.tenant, "acme");
	assert_int_equal(d.tenant_id, acme);
	assert_int_equal(d.verified, 0);
	assert_true(d.created > 1600000000);
	check_err(store_domain_get(f->st, "acme.example", &d, &err), 0, &err, NULL);
	assert_int_equal(d.verified, 1);

	check_err(store_domain_add(f->st, other, "mail.example.com", 0, &err), STORE_EXISTS, &err,
	          "domain 'mail.example.com' belongs to another tenant");
	check_err(store_domain_add(f->st, acme, "MAIL.example.com", 0, &err), STORE_EXISTS, &err,
	          "domain 'mail.example.com' already exists for tenant 'acme'");
	check_err(store_domain_add(f->st, 4242, "new.example", 0, &err), STORE_NOTFOUND, &err,
	          "tenant id 4242 not found");
	check_err(store_domain_add(f->st, acme, "bad_domain.example", 0, &err), -1, &err,
	          "bad_domain.example");

	check_err(store_domain_set_verified(f->st, "Mail.Example.Com", 1, &err), 0, &err, NULL);
	check_err(store_domain_get(f->st, "mail.example.com", &d, &err), 0, &err, NULL);
	assert_int_equal(d.verified, 1);
	check_err(store_domain_set_verified(f->st, "mail.example.com", 0, &err), 0, &err, NULL);
	check_err(store_domain_get(f->st, "mail.example.com", &d, &err), 0, &err, NULL);
	assert_int_equal(d.verified, 0);
	check_err(store_domain_set_verified(f->st, "none.example", 1, &err), STORE_NOTFOUND, &err,
	          "domain 'none.example' not found");

	check_err(store_domain_list(f->st, acme, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].domain, "acme.example");
	assert_string_equal(list[1].domain, "mail.example.com");
	free(list);
	check_err(store_domain_list(f->st, 0, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 3);
	assert_string_equal(list[2].domain, "other.example");
	assert_string_equal(list[2].tenant, "other");
	assert_int_equal(list[2].tenant_id, other);
	free(list);
	check_err(store_domain_list(f->st, 4242, &list, &n, &err), STORE_NOTFOUND, &err, NULL);

	/* removal is per tenant */
	check_err(store_domain_remove(f->st, other, "mail.example.com", &err), STORE_NOTFOUND, &err,
	          "domain 'mail.example.com' not found for tenant 'other'");
	check_err(store_domain_remove(f->st, acme, "MAIL.EXAMPLE.COM", &err), 0, &err, NULL);
	check_err(store_domain_get(f->st, "mail.example.com", &d, &err), STORE_NOTFOUND, &err,
	          "not found");
	check_err(store_domain_add(f->st, other, "mail.example.com", 0, &err), 0, &err, NULL);
	/* an address-like or invalid sender domain is simply not found */
	check_err(store_domain_get(f->st, "[192.0.2.1]", &d, &err), STORE_NOTFOUND, &err, NULL);
}

static void test_domain_check(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: refused */
		const char *err; /* part of the message when refused */
	} cases[] = {
	    {.in = "example.com", .out = "example.com"},
	    {.in = "EXAMPLE.Com", .out = "example.com"},
	    {.in = "example.com.", .out = "example.com"},
	    {.in = "a-b.c-d.example", .out = "a-b.c-d.example"},
	    {.in = "xn--bcher-kva.example", .out = "xn--bcher-kva.example"},
	    {.in = "123.example", .out = "123.example"},
	    {.in = "localhost", .err = "fully qualified"},
	    {.in = "", .err = "empty"},
	    {.in = ".", .err = "empty label"},
	    {.in = "a..example", .err = "empty label"},
	    {.in = ".example.com", .err = "empty label"},
	    {.in = "example.com..", .err = "empty label"},
	    {.in = "-a.example", .err = "starting with '-'"},
	    {.in = "a-.example", .err = "ending in '-'"},
	    {.in = "under_score.example", .err = "character"},
	    {.in = "sp ace.example", .err = "character"},
	    {.in = "b\xc3\xbc"
	           "cher.example",
	     .err = "xn--"},
	    {.in = "192.0.2.1", .err = "all-numeric"},
	    {.in = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
	     .err = "longer than 63"},
	};
	char out[STORE_DOMAIN_MAX + 1], err[STORE_CHECK_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = store_check_domain(cases[i].in, out, err, sizeof err);

		if (cases[i].out != NULL) {
			if (rc != 0)
				fail_msg("'%s' refused: %s", cases[i].in, err);
			assert_string_equal(out, cases[i].out);
		} else {
			if (rc == 0)
				fail_msg("'%s' accepted as '%s'", cases[i].in, out);
			if (strstr(err, cases[i].err) == NULL)
				fail_msg("'%s': '%s' lacks '%s'", cases[i].in, err, cases[i].err);
		}
	}
}

static void test_domain_lengths(void **state)
{
	char in[300], out[STORE_DOMAIN_MAX + 1], err[STORE_CHECK_ERR_MAX];
	size_t len = 0;

	(void)state;
	/* 63-octet labels: 63*3 + 61 + 3 dots = 253 is the longest name */
	for (int i = 0; i < 3; i++) {
		memset(in + len, 'a', 63);
		len += 63;
		in[len++] = '.';
	}
	memset(in + len, 'b', 61);
	len += 61;
	in[len] = '\0';
	assert_int_equal(strlen(in), 253);
	assert_int_equal(store_check_domain(in, out, err, sizeof err), 0);
	assert_string_equal(out, in);
	in[len++] = '.';
	in[len] = '\0';
	assert_int_equal(store_check_domain(in, out, err, sizeof err), 0); /* trailing dot */
	in[len - 1] = 'b';
	assert_int_equal(store_check_domain(in, out, err, sizeof err), -1); /* 254 */
	assert_non_null(strstr(err, "253"));
	memset(in, 'c', 299);
	in[299] = '\0';
	assert_int_equal(store_check_domain(in, out, err, sizeof err), -1);
}

/* ---- networks ------------------------------------------------------------- */

static void test_cidr_check(void **state)
{
	static const struct {
		const char *in;
		const char *out;
		const char *err;
	} cases[] = {
	    {.in = "10.0.0.0/8", .out = "10.0.0.0/8"},
	    {.in = "192.0.2.0/24", .out = "192.0.2.0/24"},
	    {.in = "192.0.2.7", .out = "192.0.2.7/32"},
	    {.in = "192.0.2.7/32", .out = "192.0.2.7/32"},
	    {.in = "128.0.0.0/1", .out = "128.0.0.0/1"},
	    {.in = "2001:DB8::/32", .out = "2001:db8::/32"},
	    {.in = "2001:0db8:0000:0000::/64", .out = "2001:db8::/64"},
	    {.in = "2001:db8:0:0:1:0:0:0/96", .out = "2001:db8:0:0:1::/96"},
	    {.in = "2001:db8::1", .out = "2001:db8::1/128"},
	    {.in = "fd00::/8", .out = "fd00::/8"},
	    {.in = "10.0.0.1/8", .err = "host bits set (did you mean 10.0.0.0/8?)"},
	    {.in = "192.0.2.128/25", .out = "192.0.2.128/25"},
	    {.in = "192.0.2.129/25", .err = "did you mean 192.0.2.128/25?"},
	    {.in = "192.0.2.130/25", .err = "did you mean 192.0.2.128/25?"},
	    {.in = "2001:db8::1/32", .err = "did you mean 2001:db8::/32?"},
	    {.in = "10.0.0.0/33", .err = "prefix length (0-32"},
	    {.in = "2001:db8::/129", .err = "prefix length (0-128"},
	    {.in = "10.0.0.0/", .err = "prefix length"},
	    {.in = "10.0.0.0/08", .err = "prefix length"},
	    {.in = "10.0.0.0/+8", .err = "prefix length"},
	    {.in = "10.0.0.0/8x", .err = "prefix length"},
	    {.in = "10.0.0.0/8/8", .err = "prefix length"},
	    {.in = "0.0.0.0/0", .err = "every address"},
	    {.in = "::/0", .err = "every address"},
	    {.in = "10.0.0/8", .err = "not an IPv4 or IPv6 address"},
	    {.in = "010.0.0.0/8", .err = "not an IPv4 or IPv6 address"},
	    {.in = "example.com/8", .err = "not an IPv4 or IPv6 address"},
	    {.in = "fe80::1%eth0/128", .err = "not an IPv4 or IPv6 address"},
	    {.in = "::ffff:10.0.0.0/104", .err = "IPv4-mapped"},
	    {.in = "/8", .err = "no valid address"},
	    {.in = "", .err = "empty"},
	};
	char out[STORE_CIDR_MAX + 1], err[STORE_CHECK_ERR_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = store_check_cidr(cases[i].in, out, err, sizeof err);

		if (cases[i].out != NULL) {
			if (rc != 0)
				fail_msg("'%s' refused: %s", cases[i].in, err);
			assert_string_equal(out, cases[i].out);
		} else {
			if (rc == 0)
				fail_msg("'%s' accepted as '%s'", cases[i].in, out);
			if (strstr(err, cases[i].err) == NULL)
				fail_msg("'%s': '%s' lacks '%s'", cases[i].in, err, cases[i].err);
		}
	}
}

static void test_networks(void **state)
{
	struct fixture *f = *state;
	struct store_network *list = NULL;
	char *err = NULL;
	int64_t acme, other;
	size_t n;

	acme = add_tenant(f->st, "acme");
	other = add_tenant(f->st, "other");

	check_err(store_network_add(f->st, acme, "10.1.0.0/16", &err), 0, &err, NULL);
	check_err(store_network_add(f->st, acme, "2001:DB8:0::/48", &err), 0, &err, NULL);
	check_err(store_network_add(f->st, other, "192.0.2.9", &err), 0, &err, NULL);
	check_err(store_network_add(f->st, acme, "10.1.2.3/16", &err), -1, &err,
	          "host bits set (did you mean 10.1.0.0/16?)");
	check_err(store_network_add(f->st, other, "10.1.0.0/16", &err), STORE_EXISTS, &err,
	          "network '10.1.0.0/16' belongs to another tenant");
	check_err(store_network_add(f->st, acme, "2001:db8::/48", &err), STORE_EXISTS, &err,
	          "network '2001:db8::/48' already exists for tenant 'acme'");
	check_err(store_network_add(f->st, 4242, "10.9.0.0/16", &err), STORE_NOTFOUND, &err,
	          "tenant id 4242 not found");

	check_err(store_network_list(f->st, acme, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].cidr, "10.1.0.0/16");
	assert_string_equal(list[1].cidr, "2001:db8::/48");
	assert_string_equal(list[0].tenant, "acme");
	assert_int_equal(list[1].tenant_id, acme);
	free(list);
	check_err(store_network_list(f->st, 0, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 3);
	assert_string_equal(list[2].cidr, "2001:db8::/48");
	assert_string_equal(list[1].cidr, "192.0.2.9/32");
	assert_string_equal(list[1].tenant, "other");
	free(list);

	check_err(store_network_remove(f->st, other, "10.1.0.0/16", &err), STORE_NOTFOUND, &err,
	          "network '10.1.0.0/16' not found for tenant 'other'");
	check_err(store_network_remove(f->st, acme, "2001:0db8:0000::/48", &err), 0, &err, NULL);
	check_err(store_network_remove(f->st, acme, "2001:db8::/48", &err), STORE_NOTFOUND, &err,
	          NULL);
	check_err(store_network_list(f->st, acme, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 1);
	free(list);
}

/* ---- several handles, persistence --------------------------------------- */

static void test_generation(void **state)
{
	struct fixture *f = *state;
	struct store *st2 = NULL;
	char *err = NULL;
	int64_t g1, g2;

	check_err(store_open(f->uri, &st2, &err), 0, &err, NULL);
	g1 = store_generation(f->st);
	assert_true(g1 >= 0);
	assert_int_equal(store_generation(f->st), g1); /* nothing changed */

	add_tenant(st2, "fromcli");
	g2 = store_generation(f->st);
	assert_int_not_equal(g2, g1);
	assert_int_equal(store_generation(f->st), g2);

	/* this handle's own commits count too */
	add_tenant(f->st, "fromdaemon");
	assert_int_not_equal(store_generation(f->st), g2);

	/* a failed write changes nothing */
	g1 = store_generation(st2);
	check_err(store_tenant_add(st2, "fromcli", NULL, &err), STORE_EXISTS, &err, NULL);
	assert_int_equal(store_generation(st2), g1);
	store_close(&st2);
	assert_null(st2);
	store_close(&st2); /* twice is harmless */
}

static void test_reopen_persists(void **state)
{
	struct fixture *f = *state;
	struct store_credential c;
	struct store_domain d;
	struct store_network *nets = NULL;
	char *err = NULL;
	int64_t id;
	size_t n;

	id = add_tenant(f->st, "acme");
	check_err(store_credential_set(f->st, id, "mailer", HASH_A, &err), 0, &err, NULL);
	check_err(store_domain_add(f->st, id, "acme.example", 1, &err), 0, &err, NULL);
	check_err(store_network_add(f->st, id, "10.0.0.0/8", &err), 0, &err, NULL);
	store_close(&f->st);

	check_err(store_open(f->uri, &f->st, &err), 0, &err, NULL);
	check_err(store_credential_lookup(f->st, "mailer", &c, &err), 0, &err, NULL);
	assert_int_equal(c.tenant_id, id);
	assert_string_equal(c.hash, HASH_A);
	check_err(store_domain_get(f->st, "acme.example", &d, &err), 0, &err, NULL);
	assert_int_equal(d.verified, 1);
	check_err(store_network_list(f->st, id, &nets, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 1);
	assert_string_equal(nets[0].cidr, "10.0.0.0/8");
	free(nets);
}

/* Two writers on their own handles at once: WAL and busy_timeout make
 * them wait for each other instead of failing with "database is locked". */
struct writer_arg {
	const char *uri;
	char prefix;
	int failures;
};

static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	struct store *st = NULL;
	char name[16], *err = NULL;

	if (store_open(a->uri, &st, &err) != 0) {
		free(err);
		a->failures = -1;
		return NULL;
	}
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof name, "%c%03d", a->prefix, i);
		if (store_tenant_add(st, name, NULL, &err) != 0) {
			fprintf(stderr, "writer %c: %s\n", a->prefix, err ? err : "?");
			free(err);
			err = NULL;
			a->failures++;
		}
	}
	store_close(&st);
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	struct writer_arg a = {.uri = f->uri, .prefix = 'a'}, b = {.uri = f->uri, .prefix = 'b'};
	struct store_tenant *list = NULL;
	pthread_t ta, tb;
	char *err = NULL;
	size_t n;

	assert_int_equal(pthread_create(&ta, NULL, writer_thread, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, writer_thread, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(a.failures, 0);
	assert_int_equal(b.failures, 0);
	check_err(store_tenant_list(f->st, &list, &n, &err), 0, &err, NULL);
	assert_int_equal(n, 200);
	free(list);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_mode_and_pragmas, setup, teardown),
		cmocka_unit_test(test_open_bad_uri),
		cmocka_unit_test_setup_teardown(test_open_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_list_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
		cmocka_unit_test_setup_teardown(test_domains, setup, teardown),
		cmocka_unit_test(test_domain_check),
		cmocka_unit_test(test_domain_lengths),
		cmocka_unit_test(test_cidr_check),
		cmocka_unit_test_setup_teardown(test_networks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
	};
	/* clang-format on */

	/* A permissive umask: the store must still create its file 0600. */
	umask(022);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
