/*
 * metrics_http: the Prometheus endpoint, `metrics_listen = HOST:PORT`
 * (off when unset).  The socket is bound before privileges are dropped,
 * like the SMTP listeners; libevent's evhttp serves it on sluiced's main
 * loop, so a scrape reads the daemon's state without locks of its own.
 *
 *   GET or HEAD /metrics  200, text/plain; version=0.0.4 (metrics.c)
 *   another method        405, Allow: GET, HEAD
 *   another path          404
 *
 * evhttp parses the requests (that parser is libevent's, not sluice's),
 * within the bounds set here: request line and headers, body, and an
 * idle/read timeout.  libevent 2.1 has no cap on evhttp's connections
 * (evhttp_set_max_connections came in 2.2): keep the endpoint on
 * loopback or behind a firewall.  It serves counts only, no secrets, no
 * tenant names, but still says how busy the gateway is.
 */
#include "cmd/daemon.h"
#include "cmd/signer.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#define METRICS_HEADERS_MAX 8192 /* request line and headers */
#define METRICS_BODY_MAX 1024    /* a GET has none; a small one still gets its 405 */
#define METRICS_TIMEOUT 10       /* seconds to read a request, or to wait for the next */
#define METRICS_BACKLOG 64

struct metrics_http {
	int fd; /* bound, until evhttp owns it */
	struct evhttp *http;
};

static int is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

void daemon_metrics_open(struct sluiced *d)
{
	struct timespec ts;
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why = NULL;
	char *err = NULL;

	clock_gettime(CLOCK_REALTIME, &ts);
	d->metrics = daemon_metrics_new((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	if (d->metrics == NULL)
		log_fatal("out of memory at start");
	if (d->cfg.metrics_listen == NULL)
		return;
	if (net_parse_hostport(d->cfg.metrics_listen, &ss, &len, &why) < 0)
		log_fatal("metrics_listen=%s error=\"%s\"", d->cfg.metrics_listen, why);
	if ((d->metrics_http = calloc(1, sizeof *d->metrics_http)) == NULL)
		log_fatal("out of memory at start");
	d->metrics_http->fd = net_listen(d->cfg.metrics_listen, METRICS_BACKLOG, &err);
	if (d->metrics_http->fd < 0)
		log_fatal("listen failed listener=metrics error=\"%s\"", err ? err : "?");
	log_info("listening listener=metrics address=%s path=/metrics", d->cfg.metrics_listen);
	if (!is_loopback(&ss))
		log_warn("metrics_listen=%s is not a loopback address: firewall it, the endpoint "
		         "has no authentication",
		         d->cfg.metrics_listen);
}

/* Subjects at each level now: the stored ones (raised, not yet cleared by
 * the operator) at the level the model gives them (a throttle lifts with
 * the hour). */
static void metrics_contained(struct sluiced *d, struct daemon_metrics_read *r)
{
	struct store_contain_state *list = NULL;
	size_t n = 0;
	char *err = NULL;
	int64_t now = util_wall_seconds();

	if (store_contain_list(d->store, 0, &list, &n, &err) < 0) {
		log_err("metrics contain-list failed error=\"%s\"", err ? err : "?");
		free(err);
		return;
	}
	r->contain = 1;
	for (size_t i = 0; i < n; i++) {
		enum policy_subject_kind kind = (enum policy_subject_kind)list[i].kind;
		enum policy_contain_level l;

		if (kind != POLICY_TENANT && kind != POLICY_CREDENTIAL)
			continue;
		l = policy_contain_level(d->contain, kind, list[i].subject_id, now);
		if (l > POLICY_CONTAIN_NONE && l <= POLICY_CONTAIN_SUSPEND)
			r->contained[kind - 1][l]++;
	}
	free(list);
}

static void metrics_read(struct sluiced *d, struct daemon_metrics_read *r)
{
	memset(r, 0, sizeof *r);
	r->queue_messages = spool_count(d->spool);
	spool_stats(d->spool, &r->spool);
	if (d->deliver != NULL) {
		r->delivery = 1;
		deliver_engine_stats(d->deliver, &r->deliver);
	}
	if (d->signer != NULL) {
		struct signer_stats s;
		signer_stats(d->signer, &s);
		r->dkim_rsa = s.rsa;
		r->dkim_ed25519 = s.ed25519;
		r->dkim_failed = s.failed;
	}
	if (d->contain != NULL)
		metrics_contained(d, r);
}

/* A short text/plain answer (evhttp_send_error() would drop our headers,
 * the 405's Allow among them). */
static void metrics_reply_text(struct evhttp_request *req, int code, const char *reason)
{
	struct evbuffer *evb = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	if (evb != NULL)
		evbuffer_add_printf(evb, "%d %s\n", code, reason);
	evhttp_send_reply(req, code, reason, evb);
	if (evb != NULL)
		evbuffer_free(evb);
}

static void metrics_request(struct evhttp_request *req, void *arg)
{
	struct sluiced *d = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
	struct daemon_metrics_read rd;
	struct buf body = BUF_INIT;
	struct evbuffer *evb = NULL;

	if (path == NULL || strcmp(path, "/metrics") != 0) {
		metrics_reply_text(req, HTTP_NOTFOUND, "Not Found");
		return;
	}
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(headers, "Allow", "GET, HEAD");
		metrics_reply_text(req, HTTP_BADMETHOD, "Method Not Allowed");
		return;
	}
	metrics_read(d, &rd);
	if (daemon_metrics_render(d->metrics, &rd, &body) < 0 || (evb = evbuffer_new()) == NULL ||
	    evbuffer_add(evb, body.data, body.len) < 0) {
		log_err("metrics render failed: out of memory");
		metrics_reply_text(req, HTTP_INTERNAL, "Internal Server Error");
	} else {
		char len[24];

		evhttp_add_header(headers, "Content-Type",
		                  "text/plain; version=0.0.4; charset=utf-8");
		evhttp_add_header(headers, "Cache-Control", "no-store");
		/* HEAD: GET's headers and no body (evhttp 2.1 would send it) */
		snprintf(len, sizeof len, "%zu", body.len);
		evhttp_add_header(headers, "Content-Length", len);
		evhttp_send_reply(req, HTTP_OK, "OK", cmd == EVHTTP_REQ_HEAD ? NULL : evb);
	}
	if (evb != NULL)
		evbuffer_free(evb);
	buf_free(&body);
}

void daemon_metrics_start(struct sluiced *d)
{
	struct metrics_http *h = d->metrics_http;

	if (h == NULL)
		return;
	if ((h->http = evhttp_new(d->base)) == NULL)
		log_fatal("metrics: evhttp_new failed");
	evhttp_set_max_headers_size(h->http, METRICS_HEADERS_MAX);
	evhttp_set_max_body_size(h->http, METRICS_BODY_MAX);
	evhttp_set_timeout(h->http, METRICS_TIMEOUT);
	/* every method reaches metrics_request, which answers 405 (evhttp
	 * itself would say 501 to the ones not allowed) */
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	                                        EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	                                        EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h->http, metrics_request, d);
	if (evhttp_accept_socket_with_handle(h->http, h->fd) == NULL)
		log_fatal("metrics: cannot serve address=%s", d->cfg.metrics_listen);
	h->fd = -1; /* evhttp closes it when freed */
}

void daemon_metrics_stop(struct sluiced *d)
{
	struct metrics_http *h = d->metrics_http;

	if (h != NULL) {
		if (h->http != NULL)
			evhttp_free(h->http); /* its connections and the listening socket */
		else if (h->fd >= 0)
			close(h->fd);
		free(h);
		d->metrics_http = NULL;
	}
	daemon_metrics_free(&d->metrics);
}
