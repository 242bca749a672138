/*
 * Trusted networks: client addresses that may use the relay listener
 * (port 25) without AUTH, each on behalf of one tenant.  The list lives in
 * the store; a copy is kept here and reloaded only when the store's
 * generation changes, so a connection costs one cheap PRAGMA, not a query.
 * Matching is a linear scan: fine for the tens of networks an operator
 * keeps; a prefix tree would replace it if that ever grows to thousands.
 */
#include "policy/policy.h"

#include <stdlib.h>
#include <string.h>

struct trusted {
	struct net_cidr cidr;
	int64_t tenant_id;
};

struct policy_networks {
	struct trusted *list;
	size_t n;
	int64_t generation;
	int loaded;
};

struct policy_networks *policy_networks_new(void)
{
	return calloc(1, sizeof(struct policy_networks));
}

void policy_networks_free(struct policy_networks **nets)
{
	if (*nets == NULL)
		return;
	free((*nets)->list);
	free(*nets);
	*nets = NULL;
}

int policy_networks_refresh(struct policy_networks *nets, struct store *st)
{
	struct store_network *rows = NULL;
	struct trusted *list;
	size_t n = 0, k = 0;
	char *err = NULL;
	int64_t gen = store_generation(st);

	if (nets->loaded && gen == nets->generation)
		return 0;
	if (store_network_list(st, 0, &rows, &n, &err) != 0) {
		log_err("policy networks reload failed error=\"%s\"", err ? err : "?");
		free(err);
		return -1;
	}
	list = calloc(n ? n : 1, sizeof *list);
	if (list == NULL) {
		free(rows);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why;
		if (net_cidr_parse(rows[i].cidr, &list[k].cidr, &why) < 0) {
			log_warn("policy network skipped cidr=%s reason=\"%s\"", rows[i].cidr, why);
			continue;
		}
		list[k++].tenant_id = rows[i].tenant_id;
	}
	free(rows);
	free(nets->list);
	nets->list = list;
	nets->n = k;
	nets->generation = gen;
	nets->loaded = 1;
	log_debug("policy networks loaded count=%zu", k);
	return 0;
}

int policy_networks_match(const struct policy_networks *nets, const struct sockaddr *sa,
			  int64_t *tenant_id_r)
{
	int best = -1;

	for (size_t i = 0; i < nets->n; i++) {
		if (net_cidr_match(&nets->list[i].cidr, sa) &&
		    (best < 0 || nets->list[i].cidr.prefix > nets->list[best].cidr.prefix))
			best = (int)i;
	}
	if (best < 0)
		return 0;
	*tenant_id_r = nets->list[best].tenant_id;
	return 1;
}
