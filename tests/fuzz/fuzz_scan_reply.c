/*
 * libFuzzer target for what scanners send back (scan/scan_parse.c).  The
 * first byte picks the parser: 0 clamd's INSTREAM reply, 1 an HTTP
 * response whose body (when complete) goes to the rspamd JSON parser, as
 * scan_conn.c does, 2 the rspamd JSON alone.  The rest is the input, in an
 * exactly-sized buffer so ASan sees any read past its end.
 * Oracle: results within bounds and NUL-terminated, text printable ASCII,
 * a body inside the buffer, the same answer for the input fed whole and
 * for every prefix of it (never complete earlier with another result:
 * a prefix is "more", or the same complete reply, or an error only where
 * the whole input is an error too), and a second parse identical.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scan/scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n >= size)
		__builtin_trap();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			__builtin_trap();
}

static void check_result(const struct scan_result *r)
{
	if ((unsigned)r->outcome >= SCAN_NOUTCOMES)
		__builtin_trap();
	check_text(r->name, sizeof r->name);
	check_text(r->text, sizeof r->text);
	check_text(r->symbols, sizeof r->symbols);
}

static int same_result(const struct scan_result *a, const struct scan_result *b)
{
	return a->outcome == b->outcome && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->text, b->text) == 0 && strcmp(a->symbols, b->symbols) == 0;
}

static void fuzz_clamd(const char *in, size_t len)
{
	struct scan_result a, b;
	int r = scan_clamd_reply_parse(in, len, 1, &a);

	if (r == 0)
		__builtin_trap(); /* at EOF the answer is final */
	if (r == 1) {
		check_result(&a);
		if (a.outcome != SCAN_OUT_CLEAN && a.outcome != SCAN_OUT_VIRUS &&
		    a.outcome != SCAN_OUT_FAILED)
			__builtin_trap();
		if (scan_clamd_reply_parse(in, len, 1, &b) != 1 || !same_result(&a, &b))
			__builtin_trap();
	}
	/* without EOF, a prefix is "more" or the same reply (the terminator came) */
	for (size_t k = 0; k <= len; k += 1 + k / 8) {
		int rk = scan_clamd_reply_parse(in, k, 0, &b);
		if (rk == 1) {
			check_result(&b);
			if (scan_clamd_reply_parse(in, len, 0, &a) != 1 || !same_result(&a, &b))
				__builtin_trap();
		}
	}
}

static void fuzz_rspamd_json(const char *in, size_t len)
{
	struct scan_result a, b;

	if (scan_rspamd_reply_parse(in, len, &a) == 0) {
		check_result(&a);
		if (scan_rspamd_reply_parse(in, len, &b) != 0 || !same_result(&a, &b) ||
		    a.score != b.score)
			__builtin_trap();
	}
}

static void fuzz_http(const char *in, size_t len)
{
	struct scan_http_response a, b;
	int r = scan_http_response_parse(in, len, 1, &a);

	if (r == 0)
		__builtin_trap();
	if (r == 1) {
		if (a.status < 100 || a.status > 999 || a.body_off > len ||
		    a.body_len > len - a.body_off || a.body_len > SCAN_HTTP_BODY_MAX)
			__builtin_trap();
		fuzz_rspamd_json(in + a.body_off, a.body_len);
	}
	for (size_t k = 0; k <= len; k += 1 + k / 8) {
		int rk = scan_http_response_parse(in, k, 0, &b);
		if (rk == 1) {
			/* complete early only with a Content-Length, and then the
			 * whole input agrees */
			if (scan_http_response_parse(in, len, 0, &a) != 1 || a.status != b.status ||
			    a.body_off != b.body_off || a.body_len != b.body_len)
				__builtin_trap();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in;
	size_t len;

	if (size == 0)
		return 0;
	len = size - 1;
	in = malloc(len ? len : 1);
	if (in == NULL)
		return 0;
	memcpy(in, data + 1, len);
	switch (data[0] % 3) {
	case 0:
		fuzz_clamd(in, len);
		break;
	case 1:
		fuzz_http(in, len);
		break;
	default:
		fuzz_rspamd_json(in, len);
		break;
	}
	free(in);
	return 0;
}
