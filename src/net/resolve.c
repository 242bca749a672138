/*
 * resolve: asynchronous DNS lookups over libunbound on the caller's
 * libevent loop, and the strict parser that turns answer packets into
 * records.
 *
 * libunbound resolves and validates on a thread of its own (ub_ctx_async
 * with threads, not its default fork); answers come back over a pipe
 * whose read end (ub_fd) is an event on our loop, and ub_process() runs
 * their callbacks here, on the loop thread.  Each query also has a timer:
 * libunbound keeps retrying a silent server for far longer than a
 * delivery wants to wait.  A query that times out or is cancelled is
 * cancelled in libunbound too, which then drops its late answer.
 *
 * Records come from the answer packet, parsed here with hard limits, not
 * from libunbound's presentation text: one small parser to test and fuzz
 * on hostile packets.  Compression pointers must point strictly before
 * the previous jump (what every encoder does), so they cannot loop.
 *
 * Known limit: the pending queries are a list, so cancelling is O(n) in
 * the queries in flight; a loop has a few hundred at most.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <unbound.h>

#include "net/net.h"
#include "util/util.h"

#define NET_DNS_HDR_LEN 12
#define NET_DNS_WIRE_NAME_MAX 255 /* RFC 1035 3.1 */
#define NET_DNS_LABEL_MAX 63      /* RFC 1035 2.3.4 */
#define NET_DNS_RR_MIN 11         /* root owner, type, class, TTL, RDLENGTH */
#define NET_DNS_CLASS_IN 1
#define NET_DNS_RCODE_SERVFAIL 2
#define NET_DNS_RCODE_NXDOMAIN 3
#define NET_DNS_RCODE_REFUSED 5
#define NET_RESOLVE_FWD_MAX 8      /* forwarders in net_resolver_config.server */
#define NET_RESOLVE_ADDR_TEXT 64   /* "IPv6@port" */
#define NET_RESOLVE_OPTION_MAX 512 /* one "name: value" option */

/* Where Debian keeps the root zone's trust anchor: dns-root-data, then
 * the copy unbound-anchor maintains. */
static const char *const net_resolver_root_anchors[] = {
    "/usr/share/dns/root.key",
    "/var/lib/unbound/root.key",
};

struct net_resolve_query {
	struct net_resolve_query *prev, *next;
	struct net_resolver *r;
	uint64_t id;
	int ub_id;
	int rrtype;
	char name[NET_DNS_NAME_MAX];
	net_resolve_cb *cb;
	void *ctx;
	struct event *timer;
};

struct net_resolver {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *ev;              /* ub_fd() readable: answers to process */
	const struct timeval *timeout; /* a libevent common timeout */
	uint64_t next_id;
	struct net_resolve_query *queries;
	size_t npending;
	int dispatching; /* inside ub_process(): freeing is deferred */
	int freeing;
};

/* ---- names ------------------------------------------------------------------ */

static int net_dns_host_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static char net_dns_lower(unsigned char c)
{
	return (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
}

int net_dns_name_normalize(const char *in, char out[NET_DNS_NAME_MAX])
{
	size_t len, i, label = 0;

	if (in == NULL)
		return -1;
	len = strlen(in);
	if (len == 1 && in[0] == '.') {
		memcpy(out, ".", 2);
		return 0;
	}
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > NET_DNS_NAME_MAX - 1)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (!net_dns_host_char(c) || ++label > NET_DNS_LABEL_MAX) {
			return -1;
		}
		out[i] = net_dns_lower(c);
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return 0;
}

/* Read the possibly compressed name at *off.  Its text (lower case, no
 * trailing dot, "." for the root) goes to out when every label is
 * letters, digits, '-' or '_'; otherwise *plain_r is 0 and out is "".
 * *off moves past the name where it is written, not where pointers lead.
 * -1: out of bounds, a label type other than 00 or 11, a pointer not
 * strictly before the previous jump (or the name's start), more than 255
 * octets. */
static int net_dns_read_name(const uint8_t *pkt, size_t len, size_t *off,
                             char out[NET_DNS_NAME_MAX], int *plain_r)
{
	size_t pos = *off, bound = *off, wire = 0, o = 0;
	int jumped = 0;

	*plain_r = 1;
	for (;;) {
		uint8_t c;

		if (pos >= len)
			return -1;
		c = pkt[pos];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (pos + 1 >= len)
				return -1;
			target = ((size_t)(c & 0x3f) << 8) | pkt[pos + 1];
			if (target >= bound)
				return -1;
			if (!jumped)
				*off = pos + 2;
			jumped = 1;
			bound = target;
			pos = target;
			continue;
		}
		if ((c & 0xc0) != 0)
			return -1;
		wire += (size_t)c + 1;
		if (wire > NET_DNS_WIRE_NAME_MAX)
			return -1;
		if (c == 0) {
			pos++;
			break;
		}
		if (c > len - pos - 1)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < c; i++) {
			unsigned char ch = pkt[pos + 1 + i];

			if (!net_dns_host_char(ch))
				*plain_r = 0;
			out[o++] = net_dns_lower(ch);
		}
		pos += 1 + (size_t)c;
	}
	if (!jumped)
		*off = pos;
	/* wire <= 255 keeps the text within 253 characters */
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	if (!*plain_r)
		out[0] = '\0';
	return 0;
}

static uint16_t net_dns_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

/* ---- answer packets ------------------------------------------------------------ */

static int net_dns_parse_rdata(const uint8_t *pkt, size_t len, size_t off, size_t rdlen, int rrtype,
                               struct net_dns_rr *rr, uint8_t **blob, int *usable_r)
{
	size_t end = off + rdlen;

	*usable_r = 1;
	switch (rrtype) {
	case NET_DNS_A:
		if (rdlen != 4)
			return -1;
		memcpy(&rr->a, pkt + off, 4);
		return 0;
	case NET_DNS_AAAA:
		if (rdlen != 16)
			return -1;
		memcpy(&rr->aaaa, pkt + off, 16);
		return 0;
	case NET_DNS_MX: {
		size_t noff = off + 2;

		if (rdlen < 3)
			return -1;
		rr->mx.preference = net_dns_u16(pkt + off);
		/* the name may use pointers into the packet, but must end
		 * exactly where the RDATA does */
		if (net_dns_read_name(pkt, len, &noff, rr->mx.exchange, usable_r) < 0 ||
		    noff != end)
			return -1;
		return 0;
	}
	case NET_DNS_TXT: {
		uint8_t *t = *blob;
		size_t n = 0;

		while (off < end) {
			size_t sl = pkt[off];

			if (sl > end - off - 1)
				return -1;
			memcpy(t + n, pkt + off + 1, sl);
			n += sl;
			off += 1 + sl;
		}
		t[n] = '\0';
		rr->txt.text = (const char *)t;
		rr->txt.len = n;
		*blob = t + n + 1;
		return 0;
	}
	case NET_DNS_TLSA: {
		uint8_t *d = *blob;

		if (rdlen < 3)
			return -1;
		rr->tlsa.usage = pkt[off];
		rr->tlsa.selector = pkt[off + 1];
		rr->tlsa.mtype = pkt[off + 2];
		rr->tlsa.len = rdlen - 3;
		memcpy(d, pkt + off + 3, rdlen - 3);
		rr->tlsa.data = d;
		*blob = d + (rdlen - 3);
		return 0;
	}
	default:
		return -1;
	}
}

int net_dns_parse_answer(const uint8_t *pkt, size_t len, int rrtype, struct net_dns_answer *a)
{
	size_t off = NET_DNS_HDR_LEN, maxrr, qd, an, i;
	struct net_dns_rr *rrs;
	uint8_t *blob;
	char name[NET_DNS_NAME_MAX];
	int plain;

	a->rrs = NULL;
	a->count = 0;
	a->skipped = 0;
	a->mem = NULL;
	if (net_dns_type_name(rrtype) == NULL || pkt == NULL || len < NET_DNS_HDR_LEN)
		return -1;
	if ((pkt[2] & 0x80) == 0) /* QR: not a response */
		return -1;
	qd = net_dns_u16(pkt + 4);
	an = net_dns_u16(pkt + 6);
	/* every record takes at least NET_DNS_RR_MIN octets: a count the
	 * packet cannot hold cannot make us allocate for it */
	if (an > (len - NET_DNS_HDR_LEN) / NET_DNS_RR_MIN)
		return -1;
	maxrr = an > 0 ? an : 1;
	/* one block: the records, then TXT strings and TLSA data, which
	 * together are shorter than the packet plus a NUL per record */
	if ((a->mem = malloc(maxrr * sizeof *rrs + len + maxrr)) == NULL)
		return -1;
	rrs = a->mem;
	blob = (uint8_t *)(rrs + maxrr);

	for (i = 0; i < qd; i++) {
		if (net_dns_read_name(pkt, len, &off, name, &plain) < 0 || len - off < 4)
			goto malformed;
		off += 4;
	}
	for (i = 0; i < an; i++) {
		size_t rdlen;
		int type, class, usable;

		if (net_dns_read_name(pkt, len, &off, name, &plain) < 0 || len - off < 10)
			goto malformed;
		type = net_dns_u16(pkt + off);
		class = net_dns_u16(pkt + off + 2);
		rdlen = net_dns_u16(pkt + off + 8);
		off += 10;
		if (rdlen > len - off)
			goto malformed;
		/* CNAMEs and RRSIGs of the chain are skipped: libunbound has
		 * followed the chain, and what is left of the asked type is the
		 * answer (canonname tells where it ended) */
		if (type == rrtype && class == NET_DNS_CLASS_IN) {
			memset(&rrs[a->count], 0, sizeof rrs[a->count]);
			if (net_dns_parse_rdata(pkt, len, off, rdlen, rrtype, &rrs[a->count], &blob,
			                        &usable) < 0)
				goto malformed;
			if (usable)
				a->count++;
			else
				a->skipped++;
		}
		off += rdlen;
	}
	a->rrs = rrs;
	return 0;
malformed:
	net_dns_answer_clear(a);
	return -1;
}

void net_dns_answer_clear(struct net_dns_answer *a)
{
	free(a->mem);
	a->mem = NULL;
	a->rrs = NULL;
	a->count = 0;
	a->skipped = 0;
}

const char *net_dns_type_name(int rrtype)
{
	switch (rrtype) {
	case NET_DNS_A:
		return "A";
	case NET_DNS_AAAA:
		return "AAAA";
	case NET_DNS_MX:
		return "MX";
	case NET_DNS_TXT:
		return "TXT";
	case NET_DNS_TLSA:
		return "TLSA";
	default:
		return NULL;
	}
}

const char *net_dns_status_name(enum net_dns_status s)
{
	switch (s) {
	case NET_DNS_OK:
		return "ok";
	case NET_DNS_NODATA:
		return "nodata";
	case NET_DNS_NXDOMAIN:
		return "nxdomain";
	case NET_DNS_TEMPFAIL:
		return "tempfail";
	case NET_DNS_BOGUS:
		return "bogus";
	}
	return "?";
}

/* ---- the resolver ------------------------------------------------------------- */

static void net_resolve_query_free(struct net_resolver *r, struct net_resolve_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	r->npending--;
	if (q->timer != NULL)
		event_free(q->timer);
	free(q);
}

/* Hand a to the query's callback; the query is gone before the callback
 * runs, so the callback may start, cancel or free anything. */
static void net_resolve_deliver(struct net_resolve_query *q, const struct net_dns_answer *a)
{
	net_resolve_cb *cb = q->cb;
	void *ctx = q->ctx;
	uint64_t id = q->id;

	log_debug("dns answer query=%llu name=%s type=%s status=%s secure=%d records=%zu%s%s%s",
	          (unsigned long long)id, a->qname, net_dns_type_name(a->rrtype),
	          net_dns_status_name(a->status), a->secure, a->count, a->why ? " why=\"" : "",
	          a->why ? a->why : "", a->why ? "\"" : "");
	net_resolve_query_free(q->r, q);
	cb(ctx, a);
}

static const char *net_resolve_rcode_text(int rcode)
{
	switch (rcode) {
	case NET_DNS_RCODE_SERVFAIL:
		return "SERVFAIL";
	case NET_DNS_RCODE_REFUSED:
		return "REFUSED";
	default:
		return "error response";
	}
}

static void net_resolve_fill(struct net_dns_answer *a, const struct ub_result *res)
{
	a->secure = res->secure;
	a->ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	if (res->canonname != NULL && net_dns_name_normalize(res->canonname, a->canonname) < 0)
		util_strlcpy(a->canonname, a->qname, sizeof a->canonname);
	if (res->bogus) {
		/* the data, if any, is not to be believed: none is given out */
		a->status = NET_DNS_BOGUS;
		a->secure = 0;
		a->why = res->why_bogus != NULL ? res->why_bogus : "DNSSEC validation failed";
	} else if (res->rcode == NET_DNS_RCODE_NXDOMAIN) {
		a->status = NET_DNS_NXDOMAIN;
	} else if (res->rcode != 0) {
		a->status = NET_DNS_TEMPFAIL;
		a->why = net_resolve_rcode_text(res->rcode);
	} else if (!res->havedata) {
		a->status = NET_DNS_NODATA;
	} else if (net_dns_parse_answer(res->answer_packet, (size_t)res->answer_len, a->rrtype, a) <
	           0) {
		a->status = NET_DNS_TEMPFAIL;
		a->why = "malformed answer";
	} else if (a->count == 0 && a->skipped == 0) {
		a->status = NET_DNS_TEMPFAIL;
		a->why = "answer without records of the type asked";
	} else {
		a->status = NET_DNS_OK;
	}
}

static void net_resolve_answer_init(struct net_dns_answer *a, const struct net_resolve_query *q)
{
	memset(a, 0, sizeof *a);
	a->rrtype = q->rrtype;
	util_strlcpy(a->qname, q->name, sizeof a->qname);
	util_strlcpy(a->canonname, q->name, sizeof a->canonname);
}

/* libunbound's callback, from inside ub_process() on the loop thread.
 * Never called for a query cancelled with ub_cancel(). */
static void net_resolve_done(void *mydata, int err, struct ub_result *res)
{
	struct net_resolve_query *q = mydata;
	struct net_dns_answer a;

	net_resolve_answer_init(&a, q);
	if (err != 0) {
		a.status = NET_DNS_TEMPFAIL;
		a.why = ub_strerror(err);
	} else {
		net_resolve_fill(&a, res);
	}
	net_resolve_deliver(q, &a);
	net_dns_answer_clear(&a);
	ub_resolve_free(res);
}

static void net_resolve_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct net_resolve_query *q = arg;
	struct net_dns_answer a;

	(void)fd;
	(void)what;
	(void)ub_cancel(q->r->ub, q->ub_id);
	net_resolve_answer_init(&a, q);
	a.status = NET_DNS_TEMPFAIL;
	a.why = "timeout";
	net_resolve_deliver(q, &a);
}

static void net_resolver_destroy(struct net_resolver *r)
{
	if (r->ev != NULL)
		event_free(r->ev);
	if (r->ub != NULL)
		ub_ctx_delete(r->ub); /* stops and joins libunbound's thread */
	free(r);
}

static void net_resolver_readable(evutil_socket_t fd, short what, void *arg)
{
	struct net_resolver *r = arg;
	int rc;

	(void)fd;
	(void)what;
	r->dispatching = 1;
	rc = ub_process(r->ub);
	r->dispatching = 0;
	if (r->freeing) {
		net_resolver_destroy(r);
		return;
	}
	if (rc != 0) {
		/* libunbound's thread is gone: pending queries end by their
		 * timers; new ones fail to start */
		log_err("dns resolver failed error=\"%s\"", ub_strerror(rc));
		event_del(r->ev);
	}
}

static int net_resolver_err(char **err_r, const char *what, const char *arg, int ub_err)
{
	struct buf b = BUF_INIT;

	if (ub_err != 0)
		buf_printf(&b, "%s%s%s: %s", what, arg ? " " : "", arg ? arg : "",
		           ub_strerror(ub_err));
	else
		buf_printf(&b, "%s%s%s", what, arg ? " " : "", arg ? arg : "");
	*err_r = buf_export(&b, NULL);
	return -1;
}

/* "name: value" -> ub_ctx_set_option("name:", "value") */
static int net_resolver_option(struct ub_ctx *ub, const char *opt, char **err_r)
{
	char name[NET_RESOLVE_OPTION_MAX];
	const char *colon = strchr(opt, ':'), *val;
	size_t n;
	int rc;

	if (colon == NULL || (n = (size_t)(colon - opt) + 1) >= sizeof name)
		return net_resolver_err(err_r, "resolver option is not \"name: value\":", opt, 0);
	memcpy(name, opt, n);
	name[n] = '\0';
	for (val = colon + 1; *val == ' ' || *val == '\t'; val++)
		;
	if ((rc = ub_ctx_set_option(ub, name, val)) != 0)
		return net_resolver_err(err_r, "bad resolver option", opt, rc);
	return 0;
}

/* "127.0.0.1@5353, ::1" -> one ub_ctx_set_fwd() each */
static int net_resolver_forwarders(struct ub_ctx *ub, const char *list, char **err_r)
{
	const char *p = list;
	size_t count = 0;

	for (;;) {
		char addr[NET_RESOLVE_ADDR_TEXT];
		size_t n;
		int rc;

		p += strspn(p, ", \t");
		if (*p == '\0')
			break;
		n = strcspn(p, ", \t");
		if (n >= sizeof addr || ++count > NET_RESOLVE_FWD_MAX)
			return net_resolver_err(err_r, "bad resolver address list", list, 0);
		memcpy(addr, p, n);
		addr[n] = '\0';
		if ((rc = ub_ctx_set_fwd(ub, addr)) != 0)
			return net_resolver_err(err_r, "bad resolver address", addr, rc);
		p += n;
	}
	if (count == 0)
		return net_resolver_err(err_r, "empty resolver address list", NULL, 0);
	return 0;
}

static int net_resolver_trust(struct ub_ctx *ub, const struct net_resolver_config *cfg,
                              char **err_r)
{
	const char *anchor = cfg->trust_anchor_file;
	int rc;

	if (!cfg->dnssec && anchor == NULL) {
		/* without the validator nothing is ever secure or bogus */
		if ((rc = ub_ctx_set_option(ub, "module-config:", "iterator")) != 0)
			return net_resolver_err(err_r, "cannot turn DNSSEC off", NULL, rc);
		return 0;
	}
	for (size_t i = 0; anchor == NULL && i < sizeof net_resolver_root_anchors /
	                                             sizeof net_resolver_root_anchors[0];
	     i++) {
		if (access(net_resolver_root_anchors[i], R_OK) == 0)
			anchor = net_resolver_root_anchors[i];
	}
	if (anchor == NULL)
		return net_resolver_err(err_r,
		                        "DNSSEC is on but no trust anchor file is set and the "
		                        "root anchor is missing (/usr/share/dns/root.key, "
		                        "package dns-root-data)",
		                        NULL, 0);
	if (access(anchor, R_OK) != 0)
		return net_resolver_err(err_r, "cannot read the trust anchor file", anchor, 0);
	if ((rc = ub_ctx_add_ta_file(ub, anchor)) != 0)
		return net_resolver_err(err_r, "bad trust anchor file", anchor, rc);
	return 0;
}

struct net_resolver *net_resolver_new(struct event_base *base,
                                      const struct net_resolver_config *cfg, char **err_r)
{
	struct net_resolver *r = calloc(1, sizeof *r);
	uint32_t ms = cfg->timeout_ms ? cfg->timeout_ms : NET_RESOLVE_TIMEOUT_MS;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	int rc;

	*err_r = NULL;
	if (r == NULL || (r->ub = ub_ctx_create()) == NULL) {
		net_resolver_err(err_r, "out of memory creating the resolver", NULL, 0);
		goto fail;
	}
	r->base = base;
	for (const char *const *o = cfg->options; o != NULL && *o != NULL; o++) {
		if (net_resolver_option(r->ub, *o, err_r) < 0)
			goto fail;
	}
	if (cfg->server != NULL) {
		if (net_resolver_forwarders(r->ub, cfg->server, err_r) < 0)
			goto fail;
	} else if ((rc = ub_ctx_resolvconf(r->ub, NULL)) != 0) {
		net_resolver_err(err_r, "cannot read /etc/resolv.conf", NULL, rc);
		goto fail;
	}
	if (net_resolver_trust(r->ub, cfg, err_r) < 0)
		goto fail;
	if ((rc = ub_ctx_async(r->ub, 1)) != 0) {
		net_resolver_err(err_r, "cannot make the resolver asynchronous", NULL, rc);
		goto fail;
	}
	/* libunbound applies its settings (and reads the anchors) when it
	 * first needs them; removing local data for a name that has none is
	 * the public way to make that happen now, so a bad setting fails
	 * the start rather than the first delivery */
	if ((rc = ub_ctx_data_remove(r->ub, "sluice-resolver-setup.invalid.")) != 0) {
		net_resolver_err(err_r, "resolver setup failed (check the trust anchor file)", NULL,
		                 rc);
		goto fail;
	}
	if ((r->timeout = event_base_init_common_timeout(base, &tv)) == NULL ||
	    (r->ev = event_new(base, ub_fd(r->ub), EV_READ | EV_PERSIST, net_resolver_readable,
	                       r)) == NULL ||
	    event_add(r->ev, NULL) < 0) {
		net_resolver_err(err_r, "cannot watch the resolver", NULL, 0);
		goto fail;
	}
	return r;
fail:
	if (r != NULL)
		net_resolver_destroy(r);
	return NULL;
}

void net_resolver_free(struct net_resolver **rp)
{
	struct net_resolver *r = *rp;
	struct net_resolve_query *q, *next;

	if (r == NULL)
		return;
	*rp = NULL;
	for (q = r->queries; q != NULL; q = next) {
		next = q->next;
		(void)ub_cancel(r->ub, q->ub_id);
		event_free(q->timer);
		free(q);
	}
	r->queries = NULL;
	r->npending = 0;
	if (r->dispatching) {
		/* called from a callback inside ub_process(): finish there */
		r->freeing = 1;
		return;
	}
	net_resolver_destroy(r);
}

int net_resolve(struct net_resolver *r, const char *name, int rrtype, net_resolve_cb *cb, void *ctx,
                uint64_t *query_id_r)
{
	struct net_resolve_query *q;
	int rc;

	if (query_id_r != NULL)
		*query_id_r = 0;
	if (net_dns_type_name(rrtype) == NULL || cb == NULL || r->freeing)
		return -1;
	if ((q = calloc(1, sizeof *q)) == NULL)
		return -1;
	if (net_dns_name_normalize(name, q->name) < 0 || strcmp(q->name, ".") == 0) {
		free(q);
		return -1;
	}
	q->r = r;
	q->rrtype = rrtype;
	q->cb = cb;
	q->ctx = ctx;
	if ((q->timer = evtimer_new(r->base, net_resolve_timeout, q)) == NULL) {
		free(q);
		return -1;
	}
	rc = ub_resolve_async(r->ub, q->name, rrtype, NET_DNS_CLASS_IN, q, net_resolve_done,
	                      &q->ub_id);
	if (rc != 0) {
		log_warn("dns query failed to start name=%s type=%s error=\"%s\"", q->name,
		         net_dns_type_name(rrtype), ub_strerror(rc));
		event_free(q->timer);
		free(q);
		return -1;
	}
	evtimer_add(q->timer, r->timeout);
	q->id = ++r->next_id;
	q->next = r->queries;
	if (q->next != NULL)
		q->next->prev = q;
	r->queries = q;
	r->npending++;
	if (query_id_r != NULL)
		*query_id_r = q->id;
	return 0;
}

int net_resolve_cancel(struct net_resolver *r, uint64_t query_id)
{
	for (struct net_resolve_query *q = r->queries; q != NULL; q = q->next) {
		if (q->id == query_id) {
			(void)ub_cancel(r->ub, q->ub_id);
			net_resolve_query_free(r, q);
			return 0;
		}
	}
	return -1;
}

struct event_base *net_resolver_base(const struct net_resolver *r)
{
	return r->base;
}

size_t net_resolver_pending(const struct net_resolver *r)
{
	return r->npending;
}
