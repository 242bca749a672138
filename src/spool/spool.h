/*
 * spool: durable storage of accepted messages and their per-recipient
 * state (DESIGN.md "Durability: the spool promise").
 *
 * Layout: DIR/seg-<16 hex>.log append-only segment files of records;
 * DIR/quarantine/ for corrupt bytes found at recovery; DIR/lock held
 * (flock) by the one process that writes.
 *
 * Record framing (little-endian):
 *   u32 magic "SLR1" | u8 type | u8 pad[3] | u32 payload length |
 *   payload | u32 crc32c(type..payload) | u32 end marker "END1"
 * A record whose length, checksum or end marker does not verify is never
 * returned; recovery logs it and copies its bytes to quarantine/.
 *
 * Group commit: spool_submit() queues a message for the writer thread,
 * which appends every queued message, fdatasync()s once for the batch
 * (fsync of the folder too when it created a segment), then calls each
 * message's completion callback.  A callback with status 0 means the
 * message and its recipient list are on stable storage.
 */
#ifndef SLUICE_SPOOL_H
#define SLUICE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_ID_LEN 16 /* hex characters */
#define SPOOL_SEGMENT_MAX (64u * 1024 * 1024) /* roll to a new segment past this */

struct spool;

enum spool_rcpt_state {
	SPOOL_RCPT_PENDING = 0,
	SPOOL_RCPT_DELIVERED = 1,
	SPOOL_RCPT_FAILED = 2,
	SPOOL_RCPT_DELETED = 3,
};

enum spool_msg_flags {
	SPOOL_MSG_8BIT = 1 << 0,
	SPOOL_MSG_SMTPUTF8 = 1 << 1,
	SPOOL_MSG_HELD = 1 << 2,
	/* On disk only: a credential id follows the flags (record.h).  Set
	 * and cleared by the record codec from credential_id. */
	SPOOL_MSG_CREDENTIAL = 1 << 3,
};

struct spool_rcpt {
	char *addr;                  /* "local@domain" */
	enum spool_rcpt_state state;
	uint32_t attempts;
	int64_t next_attempt;        /* unix seconds; 0 = now */
	char *last_reply;            /* may be NULL */
};

struct spool_message {
	char id[SPOOL_ID_LEN + 1];
	int64_t tenant_id;
	int64_t credential_id;       /* the login that submitted it; 0 none */
	int64_t received;            /* unix seconds */
	uint32_t flags;              /* spool_msg_flags */
	char *sender;                /* "" for the null sender */
	struct spool_rcpt *rcpts;
	size_t nrcpts;
	char *data;                  /* the whole message, CRLF line ends */
	size_t len;
};

/* Completion of spool_submit(), called on the writer thread.  status 0:
 * durable.  status < 0: not stored (-ENOSPC, -EIO, ...), nothing of it
 * will be found after a restart. */
typedef void spool_done_cb(void *ctx, int status, const char *id);

struct spool_config {
	const char *dir;
	uint32_t batch_max;   /* messages per fsync at most; 0 = 256 */
	uint64_t segment_max; /* roll past this many bytes; 0 = SPOOL_SEGMENT_MAX */
};

/* Open (create) the spool and recover: scan every segment, rebuild the
 * index, quarantine corrupt records, start the writer thread.  Takes the
 * lock; fails if another process holds it.  0 ok, -1 with *err_r. */
int spool_open(const struct spool_config *cfg, struct spool **spool_r, char **err_r);
/* Stop the writer after it drained its queue; close. */
void spool_close(struct spool **spool);

/* A new unique queue id (time + counter + random), for Received headers
 * before the message is submitted. */
void spool_new_id(struct spool *spool, char id_r[SPOOL_ID_LEN + 1]);

/* Queue a message for the next group commit.  The spool copies what it
 * needs from m (m->id must be set from spool_new_id()); m may be freed as
 * soon as this returns.  cb runs exactly once.  0 queued, -1 refused at
 * once (spool closing, out of memory): cb is not called then. */
int spool_submit(struct spool *spool, const struct spool_message *m, spool_done_cb *cb, void *ctx);

/* Durably record a change of the queue (same group commit, synchronous:
 * returns after the fsync).  0 ok, -1 error (errno set). */
int spool_delete(struct spool *spool, const char *id);           /* whole message */
int spool_set_held(struct spool *spool, const char *id, int held);

/* Durably record a delivery attempt's outcome for recipient rcpt_index
 * (0-based, order of spool_message.rcpts); last_reply may be NULL.  When no
 * recipient is left pending the message is final.  Same group commit,
 * synchronous.  0 ok, -1 error (errno set; ENOENT: unknown or final id). */
int spool_set_rcpt_state(struct spool *spool, const char *id, size_t rcpt_index,
			 const struct spool_rcpt *state);

/* The same as spool_set_rcpt_state() without waiting: the record joins the
 * next group commit and cb runs once, on the writer thread, with status 0
 * when it is durable (or < 0).  For the delivery engine, whose event loop
 * must not block on fsync.  0 queued; -1 refused at once (errno; ENOENT:
 * unknown or final id), cb not called then. */
int spool_set_rcpt_state_async(struct spool *spool, const char *id, size_t rcpt_index,
			       const struct spool_rcpt *state, spool_done_cb *cb, void *ctx);

/* Index queries: messages with at least one pending recipient. */
size_t spool_count(struct spool *spool);
/* Call fn for every queued message, in arrival order; stop if fn returns
 * non-zero.  m (without data: data == NULL) is valid during the call only. */
void spool_foreach(struct spool *spool, int (*fn)(void *ctx, const struct spool_message *m),
		   void *ctx);
/* Load one message including its data.  0 ok, 1 not found, -1 error.
 * Free with spool_message_free(). */
int spool_load(struct spool *spool, const char *id, struct spool_message *m_r);
void spool_message_free(struct spool_message *m);

/* Read-only access without the lock (for `sluice queue list/show` while
 * sluiced runs): scans the segments as recovery does, quarantines nothing,
 * treats a torn tail as a write in progress. */
int spool_open_readonly(const char *dir, struct spool **spool_r, char **err_r);

/* Counters since spool_open(), for tests and /metrics. */
struct spool_stats {
	uint64_t batches;          /* group commits attempted */
	uint64_t fsyncs;           /* fdatasync()s of segment data */
	uint64_t records;          /* records made durable */
	uint64_t messages;         /* messages made durable (status 0 callbacks) */
	uint64_t failed;           /* records whose batch failed */
	uint64_t bytes;            /* bytes made durable */
	uint64_t segments_created;
	uint64_t segments_deleted;
};
void spool_stats(struct spool *spool, struct spool_stats *stats_r);

/* Checksum used by the records (CRC-32C, Castagnoli). */
uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len);

#endif
