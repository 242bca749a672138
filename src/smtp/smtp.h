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
/* Reading a message after 354: the data-block timeout applies (RFC 5321
 * 4.5.3.2.6), not the command timeout. */
int smtp_server_in_data(const struct smtp_server *s);
int smtp_server_smtputf8(const struct smtp_server *s);     /* this transaction */
int smtp_server_body_8bit(const struct smtp_server *s);
/* Memory the session holds now, for the idle-session figure. */
size_t smtp_server_memory(const struct smtp_server *s);

/* ---- client -------------------------------------------------------------- */

/*
 * Client contract (RFC 5321, 3207 STARTTLS, 4954 AUTH, 2920 PIPELINING,
 * 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8, 2034 ENHANCEDSTATUSCODES):
 *   c = smtp_client_new(&cfg);            after connect (and, for
 *                                         SMTP_CLIENT_TLS_IMPLICIT, the
 *                                         TLS handshake): waits for 220
 *   loop:
 *     a = smtp_client_step(c, &ev);
 *     NEED_INPUT -> send smtp_client_output() (the caller reports what it
 *                   wrote with smtp_client_output_consumed() at once),
 *                   read at most smtp_client_wants_input() octets and
 *                   smtp_client_feed() them, or smtp_client_eof(); keep
 *                   reading while output is pending (a pipelined group
 *                   can be large).  Arm the timer with
 *                   smtp_client_timeout_ms() whenever it waits, re-arm it
 *                   on progress; when it fires, smtp_client_timeout().
 *     STARTTLS   -> the STARTTLS command was answered 220 and the output
 *                   is empty.  Read nothing more in plaintext: do the TLS
 *                   handshake, then smtp_client_tls_started() (which sends
 *                   EHLO again).  Bytes the server sent after its 220 were
 *                   discarded by the client (RFC 3207 5: an injection).
 *     READY      -> idle: smtp_client_send(c, &msg) or smtp_client_quit(c).
 *     DONE       -> one message's outcome: ev.rcpts[i] for each recipient.
 *     CLOSED     -> the session is over: flush what output remains (at
 *                   most a QUIT, best effort) and close.  ev.failed says
 *                   whether it failed; then ev.reply says why and applies
 *                   to every recipient not yet answered (ev.rcpts, when a
 *                   message was in progress, already carries it).
 *   smtp_client_free(&c);
 *
 * Outcomes are replies: 2xx delivered, 4xx retry later, 5xx bounce.
 * Failures of the session (timeout, lost connection, 421, protocol
 * error, TLS or AUTH impossible) are 4xx; so is a 5xx greeting (the
 * server refuses this client, not the recipients: Postfix's
 * smtp_skip_5xx_greeting).  Only a 5xx to HELO, after EHLO failed, and
 * the per-message refusals (MAIL, RCPT, DATA) are permanent.
 *
 * Hostile servers: a reply line over SMTP_CLIENT_LINE_MAX, a reply over
 * SMTP_CLIENT_REPLY_LINES_MAX lines or SMTP_CLIENT_REPLY_MAX octets, a
 * line without a code in 200..599, a continuation with another code, a
 * NUL, or bytes nobody asked for all end the session with a 4xx
 * "protocol error".  Memory is bounded whatever the server sends:
 * input by SMTP_CLIENT_INPUT_MAX, body output by chunks.
 */

/* Reply limits; RFC 5321 allows 512 octets a line, servers exceed it. */
#define SMTP_CLIENT_LINE_MAX 4096      /* one reply line, CRLF included */
#define SMTP_CLIENT_REPLY_LINES_MAX 64 /* lines of one reply */
#define SMTP_CLIENT_REPLY_MAX 16384    /* octets of one reply */
#define SMTP_CLIENT_INPUT_MAX 32768    /* input buffered at most */
#define SMTP_CLIENT_TEXT_MAX 512       /* reply text kept, NUL included */
#define SMTP_CLIENT_RCPTS_MAX 1000     /* recipients per smtp_client_send() */
/* An address as smtp_address_format() writes it: UTF-8 local part. */
#define SMTP_CLIENT_ADDRESS_MAX (SMTP_LOCALPART_MAX * 4 + 1 + SMTP_DOMAIN_MAX)

/* RFC 5321 4.5.3.2 defaults, milliseconds. */
#define SMTP_CLIENT_TIMEOUT_GREETING 300000
#define SMTP_CLIENT_TIMEOUT_COMMAND 300000
#define SMTP_CLIENT_TIMEOUT_DATA_INIT 120000
#define SMTP_CLIENT_TIMEOUT_DATA_BLOCK 180000
#define SMTP_CLIENT_TIMEOUT_DATA_END 600000

enum smtp_client_tls {
	SMTP_CLIENT_TLS_NONE,          /* never STARTTLS */
	SMTP_CLIENT_TLS_OPPORTUNISTIC, /* STARTTLS when offered; refused: plaintext */
	SMTP_CLIENT_TLS_REQUIRED,      /* STARTTLS or fail (4.7.10) */
	SMTP_CLIENT_TLS_IMPLICIT,      /* the caller did TLS before the 220 */
};

struct smtp_client_config {
	const char *helo_name; /* our EHLO name; NULL: "localhost" */
	enum smtp_client_tls tls;
	/* NULL user: no AUTH.  AUTH only once TLS is active; PLAIN
	 * preferred, LOGIN otherwise; not possible or refused: the session
	 * fails (4xx, the messages are deferred). */
	const char *auth_user;
	const char *auth_password;
	int no_pipelining; /* one command per reply even when offered */
	/* Per stage, milliseconds; 0: the RFC 5321 default above. */
	uint32_t timeout_greeting_ms;
	uint32_t timeout_command_ms; /* EHLO, HELO, STARTTLS, AUTH, MAIL, RCPT, RSET, QUIT */
	uint32_t timeout_data_init_ms;
	uint32_t timeout_data_block_ms; /* each block of the message sent */
	uint32_t timeout_data_end_ms;   /* the reply to the final "." */
};

/* The command a reply answered (or, for a timeout, the one waited on). */
enum smtp_client_stage {
	SMTP_CLIENT_STAGE_NONE, /* idle, or nothing sent */
	SMTP_CLIENT_STAGE_GREETING,
	SMTP_CLIENT_STAGE_EHLO,
	SMTP_CLIENT_STAGE_HELO,
	SMTP_CLIENT_STAGE_STARTTLS,
	SMTP_CLIENT_STAGE_AUTH,
	SMTP_CLIENT_STAGE_MAIL,
	SMTP_CLIENT_STAGE_RCPT,
	SMTP_CLIENT_STAGE_DATA,     /* DATA, waiting for 354 */
	SMTP_CLIENT_STAGE_BODY,     /* sending the message */
	SMTP_CLIENT_STAGE_DATA_END, /* "." sent, waiting for the reply */
	SMTP_CLIENT_STAGE_RSET,
	SMTP_CLIENT_STAGE_QUIT,
};

struct smtp_client_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* "5.1.1"; "" when the server gave none */
	/* The server's text, lines joined by a space, printable ASCII only
	 * (others become '?'), cut with "..." to fit. */
	char text[SMTP_CLIENT_TEXT_MAX];
	enum smtp_client_stage stage;
	/* 1: not the server's reply as sent: made up by the client (timeout,
	 * SIZE, SMTPUTF8, protocol error) or a 5xx turned into 4xx. */
	int local;
};

enum smtp_client_action {
	SMTP_CLIENT_NEED_INPUT,
	SMTP_CLIENT_STARTTLS,
	SMTP_CLIENT_READY,
	SMTP_CLIENT_DONE,
	SMTP_CLIENT_CLOSED,
};

struct smtp_client_event {
	enum smtp_client_action action;
	/* DONE, and CLOSED while a message was in progress: one final
	 * outcome per recipient of the message, in its order: the RCPT reply
	 * when it was not 2xx, else the reply to the final "." (or to DATA,
	 * or the failure that ended the session).  Valid until the next
	 * smtp_client_send() or smtp_client_free(). */
	const struct smtp_client_reply *rcpts;
	size_t nrcpts;
	/* DONE: the reply that decided the message as a whole (end of data,
	 * or DATA's, MAIL's or the client's own refusal).  CLOSED: why, when
	 * failed; the QUIT reply (or nothing) when not. */
	struct smtp_client_reply reply;
	int failed; /* CLOSED: 0 after QUIT, 1 otherwise */
};

struct smtp_client_message {
	const char *sender;       /* "local@domain", "" for the null sender */
	const char *const *rcpts; /* "local@domain" each */
	size_t nrcpts;            /* 1..SMTP_CLIENT_RCPTS_MAX */
	/* CRLF-terminated lines, not dot-stuffed (a missing final CRLF is
	 * added; a bare CR or LF is sent as CRLF, so the stream never holds
	 * an end-of-data look-alike). */
	const char *data;
	size_t len;
	int eightbit; /* BODY=8BITMIME when offered (sent anyway when not) */
	int smtputf8; /* needs SMTPUTF8 (also implied by a non-ASCII address) */
};

struct smtp_client;

/* What the server's EHLO offered (after STARTTLS: the second EHLO). */
enum smtp_client_ext {
	SMTP_CLIENT_EXT_PIPELINING = 1 << 0,
	SMTP_CLIENT_EXT_SIZE = 1 << 1,
	SMTP_CLIENT_EXT_8BITMIME = 1 << 2,
	SMTP_CLIENT_EXT_SMTPUTF8 = 1 << 3,
	SMTP_CLIENT_EXT_STARTTLS = 1 << 4,
	SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES = 1 << 5,
	SMTP_CLIENT_EXT_AUTH_PLAIN = 1 << 6,
	SMTP_CLIENT_EXT_AUTH_LOGIN = 1 << 7,
};

/* NULL on allocation failure or a bad configuration (a HELO name or
 * credentials that cannot be sent).  cfg strings must outlive the client. */
struct smtp_client *smtp_client_new(const struct smtp_client_config *cfg);
/* Wipes buffered credentials; sets *c to NULL. */
void smtp_client_free(struct smtp_client **c);

/* Space for input now: 0 once closed or during STARTTLS. */
size_t smtp_client_wants_input(const struct smtp_client *c);
/* Bytes from the server; more than smtp_client_wants_input() is a
 * protocol error (the session closes, the excess is not kept). */
void smtp_client_feed(struct smtp_client *c, const void *data, size_t len);
/* The server closed the connection (or the read failed). */
void smtp_client_eof(struct smtp_client *c);
/* The caller's timer for the current stage fired. */
void smtp_client_timeout(struct smtp_client *c);
/* The current stage's timeout in ms (0 when nothing is awaited). */
uint32_t smtp_client_timeout_ms(const struct smtp_client *c);
enum smtp_client_stage smtp_client_stage(const struct smtp_client *c);

/* Bytes to send (a message body is produced a chunk at a time, so call
 * again after consuming); the pointer is valid until the next call on c. */
const char *smtp_client_output(struct smtp_client *c, size_t *len_r);
void smtp_client_output_consumed(struct smtp_client *c, size_t n);

enum smtp_client_action smtp_client_step(struct smtp_client *c, struct smtp_client_event *ev_r);

/* After the TLS handshake that SMTP_CLIENT_STARTTLS asked for: forget the
 * EHLO answer (RFC 3207 4.2) and send EHLO again.  Ignored otherwise. */
void smtp_client_tls_started(struct smtp_client *c);

/* Start a message; only when step() returned READY.  m and everything it
 * points to must stay valid until its DONE (or CLOSED) event.  A
 * recipient (or sender) that is not a valid address gets its own 553
 * without being sent.  Returns 0, or -1 (nothing done) when not READY or
 * m is unusable (no recipients, too many, NULL strings). */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_message *m);
/* Send QUIT (only when READY); CLOSED follows its reply or EOF. */
void smtp_client_quit(struct smtp_client *c);

unsigned smtp_client_extensions(const struct smtp_client *c); /* enum smtp_client_ext bits */
uint64_t smtp_client_size_limit(const struct smtp_client *c); /* SIZE n; 0: none given */
int smtp_client_esmtp(const struct smtp_client *c);           /* EHLO was accepted */
int smtp_client_tls_active(const struct smtp_client *c);
int smtp_client_authenticated(const struct smtp_client *c);
/* "RCPT TO", "end of DATA"...: for logs and DSNs ("in reply to ..."). */
const char *smtp_client_stage_name(enum smtp_client_stage stage);
/* r->enhanced, or one derived from the code ("4.0.0", "5.0.0", "2.0.0"). */
const char *smtp_client_reply_status(const struct smtp_client_reply *r);
/* Memory the client holds now. */
size_t smtp_client_memory(const struct smtp_client *c);

#endif
