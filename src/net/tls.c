/*
 * tls: the server TLS context, and a self-signed certificate for first
 * start so that STARTTLS and port 465 work before the operator installs a
 * real one; the client context and per-connection peer verification for
 * delivery (opportunistic, PKIX, DANE per RFC 7672), see net.h.
 *
 * Files are written the durable way (temporary file, fsync, rename, fsync
 * the directory), the key created 0600 from the first byte: it is never
 * readable by others, not even for a moment, and a crash leaves either the
 * old file or the new one, never half a key.  Known limit: two processes
 * generating at once can each win one of the two renames, leaving a key
 * and a certificate that do not match; net_tls_server_ctx() then refuses
 * them with a clear error, and a restart of one process fixes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net/net.h"
#include "util/util.h"

#define NET_TLS_CERT_DAYS 3652  /* 10 years, leap days included */
#define NET_TLS_SERIAL_BITS 159 /* RFC 5280 4.1.2.2: positive, at most 20 octets */
#define NET_TLS_CN_MAX 64       /* RFC 5280 ub-common-name */
#define NET_TLS_HOSTNAME_MAX 253

static void net_tls_fail(char **err_r, const char *fmt, ...) UTIL_PRINTF(2, 3);

/* *err_r = malloc'd message; the text of the oldest OpenSSL error, if any,
 * is appended, and the error queue is cleared. */
static void net_tls_fail(char **err_r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	unsigned long e = ERR_get_error();
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc == 0 && e != 0) {
		char text[256];

		ERR_error_string_n(e, text, sizeof text);
		rc = buf_printf(&b, ": %s", text);
	}
	if (rc < 0)
		buf_free(&b);
	ERR_clear_error();
	*err_r = buf_export(&b, NULL);
}

/* ---- files -------------------------------------------------------------- */

/* 1 if path exists, 0 if not, -1 (errno set) when it cannot be told. */
static int net_file_exists(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

/* mkdir -p of the directory holding path; new directories are 0700. */
static int net_mkdir_parents(const char *path, char **err_r)
{
	char *dir = util_strdup(path);
	char *p;

	if (dir == NULL) {
		net_tls_fail(err_r, "out of memory");
		return -1;
	}
	p = strrchr(dir, '/');
	if (p == NULL || p == dir) {
		free(dir);
		return 0;
	}
	*p = '\0';
	for (p = dir + 1;; p++) {
		char saved = *p;

		if (saved != '/' && saved != '\0')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			net_tls_fail(err_r, "mkdir %s: %s", dir, strerror(errno));
			free(dir);
			return -1;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	free(dir);
	return 0;
}

static void net_fsync_parent(const char *path)
{
	char *dir = util_strdup(path);
	char *slash;
	int fd;

	if (dir == NULL)
		return;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		util_strlcpy(dir, ".", strlen(dir) + 1);
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(*dir != '\0' ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(dir);
}

/* Replace path with data: a fresh temporary (O_CREAT|O_EXCL, 0600 at
 * creation), fsync, chmod to mode, rename over path, fsync the directory. */
static int net_write_file(const char *path, const char *data, size_t len, mode_t mode, char **err_r)
{
	struct buf tmp = BUF_INIT;
	size_t off = 0;
	int fd = -1;

	if (buf_printf(&tmp, "%s.XXXXXX", path) < 0) {
		net_tls_fail(err_r, "out of memory");
		return -1;
	}
	fd = mkostemp(tmp.data, O_CLOEXEC);
	if (fd < 0) {
		net_tls_fail(err_r, "create %s: %s", tmp.data, strerror(errno));
		buf_free(&tmp);
		return -1;
	}
	if (mode != 0600 && fchmod(fd, mode) < 0) {
		net_tls_fail(err_r, "chmod %s: %s", tmp.data, strerror(errno));
		goto fail;
	}
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			net_tls_fail(err_r, "write %s: %s", tmp.data, strerror(errno));
			goto fail;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0) {
		net_tls_fail(err_r, "fsync %s: %s", tmp.data, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		net_tls_fail(err_r, "close %s: %s", tmp.data, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp.data, path) < 0) {
		net_tls_fail(err_r, "rename %s to %s: %s", tmp.data, path, strerror(errno));
		goto fail;
	}
	net_fsync_parent(path);
	buf_free(&tmp);
	return 0;

fail:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp.data);
	buf_free(&tmp);
	return -1;
}

/* ---- the certificate ---------------------------------------------------- */

/* A DNS name we put in a certificate: letters, digits, '-' and '.'. */
static int net_hostname_ok(const char *h)
{
	size_t i, n;

	if (h == NULL)
		return 0;
	n = strlen(h);
	if (n == 0 || n > NET_TLS_HOSTNAME_MAX || h[0] == '.' || h[0] == '-')
		return 0;
	for (i = 0; i < n; i++) {
		char ch = h[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

static int net_cert_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* subjectAltName DNS:hostname, built directly rather than through the
 * config-string parser, so the name is never interpreted. */
static int net_cert_add_san(X509 *x, const char *hostname)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int rc = -1;

	if (gens == NULL || gn == NULL || ia5 == NULL)
		goto done;
	if (!ASN1_STRING_set(ia5, hostname, -1))
		goto done;
	GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto done;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) == 1)
		rc = 0;
done:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return rc;
}

static X509 *net_cert_make(EVP_PKEY *pkey, const char *hostname)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	X509_NAME *name;

	if (x == NULL || serial == NULL)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3))
		goto fail;
	if (!BN_rand(serial, NET_TLS_SERIAL_BITS, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL)
		goto fail;
	if (X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), NET_TLS_CERT_DAYS, 0, NULL) == NULL)
		goto fail;
	if (!X509_set_pubkey(x, pkey))
		goto fail;
	/* CN is optional when the SAN carries the name, and is capped at 64. */
	name = X509_get_subject_name(x);
	if (strlen(hostname) <= NET_TLS_CN_MAX &&
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
	                                -1, -1, 0))
		goto fail;
	if (!X509_set_issuer_name(x, name))
		goto fail;
	if (net_cert_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    net_cert_add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    net_cert_add_ext(x, NID_ext_key_usage, "serverAuth") < 0 ||
	    net_cert_add_ext(x, NID_subject_key_identifier, "hash") < 0 ||
	    net_cert_add_san(x, hostname) < 0)
		goto fail;
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto fail;
	BN_free(serial);
	return x;

fail:
	BN_free(serial);
	X509_free(x);
	return NULL;
}

/* PEM of the key in secure memory, PEM of the certificate, both written. */
static int net_cert_write(EVP_PKEY *pkey, X509 *x, const char *cert_path, const char *key_path,
                          char **err_r)
{
	BIO *kbio = BIO_new(BIO_s_secmem());
	BIO *cbio = BIO_new(BIO_s_mem());
	char *data;
	long len;
	int rc = -1;

	if (kbio == NULL || cbio == NULL ||
	    !PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cbio, x)) {
		net_tls_fail(err_r, "encode certificate and key");
		goto done;
	}
	/* Key first: a certificate never points at a key that is not there. */
	len = BIO_get_mem_data(kbio, &data);
	if (net_write_file(key_path, data, (size_t)len, 0600, err_r) < 0)
		goto done;
	len = BIO_get_mem_data(cbio, &data);
	if (net_write_file(cert_path, data, (size_t)len, 0644, err_r) < 0)
		goto done;
	rc = 0;
done:
	BIO_free(kbio);
	BIO_free(cbio);
	return rc;
}

int net_tls_ensure_cert(const char *cert_path, const char *key_path, const char *hostname,
                        char **err_r)
{
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	int have_cert, have_key, rc = -1;

	have_cert = net_file_exists(cert_path);
	if (have_cert < 0) {
		net_tls_fail(err_r, "certificate %s: %s", cert_path, strerror(errno));
		return -1;
	}
	have_key = net_file_exists(key_path);
	if (have_key < 0) {
		net_tls_fail(err_r, "key %s: %s", key_path, strerror(errno));
		return -1;
	}
	if (have_cert && have_key)
		return 0;
	if (!net_hostname_ok(hostname)) {
		net_tls_fail(err_r,
		             "cannot make a certificate for hostname \"%s\": "
		             "not a DNS name",
		             hostname != NULL ? hostname : "(null)");
		return -1;
	}
	if (have_cert || have_key)
		log_warn("tls replacing=%s reason=\"%s is missing\" action=self-signed",
		         have_cert ? cert_path : key_path, have_cert ? key_path : cert_path);

	if (net_mkdir_parents(key_path, err_r) < 0 || net_mkdir_parents(cert_path, err_r) < 0)
		return -1;
	pkey = EVP_EC_gen("P-256");
	if (pkey == NULL) {
		net_tls_fail(err_r, "generate P-256 key");
		goto done;
	}
	x = net_cert_make(pkey, hostname);
	if (x == NULL) {
		net_tls_fail(err_r, "make self-signed certificate for %s", hostname);
		goto done;
	}
	if (net_cert_write(pkey, x, cert_path, key_path, err_r) < 0)
		goto done;
	log_info("tls self-signed cert=%s key=%s cn=%s days=%d", cert_path, key_path, hostname,
	         NET_TLS_CERT_DAYS);
	rc = 1;
done:
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

/* ---- the server context ------------------------------------------------- */

SSL_CTX *net_tls_server_ctx(const char *cert_path, const char *key_path, char **err_r)
{
	static const unsigned char sid_ctx[] = "sluice";
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		net_tls_fail(err_r, "tls context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		net_tls_fail(err_r, "tls minimum version");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Idle sessions (a client between commands) keep no 34 KB of read and
	 * write buffers: with thousands of connections it adds up. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1)) {
		net_tls_fail(err_r, "tls session id context");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		net_tls_fail(err_r, "load certificate %s", cert_path);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		/* OpenSSL compares the key with the certificate right here. */
		if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH)
			net_tls_fail(err_r, "key %s does not match certificate %s", key_path,
			             cert_path);
		else
			net_tls_fail(err_r, "load key %s", key_path);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		net_tls_fail(err_r, "key %s does not match certificate %s", key_path, cert_path);
		goto fail;
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* ---- the client side: delivery ------------------------------------------ */

SSL_CTX *net_tls_client_ctx_new(const struct net_tls_client_config *cfg, char **err_r)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		net_tls_fail(err_r, "tls client context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		net_tls_fail(err_r, "tls minimum version");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	/* Once per context, so that any connection may turn DANE on. */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		net_tls_fail(err_r, "tls dane");
		goto fail;
	}
	if (cfg != NULL && (cfg->ca_file != NULL || cfg->ca_path != NULL) &&
	    SSL_CTX_load_verify_locations(ctx, cfg->ca_file, cfg->ca_path) != 1) {
		net_tls_fail(err_r, "load trust anchors %s%s%s",
		             cfg->ca_file != NULL ? cfg->ca_file : "",
		             cfg->ca_file != NULL && cfg->ca_path != NULL ? " " : "",
		             cfg->ca_path != NULL ? cfg->ca_path : "");
		goto fail;
	}
	if (cfg != NULL && cfg->system_ca && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		net_tls_fail(err_r, "load the system trust store");
		goto fail;
	}
	return ctx;

fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (no CA
 * list to agree on); OpenSSL would accept them, so they are left out here.
 * Returns the number of usable records added, -1 on an internal error. */
static int net_tls_add_tlsa(SSL *ssl, const struct net_tls_client_params *p)
{
	int usable = 0;
	size_t i;

	for (i = 0; i < p->ntlsa; i++) {
		const struct net_tls_tlsa *t = &p->tlsa[i];
		int rc;

		if (t->usage != NET_TLSA_DANE_TA && t->usage != NET_TLSA_DANE_EE)
			continue;
		rc = SSL_dane_tlsa_add(ssl, t->usage, t->selector, t->mtype, t->data, t->len);
		if (rc < 0)
			return -1;
		/* 0: unknown selector or matching type, wrong digest length,
		 * data that does not parse: unusable (RFC 7672 2.2), skip. */
		if (rc > 0)
			usable++;
	}
	ERR_clear_error(); /* the reasons of the unusable ones */
	return usable;
}

/* name without its root dot, if any, into out: DNS hands MX names out as
 * "mx.example.com.", but neither SNI (RFC 6066 3) nor OpenSSL's name
 * checks accept the dot.  -1 if it does not fit. */
static int net_tls_name(const char *name, char out[NET_TLS_HOSTNAME_MAX + 2])
{
	size_t n = util_strlcpy(out, name, NET_TLS_HOSTNAME_MAX + 2);

	if (n > NET_TLS_HOSTNAME_MAX + 1)
		return -1;
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	return 0;
}

/* The reference names: servername (unless SSL_dane_enable set it), then
 * p->names. */
static int net_tls_set_names(SSL *ssl, const char *servername,
                             const struct net_tls_client_params *p)
{
	char name[NET_TLS_HOSTNAME_MAX + 2];
	size_t i;

	if (servername != NULL && SSL_set1_host(ssl, servername) != 1)
		return -1;
	for (i = 0; i < p->nnames; i++) {
		if (p->names[i] == NULL)
			continue;
		if (net_tls_name(p->names[i], name) < 0 || SSL_add1_host(ssl, name) != 1)
			return -1;
	}
	/* "*.example.com" yes, "mx*.example.com" no (RFC 6125 6.4.3). */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return 0;
}

int net_conn_tls_start_client(struct net_conn *c, SSL_CTX *ctx,
                              const struct net_tls_client_params *p, const char **why_r)
{
	char name[NET_TLS_HOSTNAME_MAX + 2];
	const char *why = "out of memory";
	int verify = SSL_VERIFY_PEER;

	if (c->ssl != NULL || c->fd < 0) {
		*why_r = "connection not ready for TLS";
		return -1;
	}
	if (p->servername == NULL || *p->servername == '\0' || !net_hostname_ok(p->servername)) {
		*why_r = "servername is not a DNS name";
		return -1;
	}
	if (p->mode != NET_TLS_OPPORTUNISTIC && p->mode != NET_TLS_VERIFY &&
	    p->mode != NET_TLS_DANE) {
		*why_r = "unknown TLS mode";
		return -1;
	}
	ERR_clear_error();
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL)
		goto fail;
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_set_fd(c->ssl, c->fd) != 1)
		goto fail;
	if (net_tls_name(p->servername, name) < 0 || SSL_set_tlsext_host_name(c->ssl, name) != 1) {
		why = "cannot set SNI";
		goto fail;
	}
	switch (p->mode) {
	case NET_TLS_OPPORTUNISTIC:
		/* Names are set so that the verify result, which is only
		 * logged, also covers the name. */
		if (net_tls_set_names(c->ssl, name, p) < 0)
			goto fail;
		verify = SSL_VERIFY_NONE;
		break;
	case NET_TLS_VERIFY:
		if (net_tls_set_names(c->ssl, name, p) < 0)
			goto fail;
		break;
	case NET_TLS_DANE: {
		int usable;

		/* Sets servername as the first reference name, for DANE-TA. */
		if (SSL_dane_enable(c->ssl, name) <= 0) {
			why = "cannot enable DANE";
			goto fail;
		}
		/* RFC 7672 3.1.1: a DANE-EE certificate's names do not matter. */
		SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		if (net_tls_set_names(c->ssl, NULL, p) < 0)
			goto fail;
		usable = net_tls_add_tlsa(c->ssl, p);
		if (usable < 0) {
			why = "cannot add TLSA records";
			goto fail;
		}
		/* No usable record: unauthenticated TLS, still mandatory
		 * (RFC 7672 2.2); net_conn_tls_verified() says so. */
		if (usable == 0)
			verify = SSL_VERIFY_NONE;
		break;
	}
	}
	SSL_set_verify(c->ssl, verify, NULL);
	SSL_set_connect_state(c->ssl);
	c->handshaking = 1;
	c->tls_mode = (int)p->mode;
	return 0;

fail:
	log_debug("fd=%d tls client start failed servername=%s reason=\"%s\"", c->fd, p->servername,
	          why);
	ERR_clear_error();
	SSL_free(c->ssl);
	c->ssl = NULL;
	*why_r = why;
	return -1;
}

int net_conn_tls_verified(const struct net_conn *c, const char **why_r)
{
	const char *why;
	long result;
	int ok = 0;

	if (c->ssl == NULL) {
		why = "no TLS";
		goto done;
	}
	if (c->tls_mode == 0) {
		why = "not a client connection";
		goto done;
	}
	result = SSL_get_verify_result(c->ssl);
	if (!SSL_is_init_finished(c->ssl)) {
		/* A failed VERIFY or DANE handshake leaves its reason here. */
		why = result != X509_V_OK ? X509_verify_cert_error_string(result)
		                          : "handshake not finished";
		goto done;
	}
	if (SSL_get0_peer_certificate(c->ssl) == NULL) {
		why = "no peer certificate";
		goto done;
	}
	if (c->tls_mode == NET_TLS_DANE && SSL_get_verify_mode(c->ssl) == SSL_VERIFY_NONE) {
		why = "no usable TLSA records";
		goto done;
	}
	if (result != X509_V_OK) {
		why = X509_verify_cert_error_string(result);
		goto done;
	}
	if (c->tls_mode == NET_TLS_DANE) {
		int depth = SSL_get0_dane_authority(c->ssl, NULL, NULL);
		uint8_t usage = 0;

		if (depth < 0 || SSL_get0_dane_tlsa(c->ssl, &usage, NULL, NULL, NULL, NULL) < 0) {
			/* Cannot happen with only DANE-TA/EE records added:
			 * OpenSSL fails the chain without a match. */
			why = "no matching TLSA record";
			goto done;
		}
		why = usage == NET_TLSA_DANE_EE ? "DANE-EE" : "DANE-TA";
	} else {
		why = "PKIX";
	}
	ok = 1;
done:
	if (why_r != NULL)
		*why_r = why;
	return ok;
}

int net_conn_tls_dane_match(const struct net_conn *c, struct net_tls_dane_match *m_r)
{
	int depth;

	memset(m_r, 0, sizeof *m_r);
	if (c->ssl == NULL || c->tls_mode != NET_TLS_DANE || !SSL_is_init_finished(c->ssl) ||
	    SSL_get_verify_mode(c->ssl) == SSL_VERIFY_NONE ||
	    SSL_get_verify_result(c->ssl) != X509_V_OK)
		return -1;
	depth = SSL_get0_dane_tlsa(c->ssl, &m_r->usage, &m_r->selector, &m_r->mtype, &m_r->data,
	                           &m_r->len);
	if (depth < 0) {
		memset(m_r, 0, sizeof *m_r);
		return -1;
	}
	m_r->depth = depth;
	return 0;
}
