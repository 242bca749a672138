/*
 * cache: recent successful verifications, so a client that opens many
 * sessions does not cost one argon2id each.
 *
 * An entry is only a 32-byte BLAKE2b keyed hash of (user, password,
 * stored hash) and an expiry: the password is never kept, and the key is
 * random per process, so the table is no help to whoever reads memory or
 * a core dump without the key.  A changed password or a new stored hash
 * gives another key and misses.  The expiry counts from the addition; a
 * hit does not extend it.
 *
 * The table is set-associative: the key picks a bucket of
 * AUTH_CACHE_WAYS entries, an addition replaces a free or expired way,
 * else the least recently used one.  Fixed size, O(1), one mutex.
 */
#include "auth/auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_CACHE_WAYS 4
#define AUTH_CACHE_KEY 32

struct auth_cache_entry {
	unsigned char key[AUTH_CACHE_KEY];
	int64_t expires; /* 0: free */
	uint64_t used;   /* tick of the last add or hit */
};

struct auth_cache {
	pthread_mutex_t lock;
	uint32_t ttl;
	size_t nbuckets;
	uint64_t tick; /* under lock */
	unsigned char secret[crypto_generichash_KEYBYTES];
	struct auth_cache_entry *entries; /* nbuckets * AUTH_CACHE_WAYS */
};

struct auth_cache *auth_cache_new(size_t max_entries, uint32_t ttl_seconds)
{
	struct auth_cache *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->ttl = ttl_seconds;
	c->nbuckets = (max_entries + AUTH_CACHE_WAYS - 1) / AUTH_CACHE_WAYS;
	if (c->nbuckets > 0) {
		c->entries = calloc(c->nbuckets * AUTH_CACHE_WAYS, sizeof *c->entries);
		if (c->entries == NULL) {
			free(c);
			return NULL;
		}
	}
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->entries);
		free(c);
		return NULL;
	}
	randombytes_buf(c->secret, sizeof c->secret);
	return c;
}

void auth_cache_free(struct auth_cache **cache)
{
	struct auth_cache *c = *cache;

	if (c == NULL)
		return;
	*cache = NULL;
	pthread_mutex_destroy(&c->lock);
	sodium_memzero(c->secret, sizeof c->secret);
	free(c->entries);
	free(c);
}

/* The key: user and password cannot hold NUL, so NUL separators make the
 * concatenation unambiguous. */
static int auth_cache_key(const struct auth_cache *c, const char *username, const char *password,
                          const char *hash, unsigned char key[AUTH_CACHE_KEY])
{
	crypto_generichash_state st;

	if (username == NULL || password == NULL || hash == NULL)
		return -1;
	if (crypto_generichash_init(&st, c->secret, sizeof c->secret, AUTH_CACHE_KEY) != 0)
		return -1;
	crypto_generichash_update(&st, (const unsigned char *)username, strlen(username) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password, strlen(password) + 1);
	crypto_generichash_update(&st, (const unsigned char *)hash, strlen(hash) + 1);
	crypto_generichash_final(&st, key, AUTH_CACHE_KEY);
	sodium_memzero(&st, sizeof st);
	return 0;
}

static struct auth_cache_entry *auth_cache_bucket(const struct auth_cache *c,
                                                  const unsigned char key[AUTH_CACHE_KEY])
{
	uint64_t h;

	memcpy(&h, key, sizeof h);
	return &c->entries[(h % c->nbuckets) * AUTH_CACHE_WAYS];
}

int auth_cache_check(struct auth_cache *c, const char *username, const char *password,
                     const char *hash, int64_t now)
{
	unsigned char key[AUTH_CACHE_KEY];
	struct auth_cache_entry *b;
	int hit = 0;

	if (c == NULL || c->nbuckets == 0 || c->ttl == 0)
		return 0;
	if (auth_cache_key(c, username, password, hash, key) < 0)
		return 0;
	b = auth_cache_bucket(c, key);
	pthread_mutex_lock(&c->lock);
	for (int w = 0; w < AUTH_CACHE_WAYS; w++) {
		if (b[w].expires == 0 || sodium_memcmp(b[w].key, key, sizeof key) != 0)
			continue;
		if (now < b[w].expires) {
			b[w].used = ++c->tick;
			hit = 1;
		} else {
			b[w].expires = 0; /* expired: free the way */
		}
		break;
	}
	pthread_mutex_unlock(&c->lock);
	sodium_memzero(key, sizeof key);
	return hit;
}

void auth_cache_add(struct auth_cache *c, const char *username, const char *password,
                    const char *hash, int64_t now)
{
	unsigned char key[AUTH_CACHE_KEY];
	struct auth_cache_entry *b, *victim = NULL;
	int found = 0;

	if (c == NULL || c->nbuckets == 0 || c->ttl == 0)
		return;
	if (auth_cache_key(c, username, password, hash, key) < 0)
		return;
	b = auth_cache_bucket(c, key);
	pthread_mutex_lock(&c->lock);
	/* The same key renews its entry; else a free or expired way; else
	 * the least recently used. */
	for (int w = 0; w < AUTH_CACHE_WAYS && !found; w++)
		if (b[w].expires != 0 && sodium_memcmp(b[w].key, key, sizeof key) == 0) {
			victim = &b[w];
			found = 1;
		}
	for (int w = 0; w < AUTH_CACHE_WAYS && !found; w++) {
		if (b[w].expires == 0 || now >= b[w].expires) {
			victim = &b[w];
			break;
		}
		if (victim == NULL || b[w].used < victim->used)
			victim = &b[w];
	}
	memcpy(victim->key, key, sizeof key);
	victim->expires = now + (int64_t)c->ttl;
	victim->used = ++c->tick;
	pthread_mutex_unlock(&c->lock);
	sodium_memzero(key, sizeof key);
}
