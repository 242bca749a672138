/*
 * spool internals shared by spool.c (API), index.c (in-memory index and
 * segment liveness), recover.c (segment scan at open) and writer.c (group
 * commit thread).  Not for other modules.
 *
 * Locking: spool.mu protects the queue, the index, the stats, the id
 * counter and seg_seq.  The writer thread alone touches seg_fd, seg_size,
 * next_seq and wbuf, and alone creates, truncates and unlinks segments.
 */
#ifndef SLUICE_SPOOL_INT_H
#define SLUICE_SPOOL_INT_H

#include <pthread.h>
#include <sys/types.h>

#include "spool/record.h"
#include "spool/spool.h"
#include "util/util.h"

#define SPOOL_BATCH_DEFAULT 256
#define SPOOL_BATCH_BYTES ((size_t)32 * 1024 * 1024) /* a batch stops growing past this */
#define SPOOL_LAZY_SYNC_MS 50 /* lazy records are durable this long after they are written */

/* The calls whose failure the writer must survive; tests replace them
 * (spool_set_io_hooks) to fail on demand.  NULL members: the real call. */
struct spool_io_hooks {
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
};

/* One segment file.  A segment can go once no message in it is pending
 * (live == 0) and no message whose MSG record is in an older, still
 * present segment has state records in it (refs == 0): deleting those
 * state records first would bring the message back at the next start. */
struct spool_seg {
	uint64_t seq;
	size_t live; /* messages whose MSG record is here and still pending */
	size_t refs; /* index entries, MSG record elsewhere, with records here */
};

/* A message known to the index.  Final entries (nothing pending) stay
 * until their MSG segment is deleted, for the segment bookkeeping. */
struct spool_entry {
	uint64_t key; /* the id as a number */
	struct spool_entry *hnext;
	struct spool_entry *prev, *next; /* arrival order */
	uint64_t seg, off;               /* where the MSG record is */
	uint32_t len;                    /* its framed length */
	int64_t tenant_id, credential_id, received;
	uint32_t flags;
	char *sender;
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	int final;
	uint64_t *refsegs; /* other segments holding records about it */
	size_t nrefsegs;
};

struct spool_index {
	struct spool_entry **buckets;
	size_t nbuckets, nentries, npending;
	struct spool_entry *head, *tail;
	struct spool_seg *segs; /* ascending seq */
	size_t nsegs, segcap;
};

/* A record waiting for the writer. */
struct spool_op {
	struct spool_op *next;
	struct buf rec; /* one framed record */
	int is_msg;
	/* may wait for a later batch's fdatasync (SPOOL_LAZY_SYNC_MS at most):
	 * a recipient delivered or deferred, whose loss in a crash repeats a
	 * delivery or an attempt but loses nothing */
	int lazy;
	spool_done_cb *cb;
	void *ctx;
	char id[SPOOL_ID_LEN + 1];
};

struct spool {
	char *dir;
	int dirfd, lockfd;
	int readonly;
	uint32_t batch_max;
	uint64_t segment_max;

	pthread_mutex_t mu;
	pthread_cond_t work_cv; /* queue not empty, or closing */
	pthread_cond_t done_cv; /* a synchronous op completed */
	struct spool_op *qhead, **qtail;
	int closing;
	int writer_started;
	pthread_t writer;

	struct spool_index idx;
	struct spool_stats stats;
	uint64_t last_id, id_base;
	uint64_t seg_seq; /* active segment, 0 = none */
	struct spool_io_hooks io;

	/* writer only */
	int seg_fd;
	int unsynced;            /* lazy records written since the last fdatasync */
	int64_t last_sync_ms;    /* CLOCK_MONOTONIC */
	uint64_t seg_size, next_seq;
	struct buf wbuf;
	/* DELETE records for messages of failed batches that may be on disk
	 * anyway (their segment was abandoned): written ahead of the next
	 * batch so a restart cannot bring them back. */
	struct buf tombs;
};

/* index.c */
int spool_index_init(struct spool_index *idx);
void spool_index_free(struct spool_index *idx);
uint64_t spool_id_key(const char *id);
struct spool_entry *spool_index_find(struct spool_index *idx, const char *id);
/* Segments are added in ascending order.  0 ok, -1 ENOMEM. */
int spool_index_add_segment(struct spool_index *idx, uint64_t seq);
/* Apply one verified record found at (seg, off).  0 applied, 1 ignored
 * (duplicate MSG, or about an id the index does not know), -1 ENOMEM. */
int spool_index_apply(struct spool_index *idx, const struct spool_record *rec, uint64_t seg,
		      uint64_t off, size_t len);
/* Drop every segment that can go (except active), with its entries, in
 * an order safe to unlink in.  *seqs_r (free()) gets their numbers.
 * Returns the count; 0 also when out of memory (nothing dropped). */
size_t spool_index_collect(struct spool_index *idx, uint64_t active, uint64_t **seqs_r);
/* Mark a message final (it is known but must never be delivered). */
void spool_index_mark_final(struct spool_index *idx, const char *id);
/* Copy an entry's metadata (no data) into m; -1 ENOMEM. */
int spool_entry_export(const struct spool_entry *e, struct spool_message *m);

/* recover.c */
int spool_recover(struct spool *s, char **err_r);
void spool_segment_name(uint64_t seq, char name_r[32]);

/* writer.c */
void spool_set_io_hooks(struct spool *s, const struct spool_io_hooks *hooks); /* tests */
void *spool_writer_main(void *arg);
/* unlink segments (in order) and fsync the folder after each. */
void spool_unlink_segments(struct spool *s, const uint64_t *seqs, size_t n);

#endif
