/*
 * libFuzzer target for the egress module's parsers of untrusted input:
 * the first byte picks one, the rest is its input (exactly sized, so ASan
 * sees a read past its end).
 *   0: egress_cidr_parse (CLI arguments, configuration), with an oracle:
 *      an accepted network formats to text that parses to the same network,
 *      contains itself, and is rendered into a table without error;
 *   1: util_parse_duration (--expires);
 *   2: egress_status_parse (the kernel's JSON through libnftables): counts
 *      bounded, every blocked address a host address, sorted most first,
 *      every exception a network that parses; naming sources and counting
 *      per tenant on the result does not crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_cidr(const char *s)
{
	struct egress_cidr c, c2;
	char text[EGRESS_CIDR_MAX], err[256];

	if (egress_cidr_parse(s, &c, err, sizeof err) < 0)
		return;
	if (egress_cidr_format(&c, text) < 0 || egress_cidr_parse(text, &c2, err, sizeof err) < 0 ||
	    memcmp(&c, &c2, sizeof c) != 0 || !egress_cidr_contains(&c, &c))
		__builtin_trap();
	const char *list[] = {text};
	struct egress_model m = {.customers = list,
	                         .ncustomers = 1,
	                         .privates = list,
	                         .nprivates = 1,
	                         .blocked_timeout = 60,
	                         .now = 1};
	struct buf out = BUF_INIT;
	char *warn = NULL, *e = NULL;
	if (egress_render(&m, &out, &warn, &e) != 0 || strstr(out.data, text) == NULL)
		__builtin_trap();
	buf_free(&out);
	free(warn);
	free(e);
}

static void fuzz_status(const char *json, size_t len)
{
	static const struct egress_owner owners[] = {
	    {.tenant_id = 1, .tenant = "a", .cidr = "10.0.0.0/8"},
	    {.tenant_id = 2, .tenant = "b", .cidr = "2001:db8::/32"},
	};
	struct egress_tenant_count *counts = NULL;
	struct egress_status st;
	struct egress_cidr c;
	char *err = NULL, net[EGRESS_CIDR_MAX + 8], e2[256];
	size_t n = 0;

	if (egress_status_parse(json, len, 1000, &st, &err) < 0) {
		if (err == NULL)
			__builtin_trap();
		free(err);
		return;
	}
	if (st.nblocked + st.nexceptions > EGRESS_ELEMENTS_MAX)
		__builtin_trap();
	for (size_t i = 0; i < st.nblocked; i++) {
		if (egress_cidr_parse(st.blocked[i].addr, &c, e2, sizeof e2) < 0 ||
		    c.prefix != (c.family == 4 ? 32u : 128u) || c.family != st.blocked[i].family)
			__builtin_trap();
		if (i > 0 && st.blocked[i - 1].packets < st.blocked[i].packets)
			__builtin_trap();
	}
	for (size_t i = 0; i < st.nexceptions; i++) {
		memcpy(net, st.exceptions[i].cidr, EGRESS_CIDR_MAX);
		if (egress_cidr_parse(net, &c, e2, sizeof e2) < 0)
			__builtin_trap();
	}
	egress_sources_name(st.blocked, st.nblocked, owners, 2);
	if (egress_tenant_counts(st.blocked, st.nblocked, &counts, &n) < 0 || n > 2)
		__builtin_trap();
	free(counts);
	egress_status_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	uint64_t secs;

	if (size < 1 || size > 1 << 20)
		return 0;
	if ((s = malloc(size)) == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (memchr(data + 1, '\0', size - 1) == NULL)
			fuzz_cidr(s);
		break;
	case 1:
		if (memchr(data + 1, '\0', size - 1) == NULL &&
		    util_parse_duration(s, &secs) == 0 && secs > 0 && s[0] == '\0')
			__builtin_trap();
		break;
	default:
		free(s);
		/* exactly sized, not NUL-terminated */
		if ((s = malloc(size - 1 ? size - 1 : 1)) == NULL)
			return 0;
		memcpy(s, data + 1, size - 1);
		fuzz_status(s, size - 1);
		break;
	}
	free(s);
	return 0;
}
