/*
 * dkim: DKIM signatures (RFC 6376) for outbound messages: relaxed/relaxed
 * canonicalization, rsa-sha256 and ed25519-sha256 (RFC 8463), keys loaded
 * from bytes, TXT record values, key generation.  Pure: no I/O, no store.
 *
 * Contract: the message is the spool's CRLF-only bytes.  A bare LF or CR
 * is refused rather than guessed at: verifiers disagree on what it means,
 * so a signature over it would fail somewhere.  Memory is bounded by the
 * input: one small record per header field, the body is hashed as it is
 * canonicalized through a fixed chunk, never copied.
 *
 * Relaxed canonicalization makes folding invisible: a fold is CRLF before
 * a WSP, which unfolds and collapses to the one SP that was there.  So the
 * header is folded first and signed as it goes out, and the RFC 8463
 * appendix A signature is reproduced byte for byte (see test_dkim.c),
 * which pins the tag layout: v a c d [i] q s t [x] h bh b, h= names
 * lower-cased and joined with " : " as RFC 6376 and 8463 write them.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "message/message.h"

#define DKIM_RSA_BITS_MIN 2048
#define DKIM_RSA_BITS_MAX 8192
#define DKIM_RSA_BITS_GEN 2048
#define DKIM_SIG_MAX (DKIM_RSA_BITS_MAX / 8)
#define DKIM_ED25519_LEN 32
#define DKIM_SHA256_LEN 32
#define DKIM_PEM_MAX 65536   /* an 8192-bit PKCS#8 PEM is ~6.5 KB */
#define DKIM_SINK_CHUNK 4096 /* bytes staged before a digest update */
#define DKIM_LABEL_MAX 63

struct dkim_key {
	EVP_PKEY *pkey;
	enum dkim_alg alg;
};

/* The RFC 6376 5.4.1 recommended fields.  Its "all Resent-*" and List-*
 * are spelled out (RFC 5322 3.6.6, RFC 2369, 2919, 8058) so h= only ever
 * holds names from this table or the caller; Resent-Bcc is left out, as a
 * Bcc is not meant to survive transmission. */
static const char *const dkim_default_headers[] = {
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Message-ID",
    "Sender",
};

/* Listed once more than present: adding one later breaks the signature. */
static const char *const dkim_oversign_headers[] = {"From", "To", "Subject", "Date"};

static int dkim_fail(const char **why_r, const char *why)
{
	/* Leave no OpenSSL errors behind for this thread's TLS code to find. */
	ERR_clear_error();
	if (why_r != NULL)
		*why_r = why;
	return -1;
}

static int dkim_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static char dkim_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Append base64 of in (no line breaks). */
static int dkim_append_base64(struct buf *out, const unsigned char *in, size_t n)
{
	size_t enc = 4 * ((n + 2) / 3);
	int r;

	if (n > INT_MAX / 2 || buf_reserve(out, enc) < 0)
		return -1;
	r = EVP_EncodeBlock((unsigned char *)out->data + out->len, in, (int)n);
	if (r < 0 || (size_t)r != enc)
		return -1;
	out->len += enc;
	out->data[out->len] = '\0';
	return 0;
}

/* ---- keys ---------------------------------------------------------------- */

/* An encrypted PEM must fail, not prompt on a terminal. */
static int dkim_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static int dkim_key_adopt(EVP_PKEY *pkey, struct dkim_key **key_r, const char **why_r)
{
	struct dkim_key *key;
	enum dkim_alg alg;

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < DKIM_RSA_BITS_MIN ||
		    EVP_PKEY_get_bits(pkey) > DKIM_RSA_BITS_MAX) {
			EVP_PKEY_free(pkey);
			return dkim_fail(why_r, "RSA key size outside 2048..8192 bits");
		}
		alg = DKIM_ALG_RSA_SHA256;
		break;
	case EVP_PKEY_ED25519:
		alg = DKIM_ALG_ED25519_SHA256;
		break;
	default:
		EVP_PKEY_free(pkey);
		return dkim_fail(why_r, "key is neither RSA nor Ed25519");
	}
	key = calloc(1, sizeof *key);
	if (key == NULL) {
		EVP_PKEY_free(pkey);
		return dkim_fail(why_r, "out of memory");
	}
	key->pkey = pkey;
	key->alg = alg;
	*key_r = key;
	return 0;
}

int dkim_key_from_pem(const char *pem, size_t len, struct dkim_key **key_r, const char **why_r)
{
	EVP_PKEY *pkey;
	BIO *bio;

	if (len == 0 || len > DKIM_PEM_MAX)
		return dkim_fail(why_r, "PEM key empty or too large");
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio == NULL)
		return dkim_fail(why_r, "out of memory");
	pkey = PEM_read_bio_PrivateKey(bio, NULL, dkim_no_passphrase, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return dkim_fail(why_r, "no unencrypted private key in PEM");
	return dkim_key_adopt(pkey, key_r, why_r);
}

int dkim_key_from_ed25519_seed(const unsigned char seed[32], struct dkim_key **key_r,
                               const char **why_r)
{
	EVP_PKEY *pkey =
	    EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, DKIM_ED25519_LEN);

	if (pkey == NULL)
		return dkim_fail(why_r, "bad Ed25519 seed");
	return dkim_key_adopt(pkey, key_r, why_r);
}

void dkim_key_free(struct dkim_key **key)
{
	if (*key == NULL)
		return;
	EVP_PKEY_free((*key)->pkey);
	free(*key);
	*key = NULL;
}

enum dkim_alg dkim_key_alg(const struct dkim_key *key)
{
	return key->alg;
}

int dkim_key_dns_record(const struct dkim_key *key, struct buf *out)
{
	size_t orig = out->len;
	unsigned char raw[DKIM_ED25519_LEN], *der = NULL;
	size_t rawlen = sizeof raw;
	int rc = 0, n;

	if (key->alg == DKIM_ALG_ED25519_SHA256) {
		/* RFC 8463 4.2: the bare 32-byte key, not an SPKI. */
		if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rawlen) != 1 ||
		    rawlen != sizeof raw)
			return dkim_fail(NULL, NULL);
		rc |= buf_append_str(out, "v=DKIM1; k=ed25519; p=");
		rc |= dkim_append_base64(out, raw, rawlen);
	} else {
		n = i2d_PUBKEY(key->pkey, &der);
		if (n <= 0)
			return dkim_fail(NULL, NULL);
		rc |= buf_append_str(out, "v=DKIM1; k=rsa; p=");
		rc |= dkim_append_base64(out, der, (size_t)n);
		OPENSSL_free(der);
	}
	if (rc != 0) {
		out->len = orig;
		if (out->data != NULL)
			out->data[orig] = '\0';
		return -1;
	}
	return 0;
}

int dkim_key_generate(enum dkim_alg alg, struct buf *pem_out, const char **why_r)
{
	EVP_PKEY *pkey;
	BIO *bio;
	char *p = NULL;
	long n;
	int rc;

	if (alg == DKIM_ALG_RSA_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS_GEN);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL)
		return dkim_fail(why_r, "key generation failed");
	/* secmem: the BIO clears its storage when freed. */
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(bio);
		EVP_PKEY_free(pkey);
		return dkim_fail(why_r, "cannot write PEM");
	}
	EVP_PKEY_free(pkey);
	n = BIO_get_mem_data(bio, &p);
	rc = n > 0 ? buf_append(pem_out, p, (size_t)n) : -1;
	BIO_free(bio);
	return rc == 0 ? 0 : dkim_fail(why_r, "out of memory");
}

/* ---- canonicalization ----------------------------------------------------- */

/* Where canonical bytes go: a digest, or a buf (tests), through a chunk
 * so a body of single-byte words does not cost a digest call per byte. */
struct dkim_sink {
	EVP_MD_CTX *md;  /* or NULL: */
	struct buf *out; /* append here */
	size_t n;
	int failed;
	char chunk[DKIM_SINK_CHUNK];
};

static void dkim_sink_flush(struct dkim_sink *s)
{
	if (s->n == 0)
		return;
	if (s->md != NULL) {
		if (EVP_DigestUpdate(s->md, s->chunk, s->n) != 1)
			s->failed = 1;
	} else if (buf_append(s->out, s->chunk, s->n) < 0) {
		s->failed = 1;
	}
	s->n = 0;
}

static void dkim_sink_put(struct dkim_sink *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = sizeof s->chunk - s->n;

		if (k > n)
			k = n;
		memcpy(s->chunk + s->n, p, k);
		s->n += k;
		p += k;
		n -= k;
		if (s->n == sizeof s->chunk)
			dkim_sink_flush(s);
	}
}

static void dkim_sink_byte(struct dkim_sink *s, char c)
{
	dkim_sink_put(s, &c, 1);
}

/* RFC 6376 3.4.2 on one field (no final CRLF): name lower-cased, WSP
 * before and after the colon dropped, CRLFs of folds deleted, WSP runs to
 * one SP, trailing WSP dropped.  crlf: end with CRLF (every signed field
 * does; the DKIM-Signature being made does not, 3.7). */
static void dkim_canon_field(const char *f, size_t len, int crlf, struct dkim_sink *s)
{
	const char *colon = memchr(f, ':', len);
	size_t namelen = colon != NULL ? (size_t)(colon - f) : len;
	size_t i;
	int started = 0, space = 0;

	while (namelen > 0 && dkim_is_wsp((unsigned char)f[namelen - 1]))
		namelen--;
	for (i = 0; i < namelen; i++)
		dkim_sink_byte(s, dkim_lower(f[i]));
	dkim_sink_byte(s, ':');
	for (i = colon != NULL ? (size_t)(colon - f) + 1 : len; i < len; i++) {
		if (f[i] == '\r' && i + 1 < len && f[i + 1] == '\n') {
			i++; /* unfold */
		} else if (dkim_is_wsp((unsigned char)f[i])) {
			space = started;
		} else {
			if (space)
				dkim_sink_byte(s, ' ');
			space = 0;
			started = 1;
			dkim_sink_byte(s, f[i]);
		}
	}
	if (crlf)
		dkim_sink_put(s, "\r\n", 2);
}

/* The next line of b from pos: its content length without CRLF, and where
 * the following line starts.  Only CRLF ends a line. */
static size_t dkim_next_line(const char *b, size_t len, size_t pos, size_t *next_r)
{
	const char *p = b + pos, *q = p, *end = b + len, *nl;

	while ((nl = memchr(q, '\n', (size_t)(end - q))) != NULL) {
		if (nl > p && nl[-1] == '\r') {
			*next_r = (size_t)(nl - b) + 1;
			return (size_t)(nl - 1 - p);
		}
		q = nl + 1;
	}
	*next_r = len;
	return len - pos;
}

/* RFC 6376 3.4.4: trailing WSP of each line dropped, WSP runs to one SP,
 * empty lines at the end dropped, CRLF added to a last line without one;
 * an empty body stays empty.  Empty lines are counted, not stored, until
 * a non-empty line shows they were not at the end. */
static void dkim_canon_body_run(const char *b, size_t len, struct dkim_sink *s)
{
	size_t pos = 0, blank = 0;

	while (pos < len) {
		size_t next, n = dkim_next_line(b, len, pos, &next), i;
		const char *line = b + pos;
		int space = 0;

		while (n > 0 && dkim_is_wsp((unsigned char)line[n - 1]))
			n--;
		pos = next;
		if (n == 0) {
			blank++;
			continue;
		}
		for (; blank > 0; blank--)
			dkim_sink_put(s, "\r\n", 2);
		for (i = 0; i < n; i++) {
			if (dkim_is_wsp((unsigned char)line[i])) {
				space = 1;
				continue;
			}
			if (space)
				dkim_sink_byte(s, ' ');
			space = 0;
			dkim_sink_byte(s, line[i]);
		}
		dkim_sink_put(s, "\r\n", 2);
	}
}

int dkim_canon_header(const char *field, size_t len, struct buf *out)
{
	struct dkim_sink *s = calloc(1, sizeof *s);
	size_t orig = out->len;
	int failed;

	if (s == NULL)
		return -1;
	s->out = out;
	dkim_canon_field(field, len, 1, s);
	dkim_sink_flush(s);
	failed = s->failed;
	free(s);
	if (failed) {
		out->len = orig;
		if (out->data != NULL)
			out->data[orig] = '\0';
		return -1;
	}
	return 0;
}

int dkim_canon_body(const char *body, size_t len, struct buf *out)
{
	struct dkim_sink *s = calloc(1, sizeof *s);
	size_t orig = out->len;
	int failed;

	if (s == NULL)
		return -1;
	s->out = out;
	dkim_canon_body_run(body, len, s);
	dkim_sink_flush(s);
	failed = s->failed;
	free(s);
	if (failed) {
		out->len = orig;
		if (out->data != NULL)
			out->data[orig] = '\0';
		return -1;
	}
	return 0;
}

/* ---- the message ----------------------------------------------------------- */

struct dkim_field {
	size_t off, len; /* the field without its final CRLF */
	size_t namelen;  /* 0: no colon, not a field; never selected */
	int used;        /* already taken by an earlier h= entry */
};

struct dkim_msg {
	const char *data;
	struct dkim_field *fields;
	size_t nfields, cap;
	size_t body_off;
};

static int dkim_check_line_ends(const char *msg, size_t len, const char **why_r)
{
	const char *p = msg, *end = msg + len;

	/* Every CR is followed by LF and every LF preceded by CR. */
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		const char *lf = memchr(p, '\n', (size_t)((cr != NULL ? cr : end) - p));

		if (lf != NULL)
			return dkim_fail(why_r, "bare LF in message");
		if (cr == NULL)
			break;
		if (cr + 1 == end || cr[1] != '\n')
			return dkim_fail(why_r, "bare CR in message");
		p = cr + 2;
	}
	return 0;
}

static int dkim_add_field(struct dkim_msg *m, size_t off, size_t len, size_t namelen)
{
	if (m->nfields == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 32;
		struct dkim_field *f;

		if (cap > SIZE_MAX / sizeof *f)
			return -1;
		f = realloc(m->fields, cap * sizeof *f);
		if (f == NULL)
			return -1;
		m->fields = f;
		m->cap = cap;
	}
	m->fields[m->nfields++] = (struct dkim_field){.off = off, .len = len, .namelen = namelen};
	return 0;
}

/* Index the header section: it ends at the first empty line, or at the end
 * of the message (then the body is empty).  A line starting with WSP
 * continues the field before it (one before any field is ignored). */
static int dkim_parse(const char *msg, size_t len, struct dkim_msg *m, const char **why_r)
{
	size_t pos = 0;

	if (dkim_check_line_ends(msg, len, why_r) < 0)
		return -1;
	m->data = msg;
	m->body_off = len;
	while (pos < len) {
		size_t next, n = dkim_next_line(msg, len, pos, &next);

		if (n == 0 && next > pos) {
			m->body_off = next;
			break;
		}
		if (dkim_is_wsp((unsigned char)msg[pos])) {
			if (m->nfields > 0) {
				struct dkim_field *f = &m->fields[m->nfields - 1];

				f->len = pos + n - f->off;
			}
		} else {
			const char *colon = memchr(msg + pos, ':', n);
			size_t namelen = colon != NULL ? (size_t)(colon - (msg + pos)) : 0;

			while (namelen > 0 && dkim_is_wsp((unsigned char)msg[pos + namelen - 1]))
				namelen--;
			if (dkim_add_field(m, pos, n, namelen) < 0)
				return dkim_fail(why_r, "out of memory");
		}
		pos = next;
	}
	return 0;
}

static size_t dkim_count_fields(const struct dkim_msg *m, const char *name, size_t nlen)
{
	size_t i, count = 0;

	for (i = 0; i < m->nfields; i++)
		if (m->fields[i].namelen == nlen &&
		    util_strncasecmp(m->data + m->fields[i].off, name, nlen) == 0)
			count++;
	return count;
}

/* RFC 6376 5.4.2: the bottom-most instance not yet taken, or NULL (a name
 * listed more often than present signs the absence). */
static struct dkim_field *dkim_select(struct dkim_msg *m, const char *name, size_t nlen)
{
	size_t i = m->nfields;

	while (i-- > 0) {
		struct dkim_field *f = &m->fields[i];

		if (!f->used && f->namelen == nlen &&
		    util_strncasecmp(m->data + f->off, name, nlen) == 0) {
			f->used = 1;
			return f;
		}
	}
	return NULL;
}

/* ---- parameters ------------------------------------------------------------ */

/* LDH labels, dot-separated, each 1..63: d=, s= and the i= domain. */
static int dkim_valid_domain(const char *d, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > DKIM_DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)d[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-') {
			if (++label > DKIM_LABEL_MAX)
				return 0;
		} else {
			return 0;
		}
	}
	return label > 0;
}

/* i=: a local part of atext and dots (no dkim-quoted-printable needed),
 * "@", and d= or a subdomain of it (RFC 6376 3.5). */
static int dkim_valid_identity(const char *id, const char *domain)
{
	const char *at = strrchr(id, '@'), *p, *dom;
	size_t dlen = strlen(domain), ilen;

	if (at == NULL)
		return 0;
	for (p = id; p < at; p++)
		if (*p <= ' ' || *p >= 0x7f || strchr("()<>[]:;@\\,\"", *p) != NULL)
			return 0;
	dom = at + 1;
	ilen = strlen(dom);
	if (!dkim_valid_domain(dom, ilen) || ilen < dlen)
		return 0;
	if (util_strncasecmp(dom + ilen - dlen, domain, dlen) != 0)
		return 0;
	return ilen == dlen || dom[ilen - dlen - 1] == '.';
}

/* A caller's h= name: ftext (RFC 5322 printable but ':') without ';',
 * which would end the tag. */
static int dkim_valid_name(const char *name)
{
	size_t i, n = strnlen(name, DKIM_FIELD_NAME_MAX + 1);

	if (n == 0 || n > DKIM_FIELD_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (name[i] < 33 || name[i] > 126 || name[i] == ':' || name[i] == ';')
			return 0;
	return 1;
}

/* Fill names[] with the h= list: the caller's, checked, or the default
 * set for this message with over-signing. */
static int dkim_header_list(const struct dkim_sign_params *p, const struct dkim_msg *m,
                            const char **names, size_t *n_r, const char **why_r)
{
	size_t n = 0, i, k, count;
	int from = 0;

	if (p->headers != NULL) {
		for (i = 0; p->headers[i] != NULL; i++) {
			if (n == DKIM_SIGN_HEADERS_MAX)
				return dkim_fail(why_r, "too many header fields to sign");
			if (!dkim_valid_name(p->headers[i]))
				return dkim_fail(why_r, "bad header field name to sign");
			if (strlen(p->headers[i]) == 4 &&
			    util_strncasecmp(p->headers[i], "From", 4) == 0)
				from = 1;
			names[n++] = p->headers[i];
		}
		if (!from)
			return dkim_fail(why_r, "From must be signed");
		*n_r = n;
		return 0;
	}
	for (i = 0; i < sizeof dkim_default_headers / sizeof dkim_default_headers[0]; i++) {
		const char *name = dkim_default_headers[i];

		count = dkim_count_fields(m, name, strlen(name));
		for (k = 0; k < count; k++) {
			if (n == DKIM_SIGN_HEADERS_MAX)
				return dkim_fail(why_r, "too many header fields to sign");
			names[n++] = name;
		}
	}
	for (i = 0; i < sizeof dkim_oversign_headers / sizeof dkim_oversign_headers[0]; i++) {
		if (n == DKIM_SIGN_HEADERS_MAX)
			return dkim_fail(why_r, "too many header fields to sign");
		names[n++] = dkim_oversign_headers[i];
	}
	*n_r = n;
	return 0;
}

/* ---- the DKIM-Signature field ------------------------------------------------ */

/* Folding writer: tokens joined by one SP, or by CRLF TAB when the token
 * would pass DKIM_LINE_MAX.  Under relaxed canonicalization both read as
 * one SP, so where the folds fall never changes the signature. */
struct dkim_fold {
	struct buf *b;
	size_t col;
	int rc;
};

static void dkim_fold_token(struct dkim_fold *f, const char *tok, size_t n)
{
	if (f->col > 0) {
		if (f->col + 1 + n > DKIM_LINE_MAX) {
			f->rc |= buf_append(f->b, "\r\n\t", 3);
			f->col = 1;
		} else {
			f->rc |= buf_append(f->b, " ", 1);
			f->col++;
		}
	}
	f->rc |= buf_append(f->b, tok, n);
	f->col += n;
}

static void dkim_fold_tag(struct dkim_fold *f, const char *tag, const char *value)
{
	struct buf t = BUF_INIT;

	if (buf_printf(&t, "%s=%s;", tag, value) < 0) {
		f->rc = -1;
		return;
	}
	dkim_fold_token(f, t.data, t.len);
	buf_free(&t);
}

/* h=: "h=from : to : ... : date;", each name and colon a token. */
static void dkim_fold_names(struct dkim_fold *f, const char **names, size_t n)
{
	char tok[DKIM_FIELD_NAME_MAX + 4];
	size_t i, j, len, k;

	for (i = 0; i < n; i++) {
		len = strlen(names[i]);
		k = 0;
		if (i == 0) {
			tok[k++] = 'h';
			tok[k++] = '=';
		}
		for (j = 0; j < len; j++)
			tok[k++] = dkim_lower(names[i][j]);
		if (i + 1 == n)
			tok[k++] = ';';
		dkim_fold_token(f, tok, k);
		if (i + 1 < n)
			dkim_fold_token(f, ":", 1);
	}
}

/* b=: whitespace inside it is ignored (RFC 6376 3.5), so it fills each
 * line to the limit and carries on after CRLF TAB. */
static void dkim_fold_b64(struct dkim_fold *f, const char *v, size_t n)
{
	while (n > 0) {
		size_t room = f->col < DKIM_LINE_MAX ? DKIM_LINE_MAX - f->col : 0, k;

		if (room == 0) {
			f->rc |= buf_append(f->b, "\r\n\t", 3);
			f->col = 1;
			continue;
		}
		k = room < n ? room : n;
		f->rc |= buf_append(f->b, v, k);
		f->col += k;
		v += k;
		n -= k;
	}
}

static int dkim_hash_body(const struct dkim_msg *m, size_t len, unsigned char bh[DKIM_SHA256_LEN])
{
	struct dkim_sink *s = calloc(1, sizeof *s);
	unsigned int n = 0;
	int ok;

	if (s == NULL)
		return -1;
	s->md = EVP_MD_CTX_new();
	ok = s->md != NULL && EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1;
	if (ok) {
		dkim_canon_body_run(m->data + m->body_off, len - m->body_off, s);
		dkim_sink_flush(s);
		ok = !s->failed && EVP_DigestFinal_ex(s->md, bh, &n) == 1 && n == DKIM_SHA256_LEN;
	}
	EVP_MD_CTX_free(s->md);
	free(s);
	return ok ? 0 : -1;
}

/* SHA-256 of the selected fields in h= order, then of the signature field
 * itself (b= empty, no final CRLF). */
static int dkim_hash_headers(struct dkim_msg *m, const char **names, size_t n,
                             const struct buf *sig, unsigned char hh[DKIM_SHA256_LEN])
{
	struct dkim_sink *s = calloc(1, sizeof *s);
	unsigned int len = 0;
	size_t i;
	int ok;

	if (s == NULL)
		return -1;
	s->md = EVP_MD_CTX_new();
	ok = s->md != NULL && EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1;
	for (i = 0; ok && i < n; i++) {
		struct dkim_field *f = dkim_select(m, names[i], strlen(names[i]));

		if (f != NULL)
			dkim_canon_field(m->data + f->off, f->len, 1, s);
	}
	if (ok) {
		dkim_canon_field(sig->data, sig->len, 0, s);
		dkim_sink_flush(s);
		ok = !s->failed && EVP_DigestFinal_ex(s->md, hh, &len) == 1 &&
		     len == DKIM_SHA256_LEN;
	}
	EVP_MD_CTX_free(s->md);
	free(s);
	return ok ? 0 : -1;
}

/* rsa-sha256: PKCS#1 v1.5 over the hash.  ed25519-sha256 (RFC 8463 3):
 * PureEdDSA over the 32-byte hash, not over the data. */
static int dkim_sign_hash(const struct dkim_key *key, const unsigned char hh[DKIM_SHA256_LEN],
                          unsigned char *sig, size_t *siglen)
{
	int ok = 0;

	if (key->alg == DKIM_ALG_RSA_SHA256) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);

		ok = c != NULL && EVP_PKEY_get_size(key->pkey) <= (int)*siglen &&
		     EVP_PKEY_sign_init(c) == 1 &&
		     EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
		     EVP_PKEY_sign(c, sig, siglen, hh, DKIM_SHA256_LEN) == 1;
		EVP_PKEY_CTX_free(c);
	} else {
		EVP_MD_CTX *c = EVP_MD_CTX_new();

		ok = c != NULL &&
		     EVP_DigestSignInit_ex(c, NULL, NULL, NULL, NULL, key->pkey, NULL) == 1 &&
		     EVP_DigestSign(c, sig, siglen, hh, DKIM_SHA256_LEN) == 1;
		EVP_MD_CTX_free(c);
	}
	return ok ? 0 : -1;
}

int dkim_sign(const struct dkim_key *key, const struct dkim_sign_params *p, const char *msg,
              size_t len, struct buf *out, const char **why_r)
{
	struct dkim_msg m = {0};
	struct buf hdr = BUF_INIT, b64 = BUF_INIT;
	struct dkim_fold f = {.b = &hdr};
	const char *names[DKIM_SIGN_HEADERS_MAX];
	unsigned char bh[DKIM_SHA256_LEN], hh[DKIM_SHA256_LEN], sig[DKIM_SIG_MAX];
	size_t nnames = 0, siglen = sizeof sig;
	char num[32];
	int rc = -1;

	if (key == NULL || p == NULL || p->domain == NULL || p->selector == NULL)
		return dkim_fail(why_r, "missing key, domain or selector");
	if (!dkim_valid_domain(p->domain, strlen(p->domain)))
		return dkim_fail(why_r, "bad signing domain");
	if (!dkim_valid_domain(p->selector, strlen(p->selector)))
		return dkim_fail(why_r, "bad selector");
	if (p->identity != NULL && !dkim_valid_identity(p->identity, p->domain))
		return dkim_fail(why_r, "bad identity (i=)");
	if (p->timestamp < 0 || (p->expire != 0 && p->expire <= p->timestamp))
		return dkim_fail(why_r, "bad timestamp or expiry");
	if (dkim_parse(msg, len, &m, why_r) < 0)
		goto fail;
	if (dkim_header_list(p, &m, names, &nnames, why_r) < 0)
		goto fail;
	if (dkim_hash_body(&m, len, bh) < 0) {
		dkim_fail(why_r, "body hash failed");
		goto fail;
	}
	if (dkim_append_base64(&b64, bh, sizeof bh) < 0) {
		dkim_fail(why_r, "out of memory");
		goto fail;
	}

	dkim_fold_token(&f, "DKIM-Signature:", strlen("DKIM-Signature:"));
	dkim_fold_tag(&f, "v", "1");
	dkim_fold_tag(&f, "a", key->alg == DKIM_ALG_RSA_SHA256 ? "rsa-sha256" : "ed25519-sha256");
	dkim_fold_tag(&f, "c", "relaxed/relaxed");
	dkim_fold_tag(&f, "d", p->domain);
	if (p->identity != NULL)
		dkim_fold_tag(&f, "i", p->identity);
	dkim_fold_tag(&f, "q", "dns/txt");
	dkim_fold_tag(&f, "s", p->selector);
	snprintf(num, sizeof num, "%lld", (long long)p->timestamp);
	dkim_fold_tag(&f, "t", num);
	if (p->expire != 0) {
		snprintf(num, sizeof num, "%lld", (long long)p->expire);
		dkim_fold_tag(&f, "x", num);
	}
	dkim_fold_names(&f, names, nnames);
	dkim_fold_tag(&f, "bh", b64.data);
	dkim_fold_token(&f, "b=", 2);
	if (f.rc != 0) {
		dkim_fail(why_r, "out of memory");
		goto fail;
	}

	if (dkim_hash_headers(&m, names, nnames, &hdr, hh) < 0 ||
	    dkim_sign_hash(key, hh, sig, &siglen) < 0) {
		dkim_fail(why_r, "signing failed");
		goto fail;
	}
	buf_reset(&b64);
	if (dkim_append_base64(&b64, sig, siglen) < 0) {
		dkim_fail(why_r, "out of memory");
		goto fail;
	}
	dkim_fold_b64(&f, b64.data, b64.len);
	f.rc |= buf_append(&hdr, "\r\n", 2);
	if (f.rc != 0 || buf_append(out, hdr.data, hdr.len) < 0) {
		dkim_fail(why_r, "out of memory");
		goto fail;
	}
	rc = 0;
fail:
	free(m.fields);
	buf_free(&hdr);
	buf_free(&b64);
	return rc;
}

/* ---- tag lists ---------------------------------------------------------------- */

int dkim_tag_value(const char *rec, const char *tag, char *out, size_t size)
{
	size_t tlen = strlen(tag);
	const char *p = rec;

	if (size == 0)
		return 0;
	out[0] = '\0';
	while (*p != '\0') {
		const char *start, *semi, *name_end;

		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ';')
			p++;
		start = p;
		semi = strchr(p, ';');
		if (semi == NULL)
			semi = p + strlen(p);
		name_end = start;
		while (name_end < semi && *name_end != '=' && !dkim_is_wsp((unsigned char)*name_end))
			name_end++;
		if ((size_t)(name_end - start) == tlen && strncmp(start, tag, tlen) == 0) {
			const char *v = name_end;
			size_t k = 0;

			while (v < semi && dkim_is_wsp((unsigned char)*v))
				v++;
			if (v < semi && *v == '=') {
				for (v++; v < semi && k + 1 < size; v++)
					if (!dkim_is_wsp((unsigned char)*v) && *v != '\r' && *v != '\n')
						out[k++] = *v;
				out[k] = '\0';
				return 1;
			}
		}
		p = semi;
	}
	return 0;
}
