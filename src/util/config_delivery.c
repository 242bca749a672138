/*
 * The delivery part of the configuration: global delivery keys (MX port,
 * resolver, retry schedule, per-destination limits, RFC 5321 timeouts)
 * and [route NAME] sections that send some recipient domains to one
 * upstream host.  config.c reads the file and hands these keys here.
 */
#include "util/config.h"
#include "util/util.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void config_delivery_defaults(struct config_delivery *d)
{
	memset(d, 0, sizeof *d);
	d->enabled = 1;
	d->mx_port = 25;
	d->dnssec = 0; /* on needs a validating path to the root, or an anchor */
	d->ip_pref = CONFIG_IP_IPV4_FIRST;
	d->mx_tls = CONFIG_OUT_TLS_OPPORTUNISTIC;
	d->max_queue_lifetime = 5 * 86400;
	d->max_received = 50; /* Postfix's hopcount_limit */
	d->dest_concurrency = 20;
	d->host_concurrency = 10;
	d->messages_per_connection = 100;
	d->dest_rate = 0;
	d->max_connections = 500;
	d->connection_cache_time = 2; /* Postfix's smtp_connection_cache_time_limit */
	d->timeout_connect = 30;
	d->timeout_greeting = 300;
	d->timeout_command = 300;
	d->timeout_data_init = 120;
	d->timeout_data_block = 180;
	d->timeout_data_end = 600;
}

static int parse_onoff(const char *v, int *out, const char **why)
{
	if (strcmp(v, "on") == 0 || strcmp(v, "yes") == 0) {
		*out = 1;
		return 0;
	}
	if (strcmp(v, "off") == 0 || strcmp(v, "no") == 0) {
		*out = 0;
		return 0;
	}
	*why = "must be on or off";
	return -1;
}

static int parse_out_tls(const char *v, enum config_out_tls *out, int allow_implicit,
			 const char **why)
{
	if (strcmp(v, "none") == 0)
		*out = CONFIG_OUT_TLS_NONE;
	else if (strcmp(v, "opportunistic") == 0)
		*out = CONFIG_OUT_TLS_OPPORTUNISTIC;
	else if (strcmp(v, "required") == 0)
		*out = CONFIG_OUT_TLS_REQUIRED;
	else if (allow_implicit && strcmp(v, "implicit") == 0)
		*out = CONFIG_OUT_TLS_IMPLICIT;
	else {
		*why = allow_implicit ? "tls must be none, opportunistic, required or implicit"
				      : "must be none, opportunistic or required";
		return -1;
	}
	return 0;
}

static int parse_port(const char *v, uint16_t *out)
{
	char *end;
	unsigned long n = strtoul(v, &end, 10);

	if (*v < '0' || *v > '9' || *end != '\0' || n == 0 || n > 65535)
		return -1;
	*out = (uint16_t)n;
	return 0;
}

/* "5m,10m,1h": every element a duration of at least one second */
static int check_schedule(const char *v)
{
	char copy[512], *save = NULL;
	int n = 0;

	if (util_strlcpy(copy, v, sizeof copy) >= sizeof copy)
		return -1;
	for (char *t = strtok_r(copy, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		uint64_t s;
		if (util_parse_duration(t, &s) < 0 || s == 0 || s > 30 * 86400)
			return -1;
		n++;
	}
	return n > 0 ? 0 : -1;
}

int config_delivery_key(struct config_delivery *d, const char *dir, const char *k, const char *v,
			const char **why)
{
	static const struct {
		const char *key;
		size_t off;
		int seconds;
	} nums[] = {
		{"max_queue_lifetime", offsetof(struct config_delivery, max_queue_lifetime), 1},
		{"max_received", offsetof(struct config_delivery, max_received), 0},
		{"dest_concurrency", offsetof(struct config_delivery, dest_concurrency), 0},
		{"host_concurrency", offsetof(struct config_delivery, host_concurrency), 0},
		{"messages_per_connection",
		 offsetof(struct config_delivery, messages_per_connection), 0},
		{"dest_rate", offsetof(struct config_delivery, dest_rate), 0},
		{"delivery_max_connections", offsetof(struct config_delivery, max_connections), 0},
		{"connection_cache_time", offsetof(struct config_delivery, connection_cache_time), 1},
		{"timeout_connect", offsetof(struct config_delivery, timeout_connect), 1},
		{"timeout_greeting", offsetof(struct config_delivery, timeout_greeting), 1},
		{"timeout_remote_command", offsetof(struct config_delivery, timeout_command), 1},
		{"timeout_data_init", offsetof(struct config_delivery, timeout_data_init), 1},
		{"timeout_data_block", offsetof(struct config_delivery, timeout_data_block), 1},
		{"timeout_data_end", offsetof(struct config_delivery, timeout_data_end), 1},
	};

	for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
		if (strcmp(k, nums[i].key) == 0) {
			uint32_t *slot = (uint32_t *)((char *)d + nums[i].off);
			uint64_t n;
			int r = nums[i].seconds ? util_parse_duration(v, &n) : util_parse_size(v, &n);
			if (r < 0 || n > UINT32_MAX) {
				*why = nums[i].seconds ? "bad duration" : "bad number";
				return -1;
			}
			/* a zero limit would stop delivery for good; 0 is "off"
			 * only for the rate and the connection cache */
			if (n == 0 && strcmp(k, "dest_rate") != 0 &&
			    strcmp(k, "connection_cache_time") != 0) {
				*why = "must be greater than 0";
				return -1;
			}
			*slot = (uint32_t)n;
			return 0;
		}
	}
	if (strcmp(k, "delivery") == 0)
		return parse_onoff(v, &d->enabled, why);
	if (strcmp(k, "dnssec") == 0)
		return parse_onoff(v, &d->dnssec, why);
	if (strcmp(k, "mx_port") == 0) {
		if (parse_port(v, &d->mx_port) < 0) {
			*why = "bad port";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "mx_tls") == 0)
		return parse_out_tls(v, &d->mx_tls, 0, why);
	if (strcmp(k, "resolver") == 0)
		return config_set_str(&d->resolver, v);
	if (strcmp(k, "resolver_option") == 0) {
		if (d->nresolver_options == CONFIG_MAX_RESOLVER_OPTIONS) {
			*why = "too many resolver options";
			return -1;
		}
		if (strchr(v, ':') == NULL) {
			*why = "must be \"name: value\" as in unbound.conf";
			return -1;
		}
		if ((d->resolver_options[d->nresolver_options] = strdup(v)) == NULL)
			return -1;
		d->nresolver_options++;
		return 0;
	}
	if (strcmp(k, "resolver_trust_anchor") == 0) {
		free(d->resolver_trust_anchor);
		if (v[0] == '/' || dir[0] == '\0') {
			d->resolver_trust_anchor = strdup(v);
		} else {
			struct buf b = BUF_INIT;
			if (buf_printf(&b, "%s/%s", dir, v) < 0)
				return -1;
			d->resolver_trust_anchor = buf_export(&b, NULL);
		}
		return d->resolver_trust_anchor ? 0 : -1;
	}
	if (strcmp(k, "ip_preference") == 0) {
		static const char *names[] = {"ipv4", "ipv6", "ipv4-only", "ipv6-only"};
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
			if (strcmp(v, names[i]) == 0) {
				d->ip_pref = (enum config_ip_pref)i;
				return 0;
			}
		}
		*why = "must be ipv4, ipv6, ipv4-only or ipv6-only";
		return -1;
	}
	if (strcmp(k, "retry_schedule") == 0) {
		if (check_schedule(v) < 0) {
			*why = "must be a comma-separated list of durations (1s to 30d)";
			return -1;
		}
		return config_set_str(&d->retry_schedule, v);
	}
	return 1;
}

/* host = "name", "name:port", "1.2.3.4:port", "[v6]:port" (RFC 5321's
 * bracketed literal also means "no MX lookup", which routes never do) */
static int parse_route_host(struct config_route *r, const char *v, const char **why)
{
	char host[256];
	const char *colon;
	size_t hl;

	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		if (close == NULL) {
			*why = "bad host: missing ]";
			return -1;
		}
		hl = (size_t)(close - v - 1);
		if (hl == 0 || hl >= sizeof host) {
			*why = "bad host";
			return -1;
		}
		memcpy(host, v + 1, hl);
		host[hl] = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
		if (close[1] != '\0' && colon == NULL) {
			*why = "bad host: expected ]:PORT";
			return -1;
		}
	} else {
		colon = strrchr(v, ':');
		if (colon != NULL && strchr(v, ':') != colon) {
			*why = "bad host: write an IPv6 address as [ADDR]:PORT";
			return -1;
		}
		hl = colon ? (size_t)(colon - v) : strlen(v);
		if (hl == 0 || hl >= sizeof host) {
			*why = "bad host";
			return -1;
		}
		memcpy(host, v, hl);
		host[hl] = '\0';
	}
	if (colon != NULL && parse_port(colon + 1, &r->port) < 0) {
		*why = "bad port";
		return -1;
	}
	return config_set_str(&r->host, host);
}

int config_route_key(struct config_route *r, const char *k, char *v, const char **why)
{
	if (strcmp(k, "domains") == 0) {
		char *save = NULL;
		for (char *t = strtok_r(v, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
			if (r->ndomains == CONFIG_MAX_ROUTE_DOMAINS) {
				*why = "too many domains";
				return -1;
			}
			for (char *c = t; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
			if ((r->domains[r->ndomains++] = strdup(t)) == NULL)
				return -1;
		}
		return 0;
	}
	if (strcmp(k, "host") == 0)
		return parse_route_host(r, v, why);
	if (strcmp(k, "tls") == 0)
		return parse_out_tls(v, &r->tls, 1, why);
	if (strcmp(k, "tls_verify") == 0)
		return parse_onoff(v, &r->tls_verify, why);
	if (strcmp(k, "tls_ca_file") == 0)
		return config_set_str(&r->tls_ca_file, v);
	if (strcmp(k, "auth_user") == 0)
		return config_set_str(&r->auth_user, v);
	if (strcmp(k, "auth_password") == 0)
		return config_set_str(&r->auth_password, v);
	*why = "unknown route key";
	return -1;
}

int config_delivery_check(struct config_delivery *d, const char **why)
{
	if (d->retry_schedule == NULL && config_set_str(&d->retry_schedule, "5m,10m,20m,40m,1h,2h,4h"))
		return -1;
	for (size_t i = 0; i < d->nroutes; i++) {
		struct config_route *r = &d->routes[i];
		if (r->ndomains == 0 || r->host == NULL) {
			*why = "a route needs domains and host";
			return -1;
		}
		if (r->port == 0)
			r->port = r->tls == CONFIG_OUT_TLS_IMPLICIT ? 465 : 25;
		if ((r->auth_user == NULL) != (r->auth_password == NULL)) {
			*why = "a route needs both auth_user and auth_password, or neither";
			return -1;
		}
		if (r->auth_user != NULL && r->tls == CONFIG_OUT_TLS_NONE) {
			*why = "a route with AUTH needs tls (required or implicit)";
			return -1;
		}
		/* AUTH never in the clear: opportunistic becomes required */
		if (r->auth_user != NULL && r->tls == CONFIG_OUT_TLS_OPPORTUNISTIC)
			r->tls = CONFIG_OUT_TLS_REQUIRED;
	}
	return 0;
}

const struct config_route *config_route_find(const struct config_delivery *d, const char *domain)
{
	const struct config_route *best = NULL, *any = NULL;
	size_t best_len = 0, dl = strlen(domain);

	for (size_t i = 0; i < d->nroutes; i++) {
		const struct config_route *r = &d->routes[i];
		for (size_t j = 0; j < r->ndomains; j++) {
			const char *p = r->domains[j];
			size_t pl = strlen(p);
			if (strcmp(p, "*") == 0) {
				if (any == NULL)
					any = r;
			} else if (p[0] == '.') {
				if (dl > pl && util_strncasecmp(domain + dl - pl, p, pl) == 0 &&
				    pl > best_len) {
					best = r;
					best_len = pl;
				}
			} else if (dl == pl && util_strncasecmp(domain, p, pl) == 0) {
				return r;
			}
		}
	}
	return best ? best : any;
}

void config_delivery_free(struct config_delivery *d)
{
	free(d->resolver);
	free(d->resolver_trust_anchor);
	free(d->retry_schedule);
	for (size_t i = 0; i < d->nresolver_options; i++)
		free(d->resolver_options[i]);
	for (size_t i = 0; i < d->nroutes; i++) {
		struct config_route *r = &d->routes[i];
		for (size_t j = 0; j < r->ndomains; j++)
			free(r->domains[j]);
		free(r->host);
		free(r->tls_ca_file);
		free(r->auth_user);
		if (r->auth_password)
			util_wipe(r->auth_password, strlen(r->auth_password));
		free(r->auth_password);
	}
	memset(d, 0, sizeof *d);
}
