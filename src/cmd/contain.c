/*
 * contain: sluiced's side of containment (issue 4).  The model
 * (policy/contain.c) scores every accepted message; here its levels take
 * effect and are kept:
 *   throttle  MAIL gets 451 4.7.1 until throttle_interval has passed
 *             since the subject's last message;
 *   hold      the message is queued on hold (`sluice queue release|delete`);
 *   suspend   the message is refused (550 5.7.1) and the login (or the
 *             tenant) is suspended in the store, so AUTH fails from then on.
 * Every change of level is logged with its signals and stored with an
 * event (store_contain_set); the operator undoes it with `sluice
 * credential resume` or `sluice tenant release`, which clear the stored
 * level: a contained subject's next MAIL finds it cleared and the model
 * lets it go.  Baselines are saved with the usage flush and at exit, and
 * loaded at start with the stored levels.
 *
 * Failures count as a signal: recipients refused for good at RCPT (the
 * suppression list) and bounces.  Bounces are known on the delivery
 * thread, from the login recorded with the message in the spool; they
 * wait in contain_pending, merged per sender, until the main loop takes
 * them to the model.
 */
#include "cmd/daemon.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTAIN_PENDING 256 /* senders with bounces waiting; more are dropped */

struct contain_pending {
	pthread_mutex_t mu;
	struct event *ev;  /* made active from the delivery thread */
	size_t n;
	uint64_t dropped;
	struct contain_bounces {
		int64_t tenant_id, credential_id;
		uint32_t failed;
	} e[CONTAIN_PENDING];
};

static void contain_pending_run(evutil_socket_t fd, short what, void *arg);
static void contain_lifts(struct sluiced *d);

int daemon_contain_start(struct sluiced *d, char **err_r)
{
	struct store_contain_baseline *b = NULL;
	struct store_contain_state *levels = NULL;
	size_t nb = 0, nl = 0;
	struct policy_contain_config cc;

	if (!d->cfg.policy.contain) {
		log_info("contain off");
		return 0;
	}
	policy_contain_config_default(&cc);
	cc.rcpts_floor = d->cfg.policy.contain_rcpts_floor;
	cc.throttle_interval = d->cfg.policy.contain_throttle_interval;
	if ((d->contain = policy_contain_new(&cc)) == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	if (store_contain_baselines_load(d->store, &b, &nb, err_r) < 0)
		return -1;
	if (policy_contain_import(d->contain, b, nb) < 0) {
		store_contain_baselines_free(b, nb);
		*err_r = strdup("out of memory");
		return -1;
	}
	store_contain_baselines_free(b, nb);
	if (store_contain_list(d->store, 0, &levels, &nl, err_r) < 0)
		return -1;
	for (size_t i = 0; i < nl; i++)
		policy_contain_set_level(d->contain, (enum policy_subject_kind)levels[i].kind,
					 levels[i].subject_id, levels[i].tenant_id,
					 (enum policy_contain_level)levels[i].level, levels[i].since);
	free(levels);
	if ((d->contain_pending = calloc(1, sizeof *d->contain_pending)) == NULL ||
	    (d->contain_pending->ev = event_new(d->base, -1, 0, contain_pending_run, d)) == NULL) {
		*err_r = strdup("out of memory");
		return -1;
	}
	pthread_mutex_init(&d->contain_pending->mu, NULL);
	log_info("contain start baselines=%zu contained=%zu", nb, nl);
	return 0;
}

void daemon_contain_save(struct sluiced *d)
{
	struct store_contain_baseline *b = NULL;
	size_t n = 0;
	char *err = NULL;

	if (d->contain != NULL)
		contain_lifts(d);
	if (d->contain == NULL || policy_contain_export(d->contain, &b, &n) < 0 || n == 0) {
		store_contain_baselines_free(b, n);
		return;
	}
	if (store_contain_baselines_save(d->store, b, n, &err) < 0) {
		log_err("contain baselines-save-failed count=%zu error=\"%s\"", n, err ? err : "?");
		free(err);
	}
	store_contain_baselines_free(b, n);
}

void daemon_contain_stop(struct sluiced *d)
{
	struct contain_pending *p = d->contain_pending;

	if (p != NULL) {
		/* the delivery engine has stopped: nobody adds any more */
		contain_pending_run(-1, 0, d);
		if (p->ev != NULL)
			event_free(p->ev);
		pthread_mutex_destroy(&p->mu);
		free(p);
		d->contain_pending = NULL;
	}
	daemon_contain_save(d);
	policy_contain_free(&d->contain);
}

void daemon_contain_auth(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			 int new_network, int outside)
{
	if (d->contain == NULL)
		return;
	policy_contain_auth(d->contain, tenant_id, credential_id, new_network, outside,
			    util_wall_seconds());
}

/* The operator cleared a stored level: the model lets the subject go. */
static void contain_cleared(struct sluiced *d, enum policy_subject_kind kind, int64_t id,
			    int64_t now)
{
	struct store_contain_state st;
	char *err = NULL;

	if (id <= 0 || policy_contain_level(d->contain, kind, id, now) < POLICY_CONTAIN_HOLD)
		return;
	if (store_contain_get(d->store, kind, id, &st, &err) == STORE_NOTFOUND) {
		policy_contain_release(d->contain, kind, id);
		daemon_metrics_contain(d->metrics, kind, POLICY_CONTAIN_NONE);
		log_info("contain released %s=%lld by=operator",
			 kind == POLICY_TENANT ? "tenant_id" : "credential_id", (long long)id);
	}
	free(err);
}

int daemon_contain_mail(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			struct policy_verdict *v)
{
	int64_t now = util_wall_seconds(), wait;

	if (d->contain == NULL)
		return 0;
	contain_cleared(d, POLICY_CREDENTIAL, credential_id, now);
	contain_cleared(d, POLICY_TENANT, tenant_id, now);
	if ((credential_id > 0 && policy_contain_level(d->contain, POLICY_CREDENTIAL, credential_id,
						       now) == POLICY_CONTAIN_SUSPEND) ||
	    policy_contain_level(d->contain, POLICY_TENANT, tenant_id, now) ==
		POLICY_CONTAIN_SUSPEND) {
		v->code = 550;
		snprintf(v->enhanced, sizeof v->enhanced, "5.7.1");
		snprintf(v->text, sizeof v->text,
			 "Sending is suspended for unusual activity; contact your provider");
		return -1;
	}
	wait = credential_id > 0 ? policy_contain_wait(d->contain, POLICY_CREDENTIAL, credential_id,
						      now)
				 : policy_contain_wait(d->contain, POLICY_TENANT, tenant_id, now);
	if (wait > 0) {
		v->code = 451;
		snprintf(v->enhanced, sizeof v->enhanced, "4.7.1");
		snprintf(v->text, sizeof v->text,
			 "Sending slowed down for unusual activity; try again in %lld seconds",
			 (long long)wait);
		return -1;
	}
	return 0;
}

static void contain_signals(const struct policy_contain_signals *s, char *out, size_t size)
{
	snprintf(out, size,
		 "score %.2f: domains %.2f volume %.2f network %.2f fanout %.2f failures %.2f "
		 "content %.2f egress %.2f",
		 s->total, s->domains, s->volume, s->network, s->fanout, s->failures, s->content,
		 s->egress);
}

/* A level went up: log it, store it, suspend in the store.  why: the
 * signals, or NULL for reason. */
static void contain_raised(struct sluiced *d, uint64_t session_id, enum policy_subject_kind kind,
			   int64_t id, int64_t tenant_id, const char *name,
			   enum policy_contain_level level, const struct policy_contain_signals *why,
			   const char *reason)
{
	struct store_contain_state st;
	char *err = NULL;

	memset(&st, 0, sizeof st);
	if (why != NULL)
		contain_signals(why, st.reason, sizeof st.reason);
	else
		snprintf(st.reason, sizeof st.reason, "%s", reason);
	if (session_id != 0)
		log_warn("session=%016llx contain %s=\"%s\" level=%s reason=\"%s\"",
			 (unsigned long long)session_id, kind == POLICY_TENANT ? "tenant" : "user",
			 name, policy_contain_level_name(level), st.reason);
	else
		log_warn("contain %s=\"%s\" level=%s reason=\"%s\"",
			 kind == POLICY_TENANT ? "tenant" : "user", name,
			 policy_contain_level_name(level), st.reason);
	st.kind = kind;
	st.subject_id = id;
	st.tenant_id = tenant_id;
	st.level = (int)level;
	daemon_metrics_contain(d->metrics, kind, level);
	snprintf(st.by, sizeof st.by, "sluiced");
	if (store_contain_set(d->store, &st, &err) < 0) {
		log_err("contain store-failed error=\"%s\"", err ? err : "?");
		free(err);
		err = NULL;
	}
	if (level != POLICY_CONTAIN_SUSPEND)
		return;
	if ((kind == POLICY_CREDENTIAL ? store_credential_set_suspended(d->store, name, 1, &err)
				       : store_tenant_set_suspended(d->store, name, 1, &err)) != 0) {
		log_err("contain suspend-failed %s=\"%s\" error=\"%s\"",
			kind == POLICY_TENANT ? "tenant" : "user", name, err ? err : "?");
		free(err);
	}
}

/* For the other sources of signals (contain_egress.c). */
void daemon_contain_raised(struct sluiced *d, uint64_t session_id, enum policy_subject_kind kind,
			   int64_t id, int64_t tenant_id, const char *name,
			   enum policy_contain_level level, const struct policy_contain_signals *why,
			   const char *reason)
{
	contain_raised(d, session_id, kind, id, tenant_id, name, level, why, reason);
}

/* The levels of a sender now: [0] its login's (NONE without one), [1]
 * its tenant's; taken before and after a signal to see what it raised. */
static void contain_levels(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			   int64_t now, enum policy_contain_level lv[2])
{
	lv[0] = credential_id > 0
		    ? policy_contain_level(d->contain, POLICY_CREDENTIAL, credential_id, now)
		    : POLICY_CONTAIN_NONE;
	lv[1] = policy_contain_level(d->contain, POLICY_TENANT, tenant_id, now);
}

enum policy_contain_level daemon_contain_data(struct sluiced *d, const struct contain_msg *m,
					      struct policy_verdict *v)
{
	struct policy_contain_message pm = {.tenant_id = m->tenant_id,
					    .credential_id = m->credential_id,
					    .nrcpts = m->nrcpts};
	struct policy_contain_verdict cv;
	enum policy_contain_level before[2], level;
	int64_t now = util_wall_seconds();
	uint64_t *domains;

	if (d->contain == NULL)
		return POLICY_CONTAIN_NONE;
	if ((domains = calloc(m->nrcpts ? m->nrcpts : 1, sizeof *domains)) == NULL)
		return POLICY_CONTAIN_NONE; /* judged with the next one */
	for (size_t i = 0; i < m->nrcpts; i++) {
		const char *at = strrchr(m->rcpts[i], '@');
		const char *dom = at ? at + 1 : m->rcpts[i];
		domains[i] = policy_contain_hash(dom, strlen(dom));
	}
	pm.rcpt_domains = domains;
	/* the body alone: headers differ in every message (Message-ID, Date) */
	{
		const char *body = memmem(m->data, m->len, "\r\n\r\n", 4);
		if (body != NULL)
			pm.body_hash = policy_contain_hash(body + 4, m->len - (size_t)(body + 4 - m->data));
	}
	contain_levels(d, m->tenant_id, m->credential_id, now, before);
	level = policy_contain_message(d->contain, &pm, now, &cv);
	free(domains);
	if (cv.credential_level > before[0])
		contain_raised(d, m->session_id, POLICY_CREDENTIAL, m->credential_id, m->tenant_id,
			       m->user, cv.credential_level, &cv.credential, NULL);
	if (cv.tenant_level > before[1])
		contain_raised(d, m->session_id, POLICY_TENANT, m->tenant_id, m->tenant_id,
			       m->tenant, cv.tenant_level, &cv.tenant, NULL);
	if (level == POLICY_CONTAIN_SUSPEND) {
		v->code = 550;
		snprintf(v->enhanced, sizeof v->enhanced, "5.7.1");
		snprintf(v->text, sizeof v->text,
			 "Sending is suspended for unusual activity; contact your provider");
	}
	return level;
}

void daemon_contain_scan(struct sluiced *d, uint64_t session_id, int64_t tenant_id,
			 const char *tenant, int64_t credential_id, const char *user, int spam,
			 int virus)
{
	int64_t now = util_wall_seconds();
	enum policy_contain_level before[2], after[2];
	char why[96];

	if (d->contain == NULL || (!spam && !virus))
		return;
	contain_levels(d, tenant_id, credential_id, now, before);
	policy_contain_scan(d->contain, tenant_id, credential_id, spam, virus, now);
	contain_levels(d, tenant_id, credential_id, now, after);
	snprintf(why, sizeof why, "scanner verdict: %s", virus ? "virus" : "spam");
	if (after[0] > before[0])
		contain_raised(d, session_id, POLICY_CREDENTIAL, credential_id, tenant_id, user,
			       after[0], NULL, why);
	if (after[1] > before[1])
		contain_raised(d, session_id, POLICY_TENANT, tenant_id, tenant_id, tenant, after[1],
			       NULL, why);
}

/* The names of a tenant and a login, for contain_raised() when only the ids
 * are known (bounces).  "" when not found. */
static void contain_names(struct sluiced *d, int64_t tenant_id, int64_t credential_id,
			  char tenant[STORE_NAME_MAX + 1], char user[STORE_NAME_MAX + 1])
{
	struct store_tenant t;
	struct store_credential c;
	char *err = NULL;

	tenant[0] = user[0] = '\0';
	if (store_tenant_get_id(d->store, tenant_id, &t, &err) == 0)
		util_strlcpy(tenant, t.name, STORE_NAME_MAX + 1);
	free(err);
	err = NULL;
	if (credential_id > 0 && store_credential_get_id(d->store, credential_id, &c, &err) == 0 &&
	    c.tenant_id == tenant_id)
		util_strlcpy(user, c.username, STORE_NAME_MAX + 1);
	free(err);
}

void daemon_contain_failed(struct sluiced *d, uint64_t session_id, int64_t tenant_id,
			   const char *tenant, int64_t credential_id, const char *user,
			   uint32_t failed)
{
	static const enum policy_subject_kind kinds[2] = {POLICY_CREDENTIAL, POLICY_TENANT};
	int64_t now = util_wall_seconds();
	enum policy_contain_level before[2], after[2];
	char tname[STORE_NAME_MAX + 1], uname[STORE_NAME_MAX + 1];
	char why[256], sigs[160];
	struct policy_contain_signals sig;

	if (d->contain == NULL || failed == 0 || tenant_id <= 0)
		return;
	contain_levels(d, tenant_id, credential_id, now, before);
	policy_contain_outcome(d->contain, tenant_id, credential_id, failed, now);
	contain_levels(d, tenant_id, credential_id, now, after);
	if (after[0] <= before[0] && after[1] <= before[1])
		return;
	if (tenant == NULL || (credential_id > 0 && user == NULL)) {
		contain_names(d, tenant_id, credential_id, tname, uname);
		tenant = tenant ? tenant : tname;
		user = user ? user : uname;
	}
	/* what came in now, and the hour's signals it completed */
	for (int k = 0; k < 2; k++) {
		int64_t id = k == 0 ? credential_id : tenant_id;

		if (after[k] <= before[k])
			continue;
		policy_contain_signals_of(d->contain, kinds[k], id, now, &sig);
		contain_signals(&sig, sigs, sizeof sigs);
		snprintf(why, sizeof why, "%s: %u recipient%s; %s",
			 session_id ? "refused recipients" : "bounces", failed,
			 failed == 1 ? "" : "s", sigs);
		contain_raised(d, session_id, kinds[k], id, tenant_id, k == 0 ? user : tenant,
			       after[k], NULL, why);
	}
}

void daemon_contain_bounced(struct sluiced *d, int64_t tenant_id, int64_t credential_id)
{
	struct contain_pending *p = d->contain_pending;
	size_t i;

	if (p == NULL || tenant_id <= 0)
		return;
	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->n; i++)
		if (p->e[i].tenant_id == tenant_id && p->e[i].credential_id == credential_id)
			break;
	if (i < p->n) {
		p->e[i].failed++;
	} else if (p->n < CONTAIN_PENDING) {
		p->e[p->n++] = (struct contain_bounces){tenant_id, credential_id, 1};
		if (p->n == 1)
			event_active(p->ev, EV_TIMEOUT, 0);
	} else {
		p->dropped++;
	}
	pthread_mutex_unlock(&p->mu);
}

/* Main loop: the bounces that came in since the last run, to the model. */
static void contain_pending_run(evutil_socket_t fd, short what, void *arg)
{
	struct sluiced *d = arg;
	struct contain_pending *p = d->contain_pending;
	struct contain_bounces e[CONTAIN_PENDING];
	size_t n;
	uint64_t dropped;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&p->mu);
	n = p->n;
	memcpy(e, p->e, n * sizeof *e);
	dropped = p->dropped;
	p->n = 0;
	p->dropped = 0;
	pthread_mutex_unlock(&p->mu);
	if (dropped > 0)
		log_warn("contain bounces-dropped count=%llu (more than %d senders at once)",
			 (unsigned long long)dropped, CONTAIN_PENDING);
	for (size_t i = 0; i < n; i++)
		daemon_contain_failed(d, 0, e[i].tenant_id, NULL, e[i].credential_id, NULL,
				      e[i].failed);
}

/* Throttles lift with their hour in the model; here the stored level goes
 * too (with an event), so `contain list` and the metrics say so, and the
 * lift is logged.  Run with every usage flush. */
static void contain_lifts(struct sluiced *d)
{
	struct policy_contain_lift lifts[64];
	int64_t now = util_wall_seconds();
	size_t n = policy_contain_lifts(d->contain, now, lifts, 64);

	for (size_t i = 0; i < n; i++) {
		struct store_contain_state st;
		char tname[STORE_NAME_MAX + 1], uname[STORE_NAME_MAX + 1], *err = NULL;
		const struct policy_contain_lift *l = &lifts[i];
		int credential = l->kind == POLICY_CREDENTIAL;

		/* only a stored throttle: the operator may have changed it since */
		if (store_contain_get(d->store, (int)l->kind, l->id, &st, &err) != 0 ||
		    st.level != POLICY_CONTAIN_THROTTLE) {
			free(err);
			continue;
		}
		contain_names(d, l->tenant_id, credential ? l->id : 0, tname, uname);
		memset(&st, 0, sizeof st);
		st.kind = (int)l->kind;
		st.subject_id = l->id;
		st.tenant_id = l->tenant_id;
		st.level = POLICY_CONTAIN_NONE;
		snprintf(st.reason, sizeof st.reason, "throttle lifted with the hour");
		snprintf(st.by, sizeof st.by, "sluiced");
		if (store_contain_set(d->store, &st, &err) < 0) {
			log_err("contain store-failed error=\"%s\"", err ? err : "?");
			free(err);
			continue;
		}
		daemon_metrics_contain(d->metrics, l->kind, POLICY_CONTAIN_NONE);
		log_info("contain lifted %s=\"%s\" level=none reason=\"%s\"",
			 credential ? "user" : "tenant", credential ? uname : tname, st.reason);
	}
}
