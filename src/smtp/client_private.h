/*
 * smtp client internals shared by client.c (session: greeting, EHLO,
 * STARTTLS, the step loop, output, failures), client_reply.c (reply
 * framing and parsing, EHLO keywords), client_auth.c (AUTH) and
 * client_txn.c (one message:
 * MAIL, RCPT, DATA, the body, outcomes).  Nothing outside src/smtp
 * includes this.
 */
#ifndef SLUICE_SMTP_CLIENT_PRIVATE_H
#define SLUICE_SMTP_CLIENT_PRIVATE_H

#include "smtp/smtp.h"

/* Message body octets produced into the output at a time (a few more
 * when the last octet in expands). */
#define SMTP_CLIENT_CHUNK 16384
/* Buffers that grew past this are freed, not kept, once they empty. */
#define SMTP_CLIENT_KEEP_MAX 1024

enum smtp_client_state {
	CLIENT_GREETING,   /* waiting for the 220 */
	CLIENT_EHLO,       /* EHLO sent */
	CLIENT_HELO,       /* HELO sent, after EHLO got a 5xx */
	CLIENT_STARTTLS,   /* STARTTLS sent */
	CLIENT_HANDSHAKE,  /* STARTTLS got 220: waiting for tls_started() */
	CLIENT_AUTH,       /* AUTH PLAIN <response> sent */
	CLIENT_AUTH_LOGIN, /* AUTH LOGIN sent */
	CLIENT_AUTH_USER,  /* AUTH LOGIN: the username sent */
	CLIENT_AUTH_PASS,  /* AUTH LOGIN: the password sent */
	CLIENT_READY,      /* idle: a message or QUIT may start */
	CLIENT_TXN,        /* MAIL, RCPT, DATA in flight */
	CLIENT_BODY,       /* 354 received: the body, then its reply */
	CLIENT_RSET,       /* RSET sent after a transaction left open */
	CLIENT_QUIT,       /* QUIT sent */
	CLIENT_CLOSED,
};

/* A command sent (or queued) whose reply has not come yet.  end is the
 * position in the output stream just past the command: a reply is only
 * legitimate once the command was handed to the caller to send. */
struct smtp_client_cmd {
	enum smtp_client_stage stage;
	size_t rcpt; /* RCPT: the recipient's index in the message */
	uint64_t end;
};

/* Where a recipient of the message in progress stands. */
enum smtp_client_rcpt_state {
	CLIENT_RCPT_WAIT,     /* to be sent, or sent and not answered */
	CLIENT_RCPT_ACCEPTED, /* 2xx to RCPT: the outcome is DATA's */
	CLIENT_RCPT_FINAL,    /* refused (or refused locally): outcome known */
};

/* The body generator's place in a line. */
enum smtp_client_body_state {
	CLIENT_BODY_BOL, /* at the start of a line */
	CLIENT_BODY_MID, /* inside a line */
	CLIENT_BODY_CR,  /* after a CR from the message, LF expected */
};

struct smtp_client {
	struct smtp_client_config cfg; /* strings borrowed from the caller */
	enum smtp_client_state state;

	struct buf in;           /* received, not yet parsed */
	struct buf out;          /* to send */
	uint64_t out_base;       /* stream position of out.data[0]: octets consumed */
	unsigned out_secret : 1; /* out holds credentials: wipe as it goes */
	unsigned eof : 1;
	unsigned tls_active : 1;
	unsigned esmtp : 1;
	unsigned authenticated : 1;
	unsigned starttls_refused : 1; /* opportunistic TLS gave up */

	/* Replies awaited, oldest first: cmds[cmd_head .. ncmds). */
	struct smtp_client_cmd *cmds;
	size_t cmd_head, ncmds, cmd_cap;

	/* Reply parser, resumable: the current reply's complete lines so
	 * far span in.data[0 .. scan) and number lines, all with code. */
	size_t scan;
	unsigned lines;
	int code;

	/* What EHLO offered. */
	unsigned ext;
	uint64_t size_limit;

	/* A DONE event waiting to be returned (once). */
	unsigned done_pending : 1;
	struct smtp_client_event done_ev;

	/* CLOSED: why; close_rcpts says the outcomes of a message in
	 * progress were filled with close_reply. */
	struct smtp_client_reply close_reply;
	unsigned close_failed : 1;
	unsigned close_rcpts : 1;

	/* The message in progress (txn), borrowed from the caller. */
	unsigned txn : 1;
	unsigned pipelined : 1;    /* MAIL, every RCPT and DATA went at once */
	unsigned utf8 : 1;         /* SMTPUTF8 needed */
	unsigned body_done : 1;    /* the final "." is in the output */
	unsigned body_discard : 1; /* 354 without a recipient: "." only */
	int mail_state;            /* 0 awaited, 1 accepted, -1 refused */
	struct smtp_client_message msg;
	struct smtp_client_reply *results; /* one per recipient */
	unsigned char *rstate;             /* enum smtp_client_rcpt_state */
	size_t results_cap;
	size_t next_rcpt; /* without pipelining: the next recipient to send */
	size_t accepted;
	struct smtp_client_reply decided; /* the last refusal, for DONE */
	uint64_t msg_size;                /* SIZE= (RFC 1870: before dot-stuffing) */
	size_t body_pos;
	enum smtp_client_body_state body_state;
};

/* client.c */
/* Await a reply of that stage for what ends at stream position end. */
int smtp_client_expect(struct smtp_client *c, enum smtp_client_stage stage, size_t rcpt,
                       uint64_t end);
/* Queue a command line (without CRLF) awaiting a reply of that stage. */
int smtp_client_command(struct smtp_client *c, enum smtp_client_stage stage, size_t rcpt,
                        const char *fmt, ...) UTIL_PRINTF(4, 5);
/* End the session with a failure; quit: queue a polite QUIT. */
void smtp_client_fail(struct smtp_client *c, const struct smtp_client_reply *why, int quit);
/* Fail with a locally made-up reply. */
void smtp_client_fail_local(struct smtp_client *c, int code, const char *enhanced,
                            enum smtp_client_stage stage, const char *fmt, ...) UTIL_PRINTF(5, 6);
void smtp_client_protocol_error(struct smtp_client *c, enum smtp_client_stage stage,
                                const char *what);
void smtp_client_oom(struct smtp_client *c);
/* A reply refusing what the session needs: fail with it, as a 4xx. */
void smtp_client_refused(struct smtp_client *c, const struct smtp_client_reply *r);
/* The oldest command awaiting a reply, or NULL. */
struct smtp_client_cmd *smtp_client_head(struct smtp_client *c);

/* client_reply.c */
/* Take one complete reply from the input.  Returns 1 with *r filled and
 * *len_r its octets (still in the input), 0 when more input is needed, -1
 * with *why_r (static) when the input is not a valid reply. */
int smtp_client_reply_parse(struct smtp_client *c, struct smtp_client_reply *r, size_t *len_r,
                            const char **why_r);
/* Fill c->ext and c->size_limit from an EHLO reply's raw octets. */
void smtp_client_ehlo_parse(struct smtp_client *c, const char *raw, size_t len);
void smtp_client_reply_set(struct smtp_client_reply *r, int code, const char *enhanced,
                           enum smtp_client_stage stage, const char *fmt, ...) UTIL_PRINTF(5, 6);
void smtp_client_reply_vset(struct smtp_client_reply *r, int code, const char *enhanced,
                            enum smtp_client_stage stage, const char *fmt, va_list ap)
    UTIL_PRINTF(5, 0);
/* A 5xx becomes the matching 4xx (marked local): the session failed, not
 * the recipients. */
void smtp_client_reply_temporary(struct smtp_client_reply *r);

/* client_auth.c */
/* The credentials can be sent (or there are none). */
int smtp_client_auth_config_ok(const struct smtp_client_config *cfg);
/* EHLO done over TLS: start AUTH, or fail when it cannot be done. */
void smtp_client_auth_start(struct smtp_client *c);
void smtp_client_auth_reply(struct smtp_client *c, const struct smtp_client_reply *r);

/* client_txn.c */
void smtp_client_txn_reply(struct smtp_client *c, const struct smtp_client_cmd *cmd,
                           const struct smtp_client_reply *r);
void smtp_client_body_reply(struct smtp_client *c, const struct smtp_client_cmd *cmd,
                            const struct smtp_client_reply *r);
/* Produce more of the body into the output, when it is being sent. */
void smtp_client_body_fill(struct smtp_client *c);
/* The session ends: every recipient not yet answered gets why. */
void smtp_client_txn_abort(struct smtp_client *c, const struct smtp_client_reply *why);
void smtp_client_txn_free(struct smtp_client *c);

#endif
