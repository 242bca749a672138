/*
 * SMTP replies as the client reads them (RFC 5321 4.2): framing, limits,
 * enhanced status codes (RFC 2034/3463), the text kept for logs and DSNs,
 * and the EHLO keywords.
 *
 * Contract: smtp_client_reply_parse() is resumable: it remembers how far
 * the current reply's complete lines were checked, so input fed one octet
 * at a time costs no rescanning.  A line ends with LF (a CR before it is
 * dropped: servers that send bare LF are tolerated, not trusted: the text
 * is sanitised).  A line is refused as soon as it passes
 * SMTP_CLIENT_LINE_MAX without an LF, and a reply as soon as it passes
 * SMTP_CLIENT_REPLY_MAX octets or SMTP_CLIENT_REPLY_LINES_MAX lines, so
 * nothing hostile is held beyond those bounds.
 */
#include "smtp/client_private.h"

#include <stdio.h>
#include <string.h>

static int reply_is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* Length of an RFC 3463 status code "c.sss.ddd" of class cls at p (which
 * has n octets), followed by SP or the end; 0 if there is none. */
static size_t reply_enhanced_len(const char *p, size_t n, int cls)
{
	size_t i = 0, digits;

	if (n < 5 || p[0] != cls || p[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; i < n && reply_is_digit((unsigned char)p[i]) && digits < 3;
		     digits++)
			i++;
		if (digits == 0)
			return 0;
		if (part == 0) {
			if (i >= n || p[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

/* Append text to r->text, sanitised, cutting with "..." when full. */
static void reply_text_append(struct smtp_client_reply *r, size_t *len, int *cut, const char *p,
                              size_t n)
{
	const size_t room = sizeof r->text - 1;

	for (size_t i = 0; i < n && !*cut; i++) {
		unsigned char ch = (unsigned char)p[i];

		if (*len >= room) {
			memcpy(r->text + room - 3, "...", 3);
			*cut = 1;
			break;
		}
		r->text[(*len)++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
	}
	r->text[*len] = '\0';
}

/* Build *r from the raw reply in[0..len) (already validated). */
static void reply_build(const struct smtp_client *c, const char *in, size_t len,
                        struct smtp_client_reply *r)
{
	int enhanced = (c->ext & SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES) != 0;
	size_t pos = 0, tlen = 0;
	int cut = 0;

	memset(r, 0, sizeof *r);
	r->code = c->code;
	while (pos < len) {
		const char *line = in + pos, *lf = memchr(line, '\n', len - pos);
		size_t n = (size_t)(lf - line), e;

		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		/* "ddd" [SP/- text] */
		line += n > 4 ? 4 : n;
		n -= n > 4 ? 4 : n;
		if (enhanced && (e = reply_enhanced_len(line, n, '0' + c->code / 100)) > 0) {
			if (r->enhanced[0] == '\0' && e < sizeof r->enhanced) {
				memcpy(r->enhanced, line, e);
				r->enhanced[e] = '\0';
			}
			line += e;
			n -= e;
			while (n > 0 && *line == ' ') {
				line++;
				n--;
			}
		}
		if (n == 0)
			continue;
		if (tlen > 0)
			reply_text_append(r, &tlen, &cut, " ", 1);
		reply_text_append(r, &tlen, &cut, line, n);
	}
}

int smtp_client_reply_parse(struct smtp_client *c, struct smtp_client_reply *r, size_t *len_r,
                            const char **why_r)
{
	const char *in = c->in.data;
	size_t len = c->in.len;

	while (c->scan < len) {
		const char *line = in + c->scan;
		size_t avail = len - c->scan, n, content;
		const char *lf =
		    memchr(line, '\n', avail < SMTP_CLIENT_LINE_MAX ? avail : SMTP_CLIENT_LINE_MAX);
		int code;
		char sep;

		if (lf == NULL) {
			if (avail >= SMTP_CLIENT_LINE_MAX) {
				*why_r = "reply line too long";
				return -1;
			}
			if (len > SMTP_CLIENT_REPLY_MAX) {
				*why_r = "reply too long";
				return -1;
			}
			return 0;
		}
		n = (size_t)(lf - line) + 1;
		content = n - 1;
		if (content > 0 && line[content - 1] == '\r')
			content--;
		if (memchr(line, '\0', n) != NULL) {
			*why_r = "NUL in reply";
			return -1;
		}
		if (content < 3 || !reply_is_digit((unsigned char)line[0]) ||
		    !reply_is_digit((unsigned char)line[1]) ||
		    !reply_is_digit((unsigned char)line[2])) {
			*why_r = "reply without a code";
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (code < 200 || code > 599) {
			*why_r = "reply code out of range";
			return -1;
		}
		sep = content > 3 ? line[3] : ' ';
		if (sep != ' ' && sep != '-') {
			*why_r = "malformed reply line";
			return -1;
		}
		if (c->lines > 0 && code != c->code) {
			*why_r = "reply lines with different codes";
			return -1;
		}
		c->code = code;
		c->lines++;
		c->scan += n;
		if (c->scan > SMTP_CLIENT_REPLY_MAX) {
			*why_r = "reply too long";
			return -1;
		}
		if (sep == ' ') {
			reply_build(c, in, c->scan, r);
			*len_r = c->scan;
			c->scan = 0;
			c->lines = 0;
			return 1;
		}
		if (c->lines >= SMTP_CLIENT_REPLY_LINES_MAX) {
			*why_r = "reply has too many lines";
			return -1;
		}
	}
	return 0;
}

/* ---- EHLO keywords (RFC 5321 4.1.1.1) ------------------------------------ */

static int ehlo_word(const char *p, size_t n, const char *word)
{
	size_t wl = strlen(word);

	return n == wl && util_strncasecmp(p, word, wl) == 0;
}

/* SIZE's argument: decimal, no overflow; 0 for none or a bad one. */
static uint64_t ehlo_size(const char *p, size_t n)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!reply_is_digit((unsigned char)p[i]))
			return 0;
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	return v;
}

/* "AUTH mech mech" (or the old "AUTH=mech mech"). */
static unsigned ehlo_auth(const char *p, size_t n)
{
	unsigned ext = 0;
	size_t i = 0;

	while (i < n) {
		size_t start, len;

		while (i < n && p[i] == ' ')
			i++;
		start = i;
		while (i < n && p[i] != ' ')
			i++;
		len = i - start;
		if (ehlo_word(p + start, len, "PLAIN"))
			ext |= SMTP_CLIENT_EXT_AUTH_PLAIN;
		else if (ehlo_word(p + start, len, "LOGIN"))
			ext |= SMTP_CLIENT_EXT_AUTH_LOGIN;
	}
	return ext;
}

static void ehlo_line(struct smtp_client *c, const char *p, size_t n)
{
	static const struct {
		const char *word;
		unsigned ext;
	} plain[] = {
	    {"PIPELINING", SMTP_CLIENT_EXT_PIPELINING},
	    {"8BITMIME", SMTP_CLIENT_EXT_8BITMIME},
	    {"SMTPUTF8", SMTP_CLIENT_EXT_SMTPUTF8},
	    {"STARTTLS", SMTP_CLIENT_EXT_STARTTLS},
	    {"ENHANCEDSTATUSCODES", SMTP_CLIENT_EXT_ENHANCEDSTATUSCODES},
	};
	size_t kw = 0, arg;

	while (kw < n && p[kw] != ' ' && p[kw] != '=')
		kw++;
	arg = kw < n ? kw + 1 : n;
	while (arg < n && p[arg] == ' ')
		arg++;
	for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
		if (ehlo_word(p, kw, plain[i].word))
			c->ext |= plain[i].ext;
	if (ehlo_word(p, kw, "SIZE")) {
		c->ext |= SMTP_CLIENT_EXT_SIZE;
		c->size_limit = ehlo_size(p + arg, n - arg);
	} else if (ehlo_word(p, kw, "AUTH")) {
		c->ext |= ehlo_auth(p + arg, n - arg);
	}
}

void smtp_client_ehlo_parse(struct smtp_client *c, const char *raw, size_t len)
{
	size_t pos = 0;
	int first = 1;

	c->ext = 0;
	c->size_limit = 0;
	while (pos < len) {
		const char *line = raw + pos, *lf = memchr(line, '\n', len - pos);
		size_t n;

		if (lf == NULL)
			break;
		n = (size_t)(lf - line);
		pos += n + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		/* The first line names the server; keywords follow. */
		if (first || n <= 4) {
			first = 0;
			continue;
		}
		ehlo_line(c, line + 4, n - 4);
	}
}

/* ---- replies the client makes up ------------------------------------------ */

void smtp_client_reply_vset(struct smtp_client_reply *r, int code, const char *enhanced,
                            enum smtp_client_stage stage, const char *fmt, va_list ap)
{
	int n;

	memset(r, 0, sizeof *r);
	r->code = code;
	r->stage = stage;
	r->local = 1;
	if (util_strlcpy(r->enhanced, enhanced, sizeof r->enhanced) >= sizeof r->enhanced)
		r->enhanced[0] = '\0';
	n = vsnprintf(r->text, sizeof r->text, fmt, ap);
	if (n < 0)
		r->text[0] = '\0';
	else if ((size_t)n >= sizeof r->text)
		memcpy(r->text + sizeof r->text - 4, "...", 3);
	/* The text may quote the server: keep it printable. */
	for (char *p = r->text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

void smtp_client_reply_set(struct smtp_client_reply *r, int code, const char *enhanced,
                           enum smtp_client_stage stage, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_client_reply_vset(r, code, enhanced, stage, fmt, ap);
	va_end(ap);
}

void smtp_client_reply_temporary(struct smtp_client_reply *r)
{
	if (r->code < 500)
		return;
	r->code -= 100;
	if (r->enhanced[0] == '5')
		r->enhanced[0] = '4';
	r->local = 1;
}

const char *smtp_client_reply_status(const struct smtp_client_reply *r)
{
	if (r->enhanced[0] != '\0')
		return r->enhanced;
	if (r->code >= 500)
		return "5.0.0";
	if (r->code >= 400)
		return "4.0.0";
	return "2.0.0";
}

const char *smtp_client_stage_name(enum smtp_client_stage stage)
{
	static const char *const names[] = {
	    [SMTP_CLIENT_STAGE_NONE] = "none",
	    [SMTP_CLIENT_STAGE_GREETING] = "greeting",
	    [SMTP_CLIENT_STAGE_EHLO] = "EHLO",
	    [SMTP_CLIENT_STAGE_HELO] = "HELO",
	    [SMTP_CLIENT_STAGE_STARTTLS] = "STARTTLS",
	    [SMTP_CLIENT_STAGE_AUTH] = "AUTH",
	    [SMTP_CLIENT_STAGE_MAIL] = "MAIL FROM",
	    [SMTP_CLIENT_STAGE_RCPT] = "RCPT TO",
	    [SMTP_CLIENT_STAGE_DATA] = "DATA",
	    [SMTP_CLIENT_STAGE_BODY] = "message body",
	    [SMTP_CLIENT_STAGE_DATA_END] = "end of DATA",
	    [SMTP_CLIENT_STAGE_RSET] = "RSET",
	    [SMTP_CLIENT_STAGE_QUIT] = "QUIT",
	};

	if ((unsigned)stage >= sizeof names / sizeof names[0])
		return "unknown";
	return names[stage];
}
