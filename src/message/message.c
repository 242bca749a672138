/*
 * message: the Received trace header, header lookup, and final assembly of
 * an accepted message (Received, then Message-ID and Date when missing,
 * then the client's bytes unchanged).
 *
 * Message-ID and Date: RFC 5322 requires a Date and recommends a
 * Message-ID; RFC 6409 8.3 lets a submission server add either when the
 * client sent none.  Many small clients (scripts, printers, cron) omit
 * them, and receivers score such mail as spam, so sluice adds them here,
 * before DKIM signing, so the signature covers them.
 *
 * Every value that reaches the Received header is sanitised: the HELO
 * name, the AUTH user and the recipient come from the client, the reverse
 * name from whoever controls the client's DNS.  A CR or LF there would let
 * a client write its own header lines under our trace header.
 *
 * Header scanning accepts CRLF and, leniently, bare LF line ends: a message
 * with bare LFs is repaired or refused elsewhere, but must not make the
 * scanner miss a header here.
 */
#include <string.h>
#include <sys/random.h>

#include "message/message.h"

#define MESSAGE_TRACE_FIELD_MAX 255 /* cap on any one client-supplied value */
#define MESSAGE_DATE_MAX 64

enum message_text {
	MESSAGE_TEXT_WORD,    /* HELO name: one token, no comment or literal specials */
	MESSAGE_TEXT_COMMENT, /* inside "( )": spaces allowed, no parens or brackets */
	MESSAGE_TEXT_PATH,    /* inside "< >": a quoted local part may hold SP or '\\' */
	MESSAGE_TEXT_ATOM,    /* a Message-ID half: atext and '.' */
};

static int message_char_ok(unsigned char ch, enum message_text kind)
{
	if (ch < 0x20 || ch >= 0x7f)
		return 0; /* controls (CR, LF, NUL, TAB) and non-ASCII */
	switch (kind) {
	case MESSAGE_TEXT_WORD:
		return ch != ' ' && strchr("()[]\\;<>\"", ch) == NULL;
	case MESSAGE_TEXT_COMMENT:
		return strchr("()[]\\", ch) == NULL;
	case MESSAGE_TEXT_PATH:
		return ch != '<' && ch != '>';
	case MESSAGE_TEXT_ATOM:
		return ch != ' ' && strchr("()<>[]:;@\\,\"", ch) == NULL;
	}
	return 0;
}

/* Append s with every unwanted byte replaced by '?', at most
 * MESSAGE_TRACE_FIELD_MAX bytes of it (a trace header is informational;
 * cutting a hostile 10 KB HELO short is the point).  NULL or "" appends
 * "unknown". */
static int message_append_clean(struct buf *out, const char *s, enum message_text kind)
{
	char clean[MESSAGE_TRACE_FIELD_MAX + 1];
	size_t i, n;

	if (s == NULL || *s == '\0')
		return buf_append_str(out, "unknown");
	n = strnlen(s, MESSAGE_TRACE_FIELD_MAX);
	for (i = 0; i < n; i++)
		clean[i] = message_char_ok((unsigned char)s[i], kind) ? s[i] : '?';
	/* An address-literal HELO ("[192.0.2.1]", "[IPv6:2001:db8::1]") is
	 * legitimate: keep its outer brackets, its inside is still cleaned. */
	if (kind == MESSAGE_TEXT_WORD && n >= 2 && s[0] == '[' && s[n - 1] == ']' &&
	    memchr(s + 1, '[', n - 2) == NULL && memchr(s + 1, ']', n - 2) == NULL) {
		clean[0] = '[';
		clean[n - 1] = ']';
	}
	return buf_append(out, clean, n);
}

/* RFC 3848: ESMTP plus S (TLS) and A (authenticated).  It registers no
 * SMTPS or SMTPA, and AUTH needs EHLO anyway, so a HELO client is "SMTP"
 * even on implicit TLS. */
static const char *message_with_keyword(const struct message_trace *t)
{
	int tls = t->tls_version != NULL, auth = t->auth_user != NULL;

	if (!t->esmtp)
		return "SMTP";
	if (tls && auth)
		return "ESMTPSA";
	if (tls)
		return "ESMTPS";
	if (auth)
		return "ESMTPA";
	return "ESMTP";
}

int message_received(const struct message_trace *t, struct buf *out)
{
	size_t orig = out->len;
	char date[MESSAGE_DATE_MAX];
	int rc = 0;

	util_rfc5322_date(t->when, date, sizeof date);

	rc |= buf_append_str(out, "Received: from ");
	rc |= message_append_clean(out, t->helo, MESSAGE_TEXT_WORD);
	rc |= buf_append_str(out, " (");
	rc |= message_append_clean(out, t->client_name, MESSAGE_TEXT_COMMENT);
	rc |= buf_append_str(out, " [");
	if (t->client_addr != NULL && strchr(t->client_addr, ':') != NULL)
		rc |= buf_append_str(out, "IPv6:");
	rc |= message_append_clean(out, t->client_addr, MESSAGE_TEXT_COMMENT);
	rc |= buf_append_str(out, "])\r\n");

	if (t->tls_version != NULL) {
		rc |= buf_append_str(out, "\t(using ");
		rc |= message_append_clean(out, t->tls_version, MESSAGE_TEXT_COMMENT);
		rc |= buf_append_str(out, " with cipher ");
		rc |= message_append_clean(out, t->tls_cipher, MESSAGE_TEXT_COMMENT);
		rc |= buf_printf(out, " (%d/%d bits))\r\n", t->tls_bits, t->tls_bits);
	}
	if (t->auth_user != NULL) {
		rc |= buf_append_str(out, "\t(Authenticated sender: ");
		rc |= message_append_clean(out, t->auth_user, MESSAGE_TEXT_COMMENT);
		rc |= buf_append_str(out, ")\r\n");
	}

	rc |= buf_append_str(out, "\tby ");
	rc |= message_append_clean(out, t->by, MESSAGE_TEXT_WORD);
	rc |= buf_printf(out, " (sluice) with %s", message_with_keyword(t));
	if (t->queue_id != NULL) {
		rc |= buf_append_str(out, " id ");
		rc |= message_append_clean(out, t->queue_id, MESSAGE_TEXT_WORD);
	}
	if (t->single_rcpt != NULL) {
		rc |= buf_append_str(out, "\r\n\tfor <");
		rc |= message_append_clean(out, t->single_rcpt, MESSAGE_TEXT_PATH);
		rc |= buf_printf(out, ">; %s\r\n", date);
	} else {
		rc |= buf_printf(out, ";\r\n\t%s\r\n", date);
	}

	if (rc != 0) {
		/* Leave out as it was; buf keeps data NUL-terminated. */
		out->len = orig;
		if (out->data != NULL)
			out->data[orig] = '\0';
		return -1;
	}
	return 0;
}

/* ---- header section scanning ------------------------------------------- */

/* Count fields called name (case-insensitive) that start a line of the
 * header section; stop at the first match when first_only.  The section
 * ends at the first empty line, or at the end of data if there is none.
 * A line starting with SP or TAB continues the previous field.  RFC 5322
 * obsolete syntax allows WSP between the name and the colon. */
static size_t message_header_scan(const char *data, size_t len, const char *name, int first_only)
{
	size_t namelen = strlen(name), pos = 0, count = 0;

	if (namelen == 0)
		return 0;
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t linelen = nl != NULL ? (size_t)(nl - line) : len - pos;

		if (linelen == 0 || (linelen == 1 && line[0] == '\r'))
			break; /* the empty line: body follows */
		if (line[0] != ' ' && line[0] != '\t' && linelen > namelen &&
		    util_strncasecmp(line, name, namelen) == 0) {
			size_t i = namelen;

			while (i < linelen && (line[i] == ' ' || line[i] == '\t'))
				i++;
			if (i < linelen && line[i] == ':') {
				count++;
				if (first_only)
					break;
			}
		}
		if (nl == NULL)
			break;
		pos += linelen + 1;
	}
	return count;
}

int message_has_header(const char *data, size_t len, const char *name)
{
	return message_header_scan(data, len, name, 1) > 0;
}

size_t message_count_received(const char *data, size_t len)
{
	return message_header_scan(data, len, "Received", 0);
}

/* ---- assembly ----------------------------------------------------------- */

static int message_append_msgid(const struct message_trace *t, struct buf *out)
{
	int rc = 0;

	rc |= buf_append_str(out, "Message-ID: <");
	if (t->queue_id != NULL && *t->queue_id != '\0') {
		rc |= message_append_clean(out, t->queue_id, MESSAGE_TEXT_ATOM);
	} else {
		/* No queue id (should not happen): 64 random bits keep the
		 * id unique rather than "<unknown.time@host>" for everyone. */
		uint64_t r = 0;

		if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
			r ^= (uint64_t)util_now_ms() * 0x9e3779b97f4a7c15u;
		rc |= buf_printf(out, "%016llX", (unsigned long long)r);
	}
	rc |= buf_printf(out, ".%lld@", (long long)t->when);
	rc |= message_append_clean(out, t->by, MESSAGE_TEXT_ATOM);
	rc |= buf_append_str(out, ">\r\n");
	return rc;
}

int message_assemble(const struct message_trace *t, const char *data, size_t len, struct buf *out)
{
	size_t orig = out->len;
	int rc = 0;

	/* One allocation for the common case. */
	if (buf_reserve(out, len + 1024) < 0)
		return -1;
	rc |= message_received(t, out);
	if (!message_has_header(data, len, "Message-ID"))
		rc |= message_append_msgid(t, out);
	if (!message_has_header(data, len, "Date")) {
		char date[MESSAGE_DATE_MAX];

		util_rfc5322_date(t->when, date, sizeof date);
		rc |= buf_printf(out, "Date: %s\r\n", date);
	}
	/* The client's bytes as they are: no separator is invented when the
	 * message has none (it is then all header, or malformed; either way
	 * not ours to rewrite). */
	rc |= buf_append(out, data, len);

	if (rc != 0) {
		out->len = orig;
		if (out->data != NULL)
			out->data[orig] = '\0';
		return -1;
	}
	return 0;
}
