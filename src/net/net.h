/*
 * net: listening sockets, addresses and CIDR matching, TLS contexts
 * (OpenSSL), and a non-blocking connection that reads and writes either
 * plain or over TLS.
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stddef.h>
#include <stdint.h>
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

#endif
