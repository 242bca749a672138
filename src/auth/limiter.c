/*
 * limiter: failed logins counted per client address and per user name,
 * so neither one address trying many users nor many addresses trying one
 * user can guess passwords at argon2 speed.
 *
 * A counter's window opens at its first failure and lasts window_seconds;
 * failures inside it add up, and after it the count starts over.  A limit
 * is exceeded once count >= max inside the window (max 0: no limit).
 *
 * Each of the two tables holds at most max_entries counters, keyed by a
 * 16-byte keyed BLAKE2b of the address or name (fixed-size entries, and
 * a random key so no one can aim many names at one hash chain).  Entries
 * sit on a list in the order their windows opened: expired ones are
 * pruned from its head on every call, and when the table is full the
 * oldest window goes.  Known limit: a flood of distinct names from many
 * addresses can push a user's counter out early; the per-address table
 * still holds each of those addresses.
 */
#include "auth/auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_LIMITER_ENTRIES_DEFAULT 65536
#define AUTH_LIMITER_ENTRIES_MAX (1u << 24)
#define AUTH_LIMITER_KEY 16
#define NIL UINT32_MAX

struct auth_limit_entry {
	unsigned char key[AUTH_LIMITER_KEY];
	int64_t start;  /* window opened */
	uint32_t count; /* failures inside it */
	uint32_t hnext; /* hash chain, or the free list */
	uint32_t older; /* age list */
	uint32_t newer;
};

struct auth_limit_table {
	struct auth_limit_entry *e;
	uint32_t cap, used;
	uint32_t *buckets; /* nbuckets is a power of two >= cap */
	uint32_t mask;
	uint32_t free; /* free list through hnext */
	uint32_t oldest, newest;
	uint32_t max; /* the limit, 0: none */
};

struct auth_limiter {
	pthread_mutex_t lock;
	uint32_t window;
	unsigned char secret[crypto_generichash_KEYBYTES];
	struct auth_limit_table ip, user;
};

static int auth_limit_table_init(struct auth_limit_table *t, uint32_t cap, uint32_t max)
{
	uint32_t nb = 1;

	while (nb < cap)
		nb <<= 1;
	t->e = calloc(cap, sizeof *t->e);
	t->buckets = malloc((size_t)nb * sizeof *t->buckets);
	if (t->e == NULL || t->buckets == NULL)
		return -1;
	for (uint32_t i = 0; i < nb; i++)
		t->buckets[i] = NIL;
	for (uint32_t i = 0; i < cap; i++)
		t->e[i].hnext = i + 1 < cap ? i + 1 : NIL;
	t->cap = cap;
	t->used = 0;
	t->mask = nb - 1;
	t->free = 0;
	t->oldest = t->newest = NIL;
	t->max = max;
	return 0;
}

static void auth_limit_table_free(struct auth_limit_table *t)
{
	free(t->e);
	free(t->buckets);
}

static uint32_t auth_limit_bucket(const struct auth_limit_table *t,
                                  const unsigned char key[AUTH_LIMITER_KEY])
{
	uint32_t h;

	memcpy(&h, key, sizeof h);
	return h & t->mask;
}

static uint32_t auth_limit_find(const struct auth_limit_table *t,
                                const unsigned char key[AUTH_LIMITER_KEY])
{
	uint32_t i = t->buckets[auth_limit_bucket(t, key)];

	while (i != NIL && memcmp(t->e[i].key, key, AUTH_LIMITER_KEY) != 0)
		i = t->e[i].hnext;
	return i;
}

static void auth_limit_unlink_age(struct auth_limit_table *t, uint32_t i)
{
	struct auth_limit_entry *e = &t->e[i];

	if (e->older != NIL)
		t->e[e->older].newer = e->newer;
	else
		t->oldest = e->newer;
	if (e->newer != NIL)
		t->e[e->newer].older = e->older;
	else
		t->newest = e->older;
}

static void auth_limit_append_age(struct auth_limit_table *t, uint32_t i)
{
	t->e[i].older = t->newest;
	t->e[i].newer = NIL;
	if (t->newest != NIL)
		t->e[t->newest].newer = i;
	else
		t->oldest = i;
	t->newest = i;
}

static void auth_limit_remove(struct auth_limit_table *t, uint32_t i)
{
	uint32_t *p = &t->buckets[auth_limit_bucket(t, t->e[i].key)];

	while (*p != i)
		p = &t->e[*p].hnext;
	*p = t->e[i].hnext;
	auth_limit_unlink_age(t, i);
	memset(&t->e[i], 0, sizeof t->e[i]);
	t->e[i].hnext = t->free;
	t->free = i;
	t->used--;
}

static int auth_limit_expired(const struct auth_limit_entry *e, int64_t now, uint32_t window)
{
	return now - e->start >= (int64_t)window;
}

/* Windows open in the order of the list (unless the clock steps back, in
 * which case pruning stops early and the lookups below still check). */
static void auth_limit_prune(struct auth_limit_table *t, int64_t now, uint32_t window)
{
	while (t->oldest != NIL && auth_limit_expired(&t->e[t->oldest], now, window))
		auth_limit_remove(t, t->oldest);
}

static uint32_t auth_limit_count(const struct auth_limit_table *t,
                                 const unsigned char key[AUTH_LIMITER_KEY], int64_t now,
                                 uint32_t window)
{
	uint32_t i = auth_limit_find(t, key);

	if (i == NIL || auth_limit_expired(&t->e[i], now, window))
		return 0;
	return t->e[i].count;
}

static void auth_limit_fail(struct auth_limit_table *t, const unsigned char key[AUTH_LIMITER_KEY],
                            int64_t now, uint32_t window)
{
	uint32_t i = auth_limit_find(t, key), b;

	if (i != NIL) {
		if (auth_limit_expired(&t->e[i], now, window)) {
			t->e[i].start = now;
			t->e[i].count = 0;
			auth_limit_unlink_age(t, i);
			auth_limit_append_age(t, i);
		}
		if (t->e[i].count < UINT32_MAX)
			t->e[i].count++;
		return;
	}
	if (t->used == t->cap)
		auth_limit_remove(t, t->oldest);
	i = t->free;
	t->free = t->e[i].hnext;
	t->used++;
	memcpy(t->e[i].key, key, AUTH_LIMITER_KEY);
	t->e[i].start = now;
	t->e[i].count = 1;
	b = auth_limit_bucket(t, key);
	t->e[i].hnext = t->buckets[b];
	t->buckets[b] = i;
	auth_limit_append_age(t, i);
}

static void auth_limiter_key(const struct auth_limiter *lim, const char *s,
                             unsigned char key[AUTH_LIMITER_KEY])
{
	crypto_generichash(key, AUTH_LIMITER_KEY, (const unsigned char *)s, strlen(s), lim->secret,
	                   sizeof lim->secret);
}

struct auth_limiter *auth_limiter_new_sized(uint32_t max_per_ip, uint32_t max_per_user,
                                            uint32_t window_seconds, uint32_t max_entries)
{
	struct auth_limiter *lim;

	if (max_entries == 0 || max_entries > AUTH_LIMITER_ENTRIES_MAX)
		return NULL;
	lim = calloc(1, sizeof *lim);
	if (lim == NULL)
		return NULL;
	if (auth_limit_table_init(&lim->ip, max_entries, max_per_ip) < 0 ||
	    auth_limit_table_init(&lim->user, max_entries, max_per_user) < 0 ||
	    pthread_mutex_init(&lim->lock, NULL) != 0) {
		auth_limit_table_free(&lim->ip);
		auth_limit_table_free(&lim->user);
		free(lim);
		return NULL;
	}
	lim->window = window_seconds;
	randombytes_buf(lim->secret, sizeof lim->secret);
	return lim;
}

struct auth_limiter *auth_limiter_new(uint32_t max_per_ip, uint32_t max_per_user,
                                      uint32_t window_seconds)
{
	return auth_limiter_new_sized(max_per_ip, max_per_user, window_seconds,
	                              AUTH_LIMITER_ENTRIES_DEFAULT);
}

void auth_limiter_free(struct auth_limiter **limp)
{
	struct auth_limiter *lim = *limp;

	if (lim == NULL)
		return;
	*limp = NULL;
	pthread_mutex_destroy(&lim->lock);
	auth_limit_table_free(&lim->ip);
	auth_limit_table_free(&lim->user);
	sodium_memzero(lim->secret, sizeof lim->secret);
	free(lim);
}

enum auth_limit auth_limiter_check(struct auth_limiter *lim, const char *ip, const char *user,
                                   int64_t now)
{
	unsigned char kip[AUTH_LIMITER_KEY], kuser[AUTH_LIMITER_KEY];
	enum auth_limit res = AUTH_LIMIT_OK;

	if (ip != NULL)
		auth_limiter_key(lim, ip, kip);
	if (user != NULL)
		auth_limiter_key(lim, user, kuser);
	pthread_mutex_lock(&lim->lock);
	auth_limit_prune(&lim->ip, now, lim->window);
	auth_limit_prune(&lim->user, now, lim->window);
	if (ip != NULL && lim->ip.max > 0 &&
	    auth_limit_count(&lim->ip, kip, now, lim->window) >= lim->ip.max)
		res = AUTH_LIMIT_IP;
	else if (user != NULL && lim->user.max > 0 &&
	         auth_limit_count(&lim->user, kuser, now, lim->window) >= lim->user.max)
		res = AUTH_LIMIT_USER;
	pthread_mutex_unlock(&lim->lock);
	return res;
}

void auth_limiter_fail(struct auth_limiter *lim, const char *ip, const char *user, int64_t now)
{
	unsigned char kip[AUTH_LIMITER_KEY], kuser[AUTH_LIMITER_KEY];

	if (ip != NULL)
		auth_limiter_key(lim, ip, kip);
	if (user != NULL)
		auth_limiter_key(lim, user, kuser);
	pthread_mutex_lock(&lim->lock);
	auth_limit_prune(&lim->ip, now, lim->window);
	auth_limit_prune(&lim->user, now, lim->window);
	if (ip != NULL)
		auth_limit_fail(&lim->ip, kip, now, lim->window);
	if (user != NULL)
		auth_limit_fail(&lim->user, kuser, now, lim->window);
	pthread_mutex_unlock(&lim->lock);
}

void auth_limiter_success(struct auth_limiter *lim, const char *user)
{
	unsigned char key[AUTH_LIMITER_KEY];
	uint32_t i;

	if (user == NULL)
		return;
	auth_limiter_key(lim, user, key);
	pthread_mutex_lock(&lim->lock);
	i = auth_limit_find(&lim->user, key);
	if (i != NIL)
		auth_limit_remove(&lim->user, i);
	pthread_mutex_unlock(&lim->lock);
}

size_t auth_limiter_entries(struct auth_limiter *lim)
{
	size_t n;

	pthread_mutex_lock(&lim->lock);
	n = (size_t)lim->ip.used + lim->user.used;
	pthread_mutex_unlock(&lim->lock);
	return n;
}
