/*
 * session_auth: AUTH for one session.  The password is checked on the
 * argon2 pool (auth/), or at once from the cache of recent successes;
 * the tenant and the login's suspension are read again after it, and the
 * login's bound networks decide last (policy/credential.c).  A refusal
 * for any reason but a temporary fault is the reply a wrong password
 * gets, so the client learns nothing it could use.
 */
#include "cmd/session_int.h"

#include <stdlib.h>
#include <string.h>

static void auth_done(void *ctx, int ok);
static int session_auth_network(struct session *s, const struct store_credential *cred);

void session_auth(struct session *s, const struct smtp_server_event *ev)
{
	struct sluiced *d = s->d;
	struct store_credential cred;
	char *err = NULL;
	int64_t now = util_wall_seconds();
	const char *user = ev->u.auth.username;
	int r;

	/* RFC 4616 section 2: an authorization identity other than the
	 * authentication identity must fail; sluice has no proxy users. */
	if (ev->u.auth.authzid != NULL && ev->u.auth.authzid[0] != '\0' &&
	    strcmp(ev->u.auth.authzid, user) != 0) {
		log_warn("session=%016llx auth refused client=%s user=\"%s\" reason=authzid",
			 (unsigned long long)s->id, s->addr, user);
		daemon_metrics_auth(d->metrics, "authzid");
		smtp_server_decide(s->smtp, 535, "5.7.8",
				   "Authorization identity must be empty or the user name");
		return;
	}
	switch (auth_limiter_check(d->auth_limiter, s->addr, user, now)) {
	case AUTH_LIMIT_IP:
		log_warn("session=%016llx auth refused client=%s user=\"%s\" reason=ip-limit",
			 (unsigned long long)s->id, s->addr, user);
		daemon_metrics_auth(d->metrics, "rate-limit");
		smtp_server_decide(s->smtp, 421, "4.7.0",
				   "Too many failed logins from your address, try again later");
		return;
	case AUTH_LIMIT_USER:
		log_warn("session=%016llx auth refused client=%s user=\"%s\" reason=user-limit",
			 (unsigned long long)s->id, s->addr, user);
		daemon_metrics_auth(d->metrics, "rate-limit");
		smtp_server_decide(s->smtp, 454, "4.7.0",
				   "Too many failed logins for this user, try again later");
		return;
	case AUTH_LIMIT_OK:
		break;
	}

	r = store_credential_lookup(d->store, user, &cred, &err);
	if (r < 0) {
		log_err("session=%016llx auth store error=\"%s\"", (unsigned long long)s->id,
			err ? err : "?");
		free(err);
		daemon_metrics_auth(d->metrics, "temporary");
		smtp_server_decide(s->smtp, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	free(err); /* set for "not found" too */
	free(s->auth_hash);
	s->auth_hash = NULL;
	s->tenant_id = 0;
	s->credential_id = 0;
	util_strlcpy(s->auth_user, user, sizeof s->auth_user);
	if (r == 0) {
		s->auth_hash = strdup(cred.hash);
		s->tenant_id = cred.tenant_id;
		util_strlcpy(s->auth_user, cred.username, sizeof s->auth_user);
	}
	s->auth_password = strdup(ev->u.auth.password);
	if (r == 0 && s->auth_password != NULL &&
	    auth_cache_check(d->auth_cache, user, ev->u.auth.password, cred.hash, now)) {
		/* Decide here, synchronously: going through session_complete()
		 * would run the session re-entrantly from inside session_run(). */
		session_auth_finish(s, 1);
		return;
	}
	if (s->auth_password == NULL ||
	    auth_pool_submit(d->auth_pool, s->auth_hash, ev->u.auth.password, auth_done, s) < 0) {
		log_err("session=%016llx auth pool submit failed", (unsigned long long)s->id);
		daemon_metrics_auth(d->metrics, "temporary");
		smtp_server_decide(s->smtp, 454, "4.7.0", "Temporary authentication failure");
		return;
	}
	s->wait = WAIT_AUTH;
}

static void auth_done(void *ctx, int ok)
{
	struct session *s = ctx;
	struct daemon_completion *c = calloc(1, sizeof *c);

	if (c == NULL)
		log_panic("out of memory queueing an auth completion");
	c->kind = COMPLETION_AUTH;
	c->session = s;
	c->status = ok;
	daemon_complete(s->d, c);
}

void session_auth_finish(struct session *s, int ok)
{
	struct sluiced *d = s->d;
	struct store_credential cred;
	char *err = NULL;
	int64_t now = util_wall_seconds();
	const char *user = s->auth_user;

	s->wait = WAIT_NONE;
	if (s->dead)
		goto out;
	if (!ok || s->auth_hash == NULL) {
		auth_limiter_fail(d->auth_limiter, s->addr, s->auth_user, now);
		log_warn("session=%016llx auth failed client=%s user=\"%s\"",
			 (unsigned long long)s->id, s->addr, s->auth_user);
		daemon_metrics_auth(d->metrics, "credentials");
		s->tenant_id = 0;
		smtp_server_decide(s->smtp, 535, "5.7.8", "Authentication credentials invalid");
		goto out;
	}
	/* Re-read: the tenant may have been suspended while argon2 ran. */
	if (store_credential_lookup(d->store, user, &cred, &err) != 0) {
		free(err);
		daemon_metrics_auth(d->metrics, "temporary");
		smtp_server_decide(s->smtp, 454, "4.7.0", "Temporary authentication failure");
		goto out;
	}
	auth_cache_add(d->auth_cache, user, s->auth_password, s->auth_hash, now);
	if (cred.tenant_suspended || cred.suspended) {
		struct store_tenant t;
		log_warn("session=%016llx auth refused client=%s user=\"%s\" reason=suspended",
			 (unsigned long long)s->id, s->addr, user);
		daemon_metrics_auth(d->metrics, "suspended");
		if (store_tenant_get_id(d->store, cred.tenant_id, &t, &err) != 0)
			free(err);
		s->tenant_id = 0;
		smtp_server_decide(s->smtp, 535, "5.7.8",
				   "Account suspended; contact your provider");
		goto out;
	}
	{
		struct store_tenant t;
		if (store_tenant_get_id(d->store, cred.tenant_id, &t, &err) != 0) {
			free(err);
			s->tenant_id = 0;
			daemon_metrics_auth(d->metrics, "temporary");
			smtp_server_decide(s->smtp, 454, "4.7.0", "Temporary authentication failure");
			goto out;
		}
		util_strlcpy(s->tenant, t.name, sizeof s->tenant);
	}
	if (session_auth_network(s, &cred) < 0)
		goto out;
	s->credential_id = cred.id;
	auth_limiter_success(d->auth_limiter, user);
	log_info("session=%016llx auth ok client=%s user=\"%s\" tenant=%s",
		 (unsigned long long)s->id, s->addr, user, s->tenant);
	daemon_metrics_auth(d->metrics, NULL);
	smtp_server_decide(s->smtp, 235, "2.7.0", "Authentication successful");
out:
	if (s->auth_password) {
		util_wipe(s->auth_password, strlen(s->auth_password));
		free(s->auth_password);
		s->auth_password = NULL;
	}
	free(s->auth_hash);
	s->auth_hash = NULL;
}

/* After a good password: the login's bound networks (refuse or flag, per
 * credential_network_mode) and whether its network is new.  A refusal is
 * the reply a wrong password gets, counted as a failure: the client
 * learns nothing it could use.  0 go on, -1 decided. */
static int session_auth_network(struct session *s, const struct store_credential *cred)
{
	struct sluiced *d = s->d;
	char net[STORE_CIDR_MAX + 1];
	int outside = 0, isnew = 0, refuse = !d->cfg.policy.credential_network_flag;

	if (policy_auth_network(d->limits, d->store, cred->tenant_id, cred->id,
				(const struct sockaddr *)&s->ss, refuse, &outside, &isnew, net) < 0) {
		s->tenant_id = 0;
		daemon_metrics_auth(d->metrics, "temporary");
		smtp_server_decide(s->smtp, 454, "4.7.0", "Temporary authentication failure");
		return -1;
	}
	if (isnew)
		log_warn("session=%016llx auth new-network client=%s user=\"%s\" network=%s",
			 (unsigned long long)s->id, s->addr, cred->username, net);
	/* both are signals for containment, refused or not */
	if (isnew || outside)
		daemon_contain_auth(d, cred->tenant_id, cred->id, isnew, outside);
	if (outside && refuse) {
		log_warn("session=%016llx auth refused client=%s user=\"%s\" "
			 "reason=outside-bound-networks",
			 (unsigned long long)s->id, s->addr, cred->username);
		daemon_metrics_auth(d->metrics, "network");
		auth_limiter_fail(d->auth_limiter, s->addr, cred->username, util_wall_seconds());
		s->tenant_id = 0;
		smtp_server_decide(s->smtp, 535, "5.7.8", "Authentication credentials invalid");
		return -1;
	}
	if (outside)
		log_warn("session=%016llx auth flagged client=%s user=\"%s\" "
			 "reason=outside-bound-networks",
			 (unsigned long long)s->id, s->addr, cred->username);
	return 0;
}
