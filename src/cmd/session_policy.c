/*
 * session_policy: the outbound policy's checks of one transaction, as
 * they come: the message rates and SIZE at MAIL, the suppression list and
 * the recipient limits at RCPT, the size, the From:/Sender: headers, the
 * content scanners and containment at the end of DATA; then the count of
 * what was queued, or the reservations given back.  A refusal names its
 * reason in the log and in the tenant's usage (refused:REASON).
 */
#include "cmd/session_int.h"

#include <stdlib.h>
#include <string.h>

/* The client as the policy sees it. */
static struct policy_client session_client(const struct session *s)
{
	return (struct policy_client){
	    .tenant_id = s->tenant_id,
	    .tenant = s->tenant,
	    .submission = s->listener->cfg->mode == CONFIG_MODE_SUBMISSION,
	    .credential_id = s->credential_id,
	    .user = s->credential_id ? s->auth_user : NULL,
	};
}

/* Count a refusal in the tenant's usage (refused:REASON). */
void session_refused(struct session *s, const char *reason)
{
	daemon_metrics_refused(s->d->metrics, reason);
	policy_usage_refused(s->d->usage, s->tenant_id, s->credential_id, reason,
			     util_wall_seconds());
}

/* MAIL, after the sender check: the message rates and SIZE=. */
void session_limits_mail(struct session *s, const struct smtp_server_event *ev,
				struct policy_verdict *v)
{
	struct policy_client c = session_client(s);
	const char *reason = "?";

	policy_limits_mail(s->d->limits, s->d->store, &c, ev->u.mail.size, util_wall_us(),
			   &s->txn, v, &reason);
	if (v->code / 100 != 2)
		session_refused(s, reason);
}

/* RCPT: the suppression list, then the recipient limits and quotas. */
void session_rcpt(struct session *s, const struct smtp_server_event *ev)
{
	struct policy_client c = session_client(s);
	struct policy_verdict v;
	const char *reason = "suppressed";
	char to[SMTP_PATH_MAX * 2];

	if (policy_check_suppressed(s->d->store, &c, ev->u.rcpt.rcpt, &v) < 0)
		reason = "store-error";
	else if (v.code / 100 == 2)
		policy_limits_rcpt(s->d->limits, s->d->store, &c, util_wall_us(), &s->txn, &v,
				   &reason);
	else
		policy_limits_count_refusal(s->d->limits, &c);
	if (v.code / 100 != 2) {
		smtp_address_format(ev->u.rcpt.rcpt, to, sizeof to);
		log_info("session=%016llx rcpt refused client=%s tenant=%s to=<%s> code=%d "
			 "reason=%s text=\"%s\"",
			 (unsigned long long)s->id, s->addr, s->tenant, to, v.code, reason, v.text);
		session_refused(s, reason);
		if (v.code / 100 == 5 && strcmp(reason, "suppressed") == 0)
			daemon_contain_failed(s->d, s->id, s->tenant_id, s->tenant,
					      s->credential_id,
					      s->credential_id ? s->auth_user : NULL, 1);
	}
	smtp_server_decide(s->smtp, v.code, v.enhanced, "%s", v.text);
}

/* End of DATA: the size limit of the tenant and login.  0 go on, -1
 * decided. */
int session_limits_data(struct session *s, const struct smtp_server_event *ev)
{
	struct policy_client c = session_client(s);
	struct policy_verdict v;
	const char *reason = "?";

	policy_limits_data(s->d->limits, s->d->store, &c, ev->u.data.len, util_wall_us(), &v,
			   &reason);
	if (v.code / 100 == 2)
		return 0;
	log_info("session=%016llx data refused client=%s tenant=%s code=%d reason=%s text=\"%s\"",
		 (unsigned long long)s->id, s->addr, s->tenant, v.code, reason, v.text);
	s->data_refusal = reason;
	smtp_server_decide(s->smtp, v.code, v.enhanced, "%s", v.text);
	return -1;
}

/* After session_data(): a message not on its way to the spool was
 * refused; its reservations go back. */
void session_data_after(struct session *s)
{
	if (s->wait != WAIT_NONE)
		return;
	session_refused(s, s->data_refusal ? s->data_refusal : "data");
	s->data_refusal = NULL;
	policy_limits_release(s->d->limits, &s->txn, 0);
}

/* From:/Sender: must be the tenant's (policy/headers.c): refused before
 * anything is assembled or queued.  The first From: mailbox's domain,
 * which DKIM signs for, goes to from_domain.  0 go on, -1 decided. */
int session_data_headers(struct session *s, const struct smtp_server_event *ev,
				char from_domain[SMTP_DOMAIN_MAX + 1])
{
	struct policy_client c = {
		.tenant_id = s->tenant_id,
		.tenant = s->tenant,
		.submission = s->listener->cfg->mode == CONFIG_MODE_SUBMISSION,
	};
	struct policy_verdict v;
	struct policy_headers h;
	const char *reason = "?";

	from_domain[0] = '\0';
	if (policy_headers_parse(ev->u.data.data, ev->u.data.len, &h) < 0) {
		reason = "no-memory";
		v = (struct policy_verdict){.code = 451, .enhanced = "4.3.0"};
		util_strlcpy(v.text, "Temporary local problem, try again later", sizeof v.text);
	} else {
		/* a store error comes back as a 451 verdict, reason=store-error */
		policy_headers_check(s->d->store, &c, &h, &v, &reason);
		if (v.code / 100 == 2 && h.nfrom > 0)
			util_strlcpy(from_domain, h.from[0].domain, SMTP_DOMAIN_MAX + 1);
		policy_headers_clear(&h);
	}
	if (v.code / 100 == 2)
		return 0;
	log_info("session=%016llx data refused client=%s tenant=%s code=%d reason=%s text=\"%s\"",
		 (unsigned long long)s->id, s->addr, s->tenant, v.code, reason, v.text);
	s->data_refusal = reason; /* static */
	smtp_server_decide(s->smtp, v.code, v.enhanced, "%s", v.text);
	return -1;
}

static void session_scan_done(void *ctx, const struct scan_verdict *v)
{
	struct session *s = ctx;
	int spam = 0, virus = 0;

	/* spam and viruses are containment's signals, whatever the action */
	for (int k = 0; k < SCAN_NSCANNERS; k++) {
		enum scan_outcome o = v->results[k].outcome;
		if (!v->ran[k])
			continue;
		virus |= o == SCAN_OUT_VIRUS;
		spam |= o == SCAN_OUT_REJECT || o == SCAN_OUT_SOFT_REJECT ||
			o == SCAN_OUT_ADD_HEADER || o == SCAN_OUT_REWRITE_SUBJECT;
	}
	daemon_contain_scan(s->d, s->id, s->tenant_id, s->tenant, s->credential_id, s->auth_user,
			    spam, virus);
	daemon_metrics_scan(s->d->metrics, v);
	s->scan = NULL; /* the job is gone */
	s->wait = WAIT_NONE;
	if (s->dead) {
		session_free(s);
		return;
	}
	s->scan_ready = 1;
	s->scan_action = v->action;
	s->scan_code = v->code;
	s->scan_reason = v->reason;
	util_strlcpy(s->scan_enhanced, v->enhanced, sizeof s->scan_enhanced);
	util_strlcpy(s->scan_text, v->text, sizeof s->scan_text);
	session_data(s, &s->scan_ev); /* again, now with the verdict */
	session_data_after(s);
	session_run(s);
}

static void session_scan_start(struct session *s, const struct smtp_server_event *ev)
{
	size_t n = smtp_server_rcpt_count(s->smtp);
	char from[SMTP_PATH_MAX * 2], (*rcpt)[SMTP_PATH_MAX * 2] = calloc(n ? n : 1, sizeof *rcpt);
	const char **rcpts = calloc(n ? n : 1, sizeof *rcpts);
	struct scan_request rq;
	int r = -1;

	spool_new_id(s->d->spool, s->scan_id);
	if (rcpt != NULL && rcpts != NULL) {
		smtp_address_format(smtp_server_sender(s->smtp), from, sizeof from);
		for (size_t i = 0; i < n; i++) {
			smtp_address_format(smtp_server_rcpt(s->smtp, i), rcpt[i], sizeof rcpt[i]);
			rcpts[i] = rcpt[i];
		}
		rq = (struct scan_request){
			.data = ev->u.data.data,
			.len = ev->u.data.len,
			.session = s->id,
			.queue_id = s->scan_id,
			.sender = from,
			.rcpts = rcpts,
			.nrcpts = n,
			.client_addr = s->addr,
			.helo = smtp_server_helo(s->smtp),
			.user = smtp_server_authenticated(s->smtp) ? s->auth_user : NULL,
			.tenant_id = s->tenant_id,
			.hostname = s->d->cfg.hostname,
		};
		r = scan_start(s->d->scan, &rq, session_scan_done, s, &s->scan);
	}
	free(rcpt);
	free(rcpts);
	if (r < 0) {
		smtp_server_decide(s->smtp, 451, "4.3.0", "Temporary local problem, try again later");
		return;
	}
	s->scan_ev = *ev;
	s->wait = WAIT_SCAN;
}

/* The scanners' word on the message, at end of DATA after the header
 * checks.  The first call asks them (WAIT_SCAN); session_scan_done() runs
 * session_data() again and this call then applies the verdict.  1 go on
 * and queue (on hold when s->scan_hold), 0 stop (waiting, or decided). */
int session_scan(struct session *s, const struct smtp_server_event *ev)
{
	s->scan_hold = 0;
	if (s->d->scan == NULL)
		return 1;
	if (!s->scan_ready) {
		session_scan_start(s, ev);
		return 0;
	}
	s->scan_ready = 0;
	if (s->scan_action == SCAN_ACCEPT || s->scan_action == SCAN_HOLD) {
		s->scan_hold = s->scan_action == SCAN_HOLD;
		return 1;
	}
	log_info("queue=%s session=%016llx data refused client=%s tenant=%s code=%d "
		 "reason=scan-%s text=\"%s\"",
		 s->scan_id, (unsigned long long)s->id, s->addr, s->tenant, s->scan_code,
		 s->scan_reason, s->scan_text);
	s->scan_id[0] = '\0';
	s->data_refusal = "scan";
	smtp_server_decide(s->smtp, s->scan_code, s->scan_enhanced, "%s", s->scan_text);
	return 0;
}

/* Containment counts the message about to be queued (its recipients in
 * m): HOLD queues it held, SUSPEND refuses it (decided here). */
enum policy_contain_level session_contain(struct session *s,
						 const struct smtp_server_event *ev,
						 const struct spool_message *m)
{
	const char **rcpts = calloc(m->nrcpts ? m->nrcpts : 1, sizeof *rcpts);
	struct contain_msg cm = {.session_id = s->id, .tenant_id = s->tenant_id,
				 .credential_id = s->credential_id, .tenant = s->tenant,
				 .user = s->auth_user, .rcpts = rcpts,
				 .data = ev->u.data.data, .len = ev->u.data.len};
	struct policy_verdict v;
	enum policy_contain_level level;

	if (rcpts == NULL)
		return POLICY_CONTAIN_NONE; /* counted with the next one */
	for (size_t i = 0; i < m->nrcpts; i++)
		rcpts[cm.nrcpts++] = m->rcpts[i].addr;
	level = daemon_contain_data(s->d, &cm, &v);
	free(rcpts);
	if (level == POLICY_CONTAIN_SUSPEND) {
		log_info("session=%016llx data refused client=%s tenant=%s code=%d reason=contained",
			 (unsigned long long)s->id, s->addr, s->tenant, v.code);
		s->data_refusal = "contained";
		smtp_server_decide(s->smtp, v.code, v.enhanced, "%s", v.text);
	}
	return level;
}

/* The spool's answer: a queued message counts as sent (usage, quotas),
 * anything else gives its reservations back. */
void session_limits_done(struct session *s, int queued)
{
	struct sluiced *d = s->d;
	int64_t now = util_wall_seconds();

	if (!queued) {
		policy_limits_release(d->limits, &s->txn, 0);
		return;
	}
	policy_usage_count(d->usage, s->tenant_id, s->credential_id, "accepted_messages", 1, now);
	daemon_metrics_accepted(d->metrics, s->txn.rcpts);
	policy_usage_count(d->usage, s->tenant_id, s->credential_id, "accepted_recipients",
			   s->txn.rcpts, now);
	policy_limits_commit(d->limits, &s->txn);
}
