/*
 * test_net: address and CIDR parsing, listeners, the self-signed
 * certificate, the server TLS context, and net_conn over a socketpair:
 * plain I/O, and a real TLS handshake and exchange with an OpenSSL client
 * driven non-blocking in the same poll loop as the server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "net/net.h"

/* ---- net_parse_hostport ------------------------------------------------- */

struct hostport_case {
	const char *in;
	int ok;
	int family;
	const char *addr; /* as net_addr_str shows it */
	unsigned port;
	const char *why; /* substring of *why_r */
};

/* clang-format off */
static const struct hostport_case hostport_cases[] = {
	{.in = "127.0.0.1:587", .ok = 1, .family = AF_INET, .addr = "127.0.0.1", .port = 587},
	{.in = "*:587", .ok = 1, .family = AF_INET, .addr = "0.0.0.0", .port = 587},
	{.in = "0.0.0.0:25", .ok = 1, .family = AF_INET, .addr = "0.0.0.0", .port = 25},
	{.in = "[::1]:587", .ok = 1, .family = AF_INET6, .addr = "::1", .port = 587},
	{.in = "[::]:465", .ok = 1, .family = AF_INET6, .addr = "::", .port = 465},
	{.in = "[2001:db8::25]:2525", .ok = 1, .family = AF_INET6, .addr = "2001:db8::25",
	 .port = 2525},
	{.in = "192.0.2.1:1", .ok = 1, .family = AF_INET, .addr = "192.0.2.1", .port = 1},
	{.in = "192.0.2.1:65535", .ok = 1, .family = AF_INET, .addr = "192.0.2.1",
	 .port = 65535},
	{.in = "[::ffff:192.0.2.1]:25", .ok = 1, .family = AF_INET6, .addr = "192.0.2.1",
	 .port = 25},

	{.in = "", .why = "empty"},
	{.in = "127.0.0.1", .why = "port"},
	{.in = "127.0.0.1:", .why = "port"},
	{.in = "127.0.0.1:0", .why = "1 to 65535"},
	{.in = "127.0.0.1:65536", .why = "1 to 65535"},
	{.in = "127.0.0.1:99999999999", .why = "1 to 65535"},
	{.in = "127.0.0.1:-1", .why = "1 to 65535"},
	{.in = "127.0.0.1:+25", .why = "1 to 65535"},
	{.in = "127.0.0.1: 25", .why = "1 to 65535"},
	{.in = "127.0.0.1:25x", .why = "1 to 65535"},
	{.in = ":587", .why = "missing address"},
	{.in = "localhost:587", .why = "hostnames"},
	{.in = "256.0.0.1:587", .why = "IPv4"},
	{.in = "::1:587", .why = "brackets"},
	{.in = "[::1]587", .why = "':port'"},
	{.in = "[::1:587", .why = "']'"},
	{.in = "[127.0.0.1]:587", .why = "IPv6"},
	{.in = "[fe80::1%eth0]:587", .why = "IPv6"},
	{.in = "[::1]:0", .why = "1 to 65535"},
	{.in = "[0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000]:25",
	 .why = "too long"},
};
/* clang-format on */

static void test_parse_hostport_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof hostport_cases / sizeof hostport_cases[0]; i++) {
		const struct hostport_case *hc = &hostport_cases[i];
		struct sockaddr_storage ss;
		socklen_t len = 0;
		const char *why = NULL;
		char addr[NET_ADDR_STRLEN];
		int rc = net_parse_hostport(hc->in, &ss, &len, &why);

		if (!hc->ok) {
			if (rc != -1 || why == NULL || strstr(why, hc->why) == NULL) {
				print_error("\"%s\": rc=%d why=\"%s\", want error with \"%s\"\n",
				            hc->in, rc, why != NULL ? why : "", hc->why);
				fail();
			}
			continue;
		}
		if (rc != 0) {
			print_error("\"%s\": unexpected error \"%s\"\n", hc->in, why);
			fail();
		}
		assert_int_equal(ss.ss_family, hc->family);
		net_addr_str((struct sockaddr *)&ss, addr);
		assert_string_equal(addr, hc->addr);
		if (hc->family == AF_INET) {
			assert_int_equal(len, sizeof(struct sockaddr_in));
			assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), hc->port);
		} else {
			assert_int_equal(len, sizeof(struct sockaddr_in6));
			assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), hc->port);
		}
	}
}

static void test_parse_listen_addr_port0(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why;

	(void)state;
	assert_int_equal(net_parse_listen_addr("127.0.0.1:0", &ss, &len, &why), 0);
	assert_int_equal(net_parse_listen_addr("[::1]:0", &ss, &len, &why), 0);
	assert_int_equal(net_parse_listen_addr("127.0.0.1:65536", &ss, &len, &why), -1);
}

static void test_addr_str(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct sockaddr sun = {.sa_family = AF_UNIX};
	char out[NET_ADDR_STRLEN];

	(void)state;
	inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr);
	net_addr_str((struct sockaddr *)&sin, out);
	assert_string_equal(out, "198.51.100.7");

	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	net_addr_str((struct sockaddr *)&sin6, out);
	assert_string_equal(out, "2001:db8::1");

	inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr);
	net_addr_str((struct sockaddr *)&sin6, out);
	assert_string_equal(out, "198.51.100.7");

	/* IPv4-compatible (deprecated) is not mapped: stays IPv6. */
	inet_pton(AF_INET6, "::198.51.100.7", &sin6.sin6_addr);
	net_addr_str((struct sockaddr *)&sin6, out);
	assert_string_equal(out, "::198.51.100.7");

	net_addr_str(&sun, out);
	assert_string_equal(out, "unknown");
}

/* ---- CIDR --------------------------------------------------------------- */

struct cidr_parse_case {
	const char *in;
	const char *fmt; /* NULL: must fail */
	const char *why;
};

/* clang-format off */
static const struct cidr_parse_case cidr_parse_cases[] = {
	{.in = "10.0.0.0/8", .fmt = "10.0.0.0/8"},
	{.in = "192.0.2.1", .fmt = "192.0.2.1/32"},
	{.in = "192.0.2.1/32", .fmt = "192.0.2.1/32"},
	{.in = "0.0.0.0/0", .fmt = "0.0.0.0/0"},
	{.in = "172.16.0.0/12", .fmt = "172.16.0.0/12"},
	{.in = "192.0.2.128/25", .fmt = "192.0.2.128/25"},
	{.in = "2001:db8::/32", .fmt = "2001:db8::/32"},
	{.in = "2001:DB8::/32", .fmt = "2001:db8::/32"},
	{.in = "::1", .fmt = "::1/128"},
	{.in = "::/0", .fmt = "::/0"},
	{.in = "2001:db8:0:0:0:0:0:1/128", .fmt = "2001:db8::1/128"},
	{.in = "fe80::/10", .fmt = "fe80::/10"},
	{.in = "::ffff:10.0.0.0/104", .fmt = "10.0.0.0/8"},
	{.in = "::ffff:192.0.2.1", .fmt = "192.0.2.1/32"},
	{.in = "::ffff:0:0/96", .fmt = "0.0.0.0/0"},

	{.in = "", .why = "empty"},
	{.in = "10.0.0.1/8", .why = "beyond the prefix"},
	{.in = "192.0.2.129/25", .why = "beyond the prefix"},
	{.in = "2001:db8::1/32", .why = "beyond the prefix"},
	{.in = "1.0.0.0/0", .why = "beyond the prefix"},
	{.in = "::1/0", .why = "beyond the prefix"},
	{.in = "10.0.0.0/33", .why = "0 to 32"},
	{.in = "2001:db8::/129", .why = "0 to 128"},
	{.in = "10.0.0.0/", .why = "0 to 32"},
	{.in = "10.0.0.0/-8", .why = "0 to 32"},
	{.in = "10.0.0.0/8/8", .why = "0 to 32"},
	{.in = "10.0.0.0/ 8", .why = "0 to 32"},
	{.in = "10.0.0/8", .why = "numeric"},
	{.in = "example.org/24", .why = "numeric"},
	{.in = " 10.0.0.0/8", .why = "numeric"},
	{.in = "2001:db8::/32.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0", .why = "too long"},
};
/* clang-format on */

static void test_cidr_parse_format_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cidr_parse_cases / sizeof cidr_parse_cases[0]; i++) {
		const struct cidr_parse_case *cc = &cidr_parse_cases[i];
		struct net_cidr c;
		const char *why = NULL;
		char out[NET_ADDR_STRLEN + 8];
		int rc = net_cidr_parse(cc->in, &c, &why);

		if (cc->fmt == NULL) {
			if (rc != -1 || why == NULL || strstr(why, cc->why) == NULL) {
				print_error("\"%s\": rc=%d why=\"%s\", want error with \"%s\"\n",
				            cc->in, rc, why != NULL ? why : "", cc->why);
				fail();
			}
			continue;
		}
		if (rc != 0) {
			print_error("\"%s\": unexpected error \"%s\"\n", cc->in, why);
			fail();
		}
		net_cidr_format(&c, out, sizeof out);
		if (strcmp(out, cc->fmt) != 0) {
			print_error("\"%s\": formatted \"%s\", want \"%s\"\n", cc->in, out,
			            cc->fmt);
			fail();
		}
		/* Formatting round-trips. */
		{
			struct net_cidr again;

			assert_int_equal(net_cidr_parse(out, &again, &why), 0);
			assert_int_equal(again.family, c.family);
			assert_int_equal(again.prefix, c.prefix);
			assert_memory_equal(again.addr, c.addr, sizeof c.addr);
		}
	}
}

struct cidr_match_case {
	const char *cidr;
	const char *addr; /* IPv4 text is tested as sockaddr_in, anything with ':' as
	                     sockaddr_in6 */
	int want;
};

/* clang-format off */
static const struct cidr_match_case cidr_match_cases[] = {
	{.cidr = "10.0.0.0/8", .addr = "10.1.2.3", .want = 1},
	{.cidr = "10.0.0.0/8", .addr = "11.0.0.0", .want = 0},
	{.cidr = "10.0.0.0/8", .addr = "::ffff:10.1.2.3", .want = 1},
	{.cidr = "10.0.0.0/8", .addr = "::ffff:11.1.2.3", .want = 0},
	{.cidr = "10.0.0.0/8", .addr = "::a01:203", .want = 0}, /* compatible, not mapped */
	{.cidr = "10.0.0.0/8", .addr = "2001:db8::1", .want = 0},
	{.cidr = "192.0.2.128/25", .addr = "192.0.2.128", .want = 1},
	{.cidr = "192.0.2.128/25", .addr = "192.0.2.255", .want = 1},
	{.cidr = "192.0.2.128/25", .addr = "192.0.2.127", .want = 0},
	{.cidr = "192.0.2.1/32", .addr = "192.0.2.1", .want = 1},
	{.cidr = "192.0.2.1/32", .addr = "192.0.2.2", .want = 0},
	{.cidr = "192.0.2.1", .addr = "::ffff:192.0.2.1", .want = 1},
	{.cidr = "0.0.0.0/0", .addr = "203.0.113.9", .want = 1},
	{.cidr = "0.0.0.0/0", .addr = "::ffff:203.0.113.9", .want = 1},
	{.cidr = "0.0.0.0/0", .addr = "2001:db8::1", .want = 0},
	{.cidr = "2001:db8::/32", .addr = "2001:db8:ffff::1", .want = 1},
	{.cidr = "2001:db8::/32", .addr = "2001:db9::1", .want = 0},
	{.cidr = "2001:db8::/32", .addr = "10.0.0.1", .want = 0},
	{.cidr = "2001:db8::1/128", .addr = "2001:db8::1", .want = 1},
	{.cidr = "2001:db8::1/128", .addr = "2001:db8::2", .want = 0},
	{.cidr = "fe80::/10", .addr = "febf::1", .want = 1},
	{.cidr = "fe80::/10", .addr = "fec0::1", .want = 0},
	{.cidr = "::/0", .addr = "2001:db8::1", .want = 1},
	{.cidr = "::/0", .addr = "192.0.2.1", .want = 0},       /* IPv4 is not IPv6 */
	{.cidr = "::/0", .addr = "::ffff:192.0.2.1", .want = 0}, /* nor mapped IPv4 */
	{.cidr = "::ffff:10.0.0.0/104", .addr = "10.9.9.9", .want = 1},
	{.cidr = "::ffff:10.0.0.0/104", .addr = "::ffff:10.9.9.9", .want = 1},
};
/* clang-format on */

static struct sockaddr_storage sockaddr_of(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof ss);
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return ss;
}

static void test_cidr_match_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cidr_match_cases / sizeof cidr_match_cases[0]; i++) {
		const struct cidr_match_case *mc = &cidr_match_cases[i];
		struct sockaddr_storage ss = sockaddr_of(mc->addr);
		struct net_cidr c;
		const char *why;
		int got;

		assert_int_equal(net_cidr_parse(mc->cidr, &c, &why), 0);
		got = net_cidr_match(&c, (struct sockaddr *)&ss);
		if (got != mc->want) {
			print_error("%s in %s: got %d want %d\n", mc->addr, mc->cidr, got,
			            mc->want);
			fail();
		}
	}
}

/* ---- net_listen --------------------------------------------------------- */

static void check_listener(int fd, int family)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int v = 0;
	socklen_t vlen = sizeof v;

	assert_true(fd >= 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	assert_int_equal(ss.ss_family, family);
	if (family == AF_INET)
		assert_int_not_equal(((struct sockaddr_in *)&ss)->sin_port, 0);
	else
		assert_int_not_equal(((struct sockaddr_in6 *)&ss)->sin6_port, 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &vlen), 0);
	assert_int_not_equal(v, 0);
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen), 0);
	assert_int_not_equal(v, 0);
	if (family == AF_INET6) {
		assert_int_equal(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &vlen), 0);
		assert_int_not_equal(v, 0);
	}
}

static unsigned listener_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void test_listen_ipv4(void **state)
{
	char *err = NULL;
	char again[64];
	int fd, fd2;

	(void)state;
	fd = net_listen("127.0.0.1:0", 16, &err);
	if (fd < 0)
		print_error("%s\n", err);
	check_listener(fd, AF_INET);

	/* The same port twice: refused, and the message says where and why. */
	snprintf(again, sizeof again, "127.0.0.1:%u", listener_port(fd));
	fd2 = net_listen(again, 16, &err);
	assert_int_equal(fd2, -1);
	assert_non_null(err);
	assert_non_null(strstr(err, again));
	assert_non_null(strstr(err, strerror(EADDRINUSE)));
	free(err);
	close(fd);
}

static void test_listen_ipv6(void **state)
{
	char *err = NULL;
	char again[64];
	int fd, fd2;

	(void)state;
	fd = net_listen("[::1]:0", 16, &err);
	if (fd < 0) {
		/* A container without IPv6 loopback: nothing to test. */
		int none = err != NULL && (strstr(err, strerror(EAFNOSUPPORT)) != NULL ||
		                           strstr(err, strerror(EADDRNOTAVAIL)) != NULL);

		free(err);
		if (none)
			skip();
		fail();
	}
	check_listener(fd, AF_INET6);
	snprintf(again, sizeof again, "[::1]:%u", listener_port(fd));
	fd2 = net_listen(again, 16, &err);
	assert_int_equal(fd2, -1);
	assert_non_null(strstr(err, again));
	assert_non_null(strstr(err, strerror(EADDRINUSE)));
	free(err);

	/* IPV6_V6ONLY: IPv4 on the same port number is a separate socket. */
	snprintf(again, sizeof again, "127.0.0.1:%u", listener_port(fd));
	fd2 = net_listen(again, 16, &err);
	if (fd2 < 0) {
		print_error("%s\n", err);
		free(err);
		/* Only a port clash with some other process may excuse this. */
		skip();
	}
	close(fd2);
	close(fd);
}

static void test_listen_bad_address(void **state)
{
	char *err = NULL;

	(void)state;
	assert_int_equal(net_listen("localhost:25", 16, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "localhost:25"));
	assert_non_null(strstr(err, "numeric"));
	free(err);
}

/* ---- TLS files and context ---------------------------------------------- */

#define TEST_HOSTNAME "mail.test.example"

struct tls_fixture {
	char dir[64];
	char sub[96];
	char cert[128];
	char key[128];
};

static int tls_setup(void **state)
{
	struct tls_fixture *f = calloc(1, sizeof *f);

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-net-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->sub, sizeof f->sub, "%s/tls", f->dir);
	snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->sub);
	snprintf(f->key, sizeof f->key, "%s/key.pem", f->sub);
	*state = f;
	return 0;
}

static int tls_teardown(void **state)
{
	struct tls_fixture *f = *state;
	char path[160];

	unlink(f->cert);
	unlink(f->key);
	snprintf(path, sizeof path, "%s/other-cert.pem", f->sub);
	unlink(path);
	snprintf(path, sizeof path, "%s/other-key.pem", f->sub);
	unlink(path);
	rmdir(f->sub);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_tls_ensure_cert(void **state)
{
	struct tls_fixture *f = *state;
	struct stat st_cert, st_key, st_dir, again;
	char *err = NULL;
	X509 *x;
	FILE *fp;
	EVP_PKEY *pub;
	BIGNUM *serial;
	int days = 0, secs = 0;

	assert_int_equal(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err), 1);
	assert_int_equal(stat(f->sub, &st_dir), 0);
	assert_int_equal(st_dir.st_mode & 07777, 0700);
	assert_int_equal(stat(f->key, &st_key), 0);
	assert_int_equal(st_key.st_mode & 07777, 0600);
	assert_int_equal(stat(f->cert, &st_cert), 0);
	assert_int_equal(st_cert.st_mode & 07777, 0644);

	/* Second call: nothing to do, nothing touched. */
	assert_int_equal(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err), 0);
	assert_int_equal(stat(f->key, &again), 0);
	assert_int_equal(again.st_ino, st_key.st_ino);
	assert_int_equal(again.st_mtim.tv_nsec, st_key.st_mtim.tv_nsec);
	assert_int_equal(stat(f->cert, &again), 0);
	assert_int_equal(again.st_ino, st_cert.st_ino);
	assert_int_equal(again.st_size, st_cert.st_size);

	/* What is inside the certificate. */
	fp = fopen(f->cert, "r");
	assert_non_null(fp);
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);
	assert_int_equal(
	    X509_check_host(x, TEST_HOSTNAME, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
	assert_int_equal(X509_check_host(x, "other.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ca(x), 0);
	assert_true(X509_get_extension_flags(x) & EXFLAG_BCONS);
	assert_int_equal(X509_NAME_get_index_by_NID(X509_get_subject_name(x), NID_commonName, -1),
	                 0);
	pub = X509_get0_pubkey(x);
	assert_non_null(pub);
	assert_true(EVP_PKEY_is_a(pub, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(pub), 256);
	assert_int_equal(X509_verify(x, pub), 1);
	serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	assert_non_null(serial);
	assert_false(BN_is_negative(serial));
	assert_true(BN_num_bits(serial) > 64);
	BN_free(serial);
	assert_int_equal(
	    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	assert_true(days >= 3650 && days <= 3653);
	X509_free(x);
}

/* One of the pair missing: both are made afresh, and they match. */
static void test_tls_ensure_cert_half_missing(void **state)
{
	struct tls_fixture *f = *state;
	struct stat st;
	char *err = NULL;
	SSL_CTX *ctx;

	assert_true(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err) >= 0);
	assert_int_equal(unlink(f->key), 0);
	assert_int_equal(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err), 1);
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	ctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(ctx);
	SSL_CTX_free(ctx);

	assert_int_equal(unlink(f->cert), 0);
	assert_int_equal(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err), 1);
	ctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(ctx);
	SSL_CTX_free(ctx);
}

static void test_tls_ensure_cert_bad_hostname(void **state)
{
	struct tls_fixture *f = *state;
	char path[160];
	char *err = NULL;

	snprintf(path, sizeof path, "%s/other-cert.pem", f->sub);
	assert_int_equal(net_tls_ensure_cert(path, f->key, "bad,name\nX", &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "not a DNS name"));
	free(err);
}

static void test_tls_server_ctx(void **state)
{
	struct tls_fixture *f = *state;
	char other_cert[160], other_key[160];
	char *err = NULL;
	SSL_CTX *ctx;

	assert_true(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err) >= 0);
	ctx = net_tls_server_ctx(f->cert, f->key, &err);
	if (ctx == NULL)
		print_error("%s\n", err);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	assert_true(SSL_CTX_get_mode(ctx) & SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_free(ctx);

	/* A key that is not the certificate's. */
	snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", f->sub);
	snprintf(other_key, sizeof other_key, "%s/other-key.pem", f->sub);
	assert_int_equal(net_tls_ensure_cert(other_cert, other_key, TEST_HOSTNAME, &err), 1);
	assert_null(net_tls_server_ctx(f->cert, other_key, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "does not match"));
	free(err);

	/* A missing file names the file. */
	assert_null(net_tls_server_ctx("/nonexistent/cert.pem", f->key, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent/cert.pem"));
	free(err);
	assert_int_equal(ERR_peek_error(), 0);
}

/* ---- net_conn: plain ---------------------------------------------------- */

static void make_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK), 0);
	assert_int_equal(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK), 0);
}

static void test_conn_plain(void **state)
{
	struct net_conn c = {.fd = -1};
	char buf[64];
	size_t n;
	int sv[2];

	(void)state;
	make_pair(sv);
	c.fd = sv[0];
	assert_null(net_conn_tls_version(&c));
	assert_null(net_conn_tls_cipher(&c, NULL));

	assert_int_equal(net_conn_read(&c, buf, sizeof buf, &n), NET_IO_WANT_READ);
	assert_int_equal(net_conn_write(&c, "220 hi\r\n", 8, &n), NET_IO_OK);
	assert_int_equal(n, 8);
	assert_int_equal(read(sv[1], buf, sizeof buf), 8);
	assert_int_equal(write(sv[1], "QUIT\r\n", 6), 6);
	assert_int_equal(net_conn_read(&c, buf, sizeof buf, &n), NET_IO_OK);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "QUIT\r\n", 6);

	/* Fill the socket buffer: WANT_WRITE, never a blocking call. */
	{
		static char big[65536];
		enum net_io io;

		while ((io = net_conn_write(&c, big, sizeof big, &n)) == NET_IO_OK)
			;
		assert_int_equal(io, NET_IO_WANT_WRITE);
	}

	/* Peer gone with our bytes unread: the kernel reports a reset. */
	close(sv[1]);
	assert_int_equal(net_conn_read(&c, buf, sizeof buf, &n), NET_IO_ERROR);
	net_conn_close(&c);
	assert_int_equal(c.fd, -1);
	net_conn_close(&c); /* twice is harmless */

	/* Peer closed cleanly: EOF on read; a write is an error, not SIGPIPE
	 * (this test process would die of it). */
	make_pair(sv);
	c.fd = sv[0];
	close(sv[1]);
	assert_int_equal(net_conn_read(&c, buf, sizeof buf, &n), NET_IO_EOF);
	assert_int_equal(net_conn_write(&c, "x", 1, &n), NET_IO_ERROR);
	net_conn_close(&c);
}

/* ---- net_conn: TLS ------------------------------------------------------ */

#define REQ "EHLO client.example\r\n"
#define RESP_LEN (256 * 1024) /* far beyond one socket buffer: WANT_WRITE happens */

struct tls_run {
	struct net_conn server;
	SSL *client;
	int client_fd;
	/* server progress */
	int s_phase;
	char s_req[64];
	size_t s_req_len;
	size_t s_sent;
	short s_events;
	/* client progress */
	int c_phase;
	size_t c_sent;
	size_t c_got;
	short c_events;
	char *resp;
	int stop; /* both sides stop at this phase */
};

static short want_events(enum net_io io)
{
	if (io == NET_IO_WANT_READ)
		return POLLIN;
	if (io == NET_IO_WANT_WRITE)
		return POLLOUT;
	fail_msg("unexpected net_io %d", (int)io);
	return 0;
}

/* Server: handshake, read REQ, write RESP, read EOF (client close_notify). */
static void server_step(struct tls_run *r)
{
	enum net_io io;
	size_t n;
	char buf[4096];

	for (;;) {
		if (r->s_phase >= r->stop) {
			r->s_events = 0;
			return;
		}
		switch (r->s_phase) {
		case 0:
			io = net_conn_handshake(&r->server);
			if (io != NET_IO_OK) {
				r->s_events = want_events(io);
				return;
			}
			r->s_phase = 1;
			break;
		case 1:
			io = net_conn_read(&r->server, r->s_req + r->s_req_len,
			                   sizeof r->s_req - r->s_req_len, &n);
			if (io != NET_IO_OK) {
				r->s_events = want_events(io);
				return;
			}
			r->s_req_len += n;
			if (r->s_req_len >= strlen(REQ))
				r->s_phase = 2;
			break;
		case 2:
			io = net_conn_write(&r->server, r->resp + r->s_sent, RESP_LEN - r->s_sent,
			                    &n);
			if (io != NET_IO_OK) {
				r->s_events = want_events(io);
				return;
			}
			r->s_sent += n;
			if (r->s_sent == RESP_LEN)
				r->s_phase = 3;
			break;
		case 3:
			io = net_conn_read(&r->server, buf, sizeof buf, &n);
			if (io == NET_IO_EOF) {
				r->s_phase = 4;
				r->s_events = 0;
				return;
			}
			assert_int_not_equal(io, NET_IO_OK);
			r->s_events = want_events(io);
			return;
		default:
			r->s_events = 0;
			return;
		}
	}
}

static short ssl_want(SSL *ssl, int ret)
{
	int err = SSL_get_error(ssl, ret);

	if (err == SSL_ERROR_WANT_READ)
		return POLLIN;
	if (err == SSL_ERROR_WANT_WRITE)
		return POLLOUT;
	ERR_print_errors_fp(stderr);
	fail_msg("client ssl error %d", err);
	return 0;
}

/* Client: connect, write REQ, read RESP, send close_notify. */
static void client_step(struct tls_run *r)
{
	char buf[8192];
	size_t n;
	int ret;

	for (;;) {
		if (r->c_phase >= r->stop) {
			r->c_events = 0;
			return;
		}
		switch (r->c_phase) {
		case 0:
			ret = SSL_connect(r->client);
			if (ret != 1) {
				r->c_events = ssl_want(r->client, ret);
				return;
			}
			r->c_phase = 1;
			break;
		case 1:
			ret = SSL_write_ex(r->client, REQ + r->c_sent, strlen(REQ) - r->c_sent, &n);
			if (ret != 1) {
				r->c_events = ssl_want(r->client, ret);
				return;
			}
			r->c_sent += n;
			if (r->c_sent == strlen(REQ))
				r->c_phase = 2;
			break;
		case 2:
			ret = SSL_read_ex(r->client, buf, sizeof buf, &n);
			if (ret != 1) {
				r->c_events = ssl_want(r->client, ret);
				return;
			}
			assert_true(r->c_got + n <= RESP_LEN);
			assert_memory_equal(buf, r->resp + r->c_got, n);
			r->c_got += n;
			if (r->c_got == RESP_LEN)
				r->c_phase = 3;
			break;
		case 3:
			ret = SSL_shutdown(r->client);
			if (ret < 0) {
				r->c_events = ssl_want(r->client, ret);
				return;
			}
			r->c_phase = 4;
			break;
		default:
			r->c_events = 0;
			return;
		}
	}
}

/* Drive both sides until both reach phase stop. */
static void tls_run_until(struct tls_run *r, int stop)
{
	int rounds = 0;

	r->stop = stop;
	r->s_events = r->c_events = POLLOUT;
	for (;;) {
		struct pollfd pfd[2] = {{.fd = r->server.fd}, {.fd = r->client_fd}};

		client_step(r);
		server_step(r);
		if (r->s_phase >= stop && r->c_phase >= stop)
			return;
		pfd[0].events = r->s_events;
		pfd[1].events = r->c_events;
		assert_true(poll(pfd, 2, 5000) > 0);
		assert_true(++rounds < 100000);
	}
}

static SSL_CTX *client_ctx(const char *ca_file)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(cctx);
	assert_int_equal(SSL_CTX_load_verify_locations(cctx, ca_file, NULL), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	return cctx;
}

static void test_conn_tls_exchange(void **state)
{
	struct tls_fixture *f = *state;
	struct tls_run r;
	char *err = NULL;
	SSL_CTX *sctx, *cctx;
	const char *cipher;
	int sv[2], bits = 0;
	size_t i;

	memset(&r, 0, sizeof r);
	assert_true(net_tls_ensure_cert(f->cert, f->key, TEST_HOSTNAME, &err) >= 0);
	sctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(sctx);
	cctx = client_ctx(f->cert);

	r.resp = malloc(RESP_LEN);
	assert_non_null(r.resp);
	for (i = 0; i < RESP_LEN; i++)
		r.resp[i] = (char)('a' + i % 26);

	make_pair(sv);
	r.server.fd = sv[0];
	r.client_fd = sv[1];
	assert_int_equal(net_conn_tls_start(&r.server, sctx), 0);
	assert_int_equal(r.server.handshaking, 1);
	assert_null(net_conn_tls_version(&r.server));
	assert_int_equal(net_conn_tls_start(&r.server, sctx), -1); /* not twice */

	r.client = SSL_new(cctx);
	assert_non_null(r.client);
	SSL_set_fd(r.client, r.client_fd);
	SSL_set_tlsext_host_name(r.client, TEST_HOSTNAME);
	assert_int_equal(SSL_set1_host(r.client, TEST_HOSTNAME), 1);

	tls_run_until(&r, 4);

	assert_int_equal(SSL_get_verify_result(r.client), X509_V_OK);
	assert_int_equal(r.server.handshaking, 0);
	assert_string_equal(net_conn_tls_version(&r.server), "TLSv1.3");
	cipher = net_conn_tls_cipher(&r.server, &bits);
	assert_non_null(cipher);
	assert_non_null(strstr(cipher, "TLS_"));
	assert_true(bits >= 128);
	assert_memory_equal(r.s_req, REQ, strlen(REQ));
	assert_int_equal(r.c_got, RESP_LEN);

	net_conn_close(&r.server);
	assert_null(r.server.ssl);
	assert_int_equal(r.server.fd, -1);
	/* The server's close_notify reached the client. */
	{
		char b[16];
		size_t n;

		assert_int_equal(SSL_read_ex(r.client, b, sizeof b, &n), 0);
		assert_int_equal(SSL_get_error(r.client, 0), SSL_ERROR_ZERO_RETURN);
	}
	SSL_free(r.client);
	close(r.client_fd);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	free(r.resp);
}

/* TLS 1.2 still works (the floor), and the accessors say so. */
static void test_conn_tls12(void **state)
{
	struct tls_fixture *f = *state;
	struct tls_run r;
	char *err = NULL;
	SSL_CTX *sctx, *cctx;
	int sv[2], bits = 0;

	memset(&r, 0, sizeof r);
	sctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(sctx);
	cctx = client_ctx(f->cert);
	assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
	make_pair(sv);
	r.server.fd = sv[0];
	assert_int_equal(net_conn_tls_start(&r.server, sctx), 0);
	r.client = SSL_new(cctx);
	SSL_set_fd(r.client, sv[1]);
	r.client_fd = sv[1];
	tls_run_until(&r, 1);
	assert_string_equal(net_conn_tls_version(&r.server), "TLSv1.2");
	assert_non_null(net_conn_tls_cipher(&r.server, &bits));
	assert_true(bits >= 128);
	net_conn_close(&r.server);
	SSL_free(r.client);
	close(sv[1]);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* A plaintext client on a TLS port: the handshake fails cleanly, the error
 * queue is left empty, and close does not write into the dead session. */
static void test_conn_tls_garbage(void **state)
{
	struct tls_fixture *f = *state;
	struct net_conn c = {.fd = -1};
	char *err = NULL;
	SSL_CTX *sctx;
	enum net_io io;
	int sv[2];

	sctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(sctx);
	make_pair(sv);
	c.fd = sv[0];
	assert_int_equal(net_conn_tls_start(&c, sctx), 0);
	assert_int_equal(net_conn_handshake(&c), NET_IO_WANT_READ);
	assert_int_equal(write(sv[1], "EHLO plaintext.example\r\n", 24), 24);
	io = net_conn_handshake(&c);
	assert_int_equal(io, NET_IO_ERROR);
	assert_int_equal(ERR_peek_error(), 0);
	assert_null(net_conn_tls_version(&c));
	close(sv[1]); /* a close_notify now would be EPIPE/SIGPIPE */
	net_conn_close(&c);
	SSL_CTX_free(sctx);
}

/* The peer vanishes mid-session without close_notify: read is an ERROR
 * (OpenSSL 3 reports the unexpected EOF), and close writes nothing. */
static void test_conn_tls_peer_vanishes(void **state)
{
	struct tls_fixture *f = *state;
	struct tls_run r;
	char *err = NULL;
	SSL_CTX *sctx, *cctx;
	char buf[64];
	size_t n;
	int sv[2];

	memset(&r, 0, sizeof r);
	sctx = net_tls_server_ctx(f->cert, f->key, &err);
	assert_non_null(sctx);
	cctx = client_ctx(f->cert);
	make_pair(sv);
	r.server.fd = sv[0];
	assert_int_equal(net_conn_tls_start(&r.server, sctx), 0);
	r.client = SSL_new(cctx);
	SSL_set_fd(r.client, sv[1]);
	r.client_fd = sv[1];
	tls_run_until(&r, 1);
	SSL_free(r.client);
	close(sv[1]);

	/* Session tickets from the handshake may still be queued: drain. */
	{
		enum net_io io;

		while ((io = net_conn_read(&r.server, buf, sizeof buf, &n)) == NET_IO_OK)
			;
		assert_true(io == NET_IO_ERROR || io == NET_IO_EOF);
		assert_int_equal(ERR_peek_error(), 0);
	}
	net_conn_close(&r.server); /* would die of SIGPIPE if it wrote */
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_hostport_table),
	    cmocka_unit_test(test_parse_listen_addr_port0),
	    cmocka_unit_test(test_addr_str),
	    cmocka_unit_test(test_cidr_parse_format_table),
	    cmocka_unit_test(test_cidr_match_table),
	    cmocka_unit_test(test_listen_ipv4),
	    cmocka_unit_test(test_listen_ipv6),
	    cmocka_unit_test(test_listen_bad_address),
	    cmocka_unit_test(test_conn_plain),
	    cmocka_unit_test(test_tls_ensure_cert),
	    cmocka_unit_test(test_tls_ensure_cert_half_missing),
	    cmocka_unit_test(test_tls_ensure_cert_bad_hostname),
	    cmocka_unit_test(test_tls_server_ctx),
	    cmocka_unit_test(test_conn_tls_exchange),
	    cmocka_unit_test(test_conn_tls12),
	    cmocka_unit_test(test_conn_tls_garbage),
	    cmocka_unit_test(test_conn_tls_peer_vanishes),
	};

	/* The TLS tests share one temporary directory and certificate. */
	return cmocka_run_group_tests(tests, tls_setup, tls_teardown);
}
