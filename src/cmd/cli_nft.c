/*
 * The nft helper of the sluice CLI: libnftables with root's rights kept.
 *
 * As root, cli_state_prepare() becomes the owner of the store's folder
 * before the store is opened, and netlink then refuses to change (or
 * list) the ruleset.  A command that needs the kernel therefore calls
 * cli_nft_start() first: it forks a child while still root, which does
 * nothing but run libnftables for the parent over a socketpair (request:
 * an operation byte and a length-prefixed text; answer: a status and a
 * length-prefixed text, both bounded) and exits when the parent closes
 * its end.  Not root: libnftables runs in-process (in a network namespace
 * of one's own, say).
 */
#include "cmd/cli.h"
#include "egress/egress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define CLI_NFT_REQUEST_MAX (64u * 1024 * 1024) /* a rendered table, at most */

struct cli_nft {
	pid_t pid; /* 0: in-process */
	int fd;
};

static int cli_nft_write(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		/* a socket: a helper that died is an error here, not a SIGPIPE */
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int cli_nft_read(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = read(fd, c, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* One message: a 4-byte length and the bytes; *data_r malloc'd and
 * NUL-terminated. */
static int cli_nft_read_blob(int fd, char **data_r, uint32_t max)
{
	uint32_t len;
	char *d;

	*data_r = NULL;
	if (cli_nft_read(fd, &len, sizeof len) < 0 || len > max)
		return -1;
	if ((d = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (cli_nft_read(fd, d, len) < 0) {
		free(d);
		return -1;
	}
	d[len] = '\0';
	*data_r = d;
	return 0;
}

static int cli_nft_write_blob(int fd, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint32_t len = (uint32_t)n;

	if (n > UINT32_MAX)
		return -1;
	return cli_nft_write(fd, &len, sizeof len) < 0 || cli_nft_write(fd, s, n) < 0 ? -1 : 0;
}

/* libnftables for op: rc 0 / 1 (no table) / -1, *out_r the output or the
 * error text. */
static int cli_nft_local(int op, const char *text, char **out_r)
{
	char *err = NULL;
	int rc;

	*out_r = NULL;
	if (op == CLI_NFT_APPLY)
		rc = egress_nft_apply(text, &err);
	else if (op == CLI_NFT_JSON)
		rc = egress_nft_list(out_r, &err);
	else
		rc = egress_nft_list_text(out_r, &err);
	if (rc < 0) {
		free(*out_r);
		*out_r = err;
	} else {
		free(err);
	}
	return rc;
}

/* The child: answer requests until the parent closes its end. */
static void cli_nft_serve(int fd)
{
	char op, *text, *out;
	int32_t rc;

	for (;;) {
		if (cli_nft_read(fd, &op, 1) < 0)
			break;
		if (cli_nft_read_blob(fd, &text, CLI_NFT_REQUEST_MAX) < 0)
			break;
		rc = cli_nft_local(op, text, &out);
		free(text);
		if (cli_nft_write(fd, &rc, sizeof rc) < 0 || cli_nft_write_blob(fd, out) < 0) {
			free(out);
			break;
		}
		free(out);
	}
	close(fd);
}

int cli_nft_start(struct cli_nft **nft_r)
{
	struct cli_nft *nft = calloc(1, sizeof *nft);
	int sv[2];

	*nft_r = NULL;
	if (nft == NULL)
		return cli_error("out of memory");
	nft->fd = -1;
	if (geteuid() == 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			free(nft);
			return cli_error("socketpair: %s", strerror(errno));
		}
		fflush(NULL);
		nft->pid = fork();
		if (nft->pid < 0) {
			close(sv[0]);
			close(sv[1]);
			free(nft);
			return cli_error("fork: %s", strerror(errno));
		}
		if (nft->pid == 0) {
			close(sv[0]);
			cli_nft_serve(sv[1]);
			_exit(0);
		}
		close(sv[1]);
		nft->fd = sv[0];
	}
	*nft_r = nft;
	return 0;
}

void cli_nft_stop(struct cli_nft **nft_p)
{
	struct cli_nft *nft = *nft_p;
	int status;

	if (nft == NULL)
		return;
	*nft_p = NULL;
	if (nft->pid > 0) {
		close(nft->fd);
		while (waitpid(nft->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	free(nft);
}

int cli_nft_run(struct cli_nft *nft, int op, const char *text, char **out_r)
{
	char c = (char)op;
	int32_t rc;

	if (nft->pid == 0)
		return cli_nft_local(op, text ? text : "", out_r);
	*out_r = NULL;
	if (cli_nft_write(nft->fd, &c, 1) < 0 || cli_nft_write_blob(nft->fd, text) < 0 ||
	    cli_nft_read(nft->fd, &rc, sizeof rc) < 0 ||
	    cli_nft_read_blob(nft->fd, out_r, EGRESS_JSON_MAX) < 0) {
		free(*out_r);
		*out_r = strdup("nft helper: lost (it crashed?)");
		return -1;
	}
	return rc;
}
