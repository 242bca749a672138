/*
 * testdns: the test DNS server (tests/dns/dnsserver.py: nsd on loopback
 * with the sluice.test zones) for cmocka tests.
 *
 * testdns_start() runs "python3 $SLUICE_TEST_DNS serve DIR" in a fresh
 * temporary folder and reads back the port, the trust anchor file and the
 * TLSA data; testdns_stop() stops it by its PID, waits for it, and removes
 * the folder.  The script's stdin is a pipe held here: if the test dies,
 * the pipe closes and the script stops nsd on its own.
 *
 * Header-only so each test program that needs a server includes it;
 * tests/unit/meson.build sets SLUICE_TEST_DNS.
 */
#ifndef SLUICE_TESTDNS_H
#define SLUICE_TESTDNS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TESTDNS_START_MS 60000 /* key generation and signing included */

struct testdns {
	pid_t pid;
	int in_fd, out_fd;
	char root[PATH_MAX];   /* removed by testdns_stop() */
	char server[64];       /* "127.0.0.1@PORT": net_resolver_config.server */
	char anchor[PATH_MAX]; /* net_resolver_config.trust_anchor_file */
	char cert[PATH_MAX];   /* mx.dnssec.sluice.test's certificate (TLSA 3 1 1) */
	char key[PATH_MAX];
	char tlsa311[65]; /* its SPKI SHA-256, hex */
};

/* libunbound answers for .test itself (RFC 6761): let it ask the server. */
static const char *const testdns_resolver_options[] = {"local-zone: test. transparent", NULL};

static int testdns_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void testdns_set(char *dst, size_t size, const char *val)
{
	if ((size_t)snprintf(dst, size, "%s", val) >= size)
		dst[0] = '\0';
}

__attribute__((unused)) static void testdns_stop(struct testdns *d)
{
	int status;

	if (d->pid > 0) {
		if (d->in_fd >= 0)
			close(d->in_fd);
		d->in_fd = -1;
		kill(d->pid, SIGTERM);
		while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
			;
		d->pid = 0;
	}
	if (d->out_fd >= 0)
		close(d->out_fd);
	d->out_fd = -1;
	if (d->root[0] != '\0')
		nftw(d->root, testdns_rm_one, 16, FTW_DEPTH | FTW_PHYS);
	d->root[0] = '\0';
}

/* 0 when the server answers; -1 with a message on stderr. */
__attribute__((unused)) static int testdns_start(struct testdns *d)
{
	const char *script = getenv("SLUICE_TEST_DNS");
	const char *tmp = getenv("TMPDIR");
	char work[PATH_MAX + 8], line[PATH_MAX + 32], buf[8192];
	int in[2], out[2], ready = 0;
	size_t have = 0;
	struct timespec t0, now;

	memset(d, 0, sizeof *d);
	d->in_fd = d->out_fd = -1;
	if (script == NULL) {
		fprintf(stderr, "testdns: SLUICE_TEST_DNS is not set (meson test sets it to "
		                "tests/dns/dnsserver.py)\n");
		return -1;
	}
	snprintf(d->root, sizeof d->root, "%s/sluice-dns-XXXXXX", tmp ? tmp : "/tmp");
	if (mkdtemp(d->root) == NULL) {
		fprintf(stderr, "testdns: mkdtemp: %s\n", strerror(errno));
		d->root[0] = '\0';
		return -1;
	}
	snprintf(work, sizeof work, "%s/w", d->root);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		fprintf(stderr, "testdns: pipe: %s\n", strerror(errno));
		testdns_stop(d);
		return -1;
	}
	d->pid = fork();
	if (d->pid == 0) {
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execlp("python3", "python3", script, "serve", work, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	d->in_fd = in[1];
	d->out_fd = out[0];
	if (d->pid < 0) {
		fprintf(stderr, "testdns: fork: %s\n", strerror(errno));
		d->pid = 0;
		testdns_stop(d);
		return -1;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!ready) {
		struct pollfd p = {.fd = d->out_fd, .events = POLLIN};
		long spent;
		ssize_t n;
		char *nl;

		clock_gettime(CLOCK_MONOTONIC, &now);
		spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
		if (spent >= TESTDNS_START_MS || have == sizeof buf - 1) {
			fprintf(stderr, "testdns: no \"ready\" from %s\n", script);
			break;
		}
		if (poll(&p, 1, (int)(TESTDNS_START_MS - spent)) <= 0)
			continue;
		n = read(d->out_fd, buf + have, sizeof buf - 1 - have);
		if (n <= 0) {
			fprintf(stderr, "testdns: %s exited before it was ready\n", script);
			break;
		}
		have += (size_t)n;
		buf[have] = '\0';
		while ((nl = strchr(buf, '\n')) != NULL) {
			size_t len = (size_t)(nl - buf);

			if (len < sizeof line) {
				memcpy(line, buf, len);
				line[len] = '\0';
				if (strcmp(line, "ready") == 0)
					ready = 1;
				else if (strncmp(line, "server=", 7) == 0)
					testdns_set(d->server, sizeof d->server, line + 7);
				else if (strncmp(line, "anchor=", 7) == 0)
					testdns_set(d->anchor, sizeof d->anchor, line + 7);
				else if (strncmp(line, "cert=", 5) == 0)
					testdns_set(d->cert, sizeof d->cert, line + 5);
				else if (strncmp(line, "key=", 4) == 0)
					testdns_set(d->key, sizeof d->key, line + 4);
				else if (strncmp(line, "tlsa311=", 8) == 0)
					testdns_set(d->tlsa311, sizeof d->tlsa311, line + 8);
			}
			have -= len + 1;
			memmove(buf, nl + 1, have + 1);
		}
	}
	if (!ready || d->server[0] == '\0' || d->anchor[0] == '\0' || strlen(d->tlsa311) != 64) {
		testdns_stop(d);
		return -1;
	}
	return 0;
}

#endif
