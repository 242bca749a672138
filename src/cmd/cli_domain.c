/*
 * sluice domain add|records|verify|check|rotate-dkim: a sending domain's
 * DNS side (issue 5).
 *
 * `add` makes the domain, its verification token and two DKIM keys
 * (RSA-2048 and Ed25519, dated selectors "sYYYYMMDDr" / "sYYYYMMDDe",
 * active at once: the domain sends nothing before it is verified) and
 * prints every record to publish, in zone-file syntax.  `verify` looks
 * for the token in DNS; `check` looks at every record and says, record by
 * record, pass or fail and the fix.  `rotate-dkim` makes new pending keys
 * and prints their records; the switch happens when a later `check` or
 * `rotate-dkim` sees them in DNS: the new keys become active, the old
 * ones retired, and once dkim_overlap has passed a further `rotate-dkim`
 * wipes the old private keys and says the old records may go.
 *
 * DNS goes through the configured resolver (cli_dns.c), SPF through
 * policy/spf.c.  Nothing here talks to sluiced: it reloads keys when the
 * store changes.
 */
#include "cmd/cli.h"
#include "cmd/cli_dns.h"
#include "message/message.h"
#include "policy/spf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#define CLI_VERIFY_LABEL "_sluice-verify"
#define CLI_VERIFY_PREFIX "sluice-verify="
#define CLI_TOKEN_BYTES 16
#define CLI_TXT_CHUNK 255 /* one character-string of a TXT record */
#define CLI_TTL 3600
#define CLI_CHECKS_MAX 32

enum cli_check_status { CHECK_PASS, CHECK_FAIL, CHECK_SKIP };

struct cli_check {
	char what[32]; /* "verification", "dkim", "spf", "dmarc" */
	char name[STORE_DOMAIN_MAX + 128];
	enum cli_check_status status;
	char detail[1024];
	char fix[1600]; /* the record to publish, or what to do; "" none */
};

struct cli_report {
	struct cli_check c[CLI_CHECKS_MAX];
	size_t n;
	int dkim_pending_seen; /* every pending key is in DNS */
	int dkim_pending;      /* pending keys there are */
};

static const char *cli_check_status_name(enum cli_check_status s)
{
	return s == CHECK_PASS ? "pass" : s == CHECK_FAIL ? "fail" : "skip";
}

static struct cli_check *cli_report_add(struct cli_report *r, const char *what, const char *name)
{
	struct cli_check *c;

	if (r->n == CLI_CHECKS_MAX)
		return NULL;
	c = &r->c[r->n++];
	memset(c, 0, sizeof *c);
	snprintf(c->what, sizeof c->what, "%s", what);
	snprintf(c->name, sizeof c->name, "%s", name);
	return c;
}

/* ---- records ---------------------------------------------------------------- */

/* "NAME. 3600 IN TXT "chunk" "chunk"" into out: values longer than 255
 * octets are split into character-strings (RFC 7208 3.3, RFC 6376
 * 3.6.2.2: verifiers join them). */
static void cli_txt_line(char *out, size_t size, const char *name, const char *value)
{
	size_t k, len = strlen(value);
	int n;

	n = snprintf(out, size, "%s. %d IN TXT", name, CLI_TTL);
	k = n > 0 && (size_t)n < size ? (size_t)n : size - 1;
	for (size_t i = 0; i < len || i == 0; i += CLI_TXT_CHUNK) {
		size_t part = len - i < CLI_TXT_CHUNK ? len - i : CLI_TXT_CHUNK;
		n = snprintf(out + k, size - k, " \"%.*s\"", (int)part, value + i);
		if (n < 0 || (size_t)n >= size - k)
			break;
		k += (size_t)n;
		if (len == 0)
			break;
	}
}

static void cli_spf_value(const struct cli *cli, char *out, size_t size)
{
	const struct config_domains *cd = &cli->cfg.domains;
	char copy[1024], *save = NULL;
	size_t k;

	k = (size_t)snprintf(out, size, "v=spf1");
	if (cd->sending_addresses != NULL &&
	    util_strlcpy(copy, cd->sending_addresses, sizeof copy) < sizeof copy)
		for (char *t = strtok_r(copy, " ,", &save); t && k < size;
		     t = strtok_r(NULL, " ,", &save))
			k += (size_t)snprintf(out + k, size - k, " %s:%s",
			                      strchr(t, ':') ? "ip6" : "ip4", t);
	if (cd->spf_include != NULL && k < size)
		k += (size_t)snprintf(out + k, size - k, " include:%s", cd->spf_include);
	if (k < size)
		snprintf(out + k, size - k, " ~all");
}

static void cli_dmarc_value(const struct cli *cli, const char *domain, char *out, size_t size)
{
	if (cli->cfg.domains.dmarc_rua != NULL)
		snprintf(out, size, "v=DMARC1; p=none; rua=%s", cli->cfg.domains.dmarc_rua);
	else
		snprintf(out, size, "v=DMARC1; p=none; rua=mailto:dmarc@%s", domain);
}

static int cli_spf_known(const struct cli *cli)
{
	return cli->cfg.domains.sending_addresses != NULL || cli->cfg.domains.spf_include != NULL;
}

static const char *cli_key_state(int state)
{
	return state == STORE_DKIM_ACTIVE    ? "active"
	       : state == STORE_DKIM_PENDING ? "pending"
	                                     : "retired";
}

/* Keys whose record must be in DNS: pending, active, and retired ones
 * within the overlap. */
static int cli_key_published(const struct cli *cli, const struct store_dkim_key *k, int64_t now)
{
	if (k->state != STORE_DKIM_RETIRED)
		return 1;
	return k->pem[0] != '\0' && now < k->retired + (int64_t)cli->cfg.domains.dkim_overlap;
}

static void cli_print_records(const struct cli *cli, const char *domain, const char *token,
                              const struct store_dkim_key *keys, size_t nkeys, int all)
{
	char line[1600], name[STORE_DOMAIN_MAX + 80], value[1100];
	int64_t now = util_wall_seconds();

	if (token != NULL) {
		snprintf(name, sizeof name, "%s.%s", CLI_VERIFY_LABEL, domain);
		snprintf(value, sizeof value, "%s%s", CLI_VERIFY_PREFIX, token);
		cli_txt_line(line, sizeof line, name, value);
		printf("%s\n", line);
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (!cli_key_published(cli, &keys[i], now))
			continue;
		snprintf(name, sizeof name, "%s._domainkey.%s", keys[i].selector, domain);
		cli_txt_line(line, sizeof line, name, keys[i].record);
		printf("%s\n", line);
	}
	if (!all)
		return;
	if (cli_spf_known(cli)) {
		cli_spf_value(cli, value, sizeof value);
		cli_txt_line(line, sizeof line, domain, value);
		printf("%s\n", line);
	} else {
		printf("; SPF: no sending_addresses in the configuration; ask your provider\n");
	}
	snprintf(name, sizeof name, "_dmarc.%s", domain);
	cli_dmarc_value(cli, domain, value, sizeof value);
	cli_txt_line(line, sizeof line, name, value);
	printf("%s\n", line);
}

/* ---- keys ------------------------------------------------------------------- */

/* A new key of alg for domain in state, its selector dated today and
 * unused among keys.  0 or exit code. */
static int cli_key_make(struct cli *cli, const char *domain, int alg, int state,
                        const struct store_dkim_key *keys, size_t nkeys)
{
	struct store_dkim_key *k = calloc(1, sizeof *k);
	struct buf pem = BUF_INIT, rec = BUF_INIT;
	struct dkim_key *dk = NULL;
	const char *why = NULL;
	char date[16], *err = NULL;
	time_t now = (time_t)util_wall_seconds();
	struct tm tm;
	int rc = CLI_EXIT_ERROR, r;

	if (k == NULL)
		return cli_error("out of memory");
	gmtime_r(&now, &tm);
	strftime(date, sizeof date, "%Y%m%d", &tm);
	for (int n = 1; n < 100; n++) {
		size_t i;
		if (n == 1)
			snprintf(k->selector, sizeof k->selector, "s%s%c", date,
			         alg == STORE_DKIM_RSA ? 'r' : 'e');
		else
			snprintf(k->selector, sizeof k->selector, "s%s%c%d", date,
			         alg == STORE_DKIM_RSA ? 'r' : 'e', n);
		for (i = 0; i < nkeys && strcmp(keys[i].selector, k->selector) != 0; i++)
			;
		if (i == nkeys)
			break;
	}
	if (dkim_key_generate(alg == STORE_DKIM_RSA ? DKIM_ALG_RSA_SHA256 : DKIM_ALG_ED25519_SHA256,
	                      &pem, &why) < 0 ||
	    dkim_key_from_pem(pem.data, pem.len, &dk, &why) < 0 ||
	    dkim_key_dns_record(dk, &rec) < 0) {
		cli_error("making a DKIM key: %s", why ? why : "out of memory");
		goto done;
	}
	if (pem.len >= sizeof k->pem || rec.len >= sizeof k->record) {
		cli_error("making a DKIM key: key too large");
		goto done;
	}
	snprintf(k->domain, sizeof k->domain, "%s", domain);
	memcpy(k->pem, pem.data, pem.len);
	memcpy(k->record, rec.data, rec.len);
	k->alg = alg;
	k->state = state;
	k->created = (int64_t)now;
	if ((r = store_dkim_add(cli->store, k, &err)) != 0) {
		cli_store_error(r, &err, "storing the DKIM key");
		goto done;
	}
	rc = 0;
done:
	dkim_key_free(&dk);
	if (pem.data != NULL)
		util_wipe(pem.data, pem.len);
	buf_free(&pem);
	buf_free(&rec);
	util_wipe(k, sizeof *k);
	free(k);
	return rc;
}

static void cli_keys_free(struct store_dkim_key **keys, size_t n)
{
	if (*keys != NULL)
		util_wipe(*keys, n * sizeof **keys);
	free(*keys);
	*keys = NULL;
}

/* Both algorithms' keys, in state. */
static int cli_keys_make(struct cli *cli, const char *domain, int state)
{
	struct store_dkim_key *keys = NULL;
	size_t n = 0;
	char *err = NULL;
	int rc;

	if ((rc = store_dkim_list(cli->store, domain, &keys, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing DKIM keys");
	rc = cli_key_make(cli, domain, STORE_DKIM_RSA, state, keys, n);
	if (rc == 0)
		rc = cli_key_make(cli, domain, STORE_DKIM_ED25519, state, keys, n);
	cli_keys_free(&keys, n);
	return rc;
}

static int cli_token_make(struct cli *cli, const char *domain, char token[STORE_TOKEN_MAX + 1])
{
	unsigned char raw[CLI_TOKEN_BYTES];
	char *err = NULL;
	int rc;

	if (sodium_init() < 0)
		return cli_error("libsodium initialisation failed");
	randombytes_buf(raw, sizeof raw);
	sodium_bin2hex(token, STORE_TOKEN_MAX + 1, raw, sizeof raw);
	if ((rc = store_domain_token_set(cli->store, domain, token, &err)) != 0)
		return cli_store_error(rc, &err, "storing the verification token");
	return 0;
}

/* The token, made when the domain has none (a domain added before
 * issue 5).  0 or exit code. */
static int cli_token_get(struct cli *cli, const char *domain, char token[STORE_TOKEN_MAX + 1])
{
	char *err = NULL;
	int rc = store_domain_token_get(cli->store, domain, token, &err);

	if (rc == STORE_NOTFOUND) {
		free(err);
		return cli_token_make(cli, domain, token);
	}
	if (rc != 0)
		return cli_store_error(rc, &err, "reading the verification token");
	return 0;
}

/* ---- add, records ------------------------------------------------------------- */

int cli_domain_add(struct cli *cli)
{
	int verified = (cli->flags & CLI_FLAG_VERIFIED) != 0;
	char token[STORE_TOKEN_MAX + 1], *err = NULL;
	struct store_dkim_key *keys = NULL;
	struct store_tenant t;
	struct store_domain d;
	size_t n = 0;
	int rc;

	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_domain_add(cli->store, t.id, cli->args[1], verified, &err)) != 0)
		return cli_store_error(rc, &err, "adding the domain");
	/* read it back for the canonical (lower-case) name */
	if ((rc = store_domain_get(cli->store, cli->args[1], &d, &err)) != 0)
		return cli_store_error(rc, &err, "reading the domain");
	/* a failure below leaves the domain without token or keys: `domain
	 * records` makes what is missing */
	if ((rc = cli_token_make(cli, d.domain, token)) != 0 ||
	    (rc = cli_keys_make(cli, d.domain, STORE_DKIM_ACTIVE)) != 0)
		return rc;
	if ((rc = store_dkim_list(cli->store, d.domain, &keys, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing DKIM keys");
	printf("domain '%s' added to tenant '%s' (%s)\n", d.domain, t.name,
	       verified ? "verified" : "unverified");
	printf("; publish these records in the zone of %s, then run: sluice domain %s %s\n",
	       d.domain, verified ? "check" : "verify", d.domain);
	cli_print_records(cli, d.domain, token, keys, n, 1);
	cli_keys_free(&keys, n);
	return CLI_EXIT_OK;
}

int cli_domain_records(struct cli *cli)
{
	struct store *st = cli_store(cli);
	char token[STORE_TOKEN_MAX + 1], *err = NULL;
	struct store_dkim_key *keys = NULL;
	struct store_domain d;
	size_t n = 0;
	int rc, signing = 0;

	if (st == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_domain_get(st, cli->args[0], &d, &err)) != 0)
		return cli_store_error(rc, &err, "reading the domain");
	if ((rc = cli_token_get(cli, d.domain, token)) != 0)
		return rc;
	if ((rc = store_dkim_list(st, d.domain, &keys, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing DKIM keys");
	for (size_t i = 0; i < n; i++)
		signing |= keys[i].state == STORE_DKIM_ACTIVE;
	if (!signing) {
		/* a domain from before issue 5: give it keys now */
		cli_keys_free(&keys, n);
		if ((rc = cli_keys_make(cli, d.domain, STORE_DKIM_ACTIVE)) != 0)
			return rc;
		if ((rc = store_dkim_list(st, d.domain, &keys, &n, &err)) != 0)
			return cli_store_error(rc, &err, "listing DKIM keys");
	}
	printf("; records of %s (tenant '%s', %s)\n", d.domain, d.tenant,
	       d.verified ? "verified" : "unverified");
	for (size_t i = 0; i < n; i++) {
		char when[CLI_TIME_MAX];
		cli_time_iso(
		    keys[i].state == STORE_DKIM_RETIRED ? keys[i].retired : keys[i].created, when);
		printf("; selector %s: %s, %s, %s %s\n", keys[i].selector,
		       keys[i].alg == STORE_DKIM_RSA ? "rsa-sha256" : "ed25519-sha256",
		       cli_key_state(keys[i].state),
		       keys[i].state == STORE_DKIM_RETIRED ? "since" : "made", when);
	}
	cli_print_records(cli, d.domain, token, keys, n, 1);
	cli_keys_free(&keys, n);
	return CLI_EXIT_OK;
}

/* ---- DNS checks --------------------------------------------------------------- */

static int cli_dns_start(struct cli *cli, struct cli_dns *dns)
{
	char *err = NULL;

	if (cli_dns_open(&cli->cfg, dns, &err) < 0) {
		cli_error("resolver: %s", err ? err : "cannot start");
		free(err);
		return CLI_EXIT_ERROR;
	}
	return 0;
}

/* TXT name: 0 with res filled (any status), -1 out of memory. */
static int cli_txt(struct cli_dns *dns, const char *name, struct cli_dns_result *res)
{
	return cli_dns_query(dns, name, NET_DNS_TXT, res);
}

static void cli_dns_failed(struct cli_check *c, const struct cli_dns_result *res, const char *name)
{
	if (res->status == NET_DNS_NXDOMAIN || res->status == NET_DNS_NODATA)
		snprintf(c->detail, sizeof c->detail, "no TXT record at %s", name);
	else
		snprintf(c->detail, sizeof c->detail, "DNS lookup of %s failed: %s", name,
		         res->why);
}

static void cli_check_token(struct cli_dns *dns, const char *domain, const char *token,
                            struct cli_report *r)
{
	char name[STORE_DOMAIN_MAX + 32], want[STORE_TOKEN_MAX + 32];
	struct cli_dns_result res;
	struct cli_check *c;

	snprintf(name, sizeof name, "%s.%s", CLI_VERIFY_LABEL, domain);
	snprintf(want, sizeof want, "%s%s", CLI_VERIFY_PREFIX, token);
	if ((c = cli_report_add(r, "verification", name)) == NULL)
		return;
	c->status = CHECK_FAIL;
	cli_txt_line(c->fix, sizeof c->fix, name, want);
	if (cli_txt(dns, name, &res) < 0) {
		snprintf(c->detail, sizeof c->detail, "out of memory");
		return;
	}
	if (res.status != NET_DNS_OK) {
		cli_dns_failed(c, &res, name);
	} else {
		for (size_t i = 0; i < res.n; i++)
			if (strcmp(res.txt[i], want) == 0)
				c->status = CHECK_PASS;
		snprintf(c->detail, sizeof c->detail, "%s",
		         c->status == CHECK_PASS ? "token found"
		                                 : "TXT records there, none with our token");
	}
	if (c->status == CHECK_PASS)
		c->fix[0] = '\0';
	cli_dns_result_clear(&res);
}

static void cli_check_dkim(const struct cli *cli, struct cli_dns *dns, const char *domain,
                           const struct store_dkim_key *k, struct cli_report *r, int64_t now)
{
	char name[STORE_DOMAIN_MAX + 80], ours[STORE_DKIM_RECORD_MAX],
	    theirs[STORE_DKIM_RECORD_MAX];
	struct cli_dns_result res;
	struct cli_check *c;

	snprintf(name, sizeof name, "%s._domainkey.%s", k->selector, domain);
	if ((c = cli_report_add(r, "dkim", name)) == NULL)
		return;
	c->status = CHECK_FAIL;
	cli_txt_line(c->fix, sizeof c->fix, name, k->record);
	dkim_tag_value(k->record, "p", ours, sizeof ours);
	if (cli_txt(dns, name, &res) < 0) {
		snprintf(c->detail, sizeof c->detail, "out of memory");
		return;
	}
	if (res.status != NET_DNS_OK) {
		cli_dns_failed(c, &res, name);
	} else {
		for (size_t i = 0; i < res.n; i++)
			if (dkim_tag_value(res.txt[i], "p", theirs, sizeof theirs) &&
			    strcmp(theirs, ours) == 0)
				c->status = CHECK_PASS;
		if (c->status != CHECK_PASS)
			snprintf(c->detail, sizeof c->detail, "the published key (%s) is not ours",
			         cli_key_state(k->state));
	}
	if (c->status == CHECK_PASS) {
		char until[CLI_TIME_MAX];
		c->fix[0] = '\0';
		if (k->state == STORE_DKIM_RETIRED) {
			cli_time_iso(k->retired + (int64_t)cli->cfg.domains.dkim_overlap, until);
			snprintf(c->detail, sizeof c->detail,
			         "key matches (%s, retired: keep it published until %s)",
			         k->alg == STORE_DKIM_RSA ? "rsa-sha256" : "ed25519-sha256", until);
		} else {
			snprintf(c->detail, sizeof c->detail, "key matches (%s, %s)",
			         k->alg == STORE_DKIM_RSA ? "rsa-sha256" : "ed25519-sha256",
			         cli_key_state(k->state));
		}
	}
	if (k->state == STORE_DKIM_PENDING) {
		r->dkim_pending++;
		r->dkim_pending_seen += c->status == CHECK_PASS;
	}
	(void)now;
	cli_dns_result_clear(&res);
}

static int cli_spf_lookup(void *ctx, const char *name, enum spf_rrtype type, struct spf_rrset *out)
{
	static const int types[] = {NET_DNS_TXT, NET_DNS_A, NET_DNS_AAAA, NET_DNS_MX};
	struct cli_dns_result res;

	if (cli_dns_query(ctx, name, types[type], &res) < 0)
		return -1;
	out->status = res.status == NET_DNS_OK ? SPF_DNS_OK
	              : res.status == NET_DNS_NXDOMAIN || res.status == NET_DNS_NODATA
	                  ? SPF_DNS_NONE
	                  : SPF_DNS_TEMP;
	for (size_t i = 0; i < res.n && out->n < SPF_RR_MAX; i++, out->n++) {
		if (type == SPF_RR_TXT) {
			out->txt[out->n] = res.txt[i];
			res.txt[i] = NULL;
		} else if (type == SPF_RR_MX) {
			snprintf(out->name[out->n], sizeof out->name[0], "%s", res.names[i].name);
		} else {
			out->ip[out->n].family = res.addrs[i].family;
			memcpy(out->ip[out->n].b, res.addrs[i].b, 16);
		}
	}
	cli_dns_result_clear(&res);
	return 0;
}

/* SPF must pass for each of sluice's sending addresses (a network: its
 * first address).  1 when it does for all. */
static int cli_check_spf(const struct cli *cli, struct cli_dns *dns, const char *domain,
                         struct cli_report *r)
{
	const char *addrs = cli->cfg.domains.sending_addresses;
	char copy[1024], *save = NULL, value[1100];
	struct cli_check *c = cli_report_add(r, "spf", domain);
	int all = 1, tried = 0;

	if (c == NULL)
		return 0;
	if (addrs == NULL || util_strlcpy(copy, addrs, sizeof copy) >= sizeof copy) {
		c->status = CHECK_SKIP;
		snprintf(c->detail, sizeof c->detail,
		         "no sending_addresses in the configuration: nothing to check");
		return 0;
	}
	c->status = CHECK_PASS;
	for (char *t = strtok_r(copy, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		char why[256], *slash = strchr(t, '/');
		struct spf_ip ip;
		enum spf_result res;
		size_t k = strlen(c->detail);

		if (slash != NULL)
			*slash = '\0';
		if (spf_ip_parse(t, &ip) < 0)
			continue;
		tried++;
		res = spf_check_host(cli_spf_lookup, dns, &ip, domain, NULL, why, sizeof why);
		if (res != SPF_PASS) {
			all = 0;
			c->status = CHECK_FAIL;
		}
		snprintf(c->detail + k, sizeof c->detail - k, "%s%s: %s (%s)", k ? "; " : "", t,
		         spf_result_name(res), why);
	}
	if (c->status == CHECK_FAIL) {
		cli_spf_value(cli, value, sizeof value);
		snprintf(
		    c->fix, sizeof c->fix,
		    "authorise sluice in the domain's one SPF record, e.g. %s. %d IN TXT \"%s\"",
		    domain, CLI_TTL, value);
	}
	return all && tried > 0;
}

/* _dmarc.DOMAIN, else the parents' (the organizational domain, without
 * the Public Suffix List: every parent of two labels or more). */
static void cli_check_dmarc(const struct cli *cli, struct cli_dns *dns, const char *domain,
                            int dkim_ok, int spf_ok, struct cli_report *r)
{
	char name[STORE_DOMAIN_MAX + 16], p[32], value[1100], rua[256];
	const char *d = domain;
	struct cli_check *c;
	struct cli_dns_result res;
	int found = 0;

	snprintf(name, sizeof name, "_dmarc.%s", domain);
	if ((c = cli_report_add(r, "dmarc", name)) == NULL)
		return;
	c->status = CHECK_FAIL;
	cli_dmarc_value(cli, domain, value, sizeof value);
	cli_txt_line(c->fix, sizeof c->fix, name, value);
	while (d != NULL && strchr(d, '.') != NULL && !found) {
		snprintf(name, sizeof name, "_dmarc.%s", d);
		if (cli_txt(dns, name, &res) < 0)
			return;
		if (res.status == NET_DNS_TEMPFAIL || res.status == NET_DNS_BOGUS) {
			cli_dns_failed(c, &res, name);
			cli_dns_result_clear(&res);
			return;
		}
		for (size_t i = 0; i < res.n && !found; i++) {
			if (strncmp(res.txt[i], "v=DMARC1", 8) != 0)
				continue;
			found = 1;
			if (!dkim_tag_value(res.txt[i], "p", p, sizeof p) ||
			    (strcmp(p, "none") != 0 && strcmp(p, "quarantine") != 0 &&
			     strcmp(p, "reject") != 0)) {
				snprintf(c->detail, sizeof c->detail, "%s: no valid p= policy",
				         name);
			} else if (!dkim_ok && !spf_ok) {
				snprintf(c->detail, sizeof c->detail,
				         "%s: p=%s, but neither DKIM nor SPF passes for %s, so "
				         "DMARC fails: fix those first",
				         name, p, domain);
				c->fix[0] = '\0';
			} else {
				c->status = CHECK_PASS;
				c->fix[0] = '\0';
				snprintf(c->detail, sizeof c->detail,
				         "%s: p=%s, aligned through %s%s%s", name, p,
				         dkim_ok ? "DKIM (d=" : "", dkim_ok ? domain : "",
				         dkim_ok && spf_ok ? ") and SPF"
				         : dkim_ok         ? ")"
				                           : "SPF");
				if (!dkim_tag_value(res.txt[i], "rua", rua, sizeof rua)) {
					size_t k = strlen(c->detail);
					snprintf(c->detail + k, sizeof c->detail - k,
					         "; no rua=: you get no reports");
				}
			}
		}
		cli_dns_result_clear(&res);
		d = strchr(d, '.');
		if (d != NULL)
			d++;
	}
	if (!found)
		snprintf(c->detail, sizeof c->detail, "no DMARC record at _dmarc.%s", domain);
}

/* Every check of domain into r. */
static int cli_check_all(struct cli *cli, struct cli_dns *dns, const struct store_domain *d,
                         const char *token, const struct store_dkim_key *keys, size_t n,
                         struct cli_report *r)
{
	int64_t now = util_wall_seconds();
	int dkim_ok = 0, spf_ok;
	size_t first;

	cli_check_token(dns, d->domain, token, r);
	first = r->n;
	for (size_t i = 0; i < n; i++)
		if (cli_key_published(cli, &keys[i], now))
			cli_check_dkim(cli, dns, d->domain, &keys[i], r, now);
	/* DKIM passes when every active key is in DNS */
	for (size_t i = 0, j = first; i < n; i++) {
		if (!cli_key_published(cli, &keys[i], now))
			continue;
		if (keys[i].state == STORE_DKIM_ACTIVE)
			dkim_ok = dkim_ok >= 0 && r->c[j].status == CHECK_PASS ? 1 : -1;
		j++;
	}
	if (dkim_ok < 0)
		dkim_ok = 0;
	spf_ok = cli_check_spf(cli, dns, d->domain, r);
	cli_check_dmarc(cli, dns, d->domain, dkim_ok, spf_ok, r);
	return 0;
}

/* Pending keys all in DNS: they sign from now on, the active ones retire.
 * 1 switched, 0 nothing to do, or -exit code. */
static int cli_switch_keys(struct cli *cli, const char *domain, const struct store_dkim_key *keys,
                           size_t n)
{
	int64_t now = util_wall_seconds();
	char *err = NULL, until[CLI_TIME_MAX];
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (keys[i].state != STORE_DKIM_ACTIVE)
			continue;
		rc = store_dkim_set_state(cli->store, domain, keys[i].selector, STORE_DKIM_RETIRED,
		                          now, &err);
		if (rc != 0)
			return -cli_store_error(rc, &err, "retiring a DKIM key");
	}
	for (size_t i = 0; i < n; i++) {
		if (keys[i].state != STORE_DKIM_PENDING)
			continue;
		rc = store_dkim_set_state(cli->store, domain, keys[i].selector, STORE_DKIM_ACTIVE,
		                          now, &err);
		if (rc != 0)
			return -cli_store_error(rc, &err, "activating a DKIM key");
		printf("dkim: selector %s is in DNS: signing with it now\n", keys[i].selector);
	}
	cli_time_iso(now + (int64_t)cli->cfg.domains.dkim_overlap, until);
	for (size_t i = 0; i < n; i++)
		if (keys[i].state == STORE_DKIM_ACTIVE)
			printf("dkim: selector %s retired: keep its record published until %s\n",
			       keys[i].selector, until);
	return 1;
}

static json_t *cli_report_json(const char *domain, const struct cli_report *r, int ok)
{
	json_t *o = json_object(), *a = json_array();
	int bad = o == NULL || a == NULL || json_object_set_new(o, "checks", a) < 0;

	if (bad) {
		json_decref(a);
		json_decref(o);
		return NULL;
	}
	bad |= json_object_set_new(o, "domain", json_string(domain)) < 0;
	bad |= json_object_set_new(o, "ok", json_boolean(ok)) < 0;
	for (size_t i = 0; !bad && i < r->n; i++) {
		const struct cli_check *c = &r->c[i];
		bad = json_array_append_new(
		          a, json_pack("{s:s, s:s, s:s, s:o, s:o}", "check", c->what, "name",
		                       c->name, "status", cli_check_status_name(c->status),
		                       "detail", cli_json_string(c->detail), "fix",
		                       c->fix[0] ? cli_json_string(c->fix) : json_null())) < 0;
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void cli_report_print(const struct cli_report *r)
{
	char safe[600];

	for (size_t i = 0; i < r->n; i++) {
		const struct cli_check *c = &r->c[i];
		printf("%-4s %-12s %s\n", cli_check_status_name(c->status), c->what, c->name);
		printf("     %s\n", cli_safe(c->detail, safe, sizeof safe));
		if (c->fix[0] != '\0')
			printf("     fix: %s\n", c->fix);
	}
}

/* Everything `check` and `rotate-dkim` need about a domain. */
struct cli_domain_state {
	struct store_domain d;
	char token[STORE_TOKEN_MAX + 1];
	struct store_dkim_key *keys;
	size_t n;
};

static int cli_domain_load(struct cli *cli, const char *name, struct cli_domain_state *s)
{
	struct store *st = cli_store(cli);
	char *err = NULL;
	int rc;

	memset(s, 0, sizeof *s);
	if (st == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_domain_get(st, name, &s->d, &err)) != 0)
		return cli_store_error(rc, &err, "reading the domain");
	if ((rc = cli_token_get(cli, s->d.domain, s->token)) != 0)
		return rc;
	if ((rc = store_dkim_list(st, s->d.domain, &s->keys, &s->n, &err)) != 0)
		return cli_store_error(rc, &err, "listing DKIM keys");
	return 0;
}

int cli_domain_check(struct cli *cli)
{
	struct cli_domain_state s;
	struct cli_report *r = NULL;
	struct cli_dns dns;
	int rc, ok = 1, json = (cli->flags & CLI_FLAG_JSON) != 0;

	if ((rc = cli_domain_load(cli, cli->args[0], &s)) != 0)
		goto done;
	if ((rc = cli_dns_start(cli, &dns)) != 0)
		goto done;
	if ((r = calloc(1, sizeof *r)) == NULL) {
		rc = cli_error("out of memory");
		cli_dns_close(&dns);
		goto done;
	}
	cli_check_all(cli, &dns, &s.d, s.token, s.keys, s.n, r);
	cli_dns_close(&dns);
	for (size_t i = 0; i < r->n; i++)
		ok &= r->c[i].status != CHECK_FAIL;
	if (json) {
		rc = cli_json_print(cli_report_json(s.d.domain, r, ok));
	} else {
		printf("domain %s (tenant '%s', %s)\n", s.d.domain, s.d.tenant,
		       s.d.verified ? "verified" : "unverified");
		cli_report_print(r);
		rc = CLI_EXIT_OK;
	}
	/* the rotation's switch: the new selectors are in DNS now */
	if (r->dkim_pending > 0 && r->dkim_pending_seen == r->dkim_pending) {
		int sw = cli_switch_keys(cli, s.d.domain, s.keys, s.n);
		if (sw < 0)
			rc = -sw;
	}
	if (rc == CLI_EXIT_OK && !ok)
		rc = CLI_EXIT_ERROR;
done:
	free(r);
	cli_keys_free(&s.keys, s.n);
	return rc;
}

int cli_domain_verify(struct cli *cli)
{
	struct cli_domain_state s;
	struct cli_report r;
	struct cli_dns dns;
	char *err = NULL;
	int rc;

	if ((rc = cli_domain_load(cli, cli->args[0], &s)) != 0)
		goto done;
	if (s.d.verified) {
		printf("domain '%s' of tenant '%s' is already verified\n", s.d.domain, s.d.tenant);
		goto done;
	}
	if (!(cli->flags & CLI_FLAG_FORCE)) {
		if ((rc = cli_dns_start(cli, &dns)) != 0)
			goto done;
		memset(&r, 0, sizeof r);
		cli_check_token(&dns, s.d.domain, s.token, &r);
		cli_dns_close(&dns);
		if (r.n == 0 || r.c[0].status != CHECK_PASS) {
			printf("domain '%s' not verified: %s\n", s.d.domain,
			       r.n ? r.c[0].detail : "out of memory");
			if (r.n && r.c[0].fix[0])
				printf("publish: %s\n(or, as the operator: sluice domain verify %s "
				       "--force)\n",
				       r.c[0].fix, s.d.domain);
			rc = CLI_EXIT_ERROR;
			goto done;
		}
	}
	if ((rc = store_domain_set_verified(cli->store, s.d.domain, 1, &err)) != 0) {
		rc = cli_store_error(rc, &err, "verifying the domain");
		goto done;
	}
	printf("domain '%s' of tenant '%s' verified%s\n", s.d.domain, s.d.tenant,
	       cli->flags & CLI_FLAG_FORCE ? " (forced, DNS not checked)"
	                                   : " (token found in DNS)");
done:
	cli_keys_free(&s.keys, s.n);
	return rc;
}

int cli_domain_rotate_dkim(struct cli *cli)
{
	int64_t now = util_wall_seconds();
	struct cli_domain_state s;
	struct cli_report *r = NULL;
	struct cli_dns dns;
	size_t pending = 0, wiped = 0;
	char *err = NULL;
	int rc;

	if ((rc = cli_domain_load(cli, cli->args[0], &s)) != 0)
		goto done;
	/* overlaps that ended: the old private keys go, their records may */
	for (size_t i = 0; i < s.n; i++) {
		const struct store_dkim_key *k = &s.keys[i];
		if (k->state == STORE_DKIM_PENDING)
			pending++;
		if (k->state != STORE_DKIM_RETIRED || k->pem[0] == '\0' ||
		    now < k->retired + (int64_t)cli->cfg.domains.dkim_overlap)
			continue;
		if ((rc = store_dkim_wipe(cli->store, s.d.domain, k->selector, &err)) != 0) {
			rc = cli_store_error(rc, &err, "wiping a retired key");
			goto done;
		}
		printf("dkim: selector %s: overlap over, key deleted; remove its record "
		       "%s._domainkey.%s\n",
		       k->selector, k->selector, s.d.domain);
		wiped++;
	}
	if (pending == 0 && wiped > 0) {
		/* this run finished the last rotation; the next one starts anew */
		rc = CLI_EXIT_OK;
		goto done;
	}
	if (pending == 0) {
		/* step 1: new keys, published first */
		cli_keys_free(&s.keys, s.n);
		if ((rc = cli_keys_make(cli, s.d.domain, STORE_DKIM_PENDING)) != 0)
			goto done;
		if ((rc = store_dkim_list(cli->store, s.d.domain, &s.keys, &s.n, &err)) != 0) {
			rc = cli_store_error(rc, &err, "listing DKIM keys");
			goto done;
		}
		printf(
		    "dkim: new selectors for %s; publish these records (the current ones stay):\n",
		    s.d.domain);
		for (size_t i = 0; i < s.n; i++)
			if (s.keys[i].state == STORE_DKIM_PENDING)
				cli_print_records(cli, s.d.domain, NULL, &s.keys[i], 1, 0);
		printf("then run `sluice domain rotate-dkim %s` (or `domain check`) again: signing "
		       "switches once DNS shows them\n",
		       s.d.domain);
		rc = CLI_EXIT_OK;
		goto done;
	}
	/* step 2: switch when DNS shows every pending key */
	if ((rc = cli_dns_start(cli, &dns)) != 0)
		goto done;
	if ((r = calloc(1, sizeof *r)) == NULL) {
		cli_dns_close(&dns);
		rc = cli_error("out of memory");
		goto done;
	}
	for (size_t i = 0; i < s.n; i++)
		if (s.keys[i].state == STORE_DKIM_PENDING)
			cli_check_dkim(cli, &dns, s.d.domain, &s.keys[i], r, now);
	cli_dns_close(&dns);
	if (r->dkim_pending_seen != r->dkim_pending) {
		printf("dkim: new selectors not in DNS yet; signing stays with the current keys\n");
		cli_report_print(r);
		rc = CLI_EXIT_ERROR;
		goto done;
	}
	rc = cli_switch_keys(cli, s.d.domain, s.keys, s.n);
	rc = rc < 0 ? -rc : CLI_EXIT_OK;
done:
	free(r);
	cli_keys_free(&s.keys, s.n);
	return rc;
}
