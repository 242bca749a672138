/*
 * sluiced's metric set: the counters the daemon bumps, and the exposition
 * of them with what other modules count (see metrics.h).  Each family
 * lists every label value it has, zeros included, so a rate() over a
 * series that has not moved yet still works and a new series never
 * appears mid-way.
 */
#include "cmd/metrics.h"
#include "util/metrics.h"

#include <stdlib.h>
#include <string.h>

enum { KIND_SUBMISSION, KIND_SMTPS, KIND_RELAY, NKINDS };
static const char *const kind_names[NKINDS] = {"submission", "smtps", "relay"};

static const char *const auth_failures[] = {"credentials", "suspended", "network", "rate-limit",
                                            "authzid",     "temporary", "other"};
#define NAUTH (sizeof auth_failures / sizeof auth_failures[0])

/* Refusals sluiced logs, besides the limit names (config_policy_limit_
 * names, the reasons policy/limits.c gives); "other" last. */
static const char *const refusal_names[] = {
    /* at connect */
    "relay-denied", "connections", "connections-per-ip", "pregreet",
    /* MAIL, RCPT, DATA */
    "sender", "contained", "suppressed", "from-header", "sender-header", "header-size", "scan",
    "data", "store-error", "no-memory"};
#define NREFUSAL_NAMES (sizeof refusal_names / sizeof refusal_names[0])
#define NREFUSALS (NREFUSAL_NAMES + CONFIG_POLICY_LIMITS + 1)

#define NLEVELS 4 /* enum policy_contain_level */

struct daemon_metrics {
	double start_time;
	metrics_counter sessions[NKINDS];
	metrics_gauge sessions_open[NKINDS];
	metrics_counter auth_ok;
	metrics_counter auth_failed[NAUTH];
	metrics_counter messages, rcpts;
	metrics_counter refused[NREFUSALS];
	metrics_counter contain[2][NLEVELS]; /* [kind - 1][level] */
	metrics_counter scan[SCAN_NSCANNERS][SCAN_NOUTCOMES];
	metrics_counter scan_verdicts[SCAN_NACTIONS];
};

struct daemon_metrics *daemon_metrics_new(double start_time)
{
	struct daemon_metrics *m = calloc(1, sizeof *m);

	/* calloc's zeros are valid atomics' zeros on every platform we build
	 * for (lock-free 64-bit atomics have no hidden state) */
	if (m != NULL)
		m->start_time = start_time;
	return m;
}

void daemon_metrics_free(struct daemon_metrics **m)
{
	free(*m);
	*m = NULL;
}

static size_t listener_kind(const struct config_listener *l)
{
	if (l->mode == CONFIG_MODE_RELAY)
		return KIND_RELAY;
	return l->tls == CONFIG_TLS_IMPLICIT ? KIND_SMTPS : KIND_SUBMISSION;
}

void daemon_metrics_session(struct daemon_metrics *m, const struct config_listener *l, int opened)
{
	size_t k;

	if (m == NULL || l == NULL)
		return;
	k = listener_kind(l);
	if (opened)
		metrics_add(&m->sessions[k], 1);
	metrics_gauge_add(&m->sessions_open[k], opened ? 1 : -1);
}

void daemon_metrics_auth(struct daemon_metrics *m, const char *failure)
{
	size_t i;

	if (m == NULL)
		return;
	if (failure == NULL) {
		metrics_add(&m->auth_ok, 1);
		return;
	}
	for (i = 0; i < NAUTH - 1 && strcmp(auth_failures[i], failure) != 0; i++)
		;
	metrics_add(&m->auth_failed[i], 1);
}

void daemon_metrics_accepted(struct daemon_metrics *m, uint32_t rcpts)
{
	if (m == NULL)
		return;
	metrics_add(&m->messages, 1);
	metrics_add(&m->rcpts, rcpts);
}

static const char *refusal_name(size_t i)
{
	if (i < NREFUSAL_NAMES)
		return refusal_names[i];
	if (i < NREFUSAL_NAMES + CONFIG_POLICY_LIMITS)
		return config_policy_limit_names[i - NREFUSAL_NAMES];
	return "other";
}

void daemon_metrics_refused(struct daemon_metrics *m, const char *reason)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < NREFUSALS - 1; i++)
		if (reason != NULL && strcmp(reason, refusal_name(i)) == 0)
			break;
	metrics_add(&m->refused[i], 1);
}

void daemon_metrics_contain(struct daemon_metrics *m, enum policy_subject_kind kind,
                            enum policy_contain_level level)
{
	if (m == NULL || (kind != POLICY_TENANT && kind != POLICY_CREDENTIAL) ||
	    (unsigned)level >= NLEVELS)
		return;
	metrics_add(&m->contain[kind - 1][level], 1);
}

void daemon_metrics_scan(struct daemon_metrics *m, const struct scan_verdict *v)
{
	if (m == NULL)
		return;
	for (int k = 0; k < SCAN_NSCANNERS; k++)
		if (v->ran[k] && (unsigned)v->results[k].outcome < SCAN_NOUTCOMES)
			metrics_add(&m->scan[k][v->results[k].outcome], 1);
	if ((unsigned)v->action < SCAN_NACTIONS)
		metrics_add(&m->scan_verdicts[v->action], 1);
}

/* ---- the exposition ------------------------------------------------------ */

#define L(n, v) ((struct metrics_label){(n), (v)})

static const char *const subject_names[2] = {"tenant", "credential"}; /* kind - 1 */

static int render_smtp(struct daemon_metrics *m, struct buf *out)
{
	int r = 0;

	r |= metrics_family(out, "sluice_smtp_sessions_total", METRICS_COUNTER,
	                    "SMTP sessions accepted, by listener kind.");
	for (size_t k = 0; k < NKINDS; k++)
		r |= metrics_sample(out, "sluice_smtp_sessions_total",
		                    &L("listener", kind_names[k]), 1, metrics_get(&m->sessions[k]));
	r |= metrics_family(out, "sluice_smtp_sessions", METRICS_GAUGE,
	                    "SMTP sessions open now, by listener kind.");
	for (size_t k = 0; k < NKINDS; k++)
		r |= metrics_sample_i64(out, "sluice_smtp_sessions", &L("listener", kind_names[k]),
		                        1, metrics_gauge_get(&m->sessions_open[k]));
	r |= metrics_family(out, "sluice_smtp_auth_successes_total", METRICS_COUNTER,
	                    "SMTP AUTH exchanges that logged a client in.");
	r |= metrics_sample(out, "sluice_smtp_auth_successes_total", NULL, 0,
	                    metrics_get(&m->auth_ok));
	r |= metrics_family(out, "sluice_smtp_auth_failures_total", METRICS_COUNTER,
	                    "SMTP AUTH exchanges refused, by reason.");
	for (size_t i = 0; i < NAUTH; i++)
		r |= metrics_sample(out, "sluice_smtp_auth_failures_total",
		                    &L("reason", auth_failures[i]), 1,
		                    metrics_get(&m->auth_failed[i]));
	r |= metrics_family(out, "sluice_smtp_messages_accepted_total", METRICS_COUNTER,
	                    "Messages queued (answered 250 after DATA).");
	r |= metrics_sample(out, "sluice_smtp_messages_accepted_total", NULL, 0,
	                    metrics_get(&m->messages));
	r |= metrics_family(out, "sluice_smtp_recipients_accepted_total", METRICS_COUNTER,
	                    "Recipients of the messages queued.");
	r |= metrics_sample(out, "sluice_smtp_recipients_accepted_total", NULL, 0,
	                    metrics_get(&m->rcpts));
	r |= metrics_family(out, "sluice_smtp_refusals_total", METRICS_COUNTER,
	                    "Connections, MAIL, RCPT and DATA refused by policy, by reason.");
	for (size_t i = 0; i < NREFUSALS; i++)
		r |= metrics_sample(out, "sluice_smtp_refusals_total",
		                    &L("reason", refusal_name(i)), 1, metrics_get(&m->refused[i]));
	return r;
}

static int render_queue(const struct daemon_metrics_read *rd, struct buf *out)
{
	static const char *const outcomes[] = {"delivered", "deferred", "bounced"};
	const uint64_t counts[] = {rd->deliver.delivered, rd->deliver.deferred,
	                           rd->deliver.bounced};
	int r = 0;

	r |= metrics_family(out, "sluice_queue_messages", METRICS_GAUGE,
	                    "Messages in the queue with recipients still to deliver.");
	r |= metrics_sample(out, "sluice_queue_messages", NULL, 0, rd->queue_messages);
	r |= metrics_family(out, "sluice_spool_commits_total", METRICS_COUNTER,
	                    "Group commits of the spool (one fsync serves many sessions).");
	r |= metrics_sample(out, "sluice_spool_commits_total", NULL, 0, rd->spool.batches);
	r |= metrics_family(out, "sluice_spool_fsyncs_total", METRICS_COUNTER,
	                    "fdatasync calls on spool segments.");
	r |= metrics_sample(out, "sluice_spool_fsyncs_total", NULL, 0, rd->spool.fsyncs);
	r |= metrics_family(out, "sluice_delivery_recipients_total", METRICS_COUNTER,
	                    "Delivery attempts' outcomes per recipient (DSNs included): deferred "
	                    "counts each attempt that will be retried.");
	for (size_t i = 0; i < 3; i++)
		r |= metrics_sample(out, "sluice_delivery_recipients_total",
		                    &L("outcome", outcomes[i]), 1, rd->delivery ? counts[i] : 0);
	r |= metrics_family(out, "sluice_delivery_connections", METRICS_GAUGE,
	                    "Outbound SMTP connections open now (resolving, talking or idle).");
	r |= metrics_sample(out, "sluice_delivery_connections", NULL, 0,
	                    rd->delivery ? rd->deliver.connections : 0);
	return r;
}

static int render_contain(struct daemon_metrics *m, const struct daemon_metrics_read *rd,
                          struct buf *out)
{
	int r = 0;

	r |= metrics_family(out, "sluice_contain_changes_total", METRICS_COUNTER,
	                    "Containment level changes: raised by sluiced (throttle, hold, "
	                    "suspend) or cleared by the operator (none), by subject kind.");
	for (size_t k = 0; k < 2; k++)
		for (size_t l = 0; l < NLEVELS; l++)
			r |= metrics_sample(
			    out, "sluice_contain_changes_total",
			    (struct metrics_label[]){L("kind", subject_names[k]),
			                             L("level", policy_contain_level_name(
			                                            (enum policy_contain_level)l))},
			    2, metrics_get(&m->contain[k][l]));
	if (!rd->contain)
		return r;
	r |= metrics_family(out, "sluice_contain_subjects", METRICS_GAUGE,
	                    "Logins and tenants at a containment level now.");
	for (size_t k = 0; k < 2; k++)
		for (size_t l = 1; l < NLEVELS; l++)
			r |= metrics_sample(
			    out, "sluice_contain_subjects",
			    (struct metrics_label[]){L("kind", subject_names[k]),
			                             L("level", policy_contain_level_name(
			                                            (enum policy_contain_level)l))},
			    2, rd->contained[k][l]);
	return r;
}

static int render_content(struct daemon_metrics *m, const struct daemon_metrics_read *rd,
                          struct buf *out)
{
	int r = 0;

	r |= metrics_family(out, "sluice_scan_results_total", METRICS_COUNTER,
	                    "What each content scanner said of a message; outcome=\"failed\": "
	                    "down, late or unreadable.");
	for (int k = 0; k < SCAN_NSCANNERS; k++)
		for (int o = 0; o < SCAN_NOUTCOMES; o++)
			r |= metrics_sample(
			    out, "sluice_scan_results_total",
			    (struct metrics_label[]){
			        L("scanner", scan_scanner_name((enum scan_scanner)k)),
			        L("outcome", scan_outcome_name((enum scan_outcome)o))},
			    2, metrics_get(&m->scan[k][o]));
	r |= metrics_family(out, "sluice_scan_verdicts_total", METRICS_COUNTER,
	                    "What scanned messages got: accept, hold, tempfail or refuse.");
	for (int a = 0; a < SCAN_NACTIONS; a++)
		r |= metrics_sample(out, "sluice_scan_verdicts_total",
		                    &L("action", scan_action_name((enum scan_action)a)), 1,
		                    metrics_get(&m->scan_verdicts[a]));
	r |= metrics_family(out, "sluice_dkim_signatures_total", METRICS_COUNTER,
	                    "DKIM signatures made, by algorithm.");
	r |= metrics_sample(out, "sluice_dkim_signatures_total", &L("algorithm", "rsa-sha256"), 1,
	                    rd->dkim_rsa);
	r |= metrics_sample(out, "sluice_dkim_signatures_total", &L("algorithm", "ed25519-sha256"),
	                    1, rd->dkim_ed25519);
	r |= metrics_family(out, "sluice_dkim_failures_total", METRICS_COUNTER,
	                    "Messages queued unsigned because signing failed.");
	r |= metrics_sample(out, "sluice_dkim_failures_total", NULL, 0, rd->dkim_failed);
	return r;
}

int daemon_metrics_render(struct daemon_metrics *m, const struct daemon_metrics_read *rd,
                          struct buf *out)
{
	int r = 0;

	r |= metrics_family(out, "sluice_build_info", METRICS_GAUGE,
	                    "sluiced's version, as a label; the value is always 1.");
	r |= metrics_sample(out, "sluice_build_info", &L("version", SLUICE_VERSION), 1, 1);
	r |= metrics_family(out, "sluice_start_time_seconds", METRICS_GAUGE,
	                    "When sluiced started, in seconds since the Unix epoch.");
	r |= metrics_sample_double(out, "sluice_start_time_seconds", NULL, 0, m->start_time);
	r |= render_smtp(m, out);
	r |= render_queue(rd, out);
	r |= render_contain(m, rd, out);
	r |= render_content(m, rd, out);
	return r < 0 ? -1 : 0;
}
