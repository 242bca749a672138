/*
 * The writer thread: group commit.  It takes everything queued (up to
 * batch_max records), appends it to the active segment with one write,
 * fdatasync()s once, applies the records to the index and only then runs
 * the callbacks.  While it syncs, new submissions queue up and form the
 * next batch; with an empty queue it sleeps on work_cv.
 *
 * Lazy records (a recipient delivered or deferred, from the delivery
 * engine) need not be on disk before their callback: losing one in a
 * crash repeats a delivery or an attempt, never loses mail.  A batch of
 * only lazy records is written without fdatasync when the last one was
 * less than SPOOL_LAZY_SYNC_MS ago; the next batch's fdatasync covers it,
 * and an idle writer syncs them when that time is up.  So under load,
 * deliveries cost no fsync of their own.  Anything else in a batch (a
 * message, a failure, an operator's change) syncs it as before.
 *
 * Failure: every callback of the batch gets -errno and the segment is cut
 * back to where the batch began.  After a failed fdatasync the page cache
 * can no longer be trusted, so that segment is abandoned (closed, never
 * written again) and the next batch starts a new one.
 */
#include "spool/spool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t writer_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void spool_unlink_segments(struct spool *s, const uint64_t *seqs, size_t n)
{
	char name[32];

	for (size_t i = 0; i < n; i++) {
		spool_segment_name(seqs[i], name);
		if ((unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT) || fsync(s->dirfd) < 0) {
			/* Stop here: later segments may hold the records that
			 * finalised messages in this one.  The files stay until
			 * the next start collects them again. */
			log_err("spool unlink-failed segment=%s error=%s", name, strerror(errno));
			return;
		}
		log_info("spool segment-deleted segment=%s", name);
		pthread_mutex_lock(&s->mu);
		s->stats.segments_deleted++;
		pthread_mutex_unlock(&s->mu);
	}
}

static void segment_close(struct spool *s, const char *why)
{
	char name[32];

	if (s->seg_fd < 0)
		return;
	spool_segment_name(s->seg_seq, name);
	if (why)
		log_warn("spool segment-abandoned segment=%s size=%" PRIu64 " reason=%s", name,
			 s->seg_size, why);
	close(s->seg_fd);
	s->seg_fd = -1;
	pthread_mutex_lock(&s->mu);
	s->seg_seq = 0;
	pthread_mutex_unlock(&s->mu);
}

/* A new segment, made durable in the folder before anything in it is
 * acknowledged.  0 or -errno. */
static int segment_create(struct spool *s)
{
	uint64_t seq = s->next_seq++;
	char name[32];
	int fd, err;

	spool_segment_name(seq, name);
	fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fsync(s->dirfd) < 0) {
		err = -errno;
		close(fd);
		unlinkat(s->dirfd, name, 0);
		return err;
	}
	pthread_mutex_lock(&s->mu);
	err = spool_index_add_segment(&s->idx, seq) < 0 ? -ENOMEM : 0;
	if (err == 0) {
		s->seg_seq = seq;
		s->stats.segments_created++;
	}
	pthread_mutex_unlock(&s->mu);
	if (err) {
		close(fd);
		unlinkat(s->dirfd, name, 0);
		return err;
	}
	s->seg_fd = fd;
	s->seg_size = 0;
	log_debug("spool segment-created segment=%s", name);
	return 0;
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int do_fdatasync(struct spool *s, int fd)
{
	return s->io.fdatasync ? s->io.fdatasync(fd) : fdatasync(fd);
}

static int do_ftruncate(struct spool *s, int fd, uint64_t len)
{
	return s->io.ftruncate ? s->io.ftruncate(fd, (off_t)len) : ftruncate(fd, (off_t)len);
}

void spool_set_io_hooks(struct spool *s, const struct spool_io_hooks *hooks)
{
	pthread_mutex_lock(&s->mu);
	s->io = *hooks;
	pthread_mutex_unlock(&s->mu);
}

/* fdatasync the active segment for lazy records written without one.
 * A failure abandons the segment, as in commit(). */
static void sync_lazy(struct spool *s)
{
	if (!s->unsynced || s->seg_fd < 0)
		return;
	pthread_mutex_lock(&s->mu);
	s->stats.fsyncs++;
	pthread_mutex_unlock(&s->mu);
	if (do_fdatasync(s, s->seg_fd) < 0) {
		/* the lazy records may be lost: that repeats deliveries, and
		 * the next batch goes to a new segment */
		log_err("spool lazy-sync-failed error=%s", strerror(errno));
		segment_close(s, "fdatasync-failed");
	}
	s->unsynced = 0;
	s->last_sync_ms = writer_now_ms();
}

/* Write s->wbuf as one batch at *off_r; fdatasync it unless lazy.  0 or
 * -errno.  When the segment had to be abandoned, *abandoned_r is its
 * number (the batch may be in it despite the error), else 0. */
static int commit(struct spool *s, int lazy, uint64_t *off_r, uint64_t *abandoned_r)
{
	uint64_t off0;
	int err;

	*abandoned_r = 0;
	if (s->seg_fd >= 0 && s->seg_size > 0 && s->seg_size + s->wbuf.len > s->segment_max) {
		sync_lazy(s);
		segment_close(s, NULL); /* roll; it was synced with its last batch */
	}
	if (s->seg_fd < 0 && (err = segment_create(s)) < 0)
		return err;
	*off_r = off0 = s->seg_size;
	err = pwrite_all(s->seg_fd, s->wbuf.data, s->wbuf.len, off0);
	if (err == 0 && lazy) {
		s->seg_size += s->wbuf.len;
		s->unsynced = 1;
		return 0;
	}
	if (err == 0) {
		pthread_mutex_lock(&s->mu);
		s->stats.fsyncs++;
		pthread_mutex_unlock(&s->mu);
		if (do_fdatasync(s, s->seg_fd) == 0) {
			s->seg_size += s->wbuf.len;
			s->unsynced = 0;
			s->last_sync_ms = writer_now_ms();
			return 0;
		}
		err = -errno;
		/* Best effort to drop the batch; the segment is done either way. */
		if (do_ftruncate(s, s->seg_fd, off0) == 0)
			(void)do_fdatasync(s, s->seg_fd);
		*abandoned_r = s->seg_seq;
		segment_close(s, "fdatasync-failed");
		return err;
	}
	if (do_ftruncate(s, s->seg_fd, off0) < 0 || do_fdatasync(s, s->seg_fd) < 0) {
		*abandoned_r = s->seg_seq;
		segment_close(s, "truncate-failed");
	}
	return err;
}

/* Apply every record of buf[0..len), found at (seg, off), to the index. */
static void apply_records(struct spool *s, const char *p, size_t len, uint64_t seg, uint64_t off)
{
	size_t pos = 0;

	while (pos < len) {
		struct spool_record rec;
		const char *reason = NULL;
		size_t used;

		if (spool_record_parse(p + pos, len - pos, &rec, &used, &reason) != 1) {
			log_panic("spool index-failed offset=%" PRIu64 " reason=%s", off + pos,
				  reason ? reason : "incomplete");
		}
		if (spool_index_apply(&s->idx, &rec, seg, off + pos, used) < 0)
			/* durable, so the next start will see it */
			log_err("spool index-failed id=%s reason=out-of-memory", rec.id);
		pos += used;
	}
}

/* A failed batch whose segment was abandoned: its messages were refused,
 * but they may be on disk.  Index them as final (so the segment stays
 * accounted for) and queue DELETE records for them. */
static void bury(struct spool *s, struct spool_op *batch, uint64_t seg, uint64_t off)
{
	for (struct spool_op *op = batch; op; op = op->next) {
		struct spool_record rec;
		const char *reason;
		size_t used;

		if (op->is_msg &&
		    spool_record_parse(op->rec.data, op->rec.len, &rec, &used, &reason) == 1) {
			if (spool_index_apply(&s->idx, &rec, seg, off, used) == 0)
				spool_index_mark_final(&s->idx, op->id);
			if (spool_record_encode_delete(&s->tombs, op->id) < 0)
				log_err("spool tombstone-failed id=%s error=out-of-memory", op->id);
		}
		off += op->rec.len;
	}
}

void *spool_writer_main(void *arg)
{
	struct spool *s = arg;
	int exiting = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct spool_op *batch, **tail, *op, *next;
		uint64_t *dead = NULL, off = 0, abandoned = 0;
		size_t n = 0, ndead = 0, bytes = 0, ntombs;
		int status, lazy;

		while (s->qhead == NULL && !s->closing) {
			if (s->unsynced) {
				/* lazy records wait at most SPOOL_LAZY_SYNC_MS */
				int64_t left = s->last_sync_ms + SPOOL_LAZY_SYNC_MS - writer_now_ms();
				struct timespec until;

				if (left <= 0) {
					pthread_mutex_unlock(&s->mu);
					sync_lazy(s);
					pthread_mutex_lock(&s->mu);
					continue;
				}
				clock_gettime(CLOCK_MONOTONIC, &until);
				until.tv_sec += left / 1000;
				until.tv_nsec += (left % 1000) * 1000000;
				if (until.tv_nsec >= 1000000000) {
					until.tv_sec++;
					until.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&s->work_cv, &s->mu, &until);
				continue;
			}
			pthread_cond_wait(&s->work_cv, &s->mu);
		}
		if (s->qhead == NULL) {
			/* Last chance to write tombstones left by a failure. */
			if (s->tombs.len == 0 || exiting)
				break;
			exiting = 1;
		}
		batch = s->qhead;
		tail = &s->qhead;
		while (*tail && n < s->batch_max && bytes < SPOOL_BATCH_BYTES) {
			bytes += (*tail)->rec.len;
			tail = &(*tail)->next;
			n++;
		}
		s->qhead = *tail;
		*tail = NULL;
		if (s->qhead == NULL)
			s->qtail = &s->qhead;
		s->stats.batches++;
		pthread_mutex_unlock(&s->mu);

		buf_reset(&s->wbuf);
		ntombs = s->tombs.len;
		lazy = ntombs == 0 && !exiting &&
		       writer_now_ms() - s->last_sync_ms < SPOOL_LAZY_SYNC_MS;
		for (op = batch; op && lazy; op = op->next)
			lazy = op->lazy;
		status = buf_append(&s->wbuf, s->tombs.data, s->tombs.len) < 0 ? -ENOMEM : 0;
		for (op = batch; op && status == 0; op = op->next)
			if (buf_append(&s->wbuf, op->rec.data, op->rec.len) < 0)
				status = -ENOMEM;
		if (status == 0)
			status = commit(s, lazy, &off, &abandoned);
		if (status < 0)
			log_err("spool commit-failed records=%zu bytes=%zu error=%s", n, s->wbuf.len,
				strerror(-status));

		pthread_mutex_lock(&s->mu);
		if (status == 0) {
			apply_records(s, s->wbuf.data, s->wbuf.len, s->seg_seq, off);
			s->stats.records += n;
			for (op = batch; op; op = op->next)
				s->stats.messages += op->is_msg != 0;
			s->stats.bytes += s->wbuf.len;
			buf_consume(&s->tombs, ntombs);
			ndead = spool_index_collect(&s->idx, s->seg_seq, &dead);
		} else {
			s->stats.failed += n;
			if (abandoned)
				bury(s, batch, abandoned, off + ntombs);
		}
		pthread_mutex_unlock(&s->mu);

		for (op = batch; op; op = next) {
			next = op->next;
			op->cb(op->ctx, status, op->id);
			buf_free(&op->rec);
			free(op);
		}
		if (s->wbuf.cap > (size_t)4 * 1024 * 1024)
			buf_free(&s->wbuf); /* do not keep a big batch's memory */
		spool_unlink_segments(s, dead, ndead);
		free(dead);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	sync_lazy(s);
	if (s->tombs.len)
		log_err("spool tombstones-unwritten bytes=%zu", s->tombs.len);
	if (s->seg_fd >= 0) {
		close(s->seg_fd);
		s->seg_fd = -1;
	}
	return NULL;
}
