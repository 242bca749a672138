/*
 * SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.
 * The session only decodes: the caller checks the credentials on the
 * SMTP_SERVER_AUTH event and answers 235/535/454/421.
 *
 * The decoded credentials live in one heap block for the length of the
 * exchange and are wiped when it ends, whichever way it ends; the input
 * lines that carried them are wiped by the line reader (server.c).
 */
#include "smtp/server_private.h"

#include <stdlib.h>
#include <string.h>

/* Decoded PLAIN message: authzid NUL authcid NUL passwd (RFC 4616 2). */
#define SMTP_AUTH_PLAIN_MAX (3 * SMTP_AUTH_FIELD_MAX + 2)

static const char smtp_auth_username_prompt[] = "334 VXNlcm5hbWU6\r\n"; /* "Username:" */
static const char smtp_auth_password_prompt[] = "334 UGFzc3dvcmQ6\r\n"; /* "Password:" */

static int auth_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict RFC 4648 base64: padded, no whitespace.  Returns 0 with the
 * decoded length in *n_r, -1 on bad encoding, -2 if it decodes to more
 * than max octets (checked before decoding anything).
 */
static int auth_b64_decode(const char *in, size_t len, unsigned char *out, size_t max, size_t *n_r)
{
	size_t pad = 0, n, o = 0;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && in[len - 1] == '=')
		pad++;
	if (pad == 1 && len > 1 && in[len - 2] == '=')
		pad++;
	n = len / 4 * 3 - pad;
	if (n > max)
		return -2;
	for (size_t i = 0; i < len; i += 4) {
		uint32_t v = 0;
		int last = i + 4 == len;

		for (size_t k = 0; k < 4; k++) {
			int d;

			if (last && k >= 4 - pad) {
				d = 0;
			} else if ((d = auth_b64_value((unsigned char)in[i + k])) < 0) {
				util_wipe(out, o);
				return -1;
			}
			v = (v << 6) | (uint32_t)d;
		}
		for (int shift = 16; shift >= 0 && o < n; shift -= 8)
			out[o++] = (unsigned char)(v >> shift);
	}
	*n_r = n;
	return 0;
}

void smtp_server_auth_clear(struct smtp_server *s)
{
	if (s->auth) {
		util_wipe(s->auth, sizeof *s->auth);
		free(s->auth);
		s->auth = NULL;
	}
	s->auth_step = SMTP_AUTH_NONE;
}

/* End the exchange with a refusal of the client's input. */
static void auth_fail(struct smtp_server *s, int code, const char *enhanced, const char *text)
{
	smtp_server_auth_clear(s);
	s->phase = SMTP_PHASE_COMMAND;
	smtp_server_error(s, code, enhanced, "%s", text);
}

static void auth_decode_fail(struct smtp_server *s, int r)
{
	if (r == -2)
		auth_fail(s, 501, "5.5.2", "Authentication data too long");
	else
		auth_fail(s, 501, "5.5.2", "Invalid base64 data");
}

static void auth_emit(struct smtp_server *s)
{
	s->phase = SMTP_PHASE_COMMAND;
	s->auth_step = SMTP_AUTH_NONE;
	memset(&s->ev, 0, sizeof s->ev);
	s->ev.u.auth.mechanism = s->auth->mechanism;
	s->ev.u.auth.authzid = s->auth->authzid;
	s->ev.u.auth.username = s->auth->username;
	s->ev.u.auth.password = s->auth->password;
	smtp_server_set_pending(s, SMTP_SERVER_AUTH);
}

static void auth_plain(struct smtp_server *s, const char *b64, size_t len)
{
	unsigned char msg[SMTP_AUTH_PLAIN_MAX];
	const unsigned char *authcid, *passwd;
	size_t n = 0, zlen, clen, plen;
	int r;

	r = auth_b64_decode(b64, len, msg, sizeof msg, &n);
	if (r < 0) {
		auth_decode_fail(s, r);
		return;
	}
	authcid = memchr(msg, '\0', n);
	passwd = authcid ? memchr(authcid + 1, '\0', n - (size_t)(authcid + 1 - msg)) : NULL;
	if (passwd == NULL || memchr(passwd + 1, '\0', n - (size_t)(passwd + 1 - msg)))
		goto malformed;
	authcid++;
	passwd++;
	zlen = (size_t)(authcid - 1 - msg);
	clen = (size_t)(passwd - 1 - authcid);
	plen = n - (size_t)(passwd - msg);
	if (zlen > SMTP_AUTH_FIELD_MAX || clen > SMTP_AUTH_FIELD_MAX ||
	    plen > SMTP_AUTH_FIELD_MAX) {
		util_wipe(msg, sizeof msg);
		auth_fail(s, 501, "5.5.2", "Authentication data too long");
		return;
	}
	if (clen == 0 || plen == 0)
		goto malformed;
	memcpy(s->auth->authzid, msg, zlen);
	s->auth->authzid[zlen] = '\0';
	memcpy(s->auth->username, authcid, clen);
	s->auth->username[clen] = '\0';
	memcpy(s->auth->password, passwd, plen);
	s->auth->password[plen] = '\0';
	util_wipe(msg, sizeof msg);
	auth_emit(s);
	return;

malformed:
	util_wipe(msg, sizeof msg);
	auth_fail(s, 501, "5.5.2", "Malformed PLAIN response");
}

/* One LOGIN field into dst (SMTP_AUTH_FIELD_MAX + 1); answers on error. */
static int auth_login_field(struct smtp_server *s, const char *b64, size_t len, char *dst)
{
	unsigned char field[SMTP_AUTH_FIELD_MAX];
	size_t n = 0;
	int r;

	r = auth_b64_decode(b64, len, field, sizeof field, &n);
	if (r < 0) {
		auth_decode_fail(s, r);
		return -1;
	}
	if (n == 0 || memchr(field, '\0', n)) {
		util_wipe(field, sizeof field);
		auth_fail(s, 501, "5.5.2", "Malformed LOGIN response");
		return -1;
	}
	memcpy(dst, field, n);
	dst[n] = '\0';
	util_wipe(field, sizeof field);
	return 0;
}

static void auth_login_username(struct smtp_server *s, const char *b64, size_t len)
{
	if (auth_login_field(s, b64, len, s->auth->username) < 0)
		return;
	s->auth_step = SMTP_AUTH_LOGIN_PASSWORD;
	s->phase = SMTP_PHASE_AUTH;
	smtp_server_reply_raw(s, smtp_auth_password_prompt, sizeof smtp_auth_password_prompt - 1);
}

void smtp_server_cmd_auth(struct smtp_server *s, const char *args)
{
	const char *sp = strchr(args, ' ');
	size_t mlen = sp ? (size_t)(sp - args) : strlen(args);
	const char *ir = sp ? sp + 1 : NULL;
	const char *mechanism;

	if (ir && (*ir == '\0' || strchr(ir, ' '))) {
		smtp_server_error(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if (mlen == 5 && util_strncasecmp(args, "PLAIN", 5) == 0) {
		mechanism = "PLAIN";
	} else if (mlen == 5 && util_strncasecmp(args, "LOGIN", 5) == 0) {
		mechanism = "LOGIN";
	} else {
		smtp_server_error(s, 504, "5.5.4", "Unrecognized authentication mechanism");
		return;
	}
	smtp_server_auth_clear(s);
	s->auth = calloc(1, sizeof *s->auth);
	if (s->auth == NULL) {
		smtp_server_oom(s);
		return;
	}
	s->auth->mechanism = mechanism;
	/* RFC 4954 4: "=" is an empty initial response. */
	if (ir && strcmp(ir, "=") == 0)
		ir = "";
	if (mechanism[0] == 'P') {
		if (ir) {
			auth_plain(s, ir, strlen(ir));
		} else {
			s->auth_step = SMTP_AUTH_PLAIN_RESPONSE;
			s->phase = SMTP_PHASE_AUTH;
			smtp_server_reply_raw(s, "334 \r\n", 6);
		}
	} else {
		if (ir) {
			auth_login_username(s, ir, strlen(ir));
		} else {
			s->auth_step = SMTP_AUTH_LOGIN_USERNAME;
			s->phase = SMTP_PHASE_AUTH;
			smtp_server_reply_raw(s, smtp_auth_username_prompt,
			                      sizeof smtp_auth_username_prompt - 1);
		}
	}
}

void smtp_server_auth_line(struct smtp_server *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		auth_fail(s, 501, "5.0.0", "Authentication cancelled");
		return;
	}
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN_RESPONSE:
		auth_plain(s, line, len);
		break;
	case SMTP_AUTH_LOGIN_USERNAME:
		auth_login_username(s, line, len);
		break;
	case SMTP_AUTH_LOGIN_PASSWORD:
		if (auth_login_field(s, line, len, s->auth->password) == 0)
			auth_emit(s);
		break;
	default:
		log_panic("smtp auth line without an exchange step=%d", (int)s->auth_step);
	}
}

void smtp_server_auth_decided(struct smtp_server *s, int accepted)
{
	if (accepted)
		s->authenticated = 1;
	smtp_server_auth_clear(s);
}
