/*
 * spool tests: record framing (whole and trickled byte by byte, corruption
 * detected), group commit under concurrency, recovery (reopen, torn tail,
 * garbage in the middle, lock, read-only), segment roll and deletion,
 * write failures (RLIMIT_FSIZE, a tiny tmpfs) and kill -9 crashes.
 * Every test works in its own mkdtemp() folder under /tmp.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h> /* cmocka needs it */
#include <cmocka.h>

#include "spool/record.h"
#include "spool/spool.h"
#include "spool/spool_int.h" /* spool_set_io_hooks() */
#include "util/util.h"

/* ---- helpers ----------------------------------------------------------- */

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/sluice-spool-XXXXXX";
	char *d = mkdtemp(tmpl);

	assert_non_null(d);
	return strdup(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void tmpdir_free(char *d)
{
	nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static char *path_join(const char *dir, const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Number of segment files, and the name of the last one. */
static size_t segments(const char *dir, char last_r[64])
{
	struct dirent **list;
	size_t nseg = 0;
	int n = scandir(dir, &list, NULL, alphasort);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strncmp(list[i]->d_name, "seg-", 4) == 0) {
			nseg++;
			if (last_r)
				util_strlcpy(last_r, list[i]->d_name, 64);
		}
		free(list[i]);
	}
	free(list);
	return nseg;
}

static size_t quarantined(const char *dir)
{
	char *q = path_join(dir, "quarantine");
	struct dirent **list;
	int n = scandir(q, &list, NULL, NULL);
	size_t count = 0;

	free(q);
	for (int i = 0; i < n; i++) {
		if (list[i]->d_name[0] != '.')
			count++;
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	return count;
}

static uint64_t mix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

/* A message whose every field derives from its id, so a test can check
 * what comes back knowing only the id. */
struct test_msg {
	struct spool_message m;
	struct spool_rcpt rcpts[3];
	char addrs[3][64];
	char sender[64];
	struct buf data;
};

static void test_msg_make(struct test_msg *t, const char *id, size_t max_data)
{
	uint64_t k = mix(strtoull(id, NULL, 16));
	size_t len = max_data ? (size_t)(k % max_data) + 1 : 0;

	memset(t, 0, sizeof *t);
	memcpy(t->m.id, id, SPOOL_ID_LEN + 1);
	t->m.tenant_id = (int64_t)(k % 1000);
	/* half the messages come from a login: the optional field */
	t->m.credential_id = (k & 32) ? (int64_t)(k % 5000) + 1 : 0;
	t->m.received = 1700000000 + (int64_t)(k % 100000);
	t->m.flags = (uint32_t)(k & SPOOL_MSG_8BIT);
	if (k & 16)
		snprintf(t->sender, sizeof t->sender, "s-%s@example.org", id);
	t->m.sender = t->sender; /* "" = null sender */
	t->m.nrcpts = 1 + (size_t)(k >> 8) % 3;
	for (size_t i = 0; i < t->m.nrcpts; i++) {
		snprintf(t->addrs[i], sizeof t->addrs[i], "r%zu-%s@example.net", i, id);
		t->rcpts[i].addr = t->addrs[i];
	}
	t->m.rcpts = t->rcpts;
	assert_int_equal(buf_printf(&t->data, "Subject: %s\r\n\r\n", id), 0);
	while (t->data.len < len) {
		char c = (char)('a' + (k + t->data.len) % 26);
		assert_int_equal(buf_append(&t->data, (t->data.len % 78) ? &c : "\r\n",
					    (t->data.len % 78) ? 1 : 2),
				 0);
	}
	t->m.data = t->data.data;
	t->m.len = t->data.len;
}

static void test_msg_free(struct test_msg *t)
{
	buf_free(&t->data);
}

/* 0 when the loaded message equals what test_msg_make() builds for its
 * id.  No cmocka asserts: forked children use it too. */
static int loaded_ok(struct spool *s, const char *id, size_t max_data)
{
	struct spool_message m;
	struct test_msg t;
	const char *what = NULL;
	int r = spool_load(s, id, &m);

	if (r != 0) {
		fprintf(stderr, "load %s: %d\n", id, r);
		return -1;
	}
	test_msg_make(&t, id, max_data);
	if (strcmp(m.id, id) != 0)
		what = "id";
	else if (m.tenant_id != t.m.tenant_id || m.credential_id != t.m.credential_id ||
		 m.received != t.m.received ||
		 (m.flags & SPOOL_MSG_8BIT) != t.m.flags)
		what = "envelope";
	else if (strcmp(m.sender, t.m.sender) != 0)
		what = "sender";
	else if (m.nrcpts != t.m.nrcpts)
		what = "nrcpts";
	for (size_t i = 0; what == NULL && i < m.nrcpts; i++)
		if (strcmp(m.rcpts[i].addr, t.m.rcpts[i].addr) != 0)
			what = "rcpt";
	if (what == NULL && (m.len != t.m.len || memcmp(m.data, t.m.data, m.len) != 0))
		what = "data";
	if (what)
		fprintf(stderr, "load %s: %s differs\n", id, what);
	spool_message_free(&m);
	test_msg_free(&t);
	return what ? -1 : 0;
}

static void check_loaded(struct spool *s, const char *id, size_t max_data)
{
	assert_int_equal(loaded_ok(s, id, max_data), 0);
}

/* Synchronous submission for tests that do not test concurrency. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, status;
};

static void waiter_cb(void *ctx, int status, const char *id)
{
	struct waiter *w = ctx;

	pthread_mutex_lock(&w->mu);
	w->done = 1;
	w->status = status;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int submit_wait(struct spool *s, const struct spool_message *m)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

	if (spool_submit(s, m, waiter_cb, &w) < 0)
		return -1000;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	return w.status;
}

static int submit_new(struct spool *s, size_t max_data, char id_r[SPOOL_ID_LEN + 1])
{
	struct test_msg t;
	int r;

	spool_new_id(s, id_r);
	test_msg_make(&t, id_r, max_data);
	r = submit_wait(s, &t.m);
	test_msg_free(&t);
	return r;
}

/* For forked children: exit instead of a cmocka failure. */
static struct spool *child_open(const char *dir, uint64_t segment_max)
{
	struct spool_config cfg = {.dir = dir, .segment_max = segment_max};
	struct spool *s = NULL;
	char *err = NULL;

	if (spool_open(&cfg, &s, &err) < 0) {
		fprintf(stderr, "spool_open: %s\n", err);
		_exit(9);
	}
	return s;
}

static struct spool *open_ok(const char *dir, uint64_t segment_max)
{
	struct spool_config cfg = {.dir = dir, .segment_max = segment_max};
	struct spool *s = NULL;
	char *err = NULL;

	if (spool_open(&cfg, &s, &err) < 0)
		fail_msg("spool_open: %s", err);
	return s;
}

/* ---- records ----------------------------------------------------------- */

static void test_crc32c(void **state)
{
	unsigned char data[1027];

	assert_int_equal(spool_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(spool_crc32c_sw(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(spool_crc32c(0, "", 0), 0);
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = (unsigned char)mix(i);
	for (size_t len = 0; len < sizeof data; len += 13) {
		uint32_t a = spool_crc32c(0, data, len);
		assert_int_equal(a, spool_crc32c_sw(0, data, len));
		/* chaining: crc(a||b) == crc(crc(a), b) */
		assert_int_equal(a, spool_crc32c(spool_crc32c(0, data, len / 3), data + len / 3,
						 len - len / 3));
	}
}

struct rec_case {
	const char *name;
	enum spool_rec_type type;
	size_t max_data;   /* MSG */
	int with_reply;    /* MSG, RCPT_STATE */
	uint32_t index;    /* RCPT_STATE */
	int held;          /* HOLD */
	int64_t credential; /* MSG: -1 none, else the login (0: as made) */
};

static const struct rec_case rec_cases[] = {
	{.name = "msg", .type = SPOOL_REC_MSG, .max_data = 300},
	{.name = "msg-empty-data", .type = SPOOL_REC_MSG, .max_data = 0},
	{.name = "msg-replies", .type = SPOOL_REC_MSG, .max_data = 50, .with_reply = 1},
	{.name = "msg-login", .type = SPOOL_REC_MSG, .max_data = 20, .credential = 42},
	{.name = "msg-no-login", .type = SPOOL_REC_MSG, .max_data = 20, .credential = -1},
	{.name = "msg-login-max", .type = SPOOL_REC_MSG, .max_data = 20, .credential = INT64_MAX},
	{.name = "rcpt-state", .type = SPOOL_REC_RCPT_STATE, .index = 2, .with_reply = 1},
	{.name = "rcpt-state-no-reply", .type = SPOOL_REC_RCPT_STATE, .index = 0},
	{.name = "delete", .type = SPOOL_REC_DELETE},
	{.name = "hold", .type = SPOOL_REC_HOLD, .held = 1},
	{.name = "release", .type = SPOOL_REC_HOLD, .held = 0},
};

static const char case_id[] = "0123456789abcdef";

static void rec_encode(const struct rec_case *c, struct buf *b, struct test_msg *t)
{
	struct spool_rcpt st = {.state = SPOOL_RCPT_FAILED, .attempts = 7,
				.next_attempt = -5, .last_reply = "550 5.1.1 no such user"};

	test_msg_make(t, case_id, c->max_data);
	if (c->credential != 0)
		t->m.credential_id = c->credential < 0 ? 0 : c->credential;
	if (c->with_reply) {
		t->rcpts[0].last_reply = "451 4.7.1 try later";
		t->rcpts[0].attempts = 3;
		t->rcpts[0].next_attempt = INT64_MAX;
		t->rcpts[0].state = SPOOL_RCPT_DELIVERED;
	}
	if (!c->with_reply)
		st.last_reply = NULL;
	switch (c->type) {
	case SPOOL_REC_MSG:
		assert_int_equal(spool_record_encode_msg(b, &t->m), 0);
		break;
	case SPOOL_REC_RCPT_STATE:
		assert_int_equal(spool_record_encode_rcpt_state(b, case_id, c->index, &st), 0);
		break;
	case SPOOL_REC_DELETE:
		assert_int_equal(spool_record_encode_delete(b, case_id), 0);
		break;
	case SPOOL_REC_HOLD:
		assert_int_equal(spool_record_encode_hold(b, case_id, c->held), 0);
		break;
	}
}

static void rec_check(const struct rec_case *c, const struct spool_record *r,
		      const struct test_msg *t)
{
	struct spool_span cur;
	struct spool_record_rcpt rc;
	size_t n = 0;

	assert_int_equal(r->type, c->type);
	assert_string_equal(r->id, case_id);
	switch (c->type) {
	case SPOOL_REC_MSG:
		assert_int_equal(r->tenant_id, t->m.tenant_id);
		assert_int_equal(r->credential_id, t->m.credential_id);
		assert_int_equal(r->received, t->m.received);
		assert_int_equal(r->flags, t->m.flags);
		assert_int_equal(r->sender.len, strlen(t->m.sender));
		assert_memory_equal(r->sender.p, t->m.sender, r->sender.len);
		assert_int_equal(r->nrcpts, t->m.nrcpts);
		cur = r->rcpts;
		while (spool_record_rcpt_next(&cur, &rc)) {
			const struct spool_rcpt *want = &t->m.rcpts[n++];
			assert_int_equal(rc.addr.len, strlen(want->addr));
			assert_memory_equal(rc.addr.p, want->addr, rc.addr.len);
			assert_int_equal(rc.state, want->state);
			assert_int_equal(rc.attempts, want->attempts);
			assert_int_equal(rc.next_attempt, want->next_attempt);
			assert_int_equal(rc.has_reply, want->last_reply != NULL);
			if (want->last_reply)
				assert_memory_equal(rc.reply.p, want->last_reply, rc.reply.len);
		}
		assert_int_equal(n, t->m.nrcpts);
		assert_int_equal(r->data.len, t->m.len);
		if (t->m.len)
			assert_memory_equal(r->data.p, t->m.data, t->m.len);
		break;
	case SPOOL_REC_RCPT_STATE:
		assert_int_equal(r->rcpt_index, c->index);
		assert_int_equal(r->rcpt.state, SPOOL_RCPT_FAILED);
		assert_int_equal(r->rcpt.attempts, 7);
		assert_int_equal(r->rcpt.next_attempt, -5);
		assert_int_equal(r->rcpt.has_reply, c->with_reply);
		break;
	case SPOOL_REC_HOLD:
		assert_int_equal(r->held, c->held);
		break;
	case SPOOL_REC_DELETE:
		break;
	}
}

static void test_record_roundtrip(void **state)
{
	for (size_t i = 0; i < sizeof rec_cases / sizeof rec_cases[0]; i++) {
		const struct rec_case *c = &rec_cases[i];
		struct buf b = BUF_INIT;
		struct spool_record r;
		struct test_msg t;
		const char *reason = NULL;
		size_t used, len;
		char *copy;

		print_message("case %s\n", c->name);
		rec_encode(c, &b, &t);
		len = b.len;
		/* whole, with a second record behind it */
		assert_int_equal(spool_record_encode_delete(&b, case_id), 0);
		assert_int_equal(spool_record_parse(b.data, b.len, &r, &used, &reason), 1);
		assert_int_equal(used, len);
		rec_check(c, &r, &t);
		/* trickled: every proper prefix needs more, in a buffer of
		 * exactly that size so ASan catches any over-read */
		for (size_t k = 0; k < len; k++) {
			copy = malloc(k ? k : 1);
			memcpy(copy, b.data, k);
			assert_int_equal(spool_record_parse(copy, k, &r, &used, &reason), 0);
			assert_true(used > k);
			assert_true(used <= len);
			free(copy);
		}
		copy = malloc(len);
		memcpy(copy, b.data, len);
		assert_int_equal(spool_record_parse(copy, len, &r, &used, &reason), 1);
		rec_check(c, &r, &t);
		free(copy);
		buf_free(&b);
		test_msg_free(&t);
	}
}

static void put32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (8 * i));
}

struct corrupt_case {
	const char *name;
	size_t pos;   /* from the start, or from the end when from_end */
	int from_end;
	int set_len;  /* write len32 at pos instead of flipping a byte */
	uint32_t len32;
	const char *reason;
};

static const struct corrupt_case corrupt_cases[] = {
	{.name = "magic", .pos = 0, .reason = "bad-magic"},
	{.name = "type", .pos = 4, .reason = "bad-type"},
	{.name = "pad", .pos = 6, .reason = "bad-pad"},
	{.name = "payload", .pos = 40, .reason = "bad-checksum"},
	{.name = "checksum", .pos = 8, .from_end = 1, .reason = "bad-checksum"},
	{.name = "end-marker", .pos = 1, .from_end = 1, .reason = "bad-end-marker"},
	{.name = "length-huge", .pos = 8, .set_len = 1, .len32 = 0xffffffffu, .reason = "bad-length"},
	{.name = "length-max", .pos = 8, .set_len = 1, .len32 = (1u << 30) + 1, .reason = "bad-length"},
	{.name = "length-short", .pos = 8, .set_len = 1, .len32 = 3, .reason = "bad-length"},
	{.name = "length-minus-one", .pos = 8, .set_len = 1, .len32 = 0, .reason = NULL},
};

static void test_record_corrupt(void **state)
{
	struct test_msg t;
	struct buf b = BUF_INIT;
	struct spool_record r;
	const char *reason;
	size_t used;

	test_msg_make(&t, case_id, 200);
	assert_int_equal(spool_record_encode_msg(&b, &t.m), 0);
	for (size_t i = 0; i < sizeof corrupt_cases / sizeof corrupt_cases[0]; i++) {
		const struct corrupt_case *c = &corrupt_cases[i];
		char *p = malloc(b.len);
		size_t pos = c->from_end ? b.len - c->pos : c->pos;

		print_message("case %s\n", c->name);
		memcpy(p, b.data, b.len);
		if (c->set_len && c->reason == NULL) /* one byte shorter than true */
			put32(p + pos, (uint32_t)(b.len - 20 - 1));
		else if (c->set_len)
			put32(p + pos, c->len32);
		else
			p[pos] ^= 0x20;
		reason = NULL;
		assert_int_equal(spool_record_parse(p, b.len, &r, &used, &reason), -1);
		if (c->reason)
			assert_string_equal(reason, c->reason);
		free(p);
	}
	/* every single-bit flip anywhere: never accepted as a record */
	for (size_t pos = 0; pos < b.len; pos++) {
		for (int bit = 0; bit < 8; bit++) {
			int ret;
			b.data[pos] ^= (char)(1 << bit);
			ret = spool_record_parse(b.data, b.len, &r, &used, &reason);
			assert_true(ret == -1 || (ret == 0 && pos >= 8 && pos < 12));
			b.data[pos] ^= (char)(1 << bit);
		}
	}
	/* a payload whose checksum is right but whose structure is not */
	{
		struct buf x = BUF_INIT;
		uint32_t crc;
		assert_int_equal(spool_record_encode_delete(&x, case_id), 0);
		x.data[12] = 'G'; /* id not hex */
		crc = spool_crc32c(0, x.data + 4, 8 + 16);
		put32(x.data + 12 + 16, crc);
		assert_int_equal(spool_record_parse(x.data, x.len, &r, &used, &reason), -1);
		assert_string_equal(reason, "bad-id");
		buf_free(&x);
	}
	/* the login flag with a zero login: never written, so corrupt */
	{
		struct buf x = BUF_INIT;
		struct test_msg tl;
		uint32_t crc;
		size_t cred = 12 + 16 + 8 + 8 + 4; /* header, id, tenant, received, flags */
		test_msg_make(&tl, case_id, 10);
		tl.m.credential_id = 7;
		assert_int_equal(spool_record_encode_msg(&x, &tl.m), 0);
		assert_int_equal((unsigned char)x.data[cred], 7);
		memset(x.data + cred, 0, 8);
		crc = spool_crc32c(0, x.data + 4, x.len - 4 - 8);
		put32(x.data + x.len - 8, crc);
		assert_int_equal(spool_record_parse(x.data, x.len, &r, &used, &reason), -1);
		assert_string_equal(reason, "bad-payload");
		buf_free(&x);
		test_msg_free(&tl);
	}
	buf_free(&b);
	test_msg_free(&t);
}

/* ---- group commit ------------------------------------------------------ */

#define CONC_THREADS 8
#define CONC_PER_THREAD 150

struct conc {
	struct spool *s;
	char ids[CONC_PER_THREAD][SPOOL_ID_LEN + 1];
	int bad;
};

static void *conc_main(void *arg)
{
	struct conc *c = arg;

	for (int i = 0; i < CONC_PER_THREAD; i++)
		if (submit_new(c->s, 2000, c->ids[i]) != 0)
			c->bad++;
	return NULL;
}

static void test_group_commit(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 0);
	struct conc *c = calloc(CONC_THREADS, sizeof *c);
	pthread_t th[CONC_THREADS];
	struct spool_stats st;
	size_t total = CONC_THREADS * CONC_PER_THREAD;

	for (int i = 0; i < CONC_THREADS; i++) {
		c[i].s = s;
		assert_int_equal(pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
	}
	for (int i = 0; i < CONC_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].bad, 0);
	}
	spool_stats(s, &st);
	print_message("group commit: messages=%" PRIu64 " fsyncs=%" PRIu64
		      " fsyncs_per_message=%.3f\n",
		      st.messages, st.fsyncs, (double)st.fsyncs / (double)st.messages);
	assert_int_equal(st.messages, total);
	assert_true(st.fsyncs < st.messages);
	assert_int_equal(spool_count(s), total);
	spool_close(&s);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), total);
	for (int i = 0; i < CONC_THREADS; i++)
		for (int k = 0; k < CONC_PER_THREAD; k++)
			check_loaded(s, c[i].ids[k], 2000);
	spool_close(&s);
	free(c);
	tmpdir_free(dir);
}

/* ---- state changes ----------------------------------------------------- */

static int count_cb(void *ctx, const struct spool_message *m)
{
	size_t *n = ctx;

	assert_null(m->data);
	(*n)++;
	return 0;
}

static void test_delete_hold_state(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 0);
	char a[17], b[17], c[17], d[17];
	struct spool_rcpt delivered = {.state = SPOOL_RCPT_DELIVERED, .attempts = 1,
				       .last_reply = "250 ok"};
	struct spool_rcpt deferred = {.state = SPOOL_RCPT_PENDING, .attempts = 2,
				      .next_attempt = 12345, .last_reply = "451 later"};
	struct spool_message m;
	size_t n = 0;

	assert_int_equal(submit_new(s, 100, a), 0);
	assert_int_equal(submit_new(s, 100, b), 0);
	assert_int_equal(submit_new(s, 100, c), 0);
	assert_int_equal(submit_new(s, 100, d), 0);
	assert_int_equal(spool_count(s), 4);
	assert_int_equal(spool_delete(s, a), 0);
	assert_int_equal(spool_count(s), 3);
	assert_int_equal(spool_load(s, a, &m), 1);
	assert_int_equal(spool_delete(s, a), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_set_held(s, b, 1), 0);
	assert_int_equal(spool_set_rcpt_state(s, c, 0, &deferred), 0);
	assert_int_equal(spool_set_rcpt_state(s, c, 99, &deferred), -1);
	/* every recipient delivered: final, gone from the queue */
	assert_int_equal(spool_load(s, d, &m), 0);
	for (size_t i = 0; i < m.nrcpts; i++)
		assert_int_equal(spool_set_rcpt_state(s, d, i, &delivered), 0);
	spool_message_free(&m);
	assert_int_equal(spool_count(s), 2);
	spool_close(&s);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 2);
	spool_foreach(s, count_cb, &n);
	assert_int_equal(n, 2);
	assert_int_equal(spool_load(s, a, &m), 1);
	assert_int_equal(spool_load(s, d, &m), 1);
	assert_int_equal(spool_load(s, b, &m), 0);
	assert_true(m.flags & SPOOL_MSG_HELD);
	spool_message_free(&m);
	assert_int_equal(spool_load(s, c, &m), 0);
	assert_false(m.flags & SPOOL_MSG_HELD);
	assert_int_equal(m.rcpts[0].attempts, 2);
	assert_int_equal(m.rcpts[0].next_attempt, 12345);
	assert_string_equal(m.rcpts[0].last_reply, "451 later");
	spool_message_free(&m);
	check_loaded(s, b, 100);
	check_loaded(s, c, 100);
	assert_int_equal(spool_set_held(s, b, 0), 0);
	spool_close(&s);

	s = open_ok(dir, 0);
	assert_int_equal(spool_load(s, b, &m), 0);
	assert_false(m.flags & SPOOL_MSG_HELD);
	spool_message_free(&m);
	spool_close(&s);
	tmpdir_free(dir);
}

struct async_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, status;
};

static void async_cb(void *ctx, int status, const char *id)
{
	struct async_wait *w = ctx;

	(void)id;
	pthread_mutex_lock(&w->mu);
	w->done++;
	if (status < 0)
		w->status = status;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* async state records share group commits and survive a restart */
static void test_rcpt_state_async(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 0);
	struct async_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct spool_rcpt delivered = {.state = SPOOL_RCPT_DELIVERED, .attempts = 1,
				       .last_reply = "250 2.0.0 ok"};
	struct spool_rcpt failed = {.state = SPOOL_RCPT_FAILED, .attempts = 1,
				    .last_reply = "550 5.1.1 no such user"};
	struct spool_message m;
	char ids[50][17];
	int queued = 0;

	for (int i = 0; i < 50; i++)
		assert_int_equal(submit_new(s, 100, ids[i]), 0);
	for (int i = 0; i < 50; i++) {
		assert_int_equal(spool_load(s, ids[i], &m), 0);
		for (size_t r = 0; r < m.nrcpts; r++) {
			/* the last recipient of odd messages fails */
			const struct spool_rcpt *st =
				(i % 2 && r + 1 == m.nrcpts) ? &failed : &delivered;
			if (i >= 40 && r + 1 == m.nrcpts)
				continue; /* the last ten keep one pending */
			assert_int_equal(
				spool_set_rcpt_state_async(s, ids[i], r, st, async_cb, &w), 0);
			queued++;
		}
		spool_message_free(&m);
	}
	assert_int_equal(spool_set_rcpt_state_async(s, "0000000000000001", 0, &delivered,
						    async_cb, &w),
			 -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_set_rcpt_state_async(s, ids[45], 0, &delivered, NULL, NULL), -1);
	pthread_mutex_lock(&w.mu);
	while (w.done < queued)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	assert_int_equal(w.status, 0);
	assert_int_equal(spool_count(s), 10);
	spool_close(&s);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 10);
	assert_int_equal(spool_load(s, ids[3], &m), 1);
	/* submit_new() picks the recipient count: every one but the last
	 * of the last ten was delivered, the last is pending */
	for (int i = 40; i < 50; i++) {
		assert_int_equal(spool_load(s, ids[i], &m), 0);
		for (size_t r = 0; r + 1 < m.nrcpts; r++) {
			assert_int_equal(m.rcpts[r].state, SPOOL_RCPT_DELIVERED);
			assert_string_equal(m.rcpts[r].last_reply, "250 2.0.0 ok");
		}
		assert_int_equal(m.rcpts[m.nrcpts - 1].state, SPOOL_RCPT_PENDING);
		spool_message_free(&m);
	}
	spool_close(&s);
	tmpdir_free(dir);
}

static atomic_int lazy_syncs;

static int count_fdatasync(int fd)
{
	atomic_fetch_add(&lazy_syncs, 1);
	return fdatasync(fd);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Delivered and deferred recipients are lazy: written at once, made
 * durable by a later batch or within SPOOL_LAZY_SYNC_MS, so a stream of
 * them costs about one fdatasync per SPOOL_LAZY_SYNC_MS, not one each.
 * A failed recipient is synced before its callback. */
static void test_lazy_state(void **state)
{
	static const struct spool_io_hooks counting = {count_fdatasync, NULL};
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 0);
	struct async_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct spool_rcpt delivered = {.state = SPOOL_RCPT_DELIVERED, .attempts = 1,
				       .last_reply = "250 2.0.0 ok"};
	struct spool_rcpt deferred = {.state = SPOOL_RCPT_PENDING, .attempts = 1,
				      .next_attempt = 4102444800, .last_reply = "451 4.7.1 later"};
	struct spool_rcpt failed = {.state = SPOOL_RCPT_FAILED, .attempts = 1,
				    .last_reply = "550 5.1.1 no such user"};
	struct spool_message m;
	char ids[300][17];
	int64_t t0, elapsed;
	int n = 0, syncs, before, d = -1, q = -1;
	size_t nrcpts[300];

	(void)state;
	for (int i = 0; i < 300; i++) {
		assert_int_equal(submit_new(s, 100, ids[i]), 0);
		assert_int_equal(spool_load(s, ids[i], &m), 0);
		nrcpts[i] = m.nrcpts;
		spool_message_free(&m);
		/* d: rcpt 0 delivered, the last failed, one pending between;
		 * q: rcpt 0 deferred, others pending */
		if (nrcpts[i] > 2 && i % 3 != 0 && d < 0)
			d = i;
		else if (nrcpts[i] > 1 && i % 3 == 0 && q < 0)
			q = i;
	}
	assert_true(d >= 0 && q >= 0);
	spool_set_io_hooks(s, &counting);
	atomic_store(&lazy_syncs, 0);
	/* one at a time, each waited for: without laziness, one sync each */
	t0 = mono_ms();
	for (int i = 0; i < 300; i++) {
		assert_int_equal(spool_set_rcpt_state_async(s, ids[i], 0,
							    i % 3 ? &delivered : &deferred,
							    async_cb, &w),
				 0);
		n++;
		pthread_mutex_lock(&w.mu);
		while (w.done < n)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	elapsed = mono_ms() - t0;
	syncs = atomic_load(&lazy_syncs);
	print_message("lazy states: 300 records in %lld ms, %d fdatasyncs\n", (long long)elapsed,
		      syncs);
	assert_int_equal(w.status, 0);
	assert_true(syncs <= 2 + elapsed / SPOOL_LAZY_SYNC_MS);
	assert_true(syncs < 300);
	/* idle: the last ones are synced within the lazy time (the writer
	 * is asleep by then, so reading its flag does not race) */
	usleep(4 * SPOOL_LAZY_SYNC_MS * 1000);
	assert_int_equal(s->unsynced, 0);
	/* a failure is synced before its callback */
	before = atomic_load(&lazy_syncs);
	assert_int_equal(spool_set_rcpt_state_async(s, ids[d], nrcpts[d] - 1, &failed, async_cb, &w),
			 0);
	n++;
	pthread_mutex_lock(&w.mu);
	while (w.done < n)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	assert_true(atomic_load(&lazy_syncs) > before);
	spool_close(&s);
	/* what was written lazily is there after a restart */
	s = open_ok(dir, 0);
	assert_int_equal(spool_load(s, ids[d], &m), 0);
	assert_int_equal(m.rcpts[0].state, SPOOL_RCPT_DELIVERED);
	assert_int_equal(m.rcpts[nrcpts[d] - 1].state, SPOOL_RCPT_FAILED);
	spool_message_free(&m);
	assert_int_equal(spool_load(s, ids[q], &m), 0);
	assert_int_equal(m.rcpts[0].state, SPOOL_RCPT_PENDING);
	assert_int_equal(m.rcpts[0].attempts, 1);
	assert_string_equal(m.rcpts[0].last_reply, "451 4.7.1 later");
	spool_message_free(&m);
	spool_close(&s);
	tmpdir_free(dir);
}

static void test_ids(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 0);
	char prev[17] = "", id[17];

	for (int i = 0; i < 100000; i++) {
		spool_new_id(s, id);
		assert_true(spool_id_valid(id));
		assert_true(strcmp(id, prev) > 0);
		memcpy(prev, id, sizeof id);
	}
	spool_close(&s);
	/* a restart in the same second continues above what is stored */
	s = open_ok(dir, 0);
	assert_int_equal(submit_new(s, 10, id), 0);
	spool_close(&s);
	s = open_ok(dir, 0);
	spool_new_id(s, prev);
	assert_true(strcmp(prev, id) > 0);
	spool_close(&s);
	tmpdir_free(dir);
}

/* ---- segments ---------------------------------------------------------- */

static void test_segments(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 1); /* every batch rolls to a new segment */
	char a[17], b[17], c[17], e[17];
	struct spool_message m;
	struct spool_stats st;

	assert_int_equal(submit_new(s, 100, a), 0);   /* seg 1 */
	assert_int_equal(submit_new(s, 100, b), 0);   /* seg 2 */
	assert_int_equal(spool_delete(s, b), 0);      /* seg 3: pins nothing (b's seg 2 goes) */
	assert_int_equal(submit_new(s, 100, c), 0);   /* seg 4 */
	assert_int_equal(spool_set_held(s, a, 1), 0); /* seg 5: pinned by a in seg 1 */
	assert_int_equal(spool_delete(s, c), 0);      /* seg 6 */
	spool_stats(s, &st);
	assert_int_equal(st.segments_created, 6);
	spool_close(&s); /* the writer unlinks after the callbacks: wait for it */
	/* gone: 2 (b final), 3 (after 2), 4 (c final); 6 was the active one */
	assert_int_equal(segments(dir, NULL), 3);

	s = open_ok(dir, 1);
	/* 6 is not active any more: it refers to c whose segment is gone */
	assert_int_equal(segments(dir, NULL), 2);
	assert_int_equal(spool_count(s), 1);
	assert_int_equal(spool_load(s, a, &m), 0);
	assert_true(m.flags & SPOOL_MSG_HELD); /* the HOLD record in seg 5 survived */
	spool_message_free(&m);
	assert_int_equal(submit_new(s, 100, e), 0);
	assert_int_equal(spool_delete(s, a), 0);
	spool_close(&s);
	/* seg 1 went, releasing 5; 7 holds e; the DELETE's 8 was active */
	assert_int_equal(segments(dir, NULL), 2);
	s = open_ok(dir, 1);
	assert_int_equal(spool_count(s), 1);
	check_loaded(s, e, 100);
	assert_int_equal(spool_load(s, a, &m), 1);
	assert_int_equal(spool_delete(s, e), 0);
	spool_close(&s);
	s = open_ok(dir, 1);
	assert_int_equal(spool_count(s), 0);
	assert_int_equal(segments(dir, NULL), 0);
	spool_close(&s);
	tmpdir_free(dir);
}

static void test_roll(void **state)
{
	char *dir = tmpdir_new();
	struct spool *s = open_ok(dir, 16 * 1024);
	char ids[60][17];

	for (int i = 0; i < 60; i++)
		assert_int_equal(submit_new(s, 4000, ids[i]), 0);
	assert_true(segments(dir, NULL) > 5);
	spool_close(&s);
	s = open_ok(dir, 16 * 1024);
	for (int i = 0; i < 60; i++)
		check_loaded(s, ids[i], 4000);
	for (int i = 0; i < 60; i++)
		assert_int_equal(spool_delete(s, ids[i]), 0);
	spool_close(&s);
	assert_int_equal(segments(dir, NULL), 1); /* the one that was active */
	tmpdir_free(dir);
}

/* ---- recovery ---------------------------------------------------------- */

/* Offsets of the records in a segment file (all must verify). */
static size_t record_offsets(const char *path, size_t *offs, size_t max, size_t *size_r)
{
	FILE *f = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n, off = 0, count = 0;

	assert_non_null(f);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	while (off < b.len && count < max) {
		struct spool_record r;
		size_t used;
		const char *reason;
		assert_int_equal(spool_record_parse(b.data + off, b.len - off, &r, &used, &reason), 1);
		offs[count++] = off;
		off += used;
	}
	*size_r = b.len;
	buf_free(&b);
	return count;
}

static void test_torn_tail(void **state)
{
	/* cut the last record at several points: header, payload, trailer */
	static const size_t cuts[] = {1, 5, 12, 30, 200, 3, 8};

	for (size_t ci = 0; ci < sizeof cuts / sizeof cuts[0]; ci++) {
		char *dir = tmpdir_new(), last[64], ids[5][17], *path;
		struct spool *s = open_ok(dir, 0);
		struct spool_message m;
		size_t offs[8], size;
		struct stat st;

		for (int i = 0; i < 5; i++)
			assert_int_equal(submit_new(s, 500, ids[i]), 0);
		spool_close(&s);
		assert_int_equal(segments(dir, last), 1);
		path = path_join(dir, last);
		assert_int_equal(record_offsets(path, offs, 8, &size), 5);
		/* keep cuts[ci] bytes of the fifth record (or drop cuts[ci] from its end) */
		{
			/* the record's size is random: keep less than all of it */
			size_t rec = size - offs[4], cut = cuts[ci] < rec ? cuts[ci] : rec - 1;
			assert_int_equal(truncate(path, (off_t)(ci % 2 ? size - cut : offs[4] + cut)),
					 0);
		}
		s = open_ok(dir, 0);
		assert_int_equal(spool_count(s), 4);
		for (int i = 0; i < 4; i++)
			check_loaded(s, ids[i], 500);
		assert_int_equal(spool_load(s, ids[4], &m), 1);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal((size_t)st.st_size, offs[4]); /* the tail is cut away */
		assert_int_equal(quarantined(dir), 0);
		/* new writes go to a new segment */
		assert_int_equal(submit_new(s, 500, ids[4]), 0);
		assert_int_equal(segments(dir, NULL), 2);
		spool_close(&s);
		s = open_ok(dir, 0);
		assert_int_equal(spool_count(s), 5);
		check_loaded(s, ids[4], 500);
		spool_close(&s);
		free(path);
		tmpdir_free(dir);
	}
}

static void test_garbage_middle(void **state)
{
	char *dir = tmpdir_new(), last[64], ids[4][17], *path, *qpath, name[128];
	struct spool *s = open_ok(dir, 0);
	struct spool_message m;
	size_t offs[8], size;
	struct stat st;
	char junk[100];
	int fd;

	for (int i = 0; i < 4; i++)
		assert_int_equal(submit_new(s, 500, ids[i]), 0);
	spool_close(&s);
	assert_int_equal(segments(dir, last), 1);
	path = path_join(dir, last);
	assert_int_equal(record_offsets(path, offs, 8, &size), 4);
	/* overwrite the middle of record 2 (index 1): checksum fails */
	memset(junk, 'X', sizeof junk);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, 20, (off_t)offs[1] + 40), 20);
	/* and turn the start of record 3 into pure garbage with a fake magic */
	memcpy(junk, "SLR1\x01\0\0\0\xff\xff\0\0", 12);
	assert_int_equal(pwrite(fd, junk, 60, (off_t)offs[2]), 60);
	close(fd);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 2);
	check_loaded(s, ids[0], 500);
	check_loaded(s, ids[3], 500);
	assert_int_equal(spool_load(s, ids[1], &m), 1);
	assert_int_equal(spool_load(s, ids[2], &m), 1);
	/* one bad stretch, from record 2 up to record 4 */
	assert_int_equal(quarantined(dir), 1);
	snprintf(name, sizeof name, "quarantine/%.20s-%zu.bad", last, offs[1]);
	qpath = path_join(dir, name);
	assert_int_equal(stat(qpath, &st), 0);
	assert_int_equal((size_t)st.st_size, offs[3] - offs[1]);
	spool_close(&s);
	/* a restart finds the same and still works */
	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 2);
	spool_close(&s);
	free(qpath);
	free(path);
	tmpdir_free(dir);
}

static void test_garbage_files(void **state)
{
	char *dir = tmpdir_new(), *path;
	struct spool *s;
	unsigned char junk[5000];
	FILE *f;

	/* random bytes, zeros, and magics everywhere: recovery survives */
	for (int kind = 0; kind < 3; kind++) {
		char name[64];
		snprintf(name, sizeof name, "seg-%016x.log", kind + 1);
		path = path_join(dir, name);
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = kind == 0 ? (unsigned char)mix(i) : kind == 1 ? 0 : "SLR1"[i % 4];
		f = fopen(path, "wb");
		fwrite(junk, 1, sizeof junk, f);
		fclose(f);
		free(path);
	}
	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 0);
	spool_close(&s);
	tmpdir_free(dir);
}

static void test_lock_readonly(void **state)
{
	char *dir = tmpdir_new(), id[17], *err = NULL;
	struct spool_config cfg = {.dir = dir};
	struct spool *s = open_ok(dir, 0), *s2 = NULL, *ro = NULL;
	struct test_msg t;
	size_t n = 0;

	assert_int_equal(submit_new(s, 300, id), 0);
	assert_int_equal(spool_open(&cfg, &s2, &err), -1);
	assert_null(s2);
	assert_non_null(strstr(err, "locked"));
	free(err);
	err = NULL;

	assert_int_equal(spool_open_readonly(dir, &ro, &err), 0);
	assert_int_equal(spool_count(ro), 1);
	check_loaded(ro, id, 300);
	spool_foreach(ro, count_cb, &n);
	assert_int_equal(n, 1);
	test_msg_make(&t, id, 10);
	spool_new_id(ro, t.m.id);
	assert_int_equal(spool_submit(ro, &t.m, waiter_cb, NULL), -1);
	assert_int_equal(spool_delete(ro, id), -1);
	test_msg_free(&t);
	spool_close(&ro);

	spool_close(&s);
	assert_int_equal(spool_open(&cfg, &s2, &err), 0); /* released */
	spool_close(&s2);
	tmpdir_free(dir);
}

/* ---- write failures ---------------------------------------------------- */

/* In a child: fill the file size limit, so a write fails half-way. */
static int efbig_child(const char *dir)
{
	struct spool *s;
	struct rlimit rl;
	char a[17], b[17], c[17];
	int r;

	signal(SIGXFSZ, SIG_IGN);
	s = child_open(dir, 0);
	if (submit_new(s, 1000, a) != 0)
		return 1;
	/* an id whose message is bigger than the limit */
	for (;;) {
		struct test_msg t;
		size_t len;
		spool_new_id(s, b);
		test_msg_make(&t, b, 200 * 1024);
		len = t.m.len;
		test_msg_free(&t);
		if (len > 100 * 1024)
			break;
	}
	rl.rlim_cur = rl.rlim_max = 64 * 1024;
	if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
		return 2;
	{
		struct test_msg t;
		test_msg_make(&t, b, 200 * 1024);
		r = submit_wait(s, &t.m);
		test_msg_free(&t);
	}
	if (r != -EFBIG) {
		fprintf(stderr, "efbig: status %d\n", r);
		return 3;
	}
	if (submit_new(s, 1000, c) != 0)
		return 4;
	spool_close(&s);
	printf("%s %s %s\n", a, b, c);
	fflush(stdout); /* the caller leaves with _exit() */
	return 0;
}

static void test_write_failure(void **state)
{
	char *dir = tmpdir_new(), a[17], b[17], c[17];
	struct spool_message m;
	struct spool *s;
	int pfd[2], status;
	pid_t pid;
	FILE *f;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		_exit(efbig_child(dir));
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	assert_int_equal(fscanf(f, "%16s %16s %16s", a, b, c), 3);
	fclose(f);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 2);
	check_loaded(s, a, 1000);
	check_loaded(s, c, 1000);
	assert_int_equal(spool_load(s, b, &m), 1);
	assert_int_equal(quarantined(dir), 0);
	spool_close(&s);
	tmpdir_free(dir);
}

/* In a child with its own mount namespace: a 256 KiB tmpfs fills up. */
static int enospc_child(const char *dir)
{
	char ids[200][17], failed[17] = "";
	struct spool_message m;
	struct spool *s;
	size_t ok = 0;
	int r = 0;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700") < 0)
		return 77;
	s = child_open(dir, 0);
	for (int i = 0; i < 200; i++) {
		r = submit_new(s, 30000, ids[ok]);
		if (r == 0) {
			ok++;
			continue;
		}
		memcpy(failed, ids[ok], sizeof failed);
		break;
	}
	if (r != -ENOSPC) {
		fprintf(stderr, "enospc: status %d\n", r);
		return 1;
	}
	/* a small one still fits: the failed batch was cut away */
	if (submit_new(s, 10, ids[ok]) == 0)
		ok++;
	spool_close(&s);
	s = child_open(dir, 0);
	if (spool_count(s) != ok || spool_load(s, failed, &m) != 1 || quarantined(dir) != 0)
		return 2;
	for (size_t i = 0; i + 1 < ok; i++)
		if (loaded_ok(s, ids[i], 30000) != 0)
			return 3;
	spool_close(&s);
	return 0;
}

static void test_enospc(void **state)
{
	char *dir = tmpdir_new();
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(enospc_child(dir));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	tmpdir_free(dir);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		skip(); /* no mount namespace here */
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int fail_eio(int fd)
{
	errno = EIO;
	return -1;
}

static int fail_truncate(int fd, off_t len)
{
	errno = EIO;
	return -1;
}

/* fdatasync fails and the batch cannot be cut away: the segment is
 * abandoned with the refused message complete in it; a DELETE written
 * ahead of the next batch keeps it from coming back at restart. */
static void test_sync_failure(void **state)
{
	static const struct spool_io_hooks failing = {fail_eio, fail_truncate}, real = {0};
	char *dir = tmpdir_new(), a[17], b[17], c[17], first[64], *path;
	struct spool *s = open_ok(dir, 0);
	struct spool_message m;
	struct spool_stats st;
	size_t offs[4], size;

	assert_int_equal(submit_new(s, 300, a), 0);
	segments(dir, first);
	spool_set_io_hooks(s, &failing);
	assert_int_equal(submit_new(s, 300, b), -EIO);
	spool_set_io_hooks(s, &real);
	assert_int_equal(spool_count(s), 1);
	assert_int_equal(spool_load(s, b, &m), 1);
	assert_int_equal(submit_new(s, 300, c), 0);
	spool_stats(s, &st);
	assert_int_equal(st.segments_created, 2);
	assert_int_equal(st.failed, 1);
	spool_close(&s);
	/* b really is in the abandoned segment */
	path = path_join(dir, first);
	assert_int_equal(record_offsets(path, offs, 4, &size), 2);
	free(path);

	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 2);
	check_loaded(s, a, 300);
	check_loaded(s, c, 300);
	assert_int_equal(spool_load(s, b, &m), 1);
	assert_int_equal(spool_delete(s, a), 0);
	spool_close(&s);
	assert_int_equal(segments(dir, NULL), 2); /* the first went with a; c and the DELETE stay */
	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 1);
	check_loaded(s, c, 300);
	assert_int_equal(spool_delete(s, c), 0);
	spool_close(&s);
	s = open_ok(dir, 0);
	assert_int_equal(spool_count(s), 0);
	spool_close(&s);
	assert_int_equal(segments(dir, NULL), 0);
	tmpdir_free(dir);
}

/* ---- kill -9 ------------------------------------------------------------ */

#define CRASH_INFLIGHT 32

struct crash_child {
	int fd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int inflight;
};

static void crash_cb(void *ctx, int status, const char *id)
{
	struct crash_child *c = ctx;
	char line[SPOOL_ID_LEN + 1];

	if (status == 0) {
		memcpy(line, id, SPOOL_ID_LEN);
		line[SPOOL_ID_LEN] = '\n';
		if (write(c->fd, line, sizeof line) != sizeof line)
			_exit(3);
	}
	pthread_mutex_lock(&c->mu);
	c->inflight--;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void crash_child_run(const char *dir, int fd)
{
	struct crash_child c = {fd, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct spool *s = child_open(dir, 256 * 1024);

	for (int i = 0; i < 100000; i++) {
		struct test_msg t;
		char id[17];

		pthread_mutex_lock(&c.mu);
		while (c.inflight >= CRASH_INFLIGHT)
			pthread_cond_wait(&c.cv, &c.mu);
		c.inflight++;
		pthread_mutex_unlock(&c.mu);
		spool_new_id(s, id);
		test_msg_make(&t, id, 8000);
		if (spool_submit(s, &t.m, crash_cb, &c) < 0)
			_exit(2);
		test_msg_free(&t);
	}
	spool_close(&s);
	_exit(0);
}

static void test_crash(void **state)
{
	char *dir = tmpdir_new();

	srand((unsigned)time(NULL));
	for (int round = 0; round < 3; round++) {
		size_t want = 50 + (size_t)rand() % 400, nacked = 0, cap = 1024;
		char (*acked)[17] = malloc(cap * sizeof *acked);
		uint64_t start = util_now_ms();
		struct spool *s;
		char line[17];
		int pfd[2], status;
		pid_t pid;
		FILE *f;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			crash_child_run(dir, pfd[1]);
		}
		close(pfd[1]);
		f = fdopen(pfd[0], "r");
		/* read acks until enough or 5 s, then kill -9 mid-stream */
		while (nacked < want && util_now_ms() - start < 5000 &&
		       fread(line, 1, sizeof line, f) == sizeof line) {
			if (nacked == cap)
				acked = realloc(acked, (cap *= 2) * sizeof *acked);
			memcpy(acked[nacked], line, SPOOL_ID_LEN);
			acked[nacked++][SPOOL_ID_LEN] = '\0';
		}
		kill(pid, SIGKILL);
		/* acks the child wrote before it died count too */
		while (fread(line, 1, sizeof line, f) == sizeof line) {
			if (nacked == cap)
				acked = realloc(acked, (cap *= 2) * sizeof *acked);
			memcpy(acked[nacked], line, SPOOL_ID_LEN);
			acked[nacked++][SPOOL_ID_LEN] = '\0';
		}
		fclose(f);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		print_message("crash round %d: acked=%zu\n", round, nacked);
		assert_true(nacked > 0);

		s = open_ok(dir, 256 * 1024);
		assert_true(spool_count(s) >= nacked);
		for (size_t i = 0; i < nacked; i++)
			check_loaded(s, acked[i], 8000);
		spool_close(&s);
		free(acked);
	}
	tmpdir_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_corrupt),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_delete_hold_state),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_roll),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_garbage_middle),
		cmocka_unit_test(test_garbage_files),
		cmocka_unit_test(test_lock_readonly),
		cmocka_unit_test(test_write_failure),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_sync_failure),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_rcpt_state_async),
		cmocka_unit_test(test_lazy_state),
	};

	log_init("test_spool", 0, LOG_LEVEL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
