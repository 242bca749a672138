/*
 * The message body after 354 (RFC 5321 4.1.1.4, 4.5.2).
 *
 * A byte-driven state machine, so it resumes anywhere in the stream: only
 * CRLF "." CRLF ends the message, and only when that first CRLF was a
 * real one (or the "." opens the first line).  Bare CR, bare LF and NUL
 * never end anything: they mark the message refused and reading goes on
 * to the real end, so nothing the client smuggled behind a lone LF or CR
 * is ever read as a command (SMTP smuggling).  Lines over 998 octets and
 * messages over max_message_size are refused at the end too; the message
 * buffer never holds more than max_message_size octets (plus its NUL).
 *
 * Stored form: dot-unstuffed, CRLF line ends, without the final ".".
 */
#include "smtp/server_private.h"

#include <string.h>

void smtp_server_data_begin(struct smtp_server *s)
{
	buf_free(&s->msg);
	s->msg_taken = 0;
	s->data_state = SMTP_DATA_BOL;
	s->data_line_len = 0;
	s->data_bare = s->data_nul = s->data_long = s->data_big = s->data_oom = 0;
	s->phase = SMTP_PHASE_DATA;
}

static void data_store(struct smtp_server *s, const char *p, size_t n)
{
	uint64_t max = s->cfg.max_message_size;

	if (s->data_big || s->data_oom || s->data_bare || s->data_nul)
		return; /* refused anyway: keep nothing more */
	if (n > max || s->msg.len > max - n) {
		s->data_big = 1;
		buf_free(&s->msg);
		return;
	}
	if (smtp_server_buf_grow(&s->msg, n, max > SIZE_MAX - 2 ? SIZE_MAX - 2 : (size_t)max) < 0 ||
	    buf_append(&s->msg, p, n) < 0) {
		s->data_oom = 1;
		buf_free(&s->msg);
	}
}

static void data_line_octets(struct smtp_server *s, size_t n)
{
	s->data_line_len += n;
	if (s->data_line_len > SMTP_DATA_LINE_MAX)
		s->data_long = 1;
}

int smtp_server_data_consume(struct smtp_server *s)
{
	const char *start = s->in.data, *p = start, *end = start + s->in.len;
	int done = 0;

	while (p < end && !done) {
		unsigned char c = (unsigned char)*p;

		switch (s->data_state) {
		case SMTP_DATA_BOL:
			s->data_line_len = 0;
			if (c == '.') {
				/* Unstuff: the dot is dropped whatever follows. */
				data_line_octets(s, 1);
				s->data_state = SMTP_DATA_DOT;
				p++;
			} else {
				s->data_state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_DOT:
			if (c == '\r') {
				s->data_state = SMTP_DATA_DOT_CR;
				p++;
			} else {
				s->data_state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_DOT_CR:
			if (c == '\n') {
				p++;
				done = 1;
			} else {
				/* ".\r" then not LF: a bare CR, not the end. */
				s->data_bare = 1;
				data_line_octets(s, 1);
				s->data_state = SMTP_DATA_MID;
			}
			break;
		case SMTP_DATA_MID: {
			const char *q = p;

			while (q < end && *q != '\r' && *q != '\n' && *q != '\0')
				q++;
			if (q > p) {
				data_line_octets(s, (size_t)(q - p));
				data_store(s, p, (size_t)(q - p));
				p = q;
				break;
			}
			if (c == '\r') {
				s->data_state = SMTP_DATA_CR;
			} else if (c == '\n') {
				s->data_bare = 1;
				data_line_octets(s, 1);
			} else {
				s->data_nul = 1;
				data_line_octets(s, 1);
			}
			p++;
			break;
		}
		case SMTP_DATA_CR:
			if (c == '\n') {
				data_store(s, "\r\n", 2);
				s->data_state = SMTP_DATA_BOL;
				p++;
			} else {
				/* Bare CR; c is looked at again inside the line
				 * (it may itself be the CR of a real CRLF). */
				s->data_bare = 1;
				data_line_octets(s, 1);
				s->data_state = SMTP_DATA_MID;
			}
			break;
		}
	}
	buf_consume(&s->in, (size_t)(p - start));
	return done;
}

/* After CRLF.CRLF: refuse what was marked, or hand the message over. */
void smtp_server_data_end(struct smtp_server *s)
{
	const char *why = NULL;
	int code = 550;
	const char *enhanced = "5.6.0";

	s->phase = SMTP_PHASE_COMMAND;
	if (s->data_nul) {
		why = "Message refused: NUL character";
	} else if (s->data_bare) {
		why = "Message refused: bare CR or LF";
	} else if (s->data_long) {
		enhanced = "5.5.6";
		why = "Message refused: line longer than 998 octets";
	} else if (s->data_big) {
		code = 552;
		enhanced = "5.3.4";
		why = "Message too big";
	} else if (s->data_oom || buf_reserve(&s->msg, 0) < 0) {
		/* Not the client's fault: not counted as its error. */
		smtp_server_reset_transaction(s);
		smtp_server_reply(s, 451, "4.3.0", "Local error in processing");
		return;
	}
	if (why) {
		smtp_server_reset_transaction(s);
		smtp_server_error(s, code, enhanced, "%s", why);
		return;
	}
	memset(&s->ev, 0, sizeof s->ev);
	s->ev.u.data.data = s->msg.data;
	s->ev.u.data.len = s->msg.len;
	smtp_server_set_pending(s, SMTP_SERVER_DATA);
}
