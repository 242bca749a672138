/*
 * dsn: delivery status notifications.  A DSN is a multipart/report
 * (RFC 6522) with report-type=delivery-status: a human-readable part, a
 * message/delivery-status part (RFC 3464) and the original's header as
 * text/rfc822-headers.  Only the header goes back, whatever RET= said:
 * we never re-send content (a bounce must not become a way to relay a
 * message to a forged sender).
 *
 * Choices:
 * - 8-bit: an original header with 8-bit octets (UTF-8 subjects sent
 *   with SMTPUTF8 or raw) is copied as it is, as text/rfc822-headers with
 *   Content-Transfer-Encoding 8bit; deliver_dsn_flags() then says the DSN
 *   needs 8BITMIME.  RFC 6533's message/global-headers would need the
 *   whole DSN sent with SMTPUTF8, which a plain sender's MX may not offer.
 *   A UTF-8 recipient address is written as RFC 6533 "utf-8;" with the
 *   \x{HEX} escapes (utf-8-addr-xtext), so the delivery-status part stays
 *   7-bit; the text part shows it as it is (charset utf-8, 8bit).
 * - Remote replies are untrusted bytes: controls and line breaks become
 *   spaces, 8-bit octets '?', and one reply is cut at DSN_DIAG_MAX with a
 *   visible " [...]".
 * - Status: the caller's, else the enhanced code of the reply when its
 *   class agrees with the reply code, else X.0.0 from the reply code.  A
 *   recipient that failed for good after temporary replies (the queue
 *   lifetime ran out) gets 5.4.7 "delivery time expired" (RFC 3463), its
 *   last reply still in Diagnostic-Code.  A warning always has class 4.
 * - Lines: header fields are folded at spaces to 78 columns; a word too
 *   long for one line (998, RFC 5322 2.1.1) is split with a fold, which
 *   adds a space to it when unfolded: the one lossy case, for replies
 *   nobody could have read anyway.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/deliver.h"
#include "util/util.h"

#define DSN_LINE_SOFT 78 /* RFC 5322 2.1.1 SHOULD */
#define DSN_LINE_MAX 998 /* RFC 5322 2.1.1 MUST, CRLF excluded */
#define DSN_DIAG_MAX 2048
#define DSN_HOST_MAX 253
#define DSN_DATE_MAX 64
#define DSN_BOUNDARY_TRIES 8

/* Output with one sticky error, so that building reads straight. */
struct dsn_out {
	struct buf b;
	int oom;
};

static void dsn_put(struct dsn_out *o, const void *p, size_t n)
{
	if (!o->oom && buf_append(&o->b, p, n) < 0)
		o->oom = 1;
}

static void dsn_puts(struct dsn_out *o, const char *s)
{
	dsn_put(o, s, strlen(s));
}

static void dsn_printf(struct dsn_out *o, const char *fmt, ...) UTIL_PRINTF(2, 3);

static void dsn_printf(struct dsn_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!o->oom && buf_vprintf(&o->b, fmt, ap) < 0)
		o->oom = 1;
	va_end(ap);
}

static int dsn_is_ascii(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 0;
	return 1;
}

static int dsn_null_sender(const struct deliver_dsn *d)
{
	return d->original_sender == NULL || d->original_sender[0] == '\0';
}

/* A host name we write after "dns;" and "@": letters, digits, '-', '.'. */
static int dsn_hostname_ok(const char *h, size_t n)
{
	size_t i;

	if (n == 0 || n > DSN_HOST_MAX || h[0] == '.' || h[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

/* An address we put in a header or report: no controls, no DEL. */
static int dsn_addr_ok(const char *a)
{
	for (; *a != '\0'; a++)
		if ((unsigned char)*a < 0x20 || *a == 0x7f)
			return 0;
	return 1;
}

static void dsn_date(int64_t t, char out[DSN_DATE_MAX])
{
	util_rfc5322_date(t, out, DSN_DATE_MAX);
}

/* ---- folding and wrapping ------------------------------------------------ */

/* "Name: value", folded before spaces to keep lines at 78 where words
 * allow and under 998 always.  value is single-line ASCII or UTF-8. */
static void dsn_field(struct dsn_out *o, const char *name, const char *value)
{
	size_t col = strlen(name) + 2;
	const char *p = value;

	dsn_puts(o, name);
	dsn_puts(o, ": ");
	while (*p != '\0') {
		/* a token: the spaces before a word, and the word */
		size_t sp = strspn(p, " ");
		size_t word = strcspn(p + sp, " ");
		size_t tok = sp + word;

		if (sp > 0 && col + tok > DSN_LINE_SOFT && col > 1) {
			/* fold: the first space starts the next line */
			dsn_puts(o, "\r\n");
			col = 0;
		}
		if (col + tok <= DSN_LINE_MAX) {
			dsn_put(o, p, tok);
			col += tok;
			p += tok;
			continue;
		}
		/* A word that cannot fit even on a line of its own. */
		while (tok > 0) {
			size_t room = DSN_LINE_MAX - col;
			size_t n = tok < room ? tok : room;

			dsn_put(o, p, n);
			p += n;
			tok -= n;
			col += n;
			if (tok > 0) {
				dsn_puts(o, "\r\n ");
				col = 1;
			}
		}
	}
	dsn_puts(o, "\r\n");
}

/* Plain text wrapped at 72 columns, continuation lines indented. */
static void dsn_text(struct dsn_out *o, const char *text, const char *indent)
{
	const size_t soft = 72;
	size_t col = 0;
	const char *p = text;

	while (*p != '\0') {
		size_t sp = strspn(p, " ");
		size_t word = strcspn(p + sp, " ");

		if (col > 0 && col + sp + word > soft) {
			dsn_puts(o, "\r\n");
			dsn_puts(o, indent);
			col = strlen(indent);
			p += sp; /* the break replaces the spaces */
			sp = 0;
		}
		dsn_put(o, p, sp);
		col += sp;
		p += sp;
		while (word > 0) {
			size_t room = DSN_LINE_MAX - col;
			size_t n = word < room ? word : room;

			dsn_put(o, p, n);
			p += n;
			word -= n;
			col += n;
			if (word > 0) {
				dsn_puts(o, "\r\n");
				col = 0;
			}
		}
	}
	dsn_puts(o, "\r\n");
}

/* ---- what the remote said ---------------------------------------------- */

/* One line of 7-bit printable text from untrusted bytes, cut at max with
 * a visible mark.  NULL when out of memory. */
static char *dsn_clean(const char *in, size_t max)
{
	static const char cut[] = " [...]";
	struct buf b = BUF_INIT;
	int space = 0;

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;
		char out;

		if (c == '\r' || c == '\n' || c == '\t' || c == ' ' || c < 0x20 || c == 0x7f) {
			space = b.len > 0; /* runs of white space become one */
			continue;
		}
		out = c >= 0x80 ? '?' : (char)c;
		if (b.len + space + 1 > max) {
			if (buf_append_str(&b, cut) < 0)
				goto oom;
			break;
		}
		if ((space && buf_append(&b, " ", 1) < 0) || buf_append(&b, &out, 1) < 0)
			goto oom;
		space = 0;
	}
	if (buf_append(&b, "", 0) < 0) /* "" rather than NULL when empty */
		goto oom;
	return buf_export(&b, NULL);
oom:
	buf_free(&b);
	return NULL;
}

static int dsn_status_ok(const char *s)
{
	size_t a, b;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	a = strspn(s + 2, "0123456789");
	if (a < 1 || a > 3 || s[2 + a] != '.')
		return 0;
	b = strspn(s + 3 + a, "0123456789");
	return b >= 1 && b <= 3 && s[3 + a + b] == '\0';
}

/* The status of one recipient (see the top of the file). */
static void dsn_status(const struct deliver_dsn_rcpt *r, int delayed, char out[16])
{
	const char *rep = r->reply;
	char code_class = 0;

	if (dsn_status_ok(r->status)) {
		util_strlcpy(out, r->status, 16);
	} else {
		util_strlcpy(out, delayed ? "4.0.0" : "5.0.0", 16);
		if (rep != NULL && (rep[0] == '2' || rep[0] == '4' || rep[0] == '5') &&
		    rep[1] >= '0' && rep[1] <= '9' && rep[2] >= '0' && rep[2] <= '9' &&
		    (rep[3] == ' ' || rep[3] == '-' || rep[3] == '\0')) {
			char enh[16];
			size_t n = 0;

			code_class = rep[0];
			snprintf(out, 16, "%c.0.0", code_class);
			if (rep[3] != '\0') {
				n = strcspn(rep + 4, " \r\n");
				if (n < sizeof enh) {
					memcpy(enh, rep + 4, n);
					enh[n] = '\0';
					if (dsn_status_ok(enh) && enh[0] == code_class)
						util_strlcpy(out, enh, 16);
				}
			}
		}
	}
	if (delayed) {
		out[0] = '4';
	} else if (out[0] != '5') {
		/* Failed for good after temporary trouble: it expired. */
		util_strlcpy(out, "5.4.7", 16);
	}
}

/* The host name out of "host[addr]:port" or "host:port"; "" when there
 * is none (an address literal alone). */
static void dsn_remote_host(const char *remote, char out[DSN_HOST_MAX + 1])
{
	size_t n;

	out[0] = '\0';
	if (remote == NULL)
		return;
	n = strcspn(remote, "[:");
	if (!dsn_addr_ok(remote) || !dsn_hostname_ok(remote, n))
		return;
	if (remote[n - 1] == '.')
		n--; /* no root dot in Remote-MTA */
	memcpy(out, remote, n);
	out[n] = '\0';
}

/* RFC 6533 3: utf-8-addr-xtext.  QCHAR as is; every other code point,
 * '+', '=' and '\\' included, as "\x{HEX}".  Invalid UTF-8 octets show
 * as U+FFFD. */
static void dsn_utf8_xtext(struct dsn_out *o, const char *a)
{
	const unsigned char *p = (const unsigned char *)a;

	while (*p != '\0') {
		unsigned cp = *p, need = 0, i;

		if (cp >= 0x21 && cp <= 0x7e && cp != '+' && cp != '=' && cp != '\\') {
			dsn_put(o, p, 1);
			p++;
			continue;
		}
		if (cp >= 0xc2 && cp <= 0xdf)
			need = 1, cp &= 0x1f;
		else if (cp >= 0xe0 && cp <= 0xef)
			need = 2, cp &= 0x0f;
		else if (cp >= 0xf0 && cp <= 0xf4)
			need = 3, cp &= 0x07;
		else if (cp >= 0x80)
			need = 99; /* invalid lead octet */
		for (i = 0; i < need && need != 99; i++) {
			if ((p[1 + i] & 0xc0) != 0x80) {
				need = 99;
				break;
			}
			cp = (cp << 6) | (p[1 + i] & 0x3fu);
		}
		if (need == 99 || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
			dsn_puts(o, "\\x{FFFD}");
			p++;
			continue;
		}
		dsn_printf(o, "\\x{%X}", cp);
		p += 1 + need;
	}
}

/* ---- the original header ------------------------------------------------- */

/* Copy the header of the original (up to the empty line) with CRLF line
 * ends, lines over 998 folded, at most DELIVER_DSN_HEADER_MAX octets cut
 * after the last whole field.  *cut_r: 1 if fields were left out. */
static void dsn_header(struct dsn_out *o, const char *msg, size_t len, int *cut_r)
{
	size_t pos = 0, start = o->b.len, field_start = o->b.len;

	*cut_r = 0;
	while (pos < len) {
		const char *line = msg + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t next = pos + n + (nl != NULL);
		size_t i;

		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n == 0)
			break; /* the empty line: the body follows */
		if (line[0] != ' ' && line[0] != '\t')
			field_start = o->b.len;
		if (o->b.len - start + n + n / DSN_LINE_MAX * 3 + 2 > DELIVER_DSN_HEADER_MAX) {
			/* drop the field this line belongs to, and the rest */
			if (!o->oom)
				o->b.len = field_start, o->b.data[o->b.len] = '\0';
			*cut_r = 1;
			return;
		}
		for (i = 0; i < n; i += DSN_LINE_MAX - 1) {
			size_t chunk = n - i < DSN_LINE_MAX - 1 ? n - i : DSN_LINE_MAX - 1;

			if (i > 0)
				dsn_puts(o, "\r\n "); /* a fold, so the field survives */
			dsn_put(o, line + i, chunk);
		}
		dsn_puts(o, "\r\n");
		pos = next;
	}
}

/* Length of the original's header, for the 8-bit check. */
static size_t dsn_header_len(const char *msg, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(msg + pos, '\n', len - pos);
		size_t n = nl != NULL ? (size_t)(nl - (msg + pos)) : len - pos;

		if (n == 0 || (n == 1 && msg[pos] == '\r'))
			return pos;
		pos += n + (nl != NULL);
	}
	return len;
}

/* ---- the parts ----------------------------------------------------------- */

static int dsn_rcpt_8bit(const struct deliver_dsn *d)
{
	size_t i;

	for (i = 0; i < d->nrcpts; i++)
		if (!dsn_is_ascii(d->rcpts[i].addr, strlen(d->rcpts[i].addr)))
			return 1;
	return 0;
}

uint32_t deliver_dsn_flags(const struct deliver_dsn *d)
{
	uint32_t flags = 0;

	if (d->original != NULL &&
	    !dsn_is_ascii(d->original, dsn_header_len(d->original, d->original_len)))
		flags |= SPOOL_MSG_8BIT;
	if (d->rcpts != NULL && dsn_rcpt_8bit(d))
		flags |= SPOOL_MSG_8BIT;
	if (!dsn_null_sender(d) && !dsn_is_ascii(d->original_sender, strlen(d->original_sender)))
		flags |= SPOOL_MSG_8BIT | SPOOL_MSG_SMTPUTF8;
	return flags;
}

/* Part 1: for people. */
static void dsn_part_text(struct dsn_out *o, const struct deliver_dsn *d, char **diags,
                          int header_cut)
{
	char date[DSN_DATE_MAX];
	size_t i;

	dsn_printf(o, "This is the mail system at %s.\r\n\r\n", d->reporting_mta);
	if (d->delayed) {
		dsn_puts(
		    o, "THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE.\r\n\r\n");
		dsn_text(o,
		         "Your message could not be delivered yet to the recipients below. "
		         "Delivery will be tried again; you will be told if it fails for good.",
		         "");
	} else {
		dsn_text(o,
		         "Your message could not be delivered to the recipients below. This is "
		         "final: it will not be tried again.",
		         "");
	}
	dsn_puts(o, "\r\n");
	for (i = 0; i < d->nrcpts; i++) {
		const struct deliver_dsn_rcpt *r = &d->rcpts[i];
		struct dsn_out line = {BUF_INIT, 0};
		int remote = r->remote_mta != NULL && dsn_addr_ok(r->remote_mta) &&
		             dsn_is_ascii(r->remote_mta, strlen(r->remote_mta));

		dsn_printf(&line, "<%s>:", r->addr);
		if (r->reply != NULL && diags[i] != NULL && remote)
			dsn_printf(&line, " host %s said: %s", r->remote_mta, diags[i]);
		else if (r->reply != NULL && diags[i] != NULL)
			dsn_printf(&line, " the remote server said: %s", diags[i]);
		else if (diags[i] != NULL)
			dsn_printf(&line, " %s", diags[i]);
		else
			dsn_puts(&line, d->delayed ? " delivery is delayed" : " delivery failed");
		if (d->delayed && r->will_retry_until != 0) {
			dsn_date(r->will_retry_until, date);
			dsn_printf(&line, " (will be tried until %s)", date);
		}
		if (line.oom) {
			o->oom = 1;
		} else {
			dsn_text(o, line.b.data, "    ");
			dsn_puts(o, "\r\n");
		}
		buf_free(&line.b);
	}
	dsn_text(o,
	         "Reports for software follow; the header of your message is attached, not "
	         "its text.",
	         "");
	if (header_cut) {
		char note[128];

		snprintf(note, sizeof note,
		         "The header was longer than %u octets: the fields past that are left out.",
		         (unsigned)DELIVER_DSN_HEADER_MAX);
		dsn_text(o, note, "");
	}
}

/* Part 2: message/delivery-status, RFC 3464 2.2 and 2.3. */
static void dsn_part_status(struct dsn_out *o, const struct deliver_dsn *d, char **diags)
{
	char date[DSN_DATE_MAX], value[DSN_HOST_MAX + 16];
	size_t i;

	snprintf(value, sizeof value, "dns; %s", d->reporting_mta);
	dsn_field(o, "Reporting-MTA", value);
	if (d->queue_id != NULL && dsn_addr_ok(d->queue_id))
		dsn_field(o, "X-Sluice-Queue-ID", d->queue_id);
	if (d->envid != NULL && dsn_addr_ok(d->envid) && dsn_is_ascii(d->envid, strlen(d->envid)))
		dsn_field(o, "Original-Envelope-Id", d->envid);
	if (d->arrival != 0) {
		dsn_date(d->arrival, date);
		dsn_field(o, "Arrival-Date", date);
	}
	for (i = 0; i < d->nrcpts; i++) {
		const struct deliver_dsn_rcpt *r = &d->rcpts[i];
		char status[16], host[DSN_HOST_MAX + 1];
		struct dsn_out v = {BUF_INIT, 0};

		dsn_puts(o, "\r\n");
		if (dsn_is_ascii(r->addr, strlen(r->addr))) {
			dsn_printf(&v, "rfc822; %s", r->addr);
		} else {
			dsn_puts(&v, "utf-8; ");
			dsn_utf8_xtext(&v, r->addr);
		}
		if (v.oom) {
			o->oom = 1;
			buf_free(&v.b);
			return;
		}
		dsn_field(o, "Final-Recipient", v.b.data);
		buf_free(&v.b);
		if (r->orcpt != NULL && dsn_addr_ok(r->orcpt) &&
		    dsn_is_ascii(r->orcpt, strlen(r->orcpt)) && strchr(r->orcpt, ';') != NULL)
			dsn_field(o, "Original-Recipient", r->orcpt);
		dsn_field(o, "Action", d->delayed ? "delayed" : "failed");
		dsn_status(r, d->delayed, status);
		dsn_field(o, "Status", status);
		dsn_remote_host(r->remote_mta, host);
		if (host[0] != '\0') {
			snprintf(value, sizeof value, "dns; %s", host);
			dsn_field(o, "Remote-MTA", value);
		}
		if (diags[i] != NULL) {
			struct dsn_out dc = {BUF_INIT, 0};

			dsn_printf(&dc, "%s; %s", r->reply != NULL ? "smtp" : "X-Sluice", diags[i]);
			if (dc.oom)
				o->oom = 1;
			else
				dsn_field(o, "Diagnostic-Code", dc.b.data);
			buf_free(&dc.b);
		}
		if (r->last_attempt != 0) {
			dsn_date(r->last_attempt, date);
			dsn_field(o, "Last-Attempt-Date", date);
		}
		if (d->delayed && r->will_retry_until != 0) {
			dsn_date(r->will_retry_until, date);
			dsn_field(o, "Will-Retry-Until", date);
		}
	}
}

static void dsn_random_hex(char *out, size_t nbytes)
{
	unsigned char r[32];
	size_t i;

	if (nbytes > sizeof r)
		nbytes = sizeof r;
	arc4random_buf(r, nbytes);
	for (i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

/* ---- the whole --------------------------------------------------------- */

static void dsn_fail(char **err_r, const char *why)
{
	*err_r = util_strdup(why);
}

int deliver_dsn_build(const struct deliver_dsn *d, char **dsn_r, size_t *len_r, char **err_r)
{
	struct dsn_out top = {BUF_INIT, 0}, text = {BUF_INIT, 0}, status = {BUF_INIT, 0},
	               hdr = {BUF_INIT, 0};
	const struct dsn_out *parts[3] = {&text, &status, &hdr};
	char boundary[64], date[DSN_DATE_MAX], rnd[33];
	char **diags = NULL;
	int header_cut = 0, text8, hdr8, tries, rc = -1;
	size_t i;

	*dsn_r = NULL;
	*len_r = 0;
	*err_r = NULL;
	if (dsn_null_sender(d))
		return DELIVER_DSN_NULL_SENDER;
	if (d->reporting_mta == NULL ||
	    !dsn_hostname_ok(d->reporting_mta, strlen(d->reporting_mta))) {
		dsn_fail(err_r, "reporting MTA is not a host name");
		return -1;
	}
	if (!dsn_addr_ok(d->original_sender)) {
		dsn_fail(err_r, "original sender has control characters");
		return -1;
	}
	if (d->nrcpts == 0 || d->rcpts == NULL) {
		dsn_fail(err_r, "no recipients to report");
		return -1;
	}
	for (i = 0; i < d->nrcpts; i++)
		if (d->rcpts[i].addr == NULL || d->rcpts[i].addr[0] == '\0' ||
		    !dsn_addr_ok(d->rcpts[i].addr)) {
			dsn_fail(err_r, "a recipient address is empty or has control characters");
			return -1;
		}
	if (d->message_id != NULL && (!dsn_addr_ok(d->message_id) || d->message_id[0] != '<')) {
		dsn_fail(err_r, "message id is not <...>");
		return -1;
	}

	diags = calloc(d->nrcpts, sizeof *diags);
	if (diags == NULL)
		goto oom;
	for (i = 0; i < d->nrcpts; i++) {
		const char *src =
		    d->rcpts[i].reply != NULL ? d->rcpts[i].reply : d->rcpts[i].diagnostic;

		if (src != NULL && (diags[i] = dsn_clean(src, DSN_DIAG_MAX)) == NULL)
			goto oom;
		if (diags[i] != NULL && diags[i][0] == '\0') {
			free(diags[i]);
			diags[i] = NULL;
		}
	}

	if (d->original != NULL)
		dsn_header(&hdr, d->original, d->original_len, &header_cut);
	dsn_part_text(&text, d, diags, header_cut);
	dsn_part_status(&status, d, diags);
	if (text.oom || status.oom || hdr.oom)
		goto oom;
	text8 = !dsn_is_ascii(text.b.data, text.b.len);
	hdr8 = hdr.b.len > 0 && !dsn_is_ascii(hdr.b.data, hdr.b.len);

	/* A boundary none of the parts contains (RFC 2046 5.1.1). */
	for (tries = 0;; tries++) {
		int clash = 0;

		if (tries == DSN_BOUNDARY_TRIES) {
			dsn_fail(err_r, "no boundary found that the parts do not contain");
			goto done;
		}
		dsn_random_hex(rnd, 12);
		snprintf(boundary, sizeof boundary, "=_sluice_dsn_%s", rnd);
		for (i = 0; i < 3; i++)
			if (parts[i]->b.len > 0 &&
			    memmem(parts[i]->b.data, parts[i]->b.len, boundary, strlen(boundary)))
				clash = 1;
		if (!clash)
			break;
	}

	/* The header. */
	dsn_printf(&top, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", d->reporting_mta);
	{
		struct dsn_out to = {BUF_INIT, 0};

		dsn_printf(&to, "<%s>", d->original_sender);
		if (to.oom)
			top.oom = 1;
		else
			dsn_field(&top, "To", to.b.data);
		buf_free(&to.b);
	}
	dsn_field(&top, "Subject",
	          d->delayed ? "Delivery delayed" : "Undelivered Mail Returned to Sender");
	dsn_date(d->now != 0 ? d->now : util_wall_seconds(), date);
	dsn_field(&top, "Date", date);
	if (d->message_id != NULL) {
		dsn_field(&top, "Message-ID", d->message_id);
	} else {
		dsn_random_hex(rnd, 8);
		dsn_printf(&top, "Message-ID: <dsn.%s.%s@%s>\r\n",
		           d->queue_id != NULL && dsn_hostname_ok(d->queue_id, strlen(d->queue_id))
		               ? d->queue_id
		               : "x",
		           rnd, d->reporting_mta);
	}
	dsn_puts(&top, "Auto-Submitted: auto-replied\r\n"); /* RFC 3834 5 */
	dsn_puts(&top, "MIME-Version: 1.0\r\n");
	dsn_printf(&top,
	           "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	           "\tboundary=\"%s\"\r\n",
	           boundary);
	dsn_printf(&top, "Content-Transfer-Encoding: %s\r\n", text8 || hdr8 ? "8bit" : "7bit");
	dsn_puts(&top, "\r\nThis is a MIME-encapsulated message.\r\n");

	/* The parts; each body ends with CRLF, and the CRLF before a
	 * delimiter belongs to the delimiter (RFC 2046 5.1.1). */
	dsn_printf(&top, "\r\n--%s\r\n", boundary);
	dsn_puts(&top, "Content-Description: Notification\r\n");
	dsn_printf(&top, "Content-Type: text/plain; charset=%s\r\n", text8 ? "utf-8" : "us-ascii");
	if (text8)
		dsn_puts(&top, "Content-Transfer-Encoding: 8bit\r\n");
	dsn_puts(&top, "\r\n");
	dsn_put(&top, text.b.data, text.b.len);

	dsn_printf(&top, "\r\n--%s\r\n", boundary);
	dsn_puts(&top, "Content-Description: Delivery report\r\n");
	dsn_puts(&top, "Content-Type: message/delivery-status\r\n\r\n");
	dsn_put(&top, status.b.data, status.b.len);

	dsn_printf(&top, "\r\n--%s\r\n", boundary);
	dsn_puts(&top, "Content-Description: Undelivered message header\r\n");
	dsn_puts(&top, "Content-Type: text/rfc822-headers\r\n");
	if (hdr8)
		dsn_puts(&top, "Content-Transfer-Encoding: 8bit\r\n");
	dsn_puts(&top, "\r\n");
	if (hdr.b.len > 0)
		dsn_put(&top, hdr.b.data, hdr.b.len);
	dsn_printf(&top, "\r\n--%s--\r\n", boundary);
	if (top.oom)
		goto oom;

	*dsn_r = buf_export(&top.b, len_r);
	rc = 0;
	goto done;

oom:
	dsn_fail(err_r, "out of memory");
done:
	if (diags != NULL)
		for (i = 0; i < d->nrcpts; i++)
			free(diags[i]);
	free(diags);
	buf_free(&top.b);
	buf_free(&text.b);
	buf_free(&status.b);
	buf_free(&hdr.b);
	return rc;
}
