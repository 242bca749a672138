/*
 * SMTP server commands.  One table pairs each command with the check of
 * what it needs (sequence, arguments, state) and the action that runs it
 * (OpenSMTPD's smtp_check_X / smtp_proceed_X).  A check answers the
 * client itself and returns -1 when the command cannot run.
 *
 * Lines arrive without their CRLF, NUL-terminated, free of CR, LF and
 * NUL; trailing spaces are ignored.  Verbs and keywords are
 * case-insensitive (RFC 5321 2.4).
 */
#include "smtp/server_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct smtp_server_cmd {
	const char *name;
	/* 0: go on; -1: refused (already answered). args is NULL when the
	 * line has no argument. */
	int (*check)(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args);
	void (*proceed)(struct smtp_server *s, const char *args);
};

/* ---- shared checks ------------------------------------------------------ */

static int check_no_args(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (args != NULL) {
		smtp_server_error(s, 501, "5.5.4", "Syntax: %s takes no arguments", cmd->name);
		return -1;
	}
	return 0;
}

static int check_any(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	return 0;
}

static int check_helo_done(struct smtp_server *s)
{
	if (s->helo == NULL) {
		smtp_server_error(s, 503, "5.5.1", "Send EHLO or HELO first");
		return -1;
	}
	return 0;
}

/* ---- EHLO / HELO -------------------------------------------------------- */

static int check_helo(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	size_t len;

	if (args == NULL || *args == '\0') {
		smtp_server_error(s, 501, "5.5.4", "Syntax: %s hostname", cmd->name);
		return -1;
	}
	/* A domain or address literal; be liberal in its form (clients send
	 * all sorts of names) but not in its length or its characters. */
	len = strlen(args);
	if (len > SMTP_DOMAIN_MAX) {
		smtp_server_error(s, 501, "5.5.4", "Invalid domain name");
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)args[i];

		if (c <= ' ' || c == 0x7f) {
			smtp_server_error(s, 501, "5.5.4", "Invalid domain name");
			return -1;
		}
	}
	return 0;
}

static int server_set_helo(struct smtp_server *s, const char *args)
{
	char *helo = util_strdup(args);

	if (helo == NULL) {
		smtp_server_oom(s);
		return -1;
	}
	smtp_server_reset_transaction(s);
	free(s->helo);
	s->helo = helo;
	return 0;
}

static void proceed_ehlo(struct smtp_server *s, const char *args)
{
	char size[32];
	const char *kw[8];
	size_t n = 0;
	int r;

	if (server_set_helo(s, args) < 0)
		return;
	s->esmtp = 1;
	snprintf(size, sizeof size, "SIZE %llu", (unsigned long long)s->cfg.max_message_size);
	kw[n++] = "PIPELINING";
	kw[n++] = size;
	kw[n++] = "8BITMIME";
	kw[n++] = "SMTPUTF8";
	kw[n++] = "ENHANCEDSTATUSCODES";
	if (s->cfg.tls_available && !s->tls_active)
		kw[n++] = "STARTTLS";
	/* RFC 4954 4 leaves it to us; DESIGN: AUTH only over TLS. */
	if (s->cfg.auth_offered && s->tls_active)
		kw[n++] = "AUTH PLAIN LOGIN";
	/* RFC 2034: no enhanced codes in the EHLO response. */
	r = buf_printf(&s->out, "250-%s\r\n", s->cfg.hostname);
	for (size_t i = 0; i < n && r == 0; i++)
		r = buf_printf(&s->out, "250%c%s\r\n", i + 1 < n ? '-' : ' ', kw[i]);
	if (r < 0)
		smtp_server_oom(s);
}

static void proceed_helo(struct smtp_server *s, const char *args)
{
	char line[SMTP_REPLY_LINE_MAX];
	int n;

	if (server_set_helo(s, args) < 0)
		return;
	s->esmtp = 0;
	n = snprintf(line, sizeof line, "250 %s\r\n", s->cfg.hostname);
	if (n < 0 || (size_t)n >= sizeof line)
		n = snprintf(line, sizeof line, "250 Ok\r\n");
	smtp_server_reply_raw(s, line, (size_t)n);
}

/* ---- MAIL / RCPT -------------------------------------------------------- */

/* The '>' closing the path that starts at p ('<'), NULL if none.  A '>'
 * inside a quoted local part does not count. */
static const char *server_path_end(const char *p)
{
	int quoted = 0;

	for (p++; *p; p++) {
		if (quoted && *p == '\\') {
			if (p[1] == '\0')
				return NULL;
			p++;
		} else if (*p == '"') {
			quoted = !quoted;
		} else if (*p == '>' && !quoted) {
			return p;
		}
	}
	return NULL;
}

/*
 * "FROM:" / "TO:" then an optional single space (many clients send one)
 * then the path.  Returns the path start and sets *end_r to its '>', or
 * NULL when the line does not have that shape.
 */
static const char *server_path(const char *args, const char *keyword, const char **end_r)
{
	size_t klen = strlen(keyword);
	const char *p;

	*end_r = NULL;
	if (args == NULL || util_strncasecmp(args, keyword, klen) != 0)
		return NULL;
	p = args + klen;
	if (*p == ' ')
		p++;
	if (*p != '<')
		return NULL;
	*end_r = server_path_end(p);
	return p;
}

static int check_mail(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (check_helo_done(s) < 0)
		return -1;
	if (s->cfg.auth_required && !s->authenticated) {
		smtp_server_error(s, 530, "5.7.0", "Authentication required");
		return -1;
	}
	if (s->in_transaction) {
		smtp_server_error(s, 503, "5.5.1", "Sender already specified");
		return -1;
	}
	return 0;
}

struct mail_params {
	uint64_t size;
	int body_8bit;
	int smtputf8;
};

enum {
	MAIL_PARAM_SIZE = 1 << 0,
	MAIL_PARAM_BODY = 1 << 1,
	MAIL_PARAM_SMTPUTF8 = 1 << 2,
	MAIL_PARAM_AUTH = 1 << 3,
};

/* SIZE value: 1*20DIGIT (RFC 1870), no overflow. */
static int server_parse_size(const char *v, size_t len, uint64_t *size_r)
{
	uint64_t n = 0;

	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (UINT64_MAX - (uint64_t)(v[i] - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	*size_r = n;
	return 0;
}

static int server_keyword_is(const char *kw, size_t len, const char *name)
{
	return strlen(name) == len && util_strncasecmp(kw, name, len) == 0;
}

/* MAIL parameters, RFC 5321 4.1.2 Mail-parameters.  Answers and returns -1
 * on any error. */
static int server_mail_params(struct smtp_server *s, const char *p, struct mail_params *mp)
{
	unsigned seen = 0;

	memset(mp, 0, sizeof *mp);
	for (;;) {
		const char *kw, *eq, *val = NULL;
		size_t kwlen, vallen = 0;
		unsigned bit;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		if (!s->esmtp) {
			smtp_server_error(s, 555, "5.5.4", "Parameters need EHLO");
			return -1;
		}
		kw = p;
		while (*p && *p != ' ')
			p++;
		eq = memchr(kw, '=', (size_t)(p - kw));
		kwlen = (size_t)((eq ? eq : p) - kw);
		if (eq) {
			val = eq + 1;
			vallen = (size_t)(p - val);
		}
		if (server_keyword_is(kw, kwlen, "SIZE"))
			bit = MAIL_PARAM_SIZE;
		else if (server_keyword_is(kw, kwlen, "BODY"))
			bit = MAIL_PARAM_BODY;
		else if (server_keyword_is(kw, kwlen, "SMTPUTF8"))
			bit = MAIL_PARAM_SMTPUTF8;
		else if (server_keyword_is(kw, kwlen, "AUTH"))
			bit = MAIL_PARAM_AUTH;
		else
			bit = 0;
		if (bit == 0 || (seen & bit)) {
			smtp_server_error(s, 555, "5.5.4", "%s parameter",
			                  bit ? "Duplicate" : "Unsupported");
			return -1;
		}
		seen |= bit;
		switch (bit) {
		case MAIL_PARAM_SIZE:
			if (val == NULL || server_parse_size(val, vallen, &mp->size) < 0) {
				smtp_server_error(s, 501, "5.5.4", "Bad SIZE value");
				return -1;
			}
			if (mp->size > s->cfg.max_message_size) {
				smtp_server_error(
				    s, 552, "5.3.4",
				    "Message size exceeds fixed maximum message size");
				return -1;
			}
			break;
		case MAIL_PARAM_BODY:
			if (val && server_keyword_is(val, vallen, "8BITMIME")) {
				mp->body_8bit = 1;
			} else if (!val || !server_keyword_is(val, vallen, "7BIT")) {
				smtp_server_error(s, 501, "5.5.4", "Bad BODY value");
				return -1;
			}
			break;
		case MAIL_PARAM_SMTPUTF8:
			if (val != NULL) {
				smtp_server_error(s, 501, "5.5.4", "SMTPUTF8 takes no value");
				return -1;
			}
			mp->smtputf8 = 1;
			break;
		case MAIL_PARAM_AUTH:
			/* RFC 4954 5: accepted and ignored; the session's own
			 * authentication is what counts. */
			if (val == NULL || vallen == 0) {
				smtp_server_error(s, 501, "5.5.4", "Bad AUTH value");
				return -1;
			}
			break;
		}
	}
}

/* Answer an address that smtp_address_parse() refused. */
static void server_bad_address(struct smtp_server *s, const char *why, int sender)
{
	if (why == smtp_address_why_utf8)
		smtp_server_error(s, 553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
	else if (!sender && why == smtp_address_why_no_domain)
		smtp_server_error(s, 550, "5.1.1", "Recipient address has no domain");
	else if (sender)
		smtp_server_error(s, 501, "5.1.7", "Bad sender address syntax");
	else
		smtp_server_error(s, 501, "5.1.3", "Bad recipient address syntax");
}

static void proceed_mail(struct smtp_server *s, const char *args)
{
	const char *path, *end, *why = NULL;
	struct mail_params mp;
	struct smtp_address *a;
	int flags = SMTP_ADDRESS_ALLOW_NULL;

	path = server_path(args, "FROM:", &end);
	if (path == NULL) {
		smtp_server_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	if (end == NULL) {
		smtp_server_error(s, 501, "5.1.7", "Bad sender address syntax");
		return;
	}
	if (end[1] != '\0' && end[1] != ' ') {
		smtp_server_error(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
		return;
	}
	if (server_mail_params(s, end + 1, &mp) < 0)
		return;
	if (mp.smtputf8)
		flags |= SMTP_ADDRESS_ALLOW_UTF8;
	a = calloc(1, sizeof *a);
	if (a == NULL) {
		smtp_server_oom(s);
		return;
	}
	if (smtp_address_parse(path, (size_t)(end + 1 - path), flags, a, &why) < 0) {
		free(a);
		server_bad_address(s, why, 1);
		return;
	}
	free(s->sender);
	s->sender = a;
	s->smtputf8 = mp.smtputf8 ? 1 : 0;
	s->body_8bit = mp.body_8bit ? 1 : 0;
	memset(&s->ev, 0, sizeof s->ev);
	s->ev.u.mail.sender = a;
	s->ev.u.mail.size = mp.size;
	s->ev.u.mail.body_8bit = mp.body_8bit;
	s->ev.u.mail.smtputf8 = mp.smtputf8;
	smtp_server_set_pending(s, SMTP_SERVER_MAIL);
}

static int check_rcpt(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (!s->in_transaction) {
		smtp_server_error(s, 503, "5.5.1", "Need MAIL command");
		return -1;
	}
	/* Not counted as an error: RFC 5321 4.5.3.1.8 expects clients to
	 * send the rest in another transaction. */
	if (s->nrcpt >= s->cfg.max_recipients) {
		smtp_server_reply(s, 452, "4.5.3", "Too many recipients");
		return -1;
	}
	return 0;
}

static int server_rcpt_slot(struct smtp_server *s)
{
	struct smtp_address *r;
	size_t cap;

	if (s->nrcpt < s->rcpt_cap)
		return 0;
	cap = s->rcpt_cap ? s->rcpt_cap * 2 : SMTP_SERVER_RCPT_INITIAL;
	r = realloc(s->rcpts, cap * sizeof *r);
	if (r == NULL)
		return -1;
	s->rcpts = r;
	s->rcpt_cap = cap;
	return 0;
}

static void proceed_rcpt(struct smtp_server *s, const char *args)
{
	const char *path, *end, *why = NULL;
	struct smtp_address *a;

	path = server_path(args, "TO:", &end);
	if (path == NULL) {
		smtp_server_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (end == NULL) {
		smtp_server_error(s, 501, "5.1.3", "Bad recipient address syntax");
		return;
	}
	if (end[1] == ' ') {
		/* No RCPT parameter is offered (DSN NOTIFY/ORCPT is not). */
		smtp_server_error(s, 555, "5.5.4", "Unsupported parameter");
		return;
	}
	if (end[1] != '\0') {
		smtp_server_error(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
		return;
	}
	if (server_rcpt_slot(s) < 0) {
		smtp_server_oom(s);
		return;
	}
	/* The candidate sits past the accepted ones until it is decided. */
	a = &s->rcpts[s->nrcpt];
	if (smtp_address_parse(path, (size_t)(end + 1 - path),
	                       s->smtputf8 ? SMTP_ADDRESS_ALLOW_UTF8 : 0, a, &why) < 0) {
		server_bad_address(s, why, 0);
		return;
	}
	memset(&s->ev, 0, sizeof s->ev);
	s->ev.u.rcpt.rcpt = a;
	smtp_server_set_pending(s, SMTP_SERVER_RCPT);
}

/* ---- DATA ---------------------------------------------------------------- */

static int check_data(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (!s->in_transaction) {
		smtp_server_error(s, 503, "5.5.1", "Need MAIL command");
		return -1;
	}
	if (s->nrcpt == 0) {
		smtp_server_error(s, 554, "5.5.1", "No valid recipients");
		return -1;
	}
	return check_no_args(s, cmd, args);
}

static void proceed_data(struct smtp_server *s, const char *args)
{
	static const char go_ahead[] = "354 End data with <CR><LF>.<CR><LF>\r\n";

	/* RFC 2920 3.1: DATA ends a pipelined group and the client waits for
	 * 354.  Message bytes already here were sent blind, as in SMTP
	 * smuggling: refuse them all and hang up rather than guess where
	 * the message starts. */
	if (s->in.len > s->line_total) {
		smtp_server_error(s, 554, "5.5.0", "Improper pipelining: data sent before 354");
		smtp_server_close(s);
		return;
	}
	smtp_server_reply_raw(s, go_ahead, sizeof go_ahead - 1);
	smtp_server_data_begin(s);
}

/* ---- RSET NOOP QUIT VRFY HELP STARTTLS ------------------------------------ */

static void proceed_rset(struct smtp_server *s, const char *args)
{
	smtp_server_reset_transaction(s);
	smtp_server_reply(s, 250, "2.0.0", "Ok");
}

static void proceed_noop(struct smtp_server *s, const char *args)
{
	smtp_server_reply(s, 250, "2.0.0", "Ok");
}

static void proceed_quit(struct smtp_server *s, const char *args)
{
	smtp_server_reply(s, 221, "2.0.0", "Bye");
	smtp_server_close(s);
}

static int check_vrfy(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (args == NULL || *args == '\0') {
		smtp_server_error(s, 501, "5.5.4", "Syntax: VRFY address");
		return -1;
	}
	return 0;
}

static void proceed_vrfy(struct smtp_server *s, const char *args)
{
	smtp_server_reply(s, 252, "2.5.0",
	                  "Cannot VRFY user, but will accept message and attempt delivery");
}

static void proceed_help(struct smtp_server *s, const char *args)
{
	smtp_server_reply(
	    s, 214, "2.0.0",
	    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

static int check_starttls(struct smtp_server *s, const struct smtp_server_cmd *cmd,
                          const char *args)
{
	if (!s->cfg.tls_available && !s->tls_active) {
		smtp_server_error(s, 502, "5.5.1", "STARTTLS not available");
		return -1;
	}
	if (s->tls_active) {
		smtp_server_error(s, 503, "5.5.1", "TLS already active");
		return -1;
	}
	return check_no_args(s, cmd, args);
}

static void proceed_starttls(struct smtp_server *s, const char *args)
{
	smtp_server_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* CVE-2011-0411: whatever followed STARTTLS in the clear must not be
	 * run as if it came over TLS. */
	util_wipe(s->in.data, s->in.len);
	buf_reset(&s->in);
	memset(&s->ev, 0, sizeof s->ev);
	smtp_server_set_pending(s, SMTP_SERVER_STARTTLS);
}

/* ---- dispatch ------------------------------------------------------------ */

static int check_auth(struct smtp_server *s, const struct smtp_server_cmd *cmd, const char *args)
{
	if (!s->cfg.auth_offered) {
		smtp_server_error(s, 502, "5.5.1", "AUTH not available");
		return -1;
	}
	if (!s->tls_active) {
		smtp_server_error(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return -1;
	}
	if (!s->esmtp) {
		smtp_server_error(s, 503, "5.5.1", "Send EHLO first");
		return -1;
	}
	if (s->authenticated) {
		smtp_server_error(s, 503, "5.5.1", "Already authenticated");
		return -1;
	}
	if (s->in_transaction) {
		smtp_server_error(s, 503, "5.5.1", "AUTH not permitted during a mail transaction");
		return -1;
	}
	if (args == NULL || *args == '\0') {
		smtp_server_error(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return -1;
	}
	return 0;
}

static const struct smtp_server_cmd smtp_server_cmds[] = {
    {"EHLO", check_helo, proceed_ehlo},
    {"HELO", check_helo, proceed_helo},
    {"MAIL", check_mail, proceed_mail},
    {"RCPT", check_rcpt, proceed_rcpt},
    {"DATA", check_data, proceed_data},
    {"RSET", check_no_args, proceed_rset},
    {"NOOP", check_any, proceed_noop},
    {"QUIT", check_no_args, proceed_quit},
    {"VRFY", check_vrfy, proceed_vrfy},
    {"HELP", check_any, proceed_help},
    {"STARTTLS", check_starttls, proceed_starttls},
    {"AUTH", check_auth, smtp_server_cmd_auth},
};

size_t smtp_server_line_limit(const struct smtp_server *s, const char *p, size_t len)
{
	if (len >= 5 && util_strncasecmp(p, "AUTH ", 5) == 0)
		return SMTP_AUTH_LINE_MAX;
	if (len >= 5 &&
	    (util_strncasecmp(p, "MAIL ", 5) == 0 || util_strncasecmp(p, "RCPT ", 5) == 0))
		return SMTP_MAIL_LINE_MAX;
	return SMTP_COMMAND_LINE_MAX;
}

void smtp_server_command(struct smtp_server *s, char *line, size_t len)
{
	const char *sp, *args;
	size_t vlen;

	while (len > 0 && line[len - 1] == ' ')
		len--;
	line[len] = '\0';
	sp = memchr(line, ' ', len);
	vlen = sp ? (size_t)(sp - line) : len;
	args = sp ? sp + 1 : NULL;
	for (size_t i = 0; i < sizeof smtp_server_cmds / sizeof smtp_server_cmds[0]; i++) {
		const struct smtp_server_cmd *cmd = &smtp_server_cmds[i];

		if (strlen(cmd->name) != vlen || util_strncasecmp(line, cmd->name, vlen) != 0)
			continue;
		if (cmd->check(s, cmd, args) == 0)
			cmd->proceed(s, args);
		return;
	}
	smtp_server_error(s, 500, "5.5.1", "Command unrecognized");
}
