/*
 * Limits and quotas per tenant and per credential (issue 4): the model
 * policy.h describes.  One subject per tenant and per login, created on
 * first use and kept for the life of the daemon (a few hundred bytes
 * each): its effective limits (store overrides over the configured
 * defaults, re-read when the store's generation moves), a GCRA state per
 * rate, and the recipients counted against today's and this month's
 * quotas (read from the usage the store keeps on first use, so a restart
 * forgets nothing that was flushed).  The rates' GCRA state goes to the
 * store too (policy_limits_export/import, with the usage flush), so a
 * restart does not hand everyone a fresh burst.
 *
 * Every function runs on sluiced's loop thread; policy_limits_stats() is
 * for the same thread (containment runs there too).
 */
#include "policy/policy.h"
#include "policy/policy_int.h"
#include "util/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_SECOND 1000000LL
#define SUBJECT_BUCKETS 1021
#define RATES 8 /* the per-second..per-day limits come first in the enum */

_Static_assert(POLICY_LIMIT_COUNT == CONFIG_POLICY_LIMITS, "config and policy limits differ");
_Static_assert(POLICY_MESSAGES_PER_SECOND == 0 && POLICY_RECIPIENTS_PER_DAY == RATES - 1,
               "rates first");

struct subject {
	struct subject *next;
	enum policy_subject_kind kind;
	int64_t id;
	uint64_t lim[POLICY_LIMIT_COUNT];
	int64_t generation; /* of the store when lim was read; -1 never */
	struct util_gcra gcra[RATES];
	int dirty; /* a rate moved since the last export */
	int64_t day, month; /* which day and month the quota counts are of; -1 not loaded */
	struct policy_stats stats;
};

struct policy_limits {
	uint64_t defaults[POLICY_LIMIT_COUNT];
	struct subject *buckets[SUBJECT_BUCKETS];
};

static const int64_t rate_period_s[4] = {1, 60, 3600, 86400};
static const char *const rate_period_name[4] = {"second", "minute", "hour", "day"};

const char *policy_limit_name(enum policy_limit l)
{
	return (unsigned)l < POLICY_LIMIT_COUNT ? config_policy_limit_names[l] : "?";
}

int policy_limit_from_name(const char *name)
{
	return config_policy_limit_index(name);
}

struct policy_limits *policy_limits_new(const uint64_t defaults[POLICY_LIMIT_COUNT])
{
	struct policy_limits *pl = calloc(1, sizeof *pl);

	if (pl != NULL && defaults != NULL)
		memcpy(pl->defaults, defaults, sizeof pl->defaults);
	return pl;
}

void policy_limits_free(struct policy_limits **pl)
{
	if (*pl == NULL)
		return;
	for (size_t i = 0; i < SUBJECT_BUCKETS; i++)
		while ((*pl)->buckets[i]) {
			struct subject *s = (*pl)->buckets[i];
			(*pl)->buckets[i] = s->next;
			free(s);
		}
	free(*pl);
	*pl = NULL;
}

/* ---- subjects ----------------------------------------------------------- */

static struct subject **subject_slot(const struct policy_limits *pl, enum policy_subject_kind kind,
                                     int64_t id)
{
	uint64_t h = ((uint64_t)id * 2654435761u) ^ (uint64_t)kind;
	struct subject *const *pp = &pl->buckets[h % SUBJECT_BUCKETS];

	while (*pp && !((*pp)->kind == kind && (*pp)->id == id))
		pp = &(*pp)->next;
	return (struct subject **)pp;
}

static struct subject *subject_get(struct policy_limits *pl, enum policy_subject_kind kind,
                                   int64_t id)
{
	struct subject **pp = subject_slot(pl, kind, id);

	if (*pp == NULL) {
		struct subject *s = calloc(1, sizeof *s);
		if (s == NULL)
			return NULL;
		s->kind = kind;
		s->id = id;
		s->generation = -1;
		s->day = s->month = -1;
		*pp = s;
	}
	return *pp;
}

/* The subject's limits as they are now: overrides over the defaults
 * (a tenant's) or over nothing (a login's). */
static int subject_limits(struct policy_limits *pl, struct store *st, struct subject *s,
                          int64_t tenant_id, int64_t gen)
{
	struct store_limit *rows = NULL;
	size_t n = 0;
	char *err = NULL;

	if (s->generation >= 0 && s->generation == gen)
		return 0;
	if (store_limit_list(st, tenant_id, s->kind == POLICY_CREDENTIAL ? s->id : 0, &rows, &n,
	                     &err) != 0) {
		log_err("policy limits not read id=%lld error=\"%s\"", (long long)s->id,
		        err ? err : "?");
		free(err);
		return -1;
	}
	if (s->kind == POLICY_TENANT)
		memcpy(s->lim, pl->defaults, sizeof s->lim);
	else
		memset(s->lim, 0, sizeof s->lim);
	for (size_t i = 0; i < n; i++) {
		int k = policy_limit_from_name(rows[i].name);
		if (k >= 0)
			s->lim[k] = rows[i].value;
	}
	free(rows);
	s->generation = gen;
	return 0;
}

/* Day and month numbers of a time (UTC), and where they end. */
static void calendar(int64_t now_s, int64_t *day_r, int64_t *month_r, int64_t *day_end_r,
                     int64_t *month_start_r, int64_t *month_end_r)
{
	time_t t = (time_t)now_s;
	struct tm tm;

	gmtime_r(&t, &tm);
	*day_r = now_s / 86400;
	*day_end_r = (*day_r + 1) * 86400;
	*month_r = (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
	tm.tm_mday = 1;
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
	*month_start_r = (int64_t)timegm(&tm);
	tm.tm_mon++;
	*month_end_r = (int64_t)timegm(&tm); /* timegm normalises month 12 */
}

/* Quota counts for the current day and month: loaded from the store's
 * usage on first use and when a day or month turns. */
static int subject_quota(struct store *st, struct subject *s, int64_t tenant_id, int64_t now_s)
{
	int64_t day, month, day_end, mstart, mend;
	uint64_t v;
	char *err = NULL;
	int64_t cred = s->kind == POLICY_CREDENTIAL ? s->id : -1;

	if (s->day == now_s / 86400 && s->month >= 0)
		return 0; /* the common case: no calendar arithmetic */
	calendar(now_s, &day, &month, &day_end, &mstart, &mend);
	if (s->month != month) {
		if (store_usage_sum(st, tenant_id, cred, "accepted_recipients", mstart / 3600,
		                    mend / 3600, &v, &err) != 0)
			goto fail;
		s->stats.quota_month_used = v;
		s->month = month;
	}
	if (s->day != day) {
		if (store_usage_sum(st, tenant_id, cred, "accepted_recipients", day * 24,
		                    day * 24 + 24, &v, &err) != 0)
			goto fail;
		s->stats.quota_day_used = v;
		s->day = day;
	}
	return 0;
fail:
	log_err("policy quota usage not read id=%lld error=\"%s\"", (long long)s->id,
	        err ? err : "?");
	free(err);
	return -1;
}

/* The subjects of a client: its login's (when it has one) first, then its
 * tenant's; limits and quotas current.  Returns how many, or -1. */
static int subjects_of(struct policy_limits *pl, struct store *st, const struct policy_client *c,
                       int64_t now_s, struct subject *out[2])
{
	int64_t gen = store_generation(st);
	int n = 0;

	if (c->credential_id > 0) {
		if ((out[n] = subject_get(pl, POLICY_CREDENTIAL, c->credential_id)) == NULL)
			return -1;
		n++;
	}
	if ((out[n] = subject_get(pl, POLICY_TENANT, c->tenant_id)) == NULL)
		return -1;
	n++;
	for (int i = 0; i < n; i++)
		if (subject_limits(pl, st, out[i], c->tenant_id, gen) < 0 ||
		    subject_quota(st, out[i], c->tenant_id, now_s) < 0)
			return -1;
	return n;
}

/* ---- verdicts ---------------------------------------------------------- */

static void verdict(struct policy_verdict *v, int code, const char *enh, const char *fmt, ...)
    UTIL_PRINTF(4, 5);

static void verdict(struct policy_verdict *v, int code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	v->code = code;
	util_strlcpy(v->enhanced, enh, sizeof v->enhanced);
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof v->text, fmt, ap);
	va_end(ap);
}

static int store_failed(struct policy_verdict *v, const char **reason_r)
{
	verdict(v, 451, "4.3.0", "Temporary failure reading the sending limits, try again later");
	*reason_r = "store-error";
	return -1;
}

/* "tenant acme" or "login app1" */
static void who(const struct subject *s, const struct policy_client *c, char *out, size_t size)
{
	if (s->kind == POLICY_CREDENTIAL)
		snprintf(out, size, "login %s", c->user ? c->user : "?");
	else
		snprintf(out, size, "tenant %s", c->tenant ? c->tenant : "?");
}

static void iso_time(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		util_strlcpy(out, "?", 32);
}

/* Whether one more cell fits every rate of [first, first + 4) of each
 * subject; on refusal fill v and return 0. */
static int rates_fit(struct subject **subj, int n, int first, const struct policy_client *c,
                     int64_t now_us, struct policy_verdict *v, const char **reason_r)
{
	for (int i = 0; i < n; i++) {
		for (int r = first; r < first + 4; r++) {
			uint64_t lim = subj[i]->lim[r];
			int64_t interval, wait, secs;
			char name[96], when[32];

			if (lim == 0)
				continue;
			interval =
			    util_gcra_interval(rate_period_s[r - first] * US_PER_SECOND, lim);
			if (util_gcra_check(&subj[i]->gcra[r], interval,
			                    lim > UINT32_MAX ? UINT32_MAX : (uint32_t)lim, 1,
			                    now_us, &wait))
				continue;
			secs = (wait + US_PER_SECOND - 1) / US_PER_SECOND;
			if (secs < 1)
				secs = 1;
			who(subj[i], c, name, sizeof name);
			iso_time(now_us / US_PER_SECOND + secs, when);
			verdict(v, 451, "4.7.1",
			        "Rate limit %s reached: %s may send %llu %s per %s; retry in %llds "
			        "(after %s)",
			        policy_limit_name((enum policy_limit)r), name,
			        (unsigned long long)lim,
			        first == POLICY_MESSAGES_PER_SECOND ? "messages" : "recipients",
			        rate_period_name[r - first], (long long)secs, when);
			*reason_r = policy_limit_name((enum policy_limit)r);
			subj[i]->stats.refused++;
			return 0;
		}
	}
	return 1;
}

static void rates_take(struct subject **subj, int n, int first, int64_t now_us)
{
	for (int i = 0; i < n; i++)
		for (int r = first; r < first + 4; r++)
			if (subj[i]->lim[r] != 0)
			{
				util_gcra_add(
				    &subj[i]->gcra[r],
				    util_gcra_interval(rate_period_s[r - first] * US_PER_SECOND,
				                       subj[i]->lim[r]),
				    1, now_us);
				subj[i]->dirty = 1;
			}
}

static void rates_refund(struct subject *s, int first, uint32_t cells)
{
	for (int r = first; r < first + 4; r++) {
		if (s->lim[r] != 0 && cells > 0) {
			util_gcra_refund(
			    &s->gcra[r],
			    util_gcra_interval(rate_period_s[r - first] * US_PER_SECOND, s->lim[r]),
			    cells);
			s->dirty = 1;
		}
	}
}

static int size_fits(struct subject **subj, int n, const struct policy_client *c, uint64_t size,
                     struct policy_verdict *v, const char **reason_r)
{
	for (int i = 0; i < n; i++) {
		uint64_t lim = subj[i]->lim[POLICY_MESSAGE_SIZE];
		char name[96];

		if (lim == 0 || size <= lim)
			continue;
		who(subj[i], c, name, sizeof name);
		verdict(v, 552, "5.3.4",
		        "Message too big: %s may send messages of at most %llu octets", name,
		        (unsigned long long)lim);
		*reason_r = "message_size";
		subj[i]->stats.refused++;
		return 0;
	}
	return 1;
}

/* ---- the stages ----------------------------------------------------------- */

int policy_limits_mail(struct policy_limits *pl, struct store *st, const struct policy_client *c,
                       uint64_t size, int64_t now_us, struct policy_txn *txn,
                       struct policy_verdict *v_r, const char **reason_r)
{
	struct subject *subj[2];
	int n;

	*reason_r = "ok";
	policy_limits_release(pl, txn, now_us); /* a transaction left open (RSET) */
	if ((n = subjects_of(pl, st, c, now_us / US_PER_SECOND, subj)) < 0)
		return store_failed(v_r, reason_r);
	if (size > 0 && !size_fits(subj, n, c, size, v_r, reason_r))
		return 0;
	if (!rates_fit(subj, n, POLICY_MESSAGES_PER_SECOND, c, now_us, v_r, reason_r))
		return 0;
	rates_take(subj, n, POLICY_MESSAGES_PER_SECOND, now_us);
	*txn = (struct policy_txn){.tenant_id = c->tenant_id,
	                           .credential_id = c->credential_id,
	                           .message = 1,
	                           .day = subj[0]->day,
	                           .month = subj[0]->month};
	verdict(v_r, 250, "2.1.0", "Ok");
	return 0;
}

int policy_limits_rcpt(struct policy_limits *pl, struct store *st, const struct policy_client *c,
                       int64_t now_us, struct policy_txn *txn, struct policy_verdict *v_r,
                       const char **reason_r)
{
	struct subject *subj[2];
	char name[96], when[32];
	int64_t day, month, day_end, mstart, mend;
	int n;

	*reason_r = "ok";
	if ((n = subjects_of(pl, st, c, now_us / US_PER_SECOND, subj)) < 0)
		return store_failed(v_r, reason_r);
	day = subj[0]->day;
	month = subj[0]->month;
	for (int i = 0; i < n; i++) {
		struct subject *s = subj[i];
		uint64_t lim = s->lim[POLICY_RECIPIENTS_PER_MESSAGE];

		who(s, c, name, sizeof name);
		if (lim != 0 && (uint64_t)txn->rcpts + 1 > lim) {
			verdict(v_r, 452, "4.5.3",
			        "Too many recipients: %s may address %llu per message; send the "
			        "others in another message",
			        name, (unsigned long long)lim);
			*reason_r = "recipients_per_message";
			s->stats.refused++;
			return 0;
		}
		lim = s->lim[POLICY_QUOTA_MONTH];
		if (lim != 0 && s->stats.quota_month_used + 1 > lim) {
			calendar(now_us / US_PER_SECOND, &day, &month, &day_end, &mstart, &mend);
			iso_time(mend, when);
			verdict(v_r, 550, "5.7.1",
			        "Monthly quota reached: %s may send to %llu recipients a month; it "
			        "renews at %s, or contact your provider",
			        name, (unsigned long long)lim, when);
			*reason_r = "quota_month";
			s->stats.refused++;
			return 0;
		}
		lim = s->lim[POLICY_QUOTA_DAY];
		if (lim != 0 && s->stats.quota_day_used + 1 > lim) {
			iso_time((now_us / US_PER_SECOND / 86400 + 1) * 86400, when);
			verdict(
			    v_r, 452, "4.5.3",
			    "Daily quota reached: %s may send to %llu recipients a day; it renews "
			    "at %s",
			    name, (unsigned long long)lim, when);
			*reason_r = "quota_day";
			s->stats.refused++;
			return 0;
		}
	}
	if (!rates_fit(subj, n, POLICY_RECIPIENTS_PER_SECOND, c, now_us, v_r, reason_r))
		return 0;
	rates_take(subj, n, POLICY_RECIPIENTS_PER_SECOND, now_us);
	for (int i = 0; i < n; i++) {
		subj[i]->stats.quota_day_used++;
		subj[i]->stats.quota_month_used++;
	}
	if (txn->rcpts == 0) {
		txn->day = day;
		txn->month = month;
	}
	txn->tenant_id = c->tenant_id;
	txn->credential_id = c->credential_id;
	txn->rcpts++;
	verdict(v_r, 250, "2.1.5", "Ok");
	return 0;
}

int policy_limits_data(struct policy_limits *pl, struct store *st, const struct policy_client *c,
                       size_t len, int64_t now_us, struct policy_verdict *v_r,
                       const char **reason_r)
{
	struct subject *subj[2];
	int n;

	*reason_r = "ok";
	if ((n = subjects_of(pl, st, c, now_us / US_PER_SECOND, subj)) < 0)
		return store_failed(v_r, reason_r);
	if (!size_fits(subj, n, c, len, v_r, reason_r))
		return 0;
	verdict(v_r, 250, "2.0.0", "Ok");
	return 0;
}

/* The subjects a transaction reserved in (they exist: it made them). */
static int txn_subjects(struct policy_limits *pl, const struct policy_txn *txn,
                        struct subject *out[2])
{
	int n = 0;

	if (txn->credential_id > 0 &&
	    (out[n] = *subject_slot(pl, POLICY_CREDENTIAL, txn->credential_id)) != NULL)
		n++;
	if ((out[n] = *subject_slot(pl, POLICY_TENANT, txn->tenant_id)) != NULL)
		n++;
	return n;
}

void policy_limits_commit(struct policy_limits *pl, struct policy_txn *txn)
{
	struct subject *subj[2];
	int n = txn_subjects(pl, txn, subj);

	for (int i = 0; i < n; i++) {
		subj[i]->stats.messages += txn->message ? 1 : 0;
		subj[i]->stats.recipients += txn->rcpts;
	}
	memset(txn, 0, sizeof *txn);
}

void policy_limits_release(struct policy_limits *pl, struct policy_txn *txn, int64_t now_us)
{
	struct subject *subj[2];
	int n;

	if (!txn->message && txn->rcpts == 0)
		return;
	n = txn_subjects(pl, txn, subj);
	for (int i = 0; i < n; i++) {
		struct subject *s = subj[i];
		if (txn->message)
			rates_refund(s, POLICY_MESSAGES_PER_SECOND, 1);
		rates_refund(s, POLICY_RECIPIENTS_PER_SECOND, txn->rcpts);
		/* a quota count of a day or month that has turned since stays */
		if (s->day == txn->day && s->stats.quota_day_used >= txn->rcpts)
			s->stats.quota_day_used -= txn->rcpts;
		if (s->month == txn->month && s->stats.quota_month_used >= txn->rcpts)
			s->stats.quota_month_used -= txn->rcpts;
	}
	(void)now_us;
	memset(txn, 0, sizeof *txn);
}

int policy_limits_stats(const struct policy_limits *pl, enum policy_subject_kind kind, int64_t id,
                        struct policy_stats *r)
{
	const struct subject *s = *subject_slot(pl, kind, id);

	if (s == NULL) {
		memset(r, 0, sizeof *r);
		return -1;
	}
	*r = s->stats;
	return 0;
}

void policy_limits_count_refusal(struct policy_limits *pl, const struct policy_client *c)
{
	struct subject *s;

	if (c->credential_id > 0 && (s = subject_get(pl, POLICY_CREDENTIAL, c->credential_id)))
		s->stats.refused++;
	if (c->tenant_id > 0 && (s = subject_get(pl, POLICY_TENANT, c->tenant_id)))
		s->stats.refused++;
}

void policy_limits_count_auth(struct policy_limits *pl, int64_t tenant_id, int64_t credential_id,
                              int outside, int new_network, int64_t now_s)
{
	struct subject *subj[2] = {subject_get(pl, POLICY_CREDENTIAL, credential_id),
	                           subject_get(pl, POLICY_TENANT, tenant_id)};

	for (int i = 0; i < 2; i++) {
		if (subj[i] == NULL)
			continue;
		subj[i]->stats.auth_outside += outside ? 1 : 0;
		if (new_network) {
			subj[i]->stats.auth_new_network++;
			subj[i]->stats.last_new_network = now_s;
		}
	}
}

int policy_limits_export(struct policy_limits *pl, struct store_limit_state **list_r, size_t *n_r)
{
	struct store_limit_state *out;
	size_t n = 0, cap = 0;

	*list_r = NULL;
	*n_r = 0;
	for (size_t b = 0; b < SUBJECT_BUCKETS; b++)
		for (const struct subject *s = pl->buckets[b]; s != NULL; s = s->next)
			cap += s->dirty ? RATES : 0;
	if (cap == 0)
		return 0;
	if ((out = calloc(cap, sizeof *out)) == NULL)
		return -1;
	for (size_t b = 0; b < SUBJECT_BUCKETS; b++) {
		for (struct subject *s = pl->buckets[b]; s != NULL; s = s->next) {
			if (!s->dirty)
				continue;
			s->dirty = 0;
			for (int r = 0; r < RATES; r++) {
				struct store_limit_state *o = &out[n++];
				o->kind = (int)s->kind;
				o->subject_id = s->id;
				snprintf(o->name, sizeof o->name, "%s", policy_limit_name(r));
				o->tat_us = s->gcra[r].tat_us;
			}
		}
	}
	*list_r = out;
	*n_r = n;
	return 0;
}

int policy_limits_import(struct policy_limits *pl, const struct store_limit_state *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = policy_limit_from_name(list[i].name);
		struct subject *s;

		if (r < 0 || r >= RATES || list[i].subject_id <= 0 ||
		    (list[i].kind != POLICY_TENANT && list[i].kind != POLICY_CREDENTIAL))
			continue; /* a limit no longer a rate, or a row written by hand */
		if ((s = subject_get(pl, (enum policy_subject_kind)list[i].kind,
		                     list[i].subject_id)) == NULL)
			return -1;
		s->gcra[r].tat_us = list[i].tat_us;
	}
	return 0;
}
