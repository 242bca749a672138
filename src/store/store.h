/*
 * store: tenants, SMTP credentials, sending domains, trusted networks.
 * One interface; the SQLite backend (store_sqlite.c) is the default and
 * a PostgreSQL backend can plug in behind the same functions later.
 *
 * Conventions: functions return 0 on success, STORE_NOTFOUND when the
 * named object does not exist, STORE_EXISTS when it already does, -1 on
 * any other error; *err_r (when err_r is not NULL) then gets a malloc'd
 * text the caller frees.  A store handle is used by one thread at a time;
 * open one per thread.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_NOTFOUND 1
#define STORE_EXISTS 2

#define STORE_NAME_MAX 64     /* tenant and user names */
#define STORE_DOMAIN_MAX 255
#define STORE_CIDR_MAX 64
#define STORE_HASH_MAX 128    /* crypto_pwhash_STRBYTES */

struct store;

struct store_tenant {
	int64_t id;
	char name[STORE_NAME_MAX + 1];
	int suspended;
	int64_t created;   /* unix seconds */
};

struct store_credential {
	int64_t id;
	int64_t tenant_id;
	char username[STORE_NAME_MAX + 1];
	char hash[STORE_HASH_MAX + 1];   /* argon2id encoded string */
	int suspended;                   /* this credential */
	int tenant_suspended;            /* its tenant */
};

struct store_domain {
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1]; /* lower case */
	int verified;
	int64_t created;
};

struct store_network {
	int64_t id;
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char cidr[STORE_CIDR_MAX + 1];     /* canonical "10.0.0.0/8", "2001:db8::/32" */
};

/* uri: "sqlite:PATH".  Creates the schema when missing. */
int store_open(const char *uri, struct store **store_r, char **err_r);
void store_close(struct store **store);
/* A counter that changes when any process commits a change (SQLite's
 * data_version): lets a daemon know when to reload cached tables. */
int64_t store_generation(struct store *store);

/* tenants; names are [A-Za-z0-9._-]{1,64} */
int store_tenant_add(struct store *st, const char *name, int64_t *id_r, char **err_r);
int store_tenant_get(struct store *st, const char *name, struct store_tenant *t_r, char **err_r);
int store_tenant_get_id(struct store *st, int64_t id, struct store_tenant *t_r, char **err_r);
int store_tenant_set_suspended(struct store *st, const char *name, int suspended, char **err_r);
/* *list_r malloc'd, ordered by name; free(). */
int store_tenant_list(struct store *st, struct store_tenant **list_r, size_t *n_r, char **err_r);

/* credentials (SMTP AUTH user names are unique across tenants) */
int store_credential_set(struct store *st, int64_t tenant_id, const char *username,
			 const char *hash, char **err_r); /* add or replace the hash */
int store_credential_lookup(struct store *st, const char *username,
			    struct store_credential *c_r, char **err_r);
int store_credential_list(struct store *st, int64_t tenant_id, struct store_credential **list_r,
			  size_t *n_r, char **err_r);
int store_credential_remove(struct store *st, int64_t tenant_id, const char *username,
			    char **err_r);
/* Suspends one login; its tenant's other logins keep working. */
int store_credential_set_suspended(struct store *st, const char *username, int suspended,
				   char **err_r);

/* domains (unique across tenants; stored lower-case) */
int store_domain_add(struct store *st, int64_t tenant_id, const char *domain, int verified,
		     char **err_r);
int store_domain_remove(struct store *st, int64_t tenant_id, const char *domain, char **err_r);
int store_domain_set_verified(struct store *st, const char *domain, int verified, char **err_r);
int store_domain_get(struct store *st, const char *domain, struct store_domain *d_r,
		     char **err_r);
/* tenant_id 0: every tenant's */
int store_domain_list(struct store *st, int64_t tenant_id, struct store_domain **list_r,
		      size_t *n_r, char **err_r);

/* trusted networks: a client address inside one may use the relay
 * listener (port 25) without AUTH, as that tenant */
int store_network_add(struct store *st, int64_t tenant_id, const char *cidr, char **err_r);
int store_network_remove(struct store *st, int64_t tenant_id, const char *cidr, char **err_r);
/* tenant_id 0: every tenant's.  A network belongs to one tenant. */
int store_network_list(struct store *st, int64_t tenant_id, struct store_network **list_r,
		       size_t *n_r, char **err_r);

#endif
