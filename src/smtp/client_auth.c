/*
 * SMTP AUTH as the client (RFC 4954): PLAIN with its initial response
 * (RFC 4616), else LOGIN (username and password each answering a 334).
 * Only over TLS, never in plaintext; a server that offers neither, or
 * refuses, fails the session with a 4xx (the messages wait: a refused
 * login is our configuration's problem, not the recipients').
 *
 * Credentials are borrowed from the configuration; their encoded form in
 * the output is wiped as it is consumed (out_secret).
 */
#include "smtp/client_private.h"

#include <string.h>

/* Credentials fit one AUTH PLAIN line and hold no NUL-breaking octets
 * (strings cannot hold NUL; CR/LF are fine once base64-encoded). */
int smtp_client_auth_config_ok(const struct smtp_client_config *cfg)
{
	size_t ul, pl;

	if (cfg->auth_user == NULL)
		return 1;
	if (cfg->auth_password == NULL)
		return 0;
	ul = strlen(cfg->auth_user);
	pl = strlen(cfg->auth_password);
	/* "AUTH PLAIN " + base64("\0user\0pass") + CRLF */
	return ul > 0 && ul + pl + 2 <= (SMTP_AUTH_LINE_MAX - 16) / 4 * 3;
}

static void auth_b64_encode(const unsigned char *in, size_t len, struct buf *out, int *err)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < len && !*err; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		char q[4];

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		q[0] = al[v >> 18];
		q[1] = al[(v >> 12) & 63];
		q[2] = i + 1 < len ? al[(v >> 6) & 63] : '=';
		q[3] = i + 2 < len ? al[v & 63] : '=';
		if (buf_append(out, q, 4) < 0)
			*err = 1;
	}
}

/* Queue a line with credentials: "prefix" base64(parts joined) CRLF. */
static void auth_send(struct smtp_client *c, enum smtp_client_state next, const char *prefix,
                      const char *const *parts, size_t nparts)
{
	size_t before = c->out.len;
	int err = buf_append_str(&c->out, prefix) < 0;
	struct buf raw = BUF_INIT;

	c->out_secret = 1;
	for (size_t i = 0; i < nparts && !err; i++)
		err = buf_append(&raw, parts[i], strlen(parts[i]) + (i + 1 < nparts)) < 0;
	if (!err)
		auth_b64_encode((const unsigned char *)raw.data, raw.len, &c->out, &err);
	if (raw.data)
		util_wipe(raw.data, raw.cap);
	buf_free(&raw);
	if (!err)
		err = buf_append(&c->out, "\r\n", 2) < 0;
	if (!err)
		err =
		    smtp_client_expect(c, SMTP_CLIENT_STAGE_AUTH, 0, c->out_base + c->out.len) < 0;
	if (err) {
		c->out.len = before;
		smtp_client_oom(c);
		return;
	}
	c->state = next;
}

void smtp_client_auth_start(struct smtp_client *c)
{
	struct smtp_client_reply why;

	if (!c->tls_active) {
		smtp_client_reply_set(&why, 451, "4.7.10", SMTP_CLIENT_STAGE_AUTH,
		                      "AUTH needs TLS, which is not active");
		smtp_client_fail(c, &why, 1);
	} else if (c->ext & SMTP_CLIENT_EXT_AUTH_PLAIN) {
		/* RFC 4616: authzid (empty) NUL authcid NUL passwd */
		const char *parts[] = {"", c->cfg.auth_user, c->cfg.auth_password};

		auth_send(c, CLIENT_AUTH, "AUTH PLAIN ", parts, 3);
	} else if (c->ext & SMTP_CLIENT_EXT_AUTH_LOGIN) {
		c->state = CLIENT_AUTH_LOGIN;
		(void)smtp_client_command(c, SMTP_CLIENT_STAGE_AUTH, 0, "AUTH LOGIN");
	} else {
		smtp_client_reply_set(&why, 451, "4.7.0", SMTP_CLIENT_STAGE_AUTH,
		                      "AUTH PLAIN or LOGIN not offered by the server");
		smtp_client_fail(c, &why, 1);
	}
}

/* A challenge we cannot answer: the exchange is out of step, and a QUIT
 * now would be read as a response. */
static void auth_unexpected(struct smtp_client *c, const struct smtp_client_reply *r)
{
	struct smtp_client_reply why;

	smtp_client_reply_set(&why, 454, "4.7.0", SMTP_CLIENT_STAGE_AUTH,
	                      "Authentication failed: unexpected reply %d %s", r->code, r->text);
	smtp_client_fail(c, &why, 0);
}

void smtp_client_auth_reply(struct smtp_client *c, const struct smtp_client_reply *r)
{
	int cls = r->code / 100;

	switch (c->state) {
	case CLIENT_AUTH: /* AUTH PLAIN with its response */
	case CLIENT_AUTH_PASS:
		if (cls == 2) {
			c->authenticated = 1;
			c->state = CLIENT_READY;
			return;
		}
		break;
	case CLIENT_AUTH_LOGIN:
	case CLIENT_AUTH_USER:
		if (r->code == 334) {
			int user = c->state == CLIENT_AUTH_LOGIN;
			const char *field[] = {user ? c->cfg.auth_user : c->cfg.auth_password};

			auth_send(c, user ? CLIENT_AUTH_USER : CLIENT_AUTH_PASS, "", field, 1);
			return;
		}
		if (cls == 2) {
			/* accepted before the password was even sent */
			auth_unexpected(c, r);
			return;
		}
		break;
	default:
		break;
	}
	if (cls == 3)
		auth_unexpected(c, r);
	else
		smtp_client_refused(c, r);
}
