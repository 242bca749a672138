/*
 * egress render: the data model (configuration + store rows) to the text
 * of sluice's nftables table.  Pure: the same model always gives the same
 * bytes, so the output is golden-tested without a kernel.
 *
 * The text is the whole apply transaction.  "add table" makes sure the
 * table exists, so the "delete table" after it cannot fail on a first
 * apply; the table is then declared whole.  libnftables sends the three
 * as one netlink batch: the kernel swaps the old table for the new one or
 * keeps the old one, never shows a half-loaded table, and another table's
 * rules (the operator's own firewall) are never touched.
 */
#include "egress/egress_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EGRESS_ERR_MAX 256

/* Canonical v4 and v6 texts of a configured list, in its order. */
struct egress_split {
	char (*v4)[EGRESS_CIDR_MAX];
	size_t n4;
	char (*v6)[EGRESS_CIDR_MAX];
	size_t n6;
};

static void egress_split_free(struct egress_split *s)
{
	free(s->v4);
	free(s->v6);
	memset(s, 0, sizeof *s);
}

static int egress_split(const char *key, const char *const *list, size_t n, struct egress_split *s,
                        char **err_r)
{
	char err[EGRESS_ERR_MAX];
	struct egress_cidr c;

	memset(s, 0, sizeof *s);
	if (n == 0)
		return 0;
	s->v4 = calloc(n, sizeof *s->v4);
	s->v6 = calloc(n, sizeof *s->v6);
	if (s->v4 == NULL || s->v6 == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		if (egress_cidr_parse(list[i], &c, err, sizeof err) < 0) {
			egress_split_free(s);
			return egress_seterr(err_r, "%s: %s", key, err);
		}
		if (egress_cidr_format(&c, c.family == 4 ? s->v4[s->n4] : s->v6[s->n6]) < 0)
			goto oom;
		if (c.family == 4)
			s->n4++;
		else
			s->n6++;
	}
	return 0;
oom:
	egress_split_free(s);
	return egress_seterr(err_r, "egress render: out of memory");
}

/* "elements = { a, b }" lines of a set; nothing for an empty list. */
static void egress_elements(struct egress_text *b, char (*v)[EGRESS_CIDR_MAX], size_t n)
{
	if (n == 0)
		return;
	egress_puts(b, "\t\telements = {");
	for (size_t i = 0; i < n; i++)
		egress_printf(b, "%s%s", i ? ",\n\t\t\t     " : " ", v[i]);
	egress_puts(b, " }\n");
}

static void egress_set(struct egress_text *b, const char *name, int family, const char *flags,
                       char (*v)[EGRESS_CIDR_MAX], size_t n)
{
	egress_printf(b, "\n\tset %s%d {\n\t\ttype %s\n\t\tflags %s\n", name, family,
	              family == 4 ? "ipv4_addr" : "ipv6_addr", flags);
	if (strcmp(flags, "interval") == 0)
		egress_puts(b, "\t\tauto-merge\n");
	egress_elements(b, v, n);
	egress_puts(b, "\t}\n");
}

/* [A-Za-z0-9._-]{1,64}, as store_check_name() allows */
static int egress_name_ok(const char *s)
{
	size_t n = strnlen(s, EGRESS_TENANT_MAX + 1);

	if (n == 0 || n > EGRESS_TENANT_MAX)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

/* An exception in force, parsed, to check overlaps. */
struct egress_live {
	const struct egress_exception *e;
	struct egress_cidr c;
};

static void egress_exception_set(struct egress_text *b, int family, const struct egress_live *live,
                                 size_t n, int64_t now)
{
	size_t k = 0;

	egress_printf(b, "\n\tset exceptions%d {\n\t\ttype %s\n\t\tflags interval,timeout\n",
	              family, family == 4 ? "ipv4_addr" : "ipv6_addr");
	for (size_t i = 0; i < n; i++) {
		const struct egress_exception *e = live[i].e;
		char text[EGRESS_CIDR_MAX];

		if (live[i].c.family != family || egress_cidr_format(&live[i].c, text) < 0)
			continue;
		egress_puts(b, k++ == 0 ? "\t\telements = { " : ",\n\t\t\t     ");
		egress_puts(b, text);
		if (e->expires != 0)
			egress_printf(b, " timeout %" PRId64 "s", e->expires - now);
		/* the comment is nft syntax: only a name of the store's
		 * alphabet goes in, whatever a hand-edited row holds */
		egress_printf(b, " comment \"exception %" PRId64 " tenant %s\"", e->id,
		              egress_name_ok(e->tenant) ? e->tenant : "?");
	}
	if (k > 0)
		egress_puts(b, " }\n");
	egress_puts(b, "\t}\n");
}

static void egress_blocked_set(struct egress_text *b, int family, const struct egress_model *m)
{
	size_t k = 0;

	egress_printf(b,
	              "\n\tset blocked%d {\n\t\ttype %s\n\t\tsize %d\n\t\tflags dynamic,timeout\n"
	              "\t\ttimeout %" PRIu32 "s\n\t\tcounter\n",
	              family, family == 4 ? "ipv4_addr" : "ipv6_addr", EGRESS_BLOCKED_SIZE,
	              m->blocked_timeout);
	for (size_t i = 0; i < m->ncarry && k < EGRESS_BLOCKED_SIZE; i++) {
		const struct egress_source *s = &m->carry[i];
		struct egress_cidr c;
		char err[EGRESS_ERR_MAX];

		/* from the kernel, but checked: a bad one would fail the apply */
		if (s->family != family || egress_cidr_parse(s->addr, &c, err, sizeof err) < 0 ||
		    c.family != family || c.prefix != (family == 4 ? 32u : 128u))
			continue;
		egress_puts(b, k++ == 0 ? "\t\telements = { " : ",\n\t\t\t     ");
		egress_printf(b, "%s counter packets %" PRIu64 " bytes %" PRIu64, s->addr,
		              s->packets, s->bytes);
	}
	if (k > 0)
		egress_puts(b, " }\n");
	egress_puts(b, "\t}\n");
}

/* The exceptions to render: not expired, parseable, no overlap with one
 * kept before (the store refuses overlaps; this guards against rows
 * written by hand).  *live_r malloc'd.  Note the overlap check is O(n^2):
 * nothing at the hundreds of exceptions an operator grants, ~1-4 s of
 * render at 10,000 (measured; see docs/egress.md). */
static int egress_live_exceptions(const struct egress_model *m, struct egress_live **live_r,
                                  size_t *n_r, struct buf *warn)
{
	struct egress_live *live;
	char err[EGRESS_ERR_MAX];
	size_t n = 0;

	*live_r = NULL;
	*n_r = 0;
	if (m->nexceptions == 0)
		return 0;
	if ((live = calloc(m->nexceptions, sizeof *live)) == NULL)
		return -1;
	for (size_t i = 0; i < m->nexceptions; i++) {
		const struct egress_exception *e = &m->exceptions[i];
		size_t j;

		if (e->expires != 0 && e->expires <= m->now)
			continue;
		if (egress_cidr_parse(e->cidr, &live[n].c, err, sizeof err) < 0) {
			buf_printf(warn, "exception %" PRId64 " left out: %s\n", e->id, err);
			continue;
		}
		for (j = 0; j < n; j++)
			if (egress_cidr_overlap(&live[j].c, &live[n].c))
				break;
		if (j < n) {
			buf_printf(warn,
			           "exception %" PRId64
			           " (%s) left out: it overlaps exception %" PRId64 " (%s)\n",
			           e->id, e->cidr, live[j].e->id, live[j].e->cidr);
			continue;
		}
		live[n++].e = e;
	}
	*live_r = live;
	*n_r = n;
	return 0;
}

int egress_render(const struct egress_model *m, struct buf *out, char **warn_r, char **err_r)
{
	struct egress_split cust, relay, priv;
	struct egress_live *live = NULL;
	struct buf warn = BUF_INIT;
	struct egress_text t = {out, 0};
	size_t nlive = 0;
	int rc = -1;

	*warn_r = NULL;
	memset(&relay, 0, sizeof relay);
	memset(&priv, 0, sizeof priv);
	if (egress_split("egress_customer_networks", m->customers, m->ncustomers, &cust, err_r) <
	        0 ||
	    egress_split("egress_relay_addresses", m->relays, m->nrelays, &relay, err_r) < 0 ||
	    egress_split("egress_private_networks", m->privates, m->nprivates, &priv, err_r) < 0)
		goto done;
	if (m->ncustomers == 0) {
		egress_seterr(err_r,
		              "egress_customer_networks is not set: there is nothing to block");
		goto done;
	}
	if (egress_live_exceptions(m, &live, &nlive, &warn) < 0) {
		egress_seterr(err_r, "egress render: out of memory");
		goto done;
	}

	egress_puts(&t, "add table " EGRESS_FAMILY " " EGRESS_TABLE "\n"
	                "delete table " EGRESS_FAMILY " " EGRESS_TABLE "\n"
	                "table " EGRESS_FAMILY " " EGRESS_TABLE " {\n"
	                "\tcomment \"sluice egress: TCP 25 from customer networks; "
	                "made by sluice egress apply, do not edit\"\n");
	egress_set(&t, "customers", 4, "interval", cust.v4, cust.n4);
	egress_set(&t, "customers", 6, "interval", cust.v6, cust.n6);
	egress_set(&t, "relays", 4, "interval", relay.v4, relay.n4);
	egress_set(&t, "relays", 6, "interval", relay.v6, relay.n6);
	egress_set(&t, "private", 4, "interval", priv.v4, priv.n4);
	egress_set(&t, "private", 6, "interval", priv.v6, priv.n6);
	egress_exception_set(&t, 4, live, nlive, m->now);
	egress_exception_set(&t, 6, live, nlive, m->now);
	egress_blocked_set(&t, 4, m);
	egress_blocked_set(&t, 6, m);

	egress_puts(&t, "\n\tchain forward {\n"
	                "\t\ttype filter hook forward priority filter; policy accept;\n"
	                "\t\tip saddr @customers4 tcp dport 25 jump port25\n"
	                "\t\tip6 saddr @customers6 tcp dport 25 jump port25\n"
	                "\t}\n"
	                "\n\tchain port25 {\n"
	                "\t\tip daddr @relays4 accept\n"
	                "\t\tip6 daddr @relays6 accept\n"
	                "\t\tip daddr @private4 accept\n"
	                "\t\tip6 daddr @private6 accept\n"
	                "\t\tip saddr @exceptions4 accept\n"
	                "\t\tip6 saddr @exceptions6 accept\n"
	                "\t\ttcp flags & (syn | ack) == syn update @blocked4 { ip saddr }\n"
	                "\t\ttcp flags & (syn | ack) == syn update @blocked6 { ip6 saddr }\n");
	/* the kernel log (syslog level info), or an nflog group that ulogd2
	 * or tcpdump reads (and that works in any network namespace: the
	 * kernel log only takes lines from the initial one unless
	 * net.netfilter.nf_log_all_netns is set) */
	if (m->log_rate > 0 && m->log_nflog)
		egress_printf(&t,
		              "\t\ttcp flags & (syn | ack) == syn limit rate %" PRIu32
		              "/minute burst 5 packets"
		              " log group %u prefix \"sluice egress blocked: \"\n",
		              m->log_rate, (unsigned)m->log_group);
	else if (m->log_rate > 0)
		egress_printf(&t,
		              "\t\ttcp flags & (syn | ack) == syn limit rate %" PRIu32
		              "/minute burst 5 packets"
		              " log prefix \"sluice egress blocked: \" level info\n",
		              m->log_rate);
	egress_puts(&t, "\t\tcounter reject with tcp reset\n"
	                "\t}\n"
	                "}\n");
	if (t.failed) {
		egress_seterr(err_r, "egress render: out of memory");
		goto done;
	}
	if (warn.len > 0)
		*warn_r = buf_export(&warn, NULL);
	rc = 0;
done:
	buf_free(&warn);
	free(live);
	egress_split_free(&cust);
	egress_split_free(&relay);
	egress_split_free(&priv);
	return rc;
}
