/*
 * test_tls_client: outbound TLS for delivery.  Both ends are net_conn over
 * a socketpair, the server made by net_tls_server_ctx(), the client by
 * net_tls_client_ctx_new()/net_conn_tls_start_client(), driven
 * non-blocking in one poll loop.  The test makes its own certificates: a
 * self-signed one (net_tls_ensure_cert), a tiny CA with a leaf for
 * mx.test.example, a second CA nobody trusts, and an expired leaf.
 *
 * What a failed verification looks like, pinned here: in VERIFY and DANE
 * mode the client's handshake fails (NET_IO_ERROR) and
 * net_conn_tls_verified() gives the reason afterwards; in OPPORTUNISTIC
 * mode, and DANE without a usable record, the handshake succeeds and
 * net_conn_tls_verified() says 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/net.h"

#define MX_NAME "mx.test.example"
#define SELF_NAME "self.test.example"

/* ---- certificates ------------------------------------------------------- */

struct cert {
	EVP_PKEY *key;
	X509 *x;
};

struct fixture {
	char dir[64];
	char self_cert[128], self_key[128]; /* self-signed, SELF_NAME */
	char ca_file[128];                  /* the CA alone: trust anchor */
	char chain[128], leaf_key[128];     /* leaf MX_NAME + CA: server chain */
	char other_ca_file[128];            /* a CA that signed nothing here */
	char exp_chain[128], exp_key[128];  /* expired leaf MX_NAME + CA */
	struct cert ca, leaf, other_ca, expired, self;
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* issuer NULL: self-signed.  san NULL: a CA. */
static void cert_make(struct cert *c, const char *cn, const struct cert *issuer, const char *san,
                      long not_before_days, long not_after_days)
{
	static long serial = 1;
	X509_NAME *name;

	c->key = EVP_EC_gen("P-256");
	assert_non_null(c->key);
	c->x = X509_new();
	assert_non_null(c->x);
	assert_int_equal(X509_set_version(c->x, X509_VERSION_3), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(c->x), serial++), 1);
	assert_non_null(X509_time_adj_ex(X509_getm_notBefore(c->x), (int)not_before_days, 0, NULL));
	assert_non_null(X509_time_adj_ex(X509_getm_notAfter(c->x), (int)not_after_days, 0, NULL));
	assert_int_equal(X509_set_pubkey(c->x, c->key), 1);
	name = X509_get_subject_name(c->x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                            (const unsigned char *)cn, -1, -1, 0),
	                 1);
	assert_int_equal(
	    X509_set_issuer_name(c->x, X509_get_subject_name(issuer ? issuer->x : c->x)), 1);
	add_ext(c->x, issuer ? issuer->x : c->x, NID_subject_key_identifier, "hash");
	if (issuer != NULL)
		add_ext(c->x, issuer->x, NID_authority_key_identifier, "keyid:always");
	if (san == NULL) {
		add_ext(c->x, c->x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(c->x, c->x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		char value[128];

		snprintf(value, sizeof value, "DNS:%s", san);
		add_ext(c->x, c->x, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(c->x, c->x, NID_key_usage, "critical,digitalSignature");
		add_ext(c->x, c->x, NID_ext_key_usage, "serverAuth");
		add_ext(c->x, c->x, NID_subject_alt_name, value);
	}
	assert_true(X509_sign(c->x, issuer ? issuer->key : c->key, EVP_sha256()) > 0);
}

static void cert_free(struct cert *c)
{
	EVP_PKEY_free(c->key);
	X509_free(c->x);
}

static void write_pem(const char *path, X509 *x1, X509 *x2, EVP_PKEY *key)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	if (x1 != NULL)
		assert_int_equal(PEM_write_X509(fp, x1), 1);
	if (x2 != NULL)
		assert_int_equal(PEM_write_X509(fp, x2), 1);
	if (key != NULL)
		assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(fp), 0);
}

static X509 *read_cert(const char *path)
{
	FILE *fp = fopen(path, "r");
	X509 *x;

	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char *err = NULL;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-tlsc-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
#define PATH(field, name) snprintf(f->field, sizeof f->field, "%s/" name, f->dir)
	PATH(self_cert, "self-cert.pem");
	PATH(self_key, "self-key.pem");
	PATH(ca_file, "ca.pem");
	PATH(chain, "chain.pem");
	PATH(leaf_key, "leaf-key.pem");
	PATH(other_ca_file, "other-ca.pem");
	PATH(exp_chain, "exp-chain.pem");
	PATH(exp_key, "exp-key.pem");
#undef PATH
	if (net_tls_ensure_cert(f->self_cert, f->self_key, SELF_NAME, &err) != 1)
		return -1;
	f->self.x = read_cert(f->self_cert);

	cert_make(&f->ca, "Sluice Test CA", NULL, NULL, -1, 30);
	cert_make(&f->leaf, MX_NAME, &f->ca, MX_NAME, -1, 30);
	cert_make(&f->other_ca, "Nobody's CA", NULL, NULL, -1, 30);
	cert_make(&f->expired, MX_NAME, &f->ca, MX_NAME, -30, -1);
	write_pem(f->ca_file, f->ca.x, NULL, NULL);
	write_pem(f->chain, f->leaf.x, f->ca.x, NULL);
	write_pem(f->leaf_key, NULL, NULL, f->leaf.key);
	write_pem(f->other_ca_file, f->other_ca.x, NULL, NULL);
	write_pem(f->exp_chain, f->expired.x, f->ca.x, NULL);
	write_pem(f->exp_key, NULL, NULL, f->expired.key);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->self_cert);
	unlink(f->self_key);
	unlink(f->ca_file);
	unlink(f->chain);
	unlink(f->leaf_key);
	unlink(f->other_ca_file);
	unlink(f->exp_chain);
	unlink(f->exp_key);
	rmdir(f->dir);
	cert_free(&f->ca);
	cert_free(&f->leaf);
	cert_free(&f->other_ca);
	cert_free(&f->expired);
	cert_free(&f->self);
	free(f);
	return 0;
}

/* TLSA association data. */
static size_t tlsa_data(X509 *x, int selector, int mtype, unsigned char *out, size_t size)
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len;

	if (selector == NET_TLSA_SEL_CERT)
		len = i2d_X509(x, &der);
	else
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der); /* the whole SPKI */
	assert_true(len > 0);
	if (mtype == NET_TLSA_MTYPE_FULL) {
		assert_true((size_t)len <= size);
		memcpy(out, der, (size_t)len);
		OPENSSL_free(der);
		return (size_t)len;
	}
	assert_int_equal(EVP_Digest(der, (size_t)len, out, &mdlen,
	                            mtype == NET_TLSA_MTYPE_SHA256 ? EVP_sha256() : EVP_sha512(),
	                            NULL),
	                 1);
	OPENSSL_free(der);
	return mdlen;
}

/* ---- one connection, both ends ------------------------------------------ */

static void make_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK), 0);
}

struct side {
	struct net_conn c;
	enum net_io io; /* last handshake result */
	int done;       /* 1 ok, -1 failed */
};

static short events_of(enum net_io io)
{
	return io == NET_IO_WANT_WRITE ? POLLOUT : POLLIN;
}

static void side_step(struct side *s)
{
	if (s->done)
		return;
	s->io = net_conn_handshake(&s->c);
	if (s->io == NET_IO_OK) {
		s->done = 1;
	} else if (s->io == NET_IO_ERROR || s->io == NET_IO_EOF) {
		s->done = -1;
		/* The peer then sees EOF instead of waiting forever; the
		 * alert, if any, was written before. */
		shutdown(s->c.fd, SHUT_RDWR);
	}
}

/* Drive both handshakes until each side succeeded or failed. */
static void handshake(struct side *client, struct side *server)
{
	int rounds = 0;

	for (;;) {
		struct pollfd pfd[2];
		nfds_t n = 0;

		side_step(client);
		side_step(server);
		if (client->done && server->done)
			return;
		if (!client->done)
			pfd[n++] =
			    (struct pollfd){.fd = client->c.fd, .events = events_of(client->io)};
		if (!server->done)
			pfd[n++] =
			    (struct pollfd){.fd = server->c.fd, .events = events_of(server->io)};
		assert_true(poll(pfd, n, 5000) > 0);
		assert_true(++rounds < 10000);
	}
}

/* Move one line from a to b, over TLS, both non-blocking. */
static void send_line(struct net_conn *a, struct net_conn *b, const char *line)
{
	size_t len = strlen(line), sent = 0, got = 0, n;
	char buf[256];
	int rounds = 0;

	while (got < len) {
		enum net_io io;

		if (sent < len) {
			io = net_conn_write(a, line + sent, len - sent, &n);
			if (io == NET_IO_OK)
				sent += n;
			else
				assert_true(io == NET_IO_WANT_READ || io == NET_IO_WANT_WRITE);
		}
		io = net_conn_read(b, buf + got, sizeof buf - got, &n);
		if (io == NET_IO_OK) {
			got += n;
		} else {
			struct pollfd pfd = {.fd = b->fd, .events = events_of(io)};

			assert_true(io == NET_IO_WANT_READ || io == NET_IO_WANT_WRITE);
			(void)poll(&pfd, 1, 100);
		}
		assert_true(++rounds < 10000);
	}
	assert_int_equal(got, len);
	assert_memory_equal(buf, line, len);
}

struct run {
	struct side client, server;
	SSL_CTX *sctx, *cctx;
};

/* Server with cert/key (max_version 0: any); client context with ca_file
 * (may be NULL); the client started with p. */
static void run_start(struct run *r, const char *cert, const char *key, int max_version,
                      const char *ca_file, const struct net_tls_client_params *p)
{
	struct net_tls_client_config cfg = {.ca_file = ca_file};
	const char *why = NULL;
	char *err = NULL;
	int sv[2];

	memset(r, 0, sizeof *r);
	r->sctx = net_tls_server_ctx(cert, key, &err);
	assert_non_null(r->sctx);
	if (max_version != 0)
		assert_int_equal(SSL_CTX_set_max_proto_version(r->sctx, max_version), 1);
	r->cctx = net_tls_client_ctx_new(&cfg, &err);
	if (r->cctx == NULL)
		fail_msg("client ctx: %s", err);
	make_pair(sv);
	r->server.c.fd = sv[0];
	r->client.c.fd = sv[1];
	assert_int_equal(net_conn_tls_start(&r->server.c, r->sctx), 0);
	if (net_conn_tls_start_client(&r->client.c, r->cctx, p, &why) != 0)
		fail_msg("start client: %s", why);
	assert_int_equal(r->client.c.handshaking, 1);
	handshake(&r->client, &r->server);
	assert_int_equal(ERR_peek_error(), 0); /* failures leave no errors behind */
}

static void run_end(struct run *r)
{
	net_conn_close(&r->client.c);
	net_conn_close(&r->server.c);
	SSL_CTX_free(r->cctx);
	SSL_CTX_free(r->sctx);
}

/* After a successful handshake: SMTP-shaped traffic both ways. */
static void run_exchange(struct run *r)
{
	send_line(&r->client.c, &r->server.c, "EHLO sluice.example\r\n");
	send_line(&r->server.c, &r->client.c, "250 mx.test.example\r\n");
}

/* ---- the cases ---------------------------------------------------------- */

enum server_cert { SRV_SELF, SRV_CA_LEAF, SRV_EXPIRED };
enum client_ca { CA_NONE, CA_OURS, CA_OTHER };
enum tlsa_of { T_NONE, T_SELF, T_LEAF, T_CA, T_OTHER_CA, T_JUNK };

struct tlsa_spec {
	uint8_t usage, selector, mtype;
	enum tlsa_of of;
	int bad_len; /* cut the digest short: unusable */
};

#define MAX_TLSA 4
#define MAX_NAMES 2

struct tls_case {
	const char *name;
	enum server_cert server;
	int max_version;
	enum client_ca ca;
	enum net_tls_mode mode;
	const char *servername;
	const char *names[MAX_NAMES];
	struct tlsa_spec tlsa[MAX_TLSA];
	/* expectations */
	int handshake_ok; /* the client's handshake */
	int verified;
	const char *why; /* substring of net_conn_tls_verified's reason */
	const char *version;
	int dane_depth; /* -1: net_conn_tls_dane_match fails */
};

#define TLSA(u, s, m, o)                                                                           \
	{                                                                                          \
		.usage = (u), .selector = (s), .mtype = (m), .of = (o)                             \
	}

/* clang-format off */
static const struct tls_case cases[] = {
	/* Opportunistic: encryption whatever the certificate says. */
	{.name = "opportunistic, self-signed", .server = SRV_SELF, .mode = NET_TLS_OPPORTUNISTIC,
	 .servername = MX_NAME, .handshake_ok = 1, .verified = 0, .why = "self-signed",
	 .version = "TLSv1.3", .dane_depth = -1},
	{.name = "opportunistic, expired", .server = SRV_EXPIRED, .ca = CA_OURS,
	 .mode = NET_TLS_OPPORTUNISTIC, .servername = MX_NAME, .handshake_ok = 1,
	 .verified = 0, .why = "expired", .version = "TLSv1.3", .dane_depth = -1},
	{.name = "opportunistic, valid anyway", .server = SRV_CA_LEAF, .ca = CA_OURS,
	 .mode = NET_TLS_OPPORTUNISTIC, .servername = MX_NAME, .handshake_ok = 1,
	 .verified = 1, .why = "PKIX", .version = "TLSv1.3", .dane_depth = -1},
	{.name = "opportunistic, TLS 1.2 server", .server = SRV_SELF,
	 .max_version = TLS1_2_VERSION, .mode = NET_TLS_OPPORTUNISTIC, .servername = MX_NAME,
	 .handshake_ok = 1, .verified = 0, .version = "TLSv1.2", .dane_depth = -1},

	/* VERIFY: PKIX chain and name. */
	{.name = "verify ok", .server = SRV_CA_LEAF, .ca = CA_OURS, .mode = NET_TLS_VERIFY,
	 .servername = MX_NAME, .handshake_ok = 1, .verified = 1, .why = "PKIX",
	 .version = "TLSv1.3", .dane_depth = -1},
	{.name = "verify ok over TLS 1.2", .server = SRV_CA_LEAF, .max_version = TLS1_2_VERSION,
	 .ca = CA_OURS, .mode = NET_TLS_VERIFY, .servername = MX_NAME, .handshake_ok = 1,
	 .verified = 1, .why = "PKIX", .version = "TLSv1.2", .dane_depth = -1},
	{.name = "verify ok by an extra name", .server = SRV_CA_LEAF, .ca = CA_OURS,
	 .mode = NET_TLS_VERIFY, .servername = "smtp.esp.example",
	 .names = {"other.esp.example", MX_NAME "."}, .handshake_ok = 1, .verified = 1,
	 .why = "PKIX", .version = "TLSv1.3", .dane_depth = -1},
	{.name = "verify ok, name with the root dot", .server = SRV_CA_LEAF, .ca = CA_OURS,
	 .mode = NET_TLS_VERIFY, .servername = MX_NAME ".", .handshake_ok = 1, .verified = 1,
	 .why = "PKIX", .version = "TLSv1.3", .dane_depth = -1},
	{.name = "dane-ta, name with the root dot", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME ".", .tlsa = {TLSA(2, 0, 1, T_CA)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-TA", .version = "TLSv1.3", .dane_depth = 1},
	{.name = "verify, wrong name", .server = SRV_CA_LEAF, .ca = CA_OURS,
	 .mode = NET_TLS_VERIFY, .servername = "wrong.test.example", .handshake_ok = 0,
	 .why = "hostname mismatch", .dane_depth = -1},
	{.name = "verify, no trust anchors", .server = SRV_CA_LEAF, .ca = CA_NONE,
	 .mode = NET_TLS_VERIFY, .servername = MX_NAME, .handshake_ok = 0,
	 .why = "in certificate chain", .dane_depth = -1},
	{.name = "verify, another CA", .server = SRV_CA_LEAF, .ca = CA_OTHER,
	 .mode = NET_TLS_VERIFY, .servername = MX_NAME, .handshake_ok = 0,
	 .why = "in certificate chain", .dane_depth = -1},
	{.name = "verify, self-signed", .server = SRV_SELF, .ca = CA_OURS, .mode = NET_TLS_VERIFY,
	 .servername = SELF_NAME, .handshake_ok = 0, .why = "self-signed", .dane_depth = -1},
	{.name = "verify, expired", .server = SRV_EXPIRED, .ca = CA_OURS, .mode = NET_TLS_VERIFY,
	 .servername = MX_NAME, .handshake_ok = 0, .why = "expired", .dane_depth = -1},

	/* DANE-EE: the key (or certificate) itself; names and dates do not
	 * matter (RFC 7672 3.1.1). */
	{.name = "dane-ee 3 1 1", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_SELF)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-EE", .version = "TLSv1.3", .dane_depth = 0},
	{.name = "dane-ee 3 0 1", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 0, 1, T_SELF)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-EE", .version = "TLSv1.3", .dane_depth = 0},
	{.name = "dane-ee 3 1 2", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 2, T_SELF)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-EE", .version = "TLSv1.3", .dane_depth = 0},
	{.name = "dane-ee 3 1 0 (full SPKI)", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 0, T_SELF)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-EE", .version = "TLSv1.3", .dane_depth = 0},
	{.name = "dane-ee over TLS 1.2", .server = SRV_SELF, .max_version = TLS1_2_VERSION,
	 .mode = NET_TLS_DANE, .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_SELF)},
	 .handshake_ok = 1, .verified = 1, .why = "DANE-EE", .version = "TLSv1.2",
	 .dane_depth = 0},
	{.name = "dane-ee, expired certificate", .server = SRV_EXPIRED, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_LEAF)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-EE", .version = "TLSv1.3", .dane_depth = 0},
	{.name = "dane-ee, second record matches", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_LEAF), TLSA(3, 1, 1, T_SELF)},
	 .handshake_ok = 1, .verified = 1, .why = "DANE-EE", .version = "TLSv1.3",
	 .dane_depth = 0},
	{.name = "dane-ee mismatch fails the handshake", .server = SRV_SELF,
	 .mode = NET_TLS_DANE, .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_LEAF)},
	 .handshake_ok = 0, .why = "matching DANE TLSA", .dane_depth = -1},
	{.name = "dane, junk digest fails", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(3, 1, 1, T_JUNK)}, .handshake_ok = 0,
	 .why = "matching DANE TLSA", .dane_depth = -1},

	/* DANE-TA: a chain to the named CA, and a name check. */
	{.name = "dane-ta 2 0 1", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(2, 0, 1, T_CA)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-TA", .version = "TLSv1.3", .dane_depth = 1},
	{.name = "dane-ta 2 1 1", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(2, 1, 1, T_CA)}, .handshake_ok = 1,
	 .verified = 1, .why = "DANE-TA", .version = "TLSv1.3", .dane_depth = 1},
	{.name = "dane-ta, name from names[]", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = "mx2.test.example", .names = {MX_NAME},
	 .tlsa = {TLSA(2, 0, 1, T_CA)}, .handshake_ok = 1, .verified = 1, .why = "DANE-TA",
	 .version = "TLSv1.3", .dane_depth = 1},
	{.name = "dane-ta, wrong name", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = "wrong.test.example", .tlsa = {TLSA(2, 0, 1, T_CA)},
	 .handshake_ok = 0, .why = "hostname mismatch", .dane_depth = -1},
	{.name = "dane-ta, another CA", .server = SRV_CA_LEAF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(2, 0, 1, T_OTHER_CA)}, .handshake_ok = 0,
	 .why = "matching DANE TLSA", .dane_depth = -1},
	{.name = "dane-ta, expired leaf", .server = SRV_EXPIRED, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(2, 0, 1, T_CA)}, .handshake_ok = 0,
	 .why = "expired", .dane_depth = -1},

	/* RFC 7672 3.1.3: PKIX-TA/PKIX-EE are unusable, even when they would
	 * match and the CA is trusted; with no usable record the connection
	 * is unauthenticated TLS. */
	{.name = "dane, only pkix records", .server = SRV_CA_LEAF, .ca = CA_OURS,
	 .mode = NET_TLS_DANE, .servername = MX_NAME,
	 .tlsa = {TLSA(0, 0, 1, T_CA), TLSA(1, 1, 1, T_LEAF)}, .handshake_ok = 1,
	 .verified = 0, .why = "no usable TLSA", .version = "TLSv1.3", .dane_depth = -1},
	{.name = "dane, unusable parameters", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME,
	 .tlsa = {TLSA(4, 1, 1, T_SELF), TLSA(3, 2, 1, T_SELF), TLSA(3, 1, 9, T_SELF),
	          {.usage = 3, .selector = 1, .mtype = 1, .of = T_SELF, .bad_len = 1}},
	 .handshake_ok = 1, .verified = 0, .why = "no usable TLSA", .version = "TLSv1.3",
	 .dane_depth = -1},
	{.name = "dane, no records at all", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .handshake_ok = 1, .verified = 0, .why = "no usable TLSA",
	 .version = "TLSv1.3", .dane_depth = -1},
	{.name = "dane, unusable then usable", .server = SRV_SELF, .mode = NET_TLS_DANE,
	 .servername = MX_NAME, .tlsa = {TLSA(1, 1, 1, T_SELF), TLSA(3, 1, 1, T_SELF)},
	 .handshake_ok = 1, .verified = 1, .why = "DANE-EE", .version = "TLSv1.3",
	 .dane_depth = 0},
	{.name = "dane, pkix match ignored, dane-ee mismatch", .server = SRV_CA_LEAF,
	 .ca = CA_OURS, .mode = NET_TLS_DANE, .servername = MX_NAME,
	 .tlsa = {TLSA(1, 1, 1, T_LEAF), TLSA(3, 1, 1, T_SELF)}, .handshake_ok = 0,
	 .why = "matching DANE TLSA", .dane_depth = -1},
};
/* clang-format on */

static void run_case(const struct fixture *f, const struct tls_case *tc)
{
	unsigned char data[MAX_TLSA][2048];
	struct net_tls_tlsa tlsa[MAX_TLSA];
	struct net_tls_client_params p = {
	    .mode = tc->mode, .servername = tc->servername, .names = tc->names, .tlsa = tlsa};
	struct net_tls_dane_match m;
	const char *cert, *key, *ca, *why = NULL;
	const char *version;
	struct run r;
	int verified;
	size_t i;

	for (i = 0; i < MAX_NAMES && tc->names[i] != NULL; i++)
		p.nnames++;
	for (i = 0; i < MAX_TLSA && tc->tlsa[i].of != T_NONE; i++) {
		const struct tlsa_spec *s = &tc->tlsa[i];
		X509 *x = s->of == T_SELF   ? f->self.x
		          : s->of == T_LEAF ? f->expired.x
		          : s->of == T_CA   ? f->ca.x
		                            : f->other_ca.x;
		int sel = s->selector <= 1 ? s->selector : 1;
		int mt = s->mtype <= 2 ? s->mtype : 1;

		/* T_LEAF is the expired leaf when the server presents it, the
		 * good leaf otherwise: both are "some other MX_NAME cert". */
		if (s->of == T_LEAF && tc->server != SRV_EXPIRED)
			x = f->leaf.x;
		tlsa[i] = (struct net_tls_tlsa){
		    .usage = s->usage, .selector = s->selector, .mtype = s->mtype, .data = data[i]};
		tlsa[i].len = tlsa_data(x, sel, mt, data[i], sizeof data[i]);
		if (s->of == T_JUNK)
			memset(data[i], 0x5a, tlsa[i].len);
		if (s->bad_len)
			tlsa[i].len--;
		p.ntlsa++;
	}
	switch (tc->server) {
	case SRV_SELF:
		cert = f->self_cert, key = f->self_key;
		break;
	case SRV_CA_LEAF:
		cert = f->chain, key = f->leaf_key;
		break;
	default:
		cert = f->exp_chain, key = f->exp_key;
		break;
	}
	ca = tc->ca == CA_OURS ? f->ca_file : tc->ca == CA_OTHER ? f->other_ca_file : NULL;

	run_start(&r, cert, key, tc->max_version, ca, &p);
	if ((r.client.done == 1) != tc->handshake_ok)
		fail_msg("%s: client handshake %s", tc->name, r.client.done == 1 ? "ok" : "failed");
	verified = net_conn_tls_verified(&r.client.c, &why);
	assert_non_null(why);
	if (verified != tc->verified || (tc->why != NULL && strstr(why, tc->why) == NULL))
		fail_msg("%s: verified=%d why=\"%s\", want %d \"%s\"", tc->name, verified, why,
		         tc->verified, tc->why ? tc->why : "");
	if (tc->handshake_ok) {
		assert_int_equal(r.server.done, 1);
		version = net_conn_tls_version(&r.client.c);
		assert_non_null(version);
		if (strcmp(version, tc->version) != 0)
			fail_msg("%s: version %s, want %s", tc->name, version, tc->version);
		assert_string_equal(net_conn_tls_version(&r.server.c), tc->version);
		assert_non_null(net_conn_tls_cipher(&r.client.c, NULL));
		run_exchange(&r);
	} else {
		/* The server learns of it too, and nothing was exchanged. */
		assert_int_equal(r.server.done, -1);
		assert_null(net_conn_tls_version(&r.client.c));
	}
	if (tc->dane_depth < 0) {
		assert_int_equal(net_conn_tls_dane_match(&r.client.c, &m), -1);
	} else {
		assert_int_equal(net_conn_tls_dane_match(&r.client.c, &m), 0);
		assert_int_equal(m.depth, tc->dane_depth);
		/* The matching record is one we gave, reported faithfully. */
		for (i = 0; i < p.ntlsa; i++)
			if (tlsa[i].usage == m.usage && tlsa[i].selector == m.selector &&
			    tlsa[i].mtype == m.mtype && tlsa[i].len == m.len &&
			    memcmp(tlsa[i].data, m.data, m.len) == 0)
				break;
		if (i == p.ntlsa)
			fail_msg("%s: matched record %u %u %u not among ours", tc->name, m.usage,
			         m.selector, m.mtype);
	}
	run_end(&r);
}

static void test_cases(void **state)
{
	const struct fixture *f = *state;
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		run_case(f, &cases[i]);
}

/* The reason in full for the one case the brief names: DANE-EE 3 1 1,
 * and which record matched. */
static void test_dane_ee_reports_record(void **state)
{
	const struct fixture *f = *state;
	unsigned char spki[32];
	struct net_tls_tlsa t = {.usage = 3, .selector = 1, .mtype = 1, .data = spki};
	struct net_tls_client_params p = {
	    .mode = NET_TLS_DANE, .servername = "mx.elsewhere.example.", .tlsa = &t, .ntlsa = 1};
	struct net_tls_dane_match m;
	const char *why = NULL;
	struct run r;

	t.len = tlsa_data(f->self.x, 1, 1, spki, sizeof spki);
	assert_int_equal(t.len, 32);
	run_start(&r, f->self_cert, f->self_key, 0, NULL, &p);
	assert_int_equal(r.client.done, 1);
	assert_int_equal(net_conn_tls_verified(&r.client.c, &why), 1);
	assert_string_equal(why, "DANE-EE");
	assert_int_equal(net_conn_tls_dane_match(&r.client.c, &m), 0);
	assert_int_equal(m.usage, 3);
	assert_int_equal(m.selector, 1);
	assert_int_equal(m.mtype, 1);
	assert_int_equal(m.depth, 0);
	assert_int_equal(m.len, 32);
	assert_memory_equal(m.data, spki, 32);
	/* The SNI was the TLSA base domain without its root dot, and the
	 * server side is no client: it has nothing to say about
	 * verification. */
	assert_string_equal(SSL_get_servername(r.server.c.ssl, TLSEXT_NAMETYPE_host_name),
	                    "mx.elsewhere.example");
	assert_int_equal(net_conn_tls_verified(&r.server.c, &why), 0);
	assert_string_equal(why, "not a client connection");
	run_exchange(&r);
	run_end(&r);
	/* Closed: the state is gone with the SSL. */
	assert_int_equal(r.client.c.tls_mode, 0);
	assert_int_equal(net_conn_tls_verified(&r.client.c, &why), 0);
	assert_string_equal(why, "no TLS");
}

/* Bad calls are refused without touching the connection. */
static void test_start_refusals(void **state)
{
	const struct fixture *f = *state;
	struct net_tls_client_params p = {.mode = NET_TLS_OPPORTUNISTIC, .servername = MX_NAME};
	struct net_conn c = {.fd = -1};
	const char *why = NULL;
	char *err = NULL;
	SSL_CTX *cctx;
	int sv[2];

	cctx = net_tls_client_ctx_new(NULL, &err);
	assert_non_null(cctx);
	/* No socket. */
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), -1);
	assert_non_null(why);
	make_pair(sv);
	c.fd = sv[0];
	p.servername = NULL;
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), -1);
	p.servername = "bad name\r\nMAIL FROM";
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), -1);
	assert_non_null(strstr(why, "DNS name"));
	p.servername = MX_NAME;
	p.mode = (enum net_tls_mode)0;
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), -1);
	assert_null(c.ssl);
	p.mode = NET_TLS_VERIFY;
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), 0);
	/* Not twice. */
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), -1);
	/* Before the handshake nothing is verified. */
	assert_int_equal(net_conn_tls_verified(&c, &why), 0);
	assert_string_equal(why, "handshake not finished");
	net_conn_close(&c);
	close(sv[1]);
	SSL_CTX_free(cctx);

	/* A trust store that does not exist names itself. */
	{
		struct net_tls_client_config cfg = {.ca_file = "/nonexistent/ca.pem"};

		assert_null(net_tls_client_ctx_new(&cfg, &err));
		assert_non_null(err);
		assert_non_null(strstr(err, "/nonexistent/ca.pem"));
		free(err);
		assert_int_equal(ERR_peek_error(), 0);
	}
	/* The system store loads (it may be empty in a container). */
	{
		struct net_tls_client_config cfg = {.ca_file = f->ca_file, .system_ca = 1};

		cctx = net_tls_client_ctx_new(&cfg, &err);
		assert_non_null(cctx);
		SSL_CTX_free(cctx);
	}
}

/* A client that refuses the server does not make the server side crash
 * or leak, and a plaintext peer fails the client handshake cleanly. */
static void test_client_vs_plaintext_peer(void **state)
{
	struct net_tls_client_params p = {.mode = NET_TLS_OPPORTUNISTIC, .servername = MX_NAME};
	struct net_conn c = {.fd = -1};
	const char *why = NULL;
	char *err = NULL;
	char buf[512];
	SSL_CTX *cctx;
	enum net_io io;
	int sv[2];

	(void)state;
	cctx = net_tls_client_ctx_new(NULL, &err);
	assert_non_null(cctx);
	make_pair(sv);
	c.fd = sv[0];
	assert_int_equal(net_conn_tls_start_client(&c, cctx, &p, &why), 0);
	assert_int_equal(net_conn_handshake(&c), NET_IO_WANT_READ);
	assert_true(read(sv[1], buf, sizeof buf) > 0); /* the ClientHello */
	assert_int_equal(write(sv[1], "554 no TLS here\r\n", 17), 17);
	io = net_conn_handshake(&c);
	assert_int_equal(io, NET_IO_ERROR);
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(net_conn_tls_verified(&c, &why), 0);
	close(sv[1]);
	net_conn_close(&c);
	SSL_CTX_free(cctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cases),
	    cmocka_unit_test(test_dane_ee_reports_record),
	    cmocka_unit_test(test_start_refusals),
	    cmocka_unit_test(test_client_vs_plaintext_peer),
	};

	/* As in sluiced: OpenSSL writes with write(2), and a side that gave
	 * up on the handshake shuts its socket down under the other. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
