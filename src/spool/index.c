/*
 * The in-memory spool index: id -> where the MSG record is, envelope and
 * recipient states (never the message data), plus per-segment liveness
 * counts that decide when a segment file may be deleted.  Rebuilt at open
 * by applying every record in segment order; kept current by the writer
 * applying each durable batch.  Callers hold spool.mu.
 */
#include "spool/spool_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_BUCKETS_MIN 1024

uint64_t spool_id_key(const char *id)
{
	uint64_t k = 0;

	for (size_t i = 0; i < SPOOL_ID_LEN; i++) {
		char c = id[i];
		k = k << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return k;
}

static size_t key_hash(uint64_t k, size_t nbuckets)
{
	/* splitmix64 finaliser: ids share their time prefix */
	k ^= k >> 30;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 27;
	k *= 0x94d049bb133111ebull;
	k ^= k >> 31;
	return (size_t)(k & (nbuckets - 1));
}

int spool_index_init(struct spool_index *idx)
{
	memset(idx, 0, sizeof *idx);
	idx->nbuckets = INDEX_BUCKETS_MIN;
	idx->buckets = calloc(idx->nbuckets, sizeof *idx->buckets);
	return idx->buckets ? 0 : -1;
}

static void rcpts_free(struct spool_rcpt *r, size_t n)
{
	for (size_t i = 0; i < n && r; i++) {
		free(r[i].addr);
		free(r[i].last_reply);
	}
	free(r);
}

static void entry_free(struct spool_entry *e)
{
	free(e->sender);
	rcpts_free(e->rcpts, e->nrcpts);
	free(e->refsegs);
	free(e);
}

void spool_index_free(struct spool_index *idx)
{
	struct spool_entry *e = idx->head, *next;

	for (; e; e = next) {
		next = e->next;
		entry_free(e);
	}
	free(idx->buckets);
	free(idx->segs);
	memset(idx, 0, sizeof *idx);
}

static struct spool_entry *find_key(struct spool_index *idx, uint64_t key)
{
	struct spool_entry *e = idx->buckets[key_hash(key, idx->nbuckets)];

	while (e && e->key != key)
		e = e->hnext;
	return e;
}

struct spool_entry *spool_index_find(struct spool_index *idx, const char *id)
{
	if (!spool_id_valid(id))
		return NULL;
	return find_key(idx, spool_id_key(id));
}

static void grow(struct spool_index *idx)
{
	size_t n = idx->nbuckets * 2;
	struct spool_entry **b = calloc(n, sizeof *b);

	if (b == NULL) /* longer chains, still correct */
		return;
	for (struct spool_entry *e = idx->head; e; e = e->next) {
		size_t h = key_hash(e->key, n);
		e->hnext = b[h];
		b[h] = e;
	}
	free(idx->buckets);
	idx->buckets = b;
	idx->nbuckets = n;
}

static struct spool_seg *seg_find(struct spool_index *idx, uint64_t seq)
{
	size_t lo = 0, hi = idx->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (idx->segs[mid].seq == seq)
			return &idx->segs[mid];
		if (idx->segs[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int spool_index_add_segment(struct spool_index *idx, uint64_t seq)
{
	if (idx->nsegs && idx->segs[idx->nsegs - 1].seq >= seq) {
		errno = EINVAL;
		return -1;
	}
	if (idx->nsegs == idx->segcap) {
		size_t cap = idx->segcap ? idx->segcap * 2 : 16;
		struct spool_seg *s = realloc(idx->segs, cap * sizeof *s);
		if (s == NULL)
			return -1;
		idx->segs = s;
		idx->segcap = cap;
	}
	idx->segs[idx->nsegs++] = (struct spool_seg){.seq = seq};
	return 0;
}

static int any_pending(const struct spool_entry *e)
{
	for (size_t i = 0; i < e->nrcpts; i++)
		if (e->rcpts[i].state == SPOOL_RCPT_PENDING)
			return 1;
	return 0;
}

static void make_final(struct spool_index *idx, struct spool_entry *e)
{
	struct spool_seg *sg;

	if (e->final)
		return;
	e->final = 1;
	idx->npending--;
	sg = seg_find(idx, e->seg);
	if (sg && sg->live)
		sg->live--;
}

/* Pin segment seg (not the MSG one) as long as e's MSG segment exists. */
static int add_ref(struct spool_index *idx, struct spool_entry *e, uint64_t seg)
{
	struct spool_seg *sg;
	uint64_t *r;

	if (seg == e->seg)
		return 0;
	for (size_t i = 0; i < e->nrefsegs; i++)
		if (e->refsegs[i] == seg)
			return 0;
	sg = seg_find(idx, seg);
	if (sg == NULL)
		return 0;
	r = realloc(e->refsegs, (e->nrefsegs + 1) * sizeof *r);
	if (r == NULL)
		return -1;
	e->refsegs = r;
	e->refsegs[e->nrefsegs++] = seg;
	sg->refs++;
	return 0;
}

static char *span_dup(struct spool_span s)
{
	char *p = malloc(s.len + 1);

	if (p == NULL)
		return NULL;
	if (s.len)
		memcpy(p, s.p, s.len);
	p[s.len] = '\0';
	return p;
}

static int set_state(struct spool_rcpt *r, const struct spool_record_rcpt *rc)
{
	char *reply = NULL;

	if (rc->has_reply && (reply = span_dup(rc->reply)) == NULL)
		return -1;
	free(r->last_reply);
	r->last_reply = reply;
	r->state = rc->state;
	r->attempts = rc->attempts;
	r->next_attempt = rc->next_attempt;
	return 0;
}

static int apply_msg(struct spool_index *idx, const struct spool_record *rec, uint64_t seg,
		     uint64_t off, size_t len)
{
	uint64_t key = spool_id_key(rec->id);
	struct spool_span cur = rec->rcpts;
	struct spool_record_rcpt rc;
	struct spool_entry *e;
	struct spool_seg *sg;
	size_t h;

	if (find_key(idx, key) != NULL)
		return 1;
	sg = seg_find(idx, seg);
	if (sg == NULL || len > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
	e = calloc(1, sizeof *e);
	if (e == NULL)
		return -1;
	e->key = key;
	e->seg = seg;
	e->off = off;
	e->len = (uint32_t)len;
	e->tenant_id = rec->tenant_id;
	e->credential_id = rec->credential_id;
	e->received = rec->received;
	e->flags = rec->flags;
	if ((e->sender = span_dup(rec->sender)) == NULL)
		goto fail;
	/* nrcpts is bounded: the parser walked that many in the payload */
	if (rec->nrcpts && (e->rcpts = calloc(rec->nrcpts, sizeof *e->rcpts)) == NULL)
		goto fail;
	while (e->nrcpts < rec->nrcpts && spool_record_rcpt_next(&cur, &rc)) {
		struct spool_rcpt *r = &e->rcpts[e->nrcpts++];
		if ((r->addr = span_dup(rc.addr)) == NULL || set_state(r, &rc) < 0)
			goto fail;
	}
	if (++idx->nentries > idx->nbuckets)
		grow(idx);
	h = key_hash(key, idx->nbuckets);
	e->hnext = idx->buckets[h];
	idx->buckets[h] = e;
	e->prev = idx->tail;
	if (idx->tail)
		idx->tail->next = e;
	else
		idx->head = e;
	idx->tail = e;
	e->final = !any_pending(e);
	if (!e->final) {
		idx->npending++;
		sg->live++;
	}
	return 0;
fail:
	entry_free(e);
	return -1;
}

int spool_index_apply(struct spool_index *idx, const struct spool_record *rec, uint64_t seg,
		      uint64_t off, size_t len)
{
	struct spool_entry *e;

	if (rec->type == SPOOL_REC_MSG)
		return apply_msg(idx, rec, seg, off, len);
	e = find_key(idx, spool_id_key(rec->id));
	if (e == NULL)
		return 1;
	if (add_ref(idx, e, seg) < 0)
		return -1;
	if (e->final)
		return 0;
	switch (rec->type) {
	case SPOOL_REC_RCPT_STATE:
		if (rec->rcpt_index >= e->nrcpts)
			return 1;
		if (set_state(&e->rcpts[rec->rcpt_index], &rec->rcpt) < 0)
			return -1;
		if (!any_pending(e))
			make_final(idx, e);
		break;
	case SPOOL_REC_DELETE:
		for (size_t i = 0; i < e->nrcpts; i++)
			if (e->rcpts[i].state == SPOOL_RCPT_PENDING)
				e->rcpts[i].state = SPOOL_RCPT_DELETED;
		make_final(idx, e);
		break;
	case SPOOL_REC_HOLD:
		if (rec->held)
			e->flags |= SPOOL_MSG_HELD;
		else
			e->flags &= ~(uint32_t)SPOOL_MSG_HELD;
		break;
	case SPOOL_REC_MSG:
		break;
	}
	return 0;
}

void spool_index_mark_final(struct spool_index *idx, const char *id)
{
	struct spool_entry *e = spool_index_find(idx, id);

	if (e)
		make_final(idx, e);
}

static void entry_unlink(struct spool_index *idx, struct spool_entry *e)
{
	struct spool_entry **pp = &idx->buckets[key_hash(e->key, idx->nbuckets)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		idx->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		idx->tail = e->prev;
	idx->nentries--;
}

/* Forget segment i and every (final) entry whose MSG record is in it.
 * O(entries): segments go rarely, once per SPOOL_SEGMENT_MAX bytes. */
static void drop_segment(struct spool_index *idx, size_t i)
{
	uint64_t seq = idx->segs[i].seq;
	struct spool_entry *e = idx->head, *next;

	for (; e; e = next) {
		next = e->next;
		if (e->seg != seq)
			continue;
		for (size_t k = 0; k < e->nrefsegs; k++) {
			struct spool_seg *sg = seg_find(idx, e->refsegs[k]);
			if (sg && sg->refs)
				sg->refs--;
		}
		entry_unlink(idx, e);
		entry_free(e);
	}
	memmove(&idx->segs[i], &idx->segs[i + 1], (idx->nsegs - i - 1) * sizeof *idx->segs);
	idx->nsegs--;
}

size_t spool_index_collect(struct spool_index *idx, uint64_t active, uint64_t **seqs_r)
{
	uint64_t *out;
	size_t n = 0;
	int changed = 1;

	*seqs_r = NULL;
	if (idx->nsegs == 0)
		return 0;
	out = malloc(idx->nsegs * sizeof *out);
	if (out == NULL)
		return 0;
	/* Dropping one segment can release the refs that pinned another. */
	while (changed) {
		changed = 0;
		for (size_t i = 0; i < idx->nsegs; i++) {
			struct spool_seg *sg = &idx->segs[i];
			if (sg->seq == active || sg->live || sg->refs)
				continue;
			out[n++] = sg->seq;
			drop_segment(idx, i);
			changed = 1;
			break;
		}
	}
	if (n == 0) {
		free(out);
		return 0;
	}
	*seqs_r = out;
	return n;
}

int spool_entry_export(const struct spool_entry *e, struct spool_message *m)
{
	memset(m, 0, sizeof *m);
	snprintf(m->id, sizeof m->id, "%016" PRIx64, e->key);
	m->tenant_id = e->tenant_id;
	m->credential_id = e->credential_id;
	m->received = e->received;
	m->flags = e->flags;
	if ((m->sender = util_strdup(e->sender)) == NULL)
		goto fail;
	if (e->nrcpts && (m->rcpts = calloc(e->nrcpts, sizeof *m->rcpts)) == NULL)
		goto fail;
	for (size_t i = 0; i < e->nrcpts; i++) {
		struct spool_rcpt *r = &m->rcpts[m->nrcpts++];
		*r = e->rcpts[i];
		r->addr = util_strdup(e->rcpts[i].addr);
		r->last_reply = util_strdup(e->rcpts[i].last_reply);
		if (r->addr == NULL || (e->rcpts[i].last_reply && r->last_reply == NULL))
			goto fail;
	}
	return 0;
fail:
	spool_message_free(m);
	return -1;
}
