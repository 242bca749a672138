/*
 * The control socket: a Unix stream socket (mode 0600) on which the sluice
 * CLI asks the running daemon for changes only the spool's owner may make.
 * One request line, one reply line:
 *   "queue-OP ID"      ->  "ok [TEXT]" | "error TEXT"
 *                          OP: delete, retry, hold, release, bounce
 *   "ping"             ->  "ok"
 * With delivery on, queue operations go to the delivery engine, so its
 * view of the queue and the spool never disagree; with delivery off they
 * change the spool directly (bounce and retry then have nothing to do).
 * Requests are tiny and local, so they are served inline with a short
 * receive timeout rather than through a state machine.
 */
#include "cmd/daemon.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int control_open(struct sluiced *d, char **err_r)
{
	struct sockaddr_un sun;
	struct buf e = BUF_INIT;
	mode_t old;
	int fd;

	d->control_fd = -1;
	if (d->cfg.control_socket == NULL)
		return 0;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, d->cfg.control_socket, sizeof sun.sun_path) >=
	    sizeof sun.sun_path) {
		*err_r = strdup("control_socket path too long");
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	unlink(d->cfg.control_socket);
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(fd, 16) < 0)
		goto fail;
	d->control_fd = fd;
	return 0;
fail:
	buf_printf(&e, "%s: %s", d->cfg.control_socket, strerror(errno));
	*err_r = buf_export(&e, NULL);
	if (fd >= 0)
		close(fd);
	return -1;
}

void control_close(struct sluiced *d)
{
	if (d->control_ev)
		event_free(d->control_ev);
	d->control_ev = NULL;
	if (d->control_fd >= 0) {
		close(d->control_fd);
		unlink(d->cfg.control_socket);
	}
	d->control_fd = -1;
}

static void control_reply(int fd, const char *fmt, ...) UTIL_PRINTF(2, 3);

static void control_reply(int fd, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	buf_append_str(&b, "\n");
	if (b.data && send(fd, b.data, b.len, MSG_NOSIGNAL) < 0)
		log_warn("control reply failed error=\"%s\"", strerror(errno));
	buf_free(&b);
}

static void control_request(struct sluiced *d, int fd, char *line)
{
	if (strcmp(line, "ping") == 0) {
		control_reply(fd, "ok");
	} else if (strncmp(line, "queue-", 6) == 0 && strchr(line, ' ') != NULL) {
		char op[16], text[256];
		const char *sp = strchr(line, ' '), *id = sp + 1;
		size_t oplen = (size_t)(sp - line - 6);
		struct spool_message m;
		int r;

		if (oplen == 0 || oplen >= sizeof op) {
			control_reply(fd, "error unknown request");
			return;
		}
		memcpy(op, line + 6, oplen);
		op[oplen] = '\0';
		if (strcmp(op, "delete") && strcmp(op, "retry") && strcmp(op, "hold") &&
		    strcmp(op, "release") && strcmp(op, "bounce")) {
			control_reply(fd, "error unknown request");
			return;
		}
		if (d->deliver != NULL) {
			r = deliver_engine_command(d->deliver, op, id, text, sizeof text);
			if (r == 0)
				log_info("queue=%s %s by=operator", id, op);
			control_reply(fd, r == 0 ? "ok %s" : "error %s", text);
			return;
		}
		if ((r = spool_load(d->spool, id, &m)) == 1) {
			control_reply(fd, "error no message %s in the queue", id);
			return;
		}
		if (r == 0)
			spool_message_free(&m);
		if (strcmp(op, "retry") == 0 || strcmp(op, "bounce") == 0) {
			control_reply(fd, "error delivery is off in this sluiced");
			return;
		}
		if (r < 0 || (strcmp(op, "delete") == 0 ? spool_delete(d->spool, id)
							 : spool_set_held(d->spool, id, op[0] == 'h')) < 0) {
			control_reply(fd, "error %s %s: %s", op, id, strerror(errno));
			return;
		}
		log_info("queue=%s %s by=operator", id, op);
		control_reply(fd, "ok");
	} else {
		control_reply(fd, "error unknown request");
	}
}

void control_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct sluiced *d = arg;
	struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
	char line[256];
	size_t len = 0;
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	while (len < sizeof line - 1) {
		ssize_t n = recv(fd, line + len, sizeof line - 1 - len, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = '\0';
	char *nl = strchr(line, '\n');
	if (nl == NULL) {
		control_reply(fd, "error incomplete request");
	} else {
		*nl = '\0';
		control_request(d, fd, line);
	}
	close(fd);
}
