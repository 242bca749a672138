/*
 * sluice egress sample: the kernel's blocked-attempt counters into the
 * store, for the tenants' containment score (issue 6, docs/egress.md).
 *
 * sluiced runs without root and cannot read the counters; this command,
 * run as root every minute (etc/sluice-egress-sample.timer), reads
 * them through the nft helper like `egress blocked`, names each source's
 * tenant from the store's networks, and stores the rise since the last
 * sample per tenant (store_egress_sample.c tells how a counter that
 * started again is read).  sluiced picks the new rows up with its usage
 * flush (cmd/contain_egress.c).  `egress apply` samples first, so counts
 * are not lost when a reload replaces the table.
 */
#include "cmd/cli.h"
#include "egress/egress.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_egress_sample_store(struct cli *cli, const struct egress_status *st, int quiet)
{
	struct store_egress_count *counts = NULL;
	struct store_egress_sample *rows = NULL;
	size_t n = 0, nrows = 0, nsamples = 0;
	int64_t now = util_wall_seconds(), last = 0;
	char *err = NULL;
	int rc;

	if (cli_store(cli) == NULL)
		return CLI_EXIT_ERROR;
	if (st->nblocked > 0 && (counts = calloc(st->nblocked, sizeof *counts)) == NULL)
		return cli_error("out of memory");
	for (size_t i = 0; i < st->nblocked; i++) {
		if (util_strlcpy(counts[n].addr, st->blocked[i].addr, sizeof counts[n].addr) >=
		    sizeof counts[n].addr)
			continue;
		counts[n].tenant_id = st->blocked[i].tenant_id;
		counts[n].packets = st->blocked[i].packets;
		n++;
	}
	/* the id before, to print what this sample wrote */
	if ((rc = store_egress_sample_list(cli->store, 0, now, SIZE_MAX, &rows, &nrows, &err)) !=
	    0) {
		free(counts);
		return cli_store_error(rc, &err, "reading egress samples");
	}
	for (size_t i = 0; i < nrows; i++)
		last = rows[i].id;
	free(rows);
	rc = store_egress_sample_add(cli->store, counts, n, now, &nsamples, &err);
	free(counts);
	if (rc != 0)
		return cli_store_error(rc, &err, "storing the egress sample");
	if (quiet)
		return CLI_EXIT_OK;
	printf("%zu blocked source%s read%s; %zu tenant%s with new attempts\n", n,
	       n == 1 ? "" : "s", st->present ? "" : " (table not loaded)", nsamples,
	       nsamples == 1 ? "" : "s");
	if (nsamples == 0)
		return CLI_EXIT_OK;
	if ((rc = store_egress_sample_list(cli->store, last, now, SIZE_MAX, &rows, &nrows, &err)) !=
	    0)
		return cli_store_error(rc, &err, "reading egress samples");
	for (size_t i = 0; i < nrows; i++)
		printf("  %-40s %10" PRIu64 " attempts from %" PRIu32 " address%s\n",
		       rows[i].tenant, rows[i].attempts, rows[i].sources,
		       rows[i].sources == 1 ? "" : "es");
	free(rows);
	return CLI_EXIT_OK;
}

int cli_egress_sample(struct cli *cli)
{
	struct egress_status st;
	int rc;

	if ((rc = cli_egress_read_named(cli, &st)) != 0)
		return rc;
	rc = cli_egress_sample_store(cli, &st, 0);
	egress_status_free(&st);
	return rc;
}
