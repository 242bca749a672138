/*
 * sluice tenant|domain|network: the operator's view of the store.
 *
 * Every check of a name, domain or CIDR is the store's (store_check.c),
 * so the CLI accepts exactly what the daemon will; the store's error texts
 * name the bad input and are printed as they are.  A tenant's SMTP login
 * is its name: `tenant add NAME` makes both, `tenant passwd NAME` sets
 * that login's password (making the login again if it was removed).
 */
#include "cmd/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cli_status(int suspended)
{
	return suspended ? "suspended" : "active";
}

/* ---- tenant -------------------------------------------------------------------- */

/* The password of a login (from stdin or generated), hashed.  Read before
 * any change to the store, so a bad password changes nothing.  0 or an
 * exit code; wipe password and hash after use. */
static int cli_new_password(struct cli *cli, char password[AUTH_PASSWORD_MAX + 1],
                            char hash[AUTH_HASH_MAX], int *generated_r)
{
	int rc;

	*generated_r = 0;
	if (auth_init() < 0)
		return cli_error("libsodium initialisation failed");
	if ((rc = cli_password(cli, password, generated_r)) != 0)
		return rc;
	if (auth_hash_password(password, hash) < 0) {
		util_wipe(password, AUTH_PASSWORD_MAX + 1);
		return cli_error("hashing the password failed (out of memory?)");
	}
	return 0;
}

/* Store hash as the login t->name of tenant t; print the outcome, and
 * the password when it was generated (the only time anyone sees it). */
static int cli_set_password(struct cli *cli, const struct store_tenant *t, const char *password,
                            const char *hash, int generated, const char *verb)
{
	char *err = NULL;
	int rc;

	rc = store_credential_set(cli->store, t->id, t->name, hash, &err);
	if (rc != 0)
		return cli_store_error(rc, &err, "setting the password");
	printf("tenant '%s' %s\n", t->name, verb);
	if (generated)
		printf(
		    "  user:      %s\n"
		    "  password:  %s   (shown once; set another with: sluice tenant passwd %s)\n",
		    t->name, password, t->name);
	return CLI_EXIT_OK;
}

static int cli_tenant_add_hashed(struct cli *cli, const char *password, const char *hash,
                                 int generated)
{
	const char *name = cli->args[0];
	struct store_credential cred;
	struct store_tenant t;
	struct store *st;
	char *err = NULL;
	int rc;

	if ((st = cli_store(cli)) == NULL)
		return CLI_EXIT_ERROR;
	/* Refuse a login name another tenant holds before making the tenant:
	 * the store has no tenant removal to undo a half-made one. */
	rc = store_credential_lookup(st, name, &cred, &err);
	free(err);
	err = NULL;
	if (rc == 0) {
		struct store_tenant owner;
		if (store_tenant_get_id(st, cred.tenant_id, &owner, &err) == 0 &&
		    strcmp(owner.name, name) == 0)
			return cli_error("tenant '%s' already exists", name);
		free(err);
		return cli_error("user '%s' already exists for another tenant", name);
	}
	if (rc < 0)
		return cli_store_error(rc, &err, "looking up the user");
	if ((rc = store_tenant_add(st, name, &t.id, &err)) != 0)
		return cli_store_error(rc, &err, "adding the tenant");
	if ((rc = store_tenant_get_id(st, t.id, &t, &err)) != 0)
		return cli_store_error(rc, &err, "reading the tenant");
	return cli_set_password(cli, &t, password, hash, generated, "added");
}

int cli_tenant_add(struct cli *cli)
{
	char password[AUTH_PASSWORD_MAX + 1], hash[AUTH_HASH_MAX];
	int generated, rc;

	if ((rc = cli_new_password(cli, password, hash, &generated)) != 0)
		return rc;
	rc = cli_tenant_add_hashed(cli, password, hash, generated);
	util_wipe(password, sizeof password);
	util_wipe(hash, sizeof hash);
	return rc;
}

int cli_tenant_passwd(struct cli *cli)
{
	char password[AUTH_PASSWORD_MAX + 1], hash[AUTH_HASH_MAX];
	struct store_tenant t;
	int generated, rc;

	if ((rc = cli_new_password(cli, password, hash, &generated)) != 0)
		return rc;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) == 0)
		rc = cli_set_password(cli, &t, password, hash, generated, "password changed");
	util_wipe(password, sizeof password);
	util_wipe(hash, sizeof hash);
	return rc;
}

static json_t *cli_tenant_json(const struct store_tenant *t)
{
	char when[CLI_TIME_MAX];

	cli_time_iso(t->created, when);
	return json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)t->id, "name", t->name, "status",
	                 cli_status(t->suspended), "created", when);
}

int cli_tenant_list(struct cli *cli)
{
	struct store_tenant *list = NULL;
	struct store *st = cli_store(cli);
	char when[CLI_TIME_MAX], *err = NULL;
	size_t n = 0, width = 4;
	int rc;

	if (st == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_tenant_list(st, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing tenants");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			if (json_array_append_new(a, cli_tenant_json(&list[i])) < 0) {
				json_decref(a);
				a = NULL;
			}
		free(list);
		return cli_json_print(a);
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i].name) > width)
			width = strlen(list[i].name);
	if (n == 0)
		printf("no tenants\n");
	else
		printf("%-6s %-*s %-9s %s\n", "ID", (int)width, "NAME", "STATUS", "CREATED");
	for (size_t i = 0; i < n; i++) {
		cli_time_iso(list[i].created, when);
		printf("%-6lld %-*s %-9s %s\n", (long long)list[i].id, (int)width, list[i].name,
		       cli_status(list[i].suspended), when);
	}
	free(list);
	return CLI_EXIT_OK;
}

struct cli_tenant_view {
	struct store_tenant t;
	struct store_credential *creds;
	size_t ncreds;
	struct store_domain *domains;
	size_t ndomains;
	struct store_network *nets;
	size_t nnets;
};

/* The arrays are put into the object first, so one decref frees all. */
static json_t *cli_tenant_view_json(const struct cli_tenant_view *v)
{
	json_t *o = cli_tenant_json(&v->t), *creds = json_array(), *doms = json_array(),
	       *nets = json_array();
	int bad;

	bad = o == NULL || json_object_set_new(o, "credentials", creds) < 0;
	bad |= o == NULL || json_object_set_new(o, "domains", doms) < 0;
	bad |= o == NULL || json_object_set_new(o, "networks", nets) < 0;
	for (size_t i = 0; !bad && i < v->ncreds; i++)
		bad = json_array_append_new(
		          creds, json_pack("{s:s, s:s}", "username", v->creds[i].username, "status",
		                           cli_status(v->creds[i].suspended))) < 0;
	for (size_t i = 0; !bad && i < v->ndomains; i++)
		bad = json_array_append_new(doms,
		                            json_pack("{s:s, s:b}", "domain", v->domains[i].domain,
		                                      "verified", v->domains[i].verified)) < 0;
	for (size_t i = 0; !bad && i < v->nnets; i++)
		bad = json_array_append_new(nets, json_pack("{s:s}", "cidr", v->nets[i].cidr)) < 0;
	if (bad) {
		if (o == NULL) {
			json_decref(creds);
			json_decref(doms);
			json_decref(nets);
		}
		json_decref(o);
		return NULL;
	}
	return o;
}

static void cli_tenant_view_print(const struct cli_tenant_view *v)
{
	char when[CLI_TIME_MAX];

	cli_time_iso(v->t.created, when);
	printf("id:          %lld\n"
	       "name:        %s\n"
	       "status:      %s\n"
	       "created:     %s\n",
	       (long long)v->t.id, v->t.name, cli_status(v->t.suspended), when);
	printf("credentials:%s\n", v->ncreds ? "" : " none");
	for (size_t i = 0; i < v->ncreds; i++)
		printf("  %s (%s)\n", v->creds[i].username, cli_status(v->creds[i].suspended));
	printf("domains:%s\n", v->ndomains ? "" : "     none");
	for (size_t i = 0; i < v->ndomains; i++)
		printf("  %s (%s)\n", v->domains[i].domain,
		       v->domains[i].verified ? "verified" : "unverified");
	printf("networks:%s\n", v->nnets ? "" : "    none");
	for (size_t i = 0; i < v->nnets; i++)
		printf("  %s\n", v->nets[i].cidr);
}

int cli_tenant_show(struct cli *cli)
{
	struct cli_tenant_view v;
	char *err = NULL;
	int rc;

	memset(&v, 0, sizeof v);
	if ((rc = cli_tenant_find(cli, cli->args[0], &v.t)) != 0)
		return rc;
	if ((rc = store_credential_list(cli->store, v.t.id, &v.creds, &v.ncreds, &err)) != 0 ||
	    (rc = store_domain_list(cli->store, v.t.id, &v.domains, &v.ndomains, &err)) != 0 ||
	    (rc = store_network_list(cli->store, v.t.id, &v.nets, &v.nnets, &err)) != 0) {
		rc = cli_store_error(rc, &err, "reading the tenant");
		goto done;
	}
	if (cli->flags & CLI_FLAG_JSON)
		rc = cli_json_print(cli_tenant_view_json(&v));
	else
		cli_tenant_view_print(&v);
done:
	free(v.creds);
	free(v.domains);
	free(v.nets);
	return rc;
}

static int cli_tenant_set_suspended(struct cli *cli, int suspended)
{
	struct store *st = cli_store(cli);
	struct store_tenant t;
	char *err = NULL;
	int rc;

	if (st == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = store_tenant_get(st, cli->args[0], &t, &err)) != 0)
		return cli_store_error(rc, &err, "reading the tenant");
	if (t.suspended == suspended) {
		printf("tenant '%s' is already %s\n", t.name, cli_status(suspended));
		return CLI_EXIT_OK;
	}
	if ((rc = store_tenant_set_suspended(st, t.name, suspended, &err)) != 0)
		return cli_store_error(rc, &err, suspended ? "suspending" : "resuming");
	printf("tenant '%s' %s\n", t.name, suspended ? "suspended" : "resumed");
	return CLI_EXIT_OK;
}

/* A suspended tenant loses its port-25 egress exceptions (docs/egress.md);
 * with egress_apply = on the table is reloaded, through an nft helper
 * started before the store is opened (it may drop root). */
int cli_tenant_suspend(struct cli *cli)
{
	struct cli_nft *nft = NULL;
	int rc;

	if (cli->cfg.egress.apply_on_change && (rc = cli_nft_start(&nft)) != 0)
		return rc;
	rc = cli_tenant_set_suspended(cli, 1);
	if (rc == CLI_EXIT_OK)
		rc = cli_egress_tenant_suspended(cli, cli->args[0], nft);
	cli_nft_stop(&nft);
	return rc;
}

int cli_tenant_resume(struct cli *cli)
{
	return cli_tenant_set_suspended(cli, 0);
}

/* ---- domain ---------------------------------------------------------------------- */

/* domain add and verify: cli_domain.c */

/* The tenant id for an optional TENANT argument: 0 (every tenant) when absent. */
static int cli_optional_tenant(struct cli *cli, int64_t *id_r)
{
	struct store_tenant t;
	int rc;

	*id_r = 0;
	if (cli->nargs == 0)
		return cli_store(cli) ? 0 : CLI_EXIT_ERROR;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	*id_r = t.id;
	return 0;
}

int cli_domain_list(struct cli *cli)
{
	struct store_domain *list = NULL;
	char when[CLI_TIME_MAX], *err = NULL;
	size_t n = 0, dw = 6, tw = 6;
	int64_t tenant_id;
	int rc;

	if ((rc = cli_optional_tenant(cli, &tenant_id)) != 0)
		return rc;
	if ((rc = store_domain_list(cli->store, tenant_id, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing domains");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++) {
			cli_time_iso(list[i].created, when);
			if (json_array_append_new(
			        a, json_pack("{s:s, s:s, s:b, s:s}", "domain", list[i].domain,
			                     "tenant", list[i].tenant, "verified", list[i].verified,
			                     "created", when)) < 0) {
				json_decref(a);
				a = NULL;
			}
		}
		free(list);
		return cli_json_print(a);
	}
	for (size_t i = 0; i < n; i++) {
		if (strlen(list[i].domain) > dw)
			dw = strlen(list[i].domain);
		if (strlen(list[i].tenant) > tw)
			tw = strlen(list[i].tenant);
	}
	if (n == 0)
		printf("no domains\n");
	else
		printf("%-*s %-*s %-10s %s\n", (int)dw, "DOMAIN", (int)tw, "TENANT", "VERIFIED",
		       "CREATED");
	for (size_t i = 0; i < n; i++) {
		cli_time_iso(list[i].created, when);
		printf("%-*s %-*s %-10s %s\n", (int)dw, list[i].domain, (int)tw, list[i].tenant,
		       list[i].verified ? "yes" : "no", when);
	}
	free(list);
	return CLI_EXIT_OK;
}

int cli_domain_remove(struct cli *cli)
{
	struct store_tenant t;
	char *err = NULL;
	int rc;

	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_domain_remove(cli->store, t.id, cli->args[1], &err)) != 0)
		return cli_store_error(rc, &err, "removing the domain");
	printf("domain '%s' removed from tenant '%s'\n", cli->args[1], t.name);
	return CLI_EXIT_OK;
}

/* ---- network ---------------------------------------------------------------------- */

/* The store canonicalises a CIDR ("10.1.2.3" -> "10.1.2.3/32") without
 * handing the form back; the one network in one list and not the other
 * names it.  NULL when the lists do not tell (changed meanwhile). */
static const char *cli_network_diff(const struct store_network *a, size_t na,
                                    const struct store_network *b, size_t nb)
{
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;
		while (j < nb && strcmp(a[i].cidr, b[j].cidr) != 0)
			j++;
		if (j == nb)
			return a[i].cidr;
	}
	return NULL;
}

/* add or remove; names the network in its canonical form. */
static int cli_network_change(struct cli *cli, int add)
{
	struct store_network *before = NULL, *after = NULL;
	size_t nbefore = 0, nafter = 0;
	const char *cidr = NULL;
	struct store_tenant t;
	char *err = NULL;
	int rc, listed;

	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	listed = store_network_list(cli->store, t.id, &before, &nbefore, &err) == 0;
	free(err);
	err = NULL;
	rc = add ? store_network_add(cli->store, t.id, cli->args[1], &err)
	         : store_network_remove(cli->store, t.id, cli->args[1], &err);
	if (rc != 0) {
		free(before);
		return cli_store_error(rc, &err,
		                       add ? "adding the network" : "removing the network");
	}
	if (listed && store_network_list(cli->store, t.id, &after, &nafter, &err) == 0)
		cidr = add ? cli_network_diff(after, nafter, before, nbefore)
		           : cli_network_diff(before, nbefore, after, nafter);
	free(err);
	if (cidr == NULL)
		cidr = cli->args[1];
	if (add)
		printf("network '%s' added to tenant '%s': it may relay on port 25 without AUTH\n",
		       cidr, t.name);
	else
		printf("network '%s' removed from tenant '%s'\n", cidr, t.name);
	free(before);
	free(after);
	return CLI_EXIT_OK;
}

int cli_network_add(struct cli *cli)
{
	return cli_network_change(cli, 1);
}

int cli_network_list(struct cli *cli)
{
	struct store_network *list = NULL;
	size_t n = 0, cw = 4;
	char *err = NULL;
	int64_t tenant_id;
	int rc;

	if ((rc = cli_optional_tenant(cli, &tenant_id)) != 0)
		return rc;
	if ((rc = store_network_list(cli->store, tenant_id, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing networks");
	if (cli->flags & CLI_FLAG_JSON) {
		json_t *a = json_array();
		for (size_t i = 0; a && i < n; i++)
			if (json_array_append_new(a, json_pack("{s:s, s:s}", "cidr", list[i].cidr,
			                                       "tenant", list[i].tenant)) < 0) {
				json_decref(a);
				a = NULL;
			}
		free(list);
		return cli_json_print(a);
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i].cidr) > cw)
			cw = strlen(list[i].cidr);
	if (n == 0)
		printf("no networks\n");
	else
		printf("%-*s %s\n", (int)cw, "CIDR", "TENANT");
	for (size_t i = 0; i < n; i++)
		printf("%-*s %s\n", (int)cw, list[i].cidr, list[i].tenant);
	free(list);
	return CLI_EXIT_OK;
}

int cli_network_remove(struct cli *cli)
{
	return cli_network_change(cli, 0);
}
