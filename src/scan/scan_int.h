/*
 * Inside the scan module: a job asks each configured scanner through one
 * scan_conn (scan_conn.c); when the last one ends, scan.c makes the
 * verdict, counts it and calls back.
 */
#ifndef SLUICE_SCAN_INT_H
#define SLUICE_SCAN_INT_H

#include "scan/scan.h"
#include "util/util.h"

#include <sys/uio.h>

struct event;
struct scan_counts_entry;

struct scan {
	struct event_base *base;
	const struct config_scan *cfg;
	struct scan_endpoint ep[SCAN_NSCANNERS];
	int enabled[SCAN_NSCANNERS];
	struct scan_job *jobs; /* running, for scan_free() */
	struct scan_counts_entry **counts;
	size_t nbuckets, ncounts;
};

/* One scanner's exchange: connect, write the request spans, read the reply
 * until its parser says complete, all within the timeout. */
struct scan_conn {
	struct scan_job *job;
	enum scan_scanner which;
	int fd;
	int connecting;
	int writing;
	int done;
	struct event *ev;    /* the socket */
	struct event *timer; /* the deadline; also fires failures found at start */
	struct iovec *iov;   /* the request: spans of head and the message */
	size_t niov, next_iov;
	struct buf head; /* bytes the request adds (HTTP head, INSTREAM frames) */
	struct buf in;
	size_t in_max;
	uint64_t started_ms;
	struct scan_result result;
};

struct scan_job {
	struct scan *sc;
	struct scan_job *prev, *next;
	struct scan_conn conns[SCAN_NSCANNERS];
	int ran[SCAN_NSCANNERS];
	size_t pending;
	struct event *done_ev; /* the verdict is made from the loop, after the last conn */
	uint64_t session;
	size_t len; /* of the message, for the log */
	char queue_id[40];
	int64_t tenant_id;
	char *user; /* NULL without AUTH */
	scan_done_cb *cb;
	void *cb_ctx;
};

#define SCAN_CLAMD_CHUNK 65536u

/* scan_conn.c: start the exchange (0), or -1 no memory.  A connection
 * that fails at once still ends through scan_job_conn_done(), later, from
 * the loop. */
int scan_conn_start(struct scan_conn *c, const struct scan_request *rq);
/* Close the socket, free the events and buffers (no callback). */
void scan_conn_clear(struct scan_conn *c);

/* scan.c: c's result is final.  c stays valid until the loop runs the
 * job's completion, so the caller may still look at it. */
void scan_job_conn_done(struct scan_conn *c);

/* scan_conn.c, pure: the request bytes around the message.  clamd: the
 * command, a 4-byte big-endian length before every chunk of at most
 * SCAN_CLAMD_CHUNK octets, and the zero length that ends the stream.
 * rspamd: the HTTP/1.0 POST head with the envelope as rspamd's headers.
 * Both fill c->head and c->iov.  0 ok, -1 no memory. */
int scan_clamd_request(struct scan_conn *c, const char *data, size_t len);
int scan_rspamd_request(struct scan_conn *c, const struct scan_endpoint *ep,
                        const struct scan_request *rq);

#endif
