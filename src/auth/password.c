/*
 * password: argon2id hashing and verification (libsodium).  Hashes use
 * libsodium's "interactive" limits (2 passes, 64 MiB): about 50-100 ms on
 * one core, which is why verification runs on the pool (pool.c) and not
 * on an event loop.
 */
#include "auth/auth.h"

#include <sodium.h>
#include <string.h>

_Static_assert(AUTH_HASH_MAX >= crypto_pwhash_argon2id_STRBYTES,
               "AUTH_HASH_MAX must hold an encoded argon2id hash");

int auth_init(void)
{
	/* 1 means already initialised: fine. */
	return sodium_init() < 0 ? -1 : 0;
}

int auth_hash_password(const char *password, char hash_r[AUTH_HASH_MAX])
{
	size_t len;

	if (password == NULL)
		return -1;
	len = strnlen(password, AUTH_PASSWORD_MAX + 1);
	if (len > AUTH_PASSWORD_MAX)
		return -1;
	if (crypto_pwhash_argon2id_str(hash_r, password, len,
	                               crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE,
	                               crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE) != 0)
		return -1;
	return 0;
}

int auth_verify_password(const char *hash, const char *password)
{
	size_t len;

	if (hash == NULL || password == NULL)
		return 0;
	/* libsodium reads the hash as a C string within STRBYTES. */
	if (strnlen(hash, AUTH_HASH_MAX) >= AUTH_HASH_MAX)
		return 0;
	len = strnlen(password, AUTH_PASSWORD_MAX + 1);
	if (len > AUTH_PASSWORD_MAX)
		return 0;
	/* Handles $argon2id$ and $argon2i$; anything else is -1. */
	return crypto_pwhash_str_verify(hash, password, len) == 0 ? 1 : 0;
}
