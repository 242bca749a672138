/*
 * smtp server internals shared by server.c (session, input, replies),
 * server_cmd.c (command table), server_auth.c (AUTH) and server_data.c
 * (message body).  Nothing outside src/smtp includes this.
 */
#ifndef SLUICE_SMTP_SERVER_PRIVATE_H
#define SLUICE_SMTP_SERVER_PRIVATE_H

#include "smtp/smtp.h"

/* MAIL and RCPT lines may carry parameters beyond the 512 octets of RFC
 * 5321: SIZE adds 26 (RFC 1870), BODY= 14 (RFC 6152), SMTPUTF8 10 (RFC
 * 6531), AUTH= 500 (RFC 4954). */
#define SMTP_MAIL_LINE_MAX (SMTP_COMMAND_LINE_MAX + 26 + 14 + 10 + 500)
/* Longest text line of a message, without its CRLF (RFC 5321 4.5.3.1.6). */
#define SMTP_DATA_LINE_MAX (SMTP_TEXT_LINE_MAX - 2)
/* Decoded AUTH fields (authzid, username, password), octets each. */
#define SMTP_AUTH_FIELD_MAX 256
/* Buffers that grew past this are freed, not kept, once they empty. */
#define SMTP_SERVER_KEEP_MAX 1024
/* Starting allocation of the recipient array. */
#define SMTP_SERVER_RCPT_INITIAL 4

/* address.c: reasons the server maps to their own reply codes. */
extern const char smtp_address_why_no_domain[];
extern const char smtp_address_why_utf8[];

enum smtp_server_phase {
	SMTP_PHASE_COMMAND, /* reading command lines */
	SMTP_PHASE_AUTH,    /* reading an AUTH continuation line */
	SMTP_PHASE_DATA,    /* reading the message after 354 */
	SMTP_PHASE_CLOSED,  /* nothing more is read or run */
};

/* Where the DATA reader stands in the byte stream. */
enum smtp_data_state {
	SMTP_DATA_BOL,    /* at the start of a line that followed a real CRLF */
	SMTP_DATA_DOT,    /* "." at the start of a line */
	SMTP_DATA_DOT_CR, /* ".\r" at the start of a line */
	SMTP_DATA_MID,    /* inside a line */
	SMTP_DATA_CR,     /* "\r" inside a line, LF expected */
};

enum smtp_auth_step {
	SMTP_AUTH_NONE,
	SMTP_AUTH_PLAIN_RESPONSE, /* 334 sent, waiting for the PLAIN response */
	SMTP_AUTH_LOGIN_USERNAME, /* 334 VXNlcm5hbWU6 sent */
	SMTP_AUTH_LOGIN_PASSWORD, /* 334 UGFzc3dvcmQ6 sent */
};

/* Decoded credentials of the AUTH exchange in progress; heap-allocated
 * only during the exchange, wiped before it is freed. */
struct smtp_server_auth {
	const char *mechanism;
	char authzid[SMTP_AUTH_FIELD_MAX + 1];
	char username[SMTP_AUTH_FIELD_MAX + 1];
	char password[SMTP_AUTH_FIELD_MAX + 1];
};

struct smtp_server {
	struct smtp_server_config cfg; /* strings borrowed from the caller */
	enum smtp_server_phase phase;

	/* The event the caller must answer (NEED_INPUT when none). */
	enum smtp_server_event_type pending;
	struct smtp_server_event ev;

	struct buf in;     /* received, not yet run */
	struct buf out;    /* replies not yet sent */
	int discarding;    /* dropping an oversize line up to its LF */
	size_t line_total; /* octets of the line being run, CRLF included */

	char *helo; /* HELO/EHLO argument, NULL before */
	unsigned esmtp : 1;
	unsigned authenticated : 1;
	unsigned tls_active : 1;
	unsigned in_transaction : 1; /* MAIL accepted */
	unsigned smtputf8 : 1;
	unsigned body_8bit : 1;
	unsigned msg_taken : 1;
	uint32_t errors;

	/* Transaction: the sender exists from MAIL until reset; rcpts holds
	 * nrcpt accepted recipients and, during a RCPT event, the candidate
	 * at index nrcpt. */
	struct smtp_address *sender;
	struct smtp_address *rcpts;
	size_t nrcpt, rcpt_cap;

	/* AUTH exchange in progress. */
	enum smtp_auth_step auth_step;
	struct smtp_server_auth *auth;

	/* DATA reader. */
	struct buf msg;
	enum smtp_data_state data_state;
	size_t data_line_len; /* octets of the current line as sent */
	unsigned data_bare : 1, data_nul : 1, data_long : 1, data_big : 1, data_oom : 1;
};

/* server.c */
void smtp_server_reply(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
    UTIL_PRINTF(4, 5);
/* A reply to a bad command: counts toward max_errors, may close. */
void smtp_server_error(struct smtp_server *s, int code, const char *enhanced, const char *fmt, ...)
    UTIL_PRINTF(4, 5);
/* Append raw reply text (multi-line replies). */
void smtp_server_reply_raw(struct smtp_server *s, const char *text, size_t len);
void smtp_server_close(struct smtp_server *s);
void smtp_server_oom(struct smtp_server *s);
void smtp_server_reset_transaction(struct smtp_server *s);
void smtp_server_set_pending(struct smtp_server *s, enum smtp_server_event_type type);
/* Grow b so it holds extra more octets, never past limit octets of data. */
int smtp_server_buf_grow(struct buf *b, size_t extra, size_t limit);

/* server_cmd.c: run one complete command line, without its CRLF; line is
 * in the input buffer, writable, NUL-terminated at len. */
void smtp_server_command(struct smtp_server *s, char *line, size_t len);
/* The longest line the command starting at p may have, CRLF included. */
size_t smtp_server_line_limit(const struct smtp_server *s, const char *p, size_t len);

/* server_auth.c */
/* AUTH's action in the command table (its check is in server_cmd.c). */
void smtp_server_cmd_auth(struct smtp_server *s, const char *args);
void smtp_server_auth_line(struct smtp_server *s, const char *line, size_t len);
void smtp_server_auth_decided(struct smtp_server *s, int accepted);
void smtp_server_auth_clear(struct smtp_server *s);

/* server_data.c */
void smtp_server_data_begin(struct smtp_server *s);
/* Consume buffered message bytes; returns 1 when the end marker was seen. */
int smtp_server_data_consume(struct smtp_server *s);
void smtp_server_data_end(struct smtp_server *s);

#endif
