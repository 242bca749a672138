/*
 * The sending-domain part of the configuration (issue 5): what `sluice
 * domain add` prints for the tenant to publish (SPF and DMARC records)
 * and how DKIM keys rotate.  config.c hands these global keys here.
 */
#include "util/config.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_DKIM_OVERLAP_DEFAULT (7 * 86400)

void config_domains_defaults(struct config_domains *d)
{
	memset(d, 0, sizeof *d);
	d->dkim_overlap = CONFIG_DKIM_OVERLAP_DEFAULT;
}

/* "192.0.2.10 2001:db8::/64 ...": addresses or networks, IPv4 or IPv6. */
static int check_addresses(const char *v)
{
	char copy[1024], *save = NULL;
	int n = 0;

	if (util_strlcpy(copy, v, sizeof copy) >= sizeof copy)
		return -1;
	for (char *t = strtok_r(copy, " ,", &save); t; t = strtok_r(NULL, " ,", &save)) {
		unsigned char buf[16];
		char *slash = strchr(t, '/'), *end;
		long prefix = -1;
		int v6 = strchr(t, ':') != NULL;

		if (slash != NULL) {
			*slash = '\0';
			prefix = strtol(slash + 1, &end, 10);
			if (slash[1] == '\0' || *end != '\0' || prefix < 0 ||
			    prefix > (v6 ? 128 : 32))
				return -1;
		}
		if (inet_pton(v6 ? AF_INET6 : AF_INET, t, buf) != 1)
			return -1;
		if (++n > CONFIG_MAX_SENDING_ADDRESSES)
			return -1;
	}
	return n > 0 ? 0 : -1;
}

int config_domains_key(struct config_domains *d, const char *k, const char *v, const char **why)
{
	if (strcmp(k, "sending_addresses") == 0) {
		if (check_addresses(v) < 0) {
			*why = "expected IPv4/IPv6 addresses or networks, space-separated";
			return -1;
		}
		return config_set_str(&d->sending_addresses, v);
	}
	if (strcmp(k, "spf_include") == 0) {
		if (strchr(v, ' ') != NULL || strchr(v, '.') == NULL) {
			*why = "expected one domain name";
			return -1;
		}
		return config_set_str(&d->spf_include, v);
	}
	if (strcmp(k, "dmarc_rua") == 0) {
		if (strncmp(v, "mailto:", 7) != 0 || strchr(v, '@') == NULL || strchr(v, ';') ||
		    strchr(v, ' ')) {
			*why = "expected mailto:ADDRESS";
			return -1;
		}
		return config_set_str(&d->dmarc_rua, v);
	}
	if (strcmp(k, "dkim_overlap") == 0) {
		uint64_t n;

		if (util_parse_duration(v, &n) < 0 || n > 365 * 86400) {
			*why = "bad duration (at most 365d)";
			return -1;
		}
		d->dkim_overlap = (uint32_t)n;
		return 0;
	}
	return 1;
}

void config_domains_free(struct config_domains *d)
{
	free(d->sending_addresses);
	free(d->spf_include);
	free(d->dmarc_rua);
	memset(d, 0, sizeof *d);
}
