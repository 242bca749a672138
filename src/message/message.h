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

/* Append "Received: ..." (folded, CRLF) to out.  Client-supplied values
 * are sanitised ('?' for anything that could break the header) and capped
 * at 255 bytes; NULL helo/client_name/client_addr show as "unknown".
 * 0 ok, -1 no memory (out unchanged). */
int message_received(const struct message_trace *t, struct buf *out);

/* Find a header field by name (case-insensitive) in the header section of
 * data (ends at the first empty line, or at the end of data when there is
 * none); folded continuation lines are not fields.  1 found, 0 not. */
int message_has_header(const char *data, size_t len, const char *name);

/* Build the final message: Received + (Message-ID if missing) + (Date if
 * missing) + data, appended to out.  RFC 6409 8.3 lets a submission server
 * add a missing Date and Message-ID; the Message-ID is
 * "<queue_id.when@by>".  data is copied unchanged, even when it has no
 * empty line between header and body.  0 ok, -1 no memory (out unchanged). */
int message_assemble(const struct message_trace *t, const char *data, size_t len,
		     struct buf *out);

/* Count Received headers (mail loop detection).  */
size_t message_count_received(const char *data, size_t len);

#endif
