/*
 * What scanners send back, parsed without I/O: clamd's INSTREAM reply
 * line, an HTTP/1.x response, rspamd's /checkv2 JSON; and the scanner
 * addresses of the configuration.  Every length read is bounded by the
 * limits in scan.h; text that reaches a log or a reply is reduced to
 * printable ASCII.
 */
#include "scan/scan.h"
#include "net/net.h"
#include "util/util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <jansson.h>

/* Printable ASCII of src[0..len) into dst (size > 0), other octets as '?'.
 * Longer text is cut: these are for logs and reply texts, which have
 * their own limits. */
static void copy_printable(char *dst, size_t size, const char *src, size_t len)
{
	size_t n = len < size - 1 ? len : size - 1;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[n] = '\0';
}

static int ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* ---- clamd ------------------------------------------------------------------ */

int scan_clamd_reply_parse(const char *buf, size_t len, int eof, struct scan_result *r)
{
	size_t n = 0;
	const char *line = buf;

	while (n < len && buf[n] != '\0' && buf[n] != '\n')
		n++;
	if (n == len) { /* no terminator yet */
		if (len >= SCAN_CLAMD_REPLY_MAX)
			return -1;
		if (!eof)
			return 0;
		if (len == 0)
			return -1;
	}
	if (n >= SCAN_CLAMD_REPLY_MAX)
		return -1;
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	/* "stream: " names what was scanned; some errors come without it */
	if (n >= 8 && memcmp(line, "stream: ", 8) == 0) {
		line += 8;
		n -= 8;
	}
	memset(r, 0, sizeof *r);
	if (n == 2 && memcmp(line, "OK", 2) == 0) {
		r->outcome = SCAN_OUT_CLEAN;
		return 1;
	}
	if (ends_with(line, n, " FOUND")) {
		size_t name = n - 6;
		if (name == 0 || name >= sizeof r->name)
			return -1;
		for (size_t i = 0; i < name; i++)
			if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f)
				return -1;
		memcpy(r->name, line, name);
		r->name[name] = '\0';
		r->outcome = SCAN_OUT_VIRUS;
		return 1;
	}
	if (ends_with(line, n, "ERROR")) {
		r->outcome = SCAN_OUT_FAILED;
		copy_printable(r->text, sizeof r->text, line, n);
		return 1;
	}
	return -1;
}

/* ---- HTTP --------------------------------------------------------------------- */

/* The end of the header section: offset after the empty line, or 0. */
static size_t http_header_end(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* "Name:" at line (case-insensitive); the value trimmed into v/vlen */
static int http_header_is(const char *line, size_t len, const char *name, const char **v,
                          size_t *vlen)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || util_strncasecmp(line, name, n) != 0)
		return 0;
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
		len--;
	*v = line;
	*vlen = len;
	return 1;
}

int scan_http_response_parse(const char *buf, size_t len, int eof, struct scan_http_response *r)
{
	size_t end = http_header_end(buf, len < SCAN_HTTP_HEADER_MAX ? len : SCAN_HTTP_HEADER_MAX);
	size_t pos, have_cl = 0;
	uint64_t cl = 0;

	if (end == 0) {
		if (len >= SCAN_HTTP_HEADER_MAX || eof)
			return -1;
		return 0;
	}
	memset(r, 0, sizeof *r);
	/* "HTTP/1.x NNN reason" */
	if (end < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' ||
	    buf[8] != ' ')
		return -1;
	for (int i = 9; i < 12; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		r->status = r->status * 10 + (buf[i] - '0');
	}
	if (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
		return -1;
	if (r->status < 100)
		return -1;
	pos = (size_t)((const char *)memchr(buf, '\n', end) - buf) + 1;
	while (pos < end) {
		const char *line = buf + pos, *v;
		const char *nl = memchr(line, '\n', end - pos);
		size_t llen = (size_t)(nl - line), vlen;

		pos += llen + 1;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break;
		if (line[0] == ' ' || line[0] == '\t')
			return -1; /* obsolete folding (RFC 9112 5.2): refused */
		if (http_header_is(line, llen, "Content-Length", &v, &vlen)) {
			uint64_t n = 0;
			if (vlen == 0 || vlen > 10)
				return -1;
			for (size_t i = 0; i < vlen; i++) {
				if (v[i] < '0' || v[i] > '9')
					return -1;
				n = n * 10 + (uint64_t)(v[i] - '0');
			}
			if (have_cl && n != cl)
				return -1;
			cl = n;
			have_cl = 1;
		} else if (http_header_is(line, llen, "Transfer-Encoding", &v, &vlen)) {
			if (vlen != 8 || util_strncasecmp(v, "identity", 8) != 0)
				return -1;
		}
	}
	r->body_off = end;
	if (have_cl) {
		if (cl > SCAN_HTTP_BODY_MAX)
			return -1;
		if (len - end < cl)
			return eof ? -1 : 0;
		r->body_len = (size_t)cl;
		return 1;
	}
	if (len - end > SCAN_HTTP_BODY_MAX)
		return -1;
	if (!eof)
		return 0;
	r->body_len = len - end;
	return 1;
}

/* ---- rspamd ------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum scan_outcome outcome;
} rspamd_actions[] = {
    {"no action", SCAN_OUT_CLEAN},         {"greylist", SCAN_OUT_GREYLIST},
    {"add header", SCAN_OUT_ADD_HEADER},   {"rewrite subject", SCAN_OUT_REWRITE_SUBJECT},
    {"soft reject", SCAN_OUT_SOFT_REJECT}, {"reject", SCAN_OUT_REJECT},
};

#define RSPAMD_TOP_SYMBOLS 5

/* The highest-scoring symbols as "NAME(score),..." for the log. */
static void rspamd_symbols(json_t *symbols, char *out, size_t size)
{
	const char *top[RSPAMD_TOP_SYMBOLS] = {0};
	double score[RSPAMD_TOP_SYMBOLS] = {0};
	size_t n = 0, used = 0;
	const char *key;
	json_t *val;

	out[0] = '\0';
	if (!json_is_object(symbols))
		return;
	json_object_foreach(symbols, key, val)
	{
		json_t *js = json_is_object(val) ? json_object_get(val, "score") : NULL;
		double s = json_is_number(js) ? json_number_value(js) : 0.0;
		size_t i;

		if (n < RSPAMD_TOP_SYMBOLS)
			n++;
		else if (s <= score[n - 1])
			continue;
		for (i = n - 1; i > 0 && score[i - 1] < s; i--) {
			top[i] = top[i - 1];
			score[i] = score[i - 1];
		}
		top[i] = key;
		score[i] = s;
	}
	for (size_t i = 0; i < n; i++) {
		char one[SCAN_TEXT_MAX], clean[96];
		int w;

		copy_printable(clean, sizeof clean, top[i], strlen(top[i]));
		w = snprintf(one, sizeof one, "%s%s(%.2f)", i ? "," : "", clean, score[i]);
		if (w < 0 || used + (size_t)w >= size)
			break; /* the log gets the symbols that fit */
		memcpy(out + used, one, (size_t)w + 1);
		used += (size_t)w;
	}
}

int scan_rspamd_reply_parse(const char *json, size_t len, struct scan_result *r)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &jerr), *v, *msgs;
	const char *action;

	if (root == NULL)
		return -1;
	if (!json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	memset(r, 0, sizeof *r);
	v = json_object_get(root, "action");
	if (!json_is_string(v)) {
		json_t *e = json_object_get(root, "error");
		if (!json_is_string(e)) {
			json_decref(root);
			return -1;
		}
		r->outcome = SCAN_OUT_FAILED;
		copy_printable(r->text, sizeof r->text, json_string_value(e),
		               json_string_length(e));
		json_decref(root);
		return 0;
	}
	action = json_string_value(v);
	copy_printable(r->name, sizeof r->name, action, json_string_length(v));
	r->outcome = SCAN_OUT_FAILED;
	for (size_t i = 0; i < sizeof rspamd_actions / sizeof rspamd_actions[0]; i++)
		if (strlen(rspamd_actions[i].name) == json_string_length(v) &&
		    strcmp(action, rspamd_actions[i].name) == 0)
			r->outcome = rspamd_actions[i].outcome;
	if (r->outcome == SCAN_OUT_FAILED)
		snprintf(r->text, sizeof r->text, "unknown action \"%s\"", r->name);
	v = json_object_get(root, "score");
	if (json_is_number(v))
		r->score = json_number_value(v);
	v = json_object_get(root, "required_score");
	if (json_is_number(v))
		r->required = json_number_value(v);
	msgs = json_object_get(root, "messages");
	v = json_is_object(msgs) ? json_object_get(msgs, "smtp_message") : NULL;
	if (json_is_string(v) && r->outcome != SCAN_OUT_FAILED)
		copy_printable(r->text, sizeof r->text, json_string_value(v),
		               json_string_length(v));
	rspamd_symbols(json_object_get(root, "symbols"), r->symbols, sizeof r->symbols);
	json_decref(root);
	return 0;
}

/* ---- endpoints ---------------------------------------------------------------- */

int scan_endpoint_parse(const char *s, int http, struct scan_endpoint *e_r, const char **why_r)
{
	const char *path = NULL;
	char hostport[sizeof e_r->host];

	memset(e_r, 0, sizeof *e_r);
	util_strlcpy(e_r->path, "/checkv2", sizeof e_r->path);
	if (strncmp(s, "unix:", 5) == 0 || s[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&e_r->ss;
		const char *p = s[0] == '/' ? s : s + 5;

		if (p[0] != '/' ||
		    util_strlcpy(un->sun_path, p, sizeof un->sun_path) >= sizeof un->sun_path) {
			*why_r = "unix socket path must be absolute and under 108 characters";
			return -1;
		}
		un->sun_family = AF_UNIX;
		e_r->sslen = (socklen_t)sizeof *un;
		util_strlcpy(e_r->host, "localhost", sizeof e_r->host);
		return 0;
	}
	if (http) {
		size_t n;
		if (strncmp(s, "http://", 7) != 0) {
			*why_r = "must be http://IP:PORT[/PATH] or unix:/PATH";
			return -1;
		}
		s += 7;
		n = strcspn(s, "/");
		if (n >= sizeof hostport) {
			*why_r = "address too long";
			return -1;
		}
		memcpy(hostport, s, n);
		hostport[n] = '\0';
		if (s[n] == '/')
			path = s + n;
		s = hostport;
	}
	if (path != NULL) {
		for (const char *p = path; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
				*why_r = "the URL path holds a space or control character";
				return -1;
			}
		if (util_strlcpy(e_r->path, path, sizeof e_r->path) >= sizeof e_r->path) {
			*why_r = "URL path too long";
			return -1;
		}
	}
	if (net_parse_hostport(s, &e_r->ss, &e_r->sslen, why_r) < 0)
		return -1;
	if (util_strlcpy(e_r->host, s, sizeof e_r->host) >= sizeof e_r->host) {
		*why_r = "address too long";
		return -1;
	}
	return 0;
}
