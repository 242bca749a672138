/*
 * egress text helpers: error texts and checked appends (egress_int.h).
 */
#include "egress/egress_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int egress_seterr(char **err_r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (err_r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*err_r = s;
	return -1;
}

void egress_puts(struct egress_text *t, const char *s)
{
	if (!t->failed && buf_append_str(t->b, s) < 0)
		t->failed = 1;
}

void egress_printf(struct egress_text *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failed)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(t->b, fmt, ap) < 0)
		t->failed = 1;
	va_end(ap);
}
