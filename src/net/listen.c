/*
 * listen: bind and listen on one numeric address.
 *
 * The socket is non-blocking and close-on-exec from the start (no window
 * in which a forked scanner or resolver helper inherits it).  An IPv6
 * listener is IPv6-only: "[::]:587" and "*:587" are two listeners, so an
 * operator who binds only IPv6 does not silently get IPv4 too, and both can
 * be bound side by side on the same port.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"
#include "util/util.h"

static void net_listen_fail(char **err_r, const char *fmt, ...) UTIL_PRINTF(2, 3);

/* *err_r = malloc'd message; NULL if even that allocation fails. */
static void net_listen_fail(char **err_r, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&b, fmt, ap) < 0)
		buf_free(&b);
	va_end(ap);
	*err_r = buf_export(&b, NULL);
}

int net_listen(const char *hostport, int backlog, char **err_r)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *why;
	const char *step;
	int fd, on = 1, saved;

	if (net_parse_listen_addr(hostport, &ss, &sslen, &why) < 0) {
		net_listen_fail(err_r, "listen %s: %s", hostport != NULL ? hostport : "(null)",
		                why);
		return -1;
	}

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		step = "socket";
		goto fail_errno;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
		step = "setsockopt SO_REUSEADDR";
		goto fail_errno;
	}
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) {
		step = "setsockopt IPV6_V6ONLY";
		goto fail_errno;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
		step = "bind";
		goto fail_errno;
	}
	if (listen(fd, backlog) < 0) {
		step = "listen";
		goto fail_errno;
	}
	return fd;

fail_errno:
	saved = errno;
	if (fd >= 0)
		close(fd);
	net_listen_fail(err_r, "listen %s: %s: %s", hostport, step, strerror(saved));
	return -1;
}
