/*
 * sluice probe [HOST]: which SMTP ports reach HOST and what each offers,
 * for a customer behind a port-25 block ("can I send, and on which
 * port?") and for an operator checking a gateway from the outside.
 *
 * Per port, each in its own thread (the probe takes about as long as its
 * slowest port, not their sum): a TCP connect, classified as connected,
 * refused (a reset: nothing listens, or a firewall rejects, as nftables'
 * "reject with tcp reset" does), timed out (SYNs silently dropped: a
 * filter, what a port-25 block usually looks like), unreachable, or
 * blocked by this machine's own firewall (EPERM); implicit TLS first for
 * 465 and "PORT/tls"; the greeting; EHLO; STARTTLS when offered
 * (opportunistic: the certificate is reported, and whether it verifies
 * against the system CAs for HOST, but never required); EHLO again; QUIT.
 * No MAIL is ever sent.  Then a verdict in plain language
 * (cli_probe_report.c, which also prints the result).
 *
 * Every step (connect, TLS handshake, each reply) is bounded by the
 * timeout, and a port's whole probe by PROBE_STEPS_MAX times it; QUIT's
 * reply is awaited PROBE_QUIT_MS at most.  Resolving HOST is bounded by
 * the timeout too (getaddrinfo_a).
 *
 * The SMTP exchange is a small one of its own, not smtp/'s client: the
 * probe reports what that client deliberately keeps to itself (the banner
 * text, every EHLO keyword, every AUTH mechanism) and needs none of its
 * transaction logic.  Its reply parser, probe_reply_parse(), is pure
 * (bytes in, a reply out, hard limits); the code around it moves bytes.
 *
 * Known limits: HOST's addresses are tried in getaddrinfo's order within
 * one connect timeout, and the first that connects is probed; an IP
 * literal HOST is sent without SNI and its certificate checked for the
 * address (IP SAN), a name HOST is checked as a DNS name.  The TLS client
 * context refuses TLS 1.0/1.1: such a server is reported as a failed
 * handshake.
 */
#include "cmd/cli_probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

static const unsigned probe_default_ports[] = {25, 465, 587, 2525};

/* The lines of one reply, without their "250-"; printable ASCII only. */
struct probe_reply {
	int code;
	size_t nlines;
	char lines[PROBE_REPLY_LINES_MAX][PROBE_TEXT_MAX];
};

/* One connection's bytes: the socket (plain or TLS) and unparsed input. */
struct probe_io {
	struct net_conn conn;
	char in[PROBE_IN_MAX];
	size_t len;
	int64_t port_deadline; /* of the whole port's probe */
	struct probe_reply reply;
};

static void probe_fail(struct probe_port *p, const char *fmt, ...) UTIL_PRINTF(2, 3);

/* The first failure after connecting is the one reported. */
static void probe_fail(struct probe_port *p, const char *fmt, ...)
{
	va_list ap;

	if (p->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(p->error, sizeof p->error, fmt, ap);
	va_end(ap);
}

static int64_t probe_now_ms(void)
{
	return (int64_t)util_now_ms();
}

/* Non-printable bytes become '?', in place. */
static void probe_clean(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* ---- the reply parser (pure) ------------------------------------------------- */

/*
 * One complete reply from in/len into r: 1 with *used_r octets making it
 * up, 0 when more input is needed, -1 when the input is not an SMTP reply
 * (*why_r says why).  Lines end in LF (CR LF or a bare LF, RFC 5321 allows
 * servers nothing else, but a probe reports rather than judges); every
 * line has the same code in 200..599, "-" continues, " " or the end of
 * the line ends the reply.  Lines longer than PROBE_TEXT_MAX are cut
 * with "..." in r.
 */
static int probe_reply_parse(const char *in, size_t len, struct probe_reply *r, size_t *used_r,
                             const char **why_r)
{
	size_t pos = 0;

	r->code = 0;
	r->nlines = 0;
	for (;;) {
		const char *line = in + pos, *lf = memchr(line, '\n', len - pos);
		size_t n, tlen;
		int code;

		if (lf == NULL) {
			if (len - pos > PROBE_LINE_MAX || len >= PROBE_IN_MAX) {
				*why_r = "reply line too long";
				return -1;
			}
			return 0;
		}
		n = (size_t)(lf - line);
		if (n > PROBE_LINE_MAX) {
			*why_r = "reply line too long";
			return -1;
		}
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (n > 3 && line[3] != ' ' && line[3] != '-')) {
			*why_r = "not an SMTP reply";
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (r->nlines > 0 && code != r->code) {
			*why_r = "reply lines with different codes";
			return -1;
		}
		if (r->nlines == PROBE_REPLY_LINES_MAX) {
			*why_r = "reply of too many lines";
			return -1;
		}
		r->code = code;
		tlen = n > 4 ? n - 4 : 0;
		if (tlen >= PROBE_TEXT_MAX) {
			memcpy(r->lines[r->nlines], line + 4, PROBE_TEXT_MAX - 4);
			memcpy(r->lines[r->nlines] + PROBE_TEXT_MAX - 4, "...", 4);
		} else {
			memcpy(r->lines[r->nlines], line + 4, tlen);
			r->lines[r->nlines][tlen] = '\0';
		}
		probe_clean(r->lines[r->nlines]);
		r->nlines++;
		pos = (size_t)(lf - in) + 1;
		if (n == 3 || line[3] == ' ') {
			*used_r = pos;
			return 1;
		}
	}
}

/* "code text text..." of a reply, lines joined by a space. */
static void probe_reply_text(const struct probe_reply *r, char *out, size_t size)
{
	snprintf(out, size, "%d", r->code);
	for (size_t i = 0; i < r->nlines; i++) {
		if (r->lines[i][0] == '\0')
			continue;
		if (util_strlcat(out, " ", size) >= size ||
		    util_strlcat(out, r->lines[i], size) >= size) {
			if (size > 4)
				memcpy(out + size - 4, "...", 4);
			return;
		}
	}
}

const char *cli_probe_ehlo_find(const struct probe_ehlo *e, const char *kw)
{
	size_t n = strlen(kw);

	for (size_t i = 0; i < e->n; i++) {
		const char *x = e->ext[i];
		if (util_strncasecmp(x, kw, n) == 0 && (x[n] == '\0' || x[n] == ' ' || x[n] == '='))
			return x;
	}
	return NULL;
}

void cli_probe_auth(const struct probe_ehlo *e, char *out, size_t size)
{
	const char *a = cli_probe_ehlo_find(e, "AUTH");

	out[0] = '\0';
	if (a == NULL)
		return;
	util_strlcpy(out, a[4] ? a + 5 : "", size);
	for (char *p = out; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
}

/* ---- bytes over the connection ------------------------------------------------ */

/* The deadline of one step: the timeout from now, within the port's. */
static int64_t probe_step_deadline(const struct probe_port *p, const struct probe_io *io,
                                   uint32_t ms)
{
	int64_t d = probe_now_ms() + ms;
	return d < io->port_deadline ? d : io->port_deadline;
}

/* 1 ready, 0 the deadline passed, -1 poll failed. */
static int probe_wait(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - probe_now_ms();
		struct pollfd pfd = {.fd = fd, .events = events};
		int r;

		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Wait as a net_conn call asked; 1 go on, 0 timed out, -1 error. */
static int probe_wait_io(struct probe_io *io, enum net_io r, int64_t deadline)
{
	return probe_wait(io->conn.fd, r == NET_IO_WANT_WRITE ? POLLOUT : POLLIN, deadline);
}

/* Send a command line; 0, or -1 with the port's error set. */
static int probe_send(struct probe_port *p, struct probe_io *io, const char *line, const char *what)
{
	int64_t deadline = probe_step_deadline(p, io, p->run->timeout_ms);
	size_t len = strlen(line), off = 0;

	while (off < len) {
		size_t n = 0;
		enum net_io r = net_conn_write(&io->conn, line + off, len - off, &n);
		int w;

		if (r == NET_IO_OK) {
			off += n;
			continue;
		}
		if (r != NET_IO_WANT_READ && r != NET_IO_WANT_WRITE) {
			probe_fail(p, "the connection broke sending %s", what);
			return -1;
		}
		if ((w = probe_wait_io(io, r, deadline)) <= 0) {
			probe_fail(p, "sending %s %s", what, w == 0 ? "timed out" : "failed");
			return -1;
		}
	}
	return 0;
}

/* Read one reply into io->reply within ms; 0, or -1 with the error set
 * (quiet: for QUIT, whose reply is only courtesy). */
static int probe_read_reply(struct probe_port *p, struct probe_io *io, const char *what,
                            uint32_t ms, int quiet)
{
	int64_t deadline = probe_step_deadline(p, io, ms);

	for (;;) {
		const char *why = NULL;
		size_t used = 0, n = 0;
		int r = probe_reply_parse(io->in, io->len, &io->reply, &used, &why);
		enum net_io ior;

		if (r > 0) {
			memmove(io->in, io->in + used, io->len - used);
			io->len -= used;
			return 0;
		}
		if (r < 0) {
			if (!quiet)
				probe_fail(p, "%s: %s", what, why);
			return -1;
		}
		ior = net_conn_read(&io->conn, io->in + io->len, sizeof io->in - io->len, &n);
		if (ior == NET_IO_OK) {
			io->len += n;
			continue;
		}
		if (ior == NET_IO_WANT_READ || ior == NET_IO_WANT_WRITE) {
			if (probe_wait_io(io, ior, deadline) > 0)
				continue;
			if (!quiet)
				probe_fail(p, "no %s within %.1f s", what,
				           (double)p->run->timeout_ms / 1000.0);
			return -1;
		}
		if (!quiet)
			probe_fail(p, "the server closed the connection before its %s", what);
		return -1;
	}
}

/* ---- the certificate ------------------------------------------------------------ */

static void probe_x509_name(const X509_NAME *name, char *out, size_t size)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	util_strlcpy(out, "?", size);
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (n = BIO_read(b, out, (int)size - 1)) >= 0) {
		out[n] = '\0';
		if (BIO_pending(b) > 0 && size > 4)
			memcpy(out + size - 4, "...", 4);
	}
	BIO_free(b);
	probe_clean(out);
}

static void probe_cert_read(X509 *x, struct probe_cert *c)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	struct tm tm;

	probe_x509_name(X509_get_subject_name(x), c->subject, sizeof c->subject);
	probe_x509_name(X509_get_issuer_name(x), c->issuer, sizeof c->issuer);
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		cli_time_iso((int64_t)timegm(&tm), c->not_after);
	else
		util_strlcpy(c->not_after, "?", sizeof c->not_after);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens) && c->nsans < PROBE_SAN_MAX;
	     i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char *out = c->sans[c->nsans];

		if (g->type == GEN_DNS) {
			const ASN1_STRING *s = g->d.dNSName;
			int len = ASN1_STRING_length(s);
			if (len < 0 || (size_t)len >= PROBE_NAME_MAX - 4)
				continue;
			memcpy(out, "DNS:", 4);
			memcpy(out + 4, ASN1_STRING_get0_data(s), (size_t)len);
			out[4 + len] = '\0';
		} else if (g->type == GEN_IPADD) {
			const ASN1_OCTET_STRING *s = g->d.iPAddress;
			char text[INET6_ADDRSTRLEN];
			int len = ASN1_STRING_length(s);
			if ((len != 4 && len != 16) ||
			    inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text,
			              sizeof text) == NULL)
				continue;
			snprintf(out, PROBE_NAME_MAX, "IP:%s", text);
		} else {
			continue;
		}
		probe_clean(out);
		c->nsans++;
	}
	GENERAL_NAMES_free(gens);
}

/* ---- the steps -------------------------------------------------------------------- */

static enum probe_state probe_classify(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return PROBE_REFUSED;
	case ETIMEDOUT:
		return PROBE_TIMEOUT;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EHOSTDOWN:
	case ENETDOWN:
	case EADDRNOTAVAIL:
	case EAFNOSUPPORT:
		return PROBE_UNREACHABLE;
	case EPERM:
	case EACCES:
		return PROBE_BLOCKED;
	default:
		return PROBE_ERROR;
	}
}

/* Connect to the first address of the host that answers, all within one
 * timeout.  0 connected (io->conn.fd set), -1 not (p->state says why). */
static int probe_connect(struct probe_port *p, struct probe_io *io)
{
	int64_t deadline = probe_step_deadline(p, io, p->run->timeout_ms);

	p->state = PROBE_ERROR;
	util_strlcpy(p->connect_error, "no address", sizeof p->connect_error);
	for (const struct addrinfo *ai = p->run->addrs; ai != NULL; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		int fd, err = 0, w;
		socklen_t len = sizeof err;

		if (ai->ai_addrlen > sizeof ss ||
		    (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
			continue;
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)p->port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)p->port);
		net_addr_str((const struct sockaddr *)&ss, p->addr);
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
		} else if (connect(fd, (const struct sockaddr *)&ss, ai->ai_addrlen) < 0) {
			if (errno != EINPROGRESS)
				err = errno;
			else if ((w = probe_wait(fd, POLLOUT, deadline)) == 0)
				err = ETIMEDOUT;
			else if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
		if (err == 0) {
			io->conn.fd = fd;
			p->state = PROBE_CONNECTED;
			p->connect_error[0] = '\0';
			return 0;
		}
		if (fd >= 0)
			close(fd);
		p->state = probe_classify(err);
		util_strlcpy(p->connect_error, strerror(err), sizeof p->connect_error);
		if (probe_now_ms() >= deadline)
			break;
	}
	return -1;
}

/* TLS on the connection (implicit, or after STARTTLS's 220), reported. */
static int probe_tls(struct probe_port *p, struct probe_io *io)
{
	const struct probe_run *run = p->run;
	int64_t deadline = probe_step_deadline(p, io, run->timeout_ms);
	struct net_tls_client_params tp = {
	    .mode = NET_TLS_OPPORTUNISTIC,
	    /* a placeholder for an IP literal, replaced just below */
	    .servername = run->host_is_ip ? "invalid" : run->host,
	};
	const char *why = NULL;
	X509 *x;

	if (net_conn_tls_start_client(&io->conn, run->tls, &tp, &why) < 0) {
		probe_fail(p, "TLS could not start: %s", why ? why : "?");
		return -1;
	}
	if (run->host_is_ip) {
		/* no SNI with an address (RFC 6066 3); check the IP SAN */
		X509_VERIFY_PARAM *vp = SSL_get0_param(io->conn.ssl);
		if (SSL_set_tlsext_host_name(io->conn.ssl, NULL) != 1 ||
		    X509_VERIFY_PARAM_set1_host(vp, NULL, 0) != 1 ||
		    X509_VERIFY_PARAM_set1_ip_asc(vp, run->host) != 1) {
			probe_fail(p, "TLS could not start: cannot check the address %s",
			           run->host);
			return -1;
		}
	}
	for (;;) {
		enum net_io r = net_conn_handshake(&io->conn);
		int w;

		if (r == NET_IO_OK)
			break;
		if (r == NET_IO_WANT_READ || r == NET_IO_WANT_WRITE) {
			if ((w = probe_wait_io(io, r, deadline)) > 0)
				continue;
			probe_fail(p, "the TLS handshake %s", w == 0 ? "timed out" : "failed");
			return -1;
		}
		net_conn_tls_verified(&io->conn, &why);
		probe_fail(p, "the TLS handshake failed%s%s (TLS 1.2 or newer is required)",
		           why && strcmp(why, "handshake not finished") != 0 ? ": " : "",
		           why && strcmp(why, "handshake not finished") != 0 ? why : "");
		return -1;
	}
	p->tls = 1;
	util_strlcpy(p->tls_version, net_conn_tls_version(&io->conn), sizeof p->tls_version);
	util_strlcpy(p->tls_cipher, net_conn_tls_cipher(&io->conn, NULL), sizeof p->tls_cipher);
	p->verified = net_conn_tls_verified(&io->conn, &why);
	util_strlcpy(p->verify_result, why ? why : "?", sizeof p->verify_result);
	if ((x = SSL_get0_peer_certificate(io->conn.ssl)) != NULL) {
		probe_cert_read(x, &p->cert);
		p->have_cert = 1;
	}
	return 0;
}

/* EHLO and its answer into e; 0, or -1 with the error set. */
static int probe_ehlo(struct probe_port *p, struct probe_io *io, struct probe_ehlo *e)
{
	char line[PROBE_HOST_MAX + 16], text[PROBE_TEXT_MAX];
	const struct probe_reply *r = &io->reply;

	snprintf(line, sizeof line, "EHLO %s\r\n", p->run->helo);
	if (probe_send(p, io, line, "EHLO") < 0 ||
	    probe_read_reply(p, io, "reply to EHLO", p->run->timeout_ms, 0) < 0)
		return -1;
	if (r->code != 250) {
		probe_reply_text(r, text, sizeof text);
		probe_fail(p, "EHLO refused: %s", text);
		return -1;
	}
	e->done = 1;
	e->n = 0;
	/* the first line is the server's name and greeting, the rest keywords */
	for (size_t i = 1; i < r->nlines && e->n < PROBE_EXT_MAX; i++) {
		if (util_strlcpy(e->ext[e->n], r->lines[i], PROBE_EXT_LEN) >= PROBE_EXT_LEN)
			memcpy(e->ext[e->n] + PROBE_EXT_LEN - 4, "...", 4);
		e->n++;
	}
	return 0;
}

static void probe_quit(struct probe_port *p, struct probe_io *io)
{
	if (probe_send(p, io, "QUIT\r\n", "QUIT") == 0)
		probe_read_reply(p, io, "reply to QUIT", PROBE_QUIT_MS, 1);
}

/* After connecting: the whole SMTP conversation.  Errors land in p->error. */
static void probe_smtp(struct probe_port *p, struct probe_io *io)
{
	const struct probe_reply *r = &io->reply;
	char text[PROBE_TEXT_MAX];

	if (p->implicit_tls && probe_tls(p, io) < 0)
		return;
	if (probe_read_reply(p, io, "greeting", p->run->timeout_ms, 0) < 0)
		return;
	probe_reply_text(r, p->banner, sizeof p->banner);
	if (r->code != 220) {
		probe_fail(p, "the server refuses this client: %s", p->banner);
		probe_quit(p, io);
		return;
	}
	p->greeted = 1;
	if (probe_ehlo(p, io, &p->ehlo) < 0) {
		probe_quit(p, io);
		return;
	}
	if (!p->tls && cli_probe_ehlo_find(&p->ehlo, "STARTTLS") != NULL) {
		p->starttls_offered = 1;
		if (probe_send(p, io, "STARTTLS\r\n", "STARTTLS") < 0 ||
		    probe_read_reply(p, io, "reply to STARTTLS", p->run->timeout_ms, 0) < 0)
			return;
		if (r->code != 220) {
			probe_reply_text(r, text, sizeof text);
			probe_fail(p, "STARTTLS refused: %s", text);
			probe_quit(p, io);
			return;
		}
		/* RFC 3207 5: what came after the 220 is an injection, not TLS */
		io->len = 0;
		if (probe_tls(p, io) < 0)
			return;
		p->starttls_done = 1;
		if (probe_ehlo(p, io, &p->ehlo_tls) < 0) {
			probe_quit(p, io);
			return;
		}
	}
	probe_quit(p, io);
}

static void *probe_port_run(void *arg)
{
	struct probe_port *p = arg;
	struct probe_io *io = calloc(1, sizeof *io);
	int64_t t0 = probe_now_ms();

	if (io == NULL) {
		p->state = PROBE_ERROR;
		util_strlcpy(p->connect_error, "out of memory", sizeof p->connect_error);
		return NULL;
	}
	io->conn.fd = -1;
	io->port_deadline = t0 + (int64_t)p->run->timeout_ms * PROBE_STEPS_MAX;
	if (probe_connect(p, io) == 0)
		probe_smtp(p, io);
	if (io->conn.fd >= 0 || io->conn.ssl != NULL)
		net_conn_close(&io->conn);
	p->elapsed_ms = probe_now_ms() - t0;
	free(io);
	return NULL;
}

/* ---- arguments and the run ------------------------------------------------------------------ */

/* "25,465/tls,587": 465 is implicit TLS by default, "/tls" makes any port. */
static int probe_parse_ports(struct probe_run *run, const char *list)
{
	char safe[80];
	const char *s = list;

	run->nports = 0;
	for (;;) {
		char *end;
		unsigned long n;
		int tls;

		errno = 0;
		n = strtoul(s, &end, 10);
		if (end == s || errno != 0 || n == 0 || n > 65535 || *s == '-' || *s == '+')
			goto bad;
		tls = n == 465;
		if (strncmp(end, "/tls", 4) == 0) {
			tls = 1;
			end += 4;
		}
		if (*end != ',' && *end != '\0')
			goto bad;
		for (size_t i = 0; i < run->nports; i++)
			if (run->ports[i].port == n)
				return cli_usage_error("probe", "probe: port %lu twice in --ports",
				                       n);
		if (run->nports == PROBE_PORTS_MAX)
			return cli_usage_error("probe", "probe: more than %d ports",
			                       PROBE_PORTS_MAX);
		run->ports[run->nports].port = (unsigned)n;
		run->ports[run->nports].implicit_tls = tls;
		run->nports++;
		if (*end == '\0')
			return 0;
		s = end + 1;
	}
bad:
	return cli_usage_error("probe",
	                       "probe: --ports '%s': want ports 1-65535, like 25,465,587 "
	                       "(PORT/tls: implicit TLS)",
	                       cli_safe(list, safe, sizeof safe));
}

static int probe_parse_timeout(struct probe_run *run, const char *s)
{
	char safe[80], *end;
	double secs;

	errno = 0;
	secs = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !(secs * 1000 >= PROBE_TIMEOUT_MIN_MS) ||
	    !(secs * 1000 <= PROBE_TIMEOUT_MAX_MS))
		return cli_usage_error("probe", "probe: --timeout '%s': want seconds, %.1f to %d",
		                       cli_safe(s, safe, sizeof safe),
		                       PROBE_TIMEOUT_MIN_MS / 1000.0, PROBE_TIMEOUT_MAX_MS / 1000);
	run->timeout_ms = (uint32_t)(secs * 1000);
	return 0;
}

/* HOST: a name or an address ("[::1]" too), into run->host. */
static int probe_parse_host(struct probe_run *run, const char *host)
{
	char safe[80];
	unsigned char addr[sizeof(struct in6_addr)];
	size_t len = strlen(host);

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len == 0 || len > PROBE_HOST_MAX)
		goto bad;
	memcpy(run->host, host, len);
	run->host[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		char ch = run->host[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == ':' || ch == '_'))
			goto bad;
	}
	run->host_is_ip =
	    inet_pton(AF_INET, run->host, addr) == 1 || inet_pton(AF_INET6, run->host, addr) == 1;
	return 0;
bad:
	return cli_usage_error("probe", "probe: '%s' is not a host name or address",
	                       cli_safe(host, safe, sizeof safe));
}

/* getaddrinfo within the timeout.  0, or -1 with the reason printed.  A
 * lookup that cannot be cancelled keeps its request: leaked on purpose,
 * the process ends right after. */
static int probe_resolve(struct probe_run *run)
{
	struct probe_gai {
		struct gaicb cb;
		struct addrinfo hints;
	} *g = calloc(1, sizeof *g);
	struct gaicb *list[1];
	struct timespec ts = {.tv_sec = run->timeout_ms / 1000,
	                      .tv_nsec = (long)(run->timeout_ms % 1000) * 1000000};
	int rc;

	if (g == NULL)
		return cli_error("out of memory");
	g->hints.ai_family = AF_UNSPEC;
	g->hints.ai_socktype = SOCK_STREAM;
	g->cb.ar_name = run->host;
	g->cb.ar_request = &g->hints;
	list[0] = &g->cb;
	if ((rc = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL)) != 0) {
		free(g);
		return cli_error("cannot resolve %s: %s", run->host, gai_strerror(rc));
	}
	rc = gai_suspend((const struct gaicb *const *)list, 1, &ts);
	if (rc == 0 || rc == EAI_ALLDONE)
		rc = gai_error(&g->cb);
	if (rc == EAI_AGAIN || rc == EAI_INPROGRESS || rc == EAI_INTR) {
		if (gai_cancel(&g->cb) == EAI_CANCELED) {
			free(g);
		}
		return cli_error("nothing reaches %s: resolving the name timed out after %.1f s",
		                 run->host, (double)run->timeout_ms / 1000.0);
	}
	if (rc != 0) {
		free(g);
		return cli_error("nothing reaches %s: cannot resolve the name (%s): check it",
		                 run->host, gai_strerror(rc));
	}
	run->addrs = g->cb.ar_result;
	free(g);
	return 0;
}

int cli_probe(struct cli *cli)
{
	struct probe_run *run = calloc(1, sizeof *run);
	struct probe_verdict *v = calloc(1, sizeof *v);
	const char *host;
	char *err = NULL;
	int rc = CLI_EXIT_ERROR;

	if (run == NULL || v == NULL) {
		rc = cli_error("out of memory");
		goto done;
	}
	/* the embedded defaults listen on loopback; a configuration names us */
	host = cli->nargs > 0                                          ? cli->args[0]
	       : cli->config_path != NULL && cli->cfg.hostname != NULL ? cli->cfg.hostname
	                                                               : "127.0.0.1";
	run->timeout_ms = PROBE_TIMEOUT_DEFAULT_MS;
	run->helo = cli->cfg.hostname != NULL ? cli->cfg.hostname : "localhost";
	if ((rc = probe_parse_host(run, host)) != 0 ||
	    (cli->opt_timeout && (rc = probe_parse_timeout(run, cli->opt_timeout)) != 0) ||
	    (cli->opt_ports && (rc = probe_parse_ports(run, cli->opt_ports)) != 0))
		goto done;
	if (cli->opt_ports == NULL) {
		for (size_t i = 0; i < sizeof probe_default_ports / sizeof probe_default_ports[0];
		     i++) {
			run->ports[i].port = probe_default_ports[i];
			run->ports[i].implicit_tls = probe_default_ports[i] == 465;
		}
		run->nports = sizeof probe_default_ports / sizeof probe_default_ports[0];
	}
	rc = CLI_EXIT_ERROR;
	/* a server that resets the connection must not kill the probe */
	signal(SIGPIPE, SIG_IGN);
	if (probe_resolve(run) < 0)
		goto done;
	{
		struct net_tls_client_config tc = {.system_ca = 1};
		if ((run->tls = net_tls_client_ctx_new(&tc, &err)) == NULL) {
			cli_error("%s", err ? err : "cannot make a TLS context");
			free(err);
			goto done;
		}
	}
	for (size_t i = 0; i < run->nports; i++) {
		struct probe_port *p = &run->ports[i];
		p->run = run;
		p->threaded = pthread_create(&p->thread, NULL, probe_port_run, p) == 0;
		if (!p->threaded)
			probe_port_run(p); /* no thread: one after another */
	}
	for (size_t i = 0; i < run->nports; i++)
		if (run->ports[i].threaded)
			pthread_join(run->ports[i].thread, NULL);
	cli_probe_judge(run, v);
	if (cli->flags & CLI_FLAG_JSON) {
		if (cli_probe_print_json(run, v) != CLI_EXIT_OK)
			goto done;
	} else {
		cli_probe_print_text(run, v);
	}
	rc = v->ok ? CLI_EXIT_OK : CLI_EXIT_ERROR;
done:
	if (run != NULL) {
		if (run->addrs != NULL)
			freeaddrinfo(run->addrs);
		SSL_CTX_free(run->tls);
	}
	free(run);
	free(v);
	return rc;
}
