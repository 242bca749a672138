/*
 * contain_egress: the egress block's blocked port-25 attempts into the
 * tenants' containment scores (issue 6).
 *
 * sluiced cannot read the kernel's counters (CAP_NET_ADMIN in the
 * gateway's namespace); `sluice egress sample`, run as root each minute,
 * stores the rise per tenant (store_egress_sample.c).  With every usage
 * flush, the rows not read yet go to policy_contain_blocked(); a level
 * raised by them is logged and stored like any other.  At start only the
 * rows of the current hour are read: the signal is the hour's, as every
 * other, and older rows were counted before the restart or belong to an
 * hour that is over.
 */
#include "cmd/daemon.h"

#include <stdlib.h>

#define CONTAIN_EGRESS_ROWS 1000 /* sample rows read per flush, at most */

void daemon_contain_egress(struct sluiced *d)
{
	struct store_egress_sample *rows = NULL;
	struct policy_contain_signals sig;
	int64_t now = util_wall_seconds();
	size_t n = 0;
	char *err = NULL;

	if (d->contain == NULL)
		return;
	if (d->egress_sample_since == 0)
		d->egress_sample_since = now - now % 3600;
	if (store_egress_sample_list(d->store, d->egress_sample_id, d->egress_sample_since,
	                             CONTAIN_EGRESS_ROWS, &rows, &n, &err) != 0) {
		log_err("contain egress-read-failed error=\"%s\"", err ? err : "?");
		free(err);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_egress_sample *x = &rows[i];
		enum policy_contain_level before, after;

		d->egress_sample_id = x->id;
		before = policy_contain_level(d->contain, POLICY_TENANT, x->tenant_id, now);
		after = policy_contain_blocked(d->contain, x->tenant_id, x->attempts, x->sources,
		                               now, &sig);
		log_info(
		    "contain egress tenant=\"%s\" blocked=%llu sources=%u score=%.2f egress=%.2f "
		    "level=%s",
		    x->tenant, (unsigned long long)x->attempts, (unsigned)x->sources, sig.total,
		    sig.egress, policy_contain_level_name(after));
		if (after > before)
			daemon_contain_raised(d, 0, POLICY_TENANT, x->tenant_id, x->tenant_id,
			                      x->tenant, after, &sig, NULL);
	}
	free(rows);
}
