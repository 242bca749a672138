/*
 * Fuzz the spool record parser and recovery.  The input is parsed as a
 * stream of records (whole, and again with every record re-parsed from
 * each prefix), then written as a segment file and recovered read-only
 * and read-write: no byte sequence may crash, leak or make a record
 * appear that does not verify.
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/record.h"
#include "spool/spool.h"
#include "util/util.h"

#define FUZZ_FILE_MAX (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir[] = "/tmp/sluice-fuzz-spool-XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void cleanup(void)
{
	nftw(fuzz_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz_spool_record", 0, (enum log_level)(LOG_LEVEL_ERR + 1)); /* quiet */
	if (mkdtemp(fuzz_dir) == NULL)
		abort();
	atexit(cleanup);
	return 0;
}

static void check_record(const struct spool_record *r)
{
	struct spool_span cur = r->rcpts;
	struct spool_record_rcpt rc;
	uint32_t n = 0;

	if (!spool_id_valid(r->id))
		abort();
	if (r->type == SPOOL_REC_MSG) {
		while (spool_record_rcpt_next(&cur, &rc))
			n++;
		if (n != r->nrcpts)
			abort();
	}
}

static int visit(void *ctx, const struct spool_message *m)
{
	struct spool *s = ctx;
	struct spool_message full;

	if (spool_load(s, m->id, &full) == 0)
		spool_message_free(&full);
	return 0;
}

static void recover(const uint8_t *data, size_t size)
{
	struct spool_config cfg = {.dir = fuzz_dir};
	struct spool *s = NULL;
	char *path, *err = NULL;
	int fd;

	if (asprintf(&path, "%s/seg-0000000000000001.log", fuzz_dir) < 0)
		abort();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	free(path);

	if (spool_open_readonly(fuzz_dir, &s, &err) < 0)
		abort();
	spool_foreach(s, visit, s);
	spool_close(&s);

	/* read-write recovery quarantines, truncates and collects segments */
	if (spool_open(&cfg, &s, &err) < 0)
		abort();
	spool_foreach(s, visit, s);
	(void)spool_count(s);
	spool_close(&s);
	cleanup();
	if (mkdir(fuzz_dir, 0700) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct spool_record r;
		const char *reason = NULL;
		size_t used = 0;
		int ret = spool_record_parse(data + off, size - off, &r, &used, &reason);

		if (ret == 1) {
			if (used < SPOOL_REC_OVERHEAD || used > size - off)
				abort();
			check_record(&r);
			/* every proper prefix of a record is "need more" */
			for (size_t k = used > 64 ? used - 64 : 0; k < used; k++) {
				size_t u2;
				if (spool_record_parse(data + off, k, &r, &u2, &reason) != 0 || u2 <= k)
					abort();
			}
			off += used;
		} else if (ret == 0) {
			if (used <= size - off)
				abort();
			break;
		} else {
			if (reason == NULL)
				abort();
			off++; /* resync, as recovery does */
		}
	}
	if (size <= FUZZ_FILE_MAX)
		recover(data, size);
	return 0;
}
