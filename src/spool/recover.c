/*
 * Recovery: scan every segment in order and rebuild the index.  Any bytes
 * are survivable: a record goes to the index only when its framing,
 * checksum and payload verify.  A bad stretch followed by a valid record
 * is corruption: copied to quarantine/ and skipped (the scan resyncs on
 * the next magic that starts a valid record).  A bad stretch that runs to
 * the end of the file is a torn tail (crash mid-batch; never
 * acknowledged): truncated away, and quarantined too if it looked like
 * damage rather than a short write.  Read-only scans change nothing.
 */
#include "spool/spool_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SCAN_CHUNK ((size_t)64 * 1024)

struct scan {
	struct spool *s;
	int fd;
	uint64_t seq, size;
	char name[32];
	struct buf rbuf;
	size_t quarantined, torn;
};

void spool_segment_name(uint64_t seq, char name_r[32])
{
	snprintf(name_r, 32, "seg-%016" PRIx64 ".log", seq);
}

static int segment_seq(const char *name, uint64_t *seq_r)
{
	char id[SPOOL_ID_LEN + 1];

	if (strlen(name) != 4 + SPOOL_ID_LEN + 4 || strncmp(name, "seg-", 4) != 0 ||
	    strcmp(name + 4 + SPOOL_ID_LEN, ".log") != 0)
		return -1;
	memcpy(id, name + 4, SPOOL_ID_LEN);
	id[SPOOL_ID_LEN] = '\0';
	if (!spool_id_valid(id))
		return -1;
	*seq_r = spool_id_key(id);
	return *seq_r == 0 ? -1 : 0;
}

/* Bytes read (short at end of file), -1 on error. */
static ssize_t pread_full(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* 1 record at off (rec points into sc->rbuf), 0 incomplete up to the end
 * of the file, -1 invalid, -2 I/O error. */
static int read_record_at(struct scan *sc, uint64_t off, struct spool_record *rec, size_t *len_r,
			  const char **reason_r)
{
	unsigned char h[SPOOL_REC_HEADER];
	uint64_t avail = sc->size - off;
	size_t hn = avail < sizeof h ? (size_t)avail : sizeof h, need;
	ssize_t got;
	int r;

	*reason_r = "incomplete";
	got = pread_full(sc->fd, h, hn, off);
	if (got < 0)
		return -2;
	r = spool_record_parse(h, (size_t)got, rec, &need, reason_r);
	if (r < 0)
		return -1;
	if (r == 1 || need > avail || (size_t)got < hn) /* header alone is never a record */
		return 0;
	buf_reset(&sc->rbuf);
	if (buf_reserve(&sc->rbuf, need) < 0)
		return -2;
	got = pread_full(sc->fd, sc->rbuf.data, need, off);
	if (got < 0)
		return -2;
	sc->rbuf.len = (size_t)got;
	r = spool_record_parse(sc->rbuf.data, sc->rbuf.len, rec, len_r, reason_r);
	if (r == 0) /* the file shrank under a read-only scan */
		*reason_r = "incomplete";
	return r;
}

/* Offset of the first valid record after from, sc->size if none, or -1
 * on I/O error.  Note: each magic found costs a parse, so a file made of
 * magics is O(n^2); only corrupt files pay it. */
static int64_t find_next(struct scan *sc, uint64_t from)
{
	static const char magic[4] = {'S', 'L', 'R', '1'};
	char *chunk = malloc(SCAN_CHUNK);
	uint64_t pos = from;
	int64_t ret = (int64_t)sc->size;

	if (chunk == NULL)
		return -1;
	while (pos + 4 <= sc->size) {
		uint64_t left = sc->size - pos;
		size_t n = left < SCAN_CHUNK ? (size_t)left : SCAN_CHUNK, i = 0;
		ssize_t got = pread_full(sc->fd, chunk, n, pos);
		if (got < 0) {
			ret = -1;
			break;
		}
		if (got < 4)
			break;
		while (i + 4 <= (size_t)got) {
			struct spool_record rec;
			const char *hit = memmem(chunk + i, (size_t)got - i, magic, 4), *reason;
			size_t len;
			int r;
			if (hit == NULL)
				break;
			i = (size_t)(hit - chunk);
			r = read_record_at(sc, pos + i, &rec, &len, &reason);
			if (r == 1) {
				free(chunk);
				return (int64_t)(pos + i);
			}
			if (r == -2) {
				free(chunk);
				return -1;
			}
			i++;
		}
		pos += (uint64_t)got - 3;
	}
	free(chunk);
	return ret;
}

static int write_full(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copy [from, to) to quarantine/<segment>-<offset>.bad, durably. */
static int quarantine(struct scan *sc, uint64_t from, uint64_t to)
{
	char name[64], *chunk = NULL;
	int qfd = -1, fd = -1, ret = -1;

	if (mkdirat(sc->s->dirfd, "quarantine", 0700) < 0 && errno != EEXIST)
		return -1;
	qfd = openat(sc->s->dirfd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (qfd < 0)
		return -1;
	snprintf(name, sizeof name, "seg-%016" PRIx64 "-%" PRIu64 ".bad", sc->seq, from);
	fd = openat(qfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (chunk = malloc(SCAN_CHUNK)) == NULL)
		goto done;
	while (from < to) {
		size_t n = to - from < SCAN_CHUNK ? (size_t)(to - from) : SCAN_CHUNK;
		ssize_t got = pread_full(sc->fd, chunk, n, from);
		if (got <= 0 || write_full(fd, chunk, (size_t)got) < 0)
			goto done;
		from += (uint64_t)got;
	}
	if (fsync(fd) < 0 || fsync(qfd) < 0)
		goto done;
	ret = 0;
done:
	free(chunk);
	if (fd >= 0)
		close(fd);
	close(qfd);
	return ret;
}

static int scan_segment(struct scan *sc, char **err_r)
{
	struct spool *s = sc->s;
	uint64_t off = 0;

	while (off < sc->size) {
		struct spool_record rec;
		const char *reason;
		size_t len;
		int64_t next;
		int r = read_record_at(sc, off, &rec, &len, &reason);

		if (r == -2)
			goto io_fail;
		if (r == 1) {
			if (spool_index_apply(&s->idx, &rec, sc->seq, off, len) < 0) {
				*err_r = util_strdup("spool: out of memory rebuilding the index");
				return -1;
			}
			off += len;
			continue;
		}
		next = find_next(sc, off + 1);
		if (next < 0)
			goto io_fail;
		if ((uint64_t)next < sc->size) {
			sc->quarantined++;
			if (s->readonly) {
				log_debug("spool skip segment=%s offset=%" PRIu64 " reason=%s", sc->name,
					  off, reason);
			} else {
				log_warn("spool quarantine segment=%s offset=%" PRIu64 " length=%" PRIu64
					 " reason=%s",
					 sc->name, off, (uint64_t)next - off, reason);
				if (quarantine(sc, off, (uint64_t)next) < 0)
					log_err("spool quarantine-failed segment=%s offset=%" PRIu64
						" error=%s",
						sc->name, off, strerror(errno));
			}
			off = (uint64_t)next;
			continue;
		}
		/* Nothing valid after off: a torn tail. */
		if (s->readonly) {
			log_debug("spool tail-in-progress segment=%s offset=%" PRIu64, sc->name, off);
			break;
		}
		sc->torn++;
		log_warn("spool torn-tail segment=%s offset=%" PRIu64 " length=%" PRIu64
			 " reason=%s action=truncate",
			 sc->name, off, sc->size - off, reason);
		if (r < 0 && quarantine(sc, off, sc->size) < 0) {
			/* Keep the bytes: new writes go to a new segment anyway. */
			log_err("spool quarantine-failed segment=%s offset=%" PRIu64 " error=%s",
				sc->name, off, strerror(errno));
			break;
		}
		if (ftruncate(sc->fd, (off_t)off) < 0 || fsync(sc->fd) < 0)
			log_err("spool truncate-failed segment=%s offset=%" PRIu64 " error=%s",
				sc->name, off, strerror(errno));
		break;
	}
	return 0;
io_fail:
	if (asprintf(err_r, "spool: reading %s/%s: %s", s->dir, sc->name, strerror(errno)) < 0)
		*err_r = NULL;
	return -1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sorted segment numbers in the folder. */
static int list_segments(struct spool *s, uint64_t **seqs_r, size_t *n_r)
{
	DIR *d = opendir(s->dir);
	uint64_t *seqs = NULL, seq;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (segment_seq(de->d_name, &seq) < 0)
			continue;
		if (n == cap) {
			uint64_t *p = realloc(seqs, (cap ? cap * 2 : 16) * sizeof *p);
			if (p == NULL) {
				free(seqs);
				closedir(d);
				return -1;
			}
			seqs = p;
			cap = cap ? cap * 2 : 16;
		}
		seqs[n++] = seq;
	}
	closedir(d);
	if (n)
		qsort(seqs, n, sizeof *seqs, cmp_u64);
	*seqs_r = seqs;
	*n_r = n;
	return 0;
}

int spool_recover(struct spool *s, char **err_r)
{
	struct scan sc = {.s = s, .fd = -1};
	uint64_t *seqs = NULL, *dead = NULL;
	size_t nseqs = 0, ndead = 0;
	int ret = -1;

	if (list_segments(s, &seqs, &nseqs) < 0) {
		if (asprintf(err_r, "spool: listing %s: %s", s->dir, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	for (size_t i = 0; i < nseqs; i++) {
		struct stat st;

		sc.seq = seqs[i];
		spool_segment_name(sc.seq, sc.name);
		sc.fd = openat(s->dirfd, sc.name, (s->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		if (sc.fd < 0 && errno == ENOENT && s->readonly)
			continue; /* deleted by the writer since we listed */
		if (sc.fd < 0 || fstat(sc.fd, &st) < 0) {
			if (asprintf(err_r, "spool: opening %s/%s: %s", s->dir, sc.name,
				     strerror(errno)) < 0)
				*err_r = NULL;
			goto done;
		}
		sc.size = (uint64_t)st.st_size;
		if (spool_index_add_segment(&s->idx, sc.seq) < 0 || scan_segment(&sc, err_r) < 0) {
			if (*err_r == NULL && asprintf(err_r, "spool: out of memory") < 0)
				*err_r = NULL;
			goto done;
		}
		close(sc.fd);
		sc.fd = -1;
	}
	s->next_seq = nseqs ? seqs[nseqs - 1] + 1 : 1;
	for (struct spool_entry *e = s->idx.head; e; e = e->next)
		if (e->key > s->last_id)
			s->last_id = e->key;
	if (!s->readonly) {
		/* Writes go to a new segment: none is active yet. */
		ndead = spool_index_collect(&s->idx, 0, &dead);
		spool_unlink_segments(s, dead, ndead);
		log_info("spool recovered dir=%s messages=%zu segments=%zu quarantined=%zu torn=%zu "
			 "deleted_segments=%zu",
			 s->dir, s->idx.npending, nseqs, sc.quarantined, sc.torn, ndead);
	}
	ret = 0;
done:
	if (sc.fd >= 0)
		close(sc.fd);
	buf_free(&sc.rbuf);
	free(seqs);
	free(dead);
	return ret;
}
