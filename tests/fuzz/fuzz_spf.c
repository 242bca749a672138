/*
 * libFuzzer target for spf_check_host() (policy/spf.c).  The input is a
 * small DNS world: lines "LABEL|TXT" serve TXT records for LABEL.f (the
 * checked domain is a.f); A/AAAA answers come from the first letter of
 * the name ('h' an address, 't' a failure, else none) and MX answers are
 * h1.f and h2.f.  Oracles: a result in range, an explanation that is a
 * NUL-terminated string within its buffer, and a bounded number of DNS
 * look-ups (RFC 7208 4.6.4 limits).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_world {
	const char *text;
	size_t len;
	int calls;
};

static int fuzz_lookup(void *ctx, const char *name, enum spf_rrtype type, struct spf_rrset *out)
{
	struct fuzz_world *w = ctx;
	size_t nlen = strcspn(name, ".");

	w->calls++;
	out->status = SPF_DNS_NONE;
	if (type == SPF_RR_A || type == SPF_RR_AAAA) {
		if (name[0] == 't') {
			out->status = SPF_DNS_TEMP;
		} else if (name[0] == 'h') {
			out->status = SPF_DNS_OK;
			spf_ip_parse(type == SPF_RR_A ? "192.0.2.1" : "2001:db8::1", &out->ip[0]);
			out->n = 1;
		}
		return 0;
	}
	if (type == SPF_RR_MX) {
		out->status = SPF_DNS_OK;
		snprintf(out->name[0], sizeof out->name[0], "h1.f");
		snprintf(out->name[1], sizeof out->name[1], "h2.f");
		out->n = 2;
		return 0;
	}
	for (size_t pos = 0; pos < w->len && out->n < SPF_RR_MAX;) {
		const char *line = w->text + pos, *nl = memchr(line, '\n', w->len - pos), *bar;
		size_t llen = nl != NULL ? (size_t)(nl - line) : w->len - pos;

		pos += llen + 1;
		bar = memchr(line, '|', llen);
		if (bar == NULL || (size_t)(bar - line) != nlen || memcmp(line, name, nlen) != 0)
			continue;
		out->txt[out->n] = strndup(bar + 1, llen - (size_t)(bar - line) - 1);
		if (out->txt[out->n] == NULL)
			return -1;
		out->status = SPF_DNS_OK;
		out->n++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_world w = {.text = (const char *)data, .len = size};
	struct spf_ip ip;
	char why[128];
	enum spf_result r;

	if (size > 8192)
		return 0;
	spf_ip_parse(size > 0 && (data[0] & 1) ? "2001:db8::1" : "192.0.2.1", &ip);
	memset(why, 'x', sizeof why);
	r = spf_check_host(fuzz_lookup, &w, &ip, "a.f", NULL, why, sizeof why);
	if ((int)r < SPF_NONE || r > SPF_PERMERROR || memchr(why, '\0', sizeof why) == NULL)
		__builtin_trap();
	/* 10 terms, each at most an MX and 10 addresses, plus TXT look-ups */
	if (w.calls > 200)
		__builtin_trap();
	return 0;
}
