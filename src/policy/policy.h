/*
 * policy: the decisions an SMTP stage asks for.  For now: sender
 * authorization at MAIL FROM and the trusted networks that may use the
 * relay listener without AUTH.  Each check fills a verdict with the reply
 * the client gets, so every caller (SMTP now, the HTTP API later) refuses
 * with the same code and text.
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/net.h"
#include "smtp/smtp.h"
#include "store/store.h"

struct policy_verdict {
	int code;             /* SMTP reply code; 2xx accepts */
	char enhanced[16];
	char text[256];
};

/* Who is sending: an authenticated credential or a trusted network. */
struct policy_client {
	int64_t tenant_id;
	const char *tenant;    /* name, for texts */
	int submission;        /* a submission listener (587/465/2525) */
};

/*
 * MAIL FROM: the tenant may use only its own verified domains; the null
 * sender is refused on submission listeners (bounces come from sluice
 * itself, never from a customer).  A suspended tenant is refused.
 * Returns 0 with *v_r filled, -1 on a store error (v_r then holds 451).
 */
int policy_check_sender(struct store *st, const struct policy_client *c,
			const struct smtp_address *sender, struct policy_verdict *v_r);

/* Trusted networks, loaded from the store and reloaded when it changes. */
struct policy_networks;

struct policy_networks *policy_networks_new(void);
void policy_networks_free(struct policy_networks **nets);
/* Reload if the store's generation moved.  0 ok, -1 error (old list kept). */
int policy_networks_refresh(struct policy_networks *nets, struct store *st);
/* The tenant whose trusted network holds sa (most specific prefix wins):
 * 1 found (*tenant_id_r set), 0 none. */
int policy_networks_match(const struct policy_networks *nets, const struct sockaddr *sa,
			  int64_t *tenant_id_r);

#endif
