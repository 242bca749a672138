/*
 * scan: content scanners asked at end of DATA (issue 4), before anything
 * is queued: clamd (INSTREAM over TCP or a unix socket) and rspamd (HTTP
 * /checkv2).  Both run at once, asynchronously on the caller's libevent
 * loop, each within its own timeout; their answers become one verdict:
 * accept, hold (queued, held for the operator), tempfail (451) or refuse
 * (550 5.7.1 naming the scanner's verdict).  A scanner that is down,
 * late, or answers nonsense counts as failed: accepted with scan_fail =
 * open, 451 4.3.0 with scan_fail = closed; logged each time.
 *
 * The parsers of what scanners send back are pure functions (unit-tested
 * and fuzzed); scan_conn.c does the I/O, scan.c the jobs and verdicts.
 * Per tenant and per credential the context counts outcomes, for
 * containment to read (scan_counts_get()).
 */
#ifndef SLUICE_SCAN_H
#define SLUICE_SCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/config.h"

enum scan_scanner { SCAN_CLAMD, SCAN_RSPAMD, SCAN_NSCANNERS };

/* What one scanner said about one message. */
enum scan_outcome {
	SCAN_OUT_CLEAN,  /* clamd "OK", rspamd "no action" */
	SCAN_OUT_VIRUS,  /* clamd "NAME FOUND" */
	SCAN_OUT_REJECT, /* rspamd actions, as named */
	SCAN_OUT_SOFT_REJECT,
	SCAN_OUT_ADD_HEADER,
	SCAN_OUT_REWRITE_SUBJECT,
	SCAN_OUT_GREYLIST,
	SCAN_OUT_FAILED,  /* down, timeout, error reply, unreadable reply */
	SCAN_OUT_SKIPPED, /* larger than scan_max_size: not asked */
	SCAN_NOUTCOMES
};

/* What the message gets, most severe last: the most severe wins. */
enum scan_action { SCAN_ACCEPT, SCAN_HOLD, SCAN_TEMPFAIL, SCAN_REFUSE, SCAN_NACTIONS };

#define SCAN_NAME_MAX 128
#define SCAN_TEXT_MAX 200

struct scan_result {
	enum scan_outcome outcome;
	/* clamd: the signature name; rspamd: the action as sent */
	char name[SCAN_NAME_MAX];
	/* rspamd's messages.smtp_message, or why the scanner failed;
	 * printable ASCII only (other octets become '?') */
	char text[SCAN_TEXT_MAX];
	char symbols[SCAN_TEXT_MAX]; /* rspamd: the highest-scoring symbols, for the log */
	double score, required;      /* rspamd */
	uint64_t elapsed_ms;
};

struct scan_verdict {
	enum scan_action action;
	int code; /* 250 for accept and hold */
	char enhanced[16];
	char text[256];          /* the reply text for tempfail and refuse */
	const char *reason;      /* static log key: clean, skipped, virus, spam,
	                          * soft-reject, scanner-failed, ... */
	int by;                  /* the scanner that decided, -1 none */
	int ran[SCAN_NSCANNERS]; /* asked (or skipped) */
	struct scan_result results[SCAN_NSCANNERS];
};

/* ---- pure parsers ---------------------------------------------------------
 * Each returns 1 when the reply is complete (*r filled), 0 when more bytes
 * are needed (eof 0), -1 when the bytes are not such a reply.  Inputs need
 * not be NUL-terminated. */

#define SCAN_CLAMD_REPLY_MAX 4096        /* a reply line, NUL or LF included */
#define SCAN_HTTP_HEADER_MAX 16384       /* status line and headers */
#define SCAN_HTTP_BODY_MAX (1024 * 1024) /* rspamd's JSON */

/* clamd's INSTREAM reply: "stream: OK", "stream: NAME FOUND", "... ERROR",
 * ended by NUL (z-commands) or LF.  FOUND gives SCAN_OUT_VIRUS with the
 * name, OK SCAN_OUT_CLEAN, ERROR SCAN_OUT_FAILED with the text. */
int scan_clamd_reply_parse(const char *buf, size_t len, int eof, struct scan_result *r);

struct scan_http_response {
	int status;
	size_t body_off, body_len; /* within the buffer parsed */
};
/* An HTTP/1.x response: the body by Content-Length, or up to EOF without
 * one.  Transfer-Encoding other than identity is -1 (never asked for). */
int scan_http_response_parse(const char *buf, size_t len, int eof, struct scan_http_response *r);

/* rspamd's /checkv2 JSON (jansson): action, score, required_score, the
 * symbols, messages.smtp_message.  0 with r->outcome set (an unknown
 * action or {"error": ...} gives SCAN_OUT_FAILED), -1 not such JSON. */
int scan_rspamd_reply_parse(const char *json, size_t len, struct scan_result *r);

/* ---- endpoints ------------------------------------------------------------ */

struct scan_endpoint {
	struct sockaddr_storage ss;
	socklen_t sslen;
	char host[80];  /* for the Host: header; "localhost" for a unix socket */
	char path[256]; /* HTTP path; "/checkv2" by default */
};
/* "IP:PORT", "[IPv6]:PORT", "unix:/PATH", "/PATH"; with http set also
 * "http://IP:PORT[/PATH]".  0, or -1 with *why_r. */
int scan_endpoint_parse(const char *s, int http, struct scan_endpoint *e_r, const char **why_r);

/* ---- the verdict ---------------------------------------------------------- */

/* One verdict from the scanners that ran (ran[i]), per cfg: the most
 * severe action wins, the first scanner on a tie.  Pure. */
void scan_decide(const struct config_scan *cfg, const int ran[SCAN_NSCANNERS],
                 const struct scan_result results[SCAN_NSCANNERS], struct scan_verdict *v_r);

const char *scan_outcome_name(enum scan_outcome o);
const char *scan_action_name(enum scan_action a);
const char *scan_scanner_name(enum scan_scanner s);

/* ---- asynchronous scanning ------------------------------------------------ */

struct event_base;
struct scan;
struct scan_job;

/* 1 if cfg names at least one scanner. */
int scan_configured(const struct config_scan *cfg);
/* A context on base's loop; cfg is kept by pointer.  NULL with *err_r
 * (malloc'd) when an address does not parse or no memory. */
struct scan *scan_new(struct event_base *base, const struct config_scan *cfg, char **err_r);
/* Jobs still running are cancelled (their callbacks never run). */
void scan_free(struct scan **sc);

struct scan_request {
	const char *data; /* the message; valid until the callback or cancel */
	size_t len;
	uint64_t session;     /* for the log */
	const char *queue_id; /* rspamd's Queue-Id, the log */
	const char *sender;   /* "" for the null sender */
	const char *const *rcpts;
	size_t nrcpts;
	const char *client_addr; /* numeric */
	const char *helo;
	const char *user;     /* the credential, NULL without AUTH */
	int64_t tenant_id;    /* counted per tenant and per credential */
	const char *hostname; /* ours: rspamd's MTA-Name */
};

/* Called on the loop, never from inside scan_start(); the job is already
 * freed (do not cancel it), v is valid during the call only. */
typedef void scan_done_cb(void *ctx, const struct scan_verdict *v);

/* Ask every configured scanner about rq->data (copies every string but
 * the data).  0 with *job_r: cb runs exactly once unless the job is
 * cancelled first; -1 out of memory (cb never runs). */
int scan_start(struct scan *sc, const struct scan_request *rq, scan_done_cb *cb, void *ctx,
               struct scan_job **job_r);
/* Stop a job: its connections close, its callback never runs. */
void scan_job_cancel(struct scan_job **job);

/* ---- counts for containment ---------------------------------------------- */

struct scan_counts {
	uint64_t messages;                /* verdicts given */
	uint64_t outcome[SCAN_NOUTCOMES]; /* per scanner answer */
	uint64_t action[SCAN_NACTIONS];   /* per verdict */
};
/* Counts since start of the tenant (credential NULL: all its credentials
 * and trusted-network mail together), or of one credential ("" for
 * mail without AUTH).  1 found, 0 nothing counted yet (*c_r zeroed). */
int scan_counts_get(const struct scan *sc, int64_t tenant_id, const char *credential,
                    struct scan_counts *c_r);

#endif
