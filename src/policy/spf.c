/*
 * spf: RFC 7208 check_host() (see spf.h for what is covered).  Records
 * come from DNS and are untrusted: every term is parsed with bounds, the
 * look-up limits stop loops (an include of itself spends the 10 look-ups
 * and ends as a permerror), expansion is capped at 253 octets.
 * tests/fuzz/fuzz_spf.c runs it on hostile records.
 */
#include "policy/spf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SPF_LOOKUPS_MAX 10 /* RFC 7208 4.6.4 */
#define SPF_VOID_MAX 2
#define SPF_MX_MAX 10
#define SPF_NAME_MAX 253
#define SPF_RECORD_MAX 4096

struct spf_eval {
	spf_lookup_fn *lookup;
	void *ctx;
	const struct spf_ip *ip;
	char sender_local[65];
	char sender_domain[SPF_NAME_MAX + 1];
	int lookups;
	int voids;
	char *why;
	size_t whylen;
};

static void spf_why(struct spf_eval *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void spf_why(struct spf_eval *e, const char *fmt, ...)
{
	va_list ap;

	if (e->whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(e->why, e->whylen, fmt, ap);
	va_end(ap);
}

const char *spf_result_name(enum spf_result r)
{
	static const char *const names[] = {"none",     "neutral",   "pass",     "fail",
	                                    "softfail", "temperror", "permerror"};

	return (size_t)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int spf_ip_parse(const char *text, struct spf_ip *ip)
{
	memset(ip, 0, sizeof *ip);
	if (inet_pton(AF_INET, text, ip->b) == 1) {
		ip->family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, text, ip->b) == 1) {
		ip->family = 6;
		return 0;
	}
	return -1;
}

static void spf_rrset_clear(struct spf_rrset *rr)
{
	for (size_t i = 0; i < SPF_RR_MAX; i++) {
		free(rr->txt[i]);
		rr->txt[i] = NULL;
	}
}

/* Look up, counting void answers (RFC 7208 4.6.4).  rr is heap memory
 * the caller frees with spf_rrset_free(). */
static struct spf_rrset *spf_lookup(struct spf_eval *e, const char *name, enum spf_rrtype t)
{
	struct spf_rrset *rr = calloc(1, sizeof *rr);

	if (rr == NULL)
		return NULL;
	rr->status = SPF_DNS_TEMP;
	if (e->lookup(e->ctx, name, t, rr) < 0) {
		spf_rrset_clear(rr);
		free(rr);
		return NULL;
	}
	if (rr->n > SPF_RR_MAX)
		rr->n = SPF_RR_MAX;
	if (rr->status == SPF_DNS_NONE || (rr->status == SPF_DNS_OK && rr->n == 0)) {
		rr->status = SPF_DNS_NONE;
		rr->n = 0;
		e->voids++;
	}
	return rr;
}

static void spf_rrset_free(struct spf_rrset *rr)
{
	if (rr == NULL)
		return;
	spf_rrset_clear(rr);
	free(rr);
}

static int spf_ip_in(const struct spf_ip *ip, const struct spf_ip *net, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;

	if (ip->family != net->family)
		return 0;
	if (memcmp(ip->b, net->b, (size_t)bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	return ((ip->b[bytes] ^ net->b[bytes]) & (0xff << (8 - bits)) & 0xff) == 0;
}

/* A domain name after expansion: LDH-ish labels (underscores allowed, as
 * in _spf), 1..253 octets, no empty label.  0 valid. */
static int spf_check_name(const char *n)
{
	size_t len = strlen(n), label = 0;

	if (len == 0 || len > SPF_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)n[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
	}
	return 0;
}

static int spf_put(char *out, size_t *k, const char *s, size_t n)
{
	if (*k + n > SPF_NAME_MAX)
		return -1;
	memcpy(out + *k, s, n);
	*k += n;
	return 0;
}

/* Expand the macros of a domain-spec (RFC 7208 7) into out; transformers
 * and delimiters are refused.  0, -1 permerror. */
static int spf_expand(struct spf_eval *e, const char *domain, const char *spec, size_t len,
                      char out[SPF_NAME_MAX + 1])
{
	size_t k = 0;
	char ipbuf[SPF_NAME_MAX + 80];

	for (size_t i = 0; i < len; i++) {
		const char *v;

		if (spec[i] != '%') {
			if (spf_put(out, &k, spec + i, 1) < 0)
				return -1;
			continue;
		}
		if (++i == len)
			return -1;
		if (spec[i] == '%' || spec[i] == '_' || spec[i] == '-') {
			const char *lit = spec[i] == '%' ? "%" : spec[i] == '_' ? " " : "%20";
			if (spf_put(out, &k, lit, strlen(lit)) < 0)
				return -1;
			continue;
		}
		if (spec[i] != '{' || i + 2 >= len || spec[i + 2] != '}')
			return -1; /* transformers or delimiters: not taken */
		switch (tolower((unsigned char)spec[i + 1])) {
		case 'd':
			v = domain;
			break;
		case 'o':
			v = e->sender_domain;
			break;
		case 'l':
			v = e->sender_local;
			break;
		case 's':
			snprintf(ipbuf, sizeof ipbuf, "%s@%s", e->sender_local, e->sender_domain);
			v = ipbuf;
			break;
		case 'h':
			v = e->sender_domain;
			break;
		case 'v':
			v = e->ip->family == 4 ? "in-addr" : "ip6";
			break;
		case 'i':
			if (e->ip->family == 4) {
				inet_ntop(AF_INET, e->ip->b, ipbuf, sizeof ipbuf);
			} else {
				size_t p = 0;
				for (int b = 0; b < 16; b++)
					p += (size_t)snprintf(ipbuf + p, sizeof ipbuf - p,
					                      "%s%x.%x", b ? "." : "",
					                      e->ip->b[b] >> 4, e->ip->b[b] & 15);
			}
			v = ipbuf;
			break;
		default:
			return -1;
		}
		if (spf_put(out, &k, v, strlen(v)) < 0)
			return -1;
		i += 2;
	}
	out[k] = '\0';
	return 0;
}

static enum spf_result spf_host(struct spf_eval *e, const char *domain, int depth);

/* Parse "[:domain][/c4][//c6]" after a or mx; target gets the domain. */
static int spf_domain_cidr(struct spf_eval *e, const char *domain, const char *arg, size_t len,
                           char target[SPF_NAME_MAX + 1], int *c4, int *c6)
{
	const char *slash = memchr(arg, '/', len);
	size_t dlen = slash != NULL ? (size_t)(slash - arg) : len;

	*c4 = 32;
	*c6 = 128;
	if (slash != NULL) {
		const char *p = slash + 1, *end = arg + len;
		char *stop;
		long v;

		if (p < end && *p != '/') {
			v = strtol(p, &stop, 10);
			if (stop == p || v < 0 || v > 32)
				return -1;
			*c4 = (int)v;
			p = stop;
		}
		if (p < end) {
			if (end - p < 3 || p[0] != '/' || p[1] != '/')
				return -1;
			p += 2;
			v = strtol(p, &stop, 10);
			if (stop == p || stop != end || v < 0 || v > 128)
				return -1;
			*c6 = (int)v;
		}
	}
	if (dlen == 0) {
		snprintf(target, SPF_NAME_MAX + 1, "%s", domain);
		return 0;
	}
	if (arg[0] != ':' || dlen < 2)
		return -1;
	if (spf_expand(e, domain, arg + 1, dlen - 1, target) < 0 || spf_check_name(target) < 0)
		return -1;
	return 0;
}

/* Does any address of name match the client (a mechanism)?  1, 0, or
 * -1 temperror. */
static int spf_match_addrs(struct spf_eval *e, const char *name, int c4, int c6)
{
	enum spf_rrtype t = e->ip->family == 4 ? SPF_RR_A : SPF_RR_AAAA;
	struct spf_rrset *rr = spf_lookup(e, name, t);
	int hit = 0;

	if (rr == NULL || rr->status == SPF_DNS_TEMP) {
		spf_rrset_free(rr);
		return -1;
	}
	for (size_t i = 0; i < rr->n && !hit; i++)
		hit = spf_ip_in(e->ip, &rr->ip[i], e->ip->family == 4 ? c4 : c6);
	spf_rrset_free(rr);
	return hit;
}

/* One mechanism: 1 match, 0 none, or an error result (TEMPERROR,
 * PERMERROR) as a negative number -(result). */
static int spf_mechanism(struct spf_eval *e, const char *domain, const char *term, size_t len,
                         int depth)
{
	char target[SPF_NAME_MAX + 1];
	size_t nlen = 0;
	int c4, c6;

	while (nlen < len && isalnum((unsigned char)term[nlen]))
		nlen++;
#define IS(word) (nlen == strlen(word) && strncasecmp(term, word, nlen) == 0)
	if (IS("all"))
		return nlen == len ? 1 : -SPF_PERMERROR;
	if (IS("ip4") || IS("ip6")) {
		struct spf_ip net;
		char addr[64];
		const char *a = term + nlen + 1, *slash;
		size_t alen;
		int prefix, v6 = term[2] == '6';

		if (nlen == len || term[nlen] != ':')
			return -SPF_PERMERROR;
		alen = len - nlen - 1;
		slash = memchr(a, '/', alen);
		prefix = v6 ? 128 : 32;
		if (slash != NULL) {
			char *stop;
			long p = strtol(slash + 1, &stop, 10);
			if (stop == slash + 1 || stop != a + alen || p < 0 || p > prefix)
				return -SPF_PERMERROR;
			prefix = (int)p;
			alen = (size_t)(slash - a);
		}
		if (alen == 0 || alen >= sizeof addr)
			return -SPF_PERMERROR;
		memcpy(addr, a, alen);
		addr[alen] = '\0';
		if (spf_ip_parse(addr, &net) < 0 || net.family != (v6 ? 6 : 4))
			return -SPF_PERMERROR;
		return spf_ip_in(e->ip, &net, prefix);
	}
	if (IS("a") || IS("mx")) {
		int mx = nlen == 2, r = 0;

		if (spf_domain_cidr(e, domain, term + nlen, len - nlen, target, &c4, &c6) < 0)
			return -SPF_PERMERROR;
		if (++e->lookups > SPF_LOOKUPS_MAX)
			return -SPF_PERMERROR;
		if (!mx) {
			r = spf_match_addrs(e, target, c4, c6);
		} else {
			struct spf_rrset *rr = spf_lookup(e, target, SPF_RR_MX);
			if (rr == NULL || rr->status == SPF_DNS_TEMP) {
				spf_rrset_free(rr);
				return -SPF_TEMPERROR;
			}
			if (rr->n > SPF_MX_MAX) {
				spf_rrset_free(rr);
				return -SPF_PERMERROR;
			}
			for (size_t i = 0; i < rr->n && r == 0; i++)
				r = spf_match_addrs(e, rr->name[i], c4, c6);
			spf_rrset_free(rr);
		}
		if (e->voids > SPF_VOID_MAX)
			return -SPF_PERMERROR;
		return r < 0 ? -SPF_TEMPERROR : r;
	}
	if (IS("include") || IS("exists") || IS("ptr")) {
		int include = IS("include"), ptr = IS("ptr");
		enum spf_result sub;

		if (ptr) {
			/* deprecated (RFC 7208 5.5): counted, never matches here */
			return ++e->lookups > SPF_LOOKUPS_MAX ? -SPF_PERMERROR : 0;
		}
		if (nlen == len || term[nlen] != ':' ||
		    spf_expand(e, domain, term + nlen + 1, len - nlen - 1, target) < 0 ||
		    spf_check_name(target) < 0)
			return -SPF_PERMERROR;
		if (++e->lookups > SPF_LOOKUPS_MAX)
			return -SPF_PERMERROR;
		if (!include) {
			struct spf_rrset *rr = spf_lookup(e, target, SPF_RR_A);
			int r =
			    rr == NULL || rr->status == SPF_DNS_TEMP ? -SPF_TEMPERROR : rr->n > 0;
			spf_rrset_free(rr);
			return e->voids > SPF_VOID_MAX ? -SPF_PERMERROR : r;
		}
		sub = spf_host(e, target, depth + 1);
		if (sub == SPF_PASS)
			return 1;
		if (sub == SPF_TEMPERROR)
			return -SPF_TEMPERROR;
		if (sub == SPF_PERMERROR || sub == SPF_NONE)
			return -SPF_PERMERROR;
		return 0;
	}
#undef IS
	return -SPF_PERMERROR;
}

/* The one "v=spf1" record of domain, malloc'd; NULL with *r set. */
static char *spf_record(struct spf_eval *e, const char *domain, enum spf_result *r)
{
	struct spf_rrset *rr = spf_lookup(e, domain, SPF_RR_TXT);
	char *rec = NULL;
	size_t found = 0;

	if (rr == NULL || rr->status == SPF_DNS_TEMP) {
		*r = SPF_TEMPERROR;
		spf_why(e, "DNS failure looking up TXT %s", domain);
		spf_rrset_free(rr);
		return NULL;
	}
	for (size_t i = 0; i < rr->n; i++) {
		const char *t = rr->txt[i];
		if (t != NULL && strncasecmp(t, "v=spf1", 6) == 0 &&
		    (t[6] == ' ' || t[6] == '\0')) {
			found++;
			if (rec == NULL)
				rec = rr->txt[i], rr->txt[i] = NULL;
		}
	}
	spf_rrset_free(rr);
	if (found == 0) {
		*r = SPF_NONE;
		spf_why(e, "no SPF record at %s", domain);
	} else if (found > 1) {
		*r = SPF_PERMERROR;
		spf_why(e, "%zu SPF records at %s (one allowed)", found, domain);
	} else if (strlen(rec) > SPF_RECORD_MAX) {
		*r = SPF_PERMERROR;
		spf_why(e, "SPF record at %s too long", domain);
	} else {
		return rec;
	}
	free(rec);
	return NULL;
}

static enum spf_result spf_host(struct spf_eval *e, const char *domain, int depth)
{
	char redirect[SPF_NAME_MAX + 1] = "";
	enum spf_result r = SPF_NEUTRAL;
	char *rec, *p;

	if (depth > SPF_LOOKUPS_MAX) {
		spf_why(e, "too many nested includes");
		return SPF_PERMERROR;
	}
	if ((rec = spf_record(e, domain, &r)) == NULL)
		return r;
	p = rec + 6;
	for (;;) {
		size_t len;
		char q = '+';
		const char *term, *eq;
		int m;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		term = p;
		len = strcspn(p, " ");
		p += len;
		eq = memchr(term, '=', len);
		if (eq != NULL && memchr(term, ':', (size_t)(eq - term)) == NULL &&
		    memchr(term, '/', (size_t)(eq - term)) == NULL) {
			size_t nlen = (size_t)(eq - term);
			if (nlen == 8 && strncasecmp(term, "redirect", 8) == 0) {
				if (redirect[0] != '\0' ||
				    spf_expand(e, domain, eq + 1, len - nlen - 1, redirect) < 0 ||
				    spf_check_name(redirect) < 0) {
					spf_why(e, "bad redirect= in %s", domain);
					free(rec);
					return SPF_PERMERROR;
				}
			}
			continue; /* exp= and unknown modifiers are ignored */
		}
		if (strchr("+-~?", term[0]) != NULL) {
			q = term[0];
			term++;
			len--;
		}
		if (e->whylen > 0)
			e->why[0] = '\0'; /* a nested include words its own failure */
		m = spf_mechanism(e, domain, term, len, depth);
		if (m < 0) {
			r = (enum spf_result) - m;
			if (r == SPF_PERMERROR && e->lookups > SPF_LOOKUPS_MAX)
				spf_why(e, "more than %d DNS-querying terms (RFC 7208 4.6.4)",
				        SPF_LOOKUPS_MAX);
			else if (r == SPF_PERMERROR && e->voids > SPF_VOID_MAX)
				spf_why(e, "more than %d void look-ups (RFC 7208 4.6.4)",
				        SPF_VOID_MAX);
			else if (e->whylen > 0 && e->why[0] == '\0')
				spf_why(e, "%s: '%.*s' in %s",
				        r == SPF_TEMPERROR ? "DNS failure" : "bad term", (int)len,
				        term, domain);
			free(rec);
			return r;
		}
		if (m == 1) {
			r = q == '+'   ? SPF_PASS
			    : q == '-' ? SPF_FAIL
			    : q == '~' ? SPF_SOFTFAIL
			               : SPF_NEUTRAL;
			if (e->whylen > 0 && e->why[0] != '\0') {
				/* an include that matched: keep what matched inside */
				char inner[256];
				snprintf(inner, sizeof inner, "%s", e->why);
				spf_why(e, "%c%.*s in %s, through %s", q, (int)len, term, domain,
				        inner);
			} else {
				spf_why(e, "%c%.*s in %s", q, (int)len, term, domain);
			}
			free(rec);
			return r;
		}
	}
	free(rec);
	if (redirect[0] != '\0') {
		if (++e->lookups > SPF_LOOKUPS_MAX) {
			spf_why(e, "more than %d DNS-querying terms (RFC 7208 4.6.4)",
			        SPF_LOOKUPS_MAX);
			return SPF_PERMERROR;
		}
		r = spf_host(e, redirect, depth + 1);
		return r == SPF_NONE ? SPF_PERMERROR : r;
	}
	spf_why(e, "no term matched in %s (neutral)", domain);
	return SPF_NEUTRAL;
}

enum spf_result spf_check_host(spf_lookup_fn *lookup, void *ctx, const struct spf_ip *ip,
                               const char *domain, const char *sender, char *why, size_t whylen)
{
	struct spf_eval e = {.lookup = lookup, .ctx = ctx, .ip = ip, .why = why, .whylen = whylen};
	const char *at = sender != NULL ? strrchr(sender, '@') : NULL;

	if (whylen > 0)
		why[0] = '\0';
	if (spf_check_name(domain) < 0) {
		spf_why(&e, "not a domain name");
		return SPF_NONE;
	}
	if (at != NULL && (size_t)(at - sender) < sizeof e.sender_local && at > sender) {
		memcpy(e.sender_local, sender, (size_t)(at - sender));
		snprintf(e.sender_domain, sizeof e.sender_domain, "%s", at + 1);
	} else {
		snprintf(e.sender_local, sizeof e.sender_local, "postmaster");
		snprintf(e.sender_domain, sizeof e.sender_domain, "%s", domain);
	}
	return spf_host(&e, domain, 0);
}
