/*
 * signer: sluiced's DKIM keys and the threads that sign with them.
 *
 * Keys are loaded from the store once and again only when the dkim_keys
 * table changed (checked when the store's generation moves, as
 * policy_networks does), never per message from disk, and kept parsed in
 * a reference-counted snapshot: a reload never frees keys a thread is
 * signing with.
 *
 * Signing costs about a millisecond of CPU per message (RSA-2048; Ed25519
 * a tenth of that), which on the event loop would cap a node at some
 * 800 messages a second.  So, like argon2 (auth/pool.c), it runs on a pool
 * of threads: signer_submit() hands a message over, a pool thread signs
 * it for its From: domain (RSA-SHA256 and Ed25519-SHA256), puts the
 * signatures on top and passes it to spool_submit() itself; the spool's
 * completion reaches the session as it always did.
 *
 * signer_new/refresh/submit/stop/free run on the loop thread.
 */
#ifndef SLUICE_SIGNER_H
#define SLUICE_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "spool/spool.h"
#include "store/store.h"
#include "util/util.h"

struct signer;

/* threads: pool size, 0 for one per online CPU.  NULL when out of memory
 * or a thread would not start. */
struct signer *signer_new(unsigned threads);
/* Sign and spool every message already submitted, then end the threads.
 * Before spool_close(). */
void signer_stop(struct signer *s);
void signer_free(struct signer **s);
/* Reload when the keys changed.  0 ok, -1 error (old keys kept). */
int signer_refresh(struct signer *s, struct store *st);
/* 1 when domain has an active key. */
int signer_has_keys(const struct signer *s, const char *domain);
/* Queue m for signing for domain, then spool_submit(spool, m', cb, ctx)
 * on a pool thread, where m' is m with msg signed.  m is copied; msg is
 * taken (left empty).  A signing failure spools the message unsigned
 * (logged); a refused spool_submit calls cb with -EIO, so cb runs exactly
 * once either way.  0 queued, -1 not (out of memory, stopping): m and msg
 * untouched, cb not called. */
int signer_submit(struct signer *s, const char *domain, struct spool *spool,
                  const struct spool_message *m, struct buf *msg, spool_done_cb *cb, void *ctx);

/* What the pool did since start; any thread. */
struct signer_stats {
	uint64_t rsa, ed25519; /* signatures made, per algorithm */
	uint64_t failed;       /* messages spooled unsigned: signing failed */
};
void signer_stats(struct signer *s, struct signer_stats *r);

/* The signatures of msg for domain from the current keys, appended to
 * sigs_out; the number made (0: no keys), or -1 with *why_r.  Synchronous:
 * for tests and benchmarks. */
int signer_sign_now(struct signer *s, const char *domain, const char *msg, size_t len, int64_t now,
                    struct buf *sigs_out, const char **why_r);

#endif
