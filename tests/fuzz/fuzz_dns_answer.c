/*
 * libFuzzer target for net_dns_parse_answer(), the parser that turns the
 * answer packets libunbound hands us into records.  First byte: the type
 * asked (A, AAAA, MX, TXT, TLSA, or CNAME, which the parser must refuse);
 * the rest is the packet, in an exactly-sized buffer so ASan sees any read
 * past its end.  Oracle: a refused packet leaves nothing to clear; an
 * accepted one has no more records than its ANCOUNT and its size allow,
 * MX exchanges are NUL-terminated names of the allowed characters that
 * net_dns_name_normalize() leaves unchanged, TXT text is NUL-terminated
 * at its length, TXT and TLSA data fit in the packet (every byte is read
 * so ASan checks it), and a second parse gives the same records.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net.h"

#define FUZZ_DNS_HDR_LEN 12
#define FUZZ_DNS_RR_MIN 11 /* root owner, type, class, TTL, RDLENGTH */
#define FUZZ_DNS_CNAME 5   /* a type the parser does not take */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int fuzz_dns_types[] = {
    NET_DNS_A, NET_DNS_AAAA, NET_DNS_MX, NET_DNS_TXT, NET_DNS_TLSA, FUZZ_DNS_CNAME,
};

static volatile unsigned fuzz_dns_sink;

/* A name as the parser promises it: "." or lower-case labels of letters,
 * digits, '-' and '_', 1 to 63 characters each, 253 in all, NUL within the
 * array. */
static void fuzz_dns_check_name(const char name[NET_DNS_NAME_MAX])
{
	char norm[NET_DNS_NAME_MAX];
	const char *nul = memchr(name, '\0', NET_DNS_NAME_MAX);

	if (nul == NULL || nul == name)
		__builtin_trap();
	if (strcmp(name, ".") == 0)
		return;
	for (const char *c = name; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_' || *c == '.'))
			__builtin_trap();
	}
	if (net_dns_name_normalize(name, norm) < 0 || strcmp(norm, name) != 0)
		__builtin_trap();
}

static void fuzz_dns_check_answer(const struct net_dns_answer *a, int rrtype, size_t len,
                                  size_t ancount)
{
	size_t txt_total = 0, tlsa_total = 0;

	if (a->rrs == NULL || a->mem == NULL)
		__builtin_trap();
	if (a->count + a->skipped > ancount ||
	    a->count + a->skipped > (len - FUZZ_DNS_HDR_LEN) / FUZZ_DNS_RR_MIN)
		__builtin_trap();
	/* only an MX exchange can be unusable */
	if (a->skipped > 0 && rrtype != NET_DNS_MX)
		__builtin_trap();
	for (size_t i = 0; i < a->count; i++) {
		const struct net_dns_rr *rr = &a->rrs[i];
		unsigned sum = 0;

		switch (rrtype) {
		case NET_DNS_MX:
			fuzz_dns_check_name(rr->mx.exchange);
			break;
		case NET_DNS_TXT:
			if (rr->txt.text == NULL || rr->txt.text[rr->txt.len] != '\0')
				__builtin_trap();
			/* the strings come from RDATA of a record of >= 11 octets */
			if (rr->txt.len > len - FUZZ_DNS_HDR_LEN - FUZZ_DNS_RR_MIN)
				__builtin_trap();
			for (size_t j = 0; j < rr->txt.len; j++)
				sum += (unsigned char)rr->txt.text[j];
			txt_total += rr->txt.len + 1;
			break;
		case NET_DNS_TLSA:
			if (rr->tlsa.len > 0 && rr->tlsa.data == NULL)
				__builtin_trap();
			if (rr->tlsa.len + 3 > len - FUZZ_DNS_HDR_LEN - FUZZ_DNS_RR_MIN)
				__builtin_trap();
			for (size_t j = 0; j < rr->tlsa.len; j++)
				sum += rr->tlsa.data[j];
			tlsa_total += rr->tlsa.len + 3;
			break;
		default:
			break;
		}
		fuzz_dns_sink += sum;
	}
	/* RDATA of distinct records do not overlap: their data adds up to no
	 * more than the packet (TXT: plus a NUL each, minus a length octet) */
	if (txt_total > len || tlsa_total > len)
		__builtin_trap();
}

static int fuzz_dns_same(const struct net_dns_answer *x, const struct net_dns_answer *y, int rrtype)
{
	if (x->count != y->count || x->skipped != y->skipped)
		return 0;
	for (size_t i = 0; i < x->count; i++) {
		const struct net_dns_rr *p = &x->rrs[i], *q = &y->rrs[i];

		switch (rrtype) {
		case NET_DNS_A:
			if (memcmp(&p->a, &q->a, sizeof p->a) != 0)
				return 0;
			break;
		case NET_DNS_AAAA:
			if (memcmp(&p->aaaa, &q->aaaa, sizeof p->aaaa) != 0)
				return 0;
			break;
		case NET_DNS_MX:
			if (p->mx.preference != q->mx.preference ||
			    strcmp(p->mx.exchange, q->mx.exchange) != 0)
				return 0;
			break;
		case NET_DNS_TXT:
			if (p->txt.len != q->txt.len ||
			    memcmp(p->txt.text, q->txt.text, p->txt.len) != 0)
				return 0;
			break;
		case NET_DNS_TLSA:
			if (p->tlsa.usage != q->tlsa.usage ||
			    p->tlsa.selector != q->tlsa.selector ||
			    p->tlsa.mtype != q->tlsa.mtype || p->tlsa.len != q->tlsa.len ||
			    (p->tlsa.len > 0 &&
			     memcmp(p->tlsa.data, q->tlsa.data, p->tlsa.len) != 0))
				return 0;
			break;
		default:
			break;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct net_dns_answer a, b;
	uint8_t *pkt;
	size_t len, ancount;
	int rrtype, rc;

	if (size < 1)
		return 0;
	rrtype = fuzz_dns_types[data[0] % (sizeof fuzz_dns_types / sizeof fuzz_dns_types[0])];
	len = size - 1;
	pkt = malloc(len ? len : 1);
	if (pkt == NULL)
		return 0;
	memcpy(pkt, data + 1, len);

	memset(&a, 0xa5, sizeof a); /* the parser must set what it gives out */
	rc = net_dns_parse_answer(pkt, len, rrtype, &a);
	if (rc != 0) {
		if (rc != -1 || a.mem != NULL || a.rrs != NULL || a.count != 0)
			__builtin_trap();
		free(pkt);
		return 0;
	}
	if (rrtype == FUZZ_DNS_CNAME || len < FUZZ_DNS_HDR_LEN || (pkt[2] & 0x80) == 0)
		__builtin_trap();
	ancount = ((size_t)pkt[6] << 8) | pkt[7];
	fuzz_dns_check_answer(&a, rrtype, len, ancount);

	memset(&b, 0, sizeof b);
	if (net_dns_parse_answer(pkt, len, rrtype, &b) != 0 || !fuzz_dns_same(&a, &b, rrtype))
		__builtin_trap();
	net_dns_answer_clear(&b);

	net_dns_answer_clear(&a);
	if (a.mem != NULL || a.rrs != NULL || a.count != 0 || a.skipped != 0)
		__builtin_trap();
	net_dns_answer_clear(&a); /* twice is harmless */
	free(pkt);
	return 0;
}
