/*
 * The targets of a destination, in the order to try them:
 *   a route: its host (an IP literal, or a name's A/AAAA records) and port;
 *   a recipient domain: its MX hosts per RFC 5321 5.1 (mx.c), each host's
 *   addresses, and for DNSSEC-secure hosts their TLSA records (RFC 7672).
 * The callback always runs later from the loop, never inside dl_resolve(),
 * so a caller may free itself from it.
 */
#include "deliver/deliver_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dl_pending_resolve {
	struct dl_pending_resolve *next, **prevp;
	struct deliver_engine *e;
	uint64_t id;
	dl_resolve_cb *cb;
	void *ctx;
	const struct config_route *route;
	char name[NET_DNS_NAME_MAX];
	uint16_t port;
	struct event *ev;       /* for answers known at once */
	int outstanding;        /* DNS queries still out */
	uint64_t q[2];          /* A and AAAA query ids */
	uint64_t mx_id;         /* MX resolution (mx.c) */
	struct deliver_mx_host host; /* a route's host: its A and AAAA answers */
	struct dl_resolution res;
	int64_t started_ms;
};

static void dl_pending_free(struct dl_pending_resolve *p)
{
	*p->prevp = p->next;
	if (p->next)
		p->next->prevp = p->prevp;
	if (p->ev)
		event_free(p->ev);
	free(p->res.targets);
	free(p);
}

static void dl_pending_finish(struct dl_pending_resolve *p)
{
	dl_resolve_cb *cb = p->cb;
	void *ctx = p->ctx;
	struct dl_resolution res = p->res;

	p->res.targets = NULL; /* the callback copies; freed below */
	*p->prevp = p->next;
	if (p->next)
		p->next->prevp = p->prevp;
	p->next = NULL;
	p->prevp = &p->next;
	cb(ctx, &res);
	free(res.targets);
	if (p->ev)
		event_free(p->ev);
	free(p);
}

static int dl_res_add(struct dl_resolution *r, const char *host, const struct sockaddr *sa,
		      socklen_t len, uint16_t port)
{
	struct dl_target *n = realloc(r->targets, (r->ntargets + 1) * sizeof *n), *t;

	if (n == NULL)
		return -1;
	r->targets = n;
	t = &n[r->ntargets++];
	memset(t, 0, sizeof *t);
	util_strlcpy(t->host, host, sizeof t->host);
	memcpy(&t->addr, sa, len);
	t->addrlen = len;
	t->port = port;
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)&t->addr)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&t->addr)->sin6_port = htons(port);
	return 0;
}

/* ---- a route's host --------------------------------------------------------- */

static void dl_mx_targets(struct dl_pending_resolve *p, const struct deliver_mx_result *r);

/* A route host's A or AAAA answer.  Once both are in, its addresses go
 * through deliver_mx_targets() like an MX host's: the same family order
 * (ip_preference), the same duplicates dropped. */
static void dl_host_answer(void *ctx, const struct net_dns_answer *a)
{
	struct dl_pending_resolve *p = ctx;
	int v6 = a->rrtype == NET_DNS_AAAA;
	struct deliver_mx_family *f = v6 ? &p->host.v6 : &p->host.v4;
	struct deliver_mx_options o;
	struct deliver_mx_result mr;
	const char *why = NULL;

	p->q[v6] = 0;
	p->outstanding--;
	f->asked = 1;
	f->status = a->status;
	for (size_t i = 0; a->status == NET_DNS_OK && i < a->count && f->n < DELIVER_MX_ADDRS_MAX;
	     i++) {
		if (v6)
			memcpy(f->addr[f->n++], &a->rrs[i].aaaa, 16);
		else
			memcpy(f->addr[f->n++], &a->rrs[i].a, 4);
	}
	if (a->status == NET_DNS_TEMPFAIL || a->status == NET_DNS_BOGUS)
		util_strlcpy(f->why, a->why ? a->why : net_dns_status_name(a->status), sizeof f->why);
	if (p->outstanding > 0)
		return;

	memset(&o, 0, sizeof o);
	o.ip_pref = p->e->dc->ip_pref;
	o.port = p->port;
	memset(&mr, 0, sizeof mr);
	util_strlcpy(mr.domain, p->name, sizeof mr.domain);
	if (deliver_mx_targets(&p->host, 1, &o, &mr) == DELIVER_MX_OK) {
		dl_mx_targets(p, &mr);
		deliver_mx_result_clear(&mr);
	} else if (strcmp(mr.enhanced, "4.3.0") == 0) {
		dl_reply_set(&p->res.why, 451, "4.3.0", "out of memory");
	} else {
		for (int k = 0; k < 2 && why == NULL; k++) {
			const struct deliver_mx_family *g = k ? &p->host.v6 : &p->host.v4;
			if (g->status == NET_DNS_TEMPFAIL || g->status == NET_DNS_BOGUS)
				why = g->why;
		}
		if (why != NULL)
			dl_reply_set(&p->res.why, 451, "4.4.3", "cannot resolve %s: %s", p->name, why);
		else
			dl_reply_set(&p->res.why, 451, "4.4.4", "%s has no usable address", p->name);
	}
	dl_pending_finish(p);
}

static void dl_now_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	dl_pending_finish(arg);
}

/* ---- MX ------------------------------------------------------------------------ */

/* The targets of an MX (or route host) result, TLSA records copied. */
static void dl_mx_targets(struct dl_pending_resolve *p, const struct deliver_mx_result *r)
{
	for (size_t i = 0; i < r->ntargets; i++) {
		const struct deliver_mx_target *mt = &r->targets[i];
		struct dl_target *t;
		if (dl_res_add(&p->res, mt->host, (const struct sockaddr *)&mt->addr, mt->addrlen,
			       p->port) < 0) {
			dl_reply_set(&p->res.why, 451, "4.3.0", "out of memory");
			break;
		}
		t = &p->res.targets[p->res.ntargets - 1];
		t->dane_required = mt->tlsa_secure && mt->ntlsa > 0;
		util_strlcpy(t->tlsa_base, mt->tlsa_base[0] ? mt->tlsa_base : mt->host,
			     sizeof t->tlsa_base);
		for (size_t k = 0; k < mt->ntlsa && t->tlsa_n < DL_TLSA_MAX; k++) {
			const struct net_tls_tlsa *in = &mt->tlsa[k];
			if (in->len > DL_TLSA_DATA_MAX)
				continue; /* full certificates (mtype 0): not kept */
			/* data stays NULL here: targets are copied and moved, so
			 * the pointer is made where it is used (conn.c) */
			memcpy(t->tlsa_data[t->tlsa_n], in->data, in->len);
			t->tlsa[t->tlsa_n] = *in;
			t->tlsa[t->tlsa_n].data = NULL;
			t->tlsa_n++;
		}
	}
}

static void dl_mx_done(void *ctx, const struct deliver_mx_result *r)
{
	struct dl_pending_resolve *p = ctx;

	p->mx_id = 0;
	if (r->status != DELIVER_MX_OK) {
		dl_reply_set(&p->res.why, r->status == DELIVER_MX_PERM ? 550 : 451, r->enhanced, "%s",
			    r->text);
		dl_pending_finish(p);
		return;
	}
	dl_mx_targets(p, r);
	dl_pending_finish(p);
}

/* ---- entry ------------------------------------------------------------------------ */

int dl_resolve(struct deliver_engine *e, const char *dest, const struct config_route *route,
	       dl_resolve_cb *cb, void *ctx, uint64_t *id_r)
{
	struct dl_pending_resolve *p = calloc(1, sizeof *p);
	struct sockaddr_storage ss;
	socklen_t len = 0;

	if (p == NULL)
		return -1;
	p->e = e;
	p->id = ++e->next_resolve_id;
	p->cb = cb;
	p->ctx = ctx;
	p->route = route;
	p->next = e->resolves;
	if (p->next)
		p->next->prevp = &p->next;
	e->resolves = p;
	p->prevp = &e->resolves;
	*id_r = p->id;

	memset(&ss, 0, sizeof ss);
	if (route != NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		util_strlcpy(p->name, route->host, sizeof p->name);
		p->port = route->port;
		if (inet_pton(AF_INET, route->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			len = sizeof *s4;
		} else if (inet_pton(AF_INET6, route->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			len = sizeof *s6;
		}
		if (len > 0) {
			/* an address: known now, answered from the loop */
			if (dl_res_add(&p->res, route->host, (struct sockaddr *)&ss, len, p->port) < 0 ||
			    (p->ev = evtimer_new(e->base, dl_now_cb, p)) == NULL)
				goto fail;
			{
				struct timeval tv = {0, 0};
				evtimer_add(p->ev, &tv);
			}
			return 0;
		}
		/* a name: the families ip_preference allows */
		{
			int want4 = e->dc->ip_pref != CONFIG_IP_IPV6_ONLY;
			int want6 = e->dc->ip_pref != CONFIG_IP_IPV4_ONLY;

			util_strlcpy(p->host.name, route->host, sizeof p->host.name);
			p->outstanding = want4 + want6;
			if (want4 && net_resolve(e->resolver, route->host, NET_DNS_A, dl_host_answer,
						 p, &p->q[0]) < 0)
				goto fail;
			if (want6 && net_resolve(e->resolver, route->host, NET_DNS_AAAA,
						 dl_host_answer, p, &p->q[1]) < 0) {
				if (want4)
					net_resolve_cancel(e->resolver, p->q[0]);
				goto fail;
			}
		}
		return 0;
	}
	util_strlcpy(p->name, dest, sizeof p->name);
	p->port = e->dc->mx_port;
	{
		struct deliver_mx_options o;
		memset(&o, 0, sizeof o);
		o.ip_pref = e->dc->ip_pref;
		o.dane = e->dc->dnssec;
		o.tlsa_port = e->dc->mx_port;
		o.port = e->dc->mx_port;
		o.local_names = e->local_names;
		if (deliver_mx_resolve(e->mx, dest, &o, dl_mx_done, p, &p->mx_id) < 0)
			goto fail;
	}
	return 0;
fail:
	dl_pending_free(p);
	return -1;
}

void dl_resolve_cancel(struct deliver_engine *e, uint64_t id)
{
	for (struct dl_pending_resolve *p = e->resolves; p; p = p->next) {
		if (p->id != id)
			continue;
		for (int i = 0; i < 2; i++)
			if (p->q[i])
				net_resolve_cancel(e->resolver, p->q[i]);
		if (p->mx_id)
			deliver_mx_cancel(e->mx, p->mx_id);
		dl_pending_free(p);
		return;
	}
}
