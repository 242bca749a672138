/*
 * libFuzzer target for smtp_address_parse().  First byte: flags; the rest
 * is the path, given in an exactly-sized buffer (no NUL) so ASan sees any
 * read past its end.  Oracle: an accepted path fits its limits, formats,
 * and parses back to the same address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_address a, b;
	const char *why = NULL;
	char text[SMTP_PATH_MAX * 4 + 3];
	char *copy;
	size_t n;
	int flags;

	if (size < 1)
		return 0;
	flags = data[0] & (SMTP_ADDRESS_ALLOW_NULL | SMTP_ADDRESS_ALLOW_UTF8);
	copy = malloc(size - 1 ? size - 1 : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	if (smtp_address_parse(copy, size - 1, flags, &a, &why) < 0) {
		if (why == NULL)
			__builtin_trap();
		free(copy);
		return 0;
	}
	free(copy);
	if (strlen(a.local) > SMTP_LOCALPART_MAX * 4 || strlen(a.domain) > SMTP_DOMAIN_MAX)
		__builtin_trap();
	if (a.is_null != (a.local[0] == '\0' && a.domain[0] == '\0'))
		__builtin_trap();
	text[0] = '<';
	if (smtp_address_format(&a, text + 1, sizeof text - 2) < 0)
		__builtin_trap();
	n = strlen(text);
	text[n++] = '>';
	if (smtp_address_parse(text, n, flags, &b, &why) < 0)
		__builtin_trap();
	if (strcmp(a.local, b.local) != 0 || strcmp(a.domain, b.domain) != 0 ||
	    a.is_null != b.is_null || a.is_utf8 != b.is_utf8)
		__builtin_trap();
	return 0;
}
