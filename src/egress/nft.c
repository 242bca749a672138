/*
 * egress nft: sluice's table in and out of the kernel through libnftables
 * (the library behind the nft tool, Debian's libnftables1).
 *
 * Apply hands the rendered transaction to nft_run_cmd_from_buffer(): the
 * library parses it whole, then sends every command as one netlink batch,
 * which the kernel commits or refuses as a unit.  Listing asks for the
 * table alone (never the whole ruleset: other tables are not ours), in
 * JSON for status.c, or as text for people.
 */
#include "egress/egress_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

/* nft's error text without its trailing newlines. */
static int egress_nft_err(char **err_r, struct nft_ctx *nft, const char *doing)
{
	const char *e = nft_ctx_get_error_buffer(nft);
	size_t len = e ? strlen(e) : 0;

	while (len > 0 && (e[len - 1] == '\n' || e[len - 1] == ' '))
		len--;
	if (len == 0)
		return egress_seterr(err_r, "nft: %s failed (CAP_NET_ADMIN needed?)", doing);
	return egress_seterr(err_r, "nft: %s: %.*s", doing, (int)len, e);
}

static struct nft_ctx *egress_nft_new(unsigned flags, char **err_r)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);

	if (nft == NULL) {
		egress_seterr(err_r, "nft: cannot create a libnftables context");
		return NULL;
	}
	if (nft_ctx_buffer_output(nft) != 0 || nft_ctx_buffer_error(nft) != 0) {
		nft_ctx_free(nft);
		egress_seterr(err_r, "nft: cannot buffer libnftables output");
		return NULL;
	}
	nft_ctx_output_set_flags(nft, flags);
	return nft;
}

int egress_nft_apply(const char *text, char **err_r)
{
	struct nft_ctx *nft = egress_nft_new(0, err_r);
	int rc;

	if (nft == NULL)
		return -1;
	rc = nft_run_cmd_from_buffer(nft, text);
	if (rc != 0)
		egress_nft_err(err_r, nft, "loading table " EGRESS_FAMILY " " EGRESS_TABLE);
	nft_ctx_free(nft);
	return rc == 0 ? 0 : -1;
}

/* list the table; 1 when it is not there */
static int egress_nft_list_as(unsigned flags, char **out_r, char **err_r)
{
	struct nft_ctx *nft = egress_nft_new(flags, err_r);
	const char *out, *e;
	int rc;

	*out_r = NULL;
	if (nft == NULL)
		return -1;
	rc = nft_run_cmd_from_buffer(nft, "list table " EGRESS_FAMILY " " EGRESS_TABLE);
	if (rc != 0) {
		e = nft_ctx_get_error_buffer(nft);
		if (e != NULL && strstr(e, "No such file or directory") != NULL) {
			nft_ctx_free(nft);
			return 1;
		}
		egress_nft_err(err_r, nft, "listing table " EGRESS_FAMILY " " EGRESS_TABLE);
		nft_ctx_free(nft);
		return -1;
	}
	out = nft_ctx_get_output_buffer(nft);
	*out_r = strdup(out ? out : "");
	nft_ctx_free(nft);
	if (*out_r == NULL)
		return egress_seterr(err_r, "nft: out of memory");
	return 0;
}

int egress_nft_list(char **json_r, char **err_r)
{
	return egress_nft_list_as(NFT_CTX_OUTPUT_JSON, json_r, err_r);
}

int egress_nft_list_text(char **text_r, char **err_r)
{
	return egress_nft_list_as(0, text_r, err_r);
}

int egress_blocked_tenants(const struct egress_owner *owners, size_t nowners,
                           struct egress_tenant_count **list_r, size_t *n_r, char **err_r)
{
	struct egress_status st;
	char *json = NULL;
	int rc;

	*list_r = NULL;
	*n_r = 0;
	rc = egress_nft_list(&json, err_r);
	if (rc == 1)
		return 0;
	if (rc < 0)
		return -1;
	rc = egress_status_parse(json, strlen(json), util_wall_seconds(), &st, err_r);
	free(json);
	if (rc < 0)
		return -1;
	egress_sources_name(st.blocked, st.nblocked, owners, nowners);
	rc = egress_tenant_counts(st.blocked, st.nblocked, list_r, n_r);
	egress_status_free(&st);
	if (rc < 0)
		return egress_seterr(err_r, "egress: out of memory");
	return 0;
}
