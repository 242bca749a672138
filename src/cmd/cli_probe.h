/*
 * sluice probe: what cli_probe.c (arguments, the network steps) and
 * cli_probe_report.c (the verdict, text and JSON output) share.  Private
 * to src/cmd.
 */
#ifndef SLUICE_CLI_PROBE_H
#define SLUICE_CLI_PROBE_H

#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cmd/cli.h"
#include "net/net.h"

#define PROBE_PORTS_MAX 16
#define PROBE_TIMEOUT_DEFAULT_MS 10000
#define PROBE_TIMEOUT_MIN_MS 100
#define PROBE_TIMEOUT_MAX_MS 300000
#define PROBE_STEPS_MAX 4        /* a port's probe: at most this many timeouts */
#define PROBE_QUIT_MS 2000       /* QUIT's reply is only courtesy */
#define PROBE_LINE_MAX 2048      /* one reply line; RFC 5321 says 512, servers exceed it */
#define PROBE_REPLY_LINES_MAX 64 /* lines of one reply */
#define PROBE_IN_MAX 16384       /* input buffered: one reply at most */
#define PROBE_TEXT_MAX 512       /* a reply line kept, the banner, an error */
#define PROBE_EXT_MAX 40         /* EHLO keywords kept */
#define PROBE_EXT_LEN 160
#define PROBE_SAN_MAX 16
#define PROBE_NAME_MAX 256 /* a certificate's subject, issuer, SAN entry */
#define PROBE_HOST_MAX 253

enum probe_state {
	PROBE_CONNECTED,
	PROBE_REFUSED,     /* RST */
	PROBE_TIMEOUT,     /* no answer to the SYN: filtered */
	PROBE_UNREACHABLE, /* no route, ICMP unreachable */
	PROBE_BLOCKED,     /* EPERM/EACCES: this machine's own firewall */
	PROBE_ERROR,       /* any other socket error */
};

struct probe_ehlo {
	int done;
	size_t n;
	char ext[PROBE_EXT_MAX][PROBE_EXT_LEN]; /* "SIZE 1048576", "AUTH PLAIN LOGIN" */
};

struct probe_cert {
	char subject[PROBE_NAME_MAX], issuer[PROBE_NAME_MAX];
	size_t nsans;
	char sans[PROBE_SAN_MAX][PROBE_NAME_MAX]; /* "DNS:mx.example.com", "IP:192.0.2.1" */
	char not_after[CLI_TIME_MAX];
};

struct probe_run; /* below */

struct probe_port {
	/* what to probe */
	unsigned port;
	int implicit_tls;
	const struct probe_run *run;
	/* what was found */
	enum probe_state state;
	char connect_error[128]; /* strerror of a failed connect */
	char addr[NET_ADDR_STRLEN];
	int greeted; /* a 220 greeting */
	char banner[PROBE_TEXT_MAX];
	struct probe_ehlo ehlo;     /* before TLS, or after implicit TLS */
	struct probe_ehlo ehlo_tls; /* after STARTTLS */
	int starttls_offered, starttls_done;
	int tls; /* TLS active (implicit, or STARTTLS done) */
	char tls_version[32], tls_cipher[64];
	int verified;
	char verify_result[128];
	int have_cert;
	struct probe_cert cert;
	char error[PROBE_TEXT_MAX]; /* what went wrong after connecting; "" none */
	int64_t elapsed_ms;
	pthread_t thread;
	int threaded;
};

struct probe_run {
	char host[PROBE_HOST_MAX + 1];
	int host_is_ip;
	const char *helo;
	uint32_t timeout_ms;
	struct addrinfo *addrs;
	SSL_CTX *tls;
	struct probe_port ports[PROBE_PORTS_MAX];
	size_t nports;
};

struct probe_verdict {
	size_t n;
	char lines[PROBE_PORTS_MAX * 2 + 4][PROBE_TEXT_MAX + 128];
	int ok;
};

/* ---- cli_probe.c ---------------------------------------------------------- */

/* The EHLO keyword kw ("STARTTLS", "AUTH"): its line, or NULL.  "AUTH=" is
 * the pre-RFC 4954 form some servers still send. */
const char *cli_probe_ehlo_find(const struct probe_ehlo *e, const char *kw);
/* The AUTH mechanisms of an EHLO answer, space-separated, upper case;
 * "" when none. */
void cli_probe_auth(const struct probe_ehlo *e, char *out, size_t size);

/* ---- cli_probe_report.c --------------------------------------------------- */

/* The verdict on the finished ports: one line per port, then the advice
 * and notes; v->ok when a port takes submission. */
void cli_probe_judge(const struct probe_run *run, struct probe_verdict *v);
/* Exit code of printing (CLI_EXIT_OK, or an error printed). */
int cli_probe_print_json(const struct probe_run *run, const struct probe_verdict *v);
void cli_probe_print_text(const struct probe_run *run, const struct probe_verdict *v);

#endif
