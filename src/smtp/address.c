/*
 * RFC 5321 4.1.2 paths: "<" [ A-d-l ":" ] Mailbox ">", with the RFC 6531
 * UTF-8 extensions when the caller allows them.
 *
 * Contract: smtp_address_parse() sees the whole path, brackets included,
 * and nothing else (parameters are split off by the caller).  It never
 * reads past in[len-1], needs no NUL terminator and fills *a only on
 * success.  Limits (RFC 5321 4.5.3.1): path 256 octets, local part 64
 * octets (64 characters when UTF-8), domain 255, label 63.
 */
#include "smtp/server_private.h"

#include <arpa/inet.h>
#include <string.h>

#define SMTP_LABEL_MAX 63

const char smtp_address_why_no_domain[] = "address has no domain";
const char smtp_address_why_utf8[] = "non-ASCII address requires SMTPUTF8";

struct addr_parser {
	const unsigned char *p, *end;
	int utf8; /* non-ASCII allowed (already validated) */
	const char *why;
};

static int addr_fail(struct addr_parser *ap, const char *why)
{
	if (ap->why == NULL)
		ap->why = why;
	return -1;
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629), 0 if none. */
static size_t addr_utf8_len(const unsigned char *p, const unsigned char *end)
{
	size_t n, i;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static int addr_is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int addr_is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext. */
static int addr_is_atext(int c)
{
	return addr_is_alpha(c) || addr_is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static int addr_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Skip one non-ASCII character (already validated); returns its length. */
static size_t addr_skip_utf8(struct addr_parser *ap)
{
	size_t n = addr_utf8_len(ap->p, ap->end);

	ap->p += n;
	return n;
}

/*
 * Local-part = Dot-string / Quoted-string.  Copies what was sent into out
 * (size SMTP_LOCALPART_MAX * 4 + 1).
 */
static int addr_local(struct addr_parser *ap, char *out)
{
	const unsigned char *start = ap->p;
	size_t chars = 0, octets;

	if (ap->p < ap->end && *ap->p == '"') {
		ap->p++;
		chars++;
		for (;;) {
			if (ap->p >= ap->end)
				return addr_fail(ap, "unterminated quoted string");
			if (*ap->p == '"')
				break;
			if (*ap->p == '\\') {
				ap->p++;
				if (ap->p >= ap->end || *ap->p < 32 || *ap->p > 126)
					return addr_fail(ap, "bad quoted pair");
				ap->p++;
				chars += 2;
			} else if (*ap->p >= 0x80) {
				addr_skip_utf8(ap);
				chars++;
			} else if (*ap->p >= 32 && *ap->p <= 126) {
				ap->p++;
				chars++;
			} else {
				return addr_fail(ap, "bad character in quoted string");
			}
		}
		ap->p++;
		chars++;
	} else {
		int atom_len = 0;

		while (ap->p < ap->end) {
			if (*ap->p == '.') {
				if (atom_len == 0)
					return addr_fail(ap, "bad dot in local part");
				atom_len = 0;
				ap->p++;
			} else if (*ap->p >= 0x80) {
				addr_skip_utf8(ap);
				atom_len++;
			} else if (addr_is_atext(*ap->p)) {
				ap->p++;
				atom_len++;
			} else {
				break;
			}
			chars++;
		}
		if (chars == 0)
			return addr_fail(ap, "empty local part");
		if (atom_len == 0)
			return addr_fail(ap, "bad dot in local part");
	}
	octets = (size_t)(ap->p - start);
	/* 64 octets; a UTF-8 local part may have 64 characters (the struct
	 * keeps room for four octets each). */
	if (chars > SMTP_LOCALPART_MAX || octets > SMTP_LOCALPART_MAX * 4 ||
	    (!ap->utf8 && octets > SMTP_LOCALPART_MAX))
		return addr_fail(ap, "local part too long");
	memcpy(out, start, octets);
	out[octets] = '\0';
	return 0;
}

/* Snum "." Snum "." Snum "." Snum, each 0-255 in 1-3 digits. */
static int addr_ipv4(const unsigned char *p, const unsigned char *end)
{
	int part;

	for (part = 0; part < 4; part++) {
		unsigned v = 0;
		int digits = 0;

		if (part > 0) {
			if (p >= end || *p != '.')
				return -1;
			p++;
		}
		while (p < end && addr_is_digit(*p) && digits < 3) {
			v = v * 10 + (unsigned)(*p - '0');
			p++;
			digits++;
		}
		if (digits == 0 || v > 255)
			return -1;
	}
	return p == end ? 0 : -1;
}

/* address-literal: [IPv4] or [IPv6:addr]; general literals are refused
 * since no tag other than IPv6 is standardised. */
static int addr_literal(struct addr_parser *ap, char *out, size_t *n_r)
{
	const unsigned char *start = ap->p, *inner, *close;
	size_t len;

	close = memchr(ap->p, ']', (size_t)(ap->end - ap->p));
	if (close == NULL)
		return addr_fail(ap, "unterminated address literal");
	inner = ap->p + 1;
	len = (size_t)(close + 1 - start);
	if (len > SMTP_DOMAIN_MAX)
		return addr_fail(ap, "domain too long");
	if ((size_t)(close - inner) > 5 && util_strncasecmp((const char *)inner, "IPv6:", 5) == 0) {
		char tmp[64];
		unsigned char bin[16];
		size_t alen = (size_t)(close - inner - 5);

		if (alen >= sizeof tmp || memchr(inner + 5, '\0', alen))
			return addr_fail(ap, "bad IPv6 address literal");
		memcpy(tmp, inner + 5, alen);
		tmp[alen] = '\0';
		if (inet_pton(AF_INET6, tmp, bin) != 1)
			return addr_fail(ap, "bad IPv6 address literal");
		memcpy(out, "[IPv6:", 6);
		for (size_t i = 0; i < alen; i++)
			out[6 + i] = (char)addr_lower((unsigned char)tmp[i]);
		out[6 + alen] = ']';
	} else {
		if (addr_ipv4(inner, close) < 0)
			return addr_fail(ap, "bad address literal");
		memcpy(out, start, len);
	}
	out[len] = '\0';
	*n_r = len;
	ap->p = close + 1;
	return 0;
}

/*
 * Domain = sub-domain *("." sub-domain), sub-domain = Let-dig [Ldh-str]
 * (or a U-label under SMTPUTF8).  Stops at the first byte that cannot
 * continue it.  Lower-cases ASCII into out (SMTP_DOMAIN_MAX + 1).
 */
static int addr_domain(struct addr_parser *ap, char *out)
{
	size_t n = 0, label = 0;
	int last = 0;

	if (ap->p < ap->end && *ap->p == '[')
		return addr_literal(ap, out, &n);
	for (;;) {
		int c = ap->p < ap->end ? *ap->p : -1;

		if (c == '.') {
			if (label == 0 || last == '-')
				return addr_fail(ap, "bad domain label");
			label = 0;
		} else if (c >= 0x80) {
			size_t k = addr_utf8_len(ap->p, ap->end);

			if (n + k > SMTP_DOMAIN_MAX)
				return addr_fail(ap, "domain too long");
			if (label + k > SMTP_LABEL_MAX)
				return addr_fail(ap, "domain label too long");
			memcpy(out + n, ap->p, k);
			n += k;
			label += k;
			ap->p += k;
			last = 0x80;
			continue;
		} else if (c >= 0 && (addr_is_alpha(c) || addr_is_digit(c) || c == '-')) {
			if (label == 0 && c == '-')
				return addr_fail(ap, "bad domain label");
			if (++label > SMTP_LABEL_MAX)
				return addr_fail(ap, "domain label too long");
		} else {
			break;
		}
		if (n >= SMTP_DOMAIN_MAX)
			return addr_fail(ap, "domain too long");
		out[n++] = (char)addr_lower(c);
		last = c;
		ap->p++;
	}
	if (label == 0 || last == '-')
		return addr_fail(ap, n == 0 ? "empty domain" : "bad domain label");
	out[n] = '\0';
	return 0;
}

static int addr_has_utf8(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

int smtp_address_parse(const char *in, size_t len, int flags, struct smtp_address *a,
                       const char **why_r)
{
	struct addr_parser ap = {
	    .p = (const unsigned char *)in,
	    .end = (const unsigned char *)in + len,
	};
	struct smtp_address tmp;
	int non_ascii = 0;

	memset(&tmp, 0, sizeof tmp);
	if (len < 2 || in[0] != '<' || in[len - 1] != '>') {
		addr_fail(&ap, "path not in angle brackets");
		goto fail;
	}
	if (len > SMTP_PATH_MAX) {
		addr_fail(&ap, "path too long");
		goto fail;
	}
	/* Check the encoding once so the grammar below can treat any byte
	 * >= 0x80 as one already-valid character. */
	for (const unsigned char *q = ap.p; q < ap.end;) {
		size_t k = addr_utf8_len(q, ap.end);

		if (*q >= 0x80) {
			non_ascii = 1;
			if (!(flags & SMTP_ADDRESS_ALLOW_UTF8)) {
				addr_fail(&ap, smtp_address_why_utf8);
				goto fail;
			}
			if (k == 0) {
				addr_fail(&ap, "malformed UTF-8");
				goto fail;
			}
		}
		q += k ? k : 1;
	}
	ap.utf8 = non_ascii;
	ap.end--; /* the closing '>' */
	ap.p++;

	if (ap.p == ap.end) {
		if (!(flags & SMTP_ADDRESS_ALLOW_NULL)) {
			addr_fail(&ap, "null path not allowed");
			goto fail;
		}
		tmp.is_null = 1;
		*a = tmp;
		return 0;
	}

	/* A-d-l ":": parsed for syntax, then forgotten (RFC 5321 4.1.2). */
	if (*ap.p == '@') {
		for (;;) {
			ap.p++; /* '@' */
			if (ap.p < ap.end && *ap.p == '[') {
				addr_fail(&ap, "bad source route");
				goto fail;
			}
			if (addr_domain(&ap, tmp.domain) < 0)
				goto fail;
			if (ap.p < ap.end && *ap.p == ',') {
				ap.p++;
				if (ap.p >= ap.end || *ap.p != '@') {
					addr_fail(&ap, "bad source route");
					goto fail;
				}
				continue;
			}
			if (ap.p < ap.end && *ap.p == ':') {
				ap.p++;
				break;
			}
			addr_fail(&ap, "bad source route");
			goto fail;
		}
	}

	if (addr_local(&ap, tmp.local) < 0)
		goto fail;
	if (ap.p >= ap.end) {
		addr_fail(&ap, smtp_address_why_no_domain);
		goto fail;
	}
	if (*ap.p != '@') {
		addr_fail(&ap, "bad character in local part");
		goto fail;
	}
	ap.p++;
	if (addr_domain(&ap, tmp.domain) < 0)
		goto fail;
	if (ap.p != ap.end) {
		addr_fail(&ap, "bad character in domain");
		goto fail;
	}
	/* what is kept: a source route with UTF-8 in it is gone (found by
	 * fuzz_smtp_address: the address formatted back was ASCII) */
	tmp.is_utf8 = non_ascii && (addr_has_utf8(tmp.local) || addr_has_utf8(tmp.domain));
	*a = tmp;
	return 0;

fail:
	if (why_r)
		*why_r = ap.why;
	return -1;
}

int smtp_address_format(const struct smtp_address *a, char *out, size_t size)
{
	size_t ll, dl;

	if (size == 0)
		return -1;
	if (a->is_null) {
		out[0] = '\0';
		return 0;
	}
	ll = strlen(a->local);
	dl = strlen(a->domain);
	if (ll + 1 + dl + 1 > size)
		return -1;
	memcpy(out, a->local, ll);
	out[ll] = '@';
	memcpy(out + ll + 1, a->domain, dl + 1);
	return 0;
}
