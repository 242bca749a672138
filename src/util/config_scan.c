/*
 * The content-scanning part of the configuration (issue 4): where clamd
 * and rspamd listen, how long each may take, what each verdict does, and
 * what happens when a scanner cannot answer.  config.c reads the file and
 * hands the global keys here; the addresses are only checked for their
 * form here, src/scan/ parses them into socket addresses at start.
 */
#include "util/config.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

void config_scan_defaults(struct config_scan *s)
{
	memset(s, 0, sizeof *s);
	s->clamd_timeout = 30;
	s->rspamd_timeout = 30;
	s->max_size = 20 * 1024 * 1024;
	s->fail_closed = 1; /* a scanner that cannot answer defers mail (Postfix milter default) */
	s->clamd_virus = CONFIG_SCAN_REFUSE;
	s->rspamd_reject = CONFIG_SCAN_REFUSE;
	s->rspamd_add_header = CONFIG_SCAN_ACCEPT;
	s->rspamd_rewrite_subject = CONFIG_SCAN_ACCEPT;
	s->rspamd_greylist = CONFIG_SCAN_ACCEPT;
}

static int parse_action(const char *v, enum config_scan_action *out, const char **why)
{
	if (strcmp(v, "accept") == 0)
		*out = CONFIG_SCAN_ACCEPT;
	else if (strcmp(v, "hold") == 0)
		*out = CONFIG_SCAN_HOLD;
	else if (strcmp(v, "refuse") == 0)
		*out = CONFIG_SCAN_REFUSE;
	else {
		*why = "must be accept, hold or refuse";
		return -1;
	}
	return 0;
}

/* "unix:/path", "/path", "IP:PORT" or "[IPv6]:PORT": the form only */
static int check_endpoint(const char *v)
{
	const char *colon;

	if (strncmp(v, "unix:", 5) == 0)
		return v[5] == '/' ? 0 : -1;
	if (v[0] == '/')
		return 0;
	colon = strrchr(v, ':');
	return colon != NULL && colon != v && colon[1] != '\0' ? 0 : -1;
}

/* clamd: an endpoint; rspamd: "http://IP:PORT[/PATH]" or a unix endpoint */
static int set_endpoint(char **slot, const char *v, int url, const char **why)
{
	char hostport[256];
	int ok;

	if (url && strncmp(v, "http://", 7) == 0) {
		size_t n = strcspn(v + 7, "/");
		ok = n < sizeof hostport;
		if (ok) {
			memcpy(hostport, v + 7, n);
			hostport[n] = '\0';
			ok = hostport[0] != '/' && strncmp(hostport, "unix:", 5) != 0 &&
			     check_endpoint(hostport) == 0;
		}
	} else {
		ok = strlen(v) < 1024 && check_endpoint(v) == 0 &&
		     (!url || v[0] == '/' || strncmp(v, "unix:", 5) == 0);
	}
	if (!ok) {
		*why = url ? "must be http://IP:PORT[/PATH] or unix:/PATH"
		           : "must be IP:PORT, [IPv6]:PORT or unix:/PATH";
		return -1;
	}
	return config_set_str(slot, v);
}

int config_scan_key(struct config_scan *s, const char *k, const char *v, const char **why)
{
	static const struct {
		const char *key;
		size_t off;
	} actions[] = {
	    {"scan_clamd_virus", offsetof(struct config_scan, clamd_virus)},
	    {"scan_rspamd_reject", offsetof(struct config_scan, rspamd_reject)},
	    {"scan_rspamd_add_header", offsetof(struct config_scan, rspamd_add_header)},
	    {"scan_rspamd_rewrite_subject", offsetof(struct config_scan, rspamd_rewrite_subject)},
	    {"scan_rspamd_greylist", offsetof(struct config_scan, rspamd_greylist)},
	};

	if (strncmp(k, "scan_", 5) != 0)
		return 1;
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (strcmp(k, actions[i].key) == 0)
			return parse_action(
			    v, (enum config_scan_action *)((char *)s + actions[i].off), why);
	if (strcmp(k, "scan_clamd") == 0)
		return set_endpoint(&s->clamd, v, 0, why);
	if (strcmp(k, "scan_rspamd") == 0)
		return set_endpoint(&s->rspamd, v, 1, why);
	if (strcmp(k, "scan_clamd_timeout") == 0 || strcmp(k, "scan_rspamd_timeout") == 0) {
		uint64_t n;
		if (util_parse_duration(v, &n) < 0 || n == 0 || n > 3600) {
			*why = "must be a duration from 1s to 1h";
			return -1;
		}
		*(k[5] == 'c' ? &s->clamd_timeout : &s->rspamd_timeout) = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "scan_max_size") == 0) {
		if (util_parse_size(v, &s->max_size) < 0 || s->max_size == 0) {
			*why = "bad size";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "scan_fail") == 0) {
		if (strcmp(v, "open") == 0)
			s->fail_closed = 0;
		else if (strcmp(v, "closed") == 0)
			s->fail_closed = 1;
		else {
			*why = "must be open or closed";
			return -1;
		}
		return 0;
	}
	return 1;
}

void config_scan_free(struct config_scan *s)
{
	free(s->clamd);
	free(s->rspamd);
	s->clamd = NULL;
	s->rspamd = NULL;
}
