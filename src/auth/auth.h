/*
 * auth: password hashing (argon2id, libsodium), verification off the
 * event loop, a short-lived cache of recent successful verifications,
 * and the failed-login limiter.
 */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_HASH_MAX 128 /* >= crypto_pwhash_STRBYTES */
#define AUTH_PASSWORD_MAX 256

/* Call once before threads start (sodium_init). 0 ok, -1 error. */
int auth_init(void);

/* argon2id, libsodium's interactive limits.  0 ok, -1 error. */
int auth_hash_password(const char *password, char hash_r[AUTH_HASH_MAX]);
/* 1 match, 0 no match (or malformed hash).  Costs one full argon2id. */
int auth_verify_password(const char *hash, const char *password);

/* ---- verification pool: argon2 off the event loop ---------------------- */

struct auth_pool;
/* ok: 1 match, 0 no match.  Runs on a pool thread: marshal back yourself. */
typedef void auth_done_cb(void *ctx, int ok);

int auth_pool_new(unsigned nthreads, struct auth_pool **pool_r);
/* Waits for running jobs; pending jobs are answered ok=0. */
void auth_pool_free(struct auth_pool **pool);
/* hash NULL: an unknown user; a dummy hash is verified anyway so the
 * reply takes as long as for a known user, and ok is 0.  The pool copies
 * hash and password (and wipes its copy); a password or hash too long
 * to fit is answered 0 after the usual cost.  0 queued, -1 error (bad
 * arguments, out of memory, or 4096 jobs already waiting). */
int auth_pool_submit(struct auth_pool *pool, const char *hash, const char *password,
		     auth_done_cb *cb, void *ctx);

/* ---- cache of successful verifications --------------------------------- */

struct auth_cache;

struct auth_cache *auth_cache_new(size_t max_entries, uint32_t ttl_seconds);
void auth_cache_free(struct auth_cache **cache);
/* Keyed by a keyed hash (BLAKE2b) of user, password and stored hash, so a
 * changed password or hash misses.  1 hit, 0 miss.  now: unix seconds.
 * An entry lives ttl_seconds from its addition; max_entries or ttl 0
 * makes a cache that never hits. */
int auth_cache_check(struct auth_cache *cache, const char *username, const char *password,
		     const char *hash, int64_t now);
void auth_cache_add(struct auth_cache *cache, const char *username, const char *password,
		    const char *hash, int64_t now);

/* ---- failed-login limiter --------------------------------------------- */

struct auth_limiter;

/* A window opens at the first failure and lasts window_seconds; a max
 * of 0 means no limit.  Each of the two tables (addresses, users) keeps
 * at most 65536 counters, the oldest going first. */
struct auth_limiter *auth_limiter_new(uint32_t max_per_ip, uint32_t max_per_user,
				      uint32_t window_seconds);
/* The same with max_entries counters per table (1 .. 2^24). */
struct auth_limiter *auth_limiter_new_sized(uint32_t max_per_ip, uint32_t max_per_user,
					    uint32_t window_seconds, uint32_t max_entries);
void auth_limiter_free(struct auth_limiter **lim);
/* AUTH_LIMIT_OK, or which limit is exceeded (checked before verifying). */
enum auth_limit { AUTH_LIMIT_OK, AUTH_LIMIT_IP, AUTH_LIMIT_USER };
enum auth_limit auth_limiter_check(struct auth_limiter *lim, const char *ip, const char *user,
				   int64_t now);
void auth_limiter_fail(struct auth_limiter *lim, const char *ip, const char *user, int64_t now);
/* A success clears the user's count (not the address's). */
void auth_limiter_success(struct auth_limiter *lim, const char *user);
/* Counters held (both tables), for metrics and tests. */
size_t auth_limiter_entries(struct auth_limiter *lim);

#endif
