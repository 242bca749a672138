/*
 * cli_dns: synchronous DNS look-ups for the sluice CLI (cli_dns.c), over
 * the configured resolver.  Private to src/cmd.
 */
#ifndef SLUICE_CLI_DNS_H
#define SLUICE_CLI_DNS_H

#include <stddef.h>
#include <stdint.h>

#include "net/net.h"
#include "util/config.h"

struct cli_dns {
	struct event_base *base;
	struct net_resolver *r;
};

struct cli_dns_addr {
	int family; /* 4 or 6 */
	unsigned char b[16];
};

struct cli_dns_name {
	char name[NET_DNS_NAME_MAX];
	uint16_t pref;
};

/* What one query found: TXT strings (each record's strings joined),
 * A/AAAA addresses or MX names, by the type asked. */
struct cli_dns_result {
	enum net_dns_status status;
	char why[64];
	char **txt;
	struct cli_dns_addr *addrs;
	struct cli_dns_name *names;
	size_t n;
};

/* 0, or -1 with *err_r (malloc'd). */
int cli_dns_open(const struct sluice_config *cfg, struct cli_dns *dns, char **err_r);
void cli_dns_close(struct cli_dns *dns);
/* Waits for the answer (the resolver's timeout bounds it); a failure to
 * resolve is a status in *res, not an error.  -1 only when out of memory.
 * Clear res after use. */
int cli_dns_query(struct cli_dns *dns, const char *name, int rrtype, struct cli_dns_result *res);
void cli_dns_result_clear(struct cli_dns_result *res);

#endif
