/*
 * message: assembly of an accepted message before it reaches the spool:
 * the Received trace header and a Message-ID when the client sent none.
 * Nothing downstream changes a message after this.
 */
#ifndef SLUICE_MESSAGE_H
#define SLUICE_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct message_trace {
	const char *helo;          /* client's HELO/EHLO name */
	const char *client_addr;   /* numeric */
	const char *client_name;   /* reverse name or NULL */
	const char *by;            /* our hostname */
	const char *queue_id;
	const char *tls_version;   /* NULL when plain */
	const char *tls_cipher;
	int tls_bits;
	const char *auth_user;     /* NULL when not authenticated */
	int esmtp;
	const char *single_rcpt;   /* "for <x>" when one recipient, else NULL */
	int64_t when;              /* unix seconds */
};

/* Append "Received: ..." (folded, CRLF) to out.  0 ok, -1 no memory. */
int message_received(const struct message_trace *t, struct buf *out);

/* Find a header field by name in the header section of data (ends at the
 * first empty line).  1 found, 0 not. */
int message_has_header(const char *data, size_t len, const char *name);

/* Build the final message: Received + (Message-ID if missing) + data.
 * out receives the assembled bytes.  0 ok, -1 no memory. */
int message_assemble(const struct message_trace *t, const char *data, size_t len,
		     struct buf *out);

/* Count Received headers (mail loop detection).  */
size_t message_count_received(const char *data, size_t len);

#endif
