/*
 * net: listening sockets, addresses and CIDR matching, TLS contexts
 * (OpenSSL), and a non-blocking connection that reads and writes either
 * plain or over TLS.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

/* ---- addresses ---------------------------------------------------------- */

#define NET_ADDR_STRLEN 64 /* enough for any IPv6 text form */

/* "127.0.0.1:587", "[::1]:587", "*:587" (all IPv4), "[::]:587".
 * 0 ok, -1 with *why_r. */
int net_parse_hostport(const char *s, struct sockaddr_storage *ss_r, socklen_t *len_r,
		       const char **why_r);
/* As net_parse_hostport, but port 0 (the kernel picks a free port) is
 * allowed too: what net_listen parses, for tests and ephemeral listeners. */
int net_parse_listen_addr(const char *s, struct sockaddr_storage *ss_r, socklen_t *len_r,
			  const char **why_r);
/* Numeric text form without port; IPv4-mapped IPv6 is shown as IPv4. */
void net_addr_str(const struct sockaddr *sa, char out[NET_ADDR_STRLEN]);

struct net_cidr {
	int family;           /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* "10.0.0.0/8", "192.0.2.1" (/32), "2001:db8::/32".  Host bits set are an
 * error.  0 ok, -1 with *why_r. */
int net_cidr_parse(const char *s, struct net_cidr *c_r, const char **why_r);
void net_cidr_format(const struct net_cidr *c, char *out, size_t size);
/* 1 if sa (IPv4, IPv6 or IPv4-mapped IPv6) lies inside c. */
int net_cidr_match(const struct net_cidr *c, const struct sockaddr *sa);

/* Bind and listen (non-blocking, SO_REUSEADDR, IPV6_V6ONLY for IPv6).
 * Returns the fd or -1 with *err_r malloc'd. */
int net_listen(const char *hostport, int backlog, char **err_r);

/* ---- TLS ---------------------------------------------------------------- */

/* When cert or key is missing, make a self-signed certificate (EC P-256,
 * CN = hostname, SAN DNS:hostname, 10 years) and write both (key 0600).
 * 0 ok, 1 made new ones, -1 error with *err_r. */
int net_tls_ensure_cert(const char *cert_path, const char *key_path, const char *hostname,
			char **err_r);
/* Server context: TLS 1.2 and newer, no compression, no renegotiation,
 * server cipher preference.  NULL with *err_r on error. */
SSL_CTX *net_tls_server_ctx(const char *cert_path, const char *key_path, char **err_r);

/* ---- a connection ------------------------------------------------------- */

struct net_conn {
	int fd;
	SSL *ssl;                 /* NULL while plain */
	int handshaking;
	int tls_mode;             /* enum net_tls_mode of a client; 0 server side */
};

enum net_io {
	NET_IO_OK = 0,      /* *n_r bytes moved (> 0) */
	NET_IO_WANT_READ,   /* retry when readable */
	NET_IO_WANT_WRITE,  /* retry when writable */
	NET_IO_EOF,         /* peer closed */
	NET_IO_ERROR,
};

/* Start server-side TLS on conn (implicit TLS or after STARTTLS). */
int net_conn_tls_start(struct net_conn *c, SSL_CTX *ctx);
/* Drive the handshake: NET_IO_OK when done. */
enum net_io net_conn_handshake(struct net_conn *c);
enum net_io net_conn_read(struct net_conn *c, char *buf, size_t size, size_t *n_r);
enum net_io net_conn_write(struct net_conn *c, const char *buf, size_t len, size_t *n_r);
/* Close (TLS close_notify best effort) and free the SSL. */
void net_conn_close(struct net_conn *c);
/* "TLSv1.3" and the cipher name, or NULL while plain. */
const char *net_conn_tls_version(const struct net_conn *c);
const char *net_conn_tls_cipher(const struct net_conn *c, int *bits_r);

/* ---- TLS client (outbound delivery) ------------------------------------- */

/* How much a delivery connection proves about its peer.  The handshake and
 * net_conn_read/write work the same in every mode; what differs is what
 * net_conn_tls_verified() can say afterwards:
 *   OPPORTUNISTIC  encrypt whatever the certificate (RFC 7435); the chain
 *                  and name are still checked, for the log only.
 *   VERIFY         PKIX: the chain ends at a trust anchor of the context
 *                  and a name matches (an upstream ESP, MTA-STS).
 *   DANE           RFC 7672: the certificate matches a usable TLSA record
 *                  of the TLSA base domain (the servername).
 * In VERIFY and DANE a failed verification fails the handshake
 * (NET_IO_ERROR, fail closed: a caller cannot send over it by mistake);
 * net_conn_tls_verified() then tells why.  DANE with no usable record
 * (RFC 7672 2.2: all of PKIX-TA(0)/PKIX-EE(1), unknown parameters, bad
 * digests) falls back to unauthenticated TLS, as the RFC requires, and
 * reports "not verified". */
enum net_tls_mode {
	NET_TLS_OPPORTUNISTIC = 1,
	NET_TLS_VERIFY,
	NET_TLS_DANE,
};

/* TLSA certificate usages, selectors, matching types (RFC 6698 7.2-7.4) */
#define NET_TLSA_PKIX_TA 0
#define NET_TLSA_PKIX_EE 1
#define NET_TLSA_DANE_TA 2
#define NET_TLSA_DANE_EE 3
#define NET_TLSA_SEL_CERT 0
#define NET_TLSA_SEL_SPKI 1
#define NET_TLSA_MTYPE_FULL 0
#define NET_TLSA_MTYPE_SHA256 1
#define NET_TLSA_MTYPE_SHA512 2

struct net_tls_tlsa {
	uint8_t usage, selector, mtype;
	const unsigned char *data; /* the certificate association data */
	size_t len;
};

struct net_tls_client_params {
	enum net_tls_mode mode;
	/* SNI; the reference name of VERIFY; the TLSA base domain of DANE
	 * (the MX host name after CNAME expansion); a root dot at the end
	 * is dropped.  Required. */
	const char *servername;
	/* More names a VERIFY or DANE-TA certificate may carry instead (the
	 * next-hop domain, an ESP's other names).  Wildcards only as a whole
	 * leftmost label. */
	const char *const *names;
	size_t nnames;
	/* DANE only: the TLSA RRset, DNSSEC-validated by the caller. */
	const struct net_tls_tlsa *tlsa;
	size_t ntlsa;
};

struct net_tls_client_config {
	const char *ca_file; /* PEM trust anchors for VERIFY, or NULL */
	const char *ca_path; /* OpenSSL hashed folder, or NULL */
	int system_ca;       /* also trust OpenSSL's default store */
};

/* Client context: TLS 1.2 and newer, no compression, no renegotiation,
 * DANE enabled.  Servers that only speak TLS 1.0/1.1 fail the handshake;
 * the caller may then retry without TLS when its policy allows.  One
 * context serves every mode.  NULL with *err_r (malloc'd) on error. */
SSL_CTX *net_tls_client_ctx_new(const struct net_tls_client_config *cfg, char **err_r);

/* Start client-side TLS on conn (after the server's 220 to STARTTLS):
 * SNI, names and TLSA records as p says; p and what it points to may be
 * freed once this returns.  Drive it with net_conn_handshake().  0 ok,
 * -1 with *why_r (static text). */
int net_conn_tls_start_client(struct net_conn *c, SSL_CTX *ctx,
			      const struct net_tls_client_params *p, const char **why_r);

/* After the handshake: 1 if the peer was verified (DANE or PKIX, or an
 * opportunistic peer whose chain and name happen to verify), 0 if not.
 * *why_r (static text, may be NULL): "DANE-EE", "DANE-TA", "PKIX" when
 * verified, else the reason ("certificate has expired", "no usable TLSA
 * records", ...).  Also meaningful after a failed handshake. */
int net_conn_tls_verified(const struct net_conn *c, const char **why_r);

/* Which TLSA record authenticated a DANE-verified peer; depth 0 is the
 * server's own certificate.  data points into the SSL (valid until
 * close).  0 ok, -1 not DANE-verified. */
struct net_tls_dane_match {
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t len;
	int depth;
};
int net_conn_tls_dane_match(const struct net_conn *c, struct net_tls_dane_match *m_r);

/* ---- DNS resolver (libunbound) -------------------------------------------
 *
 * Asynchronous lookups, DNSSEC-validated when configured, on the caller's
 * libevent loop.  The contract:
 * - one resolver per event loop; every call on that loop's thread;
 * - net_resolve() returns 0 and the callback then runs exactly once, later,
 *   from the loop (never inside net_resolve()), unless the query is
 *   cancelled or the resolver freed first; or it returns -1 (a name or
 *   type it does not take, resolver failure) and the callback never runs;
 * - the answer and everything it points to live only during the callback:
 *   copy what you keep;
 * - a callback may start, cancel, or free the resolver (pending queries'
 *   callbacks then never run).
 * Names, in and out, are text without the trailing dot ("." is the root),
 * of letters, digits, '-' and '_' only; answers give them in lower case. */

struct event_base;

#define NET_DNS_NAME_MAX 254           /* 253 characters and the NUL */
#define NET_RESOLVE_TIMEOUT_MS 15000u  /* per query, when the config says 0 */

enum net_dns_type {
	NET_DNS_A = 1,
	NET_DNS_MX = 15,
	NET_DNS_TXT = 16,
	NET_DNS_AAAA = 28,
	NET_DNS_TLSA = 52,
};

enum net_dns_status {
	NET_DNS_OK,       /* count records (plus skipped unusable ones) */
	NET_DNS_NODATA,   /* the name exists, without records of the type */
	NET_DNS_NXDOMAIN, /* the name does not exist */
	NET_DNS_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, network, malformed answer */
	NET_DNS_BOGUS,    /* DNSSEC validation failed: no data is given out */
};

struct net_dns_rr {
	union {
		struct in_addr a;
		struct in6_addr aaaa;
		struct {
			uint16_t preference;
			char exchange[NET_DNS_NAME_MAX]; /* "." for a null MX */
		} mx;
		struct {
			const char *text; /* the strings joined (RFC 7208 3.3), NUL-terminated */
			size_t len;       /* may hold NULs of its own */
		} txt;
		struct net_tls_tlsa tlsa;
	};
};

struct net_dns_answer {
	enum net_dns_status status;
	int secure;  /* validated: the records, or the NODATA/NXDOMAIN denial */
	int rrtype;
	char qname[NET_DNS_NAME_MAX];
	char canonname[NET_DNS_NAME_MAX]; /* after CNAMEs; qname when none */
	uint32_t ttl;
	const char *why; /* TEMPFAIL and BOGUS: for logs ("SERVFAIL", "timeout", ...) */
	const struct net_dns_rr *rrs;
	size_t count;
	/* records of the type left out as unusable: an MX exchange that is not
	 * a host name of the characters above */
	size_t skipped;
	void *mem; /* internal */
};

struct net_resolver_config {
	/* Forwarders, "127.0.0.1@5353, ::1": every query goes to them and
	 * only them.  NULL: the nameservers of /etc/resolv.conf. */
	const char *server;
	/* DS or DNSKEY records in zone file format.  Given: validate with it.
	 * NULL with dnssec set: the root anchor of dns-root-data
	 * (/usr/share/dns/root.key) or unbound-anchor. */
	const char *trust_anchor_file;
	int dnssec;          /* validate (implied by trust_anchor_file) */
	uint32_t timeout_ms; /* per query; 0: NET_RESOLVE_TIMEOUT_MS */
	/* More libunbound settings, "name: value" each, NULL-terminated, or
	 * NULL.  The tests need "local-zone: sluice.test. transparent":
	 * libunbound answers for .test itself (RFC 6761). */
	const char *const *options;
};

typedef void net_resolve_cb(void *ctx, const struct net_dns_answer *a);

/* NULL with *err_r (malloc'd) on a bad setting or anchor file. */
struct net_resolver *net_resolver_new(struct event_base *base,
				      const struct net_resolver_config *cfg, char **err_r);
void net_resolver_free(struct net_resolver **r);
/* Look up name's rrtype records (enum net_dns_type).  *query_id_r (may be
 * NULL) names the query for net_resolve_cancel(); never 0. */
int net_resolve(struct net_resolver *r, const char *name, int rrtype, net_resolve_cb *cb, void *ctx,
		uint64_t *query_id_r);
/* The callback will not run.  0, or -1 when the query has ended. */
int net_resolve_cancel(struct net_resolver *r, uint64_t query_id);
struct event_base *net_resolver_base(const struct net_resolver *r);
size_t net_resolver_pending(const struct net_resolver *r);

/* Pure helpers, apart from the resolver so they are tested and fuzzed on
 * their own.  Lower-case in into out; trailing dot dropped.  0, or -1 when
 * it is not a name of the characters above. */
int net_dns_name_normalize(const char *in, char out[NET_DNS_NAME_MAX]);
/* The rrtype records (class IN) of a DNS response's answer section into
 * a->rrs, a->count and a->skipped; free with net_dns_answer_clear().  0,
 * or -1 when the packet is malformed (nothing to clear then). */
int net_dns_parse_answer(const uint8_t *pkt, size_t len, int rrtype, struct net_dns_answer *a);
void net_dns_answer_clear(struct net_dns_answer *a);
/* "MX", or NULL for a type the resolver does not take. */
const char *net_dns_type_name(int rrtype);
const char *net_dns_status_name(enum net_dns_status s);

#endif
