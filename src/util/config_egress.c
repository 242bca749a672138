/*
 * The egress part of the configuration (`sluice egress`, docs/egress.md):
 * the customer networks whose port 25 is blocked, sluice's own addresses
 * and the private subnets where port 25 stays open, the log rate and where
 * the lines go (the kernel log, or an nflog group for ulogd2 or tcpdump), how long
 * a quiet blocked source stays counted, and whether changes to exceptions
 * reload the kernel's table at once.  config.c hands these keys here.
 *
 * Lists may be given on one line ("a, b c") or over several lines with
 * the key repeated; each element is checked for its characters here and
 * parsed as an address or network by the egress module when rendered.
 */
#include "util/config.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>

void config_egress_defaults(struct config_egress *e)
{
	memset(e, 0, sizeof *e);
	e->log_rate = 10;
	e->blocked_timeout = 7 * 86400;
}

static int config_egress_list(char **list, size_t *n, const char *v, const char **why)
{
	char copy[4096], *save = NULL;

	if (util_strlcpy(copy, v, sizeof copy) >= sizeof copy) {
		*why = "too long";
		return -1;
	}
	for (char *t = strtok_r(copy, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
		if (strspn(t, "0123456789abcdefABCDEF.:/") != strlen(t) || strlen(t) > 63) {
			*why = "expected IPv4 or IPv6 addresses or networks (ADDR/PREFIX)";
			return -1;
		}
		if (*n == CONFIG_MAX_EGRESS_NETS) {
			*why = "too many networks";
			return -1;
		}
		if ((list[*n] = strdup(t)) == NULL)
			return -1;
		(*n)++;
	}
	return 0;
}

int config_egress_key(struct config_egress *e, const char *k, const char *v, const char **why)
{
	uint64_t n;

	if (strcmp(k, "egress_customer_networks") == 0)
		return config_egress_list(e->customers, &e->ncustomers, v, why);
	if (strcmp(k, "egress_relay_addresses") == 0)
		return config_egress_list(e->relays, &e->nrelays, v, why);
	if (strcmp(k, "egress_private_networks") == 0)
		return config_egress_list(e->privates, &e->nprivates, v, why);
	if (strcmp(k, "egress_log_rate") == 0) {
		if (util_parse_size(v, &n) < 0 || n > 100000) {
			*why = "must be log lines a minute, 0 (no log) to 100000";
			return -1;
		}
		e->log_rate = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "egress_log") == 0) {
		if (strcmp(v, "syslog") == 0) {
			e->log_nflog = 0;
			return 0;
		}
		if (strncmp(v, "nflog:", 6) == 0 && v[6] >= '0' && v[6] <= '9' &&
		    util_parse_size(v + 6, &n) == 0 && n <= 65535) {
			e->log_nflog = 1;
			e->log_group = (uint16_t)n;
			return 0;
		}
		*why = "must be syslog or nflog:GROUP (0 to 65535)";
		return -1;
	}
	if (strcmp(k, "egress_blocked_timeout") == 0) {
		if (util_parse_duration(v, &n) < 0 || n == 0 || n > 365 * 86400) {
			*why = "must be a duration from 1s to 365d";
			return -1;
		}
		e->blocked_timeout = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "egress_apply") == 0) {
		if (strcmp(v, "on") == 0 || strcmp(v, "yes") == 0)
			e->apply_on_change = 1;
		else if (strcmp(v, "off") == 0 || strcmp(v, "no") == 0)
			e->apply_on_change = 0;
		else {
			*why = "must be on or off";
			return -1;
		}
		return 0;
	}
	return 1;
}

void config_egress_free(struct config_egress *e)
{
	for (size_t i = 0; i < e->ncustomers; i++)
		free(e->customers[i]);
	for (size_t i = 0; i < e->nrelays; i++)
		free(e->relays[i]);
	for (size_t i = 0; i < e->nprivates; i++)
		free(e->privates[i]);
	memset(e, 0, sizeof *e);
}
