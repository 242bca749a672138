/*
 * deliver: from the spool to the recipients' MX (or a configured route):
 * routing, outbound TLS policy, delivery sessions, retries, DSN bounces.
 * Sections: the engine (sluiced's delivery thread), MX routing, DSNs.
 */
#ifndef SLUICE_DELIVER_H
#define SLUICE_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "util/config.h"

/* ---- the engine ----------------------------------------------------------- */

struct deliver_engine;

struct deliver_stats {
	uint64_t delivered; /* recipients */
	uint64_t deferred;  /* recipient attempts that will be retried */
	uint64_t bounced;   /* recipients failed for good */
};

/* Start the delivery thread: load the queue from spool (envelopes only),
 * then deliver.  cfg and spool must outlive the engine.  0 ok, -1 with
 * *err_r (malloc'd). */
int deliver_engine_start(const struct sluice_config *cfg, struct spool *spool,
			 struct deliver_engine **e_r, char **err_r);
/* Stop: connections in progress are closed (their recipients stay queued
 * and are tried again at the next start), the thread is joined; the engine
 * makes no more spool calls.  Call before spool_close(): the spool's last
 * callbacks may still notify the engine, which is freed after it. */
void deliver_engine_stop(struct deliver_engine *e);
/* After spool_close().  Sets *e to NULL. */
void deliver_engine_free(struct deliver_engine **e);
/* A message is durable in the spool: deliver it.  Any thread; ignored
 * once stopped. */
void deliver_engine_notify(struct deliver_engine *e, const char *id);
/* The operator's queue commands, from any thread but the engine's own:
 * op is "retry" (every pending recipient now), "hold", "release",
 * "delete", "bounce" (fail every pending recipient, with a DSN).  Waits
 * until the engine did it.  0 ok, -1 refused; text_r says what happened. */
int deliver_engine_command(struct deliver_engine *e, const char *op, const char *id,
			   char *text_r, size_t text_size);
void deliver_engine_stats(struct deliver_engine *e, struct deliver_stats *stats_r);

#endif
