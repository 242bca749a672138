/*
 * pool: argon2id verification on worker threads, so an event loop never
 * spends 50-100 ms of CPU inside one AUTH command.
 *
 * A mutex and a condition variable guard a FIFO of jobs.  A job owns
 * copies of the hash and the password in fixed buffers, wiped before the
 * job is freed.  Unknown users (hash NULL), over-long passwords and
 * malformed hashes still cost one verification against a dummy hash made
 * at pool start, so the reply time does not tell which users exist.
 * Memory: each running job holds argon2's 64 MiB, so nthreads bounds it;
 * the queue is bounded too (AUTH_POOL_QUEUE_MAX).
 *
 * auth_pool_free joins the workers: never call it from a callback.
 */
#include "auth/auth.h"
#include "util/util.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define AUTH_POOL_THREADS_MAX 64
/* Beyond this many waiting jobs, auth_pool_submit refuses: under a flood
 * the caller answers "try later" instead of queueing without end. */
#define AUTH_POOL_QUEUE_MAX 4096

struct auth_job {
	struct auth_job *next;
	auth_done_cb *cb;
	void *ctx;
	int known; /* 0: verify the dummy, answer 0 */
	char hash[AUTH_HASH_MAX];
	char password[AUTH_PASSWORD_MAX + 1];
};

struct auth_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct auth_job *head, *tail; /* under lock */
	size_t queued;                /* under lock */
	int stopping;                 /* under lock */
	unsigned nthreads;            /* started */
	pthread_t *threads;
	char dummy_hash[AUTH_HASH_MAX]; /* read-only once threads run */
};

static void auth_job_free(struct auth_job *job)
{
	sodium_memzero(job, sizeof *job);
	free(job);
}

static void auth_job_run(struct auth_pool *pool, struct auth_job *job)
{
	const char *hash = job->known ? job->hash : pool->dummy_hash;
	int ok = auth_verify_password(hash, job->password);

	job->cb(job->ctx, job->known ? ok : 0);
}

static void *auth_pool_thread(void *arg)
{
	struct auth_pool *pool = arg;
	struct auth_job *job;

	for (;;) {
		pthread_mutex_lock(&pool->lock);
		while (!pool->stopping && pool->head == NULL)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->stopping) {
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		job = pool->head;
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pool->queued--;
		pthread_mutex_unlock(&pool->lock);

		auth_job_run(pool, job);
		auth_job_free(job);
	}
}

int auth_pool_new(unsigned nthreads, struct auth_pool **pool_r)
{
	struct auth_pool *pool;
	char secret[32];

	*pool_r = NULL;
	if (nthreads == 0 || nthreads > AUTH_POOL_THREADS_MAX)
		return -1;
	pool = calloc(1, sizeof *pool);
	if (pool == NULL)
		return -1;
	pool->threads = calloc(nthreads, sizeof *pool->threads);
	if (pool->threads == NULL) {
		free(pool);
		return -1;
	}
	/* The dummy: a random password nobody knows, with the same cost as
	 * every real hash (auth_hash_password). */
	randombytes_buf(secret, sizeof secret);
	for (size_t i = 0; i < sizeof secret; i++)
		secret[i] = (char)('a' + ((unsigned char)secret[i] % 26));
	secret[sizeof secret - 1] = '\0';
	if (auth_hash_password(secret, pool->dummy_hash) < 0) {
		sodium_memzero(secret, sizeof secret);
		free(pool->threads);
		free(pool);
		return -1;
	}
	sodium_memzero(secret, sizeof secret);
	if (pthread_mutex_init(&pool->lock, NULL) != 0) {
		free(pool->threads);
		free(pool);
		return -1;
	}
	if (pthread_cond_init(&pool->cond, NULL) != 0) {
		pthread_mutex_destroy(&pool->lock);
		free(pool->threads);
		free(pool);
		return -1;
	}
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&pool->threads[i], NULL, auth_pool_thread, pool) != 0) {
			auth_pool_free(&pool);
			return -1;
		}
		pool->nthreads++;
	}
	*pool_r = pool;
	return 0;
}

void auth_pool_free(struct auth_pool **poolp)
{
	struct auth_pool *pool = *poolp;
	struct auth_job *pending, *job;

	if (pool == NULL)
		return;
	*poolp = NULL;
	/* Take the waiting jobs out first, so no thread starts one. */
	pthread_mutex_lock(&pool->lock);
	pool->stopping = 1;
	pending = pool->head;
	pool->head = pool->tail = NULL;
	pool->queued = 0;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);

	for (unsigned i = 0; i < pool->nthreads; i++)
		pthread_join(pool->threads[i], NULL);

	/* Answered here, on the caller's thread: the workers are gone. */
	while ((job = pending) != NULL) {
		pending = job->next;
		job->cb(job->ctx, 0);
		auth_job_free(job);
	}
	pthread_cond_destroy(&pool->cond);
	pthread_mutex_destroy(&pool->lock);
	sodium_memzero(pool->dummy_hash, sizeof pool->dummy_hash);
	free(pool->threads);
	free(pool);
}

int auth_pool_submit(struct auth_pool *pool, const char *hash, const char *password,
                     auth_done_cb *cb, void *ctx)
{
	struct auth_job *job;

	if (pool == NULL || password == NULL || cb == NULL)
		return -1;
	job = calloc(1, sizeof *job);
	if (job == NULL)
		return -1;
	job->cb = cb;
	job->ctx = ctx;
	/* A password or hash that does not fit cannot match: answer 0 after
	 * the usual cost rather than an error the caller would take for a
	 * temporary failure. */
	job->known =
	    hash != NULL && util_strlcpy(job->hash, hash, sizeof job->hash) < sizeof job->hash;
	if (util_strlcpy(job->password, password, sizeof job->password) >= sizeof job->password)
		job->known = 0;

	pthread_mutex_lock(&pool->lock);
	if (pool->stopping || pool->queued >= AUTH_POOL_QUEUE_MAX) {
		pthread_mutex_unlock(&pool->lock);
		auth_job_free(job);
		return -1;
	}
	if (pool->tail != NULL)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pool->queued++;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	return 0;
}
