/*
 * store_check: validation and canonical forms of what the store keeps
 * (tenant and user names, sending domains, trusted networks).  Private
 * to the store module and shared by its back-ends, so SQLite and a later
 * PostgreSQL back-end accept exactly the same inputs.
 *
 * Each function returns 0 when the input is acceptable, or -1 and fills
 * err[errsize] with a text for the operator that names the bad input
 * (non-printable bytes shown as '?').
 */
#ifndef SLUICE_STORE_CHECK_H
#define SLUICE_STORE_CHECK_H

#include <stddef.h>

#include "store/store.h"

#define STORE_CHECK_ERR_MAX 256

/* what: "tenant", "user"... for the message.  Names are [A-Za-z0-9._-]{1,64};
 * a user name may also hold '@' so "alice@example.com" works as a login. */
int store_check_name(const char *what, const char *name, char *err, size_t errsize);
int store_check_username(const char *name, char *err, size_t errsize);

/* LDH labels of 1-63 octets, at least two labels, 253 octets at most, a
 * top-level label that is not all digits; one trailing dot is dropped.
 * out gets the lower-case form. */
int store_check_domain(const char *domain, char out[STORE_DOMAIN_MAX + 1], char *err,
                       size_t errsize);

/* "ADDR/PREFIX" or a bare address (a host: /32 or /128).  Refuses host
 * bits set, a /0 (it would trust every address) and IPv4-mapped IPv6.
 * out gets the canonical text: "10.0.0.0/8", "2001:db8::/32". */
int store_check_cidr(const char *cidr, char out[STORE_CIDR_MAX + 1], char *err, size_t errsize);

/* An argon2 encoded string ("$argon2id$v=19$..."), printable, short enough:
 * guards against storing a plain password by mistake. */
int store_check_hash(const char *username, const char *hash, char *err, size_t errsize);

#endif
