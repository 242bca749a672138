/*
 * The networks a login may AUTH from (issue 4).  An operator binds a
 * login to its tenant's source networks (`sluice credential bind`); AUTH
 * from elsewhere is refused or flagged, as configured
 * (credential_network_mode), by the caller.  Independently, every login
 * remembers the networks (/24 for IPv4, /64 for IPv6) it authenticated
 * from: a network never seen before, for a login that has history, is an
 * anomaly signal: stolen credentials are used from the thief's network.
 *
 * Bound networks are read from the store at each AUTH: AUTH is far rarer
 * than messages and already costs an argon2 verification.
 */
#include "policy/policy.h"
#include "policy/policy_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int policy_address_network(const struct sockaddr *sa, char out[STORE_CIDR_MAX + 1])
{
	char text[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		struct in_addr a = ((const struct sockaddr_in *)sa)->sin_addr;
		a.s_addr &= htonl(0xffffff00u);
		inet_ntop(AF_INET, &a, text, sizeof text);
		snprintf(out, STORE_CIDR_MAX + 1, "%s/24", text);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		struct in6_addr a = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&a)) {
			struct in_addr v4;
			memcpy(&v4, &a.s6_addr[12], 4);
			v4.s_addr &= htonl(0xffffff00u);
			inet_ntop(AF_INET, &v4, text, sizeof text);
			snprintf(out, STORE_CIDR_MAX + 1, "%s/24", text);
			return 0;
		}
		memset(&a.s6_addr[8], 0, 8);
		inet_ntop(AF_INET6, &a, text, sizeof text);
		snprintf(out, STORE_CIDR_MAX + 1, "%s/64", text);
		return 0;
	}
	return -1;
}

int policy_auth_network(struct policy_limits *pl, struct store *st, int64_t tenant_id,
                        int64_t credential_id, const struct sockaddr *sa, int refuse_outside,
                        int *outside_r, int *new_r, char network_r[STORE_CIDR_MAX + 1])
{
	struct store_credential_network *bound = NULL;
	size_t n = 0, before = 0;
	char *err = NULL;
	int inside = 0, isnew = 0;

	*outside_r = 0;
	*new_r = 0;
	network_r[0] = '\0';
	if (store_credential_network_list(st, credential_id, &bound, &n, &err) != 0)
		goto fail;
	for (size_t i = 0; i < n && !inside; i++) {
		struct net_cidr c;
		const char *why;
		if (net_cidr_parse(bound[i].cidr, &c, &why) == 0 && net_cidr_match(&c, sa))
			inside = 1;
	}
	free(bound);
	*outside_r = n > 0 && !inside;
	if (policy_address_network(sa, network_r) < 0)
		return 0; /* not IP (never on a listener): nothing to learn */
	/* A refused login is not the login's network: recording it would make
	 * the thief's network "seen" and hide it from the signal later. */
	if (!(*outside_r && refuse_outside) &&
	    store_credential_seen(st, credential_id, network_r, util_wall_seconds(), &isnew,
	                          &before, &err) != 0)
		goto fail;
	*new_r = isnew && before > 0;
	policy_limits_count_auth(pl, tenant_id, credential_id, *outside_r, *new_r,
	                         util_wall_seconds());
	return 0;
fail:
	log_err("policy credential networks not read credential=%lld error=\"%s\"",
	        (long long)credential_id, err ? err : "?");
	free(err);
	return -1;
}
