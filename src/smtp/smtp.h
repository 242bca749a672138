/*
 * smtp: the SMTP protocol as pure state machines.  No sockets here: the
 * I/O layer feeds received bytes in and sends the output buffer out.
 *
 * Server contract (RFC 5321, RFC 6409 submission):
 *   s = smtp_server_new(&cfg);
 *   smtp_server_greet(s);                 queues the 220 banner
 *   loop:
 *     feed bytes with smtp_server_feed() when smtp_server_wants_input();
 *     ev = smtp_server_step(s, &event);    runs buffered commands
 *     NEED_INPUT -> flush output, read more
 *     STARTTLS   -> flush output, do the TLS handshake, smtp_server_tls_started()
 *     AUTH/MAIL/RCPT/DATA -> decide, then smtp_server_decide() (may be later:
 *                   the machine waits, reading nothing, until it is told)
 *     CLOSE      -> flush output, close
 *   smtp_server_free(&s);
 *
 * Replies are queued in an output buffer, flushed by the caller whenever
 * step() returns (pipelining, RFC 2920: the server may batch replies
 * until it would have to wait for input).
 */
#ifndef SLUICE_SMTP_H
#define SLUICE_SMTP_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* RFC 5321 4.5.3.1 size limits (octets). */
#define SMTP_LOCALPART_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256          /* including < > */
#define SMTP_COMMAND_LINE_MAX 512  /* including CRLF */
#define SMTP_REPLY_LINE_MAX 512    /* including CRLF */
#define SMTP_TEXT_LINE_MAX 1000    /* including CRLF */
#define SMTP_RECIPIENTS_MIN 100    /* a server must accept at least this many */
/* Command-line allowance for AUTH initial responses and MAIL/RCPT
 * parameters (RFC 4954 4: 12288 octets for AUTH lines). */
#define SMTP_AUTH_LINE_MAX 12288
/* Bytes of client input the session buffers at most (pipelined commands). */
#define SMTP_INPUT_MAX 16384

/* ---- addresses ----------------------------------------------------------- */

struct smtp_address {
	char local[SMTP_LOCALPART_MAX * 4 + 1]; /* as sent (quoted form kept) */
	char domain[SMTP_DOMAIN_MAX + 1];       /* lower-cased ASCII, or UTF-8 */
	int is_null;                            /* <> */
	int is_utf8;                            /* non-ASCII in local or domain */
};

enum smtp_address_flags {
	SMTP_ADDRESS_ALLOW_NULL = 1 << 0, /* <> is valid (MAIL FROM) */
	SMTP_ADDRESS_ALLOW_UTF8 = 1 << 1, /* SMTPUTF8 given (RFC 6531) */
};

/*
 * Parse a path "<local@domain>" (source routes "<@a,@b:local@domain>" are
 * accepted and ignored, RFC 5321 4.1.2).  in/len is the path only, without
 * parameters.  Returns 0, or -1 with *why_r set to a static reason.
 * Formats a normalised "local@domain" into a->... on success.
 */
int smtp_address_parse(const char *in, size_t len, int flags, struct smtp_address *a,
		       const char **why_r);
/* "local@domain" (or "" for null) into out; -1 if it does not fit. */
int smtp_address_format(const struct smtp_address *a, char *out, size_t size);

/* ---- server -------------------------------------------------------------- */

struct smtp_server_config {
	const char *hostname;     /* banner, EHLO */
	uint64_t max_message_size;
	uint32_t max_recipients;
	uint32_t max_errors;
	int tls_available;        /* STARTTLS may be offered */
	int tls_active;           /* implicit TLS: already encrypted */
	int auth_required;        /* MAIL needs AUTH first (submission) */
	int auth_offered;         /* AUTH listed (only while TLS active) */
};

struct smtp_server;

enum smtp_server_event_type {
	SMTP_SERVER_NEED_INPUT,
	SMTP_SERVER_STARTTLS,
	SMTP_SERVER_AUTH,
	SMTP_SERVER_MAIL,
	SMTP_SERVER_RCPT,
	SMTP_SERVER_DATA,
	SMTP_SERVER_CLOSE,
};

struct smtp_server_event {
	enum smtp_server_event_type type;
	union {
		struct {
			const char *mechanism; /* "PLAIN" or "LOGIN" */
			const char *authzid;   /* may be "" */
			const char *username;
			const char *password;  /* wiped after smtp_server_decide() */
		} auth;
		struct {
			const struct smtp_address *sender;
			uint64_t size;   /* SIZE= parameter or 0 */
			int body_8bit;   /* BODY=8BITMIME */
			int smtputf8;
		} mail;
		struct {
			const struct smtp_address *rcpt;
		} rcpt;
		struct {
			/* The message as received: dot-unstuffed, CRLF line ends,
			 * without the terminating ".".  Owned by the session until
			 * smtp_server_decide(); smtp_server_take_message() hands it over. */
			const char *data;
			size_t len;
		} data;
	} u;
};

/* Returns NULL on allocation failure.  cfg strings must outlive the session. */
struct smtp_server *smtp_server_new(const struct smtp_server_config *cfg);
void smtp_server_free(struct smtp_server **s);

/* Queue the 220 greeting. */
void smtp_server_greet(struct smtp_server *s);
/* Refuse the session at connect: queue "554 5.7.1 text" and go to CLOSE. */
void smtp_server_refuse(struct smtp_server *s, int code, const char *enhanced, const char *text);

/* Space the session will accept now (0 while it waits for a decision or
 * its input buffer is full).  The caller reads at most that much. */
size_t smtp_server_wants_input(const struct smtp_server *s);
/* Append received bytes; len must not exceed smtp_server_wants_input(). */
void smtp_server_feed(struct smtp_server *s, const char *data, size_t len);
/* The peer closed its side (EOF). */
void smtp_server_eof(struct smtp_server *s);
/* An idle or command timeout fired: queue 421 4.4.2 and CLOSE. */
void smtp_server_timeout(struct smtp_server *s);
/* The daemon is shutting down: queue 421 4.3.2 and CLOSE. */
void smtp_server_shutdown(struct smtp_server *s);

/* Run buffered input until an event needs the caller. */
enum smtp_server_event_type smtp_server_step(struct smtp_server *s,
					     struct smtp_server_event *ev_r);

/* Answer the pending AUTH/MAIL/RCPT/DATA event with a reply.  A 2xx code
 * accepts (AUTH: authenticated; MAIL: transaction open; RCPT: recipient
 * added; DATA: transaction done); anything else refuses.  A 421 also
 * closes the session. */
void smtp_server_decide(struct smtp_server *s, int code, const char *enhanced,
			const char *fmt, ...) UTIL_PRINTF(4, 5);

/* During SMTP_SERVER_DATA: hand the message buffer to the caller, who
 * frees it with free().  The event's data pointer stays valid until then. */
char *smtp_server_take_message(struct smtp_server *s, size_t *len_r);

/* After the handshake that SMTP_SERVER_STARTTLS asked for (RFC 3207: the
 * session forgets everything it knew, including EHLO). */
void smtp_server_tls_started(struct smtp_server *s);

/* Output waiting to be sent, and how much of it was sent. */
const char *smtp_server_output(const struct smtp_server *s, size_t *len_r);
void smtp_server_output_consumed(struct smtp_server *s, size_t n);

/* Accessors for the transaction, valid during MAIL/RCPT/DATA events. */
const struct smtp_address *smtp_server_sender(const struct smtp_server *s);
size_t smtp_server_rcpt_count(const struct smtp_server *s);
const struct smtp_address *smtp_server_rcpt(const struct smtp_server *s, size_t i);
const char *smtp_server_helo(const struct smtp_server *s); /* "" before HELO/EHLO */
int smtp_server_esmtp(const struct smtp_server *s);        /* EHLO was used */
int smtp_server_authenticated(const struct smtp_server *s);
int smtp_server_smtputf8(const struct smtp_server *s);     /* this transaction */
int smtp_server_body_8bit(const struct smtp_server *s);
/* Memory the session holds now, for the idle-session figure. */
size_t smtp_server_memory(const struct smtp_server *s);

#endif
