/*
 * signer: the daemon's DKIM keys (see signer.h).  Keys come from the
 * store as PEM once per store generation and are kept parsed (OpenSSL
 * EVP_PKEYs), sorted by domain; a message costs a binary search and two
 * signatures.  A key that does not parse is skipped with a log line, so
 * one bad row never stops signing for the others.
 */
#include "cmd/signer.h"
#include "message/message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIGNER_KEYS_PER_DOMAIN 2 /* one per algorithm */

struct signer_domain {
	char domain[STORE_DOMAIN_MAX + 1];
	struct {
		char selector[STORE_SELECTOR_MAX + 1];
		struct dkim_key *key;
	} k[SIGNER_KEYS_PER_DOMAIN]; /* [alg]; key NULL: none */
};

struct signer {
	struct signer_domain *domains;
	size_t n;
	int64_t generation; /* the store's: anything changed */
	uint64_t version;   /* the keys': they changed */
	int loaded;
	char used[2 * (STORE_SELECTOR_MAX + 1)];
};

struct signer *signer_new(void)
{
	return calloc(1, sizeof(struct signer));
}

static void signer_domains_free(struct signer_domain *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t a = 0; a < SIGNER_KEYS_PER_DOMAIN; a++)
			dkim_key_free(&d[i].k[a].key);
	free(d);
}

void signer_free(struct signer **s)
{
	if (*s == NULL)
		return;
	signer_domains_free((*s)->domains, (*s)->n);
	free(*s);
	*s = NULL;
}

static int signer_cmp(const void *a, const void *b)
{
	return strcmp(((const struct signer_domain *)a)->domain,
		      ((const struct signer_domain *)b)->domain);
}

int signer_refresh(struct signer *s, struct store *st)
{
	struct store_dkim_key *rows = NULL;
	struct signer_domain *list;
	size_t n = 0, k = 0, keys = 0;
	char *err = NULL;
	int64_t gen = store_generation(st);
	uint64_t version = 0;

	if (s->loaded && gen == s->generation)
		return 0;
	/* most store changes (usage, tenants) leave the keys alone: parse
	 * them again only when their table changed */
	if (store_dkim_version(st, &version, &err) < 0) {
		log_err("dkim keys version failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	if (s->loaded && version == s->version) {
		s->generation = gen;
		return 0;
	}
	if (store_dkim_list(st, NULL, &rows, &n, &err) != 0) {
		log_err("dkim keys reload failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	list = calloc(n ? n : 1, sizeof *list);
	if (list == NULL) {
		util_wipe(rows, n * sizeof *rows);
		free(rows);
		return -1;
	}
	/* rows are ordered by domain, then id: a later active key of the
	 * same algorithm (mid-rotation) replaces an earlier one */
	for (size_t i = 0; i < n; i++) {
		const struct store_dkim_key *r = &rows[i];
		struct dkim_key *key = NULL;
		const char *why = NULL;
		int alg = r->alg == STORE_DKIM_ED25519 ? 1 : 0;

		if (k == 0 || strcmp(list[k - 1].domain, r->domain) != 0)
			util_strlcpy(list[k++].domain, r->domain, sizeof list[0].domain);
		if (dkim_key_from_pem(r->pem, strlen(r->pem), &key, &why) < 0) {
			log_warn("dkim key skipped domain=%s selector=%s reason=\"%s\"", r->domain,
				 r->selector, why);
			continue;
		}
		dkim_key_free(&list[k - 1].k[alg].key);
		list[k - 1].k[alg].key = key;
		util_strlcpy(list[k - 1].k[alg].selector, r->selector,
			     sizeof list[0].k[0].selector);
		keys++;
	}
	util_wipe(rows, n * sizeof *rows);
	free(rows);
	qsort(list, k, sizeof *list, signer_cmp);
	signer_domains_free(s->domains, s->n);
	s->domains = list;
	s->n = k;
	s->generation = gen;
	s->version = version;
	s->loaded = 1;
	log_info("dkim keys loaded domains=%zu keys=%zu", k, keys);
	return 0;
}

int signer_sign(struct signer *s, const char *domain, const char *msg, size_t len, int64_t now,
		struct buf *sigs_out, const char **why_r)
{
	struct signer_domain want, *d;
	size_t orig = sigs_out->len;
	int count = 0;

	s->used[0] = '\0';
	if (util_strlcpy(want.domain, domain, sizeof want.domain) >= sizeof want.domain)
		return 0;
	d = bsearch(&want, s->domains, s->n, sizeof *s->domains, signer_cmp);
	if (d == NULL)
		return 0;
	for (size_t a = 0; a < SIGNER_KEYS_PER_DOMAIN; a++) {
		struct dkim_sign_params p = {
		    .domain = d->domain,
		    .selector = d->k[a].selector,
		    .timestamp = now,
		};
		size_t ulen = strlen(s->used);

		if (d->k[a].key == NULL)
			continue;
		if (dkim_sign(d->k[a].key, &p, msg, len, sigs_out, why_r) < 0) {
			sigs_out->len = orig;
			if (sigs_out->data != NULL)
				sigs_out->data[orig] = '\0';
			return -1;
		}
		snprintf(s->used + ulen, sizeof s->used - ulen, "%s%s", ulen ? "," : "",
			 d->k[a].selector);
		count++;
	}
	return count;
}

const char *signer_selectors(const struct signer *s)
{
	return s->used;
}
