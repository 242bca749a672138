/*
 * The writer thread: group commit.  It takes everything queued (up to
 * batch_max records), appends it to the active segment with one write,
 * fdatasync()s once, applies the records to the index and only then runs
 * the callbacks.  While it syncs, new submissions queue up and form the
 * next batch; with an empty queue it sleeps on work_cv.  No timers.
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
#include <unistd.h>

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

/* Write s->wbuf as one batch.  0 with *off_r where it starts, or -errno. */
static int commit(struct spool *s, uint64_t *off_r)
{
	uint64_t off0;
	int err;

	if (s->seg_fd >= 0 && s->seg_size > 0 && s->seg_size + s->wbuf.len > s->segment_max)
		segment_close(s, NULL); /* roll; it was synced with its last batch */
	if (s->seg_fd < 0 && (err = segment_create(s)) < 0)
		return err;
	off0 = s->seg_size;
	err = pwrite_all(s->seg_fd, s->wbuf.data, s->wbuf.len, off0);
	if (err == 0) {
		pthread_mutex_lock(&s->mu);
		s->stats.fsyncs++;
		pthread_mutex_unlock(&s->mu);
		if (fdatasync(s->seg_fd) == 0) {
			s->seg_size += s->wbuf.len;
			*off_r = off0;
			return 0;
		}
		err = -errno;
		/* Best effort to drop the batch; the segment is done either way. */
		if (ftruncate(s->seg_fd, (off_t)off0) == 0)
			(void)fdatasync(s->seg_fd);
		segment_close(s, "fdatasync-failed");
		return err;
	}
	if (ftruncate(s->seg_fd, (off_t)off0) < 0 || fdatasync(s->seg_fd) < 0)
		segment_close(s, "truncate-failed");
	return err;
}

static void apply_batch(struct spool *s, struct spool_op *batch, uint64_t off)
{
	for (struct spool_op *op = batch; op; op = op->next) {
		struct spool_record rec;
		const char *reason = NULL;
		size_t len;

		if (spool_record_parse(op->rec.data, op->rec.len, &rec, &len, &reason) != 1 ||
		    spool_index_apply(&s->idx, &rec, s->seg_seq, off, len) < 0)
			/* durable, so the next start will see it */
			log_err("spool index-failed id=%s reason=%s", op->id,
				reason ? reason : "out-of-memory");
		off += op->rec.len;
		s->stats.records++;
		s->stats.messages += op->is_msg != 0;
	}
	s->stats.bytes += s->wbuf.len;
}

void *spool_writer_main(void *arg)
{
	struct spool *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct spool_op *batch, **tail, *op, *next;
		uint64_t *dead = NULL, off = 0;
		size_t n = 0, ndead = 0;
		int status;

		while (s->qhead == NULL && !s->closing)
			pthread_cond_wait(&s->work_cv, &s->mu);
		if (s->qhead == NULL)
			break;
		batch = s->qhead;
		tail = &s->qhead;
		while (*tail && n < s->batch_max) {
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
		status = 0;
		for (op = batch; op && status == 0; op = op->next)
			if (buf_append(&s->wbuf, op->rec.data, op->rec.len) < 0)
				status = -ENOMEM;
		if (status == 0)
			status = commit(s, &off);
		if (status < 0)
			log_err("spool commit-failed records=%zu bytes=%zu error=%s", n, s->wbuf.len,
				strerror(-status));

		pthread_mutex_lock(&s->mu);
		if (status == 0) {
			apply_batch(s, batch, off);
			ndead = spool_index_collect(&s->idx, s->seg_seq, &dead);
		} else {
			s->stats.failed += n;
		}
		pthread_mutex_unlock(&s->mu);

		for (op = batch; op; op = next) {
			next = op->next;
			op->cb(op->ctx, status, op->id);
			buf_free(&op->rec);
			free(op);
		}
		if (s->wbuf.cap > 4u * 1024 * 1024)
			buf_free(&s->wbuf); /* do not keep a big batch's memory */
		spool_unlink_segments(s, dead, ndead);
		free(dead);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	if (s->seg_fd >= 0) {
		close(s->seg_fd);
		s->seg_fd = -1;
	}
	return NULL;
}
