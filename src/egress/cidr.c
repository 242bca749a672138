/*
 * egress addresses and networks: parsing (configuration, CLI arguments,
 * the kernel's JSON), canonical text, containment.  Pure functions.
 */
#include "egress/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Decimal prefix length: no sign, no leading zero, at most max. */
static int egress_prefix(const char *s, unsigned max, unsigned *prefix_r)
{
	unsigned v = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (size_t i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*prefix_r = v;
	return 0;
}

/* For error texts: printable ASCII, bounded. */
static const char *egress_quote(const char *s, char out[EGRESS_CIDR_MAX + 4])
{
	size_t i;

	for (i = 0; i < EGRESS_CIDR_MAX && s[i] != '\0'; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

int egress_cidr_parse(const char *s, struct egress_cidr *c_r, char *err, size_t errsize)
{
	char q[EGRESS_CIDR_MAX + 4], addr[INET6_ADDRSTRLEN];
	const char *slash;
	size_t len, alen, nbytes;
	unsigned bits;

	memset(c_r, 0, sizeof *c_r);
	len = strnlen(s, EGRESS_CIDR_MAX);
	egress_quote(s, q);
	if (len == 0 || len == EGRESS_CIDR_MAX)
		goto bad;
	slash = memchr(s, '/', len);
	alen = slash ? (size_t)(slash - s) : len;
	if (alen == 0 || alen >= sizeof addr)
		goto bad;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c_r->addr) == 1) {
		c_r->family = 4;
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, c_r->addr) == 1) {
		c_r->family = 6;
		bits = 128;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)c_r->addr)) {
			snprintf(err, errsize, "'%s' is IPv4-mapped IPv6: write it as IPv4", q);
			return -1;
		}
	} else {
		goto bad;
	}
	if (slash == NULL) {
		c_r->prefix = bits;
	} else if (egress_prefix(slash + 1, bits, &c_r->prefix) < 0) {
		snprintf(err, errsize, "'%s' has a bad prefix length (1-%u expected)", q, bits);
		return -1;
	}
	if (c_r->prefix == 0) {
		snprintf(err, errsize, "'%s' has prefix length 0: it would match every address", q);
		return -1;
	}
	nbytes = bits / 8;
	for (size_t i = 0; i < nbytes; i++) {
		unsigned keep = c_r->prefix >= (i + 1) * 8 ? 8
		                : c_r->prefix > i * 8      ? c_r->prefix - (unsigned)i * 8
		                                           : 0;
		uint8_t mask = keep == 0 ? 0 : (uint8_t)(0xff << (8 - keep));
		if ((c_r->addr[i] & mask) != c_r->addr[i]) {
			snprintf(err, errsize, "'%s' has host bits set", q);
			return -1;
		}
	}
	return 0;
bad:
	snprintf(err, errsize, "'%s' is not an IPv4 or IPv6 address or network", q);
	return -1;
}

int egress_cidr_format(const struct egress_cidr *c, char out[EGRESS_CIDR_MAX])
{
	char text[INET6_ADDRSTRLEN];

	if (inet_ntop(c->family == 4 ? AF_INET : AF_INET6, c->addr, text, sizeof text) == NULL)
		return -1;
	return (size_t)snprintf(out, EGRESS_CIDR_MAX, "%s/%u", text, c->prefix) < EGRESS_CIDR_MAX
	           ? 0
	           : -1;
}

int egress_cidr_contains(const struct egress_cidr *c, const struct egress_cidr *a)
{
	unsigned full, rest;

	if (c->family != a->family || a->prefix < c->prefix)
		return 0;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(c->addr, a->addr, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((c->addr[full] ^ a->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

int egress_cidr_overlap(const struct egress_cidr *a, const struct egress_cidr *b)
{
	return egress_cidr_contains(a, b) || egress_cidr_contains(b, a);
}
