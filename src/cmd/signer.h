/*
 * signer: sluiced's DKIM keys, loaded from the store once and again only
 * when the store's generation moves (as policy_networks does), never per
 * message from disk; and the signing of an accepted message for its
 * From: domain with every active key (RSA-SHA256 and Ed25519-SHA256).
 * Used on the event-loop thread only.
 */
#ifndef SLUICE_SIGNER_H
#define SLUICE_SIGNER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/util.h"

struct signer;

struct signer *signer_new(void);
void signer_free(struct signer **s);
/* Reload when the store changed.  0 ok, -1 error (old keys kept). */
int signer_refresh(struct signer *s, struct store *st);
/* Sign msg (CRLF only, as the spool will hold it) for domain: append one
 * DKIM-Signature field per active key of domain to sigs_out (the caller
 * puts them on top of the message).  Returns the number of signatures,
 * 0 when the domain has no keys, -1 with *why_r when signing failed. */
int signer_sign(struct signer *s, const char *domain, const char *msg, size_t len, int64_t now,
		struct buf *sigs_out, const char **why_r);
/* Selectors used by the last signer_sign of domain, for the log:
 * "s20261130r,s20261130e".  "" when none. */
const char *signer_selectors(const struct signer *s);

#endif
