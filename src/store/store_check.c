/*
 * Validation and canonical forms for the store (see store_check.h).
 * Pure functions on strings: no database, no network, no allocation.
 */
#include "store/store_check.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* How much of a bad input an error message repeats. */
#define STORE_QUOTE_MAX 80

/* Copy s for an error message: printable ASCII only, bounded. */
static void store_quote(const char *s, char out[STORE_QUOTE_MAX + 4])
{
	size_t i;

	for (i = 0; i < STORE_QUOTE_MAX && s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

static int store_check_fail(char *err, size_t errsize, const char *fmt, ...) UTIL_PRINTF(3, 4);

static int store_check_fail(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsize > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsize, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int store_name_char(unsigned char c, int allow_at)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || (allow_at && c == '@');
}

static int store_check_name_chars(const char *what, const char *name, int allow_at, char *err,
                                  size_t errsize)
{
	char q[STORE_QUOTE_MAX + 4];
	size_t len;

	if (name == NULL || name[0] == '\0')
		return store_check_fail(err, errsize, "%s name is empty", what);
	len = strnlen(name, STORE_NAME_MAX + 1);
	store_quote(name, q);
	if (len > STORE_NAME_MAX)
		return store_check_fail(err, errsize, "%s name '%s' is longer than %d characters",
		                        what, q, STORE_NAME_MAX);
	for (size_t i = 0; i < len; i++)
		if (!store_name_char((unsigned char)name[i], allow_at))
			return store_check_fail(err, errsize,
			                        "%s name '%s' has a character other than "
			                        "A-Z a-z 0-9 . _ -%s",
			                        what, q, allow_at ? " @" : "");
	return 0;
}

int store_check_name(const char *what, const char *name, char *err, size_t errsize)
{
	return store_check_name_chars(what, name, 0, err, errsize);
}

int store_check_username(const char *name, char *err, size_t errsize)
{
	return store_check_name_chars("user", name, 1, err, errsize);
}

int store_check_domain(const char *domain, char out[STORE_DOMAIN_MAX + 1], char *err,
                       size_t errsize)
{
	char q[STORE_QUOTE_MAX + 4];
	size_t len, label = 0, labels = 0;
	int last_all_digits = 1;

	if (domain == NULL || domain[0] == '\0')
		return store_check_fail(err, errsize, "domain is empty");
	store_quote(domain, q);
	len = strnlen(domain, STORE_DOMAIN_MAX + 1);
	if (len > 0 && domain[len - 1] == '.')
		len--; /* the root label of a fully qualified name */
	if (len > 253)
		return store_check_fail(err, errsize, "domain '%s' is longer than 253 characters",
		                        q);
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)domain[i] : '.';

		if (c == '.') {
			if (label == 0)
				return store_check_fail(err, errsize,
				                        "domain '%s' has an empty label", q);
			if (out[i - 1] == '-')
				return store_check_fail(err, errsize,
				                        "domain '%s' has a label ending in '-'", q);
			labels++;
			if (i < len) {
				out[i] = '.';
				label = 0;
				last_all_digits = 1;
			}
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return store_check_fail(err, errsize,
			                        "domain '%s' has a character other than letters, "
			                        "digits, '-' and '.' (use the xn-- form for IDNs)",
			                        q);
		if (c == '-' && label == 0)
			return store_check_fail(err, errsize,
			                        "domain '%s' has a label starting with '-'", q);
		if (++label > 63)
			return store_check_fail(
			    err, errsize, "domain '%s' has a label longer than 63 characters", q);
		if (c < '0' || c > '9')
			last_all_digits = 0;
		out[i] = (char)c;
	}
	if (labels < 2)
		return store_check_fail(err, errsize,
		                        "domain '%s' is not a fully qualified domain name", q);
	if (last_all_digits)
		return store_check_fail(err, errsize,
		                        "domain '%s' has an all-numeric top-level label "
		                        "(an address is not a domain)",
		                        q);
	out[len] = '\0';
	return 0;
}

/* Parse a prefix length: decimal, no sign, no leading zeros, <= max. */
static int store_parse_prefix(const char *s, unsigned max, unsigned *prefix_r)
{
	unsigned v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*prefix_r = v;
	return 0;
}

int store_check_cidr(const char *cidr, char out[STORE_CIDR_MAX + 1], char *err, size_t errsize)
{
	char q[STORE_QUOTE_MAX + 4], addr[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN];
	unsigned char bytes[16], masked[16];
	const char *slash;
	unsigned prefix, bits;
	size_t alen, nbytes;
	int af;

	if (cidr == NULL || cidr[0] == '\0')
		return store_check_fail(err, errsize, "network is empty");
	store_quote(cidr, q);
	slash = strchr(cidr, '/');
	alen = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	if (alen == 0 || alen >= sizeof addr)
		return store_check_fail(err, errsize, "network '%s' has no valid address", q);
	memcpy(addr, cidr, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bytes) == 1) {
		af = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, addr, bytes) == 1) {
		af = AF_INET6;
		bits = 128;
		if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)bytes))
			return store_check_fail(err, errsize,
			                        "network '%s' is IPv4-mapped IPv6: "
			                        "write it as an IPv4 network",
			                        q);
	} else {
		return store_check_fail(
		    err, errsize, "network '%s': '%s' is not an IPv4 or IPv6 address", q, addr);
	}
	if (slash == NULL)
		prefix = bits;
	else if (store_parse_prefix(slash + 1, bits, &prefix) < 0)
		return store_check_fail(
		    err, errsize, "network '%s' has a bad prefix length (0-%u expected)", q, bits);
	if (prefix == 0)
		return store_check_fail(err, errsize,
		                        "network '%s' has prefix length 0: it would trust every "
		                        "address",
		                        q);
	nbytes = bits / 8;
	for (size_t i = 0; i < nbytes; i++) {
		unsigned keep = prefix >= (i + 1) * 8 ? 8 : prefix > i * 8 ? prefix - i * 8 : 0;
		unsigned char mask = keep == 0 ? 0 : (unsigned char)(0xff << (8 - keep));
		masked[i] = bytes[i] & mask;
	}
	if (memcmp(masked, bytes, nbytes) != 0) {
		if (inet_ntop(af, masked, text, sizeof text) == NULL)
			return store_check_fail(err, errsize, "network '%s' is not valid", q);
		return store_check_fail(err, errsize,
		                        "network '%s' has host bits set (did you mean %s/%u?)", q,
		                        text, prefix);
	}
	if (inet_ntop(af, bytes, text, sizeof text) == NULL)
		return store_check_fail(err, errsize, "network '%s' is not valid", q);
	if ((size_t)snprintf(out, STORE_CIDR_MAX + 1, "%s/%u", text, prefix) > STORE_CIDR_MAX)
		return store_check_fail(err, errsize, "network '%s' is too long", q);
	return 0;
}

int store_check_hash(const char *username, const char *hash, char *err, size_t errsize)
{
	size_t len;

	if (hash == NULL || strncmp(hash, "$argon2", 7) != 0)
		return store_check_fail(
		    err, errsize, "hash for user '%s' is not an argon2 encoded string", username);
	len = strnlen(hash, STORE_HASH_MAX + 1);
	if (len > STORE_HASH_MAX)
		return store_check_fail(err, errsize,
		                        "hash for user '%s' is longer than %d characters", username,
		                        STORE_HASH_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)hash[i] <= 0x20 || (unsigned char)hash[i] >= 0x7f)
			return store_check_fail(err, errsize,
			                        "hash for user '%s' has a non-printable character",
			                        username);
	return 0;
}
