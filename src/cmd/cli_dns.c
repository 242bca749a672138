/*
 * cli_dns: synchronous DNS for the CLI (`domain verify`, `check`,
 * `rotate-dkim`) over the daemon's resolver (net/resolve.c, libunbound),
 * configured the same way: the `resolver` forwarders, DNSSEC settings and
 * extra libunbound options of the configuration.  Tests point it at nsd
 * on loopback with `resolver = 127.0.0.1@PORT`.
 *
 * Each query runs a private event loop until its callback ran; the
 * resolver's own per-query timer bounds the wait.
 */
#include "cmd/cli_dns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#define CLI_DNS_TIMEOUT_MS 10000

struct cli_dns_wait {
	struct cli_dns_result *res;
	int done;
	int nomem;
};

int cli_dns_open(const struct sluice_config *cfg, struct cli_dns *dns, char **err_r)
{
	struct net_resolver_config rc = {
	    .server = cfg->delivery.resolver,
	    .trust_anchor_file = cfg->delivery.resolver_trust_anchor,
	    .dnssec = cfg->delivery.dnssec,
	    .timeout_ms = CLI_DNS_TIMEOUT_MS,
	    .options = (const char *const *)cfg->delivery.resolver_options,
	};

	memset(dns, 0, sizeof *dns);
	dns->base = event_base_new();
	if (dns->base == NULL) {
		*err_r = strdup("event_base_new failed");
		return -1;
	}
	dns->r = net_resolver_new(dns->base, &rc, err_r);
	if (dns->r == NULL) {
		event_base_free(dns->base);
		dns->base = NULL;
		return -1;
	}
	return 0;
}

void cli_dns_close(struct cli_dns *dns)
{
	net_resolver_free(&dns->r);
	if (dns->base != NULL)
		event_base_free(dns->base);
	dns->base = NULL;
}

void cli_dns_result_clear(struct cli_dns_result *res)
{
	for (size_t i = 0; i < res->n; i++)
		free(res->txt != NULL ? res->txt[i] : NULL);
	free(res->txt);
	free(res->addrs);
	free(res->names);
	memset(res, 0, sizeof *res);
}

static void cli_dns_answer(void *ctx, const struct net_dns_answer *a)
{
	struct cli_dns_wait *w = ctx;
	struct cli_dns_result *res = w->res;
	size_t n = a->status == NET_DNS_OK ? a->count : 0;

	w->done = 1;
	res->status = a->status;
	snprintf(res->why, sizeof res->why, "%s", a->why ? a->why : net_dns_status_name(a->status));
	if (n == 0)
		return;
	if (a->rrtype == NET_DNS_TXT)
		res->txt = calloc(n, sizeof *res->txt);
	else if (a->rrtype == NET_DNS_MX)
		res->names = calloc(n, sizeof *res->names);
	else
		res->addrs = calloc(n, sizeof *res->addrs);
	if (res->txt == NULL && res->names == NULL && res->addrs == NULL) {
		w->nomem = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct net_dns_rr *rr = &a->rrs[i];

		switch (a->rrtype) {
		case NET_DNS_TXT:
			/* a NUL inside a TXT string ends it here: no record
			 * sluice looks for holds one */
			if ((res->txt[i] = strndup(rr->txt.text, rr->txt.len)) == NULL) {
				w->nomem = 1;
				return;
			}
			break;
		case NET_DNS_MX:
			snprintf(res->names[i].name, sizeof res->names[i].name, "%s",
			         rr->mx.exchange);
			res->names[i].pref = rr->mx.preference;
			break;
		case NET_DNS_A:
			res->addrs[i].family = 4;
			memcpy(res->addrs[i].b, &rr->a, 4);
			break;
		default:
			res->addrs[i].family = 6;
			memcpy(res->addrs[i].b, &rr->aaaa, 16);
			break;
		}
		res->n = i + 1;
	}
}

int cli_dns_query(struct cli_dns *dns, const char *name, int rrtype, struct cli_dns_result *res)
{
	struct cli_dns_wait w = {.res = res};
	int guard = 0;

	memset(res, 0, sizeof *res);
	if (net_resolve(dns->r, name, rrtype, cli_dns_answer, &w, NULL) < 0) {
		res->status = NET_DNS_TEMPFAIL;
		snprintf(res->why, sizeof res->why, "not a name the resolver takes");
		return 0;
	}
	/* the query's timer ends it; the guard only stops a runaway loop */
	while (!w.done && guard++ < 100000)
		if (event_base_loop(dns->base, EVLOOP_ONCE) < 0)
			break;
	if (!w.done) {
		res->status = NET_DNS_TEMPFAIL;
		snprintf(res->why, sizeof res->why, "no answer");
	}
	if (w.nomem) {
		cli_dns_result_clear(res);
		return -1;
	}
	return 0;
}
