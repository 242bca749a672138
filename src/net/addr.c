/*
 * addr: numeric socket addresses in text and CIDR ranges.
 *
 * Only numeric addresses are accepted: a listener or a trusted network
 * named by a hostname would depend on DNS at start-up (and on whoever
 * controls that DNS).  An IPv4 client accepted on an IPv6 socket arrives
 * as an IPv4-mapped address (::ffff:a.b.c.d); everything here treats it as
 * the IPv4 address it is, so logs, the Received header and trusted-network
 * checks see one form.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net/net.h"
#include "util/util.h"

/* "[" IPv6 "]" ":" port: 1 + 45 + 1 + 1 + 5, rounded up. */
#define NET_HOSTPORT_MAX 64
/* IPv6 text plus "/128". */
#define NET_CIDR_MAX (INET6_ADDRSTRLEN + 4)

static const uint8_t net_v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Decimal, digits only (no sign, no space), at most max.  0 ok, -1 bad. */
static int net_parse_uint(const char *s, unsigned max, unsigned *v_r)
{
	unsigned v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -1;
	}
	*v_r = v;
	return 0;
}

static int net_parse_addrport(const char *s, int allow_port0, struct sockaddr_storage *ss_r,
                              socklen_t *len_r, const char **why_r)
{
	char host[NET_HOSTPORT_MAX];
	const char *colon, *port_s;
	size_t hostlen;
	unsigned port;

	if (s == NULL || *s == '\0') {
		*why_r = "empty address";
		return -1;
	}
	if (strlen(s) >= NET_HOSTPORT_MAX) {
		*why_r = "address too long";
		return -1;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL) {
			*why_r = "missing ']' after IPv6 address";
			return -1;
		}
		if (close[1] != ':') {
			*why_r = "missing ':port' after ']'";
			return -1;
		}
		hostlen = (size_t)(close - (s + 1));
		memcpy(host, s + 1, hostlen);
		host[hostlen] = '\0';
		port_s = close + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			*why_r = "missing ':port'";
			return -1;
		}
		if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
			*why_r = "IPv6 address must be in brackets, e.g. [::1]:587";
			return -1;
		}
		hostlen = (size_t)(colon - s);
		memcpy(host, s, hostlen);
		host[hostlen] = '\0';
		port_s = colon + 1;
	}

	if (net_parse_uint(port_s, 65535, &port) < 0) {
		*why_r = "port must be a number from 1 to 65535";
		return -1;
	}
	if (port == 0 && !allow_port0) {
		*why_r = "port must be a number from 1 to 65535";
		return -1;
	}

	memset(ss_r, 0, sizeof *ss_r);
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss_r;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why_r = "not a numeric IPv6 address inside [ ]";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len_r = sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss_r;

		if (strcmp(host, "*") == 0) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why_r = hostlen == 0
			             ? "missing address before ':port' (use '*' for all)"
			             : "not a numeric IPv4 address (hostnames are not accepted)";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len_r = sizeof *sin;
	}
	return 0;
}

int net_parse_hostport(const char *s, struct sockaddr_storage *ss_r, socklen_t *len_r,
                       const char **why_r)
{
	return net_parse_addrport(s, 0, ss_r, len_r, why_r);
}

int net_parse_listen_addr(const char *s, struct sockaddr_storage *ss_r, socklen_t *len_r,
                          const char **why_r)
{
	return net_parse_addrport(s, 1, ss_r, len_r, why_r);
}

void net_addr_str(const struct sockaddr *sa, char out[NET_ADDR_STRLEN])
{
	const char *ok = NULL;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		ok = inet_ntop(AF_INET, &sin->sin_addr, out, NET_ADDR_STRLEN);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			ok = inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], out, NET_ADDR_STRLEN);
		else
			ok = inet_ntop(AF_INET6, &sin6->sin6_addr, out, NET_ADDR_STRLEN);
	}
	if (ok == NULL)
		util_strlcpy(out, "unknown", NET_ADDR_STRLEN);
}

/* ---- CIDR --------------------------------------------------------------- */

static unsigned net_family_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* 1 if the first prefix bits of a and b are equal. */
static int net_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static int net_host_bits_clear(const uint8_t *addr, unsigned bytes, unsigned prefix)
{
	unsigned i;

	for (i = 0; i < bytes; i++) {
		unsigned lo = i * 8;
		uint8_t mask;

		if (lo + 8 <= prefix)
			continue;
		mask = lo >= prefix ? 0xff : (uint8_t)(0xff >> (prefix - lo));
		if (addr[i] & mask)
			return 0;
	}
	return 1;
}

int net_cidr_parse(const char *s, struct net_cidr *c_r, const char **why_r)
{
	char text[NET_CIDR_MAX];
	char *slash;
	unsigned prefix, bits;
	struct net_cidr c;

	if (s == NULL || *s == '\0') {
		*why_r = "empty network";
		return -1;
	}
	if (util_strlcpy(text, s, sizeof text) >= sizeof text) {
		*why_r = "network too long";
		return -1;
	}
	memset(&c, 0, sizeof c);
	slash = strchr(text, '/');
	if (slash != NULL)
		*slash = '\0';

	if (inet_pton(AF_INET, text, c.addr) == 1) {
		c.family = AF_INET;
	} else if (inet_pton(AF_INET6, text, c.addr) == 1) {
		c.family = AF_INET6;
	} else {
		*why_r = "not a numeric IPv4 or IPv6 address";
		return -1;
	}
	bits = net_family_bits(c.family);

	if (slash == NULL) {
		prefix = bits;
	} else if (net_parse_uint(slash + 1, bits, &prefix) < 0) {
		*why_r = c.family == AF_INET ? "prefix length must be a number from 0 to 32"
		                             : "prefix length must be a number from 0 to 128";
		return -1;
	}
	if (!net_host_bits_clear(c.addr, bits / 8, prefix)) {
		*why_r = "address has bits set beyond the prefix length";
		return -1;
	}
	c.prefix = prefix;

	/* ::ffff:10.0.0.0/104 is the IPv4 network 10.0.0.0/8; store it so, as
	 * mapped client addresses are matched as IPv4. */
	if (c.family == AF_INET6 && prefix >= 96 &&
	    memcmp(c.addr, net_v4mapped_prefix, sizeof net_v4mapped_prefix) == 0) {
		memmove(c.addr, c.addr + 12, 4);
		memset(c.addr + 4, 0, 12);
		c.family = AF_INET;
		c.prefix = prefix - 96;
	}
	*c_r = c;
	return 0;
}

void net_cidr_format(const struct net_cidr *c, char *out, size_t size)
{
	char text[INET6_ADDRSTRLEN];

	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    inet_ntop(c->family, c->addr, text, sizeof text) == NULL) {
		util_strlcpy(out, "invalid", size);
		return;
	}
	snprintf(out, size, "%s/%u", text, c->prefix);
}

int net_cidr_match(const struct net_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *addr;

	if (sa->sa_family == AF_INET) {
		addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		if (c->family != AF_INET)
			return 0;
	} else if (sa->sa_family == AF_INET6) {
		addr = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (memcmp(addr, net_v4mapped_prefix, sizeof net_v4mapped_prefix) == 0) {
			/* An IPv4 client on an IPv6 socket: only IPv4 networks
			 * hold it (so "::/0" does not quietly trust all IPv4). */
			addr += 12;
			if (c->family != AF_INET)
				return 0;
		} else if (c->family != AF_INET6) {
			return 0;
		}
	} else {
		return 0;
	}
	if (c->prefix > net_family_bits(c->family))
		return 0;
	return net_prefix_equal(addr, c->addr, c->prefix);
}
