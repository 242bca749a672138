/*
 * policy: the decisions an SMTP stage asks for.  For now: sender
 * authorization at MAIL FROM, the From:/Sender: headers at end of DATA,
 * and the trusted networks that may use the relay listener without AUTH.
 * Each check fills a verdict with the reply the client gets, so every
 * caller (SMTP now, the HTTP API later) refuses with the same code and
 * text.
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

/* ---- sender identity in the header section (end of DATA) -------------- */

/* Limits of the scan; past them the message is refused, never half-read. */
#define POLICY_HEADER_SECTION_MAX (1024 * 1024) /* octets before the empty line */
#define POLICY_HEADER_FIELD_MAX 16384           /* one From:/Sender: field, unfolded */
#define POLICY_HEADER_MAILBOXES_MAX 100         /* mailboxes of the From: field */

struct policy_mailbox {
	char local[SMTP_LOCALPART_MAX * 4 + 1]; /* CFWS removed, quoted form kept */
	char domain[SMTP_DOMAIN_MAX + 1];       /* ASCII lower-cased, other octets as sent */
};

/* What the header section says about who sends. */
struct policy_headers {
	size_t from_fields;   /* From: fields in the header section */
	size_t sender_fields; /* Sender: fields */
	int too_large;        /* no empty line within POLICY_HEADER_SECTION_MAX: not parsed */
	/* NULL, or why the first From: field is not an address list (static text);
	 * else its mailboxes, group members included (malloc'ed) */
	const char *from_error;
	struct policy_mailbox *from;
	size_t nfrom;
	/* the first Sender: field: one mailbox, or why not */
	const char *sender_error;
	struct policy_mailbox sender;
};

/*
 * Parse the header section of data (the message as received: CRLF lines;
 * it ends at the first empty line, or at the end of data when there is
 * none).  Every line is scanned, folded lines are unfolded; only the
 * first From: (RFC 5322 3.6.2 mailbox-list; groups too, RFC 6854) and
 * the first Sender: (one mailbox) are parsed; further ones are counted.
 * Display names, quoted strings, nested comments, obs-route and other
 * harmless obsolete forms are accepted; encoded-words stay as they are.
 * A pure function: 0 with *h_r filled, -1 no memory (*h_r empty).
 * Free with policy_headers_clear().
 */
int policy_headers_parse(const char *data, size_t len, struct policy_headers *h_r);
void policy_headers_clear(struct policy_headers *h);

/*
 * The rule (issue 4): exactly one From: field, at most one Sender:, and
 * the domain of every From: mailbox and of the Sender: mailbox is a
 * verified domain of c's tenant (the same look-up as at MAIL FROM; the
 * envelope sender, null or not, does not matter).  Refusals are 550 5.7.1
 * naming the header and the domain (552 5.3.4 for a header section over
 * the limit).  *reason_r is a static key for the log ("from-header",
 * "sender-header", "header-size", "store-error", "ok").  Returns 0 with
 * *v_r filled (2xx accepts), -1 on a store error (451 4.3.0).
 */
int policy_headers_check(struct store *st, const struct policy_client *c,
			 const struct policy_headers *h, struct policy_verdict *v_r,
			 const char **reason_r);
/* Both: parse data, then check.  -1 also when out of memory (451). */
int policy_check_headers(struct store *st, const struct policy_client *c, const char *data,
			 size_t len, struct policy_verdict *v_r, const char **reason_r);

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
