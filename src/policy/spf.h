/*
 * spf: RFC 7208 check_host() over a caller's DNS look-ups, so `sluice
 * domain check` can tell whether a domain's SPF record authorises
 * sluice's sending addresses, with the same resolver as the rest of the
 * CLI (libspf2 resolves through libresolv and /etc/resolv.conf, port 53
 * only, so it cannot be pointed at the configured resolver).
 *
 * Covered: ip4, ip6, a, mx, include, exists, all, redirect=, the limits
 * of RFC 7208 4.6.4 (10 look-up terms, 2 void look-ups, 10 MX names) and
 * macros without transformers (%{d} %{i} %{o} %{s} %{l} %{h} %{v} %% %_
 * %-).  Not covered: ptr (deprecated, RFC 7208 5.5) never matches; exp=
 * is ignored; a macro with transformers is a permerror here.
 */
#ifndef SLUICE_SPF_H
#define SLUICE_SPF_H

#include <stddef.h>

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

#define SPF_RR_MAX 32 /* records of one look-up that are looked at */

enum spf_rrtype { SPF_RR_TXT, SPF_RR_A, SPF_RR_AAAA, SPF_RR_MX };
enum spf_dns_status { SPF_DNS_OK, SPF_DNS_NONE /* NXDOMAIN or NODATA */, SPF_DNS_TEMP };

struct spf_ip {
	int family; /* 4 or 6 */
	unsigned char b[16];
};

/* One look-up's answer: the callback fills what its type asks for, at
 * most SPF_RR_MAX of each.  txt[i] are malloc'd; spf frees them. */
struct spf_rrset {
	enum spf_dns_status status;
	size_t n;
	char *txt[SPF_RR_MAX];
	struct spf_ip ip[SPF_RR_MAX];
	char name[SPF_RR_MAX][256]; /* MX exchanges */
};

/* 0, or -1 when out of memory (then a temperror). */
typedef int spf_lookup_fn(void *ctx, const char *name, enum spf_rrtype type, struct spf_rrset *out);

/* check_host(ip, domain, sender): the result, and in why a line saying
 * what decided it ("ip4:192.0.2.0/24 in example.com", "10 look-ups
 * exceeded"...).  sender may be NULL (postmaster@domain). */
enum spf_result spf_check_host(spf_lookup_fn *lookup, void *ctx, const struct spf_ip *ip,
                               const char *domain, const char *sender, char *why, size_t whylen);
const char *spf_result_name(enum spf_result r);
/* "192.0.2.1", "2001:db8::1" into out[46]; 0, -1 when not an address */
int spf_ip_parse(const char *text, struct spf_ip *ip);

#endif
