/*
 * libFuzzer target for dkim_tag_value(), which reads DKIM key records and
 * DMARC records from DNS for `sluice domain check`.  The first byte picks
 * the tag and the output size; the rest is the record, NUL-terminated.
 * Oracles: the result is 0 or 1, the output is NUL-terminated within its
 * size, holds no whitespace, and reading again gives the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message/message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = {"p", "v", "k", "rua", "pct", "t", "h", ""};
	char out[300], again[300], *rec;
	size_t outsize;
	const char *tag;
	int r;

	if (size == 0 || size > 65536)
		return 0;
	tag = tags[data[0] & 7];
	outsize = 1 + (size_t)(data[0] >> 3) * 9; /* 1 .. 280 */
	rec = malloc(size);
	if (rec == NULL)
		return 0;
	memcpy(rec, data + 1, size - 1);
	rec[size - 1] = '\0';
	memset(out, 'x', sizeof out);
	r = dkim_tag_value(rec, tag, out, outsize);
	if (r != 0 && r != 1)
		__builtin_trap();
	if (memchr(out, '\0', outsize) == NULL)
		__builtin_trap();
	if (r == 1) {
		if (strpbrk(out, " \t\r\n") != NULL)
			__builtin_trap();
		if (dkim_tag_value(rec, tag, again, outsize) != 1 || strcmp(out, again) != 0)
			__builtin_trap();
	}
	free(rec);
	return 0;
}
