/*
 * mx: where mail for a recipient domain goes.  The MX lookup and RFC 5321
 * 5.1 ordering, RFC 7505 null MX, the implicit MX, each host's addresses,
 * and with DANE each secure host's TLSA records (RFC 7672 2.2).
 *
 * The decisions are pure functions over answers and hosts
 * (deliver_mx_sort, deliver_mx_hosts, deliver_mx_targets), tested without
 * DNS.  The rest is plumbing: a job per lookup holding a small context for
 * each DNS query it has out, and the job's one callback once the last
 * answer is in.  A job finishing is unlinked before its callback runs and
 * freed after, without touching the deliver_mx again, so a callback may
 * cancel other lookups or free everything.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "deliver/deliver.h"
#include "util/util.h"

enum mx_job_kind { MX_JOB_ROUTE, MX_JOB_TLSA };
enum mx_query_kind { MX_Q_A, MX_Q_AAAA, MX_Q_TLSA, MX_Q_KINDS };

struct mx_job;

/* The callback context of one DNS query. */
struct mx_query {
	struct mx_job *job;
	enum mx_query_kind kind;
	size_t host;
	uint64_t id; /* 0: not out */
};

struct mx_job {
	struct mx_job *prev, *next;
	int linked;
	struct deliver_mx *mx;
	uint64_t id;
	enum mx_job_kind kind;
	struct deliver_mx_options o;
	uint16_t tlsa_port;
	deliver_mx_cb *mx_cb;
	deliver_tlsa_cb *tlsa_cb;
	void *ctx;
	struct event *now; /* results known without DNS come from the loop too */
	int decided;       /* res holds the verdict (or the literal's target) */
	struct deliver_mx_result res;
	struct mx_query mxq;
	struct deliver_mx_host hosts[DELIVER_MX_HOSTS_MAX];
	size_t nhosts;
	struct mx_query q[DELIVER_MX_HOSTS_MAX][MX_Q_KINDS];
	int tlsa_phase[DELIVER_MX_HOSTS_MAX]; /* 0: at the CNAME target, 1: at the name */
	unsigned outstanding;
};

struct deliver_mx {
	struct net_resolver *r;
	uint64_t next_id;
	struct mx_job *jobs;
};

/* ---- text ------------------------------------------------------------------------ */

static void mx_vappend(char *text, size_t size, const char *fmt, va_list ap) UTIL_PRINTF(3, 0);

static void mx_vappend(char *text, size_t size, const char *fmt, va_list ap)
{
	size_t len = strlen(text);
	int n;

	if (len + 4 >= size)
		return; /* already full and marked */
	n = vsnprintf(text + len, size - len, fmt, ap);
	if (n < 0 || (size_t)n >= size - len)
		memcpy(text + size - 4, "...", 4); /* cut, and says so */
}

static void mx_append(char *text, size_t size, const char *fmt, ...) UTIL_PRINTF(3, 4);

static void mx_append(char *text, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mx_vappend(text, size, fmt, ap);
	va_end(ap);
}

/* A note on a host left out, "; "-separated. */
static void mx_note(char *notes, size_t size, const char *fmt, ...) UTIL_PRINTF(3, 4);

static void mx_note(char *notes, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (notes[0] != '\0')
		mx_append(notes, size, "; ");
	va_start(ap, fmt);
	mx_vappend(notes, size, fmt, ap);
	va_end(ap);
}

static enum deliver_mx_status mx_verdict(struct deliver_mx_result *res,
                                         enum deliver_mx_status status, const char *enhanced,
                                         const char *fmt, ...) UTIL_PRINTF(4, 5);

/* Set the verdict; notes already in res->text follow it after ": ". */
static enum deliver_mx_status mx_verdict(struct deliver_mx_result *res,
                                         enum deliver_mx_status status, const char *enhanced,
                                         const char *fmt, ...)
{
	char notes[DELIVER_MX_TEXT_MAX];
	va_list ap;

	util_strlcpy(notes, res->text, sizeof notes);
	res->status = status;
	util_strlcpy(res->enhanced, enhanced, sizeof res->enhanced);
	res->text[0] = '\0';
	va_start(ap, fmt);
	mx_vappend(res->text, sizeof res->text, fmt, ap);
	va_end(ap);
	if (notes[0] != '\0')
		mx_append(res->text, sizeof res->text, ": %s", notes);
	return status;
}

/* ---- the pure steps ----------------------------------------------------------------- */

static int mx_rec_cmp(const void *a, const void *b)
{
	const struct deliver_mx_rec *x = a, *y = b;

	return (int)x->preference - (int)y->preference;
}

void deliver_mx_sort(struct deliver_mx_rec *recs, size_t n, uint32_t (*rnd)(void *ctx, uint32_t n),
                     void *rnd_ctx)
{
	size_t i, j, k;

	if (n < 2)
		return;
	qsort(recs, n, sizeof *recs, mx_rec_cmp);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && recs[j].preference == recs[i].preference; j++)
			;
		/* Fisher-Yates over the run of equal preference [i, j) */
		for (k = j - 1; k > i; k--) {
			uint32_t span = (uint32_t)(k - i + 1);
			uint32_t d =
			    rnd != NULL ? rnd(rnd_ctx, span) % span : arc4random_uniform(span);
			struct deliver_mx_rec t = recs[k];

			recs[k] = recs[i + d];
			recs[i + d] = t;
		}
	}
}

static int mx_is_local(const struct deliver_mx_options *o, const char *name)
{
	for (const char *const *l = o->local_names; l != NULL && *l != NULL; l++) {
		char norm[NET_DNS_NAME_MAX];

		if (net_dns_name_normalize(*l, norm) == 0 && strcmp(norm, name) == 0)
			return 1;
	}
	return 0;
}

static void mx_host_init(struct deliver_mx_host *h, const char *name, uint16_t pref, int implicit,
                         int secure)
{
	memset(h, 0, sizeof *h);
	util_strlcpy(h->name, name, sizeof h->name);
	h->preference = pref;
	h->implicit = implicit;
	h->mx_secure = secure;
}

enum deliver_mx_status deliver_mx_hosts(const char *domain, const struct net_dns_answer *a,
                                        const struct deliver_mx_options *o,
                                        struct deliver_mx_host hosts_r[DELIVER_MX_HOSTS_MAX],
                                        size_t *nhosts_r, struct deliver_mx_result *res)
{
	struct deliver_mx_rec *recs;
	size_t n = 0, i, cut;

	*nhosts_r = 0;
	res->status = DELIVER_MX_OK;
	res->enhanced[0] = '\0';
	res->text[0] = '\0';
	util_strlcpy(res->domain, domain, sizeof res->domain);
	switch (a->status) {
	case NET_DNS_NXDOMAIN:
		return mx_verdict(res, DELIVER_MX_PERM, "5.1.2", "domain %s not found (NXDOMAIN)",
		                  domain);
	case NET_DNS_TEMPFAIL:
		return mx_verdict(res, DELIVER_MX_TEMP, "4.4.3", "MX lookup for %s failed: %s",
		                  domain, a->why ? a->why : "temporary failure");
	case NET_DNS_BOGUS:
		return mx_verdict(res, DELIVER_MX_TEMP, "4.4.3",
		                  "MX lookup for %s failed DNSSEC validation: %s", domain,
		                  a->why ? a->why : "bogus");
	case NET_DNS_NODATA:
		/* RFC 5321 5.1: the domain itself, preference 0 */
		mx_host_init(&hosts_r[0], domain, 0, 1, a->secure);
		*nhosts_r = 1;
		return DELIVER_MX_OK;
	case NET_DNS_OK:
		break;
	}

	/* RFC 7505: one MX record whose host is the root */
	if (a->count == 1 && a->skipped == 0 && strcmp(a->rrs[0].mx.exchange, ".") == 0)
		return mx_verdict(res, DELIVER_MX_PERM, "5.1.10",
		                  "domain %s does not accept mail (null MX)", domain);
	if (a->skipped > 0)
		mx_note(res->text, sizeof res->text,
		        "%zu MX record%s with a host that is not a name", a->skipped,
		        a->skipped == 1 ? "" : "s");
	if ((recs = calloc(a->count > 0 ? a->count : 1, sizeof *recs)) == NULL)
		return mx_verdict(res, DELIVER_MX_TEMP, "4.3.0", "out of memory");
	for (i = 0; i < a->count; i++) {
		const char *name = a->rrs[i].mx.exchange;
		struct in_addr ignored;

		if (strcmp(name, ".") == 0) {
			mx_note(res->text, sizeof res->text, "MX host \".\" among others");
			continue;
		}
		/* RFC 5321 5.1: the MX host is a name; Postfix, too, refuses
		 * "MX 10 192.0.2.1" */
		if (inet_pton(AF_INET, name, &ignored) == 1) {
			mx_note(res->text, sizeof res->text, "MX host %s is an address, not a name",
			        name);
			continue;
		}
		recs[n].preference = a->rrs[i].mx.preference;
		recs[n].name = name;
		n++;
	}
	deliver_mx_sort(recs, n, NULL, NULL);

	/* RFC 5321 5.1: when we are an MX of the domain, only the more
	 * preferred hosts are candidates */
	cut = n;
	for (i = 0; i < n; i++) {
		if (mx_is_local(o, recs[i].name)) {
			for (cut = 0; cut < n && recs[cut].preference < recs[i].preference; cut++)
				;
			break;
		}
	}
	if (cut == 0 && n > 0) {
		free(recs);
		return mx_verdict(res, DELIVER_MX_PERM, "5.4.6", "mail for %s loops back to myself",
		                  domain);
	}
	n = cut;
	if (n == 0) {
		free(recs);
		return mx_verdict(res, DELIVER_MX_TEMP, "4.4.4", "no usable MX host for %s",
		                  domain);
	}
	if (n > DELIVER_MX_HOSTS_MAX) {
		mx_note(res->text, sizeof res->text, "%zu less preferred MX hosts not tried",
		        n - DELIVER_MX_HOSTS_MAX);
		n = DELIVER_MX_HOSTS_MAX;
	}
	for (i = 0; i < n; i++)
		mx_host_init(&hosts_r[i], recs[i].name, recs[i].preference, 0, a->secure);
	*nhosts_r = n;
	free(recs);
	return DELIVER_MX_OK;
}

static const char *mx_family_text(const struct deliver_mx_family *f)
{
	return f->why[0] != '\0' ? f->why : net_dns_status_name(f->status);
}

static int mx_has_addr(const struct deliver_mx_family *f)
{
	return f->asked && f->status == NET_DNS_OK && f->n > 0;
}

static int mx_family_failed(const struct deliver_mx_family *f)
{
	return f->asked && (f->status == NET_DNS_TEMPFAIL || f->status == NET_DNS_BOGUS);
}

static int mx_seen(const struct deliver_mx_target *t, size_t n, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].addr.ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET &&
		    memcmp(&((const struct sockaddr_in *)&t[i].addr)->sin_addr,
		           &((const struct sockaddr_in *)ss)->sin_addr, 4) == 0)
			return 1;
		if (ss->ss_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)&t[i].addr)->sin6_addr,
		           &((const struct sockaddr_in6 *)ss)->sin6_addr, 16) == 0)
			return 1;
	}
	return 0;
}

static size_t mx_add_family(const struct deliver_mx_host *h, const struct deliver_mx_family *f,
                            int family, uint16_t port, struct deliver_mx_target *t, size_t n)
{
	size_t added = 0;

	if (!mx_has_addr(f))
		return 0;
	for (size_t i = 0; i < f->n && i < DELIVER_MX_ADDRS_MAX; i++) {
		struct deliver_mx_target *x = &t[n + added];

		memset(x, 0, sizeof *x);
		if (family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&x->addr;

			sin->sin_family = AF_INET;
			sin->sin_port = htons(port);
			memcpy(&sin->sin_addr, f->addr[i], 4);
			x->addrlen = sizeof *sin;
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&x->addr;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(port);
			memcpy(&sin6->sin6_addr, f->addr[i], 16);
			x->addrlen = sizeof *sin6;
		}
		if (mx_seen(t, n + added, &x->addr))
			continue;
		util_strlcpy(x->host, h->name, sizeof x->host);
		x->preference = h->preference;
		x->implicit = h->implicit;
		x->mx_secure = h->mx_secure;
		x->addr_secure = f->secure;
		util_strlcpy(x->tlsa_base, h->canonname[0] != '\0' ? h->canonname : h->name,
		             sizeof x->tlsa_base);
		if (h->tlsa_status == DELIVER_TLSA_OK && f->secure && h->mx_secure) {
			x->tlsa_secure = 1;
			x->tlsa = h->tlsa;
			x->ntlsa = h->ntlsa;
			util_strlcpy(x->tlsa_base, h->tlsa_base, sizeof x->tlsa_base);
		}
		added++;
	}
	return added;
}

enum deliver_mx_status deliver_mx_targets(const struct deliver_mx_host *hosts, size_t nhosts,
                                          const struct deliver_mx_options *o,
                                          struct deliver_mx_result *res)
{
	uint16_t port = o->port ? o->port : DELIVER_SMTP_PORT;
	int v6_first = o->ip_pref == CONFIG_IP_IPV6_FIRST || o->ip_pref == CONFIG_IP_IPV6_ONLY;
	struct deliver_mx_target *t;
	size_t n = 0, tlsa_failed = 0, lookups_failed = 0;

	res->targets = NULL;
	res->ntargets = 0;
	if ((t = calloc(nhosts * 2 * DELIVER_MX_ADDRS_MAX + 1, sizeof *t)) == NULL)
		return mx_verdict(res, DELIVER_MX_TEMP, "4.3.0", "out of memory");
	for (size_t i = 0; i < nhosts; i++) {
		const struct deliver_mx_host *h = &hosts[i];
		const struct deliver_mx_family *first = v6_first ? &h->v6 : &h->v4;
		const struct deliver_mx_family *second = v6_first ? &h->v4 : &h->v6;
		size_t before = n;

		if (h->tlsa_status == DELIVER_TLSA_TEMP &&
		    (mx_has_addr(&h->v4) || mx_has_addr(&h->v6))) {
			/* RFC 7672 2.2: neither DANE nor anything weaker */
			mx_note(res->text, sizeof res->text, "%s: TLSA lookup failed", h->name);
			tlsa_failed++;
			continue;
		}
		n += mx_add_family(h, first, v6_first ? AF_INET6 : AF_INET, port, t, n);
		n += mx_add_family(h, second, v6_first ? AF_INET : AF_INET6, port, t, n);
		if (mx_family_failed(&h->v4) || mx_family_failed(&h->v6)) {
			lookups_failed++;
			mx_note(res->text, sizeof res->text, "%s:%s%s%s%s%s", h->name,
			        h->v4.asked ? " A " : "", h->v4.asked ? mx_family_text(&h->v4) : "",
			        h->v6.asked ? " AAAA " : "",
			        h->v6.asked ? mx_family_text(&h->v6) : "",
			        n > before ? " (other addresses used)" : "");
		} else if (n == before && (mx_has_addr(&h->v4) || mx_has_addr(&h->v6))) {
			mx_note(res->text, sizeof res->text, "%s: its addresses are listed already",
			        h->name);
		} else if (n == before && !h->implicit) {
			mx_note(res->text, sizeof res->text, "%s: no address", h->name);
		}
	}
	if (n == 0) {
		const char *domain = res->domain;

		free(t);
		if (tlsa_failed > 0)
			return mx_verdict(res, DELIVER_MX_TEMP, "4.7.5",
			                  "TLSA lookup failed for every MX host of %s", domain);
		if (lookups_failed > 0)
			return mx_verdict(res, DELIVER_MX_TEMP, "4.4.3",
			                  "address lookup failed for the MX hosts of %s", domain);
		if (nhosts == 1 && hosts[0].implicit)
			return mx_verdict(res, DELIVER_MX_TEMP, "4.4.4",
			                  "%s has neither MX records nor an address", domain);
		return mx_verdict(res, DELIVER_MX_TEMP, "4.4.4", "no MX host of %s has an address",
		                  domain);
	}
	res->status = DELIVER_MX_OK;
	res->enhanced[0] = '\0';
	res->targets = t;
	res->ntargets = n;
	return DELIVER_MX_OK;
}

void deliver_mx_result_clear(struct deliver_mx_result *res)
{
	free((void *)res->targets);
	res->targets = NULL;
	res->ntargets = 0;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): one target. */
static void mx_literal(const char *domain, const struct deliver_mx_options *o,
                       struct deliver_mx_result *res)
{
	char inner[NET_ADDR_STRLEN];
	size_t len = strlen(domain);
	struct deliver_mx_target *t;
	const char *s;
	int v6;

	util_strlcpy(res->domain, domain, sizeof res->domain);
	if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof inner) {
		mx_verdict(res, DELIVER_MX_PERM, "5.1.2", "bad address literal %s", domain);
		return;
	}
	v6 = strncasecmp(domain + 1, "IPv6:", 5) == 0;
	s = domain + 1 + (v6 ? 5 : 0);
	memcpy(inner, s, (size_t)(domain + len - 1 - s));
	inner[domain + len - 1 - s] = '\0';
	if ((t = calloc(1, sizeof *t)) == NULL) {
		mx_verdict(res, DELIVER_MX_TEMP, "4.3.0", "out of memory");
		return;
	}
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->addr;

		if (inet_pton(AF_INET6, inner, &sin6->sin6_addr) != 1)
			goto bad;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(o->port ? o->port : DELIVER_SMTP_PORT);
		t->addrlen = sizeof *sin6;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->addr;

		if (inet_pton(AF_INET, inner, &sin->sin_addr) != 1)
			goto bad;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(o->port ? o->port : DELIVER_SMTP_PORT);
		t->addrlen = sizeof *sin;
	}
	if ((v6 && o->ip_pref == CONFIG_IP_IPV4_ONLY) ||
	    (!v6 && o->ip_pref == CONFIG_IP_IPV6_ONLY)) {
		free(t);
		mx_verdict(res, DELIVER_MX_TEMP, "4.4.4", "%s: IPv%c is turned off", domain,
		           v6 ? '6' : '4');
		return;
	}
	util_strlcpy(t->host, domain, sizeof t->host);
	util_strlcpy(t->tlsa_base, domain, sizeof t->tlsa_base);
	t->implicit = 1;
	res->status = DELIVER_MX_OK;
	res->targets = t;
	res->ntargets = 1;
	return;
bad:
	free(t);
	mx_verdict(res, DELIVER_MX_PERM, "5.1.2", "bad address literal %s", domain);
}

/* ---- jobs --------------------------------------------------------------------------- */

static void mx_job_unlink(struct mx_job *j)
{
	if (!j->linked)
		return;
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		j->mx->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	j->linked = 0;
}

static void mx_job_free(struct mx_job *j)
{
	struct net_resolver *r = j->mx->r;

	if (j->mxq.id != 0)
		net_resolve_cancel(r, j->mxq.id);
	for (size_t i = 0; i < DELIVER_MX_HOSTS_MAX; i++) {
		for (int k = 0; k < MX_Q_KINDS; k++)
			if (j->q[i][k].id != 0)
				net_resolve_cancel(r, j->q[i][k].id);
		free(j->hosts[i].tlsa);
	}
	if (j->now != NULL)
		event_free(j->now);
	deliver_mx_result_clear(&j->res);
	mx_job_unlink(j);
	free(j);
}

/* The job's one callback; the job is gone afterwards. */
static void mx_job_finish(struct mx_job *j)
{
	mx_job_unlink(j);
	if (j->kind == MX_JOB_TLSA) {
		const struct deliver_mx_host *h = &j->hosts[0];
		struct deliver_tlsa_result tr;

		memset(&tr, 0, sizeof tr);
		tr.status = h->tlsa_status;
		util_strlcpy(tr.base, h->tlsa_base[0] ? h->tlsa_base : h->name, sizeof tr.base);
		util_strlcpy(tr.text, j->res.text, sizeof tr.text);
		if (tr.status == DELIVER_TLSA_OK) {
			tr.tlsa = h->tlsa;
			tr.ntlsa = h->ntlsa;
		}
		log_debug("mx tlsa host=%s status=%d records=%zu", h->name, (int)tr.status,
		          tr.ntlsa);
		j->tlsa_cb(j->ctx, &tr);
	} else {
		if (!j->decided)
			deliver_mx_targets(j->hosts, j->nhosts, &j->o, &j->res);
		log_debug("mx domain=%s status=%s targets=%zu text=\"%s\"", j->res.domain,
		          j->res.status == DELIVER_MX_OK     ? "ok"
		          : j->res.status == DELIVER_MX_TEMP ? "temp"
		                                             : "perm",
		          j->res.ntargets, j->res.text);
		j->mx_cb(j->ctx, &j->res);
	}
	/* the callback may have freed j->mx: only the job is touched now */
	j->mx = NULL;
	for (size_t i = 0; i < DELIVER_MX_HOSTS_MAX; i++)
		free(j->hosts[i].tlsa);
	if (j->now != NULL)
		event_free(j->now);
	deliver_mx_result_clear(&j->res);
	free(j);
}

static void mx_job_now(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mx_job_finish(arg);
}

/* Finish from the loop, not from inside the caller's call. */
static int mx_job_defer(struct mx_job *j)
{
	j->decided = 1;
	if ((j->now = event_new(net_resolver_base(j->mx->r), -1, 0, mx_job_now, j)) == NULL)
		return -1;
	event_active(j->now, 0, 1);
	return 0;
}

static struct mx_job *mx_job_new(struct deliver_mx *mx, enum mx_job_kind kind, void *ctx)
{
	struct mx_job *j = calloc(1, sizeof *j);

	if (j == NULL)
		return NULL;
	j->mx = mx;
	j->kind = kind;
	j->ctx = ctx;
	j->id = ++mx->next_id;
	j->next = mx->jobs;
	if (j->next != NULL)
		j->next->prev = j;
	mx->jobs = j;
	j->linked = 1;
	return j;
}

static int mx_start(struct mx_job *j, struct mx_query *q, enum mx_query_kind kind, size_t host,
                    const char *name, int rrtype, net_resolve_cb *cb)
{
	q->job = j;
	q->kind = kind;
	q->host = host;
	if (net_resolve(j->mx->r, name, rrtype, cb, q, &q->id) < 0) {
		q->id = 0;
		return -1;
	}
	j->outstanding++;
	return 0;
}

/* ---- DANE ------------------------------------------------------------------------------ */

static void mx_tlsa_answer(void *ctx, const struct net_dns_answer *a);

static void mx_tlsa_query(struct mx_job *j, size_t i, int phase)
{
	struct deliver_mx_host *h = &j->hosts[i];
	const char *base = phase == 0 ? h->canonname : h->name;
	char qname[NET_DNS_NAME_MAX + 16];

	j->tlsa_phase[i] = phase;
	if ((size_t)snprintf(qname, sizeof qname, "_%u._tcp.%s", (unsigned)j->tlsa_port, base) >=
	    NET_DNS_NAME_MAX) {
		/* no room for the prefix: there cannot be TLSA records */
		if (phase == 0)
			mx_tlsa_query(j, i, 1);
		else
			h->tlsa_status = DELIVER_TLSA_NONE;
		return;
	}
	if (mx_start(j, &j->q[i][MX_Q_TLSA], MX_Q_TLSA, i, qname, NET_DNS_TLSA, mx_tlsa_answer) <
	    0) {
		h->tlsa_status = DELIVER_TLSA_TEMP;
		mx_note(j->res.text, sizeof j->res.text, "%s: TLSA lookup could not start",
		        h->name);
	}
}

/* RFC 7672 2.2.2: with a CNAME, the TLSA base domain is the target, then
 * the name itself. */
static void mx_tlsa_begin(struct mx_job *j, size_t i)
{
	const struct deliver_mx_host *h = &j->hosts[i];

	mx_tlsa_query(j, i, h->canonname[0] != '\0' && strcmp(h->canonname, h->name) != 0 ? 0 : 1);
}

static int mx_tlsa_keep(struct deliver_mx_host *h, const struct net_dns_answer *a)
{
	size_t n = a->count < DELIVER_MX_TLSA_MAX ? a->count : DELIVER_MX_TLSA_MAX, data = 0;
	unsigned char *p;

	if (a->count > n)
		log_warn("mx tlsa name=%s records=%zu kept=%zu", a->qname, a->count, n);
	for (size_t i = 0; i < n; i++)
		data += a->rrs[i].tlsa.len;
	if ((h->tlsa = malloc(n * sizeof *h->tlsa + data + 1)) == NULL)
		return -1;
	p = (unsigned char *)(h->tlsa + n);
	for (size_t i = 0; i < n; i++) {
		h->tlsa[i] = a->rrs[i].tlsa;
		memcpy(p, a->rrs[i].tlsa.data, a->rrs[i].tlsa.len);
		h->tlsa[i].data = p;
		p += a->rrs[i].tlsa.len;
	}
	h->ntlsa = n;
	return 0;
}

static void mx_tlsa_answer(void *ctx, const struct net_dns_answer *a)
{
	struct mx_query *q = ctx;
	struct mx_job *j = q->job;
	struct deliver_mx_host *h = &j->hosts[q->host];
	const char *base = j->tlsa_phase[q->host] == 0 ? h->canonname : h->name;

	q->id = 0;
	j->outstanding--;
	switch (a->status) {
	case NET_DNS_BOGUS:
	case NET_DNS_TEMPFAIL:
		h->tlsa_status = DELIVER_TLSA_TEMP;
		mx_note(j->res.text, sizeof j->res.text, "TLSA lookup for %s: %s", a->qname,
		        a->why ? a->why : net_dns_status_name(a->status));
		break;
	case NET_DNS_OK:
		if (a->secure && a->count > 0) {
			if (mx_tlsa_keep(h, a) < 0) {
				h->tlsa_status = DELIVER_TLSA_TEMP;
				mx_note(j->res.text, sizeof j->res.text, "out of memory");
				break;
			}
			h->tlsa_status = DELIVER_TLSA_OK;
			util_strlcpy(h->tlsa_base, base, sizeof h->tlsa_base);
			break;
		}
		/* insecure TLSA records do not count (RFC 7672 2.2) */
		/* fall through */
	case NET_DNS_NODATA:
	case NET_DNS_NXDOMAIN:
		if (j->tlsa_phase[q->host] == 0)
			mx_tlsa_query(j, q->host, 1);
		else
			h->tlsa_status = DELIVER_TLSA_NONE;
		break;
	}
	if (j->outstanding == 0)
		mx_job_finish(j);
}

int deliver_tlsa_resolve(struct deliver_mx *mx, const char *host, const char *canonname, int secure,
                         uint16_t port, deliver_tlsa_cb *cb, void *ctx, uint64_t *id_r)
{
	struct mx_job *j;
	struct deliver_mx_host *h;

	if (id_r != NULL)
		*id_r = 0;
	if (cb == NULL || (j = mx_job_new(mx, MX_JOB_TLSA, ctx)) == NULL)
		return -1;
	j->tlsa_cb = cb;
	j->tlsa_port = port ? port : DELIVER_SMTP_PORT;
	j->nhosts = 1;
	h = &j->hosts[0];
	if (net_dns_name_normalize(host, h->name) < 0 ||
	    (canonname != NULL && net_dns_name_normalize(canonname, h->canonname) < 0))
		goto fail;
	h->mx_secure = secure;
	if (!secure) {
		h->tlsa_status = DELIVER_TLSA_NONE;
		if (mx_job_defer(j) < 0)
			goto fail;
	} else {
		mx_tlsa_begin(j, 0);
		if (j->outstanding == 0 && mx_job_defer(j) < 0)
			goto fail;
	}
	if (id_r != NULL)
		*id_r = j->id;
	return 0;
fail:
	mx_job_free(j);
	return -1;
}

/* ---- routing ----------------------------------------------------------------------------- */

static void mx_addr_answer(void *ctx, const struct net_dns_answer *a)
{
	struct mx_query *q = ctx;
	struct mx_job *j = q->job;
	size_t i = q->host;
	struct deliver_mx_host *h = &j->hosts[i];
	struct deliver_mx_family *f = q->kind == MX_Q_A ? &h->v4 : &h->v6;

	q->id = 0;
	j->outstanding--;
	f->status = a->status;
	f->secure = a->secure;
	if (a->why != NULL && util_strlcpy(f->why, a->why, sizeof f->why) >= sizeof f->why)
		memcpy(f->why + sizeof f->why - 4, "...", 4); /* cut, and says so */
	if (a->status == NET_DNS_OK) {
		for (size_t k = 0; k < a->count && f->n < DELIVER_MX_ADDRS_MAX; k++) {
			if (q->kind == MX_Q_A)
				memcpy(f->addr[f->n++], &a->rrs[k].a, 4);
			else
				memcpy(f->addr[f->n++], &a->rrs[k].aaaa, 16);
		}
		if (strcmp(a->canonname, a->qname) != 0)
			util_strlcpy(h->canonname, a->canonname, sizeof h->canonname);
	}
	/* both families in: DANE for a host whose MX and addresses are
	 * secure (RFC 7672 2.2.2: no TLSA lookup otherwise) */
	if (j->o.dane && j->q[i][MX_Q_A].id == 0 && j->q[i][MX_Q_AAAA].id == 0 && h->mx_secure &&
	    ((mx_has_addr(&h->v4) && h->v4.secure) || (mx_has_addr(&h->v6) && h->v6.secure)))
		mx_tlsa_begin(j, i);
	if (j->outstanding == 0)
		mx_job_finish(j);
}

static void mx_family_start(struct mx_job *j, size_t i, enum mx_query_kind kind)
{
	struct deliver_mx_host *h = &j->hosts[i];
	struct deliver_mx_family *f = kind == MX_Q_A ? &h->v4 : &h->v6;

	f->asked = 1;
	if (mx_start(j, &j->q[i][kind], kind, i, h->name, kind == MX_Q_A ? NET_DNS_A : NET_DNS_AAAA,
	             mx_addr_answer) < 0) {
		f->status = NET_DNS_TEMPFAIL;
		util_strlcpy(f->why, "lookup could not start", sizeof f->why);
	}
}

static void mx_answer(void *ctx, const struct net_dns_answer *a)
{
	struct mx_query *q = ctx;
	struct mx_job *j = q->job;
	char domain[NET_DNS_NAME_MAX];

	q->id = 0;
	util_strlcpy(domain, j->res.domain, sizeof domain);
	if (deliver_mx_hosts(domain, a, &j->o, j->hosts, &j->nhosts, &j->res) != DELIVER_MX_OK) {
		j->decided = 1;
		mx_job_finish(j);
		return;
	}
	for (size_t i = 0; i < j->nhosts; i++) {
		if (j->o.ip_pref != CONFIG_IP_IPV6_ONLY)
			mx_family_start(j, i, MX_Q_A);
		if (j->o.ip_pref != CONFIG_IP_IPV4_ONLY)
			mx_family_start(j, i, MX_Q_AAAA);
	}
	if (j->outstanding == 0)
		mx_job_finish(j);
}

int deliver_mx_resolve(struct deliver_mx *mx, const char *domain,
                       const struct deliver_mx_options *o, deliver_mx_cb *cb, void *ctx,
                       uint64_t *id_r)
{
	struct mx_job *j;

	if (id_r != NULL)
		*id_r = 0;
	if (cb == NULL || domain == NULL || (j = mx_job_new(mx, MX_JOB_ROUTE, ctx)) == NULL)
		return -1;
	j->mx_cb = cb;
	if (o != NULL)
		j->o = *o;
	j->tlsa_port =
	    j->o.tlsa_port ? j->o.tlsa_port : (j->o.port ? j->o.port : DELIVER_SMTP_PORT);
	if (domain[0] == '[') {
		mx_literal(domain, &j->o, &j->res);
		if (mx_job_defer(j) < 0)
			goto fail;
	} else if (net_dns_name_normalize(domain, j->res.domain) < 0 ||
	           strcmp(j->res.domain, ".") == 0) {
		util_strlcpy(j->res.domain, domain, sizeof j->res.domain);
		mx_verdict(&j->res, DELIVER_MX_PERM, "5.1.2", "%s is not a valid domain name",
		           j->res.domain);
		if (mx_job_defer(j) < 0)
			goto fail;
	} else {
		j->mxq.job = j;
		if (net_resolve(mx->r, j->res.domain, NET_DNS_MX, mx_answer, &j->mxq, &j->mxq.id) <
		    0)
			goto fail;
	}
	if (id_r != NULL)
		*id_r = j->id;
	return 0;
fail:
	mx_job_free(j);
	return -1;
}

/* ---- the context ----------------------------------------------------------------------------- */

struct deliver_mx *deliver_mx_new(struct net_resolver *r)
{
	struct deliver_mx *mx = calloc(1, sizeof *mx);

	if (mx != NULL)
		mx->r = r;
	return mx;
}

void deliver_mx_free(struct deliver_mx **mxp)
{
	struct deliver_mx *mx = *mxp;

	if (mx == NULL)
		return;
	*mxp = NULL;
	while (mx->jobs != NULL)
		mx_job_free(mx->jobs);
	free(mx);
}

int deliver_mx_cancel(struct deliver_mx *mx, uint64_t id)
{
	for (struct mx_job *j = mx->jobs; j != NULL; j = j->next) {
		if (j->id == id) {
			mx_job_free(j);
			return 0;
		}
	}
	return -1;
}
