/*
 * Spool record framing, payload encoding and the one parser every byte
 * read back from a segment goes through (recovery, spool_load, the fuzz
 * harness).  Pure functions: no I/O, no allocation while parsing.
 */
#include "spool/record.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* ---- CRC-32C ------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

/* Slice-by-8: eight table lookups per 8 input bytes. */
uint32_t spool_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	while (len >= 8) {
		uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				     (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			      (uint32_t)p[7] << 24;
		crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data,
							     size_t len)
{
	const unsigned char *p = data;
	uint64_t c = ~crc;

	while (len >= 8) {
		uint64_t v;
		memcpy(&v, p, 8);
		c = _mm_crc32_u64(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}
#endif

uint32_t spool_crc32c(uint32_t crc, const void *data, size_t len)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2"))
		return crc32c_hw(crc, data, len);
#endif
	return spool_crc32c_sw(crc, data, len);
}

/* ---- ids ----------------------------------------------------------------- */

int spool_id_valid(const char *id)
{
	for (size_t i = 0; i < SPOOL_ID_LEN; i++) {
		char c = id[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return id[SPOOL_ID_LEN] == '\0';
}

/* ---- encoding ------------------------------------------------------------ */

static void put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int enc_u8(struct buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;
	return buf_append(b, &c, 1);
}

static int enc_u32(struct buf *b, uint32_t v)
{
	unsigned char t[4];
	put_u32(t, v);
	return buf_append(b, t, 4);
}

static int enc_u64(struct buf *b, uint64_t v)
{
	unsigned char t[8];
	put_u32(t, (uint32_t)v);
	put_u32(t + 4, (uint32_t)(v >> 32));
	return buf_append(b, t, 8);
}

static int enc_bytes(struct buf *b, const void *p, size_t len)
{
	if (len > SPOOL_REC_PAYLOAD_MAX) {
		errno = EFBIG;
		return -1;
	}
	if (enc_u32(b, (uint32_t)len) < 0 || buf_append(b, p, len) < 0)
		return -1;
	return 0;
}

static int enc_str(struct buf *b, const char *s)
{
	return enc_bytes(b, s, strlen(s));
}

static int enc_state(struct buf *b, const struct spool_rcpt *r)
{
	if ((unsigned)r->state > SPOOL_RCPT_DELETED) {
		errno = EINVAL;
		return -1;
	}
	if (enc_u8(b, (unsigned)r->state) < 0 || enc_u32(b, r->attempts) < 0 ||
	    enc_u64(b, (uint64_t)r->next_attempt) < 0 || enc_u8(b, r->last_reply != NULL) < 0)
		return -1;
	if (r->last_reply != NULL && enc_str(b, r->last_reply) < 0)
		return -1;
	return 0;
}

/* Header with a placeholder length; rec_finish() fills it in. */
static int rec_begin(struct buf *b, enum spool_rec_type type, const char *id)
{
	unsigned char h[SPOOL_REC_HEADER] = {0};

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	put_u32(h, SPOOL_REC_MAGIC);
	h[4] = (unsigned char)type;
	if (buf_append(b, h, sizeof h) < 0 || buf_append(b, id, SPOOL_ID_LEN) < 0)
		return -1;
	return 0;
}

static int rec_finish(struct buf *b, size_t start)
{
	size_t plen = b->len - start - SPOOL_REC_HEADER;
	unsigned char *h;
	uint32_t crc;

	if (plen > SPOOL_REC_PAYLOAD_MAX) {
		errno = EFBIG;
		return -1;
	}
	h = (unsigned char *)b->data + start;
	put_u32(h + 8, (uint32_t)plen);
	crc = spool_crc32c(0, h + 4, SPOOL_REC_HEADER - 4 + plen);
	if (enc_u32(b, crc) < 0 || enc_u32(b, SPOOL_REC_END) < 0)
		return -1;
	return 0;
}

int spool_record_encode_msg(struct buf *b, const struct spool_message *m)
{
	size_t start = b->len;
	uint32_t flags;
	int saved;

	if (m->nrcpts > UINT32_MAX || m->len > SPOOL_REC_PAYLOAD_MAX) {
		errno = EFBIG;
		return -1;
	}
	flags = m->flags & ~(uint32_t)SPOOL_MSG_CREDENTIAL;
	if (m->credential_id != 0)
		flags |= SPOOL_MSG_CREDENTIAL;
	if (rec_begin(b, SPOOL_REC_MSG, m->id) < 0 || enc_u64(b, (uint64_t)m->tenant_id) < 0 ||
	    enc_u64(b, (uint64_t)m->received) < 0 || enc_u32(b, flags) < 0 ||
	    (m->credential_id != 0 && enc_u64(b, (uint64_t)m->credential_id) < 0) ||
	    enc_str(b, m->sender ? m->sender : "") < 0 || enc_u32(b, (uint32_t)m->nrcpts) < 0)
		goto fail;
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].addr == NULL) {
			errno = EINVAL;
			goto fail;
		}
		if (enc_str(b, m->rcpts[i].addr) < 0 || enc_state(b, &m->rcpts[i]) < 0)
			goto fail;
	}
	if (enc_bytes(b, m->data, m->len) < 0 || rec_finish(b, start) < 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	b->len = start;
	if (b->data)
		b->data[start] = '\0';
	errno = saved;
	return -1;
}

int spool_record_encode_rcpt_state(struct buf *b, const char *id, uint32_t rcpt_index,
				   const struct spool_rcpt *r)
{
	size_t start = b->len;
	int saved;

	if (rec_begin(b, SPOOL_REC_RCPT_STATE, id) < 0 || enc_u32(b, rcpt_index) < 0 ||
	    enc_state(b, r) < 0 || rec_finish(b, start) < 0)
		goto fail;
	return 0;
fail:
	saved = errno;
	b->len = start;
	if (b->data)
		b->data[start] = '\0';
	errno = saved;
	return -1;
}

int spool_record_encode_delete(struct buf *b, const char *id)
{
	size_t start = b->len;

	if (rec_begin(b, SPOOL_REC_DELETE, id) < 0 || rec_finish(b, start) < 0) {
		b->len = start;
		if (b->data)
			b->data[start] = '\0';
		return -1;
	}
	return 0;
}

int spool_record_encode_hold(struct buf *b, const char *id, int held)
{
	size_t start = b->len;

	if (rec_begin(b, SPOOL_REC_HOLD, id) < 0 || enc_u8(b, held ? 1 : 0) < 0 ||
	    rec_finish(b, start) < 0) {
		b->len = start;
		if (b->data)
			b->data[start] = '\0';
		return -1;
	}
	return 0;
}

/* ---- parsing ------------------------------------------------------------- */

/* Bounded reader over a payload: any read past the end sets bad. */
struct rd {
	const unsigned char *p;
	size_t n;
	size_t off;
	int bad;
};

static const unsigned char *rd_take(struct rd *r, size_t len)
{
	const unsigned char *p;

	if (r->bad || len > r->n - r->off) {
		r->bad = 1;
		return NULL;
	}
	p = r->p + r->off;
	r->off += len;
	return p;
}

static unsigned rd_u8(struct rd *r)
{
	const unsigned char *p = rd_take(r, 1);
	return p ? p[0] : 0;
}

static uint32_t rd_u32(struct rd *r)
{
	const unsigned char *p = rd_take(r, 4);
	return p ? get_u32(p) : 0;
}

static uint64_t rd_u64(struct rd *r)
{
	const unsigned char *p = rd_take(r, 8);
	return p ? (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32 : 0;
}

/* Strings become C strings later, so an embedded NUL is corruption. */
static struct spool_span rd_str(struct rd *r, int allow_nul)
{
	struct spool_span s = {NULL, 0};
	uint32_t len = rd_u32(r);
	const unsigned char *p = rd_take(r, len);

	if (p == NULL)
		return s;
	if (!allow_nul && memchr(p, '\0', len) != NULL) {
		r->bad = 1;
		return s;
	}
	s.p = (const char *)p;
	s.len = len;
	return s;
}

static void rd_state(struct rd *r, struct spool_record_rcpt *rc)
{
	unsigned state = rd_u8(r), has_reply;

	if (state > SPOOL_RCPT_DELETED)
		r->bad = 1;
	rc->state = (enum spool_rcpt_state)state;
	rc->attempts = rd_u32(r);
	rc->next_attempt = (int64_t)rd_u64(r);
	has_reply = rd_u8(r);
	if (has_reply > 1)
		r->bad = 1;
	rc->has_reply = (int)has_reply;
	rc->reply.p = NULL;
	rc->reply.len = 0;
	if (has_reply)
		rc->reply = rd_str(r, 0);
}

static int rd_id(struct rd *r, char id_r[SPOOL_ID_LEN + 1])
{
	const unsigned char *p = rd_take(r, SPOOL_ID_LEN);

	if (p == NULL)
		return -1;
	memcpy(id_r, p, SPOOL_ID_LEN);
	id_r[SPOOL_ID_LEN] = '\0';
	if (!spool_id_valid(id_r)) {
		r->bad = 1;
		return -1;
	}
	return 0;
}

int spool_record_rcpt_next(struct spool_span *cursor, struct spool_record_rcpt *rc)
{
	struct rd r = {(const unsigned char *)cursor->p, cursor->len, 0, 0};

	if (cursor->len == 0)
		return 0;
	rc->addr = rd_str(&r, 0);
	rd_state(&r, rc);
	if (r.bad) /* cannot happen on a span the parser verified */
		return 0;
	cursor->p += r.off;
	cursor->len -= r.off;
	return 1;
}

static int parse_payload(const unsigned char *p, size_t n, unsigned type, struct spool_record *rec,
			 const char **reason_r)
{
	struct rd r = {p, n, 0, 0};

	memset(rec, 0, sizeof *rec);
	rec->type = (enum spool_rec_type)type;
	if (rd_id(&r, rec->id) < 0) {
		*reason_r = "bad-id";
		return -1;
	}
	switch (type) {
	case SPOOL_REC_MSG: {
		size_t rstart;
		rec->tenant_id = (int64_t)rd_u64(&r);
		rec->received = (int64_t)rd_u64(&r);
		rec->flags = rd_u32(&r);
		if (rec->flags & SPOOL_MSG_CREDENTIAL) {
			rec->flags &= ~(uint32_t)SPOOL_MSG_CREDENTIAL;
			rec->credential_id = (int64_t)rd_u64(&r);
			if (rec->credential_id == 0)
				r.bad = 1; /* the encoder never writes 0 */
		}
		rec->sender = rd_str(&r, 0);
		rec->nrcpts = rd_u32(&r);
		rstart = r.off;
		/* The count is only trusted as far as the bytes hold recipients. */
		for (uint32_t i = 0; i < rec->nrcpts && !r.bad; i++) {
			struct spool_record_rcpt rc;
			rc.addr = rd_str(&r, 0);
			rd_state(&r, &rc);
		}
		rec->rcpts.p = (const char *)p + rstart;
		rec->rcpts.len = r.bad ? 0 : r.off - rstart;
		rec->data = rd_str(&r, 1);
		break;
	}
	case SPOOL_REC_RCPT_STATE:
		rec->rcpt_index = rd_u32(&r);
		rd_state(&r, &rec->rcpt);
		break;
	case SPOOL_REC_DELETE:
		break;
	case SPOOL_REC_HOLD: {
		unsigned held = rd_u8(&r);
		if (held > 1)
			r.bad = 1;
		rec->held = (int)held;
		break;
	}
	default:
		*reason_r = "bad-type";
		return -1;
	}
	if (r.bad || r.off != n) {
		*reason_r = "bad-payload";
		return -1;
	}
	return 1;
}

int spool_record_parse(const void *data, size_t n, struct spool_record *rec_r, size_t *consumed_r,
		       const char **reason_r)
{
	static const unsigned char magic[4] = {'S', 'L', 'R', '1'};
	const unsigned char *p = data;
	const char *reason = NULL;
	uint32_t plen, crc;
	size_t total;
	int ret;

	*consumed_r = 0;
	if (n == 0) {
		*consumed_r = SPOOL_REC_HEADER;
		return 0;
	}
	/* Judge the header bytes as they arrive, so garbage is -1 at once. */
	if (memcmp(p, magic, n < 4 ? n : 4) != 0) {
		reason = "bad-magic";
		goto corrupt;
	}
	if (n >= 5 && (p[4] < SPOOL_REC_MSG || p[4] > SPOOL_REC_HOLD)) {
		reason = "bad-type";
		goto corrupt;
	}
	for (size_t i = 5; i < 8 && i < n; i++) {
		if (p[i] != 0) {
			reason = "bad-pad";
			goto corrupt;
		}
	}
	if (n < SPOOL_REC_HEADER) {
		*consumed_r = SPOOL_REC_HEADER;
		return 0;
	}
	plen = get_u32(p + 8);
	if (plen > SPOOL_REC_PAYLOAD_MAX || plen < SPOOL_ID_LEN) {
		reason = "bad-length";
		goto corrupt;
	}
	total = (size_t)plen + SPOOL_REC_OVERHEAD;
	if (n < total) {
		*consumed_r = total;
		return 0;
	}
	if (get_u32(p + SPOOL_REC_HEADER + plen + 4) != SPOOL_REC_END) {
		reason = "bad-end-marker";
		goto corrupt;
	}
	crc = spool_crc32c(0, p + 4, SPOOL_REC_HEADER - 4 + (size_t)plen);
	if (crc != get_u32(p + SPOOL_REC_HEADER + plen)) {
		reason = "bad-checksum";
		goto corrupt;
	}
	ret = parse_payload(p + SPOOL_REC_HEADER, plen, p[4], rec_r, &reason);
	if (ret < 0)
		goto corrupt;
	*consumed_r = total;
	return 1;
corrupt:
	if (reason_r)
		*reason_r = reason;
	return -1;
}
