/* Embedded defaults and the demo tenant (see defaults.h). */
#include "cmd/defaults.h"
#include "auth/auth.h"
#include "util/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

static const struct {
	const char *name;
	const char *addrs[2];
	enum config_tls tls;
	enum config_mode mode;
} default_listeners[] = {
	{"relay", {"127.0.0.1:10025", "[::1]:10025"}, CONFIG_TLS_STARTTLS, CONFIG_MODE_RELAY},
	{"submission", {"127.0.0.1:10587", "[::1]:10587"}, CONFIG_TLS_STARTTLS,
	 CONFIG_MODE_SUBMISSION},
	{"submissions", {"127.0.0.1:10465", "[::1]:10465"}, CONFIG_TLS_IMPLICIT,
	 CONFIG_MODE_SUBMISSION},
	{"alt-submission", {"127.0.0.1:2525", "[::1]:2525"}, CONFIG_TLS_STARTTLS,
	 CONFIG_MODE_SUBMISSION},
};

static char *state_path(const char *cwd, const char *rel)
{
	struct buf b = BUF_INIT;

	if (buf_printf(&b, "%s/%s/%s", cwd, DEFAULTS_STATE_DIR, rel) < 0)
		return NULL;
	return buf_export(&b, NULL);
}

int defaults_embedded(struct sluice_config *cfg, char **err_r)
{
	char cwd[4096];
	struct buf b = BUF_INIT;

	if (getcwd(cwd, sizeof cwd) == NULL) {
		*err_r = strdup("cannot read the current folder");
		return -1;
	}
	cfg->hostname = strdup("localhost");
	cfg->spool_dir = state_path(cwd, "spool");
	cfg->tls_cert = state_path(cwd, "tls/cert.pem");
	cfg->tls_key = state_path(cwd, "tls/key.pem");
	cfg->control_socket = state_path(cwd, "sluiced.sock");
	if (buf_printf(&b, "sqlite:%s/%s/sluice.db", cwd, DEFAULTS_STATE_DIR) < 0)
		return -1;
	cfg->store = buf_export(&b, NULL);
	if (!cfg->hostname || !cfg->spool_dir || !cfg->tls_cert || !cfg->tls_key ||
	    !cfg->control_socket || !cfg->store) {
		*err_r = strdup("out of memory");
		return -1;
	}
	for (size_t i = 0; i < sizeof default_listeners / sizeof default_listeners[0]; i++) {
		struct config_listener *l = &cfg->listeners[cfg->nlisteners++];
		util_strlcpy(l->name, default_listeners[i].name, sizeof l->name);
		l->tls = default_listeners[i].tls;
		l->mode = default_listeners[i].mode;
		for (size_t j = 0; j < 2; j++)
			l->addrs[l->naddrs++] = strdup(default_listeners[i].addrs[j]);
	}
	/* the demo queues without sending: nothing leaves the machine until
	 * an operator configures delivery (resolver, routes) in a file */
	cfg->delivery.enabled = 0;
	{
		const char *why = "out of memory";
		if (config_delivery_check(&cfg->delivery, &why) < 0) {
			*err_r = strdup(why);
			return -1;
		}
	}
	return 0;
}

int defaults_load(const char *path, struct sluice_config *cfg, char **err_r)
{
	config_defaults(cfg);
	if (path == NULL)
		return defaults_embedded(cfg, err_r);
	return config_load(path, cfg, err_r);
}

static void random_password(char *out, size_t len)
{
	static const char alphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

	for (size_t i = 0; i + 1 < len; i++)
		out[i] = alphabet[randombytes_uniform(sizeof alphabet - 1)];
	out[len - 1] = '\0';
}

int defaults_demo_tenant(struct store *st, char **err_r)
{
	struct store_tenant *list = NULL;
	size_t n = 0;
	int64_t id;
	char password[21], hash[AUTH_HASH_MAX];
	const char *nets[] = {"127.0.0.0/8", "::1/128"};

	if (store_tenant_list(st, &list, &n, err_r) != 0)
		return -1;
	free(list);
	if (n > 0)
		return 0;
	random_password(password, sizeof password);
	if (auth_hash_password(password, hash) < 0) {
		*err_r = strdup("password hashing failed");
		return -1;
	}
	if (store_tenant_add(st, "demo", &id, err_r) != 0 ||
	    store_credential_set(st, id, "demo", hash, err_r) != 0 ||
	    store_domain_add(st, id, "demo.example", 1, err_r) != 0)
		return -1;
	for (size_t i = 0; i < 2; i++)
		if (store_network_add(st, id, nets[i], err_r) != 0)
			return -1;
	printf("sluice: demo tenant created (shown once; reset with: sluice tenant passwd demo)\n"
	       "  user:      demo\n"
	       "  password:  %s\n"
	       "  domain:    demo.example (verified)\n"
	       "  networks:  127.0.0.0/8, ::1/128 (may relay on port 10025 without AUTH)\n"
	       "  try:       swaks --server 127.0.0.1:10587 --tls --auth-user demo "
	       "--auth-password '%s' --from you@demo.example --to someone@example.org\n",
	       password, password);
	fflush(stdout);
	util_wipe(password, sizeof password);
	return 0;
}
