/*
 * Configuration file reader.  Unknown keys are errors, so a typo never
 * silently leaves a default in force.
 */
#include "util/config.h"
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(struct sluice_config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->max_message_size = 25 * 1024 * 1024;
	cfg->max_recipients = 100;
	cfg->max_connections = 10000;
	cfg->max_connections_per_ip = 50;
	cfg->max_errors = 10;
	cfg->timeout_command = 300;
	cfg->timeout_data = 300;
	cfg->auth_fail_limit_ip = 10;
	cfg->auth_fail_limit_user = 5;
	cfg->auth_fail_window = 600;
	cfg->auth_cache_ttl = 300;
	cfg->auth_threads = 2;
	cfg->spool_batch_max = 256;
	config_delivery_defaults(&cfg->delivery);
	config_egress_defaults(&cfg->egress);
	config_domains_defaults(&cfg->domains);
	config_scan_defaults(&cfg->scan);
	config_policy_defaults(&cfg->policy);
}

static char *resolve_path(const char *base_dir, const char *v)
{
	struct buf b = BUF_INIT;

	if (v[0] == '/' || base_dir[0] == '\0')
		return strdup(v);
	if (buf_printf(&b, "%s/%s", base_dir, v) < 0)
		return NULL;
	return buf_export(&b, NULL);
}

static int set_u32(const char *v, uint32_t *out)
{
	uint64_t n;

	if (util_parse_size(v, &n) < 0 || n > UINT32_MAX)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

static int set_secs(const char *v, uint32_t *out)
{
	uint64_t n;

	if (util_parse_duration(v, &n) < 0 || n > UINT32_MAX)
		return -1;
	*out = (uint32_t)n;
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int set_path(char **slot, const char *dir, const char *v)
{
	free(*slot);
	*slot = resolve_path(dir, v);
	return *slot ? 0 : -1;
}

int config_set_str(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
	return *slot ? 0 : -1;
}

static int listener_key(struct config_listener *l, const char *k, char *v, const char **why)
{
	if (strcmp(k, "listen") == 0) {
		char *save = NULL;
		for (char *t = strtok_r(v, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
			if (l->naddrs == CONFIG_MAX_ADDRS) {
				*why = "too many addresses";
				return -1;
			}
			if ((l->addrs[l->naddrs++] = strdup(t)) == NULL)
				return -1;
		}
		return 0;
	}
	if (strcmp(k, "tls") == 0) {
		if (strcmp(v, "none") == 0)
			l->tls = CONFIG_TLS_NONE;
		else if (strcmp(v, "starttls") == 0)
			l->tls = CONFIG_TLS_STARTTLS;
		else if (strcmp(v, "implicit") == 0)
			l->tls = CONFIG_TLS_IMPLICIT;
		else {
			*why = "tls must be none, starttls or implicit";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "mode") == 0) {
		if (strcmp(v, "submission") == 0)
			l->mode = CONFIG_MODE_SUBMISSION;
		else if (strcmp(v, "relay") == 0)
			l->mode = CONFIG_MODE_RELAY;
		else {
			*why = "mode must be submission or relay";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "greet_pause") == 0) {
		/* "300ms", or a duration in seconds ("1s", "2") */
		size_t n = strlen(v);
		uint64_t ms;
		if (n > 2 && strcmp(v + n - 2, "ms") == 0) {
			char *end;
			v[n - 2] = '\0';
			errno = 0;
			ms = strtoull(v, &end, 10);
			if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
				ms = UINT64_MAX;
		} else if (util_parse_duration(v, &ms) == 0 && ms <= CONFIG_GREET_PAUSE_MAX_MS / 1000) {
			ms *= 1000;
		} else {
			ms = UINT64_MAX;
		}
		if (ms > CONFIG_GREET_PAUSE_MAX_MS) {
			*why = "greet_pause must be a duration up to 60s (\"300ms\", \"2s\")";
			return -1;
		}
		l->greet_pause_ms = (uint32_t)ms;
		return 0;
	}
	*why = "unknown listener key";
	return -1;
}

static int global_key(struct sluice_config *cfg, const char *dir, const char *k, const char *v,
		      const char **why)
{
	static const struct {
		const char *key;
		size_t off;
		int kind; /* 0 u32 count/size, 1 seconds */
	} nums[] = {
		{"max_recipients", offsetof(struct sluice_config, max_recipients), 0},
		{"max_connections", offsetof(struct sluice_config, max_connections), 0},
		{"max_connections_per_ip", offsetof(struct sluice_config, max_connections_per_ip), 0},
		{"max_errors", offsetof(struct sluice_config, max_errors), 0},
		{"timeout_command", offsetof(struct sluice_config, timeout_command), 1},
		{"timeout_data", offsetof(struct sluice_config, timeout_data), 1},
		{"auth_fail_limit_ip", offsetof(struct sluice_config, auth_fail_limit_ip), 0},
		{"auth_fail_limit_user", offsetof(struct sluice_config, auth_fail_limit_user), 0},
		{"auth_fail_window", offsetof(struct sluice_config, auth_fail_window), 1},
		{"auth_cache_ttl", offsetof(struct sluice_config, auth_cache_ttl), 1},
		{"auth_threads", offsetof(struct sluice_config, auth_threads), 0},
		{"spool_batch_max", offsetof(struct sluice_config, spool_batch_max), 0},
	};

	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if (strcmp(k, nums[i].key) == 0) {
			uint32_t *slot = (uint32_t *)((char *)cfg + nums[i].off);
			if ((nums[i].kind ? set_secs(v, slot) : set_u32(v, slot)) < 0) {
				*why = nums[i].kind ? "bad duration" : "bad number";
				return -1;
			}
			return 0;
		}
	}
	if (strcmp(k, "max_message_size") == 0) {
		if (util_parse_size(v, &cfg->max_message_size) < 0 || cfg->max_message_size == 0) {
			*why = "bad size";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "hostname") == 0)
		return config_set_str(&cfg->hostname, v);
	if (strcmp(k, "user") == 0)
		return config_set_str(&cfg->user, v);
	if (strcmp(k, "store") == 0) {
		if (strncmp(v, "sqlite:", 7) != 0) {
			*why = "store must be sqlite:PATH";
			return -1;
		}
		char *p = resolve_path(dir, v + 7);
		if (p == NULL)
			return -1;
		free(cfg->store);
		struct buf b = BUF_INIT;
		int r = buf_printf(&b, "sqlite:%s", p);
		free(p);
		cfg->store = buf_export(&b, NULL);
		return r;
	}
	if (strcmp(k, "spool_dir") == 0)
		return set_path(&cfg->spool_dir, dir, v);
	if (strcmp(k, "tls_cert") == 0)
		return set_path(&cfg->tls_cert, dir, v);
	if (strcmp(k, "tls_key") == 0)
		return set_path(&cfg->tls_key, dir, v);
	if (strcmp(k, "control_socket") == 0)
		return set_path(&cfg->control_socket, dir, v);
	if (strcmp(k, "metrics_listen") == 0) /* parsed (net/) and bound by sluiced */
		return config_set_str(&cfg->metrics_listen, v);
	if (strcmp(k, "log") == 0) {
		if (strcmp(v, "stderr") == 0)
			cfg->log_syslog = 0;
		else if (strcmp(v, "syslog") == 0)
			cfg->log_syslog = 1;
		else {
			*why = "log must be stderr or syslog";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "log_level") == 0) {
		if (strcmp(v, "debug") == 0)
			cfg->log_debug = 1;
		else if (strcmp(v, "info") == 0)
			cfg->log_debug = 0;
		else {
			*why = "log_level must be info or debug";
			return -1;
		}
		return 0;
	}
	int r = config_delivery_key(&cfg->delivery, dir, k, v, why);
	if (r <= 0)
		return r;
	r = config_domains_key(&cfg->domains, k, v, why);
	if (r <= 0)
		return r;
	r = config_policy_key(&cfg->policy, k, v, why);
	if (r <= 0)
		return r;
	r = config_egress_key(&cfg->egress, k, v, why);
	if (r <= 0)
		return r;
	r = config_scan_key(&cfg->scan, k, v, why);
	if (r <= 0)
		return r;
	*why = "unknown key";
	return -1;
}

static int fail(char **err_r, const char *path, int line, const char *why)
{
	struct buf b = BUF_INIT;

	buf_printf(&b, "%s:%d: %s", path, line, why);
	*err_r = buf_export(&b, NULL);
	return -1;
}

int config_load(const char *path, struct sluice_config *cfg, char **err_r)
{
	char line[4096], dir[4096];
	struct config_listener *cur = NULL;
	struct config_route *route = NULL;
	const char *slash;
	FILE *f;
	int lineno = 0;

	*err_r = NULL;
	f = fopen(path, "r");
	if (f == NULL) {
		struct buf b = BUF_INIT;
		buf_printf(&b, "%s: %s", path, strerror(errno));
		*err_r = buf_export(&b, NULL);
		return -1;
	}
	slash = strrchr(path, '/');
	if (slash == NULL)
		dir[0] = '\0';
	else if ((size_t)(slash - path) >= sizeof dir) {
		fclose(f);
		return fail(err_r, path, 0, "path too long");
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (dir[0] == '\0')
			util_strlcpy(dir, "/", sizeof dir);
	}
	cfg->path = strdup(path);

	while (fgets(line, sizeof line, f)) {
		char *s, *eq, *hash;
		const char *why = "out of memory";

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fclose(f);
			return fail(err_r, path, lineno, "line too long");
		}
		if ((hash = strchr(line, '#')) != NULL)
			*hash = '\0';
		s = trim(line);
		if (*s == '\0')
			continue;
		if (*s == '[') {
			char name[128];
			if (s[strlen(s) - 1] == ']' &&
			    sscanf(s, "[route %127[A-Za-z0-9_.-]]", name) == 1) {
				if (cfg->delivery.nroutes == CONFIG_MAX_ROUTES) {
					fclose(f);
					return fail(err_r, path, lineno, "too many routes");
				}
				route = &cfg->delivery.routes[cfg->delivery.nroutes++];
				cur = NULL;
				route->tls = CONFIG_OUT_TLS_OPPORTUNISTIC;
				route->tls_verify = 0;
				if (util_strlcpy(route->name, name, sizeof route->name) >=
				    sizeof route->name) {
					fclose(f);
					return fail(err_r, path, lineno, "route name too long");
				}
				continue;
			}
			if (sscanf(s, "[listener %127[A-Za-z0-9_.-]]", name) != 1 ||
			    s[strlen(s) - 1] != ']') {
				fclose(f);
				return fail(err_r, path, lineno,
					    "expected [listener NAME] or [route NAME]");
			}
			if (cfg->nlisteners == CONFIG_MAX_LISTENERS) {
				fclose(f);
				return fail(err_r, path, lineno, "too many listeners");
			}
			route = NULL;
			cur = &cfg->listeners[cfg->nlisteners++];
			if (util_strlcpy(cur->name, name, sizeof cur->name) >= sizeof cur->name) {
				fclose(f);
				return fail(err_r, path, lineno, "listener name too long");
			}
			/* "relay" and port-25 style names default to relay mode */
			cur->mode = strcmp(name, "relay") == 0 ? CONFIG_MODE_RELAY
							       : CONFIG_MODE_SUBMISSION;
			cur->tls = strcmp(name, "submissions") == 0 ? CONFIG_TLS_IMPLICIT
								    : CONFIG_TLS_STARTTLS;
			continue;
		}
		eq = strchr(s, '=');
		if (eq == NULL) {
			fclose(f);
			return fail(err_r, path, lineno, "expected key = value");
		}
		*eq = '\0';
		char *k = trim(s), *v = trim(eq + 1);
		if (*v == '\0') {
			fclose(f);
			return fail(err_r, path, lineno, "empty value");
		}
		int kr = route ? config_route_key(route, k, v, &why)
			 : cur ? listener_key(cur, k, v, &why)
			       : global_key(cfg, dir, k, v, &why);
		if (kr < 0) {
			char msg[256];
			snprintf(msg, sizeof msg, "%s: %s", k, why);
			fclose(f);
			return fail(err_r, path, lineno, msg);
		}
	}
	fclose(f);
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].naddrs == 0)
			return fail(err_r, path, 0, "a listener has no listen address");
	if (cfg->hostname == NULL && config_set_str(&cfg->hostname, "localhost") < 0)
		return -1;
	if (cfg->store == NULL || cfg->spool_dir == NULL)
		return fail(err_r, path, 0, "store and spool_dir are required");
	{
		const char *why = "out of memory";
		if (config_delivery_check(&cfg->delivery, &why) < 0)
			return fail(err_r, path, 0, why);
	}
	return 0;
}

void config_free(struct sluice_config *cfg)
{
	free(cfg->path);
	free(cfg->hostname);
	free(cfg->user);
	free(cfg->store);
	free(cfg->spool_dir);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->control_socket);
	free(cfg->metrics_listen);
	for (size_t i = 0; i < cfg->nlisteners; i++)
		for (size_t j = 0; j < cfg->listeners[i].naddrs; j++)
			free(cfg->listeners[i].addrs[j]);
	config_delivery_free(&cfg->delivery);
	config_egress_free(&cfg->egress);
	config_domains_free(&cfg->domains);
	config_scan_free(&cfg->scan);
	memset(cfg, 0, sizeof *cfg);
}
