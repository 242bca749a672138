/*
 * Sender identity in the header section, checked at end of DATA
 * (DESIGN.md "Tenancy and security"; issue 4): exactly one From: field
 * (RFC 5322 3.6), at most one Sender:, and every From: mailbox and the
 * Sender: mailbox at a verified domain of the tenant.
 *
 * Two halves: policy_headers_parse() is a pure function of the message
 * bytes (fuzzed by tests/fuzz/fuzz_policy_headers.c); policy_headers_check()
 * asks the store.
 *
 * The scan reads every line up to the empty line, also lines that are not
 * fields, so the fields it counts are a superset of what any reader takes
 * for the header: a From: placed after a malformed line is counted, never
 * skipped.  Work is linear: the section is capped at
 * POLICY_HEADER_SECTION_MAX, a From:/Sender: field at
 * POLICY_HEADER_FIELD_MAX, and an address is lexed at most twice (a
 * phrase is re-read as a local part when an '@' follows it).
 *
 * Known limit: IDN domains are compared as bytes (ASCII lower-cased); the
 * store holds A-labels only, so a From: in U-labels does not match.
 */
#include "policy/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shown at most in a reply: a domain from the client, elided beyond. */
#define HEADERS_SHOWN_MAX 80

/* ---- lexer: RFC 5322 3.2 tokens of one unfolded field body -------------- */

enum hdr_tok {
	TOK_END,
	TOK_ATOM,    /* 1*atext; UTF-8 octets count as atext (RFC 6532) */
	TOK_QUOTED,  /* "..." as written, quotes and quoted-pairs included */
	TOK_DOMLIT,  /* [...] as written */
	TOK_SPECIAL, /* one of < > @ , ; : . */
	TOK_ERROR,
};

struct hdr_lex {
	const char *p;
	size_t len, pos;
	enum hdr_tok type;
	size_t start, end; /* the token is p[start, end) */
	const char *error; /* TOK_ERROR: static text */
};

static int hdr_atext(unsigned char c)
{
	if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Control characters are refused everywhere (obs-NO-WS-CTL and obs-qp
 * are not harmless in a From: a person reads). */
static int hdr_ctl(unsigned char c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static void lex_fail(struct hdr_lex *l, const char *why)
{
	l->type = TOK_ERROR;
	l->error = why;
}

/* Skip a comment at l->pos ('('), nested comments and quoted-pairs
 * included.  0, or -1 with the error set. */
static int lex_comment(struct hdr_lex *l)
{
	size_t depth = 0;

	while (l->pos < l->len) {
		unsigned char c = (unsigned char)l->p[l->pos];

		if (hdr_ctl(c)) {
			lex_fail(l, "a control character");
			return -1;
		}
		if (c == '\\' && l->pos + 1 < l->len && !hdr_ctl((unsigned char)l->p[l->pos + 1])) {
			l->pos += 2; /* quoted-pair */
			continue;
		}
		l->pos++;
		if (c == '(') {
			depth++;
		} else if (c == ')') {
			if (--depth == 0)
				return 0;
		}
	}
	lex_fail(l, "an unterminated comment");
	return -1;
}

/* A quoted string or domain literal from l->pos to its closing byte. */
static int lex_delimited(struct hdr_lex *l, char close, const char *unterminated)
{
	l->pos++;
	while (l->pos < l->len) {
		unsigned char c = (unsigned char)l->p[l->pos];

		if (hdr_ctl(c)) {
			lex_fail(l, "a control character");
			return -1;
		}
		if (c == '\\' && l->pos + 1 < l->len && !hdr_ctl((unsigned char)l->p[l->pos + 1])) {
			l->pos += 2; /* quoted-pair */
			continue;
		}
		if (close == ']' && c == '[') {
			lex_fail(l, "a '[' inside a domain literal");
			return -1;
		}
		l->pos++;
		if (c == (unsigned char)close)
			return 0;
	}
	lex_fail(l, unterminated);
	return -1;
}

/* The next token, CFWS skipped.  Returns its type. */
static enum hdr_tok lex_next(struct hdr_lex *l)
{
	unsigned char c;

	if (l->type == TOK_ERROR)
		return TOK_ERROR;
	for (;;) {
		if (l->pos >= l->len) {
			l->type = TOK_END;
			l->start = l->end = l->pos;
			return TOK_END;
		}
		c = (unsigned char)l->p[l->pos];
		if (c == ' ' || c == '\t') {
			l->pos++;
		} else if (c == '(') {
			if (lex_comment(l) < 0)
				return TOK_ERROR;
		} else {
			break;
		}
	}
	l->start = l->pos;
	if (hdr_atext(c)) {
		while (l->pos < l->len && hdr_atext((unsigned char)l->p[l->pos]))
			l->pos++;
		l->type = TOK_ATOM;
	} else if (c == '"') {
		if (lex_delimited(l, '"', "an unterminated quoted string") < 0)
			return TOK_ERROR;
		l->type = TOK_QUOTED;
	} else if (c == '[') {
		if (lex_delimited(l, ']', "an unterminated domain literal") < 0)
			return TOK_ERROR;
		l->type = TOK_DOMLIT;
	} else if (c != '\0' && strchr("<>@,;:.", c) != NULL) {
		l->pos++;
		l->type = TOK_SPECIAL;
	} else {
		lex_fail(l, hdr_ctl(c) ? "a control character" : "a stray ')', ']' or '\\'");
		return TOK_ERROR;
	}
	l->end = l->pos;
	return l->type;
}

static int lex_is(const struct hdr_lex *l, char special)
{
	return l->type == TOK_SPECIAL && l->p[l->start] == special;
}

/* ---- parser: RFC 5322 3.4 address lists, obsolete forms tolerated ------- */

struct hdr_parser {
	struct hdr_lex lx;
	int allow_group;              /* From: (RFC 6854) yes, Sender: no */
	size_t max;                   /* mailboxes kept at most */
	struct policy_mailbox *boxes; /* malloc'ed, grown to max */
	size_t n, cap;
	const char *error; /* static */
	int nomem;
};

static int hp_fail(struct hdr_parser *hp, const char *why)
{
	if (hp->error == NULL)
		hp->error = why;
	return -1;
}

/* Advance; -1 on a lexical error. */
static int hp_next(struct hdr_parser *hp)
{
	if (lex_next(&hp->lx) == TOK_ERROR)
		return hp_fail(hp, hp->lx.error);
	return 0;
}

static int hp_append(char *dst, size_t size, size_t *len, const char *src, size_t n)
{
	if (*len + n >= size)
		return -1;
	memcpy(dst + *len, src, n);
	*len += n;
	dst[*len] = '\0';
	return 0;
}

/* domain = dot-atom / domain-literal / obs-domain, into m->domain with
 * ASCII lower-cased (m may be NULL: an obs-route domain, read and dropped). */
static int hp_domain(struct hdr_parser *hp, struct policy_mailbox *m)
{
	struct policy_mailbox scratch;
	size_t len = 0;

	if (m == NULL)
		m = &scratch;
	m->domain[0] = '\0';
	if (hp->lx.type == TOK_DOMLIT) {
		if (hp_append(m->domain, sizeof m->domain, &len, hp->lx.p + hp->lx.start,
		              hp->lx.end - hp->lx.start) < 0)
			return hp_fail(hp, "a domain longer than 255 octets");
		if (hp_next(hp) < 0)
			return -1;
	} else {
		for (;;) { /* dot-atom, or obs-domain with CFWS around the dots */
			if (hp->lx.type != TOK_ATOM)
				return hp_fail(hp, len == 0 ? "an address without a domain"
				                            : "a domain ending in '.'");
			if (hp_append(m->domain, sizeof m->domain, &len, hp->lx.p + hp->lx.start,
			              hp->lx.end - hp->lx.start) < 0)
				return hp_fail(hp, "a domain longer than 255 octets");
			if (hp_next(hp) < 0)
				return -1;
			if (!lex_is(&hp->lx, '.'))
				break;
			if (hp_append(m->domain, sizeof m->domain, &len, ".", 1) < 0)
				return hp_fail(hp, "a domain longer than 255 octets");
			if (hp_next(hp) < 0)
				return -1;
		}
	}
	for (char *d = m->domain; *d; d++)
		if (*d >= 'A' && *d <= 'Z')
			*d = (char)(*d - 'A' + 'a');
	return 0;
}

static int hp_keep(struct hdr_parser *hp, const struct policy_mailbox *m)
{
	if (hp->n == hp->max)
		return hp_fail(hp, hp->max == 1 ? "more than one mailbox"
		                                : "more mailboxes than sluice checks (100)");
	if (hp->n == hp->cap) {
		size_t cap = hp->cap ? hp->cap * 2 : 4;
		struct policy_mailbox *b;

		if (cap > hp->max)
			cap = hp->max;
		b = realloc(hp->boxes, cap * sizeof *b);
		if (b == NULL) {
			hp->nomem = 1;
			return hp_fail(hp, "no memory");
		}
		hp->boxes = b;
		hp->cap = cap;
	}
	hp->boxes[hp->n++] = *m;
	return 0;
}

/* addr-spec = local-part "@" domain.  The local part is its words (atoms,
 * quoted strings as written) and dots with CFWS removed; obs-local-part's
 * stray dots ("a..b", "a.") are tolerated: the local part decides nothing
 * here.  Two words without a dot between them are not an address. */
static int hp_addr_spec(struct hdr_parser *hp)
{
	struct policy_mailbox m;
	size_t len = 0;
	int words = 0, last_word = 0;

	m.local[0] = '\0';
	while (hp->lx.type == TOK_ATOM || hp->lx.type == TOK_QUOTED || lex_is(&hp->lx, '.')) {
		int word = hp->lx.type != TOK_SPECIAL;

		if (word && last_word)
			return hp_fail(hp, "a local part with a space in it");
		if (hp_append(m.local, sizeof m.local, &len, hp->lx.p + hp->lx.start,
		              hp->lx.end - hp->lx.start) < 0)
			return hp_fail(hp, "a local part longer than 256 octets");
		words += word;
		last_word = word;
		if (hp_next(hp) < 0)
			return -1;
	}
	if (words == 0)
		return hp_fail(hp, "an address without a local part");
	if (!lex_is(&hp->lx, '@'))
		return hp_fail(hp, "an address without '@'");
	if (hp_next(hp) < 0 || hp_domain(hp, &m) < 0)
		return -1;
	return hp_keep(hp, &m);
}

/* angle-addr = "<" [obs-route] addr-spec ">"; the route is dropped. */
static int hp_angle(struct hdr_parser *hp)
{
	if (hp_next(hp) < 0)
		return -1;
	if (lex_is(&hp->lx, '@') || lex_is(&hp->lx, ',')) {
		/* obs-domain-list: *("," / CFWS) "@" domain *("," ["@" domain]) ":" */
		while (lex_is(&hp->lx, '@') || lex_is(&hp->lx, ',')) {
			int at = lex_is(&hp->lx, '@');

			if (hp_next(hp) < 0 || (at && hp_domain(hp, NULL) < 0))
				return -1;
		}
		if (!lex_is(&hp->lx, ':'))
			return hp_fail(hp, "a malformed source route");
		if (hp_next(hp) < 0)
			return -1;
	}
	if (lex_is(&hp->lx, '>'))
		return hp_fail(hp, "an empty address <>");
	if (hp_addr_spec(hp) < 0)
		return -1;
	if (!lex_is(&hp->lx, '>'))
		return hp_fail(hp, "an address not closed by '>'");
	return hp_next(hp);
}

static int hp_list(struct hdr_parser *hp, int in_group);

/* One element: name-addr, addr-spec or (From: only) a group. */
static int hp_item(struct hdr_parser *hp, int in_group)
{
	struct hdr_lex start = hp->lx;
	size_t words = 0;

	/* a phrase (display name or group name; obs-phrase allows dots) */
	while (hp->lx.type == TOK_ATOM || hp->lx.type == TOK_QUOTED || lex_is(&hp->lx, '.')) {
		words++;
		if (hp_next(hp) < 0)
			return -1;
	}
	if (lex_is(&hp->lx, '<'))
		return hp_angle(hp);
	if (lex_is(&hp->lx, '@') && words > 0) {
		hp->lx = start; /* the phrase was a local part */
		return hp_addr_spec(hp);
	}
	if (lex_is(&hp->lx, ':') && words > 0) {
		if (!hp->allow_group)
			return hp_fail(hp, "a group, where one mailbox belongs");
		if (in_group)
			return hp_fail(hp, "a group inside a group");
		if (hp_next(hp) < 0 || hp_list(hp, 1) < 0)
			return -1;
		/* hp_list() stops only at ';' inside a group */
		return hp_next(hp);
	}
	return hp_fail(hp, words > 0 ? "a name without an address" : "text that is not an address");
}

/* mailbox-list / address-list / group-list, empty elements tolerated
 * (obs-mbox-list).  In a group, stops at its ';' (not consumed). */
static int hp_list(struct hdr_parser *hp, int in_group)
{
	for (;;) {
		if (hp->lx.type == TOK_END)
			return in_group ? hp_fail(hp, "a group not closed by ';'") : 0;
		if (lex_is(&hp->lx, ';')) {
			if (in_group)
				return 0;
			return hp_fail(hp, "a ';' outside a group");
		}
		if (lex_is(&hp->lx, ',')) {
			if (hp_next(hp) < 0)
				return -1;
			continue;
		}
		if (hp_item(hp, in_group) < 0)
			return -1;
		if (hp->lx.type != TOK_END && !lex_is(&hp->lx, ',') && !lex_is(&hp->lx, ';'))
			return hp_fail(hp, "text after an address");
	}
}

/* Parse one field body.  0 with hp->boxes/n, -1 with hp->error. */
static int hp_parse(struct hdr_parser *hp, const char *body, size_t len)
{
	hp->lx = (struct hdr_lex){.p = body, .len = len};
	if (hp_next(hp) < 0 || hp_list(hp, 0) < 0)
		return -1;
	if (hp->n == 0)
		return hp_fail(hp, "no mailbox");
	return 0;
}

/* ---- header section scan ------------------------------------------------ */

enum hdr_field { FIELD_OTHER, FIELD_FROM, FIELD_SENDER };

/* "Name:" or, obsolete, "Name  :" at the start of line (RFC 5322 4.5). */
static int hdr_is_field(const char *line, size_t len, const char *name, size_t *body_r)
{
	size_t n = strlen(name), i;

	if (len <= n || util_strncasecmp(line, name, n) != 0)
		return 0;
	for (i = n; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i >= len || line[i] != ':')
		return 0;
	*body_r = i + 1;
	return 1;
}

struct hdr_scan {
	struct policy_headers *h;
	enum hdr_field cur; /* the field being collected, if one we parse */
	char *field;        /* its unfolded body, POLICY_HEADER_FIELD_MAX */
	size_t len;
	int overflow;
};

static void scan_add(struct hdr_scan *sc, const char *s, size_t n)
{
	if (sc->overflow || n > POLICY_HEADER_FIELD_MAX - sc->len) {
		sc->overflow = 1;
		return;
	}
	memcpy(sc->field + sc->len, s, n);
	sc->len += n;
}

/* The collected field is complete: parse it.  0, -1 no memory. */
static int scan_finish(struct hdr_scan *sc)
{
	struct policy_headers *h = sc->h;
	struct hdr_parser hp = {.allow_group = sc->cur == FIELD_FROM,
	                        .max = sc->cur == FIELD_FROM ? POLICY_HEADER_MAILBOXES_MAX : 1};
	const char *error = NULL;

	if (sc->cur == FIELD_OTHER)
		return 0;
	if (sc->overflow)
		error = "longer than 16384 octets";
	else if (hp_parse(&hp, sc->field, sc->len) < 0)
		error = hp.error;
	if (hp.nomem) {
		free(hp.boxes);
		return -1;
	}
	if (sc->cur == FIELD_FROM) {
		h->from_error = error;
		if (error == NULL) {
			h->from = hp.boxes; /* handed over; policy_headers_clear() frees */
			h->nfrom = hp.n;
			hp.boxes = NULL;
		}
	} else {
		h->sender_error = error;
		if (error == NULL)
			h->sender = hp.boxes[0];
	}
	free(hp.boxes);
	sc->cur = FIELD_OTHER;
	return 0;
}

int policy_headers_parse(const char *data, size_t len, struct policy_headers *h_r)
{
	struct hdr_scan sc = {.h = h_r, .cur = FIELD_OTHER};
	size_t pos = 0;

	memset(h_r, 0, sizeof *h_r);
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t linelen = nl != NULL ? (size_t)(nl - line) : len - pos;
		size_t content = linelen, body = 0;

		if (content > 0 && line[content - 1] == '\r')
			content--;
		if (content == 0)
			break; /* the empty line: the body follows */
		if (pos + linelen > POLICY_HEADER_SECTION_MAX) {
			h_r->too_large = 1;
			sc.cur = FIELD_OTHER; /* not parsed: the verdict is a refusal */
			break;
		}
		if (line[0] == ' ' || line[0] == '\t') {
			if (sc.cur != FIELD_OTHER)
				scan_add(&sc, line, content); /* unfolding: only the CRLF goes */
		} else {
			if (scan_finish(&sc) < 0)
				goto nomem;
			if (hdr_is_field(line, content, "From", &body)) {
				if (h_r->from_fields++ == 0)
					sc.cur = FIELD_FROM;
			} else if (hdr_is_field(line, content, "Sender", &body)) {
				if (h_r->sender_fields++ == 0)
					sc.cur = FIELD_SENDER;
			}
			if (sc.cur != FIELD_OTHER) {
				if (sc.field == NULL &&
				    (sc.field = malloc(POLICY_HEADER_FIELD_MAX)) == NULL)
					goto nomem;
				sc.len = 0;
				sc.overflow = 0;
				scan_add(&sc, line + body, content - body);
			}
		}
		if (nl == NULL)
			break;
		pos += linelen + 1;
	}
	if (scan_finish(&sc) < 0)
		goto nomem;
	free(sc.field);
	return 0;
nomem:
	free(sc.field);
	policy_headers_clear(h_r);
	return -1;
}

void policy_headers_clear(struct policy_headers *h)
{
	free(h->from);
	memset(h, 0, sizeof *h);
}

/* ---- the check against the store ---------------------------------------- */

static void headers_verdict(struct policy_verdict *v, int code, const char *enh, const char *fmt,
                            ...) UTIL_PRINTF(4, 5);

static void headers_verdict(struct policy_verdict *v, int code, const char *enh, const char *fmt,
                            ...)
{
	va_list ap;

	v->code = code;
	util_strlcpy(v->enhanced, enh, sizeof v->enhanced);
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof v->text, fmt, ap);
	va_end(ap);
}

/* A client's domain for a reply: printable ASCII, others '?', elided
 * with "..." past HEADERS_SHOWN_MAX so the text keeps its end. */
static void headers_shown(const char *in, char out[HEADERS_SHOWN_MAX + 4])
{
	size_t i;

	for (i = 0; in[i] != '\0' && i < HEADERS_SHOWN_MAX; i++)
		out[i] = in[i] > 0x20 && in[i] < 0x7f ? in[i] : '?';
	if (in[i] != '\0')
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
}

/* 0 the domain is the tenant's and verified, 1 refused (v_r filled), -1
 * store error (v_r holds 451). */
static int headers_domain(struct store *st, const struct policy_client *c, const char *field,
                          const char *domain, struct policy_verdict *v_r)
{
	struct store_domain d;
	char shown[HEADERS_SHOWN_MAX + 4], *err = NULL;
	int r;

	r = store_domain_get(st, domain, &d, &err);
	free(err); /* set for "not found" too */
	if (r < 0) {
		headers_verdict(
		    v_r, 451, "4.3.0",
		    "Temporary failure looking up the %s header domain, try again later", field);
		return -1;
	}
	headers_shown(domain, shown);
	if (r == STORE_NOTFOUND || d.tenant_id != c->tenant_id) {
		headers_verdict(v_r, 550, "5.7.1",
		                "%s header domain %s is not one of tenant %s's domains", field,
		                shown, c->tenant != NULL ? c->tenant : "?");
		return 1;
	}
	if (!d.verified) {
		headers_verdict(v_r, 550, "5.7.1", "%s header domain %s is not verified yet", field,
		                shown);
		return 1;
	}
	return 0;
}

int policy_headers_check(struct store *st, const struct policy_client *c,
                         const struct policy_headers *h, struct policy_verdict *v_r,
                         const char **reason_r)
{
	int r;

	*reason_r = "from-header";
	if (h->too_large) {
		*reason_r = "header-size";
		headers_verdict(v_r, 552, "5.3.4",
		                "Message header section is over %d octets (no empty line before "
		                "the body?)",
		                POLICY_HEADER_SECTION_MAX);
		return 0;
	}
	if (h->from_fields != 1) {
		headers_verdict(v_r, 550, "5.7.1",
		                "Message must have exactly one From: header (it has %zu)",
		                h->from_fields);
		return 0;
	}
	if (h->from_error != NULL) {
		headers_verdict(v_r, 550, "5.7.1", "From: header is not a valid address list: %s",
		                h->from_error);
		return 0;
	}
	for (size_t i = 0; i < h->nfrom; i++) {
		size_t j;

		for (j = 0; j < i; j++) /* each domain once; n is small */
			if (strcmp(h->from[j].domain, h->from[i].domain) == 0)
				break;
		if (j < i)
			continue;
		r = headers_domain(st, c, "From:", h->from[i].domain, v_r);
		if (r != 0) {
			if (r < 0)
				*reason_r = "store-error";
			return r < 0 ? -1 : 0;
		}
	}
	*reason_r = "sender-header";
	if (h->sender_fields > 1) {
		headers_verdict(v_r, 550, "5.7.1",
		                "Message must have at most one Sender: header (it has %zu)",
		                h->sender_fields);
		return 0;
	}
	if (h->sender_fields == 1) {
		if (h->sender_error != NULL) {
			headers_verdict(v_r, 550, "5.7.1",
			                "Sender: header is not a valid mailbox: %s",
			                h->sender_error);
			return 0;
		}
		r = headers_domain(st, c, "Sender:", h->sender.domain, v_r);
		if (r != 0) {
			if (r < 0)
				*reason_r = "store-error";
			return r < 0 ? -1 : 0;
		}
	}
	*reason_r = "ok";
	headers_verdict(v_r, 250, "2.0.0", "Ok");
	return 0;
}

int policy_check_headers(struct store *st, const struct policy_client *c, const char *data,
                         size_t len, struct policy_verdict *v_r, const char **reason_r)
{
	struct policy_headers h;
	int r;

	if (policy_headers_parse(data, len, &h) < 0) {
		*reason_r = "no-memory";
		headers_verdict(v_r, 451, "4.3.0", "Temporary local problem, try again later");
		return -1;
	}
	r = policy_headers_check(st, c, &h, v_r, reason_r);
	policy_headers_clear(&h);
	return r;
}
