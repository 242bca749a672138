/*
 * conn: one non-blocking connection, plain or TLS, behind one read/write
 * contract (enum net_io), so the session code above never sees OpenSSL.
 *
 * Reads and writes report what to wait for: with TLS a read may need the
 * socket to be writable (a handshake or key update message to send) and a
 * write readable; callers must honour the returned WANT_* and retry the
 * same call with the same bytes.  Partial TLS writes are enabled and the
 * write buffer may move between retries (a growing struct buf).
 *
 * Before a STARTTLS handshake the caller must discard any plaintext it had
 * already read past the STARTTLS line (CVE-2011-0411 command injection):
 * this layer cannot know where the command ended.
 *
 * Client connections (net_conn_tls_start_client() in tls.c) differ only in
 * how they start: SSL_set_connect_state instead of accept; the handshake,
 * reads, writes and close here serve both.
 *
 * OpenSSL's socket BIO writes with write(2), not send(MSG_NOSIGNAL): the
 * daemon must ignore SIGPIPE, or a TLS peer that vanishes kills it.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "net/net.h"
#include "util/util.h"

/* Log the OpenSSL error queue at debug and empty it: a failed session must
 * not leave errors behind that the next SSL call on this thread would
 * misread as its own. */
static void net_conn_log_ssl(const struct net_conn *c, const char *op, int ssl_err)
{
	unsigned long e;
	char text[256];
	int any = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, text, sizeof text);
		log_debug("fd=%d tls %s failed ssl_error=%d reason=\"%s\"", c->fd, op, ssl_err,
		          text);
		any = 1;
	}
	if (!any)
		log_debug("fd=%d tls %s failed ssl_error=%d errno=\"%s\"", c->fd, op, ssl_err,
		          errno != 0 ? strerror(errno) : "peer closed without close_notify");
}

static enum net_io net_conn_ssl_result(struct net_conn *c, const char *op, int ret)
{
	int err = SSL_get_error(c->ssl, ret);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return NET_IO_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return NET_IO_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return NET_IO_EOF;
	default:
		/* SSL_ERROR_SYSCALL, SSL_ERROR_SSL and anything unexpected.
		 * Quiet shutdown marks the session broken: close must not try
		 * to write a close_notify into a dead or confused peer. */
		net_conn_log_ssl(c, op, err);
		SSL_set_quiet_shutdown(c->ssl, 1);
		return NET_IO_ERROR;
	}
}

int net_conn_tls_start(struct net_conn *c, SSL_CTX *ctx)
{
	if (c->ssl != NULL || c->fd < 0)
		return -1;
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL)
		goto fail;
	SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_set_fd(c->ssl, c->fd) != 1)
		goto fail;
	SSL_set_accept_state(c->ssl);
	c->handshaking = 1;
	c->tls_mode = 0;
	return 0;

fail:
	net_conn_log_ssl(c, "start", 0);
	SSL_free(c->ssl);
	c->ssl = NULL;
	return -1;
}

enum net_io net_conn_handshake(struct net_conn *c)
{
	int ret;

	if (c->ssl == NULL)
		return NET_IO_ERROR;
	if (!c->handshaking)
		return NET_IO_OK;
	ERR_clear_error();
	errno = 0;
	ret = SSL_do_handshake(c->ssl);
	if (ret == 1) {
		c->handshaking = 0;
		return NET_IO_OK;
	}
	return net_conn_ssl_result(c, "handshake", ret);
}

enum net_io net_conn_read(struct net_conn *c, char *buf, size_t size, size_t *n_r)
{
	*n_r = 0;
	if (size == 0)
		return NET_IO_OK;
	if (c->ssl != NULL) {
		enum net_io io;
		int ret;

		if (c->handshaking && (io = net_conn_handshake(c)) != NET_IO_OK)
			return io;
		ERR_clear_error();
		errno = 0;
		ret = SSL_read_ex(c->ssl, buf, size, n_r);
		if (ret == 1)
			return NET_IO_OK;
		*n_r = 0;
		return net_conn_ssl_result(c, "read", ret);
	}
	for (;;) {
		ssize_t n = read(c->fd, buf, size);

		if (n > 0) {
			*n_r = (size_t)n;
			return NET_IO_OK;
		}
		if (n == 0)
			return NET_IO_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return NET_IO_WANT_READ;
		log_debug("fd=%d read failed errno=\"%s\"", c->fd, strerror(errno));
		return NET_IO_ERROR;
	}
}

enum net_io net_conn_write(struct net_conn *c, const char *buf, size_t len, size_t *n_r)
{
	*n_r = 0;
	if (len == 0)
		return NET_IO_OK;
	if (c->ssl != NULL) {
		enum net_io io;
		int ret;

		if (c->handshaking && (io = net_conn_handshake(c)) != NET_IO_OK)
			return io;
		ERR_clear_error();
		errno = 0;
		ret = SSL_write_ex(c->ssl, buf, len, n_r);
		if (ret == 1)
			return NET_IO_OK;
		*n_r = 0;
		return net_conn_ssl_result(c, "write", ret);
	}
	for (;;) {
		ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

		if (n >= 0) {
			*n_r = (size_t)n;
			return NET_IO_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return NET_IO_WANT_WRITE;
		log_debug("fd=%d write failed errno=\"%s\"", c->fd, strerror(errno));
		return NET_IO_ERROR;
	}
}

void net_conn_close(struct net_conn *c)
{
	if (c->ssl != NULL) {
		/* One non-blocking attempt at close_notify; we do not wait for
		 * the peer's.  Skipped mid-handshake, where it means nothing. */
		if (!c->handshaking && SSL_is_init_finished(c->ssl) &&
		    !SSL_get_quiet_shutdown(c->ssl)) {
			ERR_clear_error();
			(void)SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->handshaking = 0;
	c->tls_mode = 0;
}

const char *net_conn_tls_version(const struct net_conn *c)
{
	if (c->ssl == NULL || !SSL_is_init_finished(c->ssl))
		return NULL;
	return SSL_get_version(c->ssl);
}

const char *net_conn_tls_cipher(const struct net_conn *c, int *bits_r)
{
	const SSL_CIPHER *cipher;

	if (bits_r != NULL)
		*bits_r = 0;
	if (c->ssl == NULL || !SSL_is_init_finished(c->ssl))
		return NULL;
	cipher = SSL_get_current_cipher(c->ssl);
	if (cipher == NULL)
		return NULL;
	if (bits_r != NULL)
		*bits_r = SSL_CIPHER_get_bits(cipher, NULL);
	return SSL_CIPHER_get_name(cipher);
}
