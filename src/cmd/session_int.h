/*
 * session_int: what the files of one SMTP session share (session.c, the
 * driver and the transaction; session_auth.c, AUTH; session_policy.c,
 * the outbound policy's checks of MAIL, RCPT and DATA).  Every function
 * runs on sluiced's loop thread.
 */
#ifndef SLUICE_CMD_SESSION_INT_H
#define SLUICE_CMD_SESSION_INT_H

#include "cmd/daemon.h"
#include "smtp/smtp.h"

enum session_wait {
	WAIT_NONE,
	WAIT_AUTH,    /* argon2 pool */
	WAIT_SPOOL,   /* group commit */
	WAIT_SCAN,    /* content scanners (scan/), on this loop */
};

struct session {
	struct sluiced *d;
	struct session *prev, *next;
	struct daemon_listener *listener;
	struct net_conn conn;
	struct event *ev;
	struct smtp_server *smtp;
	uint64_t id;
	struct sockaddr_storage ss;
	char addr[NET_ADDR_STRLEN];

	enum session_wait wait;
	int handshake;        /* TLS handshake in progress */
	int after_starttls;   /* the handshake follows STARTTLS (not implicit) */
	int closing;          /* flush output, then close */
	int refused;          /* refused at connect: no banner after implicit TLS */
	int greet_pending;    /* in the listener's greet_pause: s->ev is a timer */
	int dead;             /* connection gone; free when nothing is pending */
	int ip_counted;

	/* who sends: from AUTH, or from a trusted network on the relay */
	int64_t tenant_id;
	char tenant[STORE_NAME_MAX + 1];
	char auth_user[STORE_NAME_MAX + 1];
	int64_t credential_id;      /* the login's, after AUTH */
	struct policy_txn txn;      /* limits reserved by this transaction */
	const char *data_refusal;   /* usage reason of a DATA refusal, "data" when unset */
	/* AUTH in flight: the stored hash, to cache a success */
	char *auth_hash;
	char *auth_password;

	uint32_t messages;

	/* content scanners: the job, then its verdict for session_scan() */
	struct scan_job *scan;
	struct smtp_server_event scan_ev; /* the DATA event, data still the SMTP session's */
	int scan_ready;
	int scan_hold;
	enum scan_action scan_action;
	int scan_code;
	char scan_enhanced[16];
	char scan_text[256];
	const char *scan_reason;
	char scan_id[SPOOL_ID_LEN + 1]; /* the queue id the scanners were told */
};

/* session.c */
void session_free(struct session *s);
void session_run(struct session *s);
/* End of DATA: the checks, then the spool; run again by the scanners. */
void session_data(struct session *s, const struct smtp_server_event *ev);

/* session_auth.c: AUTH, verified on the argon2 pool; the result comes
 * back through session_complete() into session_auth_finish(). */
void session_auth(struct session *s, const struct smtp_server_event *ev);
void session_auth_finish(struct session *s, int ok);

/* session_policy.c */
void session_refused(struct session *s, const char *reason);
void session_limits_mail(struct session *s, const struct smtp_server_event *ev,
			 struct policy_verdict *v);
void session_rcpt(struct session *s, const struct smtp_server_event *ev);
int session_limits_data(struct session *s, const struct smtp_server_event *ev);
void session_data_after(struct session *s);
int session_data_headers(struct session *s, const struct smtp_server_event *ev,
			 char from_domain[SMTP_DOMAIN_MAX + 1]);
int session_scan(struct session *s, const struct smtp_server_event *ev);
enum policy_contain_level session_contain(struct session *s, const struct smtp_server_event *ev,
					  const struct spool_message *m);
void session_limits_done(struct session *s, int queued);

#endif
