/*
 * cli_contain: the operator's side of containment (issue 4).
 *   sluice contain list [TENANT] [--json]   who is throttled, held or
 *                                           suspended, since when and why
 *   sluice credential resume USER           undo a login's containment
 *   sluice tenant release NAME              undo a tenant's
 * Resume and release clear the stored level (with an event naming the
 * operator) and the suspension; sluiced lets the subject go at its next
 * MAIL.  Mail held meanwhile stays held: `sluice queue release|delete`.
 */
#include "cmd/cli.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const contain_levels[] = {"none", "throttle", "hold", "suspend"};

static const char *contain_level_name(int l)
{
	return l >= 0 && l <= 3 ? contain_levels[l] : "?";
}

/* The login that ran the command (sudo's caller first). */
static void contain_operator(char out[STORE_NAME_MAX + 1])
{
	const char *name = getenv("SUDO_USER");
	struct passwd *pw;

	if (name == NULL || name[0] == '\0') {
		pw = getpwuid(getuid());
		name = pw ? pw->pw_name : "unknown";
	}
	snprintf(out, STORE_NAME_MAX + 1, "%s", name);
}

/* Clear a stored level: CLI_EXIT_OK (*cleared_r 0 when there was none)
 * or an exit code. */
static int contain_clear(struct cli *cli, int kind, int64_t id, int64_t tenant_id,
			 const char *what, int *cleared_r)
{
	struct store_contain_state st;
	char *err = NULL;
	int rc;

	*cleared_r = 0;
	rc = store_contain_get(cli->store, kind, id, &st, &err);
	if (rc == STORE_NOTFOUND)
		return CLI_EXIT_OK;
	if (rc != 0)
		return cli_store_error(rc, &err, "reading the containment level");
	memset(&st, 0, sizeof st);
	st.kind = kind;
	st.subject_id = id;
	st.tenant_id = tenant_id;
	st.level = 0;
	snprintf(st.reason, sizeof st.reason, "%s by the operator", what);
	contain_operator(st.by);
	if ((rc = store_contain_set(cli->store, &st, &err)) != 0)
		return cli_store_error(rc, &err, "clearing the containment level");
	*cleared_r = 1;
	return CLI_EXIT_OK;
}

int cli_credential_resume(struct cli *cli)
{
	struct store_credential c;
	char *err = NULL, safe[80];
	int rc, cleared;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	rc = store_credential_lookup(cli->store, cli->args[0], &c, &err);
	if (rc == STORE_NOTFOUND) {
		free(err);
		return cli_error("login '%s' not found", cli_safe(cli->args[0], safe, sizeof safe));
	}
	if (rc != 0)
		return cli_store_error(rc, &err, "looking up the login");
	if ((rc = contain_clear(cli, 2, c.id, c.tenant_id, "resumed", &cleared)) != CLI_EXIT_OK)
		return rc;
	if (c.suspended && (rc = store_credential_set_suspended(cli->store, c.username, 0, &err)) != 0)
		return cli_store_error(rc, &err, "resuming the login");
	printf("login '%s' resumed%s\n", c.username,
	       !cleared && !c.suspended ? " (it was not contained)" : "");
	return CLI_EXIT_OK;
}

int cli_tenant_release(struct cli *cli)
{
	struct store_tenant t;
	char *err = NULL;
	int rc, cleared;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if ((rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = contain_clear(cli, 1, t.id, t.id, "released", &cleared)) != CLI_EXIT_OK)
		return rc;
	if (t.suspended && (rc = store_tenant_set_suspended(cli->store, t.name, 0, &err)) != 0)
		return cli_store_error(rc, &err, "releasing the tenant");
	printf("tenant '%s' released%s\n", t.name,
	       !cleared && !t.suspended ? " (it was not contained)" : "");
	if (cleared)
		printf("its held mail stays held: sluice queue list, then queue release|delete ID\n");
	return CLI_EXIT_OK;
}

/* A subject's name: the tenant's or the login's. */
static void contain_subject_name(struct cli *cli, const struct store_contain_state *s,
				 char *out, size_t size)
{
	struct store_tenant t;
	struct store_credential *list = NULL;
	size_t n = 0;
	char *err = NULL;

	snprintf(out, size, "#%lld", (long long)s->subject_id);
	if (s->kind == 1) {
		if (store_tenant_get_id(cli->store, s->subject_id, &t, &err) == 0)
			snprintf(out, size, "%s", t.name);
	} else if (store_credential_list(cli->store, s->tenant_id, &list, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			if (list[i].id == s->subject_id)
				snprintf(out, size, "%s", list[i].username);
	}
	free(list);
	free(err);
}

int cli_contain_list(struct cli *cli)
{
	struct store_contain_state *list = NULL;
	struct store_tenant t = {0};
	size_t n = 0;
	char *err = NULL, name[STORE_NAME_MAX + 16], when[CLI_TIME_MAX];
	json_t *arr = NULL;
	int rc;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if (cli->nargs > 0 && (rc = cli_tenant_find(cli, cli->args[0], &t)) != 0)
		return rc;
	if ((rc = store_contain_list(cli->store, t.id, &list, &n, &err)) != 0)
		return cli_store_error(rc, &err, "listing containment");
	if (cli->flags & CLI_FLAG_JSON)
		arr = json_array();
	else if (n == 0)
		printf("nobody is contained\n");
	for (size_t i = 0; i < n; i++) {
		struct store_tenant owner;
		const char *tenant = "?";

		contain_subject_name(cli, &list[i], name, sizeof name);
		if (store_tenant_get_id(cli->store, list[i].tenant_id, &owner, &err) == 0)
			tenant = owner.name;
		free(err);
		err = NULL;
		cli_time_iso(list[i].since, when);
		if (arr != NULL) {
			json_array_append_new(
			    arr, json_pack("{s:s, s:o, s:s, s:s, s:s, s:o}", "kind",
					   list[i].kind == 1 ? "tenant" : "login", "name",
					   cli_json_string(name), "tenant", tenant, "level",
					   contain_level_name(list[i].level), "since", when, "reason",
					   cli_json_string(list[i].reason)));
			continue;
		}
		printf("%s %s (tenant %s): %s since %s by %s\n  %s\n",
		       list[i].kind == 1 ? "tenant" : "login", name, tenant,
		       contain_level_name(list[i].level), when, list[i].by, list[i].reason);
	}
	free(list);
	return arr != NULL ? cli_json_print(arr) : CLI_EXIT_OK;
}
