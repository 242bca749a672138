/*
 * spool records: encoding and parsing of the framed records that segment
 * files are made of (framing in spool.h).  Internal to src/spool and the
 * fuzz harness; nothing here does I/O.
 *
 * Payloads (all integers little-endian, strings are u32 length + bytes
 * without NUL, ids are 16 lowercase hex characters):
 *   MSG         id | i64 tenant | i64 received | u32 flags |
 *               [i64 credential if flags has SPOOL_MSG_CREDENTIAL] | str sender |
 *               u32 nrcpts | nrcpts * rcpt | u32 data length | data
 *   rcpt        str addr | u8 state | u32 attempts | i64 next_attempt |
 *               u8 has_reply | [str last_reply if has_reply]
 *   RCPT_STATE  id | u32 rcpt index | u8 state | u32 attempts |
 *               i64 next_attempt | u8 has_reply | [str last_reply]
 *   DELETE      id
 *   HOLD        id | u8 held (0 or 1)
 * Trailing bytes after a payload make the record corrupt.
 */
#ifndef SLUICE_SPOOL_RECORD_H
#define SLUICE_SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "util/util.h"

#define SPOOL_REC_MAGIC 0x31524c53u /* "SLR1" as little-endian bytes */
#define SPOOL_REC_END 0x31444e45u   /* "END1" */
#define SPOOL_REC_HEADER 12u        /* magic, type, pad[3], length */
#define SPOOL_REC_TRAILER 8u        /* crc, end marker */
#define SPOOL_REC_OVERHEAD (SPOOL_REC_HEADER + SPOOL_REC_TRAILER)
#define SPOOL_REC_PAYLOAD_MAX (1u << 30) /* 1 GiB */

enum spool_rec_type {
	SPOOL_REC_MSG = 1,
	SPOOL_REC_RCPT_STATE = 2,
	SPOOL_REC_DELETE = 3,
	SPOOL_REC_HOLD = 4,
};

/* A view into the parsed bytes; valid as long as they are. */
struct spool_span {
	const char *p;
	size_t len;
};

struct spool_record_rcpt {
	struct spool_span addr; /* empty for RCPT_STATE */
	enum spool_rcpt_state state;
	uint32_t attempts;
	int64_t next_attempt;
	int has_reply;
	struct spool_span reply;
};

struct spool_record {
	enum spool_rec_type type;
	char id[SPOOL_ID_LEN + 1];
	/* MSG */
	int64_t tenant_id;
	int64_t credential_id; /* 0 when the record has none */
	int64_t received;
	uint32_t flags;        /* without SPOOL_MSG_CREDENTIAL */
	struct spool_span sender;
	uint32_t nrcpts;
	struct spool_span rcpts; /* encoded, already verified: walk with spool_record_rcpt_next() */
	struct spool_span data;
	/* RCPT_STATE */
	uint32_t rcpt_index;
	struct spool_record_rcpt rcpt;
	/* HOLD */
	int held;
};

/* Parse one record from the start of p[0..n).  Returns 1 when a whole
 * record verified (*rec_r points into p; *consumed_r is its length), 0 when
 * the bytes are a valid beginning but more are needed (*consumed_r is the
 * total length needed as far as known, always > n), -1 when the bytes can
 * never become a valid record (*reason_r says why).  Never reads past n;
 * lengths are bounded by SPOOL_REC_PAYLOAD_MAX and by the payload. */
int spool_record_parse(const void *p, size_t n, struct spool_record *rec_r, size_t *consumed_r,
		       const char **reason_r);

/* Walk the recipients of a parsed MSG record: cursor starts as rec.rcpts.
 * 1 one returned, 0 none left. */
int spool_record_rcpt_next(struct spool_span *cursor, struct spool_record_rcpt *r);

/* Append one framed record to b.  0 ok, -1 (errno EINVAL for a bad id,
 * EFBIG past SPOOL_REC_PAYLOAD_MAX, ENOMEM); b is unchanged on error. */
int spool_record_encode_msg(struct buf *b, const struct spool_message *m);
int spool_record_encode_rcpt_state(struct buf *b, const char *id, uint32_t rcpt_index,
				   const struct spool_rcpt *r);
int spool_record_encode_delete(struct buf *b, const char *id);
int spool_record_encode_hold(struct buf *b, const char *id, int held);

/* 1 if id is exactly SPOOL_ID_LEN lowercase hex characters. */
int spool_id_valid(const char *id);
/* The software CRC-32C, also used when SSE4.2 is missing (tests compare). */
uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
