/*
 * message: assembly of an accepted message before it reaches the spool:
 * the Received trace header, a Message-ID when the client sent none, and
 * the DKIM signatures (dkim.c).  Nothing downstream changes a message
 * after this.
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

/* ---- DKIM signing (dkim.c) ----------------------------------------------
 *
 * RFC 6376 signatures with relaxed/relaxed canonicalization, a=rsa-sha256
 * (RFC 8301: 2048 to 8192 bit keys) and a=ed25519-sha256 (RFC 8463).
 * Pure: no I/O, no store; keys come in as bytes, headers go out in a buf.
 * A loaded key is read-only, so threads may sign with one key at once.
 */

#define DKIM_FIELD_NAME_MAX 64   /* longest header name accepted in h= */
#define DKIM_SIGN_HEADERS_MAX 128 /* h= entries, over-signing included */
#define DKIM_DOMAIN_MAX 253
#define DKIM_LINE_MAX 78          /* folding width of the DKIM-Signature header */

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };

struct dkim_key;

/* Load a private key from PEM: "RSA PRIVATE KEY" (PKCS#1) or "PRIVATE KEY"
 * (PKCS#8, RSA or Ed25519).  Other key types and RSA outside 2048..8192
 * bits are refused.  0 ok, -1 with *why_r set to a static reason. */
int dkim_key_from_pem(const char *pem, size_t len, struct dkim_key **key_r, const char **why_r);
/* An Ed25519 key from its raw 32-byte seed (RFC 8032 private key). */
int dkim_key_from_ed25519_seed(const unsigned char seed[32], struct dkim_key **key_r,
			       const char **why_r);
void dkim_key_free(struct dkim_key **key);
enum dkim_alg dkim_key_alg(const struct dkim_key *key);
/* Append the selector's TXT record value: "v=DKIM1; k=rsa; p=<base64 DER
 * SubjectPublicKeyInfo>" or "v=DKIM1; k=ed25519; p=<base64 of the raw
 * 32-byte public key>" (RFC 8463 4.2).  An RSA-2048 value is ~410 bytes:
 * whoever publishes it splits it into <= 255-byte character-strings.
 * 0 ok, -1 no memory (out unchanged). */
int dkim_key_dns_record(const struct dkim_key *key, struct buf *out);
/* Generate a key (RSA: 2048 bits) and append it as unencrypted PKCS#8
 * PEM.  The caller owns secret bytes in out: util_wipe() before freeing. */
int dkim_key_generate(enum dkim_alg alg, struct buf *pem_out, const char **why_r);

/* What dkim_sign() needs besides the key and the message.  Strings are
 * ASCII: domain and selector are LDH labels (IDNs as A-labels); identity
 * is "[local]@domain" with domain equal to, or under, d=. */
struct dkim_sign_params {
	const char *domain;   /* d= */
	const char *selector; /* s= */
	const char *identity; /* i=, NULL to leave it out (verifiers use "@d") */
	int64_t timestamp;    /* t=, unix seconds (the caller's "now") */
	int64_t expire;       /* x=, 0 for none; else must be > timestamp */
	/* NULL: the default set (below).  Else a NULL-terminated list written
	 * to h= as given (lower-cased), repeats allowed: a name listed more
	 * often than present over-signs it.  It must include From. */
	const char *const *headers;
};

/* Sign msg (the whole message as the spool holds it: header section,
 * empty line, body; CRLF line ends only) and append the complete
 * "DKIM-Signature: ...\r\n" field, folded at DKIM_LINE_MAX columns (only
 * a single d=, s= or i= value can make a line longer), ready to prepend.
 *
 * Default h=: each RFC 6376 5.4.1 recommended field present, once per
 * instance (From, Reply-To, Subject, Date, To, Cc, Resent-Date,
 * Resent-From, Resent-Sender, Resent-To, Resent-Cc, Resent-Message-ID,
 * In-Reply-To, References, List-Id, List-Help, List-Unsubscribe,
 * List-Unsubscribe-Post, List-Subscribe, List-Post, List-Owner,
 * List-Archive, MIME-Version, Content-Type, Content-Transfer-Encoding,
 * Message-ID, Sender), then From, To, Subject and Date once more each, so
 * adding any of them later breaks the signature.  Repeated fields are
 * taken bottom-up (RFC 6376 5.4.2).
 *
 * Two signatures (RSA and Ed25519) are two calls on the same unsigned
 * message; the caller prepends both.  Neither covers the other (h= never
 * holds DKIM-Signature unless a caller lists it), as is RFC practice, so
 * their order does not matter.
 *
 * Refused: a bare LF or bare CR anywhere, more than DKIM_SIGN_HEADERS_MAX
 * h= entries, bad parameters.  No header/body separator means all header,
 * empty body.  Header bytes (8-bit, UTF-8, NUL) are signed as they are.
 * 0 ok, -1 with *why_r set to a static reason (out unchanged). */
int dkim_sign(const struct dkim_key *key, const struct dkim_sign_params *p, const char *msg,
	      size_t len, struct buf *out, const char **why_r);

/* The value of tag in a tag-list ("v=DKIM1; k=rsa; p=..." of RFC 6376
 * 3.2, also DMARC's), with every whitespace removed (folding and the
 * spaces allowed inside base64), into out (NUL-terminated, cut at size -
 * 1: a longer value is never equal to one that fits).  Tag names compare
 * exactly.  1 found, 0 not.  rec comes from DNS: any bytes, NUL-ended. */
int dkim_tag_value(const char *rec, const char *tag, char *out, size_t size);

/* Relaxed canonicalization, exposed for tests.  dkim_canon_header takes
 * one field ("Name: value" with its folds, without the final CRLF) and
 * appends "name:value\r\n" (RFC 6376 3.4.2).  dkim_canon_body appends the
 * relaxed body (3.4.4): empty for an empty body.  -1 no memory. */
int dkim_canon_header(const char *field, size_t len, struct buf *out);
int dkim_canon_body(const char *body, size_t len, struct buf *out);

#endif
