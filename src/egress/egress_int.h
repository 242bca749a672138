/*
 * egress_int: what the egress module's files share.
 */
#ifndef SLUICE_EGRESS_INT_H
#define SLUICE_EGRESS_INT_H

#include "egress/egress.h"

/* *err_r = a malloc'd text (when err_r is not NULL); returns -1. */
int egress_seterr(char **err_r, const char *fmt, ...) UTIL_PRINTF(2, 3);

/* A text being written: the first failed append marks it failed, so a
 * long run of appends is checked once at the end. */
struct egress_text {
	struct buf *b;
	int failed;
};
void egress_puts(struct egress_text *t, const char *s);
void egress_printf(struct egress_text *t, const char *fmt, ...) UTIL_PRINTF(2, 3);

#endif
