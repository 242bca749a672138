/*
 * spool API: open/close, ids, submission into the writer's queue,
 * synchronous state changes, index queries and loading message data.
 * Contract in spool.h; the writer is writer.c, recovery recover.c.
 */
#include "spool/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* Queue ids: 36 bits of unix seconds, then 28 bits that start at a random
 * point each second (and at the largest id found in the spool), counted
 * up: sortable by time, unique across restarts, monotonic in a process. */
#define ID_SECONDS_SHIFT 28
#define ID_RANDOM_MASK ((1u << 27) - 1) /* leaves 2^27 ids per second of headroom */

static int set_err(char **err_r, const char *fmt, ...) UTIL_PRINTF(2, 3);
static int set_err(char **err_r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) < 0)
		buf_free(&b);
	va_end(ap);
	*err_r = b.data;
	return -1;
}

static struct spool *spool_alloc(const char *dir, int readonly)
{
	struct spool *s = calloc(1, sizeof *s);

	if (s == NULL)
		return NULL;
	s->dirfd = s->lockfd = s->seg_fd = -1;
	s->readonly = readonly;
	s->qtail = &s->qhead;
	s->batch_max = SPOOL_BATCH_DEFAULT;
	s->segment_max = SPOOL_SEGMENT_MAX;
	if ((s->dir = util_strdup(dir)) == NULL || spool_index_init(&s->idx) < 0) {
		free(s->dir);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	{
		/* the writer waits on work_cv with a deadline (lazy records) */
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->work_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&s->done_cv, NULL);
	if (getrandom(&s->id_base, sizeof s->id_base, 0) != sizeof s->id_base)
		s->id_base = util_now_ms() ^ (uint64_t)getpid() << 20;
	s->id_base &= ID_RANDOM_MASK;
	return s;
}

static void spool_destroy(struct spool *s)
{
	spool_index_free(&s->idx);
	buf_free(&s->wbuf);
	buf_free(&s->tombs);
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->lockfd >= 0)
		close(s->lockfd); /* releases the flock */
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->work_cv);
	pthread_cond_destroy(&s->done_cv);
	free(s->dir);
	free(s);
}

int spool_open(const struct spool_config *cfg, struct spool **spool_r, char **err_r)
{
	struct spool *s;
	int err;

	*spool_r = NULL;
	*err_r = NULL;
	if (cfg->dir == NULL || cfg->dir[0] == '\0')
		return set_err(err_r, "spool: no directory configured");
	if ((s = spool_alloc(cfg->dir, 0)) == NULL)
		return set_err(err_r, "spool: out of memory");
	if (cfg->batch_max)
		s->batch_max = cfg->batch_max;
	if (cfg->segment_max)
		s->segment_max = cfg->segment_max;
	if (mkdir(cfg->dir, 0700) < 0 && errno != EEXIST) {
		set_err(err_r, "spool: mkdir %s: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	s->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		set_err(err_r, "spool: open %s: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lockfd < 0) {
		set_err(err_r, "spool: open %s/lock: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	if (flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			set_err(err_r, "spool: %s is locked by another process (is sluiced running?)",
				cfg->dir);
		else
			set_err(err_r, "spool: lock %s/lock: %s", cfg->dir, strerror(errno));
		goto fail;
	}
	if (spool_recover(s, err_r) < 0) {
		if (*err_r == NULL)
			set_err(err_r, "spool: recovery of %s failed", cfg->dir);
		goto fail;
	}
	if ((err = pthread_create(&s->writer, NULL, spool_writer_main, s)) != 0) {
		set_err(err_r, "spool: writer thread: %s", strerror(err));
		goto fail;
	}
	s->writer_started = 1;
	*spool_r = s;
	return 0;
fail:
	spool_destroy(s);
	return -1;
}

int spool_open_readonly(const char *dir, struct spool **spool_r, char **err_r)
{
	struct spool *s;

	*spool_r = NULL;
	*err_r = NULL;
	if ((s = spool_alloc(dir, 1)) == NULL)
		return set_err(err_r, "spool: out of memory");
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		set_err(err_r, "spool: open %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (spool_recover(s, err_r) < 0) {
		if (*err_r == NULL)
			set_err(err_r, "spool: reading %s failed", dir);
		goto fail;
	}
	s->closing = 1; /* refuses submissions */
	*spool_r = s;
	return 0;
fail:
	spool_destroy(s);
	return -1;
}

void spool_close(struct spool **spool)
{
	struct spool *s = *spool;

	if (s == NULL)
		return;
	*spool = NULL;
	pthread_mutex_lock(&s->mu);
	s->closing = 1;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	if (s->writer_started)
		pthread_join(s->writer, NULL); /* it drains the queue first */
	spool_destroy(s);
}

void spool_new_id(struct spool *s, char id_r[SPOOL_ID_LEN + 1])
{
	int64_t now = util_wall_seconds();
	uint64_t id;

	pthread_mutex_lock(&s->mu);
	id = (uint64_t)(now < 0 ? 0 : now) << ID_SECONDS_SHIFT | s->id_base;
	if (id <= s->last_id)
		id = s->last_id + 1;
	s->last_id = id;
	pthread_mutex_unlock(&s->mu);
	snprintf(id_r, SPOOL_ID_LEN + 1, "%016" PRIx64, id);
}

/* Hand op to the writer; the spool owns it from then on.  -1 if closing. */
static int enqueue(struct spool *s, struct spool_op *op)
{
	pthread_mutex_lock(&s->mu);
	if (s->closing) {
		pthread_mutex_unlock(&s->mu);
		errno = s->readonly ? EROFS : ESHUTDOWN;
		return -1;
	}
	*s->qtail = op;
	s->qtail = &op->next;
	pthread_cond_signal(&s->work_cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void op_free(struct spool_op *op)
{
	buf_free(&op->rec);
	free(op);
}

int spool_submit(struct spool *s, const struct spool_message *m, spool_done_cb *cb, void *ctx)
{
	struct spool_op *op;
	struct spool_entry *e;

	if (s->readonly) {
		errno = EROFS;
		return -1;
	}
	if (!spool_id_valid(m->id) || m->nrcpts == 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	e = spool_index_find(&s->idx, m->id);
	pthread_mutex_unlock(&s->mu);
	if (e != NULL) {
		errno = EEXIST;
		return -1;
	}
	if ((op = calloc(1, sizeof *op)) == NULL)
		return -1;
	if (spool_record_encode_msg(&op->rec, m) < 0) {
		op_free(op);
		return -1;
	}
	op->is_msg = 1;
	op->cb = cb;
	op->ctx = ctx;
	memcpy(op->id, m->id, sizeof op->id);
	if (enqueue(s, op) < 0) {
		op_free(op);
		return -1;
	}
	return 0;
}

/* ---- synchronous state changes ------------------------------------------- */

struct sync_wait {
	struct spool *s;
	int done;
	int status;
};

static void sync_done(void *ctx, int status, const char *id)
{
	struct sync_wait *w = ctx;

	pthread_mutex_lock(&w->s->mu);
	w->done = 1;
	w->status = status;
	pthread_cond_broadcast(&w->s->done_cv);
	pthread_mutex_unlock(&w->s->mu);
}

/* Check that id is a pending message with more than rcpt_index recipients. */
static int check_pending(struct spool *s, const char *id, size_t rcpt_index)
{
	struct spool_entry *e;
	int ok;

	if (s->readonly) {
		errno = EROFS;
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	e = spool_index_find(&s->idx, id);
	ok = e != NULL && !e->final;
	if (ok && rcpt_index != SIZE_MAX && rcpt_index >= e->nrcpts) {
		pthread_mutex_unlock(&s->mu);
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_unlock(&s->mu);
	if (!ok) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/* Queue op (record already encoded) and wait for its group commit. */
static int commit_sync(struct spool *s, struct spool_op *op, const char *id)
{
	struct sync_wait w = {.s = s};

	op->cb = sync_done;
	op->ctx = &w;
	memcpy(op->id, id, SPOOL_ID_LEN);
	op->id[SPOOL_ID_LEN] = '\0';
	if (enqueue(s, op) < 0) {
		op_free(op);
		return -1;
	}
	pthread_mutex_lock(&s->mu);
	while (!w.done)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (w.status < 0) {
		errno = -w.status;
		return -1;
	}
	return 0;
}

int spool_delete(struct spool *s, const char *id)
{
	struct spool_op *op;

	if (check_pending(s, id, SIZE_MAX) < 0)
		return -1;
	if ((op = calloc(1, sizeof *op)) == NULL)
		return -1;
	if (spool_record_encode_delete(&op->rec, id) < 0) {
		op_free(op);
		return -1;
	}
	return commit_sync(s, op, id);
}

int spool_set_held(struct spool *s, const char *id, int held)
{
	struct spool_op *op;

	if (check_pending(s, id, SIZE_MAX) < 0)
		return -1;
	if ((op = calloc(1, sizeof *op)) == NULL)
		return -1;
	if (spool_record_encode_hold(&op->rec, id, held) < 0) {
		op_free(op);
		return -1;
	}
	return commit_sync(s, op, id);
}

static struct spool_op *rcpt_state_op(struct spool *s, const char *id, size_t rcpt_index,
				      const struct spool_rcpt *state)
{
	struct spool_op *op;

	if (rcpt_index >= UINT32_MAX) {
		errno = EINVAL;
		return NULL;
	}
	if (check_pending(s, id, rcpt_index) < 0)
		return NULL;
	if ((op = calloc(1, sizeof *op)) == NULL)
		return NULL;
	if (spool_record_encode_rcpt_state(&op->rec, id, (uint32_t)rcpt_index, state) < 0) {
		op_free(op);
		return NULL;
	}
	return op;
}

int spool_set_rcpt_state(struct spool *s, const char *id, size_t rcpt_index,
			 const struct spool_rcpt *state)
{
	struct spool_op *op = rcpt_state_op(s, id, rcpt_index, state);

	if (op == NULL)
		return -1;
	return commit_sync(s, op, id);
}

/* Queue op (record already encoded) for the next group commit; cb runs on
 * the writer thread once it is durable or failed. */
static int commit_async(struct spool *s, struct spool_op *op, const char *id, spool_done_cb *cb,
			void *ctx)
{
	op->cb = cb;
	op->ctx = ctx;
	memcpy(op->id, id, SPOOL_ID_LEN);
	op->id[SPOOL_ID_LEN] = '\0';
	if (enqueue(s, op) < 0) {
		op_free(op);
		return -1;
	}
	return 0;
}

int spool_set_rcpt_state_async(struct spool *s, const char *id, size_t rcpt_index,
			       const struct spool_rcpt *state, spool_done_cb *cb, void *ctx)
{
	struct spool_op *op;

	if (cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((op = rcpt_state_op(s, id, rcpt_index, state)) == NULL)
		return -1;
	/* a failed recipient is final and its DSN ordering depends on it */
	op->lazy = state->state == SPOOL_RCPT_DELIVERED || state->state == SPOOL_RCPT_PENDING;
	return commit_async(s, op, id, cb, ctx);
}

/* ---- queries ----------------------------------------------------------- */

size_t spool_count(struct spool *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->idx.npending;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void spool_stats(struct spool *s, struct spool_stats *stats_r)
{
	pthread_mutex_lock(&s->mu);
	*stats_r = s->stats;
	pthread_mutex_unlock(&s->mu);
}

/* fn runs without the lock held (it may call back into the spool), on a
 * snapshot of the ids; a message finalised meanwhile is skipped. */
void spool_foreach(struct spool *s, int (*fn)(void *ctx, const struct spool_message *m), void *ctx)
{
	uint64_t *keys;
	size_t n = 0;

	pthread_mutex_lock(&s->mu);
	keys = malloc((s->idx.npending ? s->idx.npending : 1) * sizeof *keys);
	if (keys == NULL) {
		pthread_mutex_unlock(&s->mu);
		log_err("spool foreach-failed error=out-of-memory");
		return;
	}
	for (struct spool_entry *e = s->idx.head; e; e = e->next)
		if (!e->final)
			keys[n++] = e->key;
	pthread_mutex_unlock(&s->mu);

	for (size_t i = 0; i < n; i++) {
		struct spool_message m;
		struct spool_entry *e;
		char id[SPOOL_ID_LEN + 1];
		int r;

		snprintf(id, sizeof id, "%016" PRIx64, keys[i]);
		pthread_mutex_lock(&s->mu);
		e = spool_index_find(&s->idx, id);
		r = e && !e->final ? spool_entry_export(e, &m) : 1;
		pthread_mutex_unlock(&s->mu);
		if (r < 0)
			log_err("spool foreach-failed id=%s error=out-of-memory", id);
		if (r != 0)
			continue;
		r = fn(ctx, &m);
		spool_message_free(&m);
		if (r != 0)
			break;
	}
	free(keys);
}

/* Read the MSG record back (checksum verified again) for its data. */
static int load_data(struct spool *s, uint64_t seg, uint64_t off, uint32_t len,
		     struct spool_message *m)
{
	struct spool_record rec;
	const char *reason = NULL;
	char name[32], *p;
	size_t used = 0, got = 0;
	int fd, r;

	spool_segment_name(seg, name);
	if ((fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 1 : -1; /* deleted meanwhile */
	if ((p = malloc(len)) == NULL) {
		close(fd);
		return -1;
	}
	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	r = spool_record_parse(p, got, &rec, &used, &reason);
	if (r != 1 || used != len || rec.type != SPOOL_REC_MSG || strcmp(rec.id, m->id) != 0) {
		log_err("spool load-failed id=%s segment=%s offset=%" PRIu64 " reason=%s", m->id,
			name, off, reason ? reason : "mismatch");
		free(p);
		errno = EIO;
		return -1;
	}
	if ((m->data = malloc(rec.data.len + 1)) == NULL) {
		free(p);
		return -1;
	}
	memcpy(m->data, rec.data.p, rec.data.len);
	m->data[rec.data.len] = '\0';
	m->len = rec.data.len;
	free(p);
	return 0;
}

int spool_load(struct spool *s, const char *id, struct spool_message *m_r)
{
	struct spool_entry *e;
	uint64_t seg = 0, off = 0;
	uint32_t len = 0;
	int r;

	memset(m_r, 0, sizeof *m_r);
	pthread_mutex_lock(&s->mu);
	e = spool_index_find(&s->idx, id);
	r = e && !e->final ? spool_entry_export(e, m_r) : 1;
	if (r == 0) {
		seg = e->seg;
		off = e->off;
		len = e->len;
	}
	pthread_mutex_unlock(&s->mu);
	if (r != 0)
		return r;
	r = load_data(s, seg, off, len, m_r);
	if (r != 0)
		spool_message_free(m_r);
	return r;
}

void spool_message_free(struct spool_message *m)
{
	if (m == NULL)
		return;
	free(m->sender);
	for (size_t i = 0; i < m->nrcpts && m->rcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].last_reply);
	}
	free(m->rcpts);
	free(m->data);
	memset(m, 0, sizeof *m);
}
