/*
 * contain: telling a compromised login from an honest burst, from
 * behaviour alone, before blacklists do it for us.
 *
 * Each subject (a login, a tenant) keeps a baseline of its hours: an
 * exponential moving average of recipients per hour, the recipient
 * domains it writes to (a bounded set of hashes), and how many hours it
 * has been seen.  The current hour is scored against it at every
 * accepted message, from signals that a hijacked login shows together
 * and an honest one does not:
 *
 *   domains   share of this hour's recipients at domains the baseline
 *             never saw, weighed by how many such domains and recipients
 *             there are, and more for many new domains in one hour;
 *   volume    recipients this hour against the usual hour; a burst
 *             up to volume_free times the usual (a newsletter) is free;
 *   network   a login from a network it never used (auth new-network),
 *             or from outside its bound networks;
 *   fan-out   one body to many recipients at unfamiliar domains;
 *   failures  share of recipients refused or bounced;
 *   content   scanner verdicts (spam, virus);
 *   egress    a tenant's machines trying port 25 directly and refused by
 *             the egress block (`sluice egress sample`), the mark of a
 *             spam bot on its networks.  Weighed so that it alone raises
 *             the tenant at most to throttle (many attempts from several
 *             addresses), and tips it to hold together with one more
 *             signal of its mail without a login.
 *
 * The score picks a level: throttle, hold (new mail is queued on hold for
 * review), suspend (the login is refused).  Hold and suspend stay until
 * the operator releases them; throttle lifts by itself with the hour.
 * A login is judged on its own traffic; its tenant is suspended only when
 * several of its logins are (policy_contain_config.tenant_suspend_logins),
 * and judged on its own traffic only for mail without a login (its
 * trusted networks on the relay port).  A subject too young for a baseline (fewer than min_hours seen)
 * is judged on the signals that need none (network, failures, content,
 * volume against a floor), not on unfamiliar domains, since to a new
 * tenant every domain is new.
 *
 * Pure: no clock (callers pass unix seconds), no I/O, one thread.
 */
#include "policy/policy.h"

#include <stdlib.h>
#include <string.h>

#define CONTAIN_BUCKETS 1024
#define CONTAIN_BODIES 32 /* body fingerprints followed per hour */

struct contain_body {
	uint64_t hash;
	uint32_t unfamiliar_rcpts;
};

struct contain_subject {
	struct contain_subject *next;
	enum policy_subject_kind kind;
	int64_t id;
	int64_t tenant_id;      /* a login's tenant */
	enum policy_contain_level level;
	uint32_t suspended_logins; /* a tenant's logins at SUSPEND */
	uint32_t strikes;       /* messages at HOLD that scored for SUSPEND */
	int dirty;              /* the baseline changed since the last export */
	int lifted;             /* a throttle lifted with the hour, not reported yet */
	int64_t last_msg;       /* unix seconds of the last message counted */
	/* baseline */
	double ema_rcpts;       /* recipients per hour */
	uint32_t hours;         /* hours with traffic folded into the baseline */
	uint64_t *domains;      /* open addressing, 0 = empty */
	size_t ndomains;
	/* the current hour */
	int64_t hour;           /* unix hours */
	uint32_t msgs, rcpts;
	uint32_t unfamiliar_rcpts;
	uint64_t *new_domains;  /* distinct unfamiliar domains this hour */
	size_t nnew;
	uint32_t failed;        /* refused or bounced recipients */
	uint32_t spam, virus;
	int new_network, outside;
	uint64_t blocked;          /* port-25 attempts refused this hour */
	uint32_t blocked_sources;  /* most distinct addresses of one sample */
	struct contain_body bodies[CONTAIN_BODIES];
	uint32_t max_fanout;
};

struct policy_contain {
	struct policy_contain_config cfg;
	struct contain_subject *buckets[CONTAIN_BUCKETS];
};

void policy_contain_config_default(struct policy_contain_config *c_r)
{
	memset(c_r, 0, sizeof *c_r);
	c_r->min_hours = 24;
	c_r->alpha = 0.1;
	c_r->rcpts_floor = 100;
	c_r->volume_free = 6.0;
	c_r->domains_full = 5;
	c_r->fanout_full = 10;
	c_r->max_domains = 4096;
	c_r->throttle = 3.0;
	c_r->hold = 4.5;
	c_r->suspend = 6.0;
	c_r->tenant_suspend_logins = 2;
	c_r->suspend_after = 5;
	c_r->throttle_interval = 60;
	c_r->egress_full = 100;
}

struct policy_contain *policy_contain_new(const struct policy_contain_config *cfg)
{
	struct policy_contain *pc = calloc(1, sizeof *pc);

	if (pc == NULL)
		return NULL;
	if (cfg != NULL)
		pc->cfg = *cfg;
	else
		policy_contain_config_default(&pc->cfg);
	if (pc->cfg.max_domains < 16)
		pc->cfg.max_domains = 16;
	return pc;
}

static void contain_subject_free(struct contain_subject *s)
{
	free(s->domains);
	free(s->new_domains);
	free(s);
}

void policy_contain_free(struct policy_contain **pcp)
{
	struct policy_contain *pc = *pcp;

	if (pc == NULL)
		return;
	*pcp = NULL;
	for (size_t b = 0; b < CONTAIN_BUCKETS; b++) {
		while (pc->buckets[b] != NULL) {
			struct contain_subject *s = pc->buckets[b];
			pc->buckets[b] = s->next;
			contain_subject_free(s);
		}
	}
	free(pc);
}

/* FNV-1a over the lower-cased domain; never 0 (0 marks an empty slot). */
uint64_t policy_contain_hash(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h ^= c;
		h *= 1099511628211ULL;
	}
	return h ? h : 1;
}

/* ---- a set of hashes: open addressing, capacity a power of two ----------- */

static size_t set_cap(size_t max)
{
	size_t cap = 16;

	while (cap < max * 2)
		cap *= 2;
	return cap;
}

static int set_has(const uint64_t *set, size_t cap, uint64_t h)
{
	if (set == NULL)
		return 0;
	for (size_t i = h & (cap - 1), n = 0; n < cap; i = (i + 1) & (cap - 1), n++) {
		if (set[i] == h)
			return 1;
		if (set[i] == 0)
			return 0;
	}
	return 0;
}

/* 1 added, 0 there already or full (max entries), -1 out of memory. */
static int set_add(uint64_t **setp, size_t *np, size_t max, uint64_t h)
{
	size_t cap = set_cap(max);
	uint64_t *set = *setp;

	if (set == NULL && (set = *setp = calloc(cap, sizeof *set)) == NULL)
		return -1;
	if (set_has(set, cap, h) || *np >= max)
		return 0;
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		if (set[i] == 0) {
			set[i] = h;
			(*np)++;
			return 1;
		}
	}
}

/* ---- subjects and hours ---------------------------------------------------- */

static struct contain_subject *contain_get(struct policy_contain *pc,
					   enum policy_subject_kind kind, int64_t id, int create)
{
	size_t b = ((uint64_t)id * 2654435761u + (uint64_t)kind) % CONTAIN_BUCKETS;
	struct contain_subject *s;

	for (s = pc->buckets[b]; s != NULL; s = s->next)
		if (s->kind == kind && s->id == id)
			return s;
	if (!create || (s = calloc(1, sizeof *s)) == NULL)
		return NULL;
	s->kind = kind;
	s->id = id;
	s->next = pc->buckets[b];
	pc->buckets[b] = s;
	return s;
}

/* Forget the current hour's counts. */
static void contain_hour_reset(struct contain_subject *s)
{
	free(s->new_domains);
	s->new_domains = NULL;
	s->nnew = 0;
	s->msgs = s->rcpts = s->unfamiliar_rcpts = s->failed = 0;
	s->spam = s->virus = 0;
	s->new_network = s->outside = 0;
	s->blocked = 0;
	s->blocked_sources = 0;
	memset(s->bodies, 0, sizeof s->bodies);
	s->max_fanout = 0;
}

/* Fold the hour that ended into the baseline, and every hour since (an
 * idle hour counts as 0 recipients only once the baseline exists, so a
 * login used once a day keeps a daily-sized baseline rather than zero). */
static void contain_roll(struct policy_contain *pc, struct contain_subject *s, int64_t now)
{
	int64_t hour = now / 3600;

	if (s->hour == hour)
		return;
	if (s->hour != 0 && s->rcpts > 0) {
		double a = pc->cfg.alpha;
		if (s->hours == 0)
			s->ema_rcpts = s->rcpts;
		else
			s->ema_rcpts = (1 - a) * s->ema_rcpts + a * s->rcpts;
		s->hours++;
		s->dirty = 1;
	}
	/* the unfamiliar domains of an hour that raised nothing are familiar
	 * now; those of an hour that was held or suspended are not */
	if (s->level < POLICY_CONTAIN_HOLD) {
		size_t cap = set_cap(pc->cfg.max_domains);
		for (size_t i = 0; s->new_domains != NULL && i < cap; i++)
			if (s->new_domains[i] != 0)
				(void)set_add(&s->domains, &s->ndomains, pc->cfg.max_domains,
					      s->new_domains[i]);
	}
	if (s->level == POLICY_CONTAIN_THROTTLE) {
		s->level = POLICY_CONTAIN_NONE; /* throttle lifts with the hour */
		s->lifted = 1;
	}
	contain_hour_reset(s);
	s->hour = hour;
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The current hour against the baseline. */
static double contain_score(const struct policy_contain *pc, const struct contain_subject *s,
			    struct policy_contain_signals *sig_r)
{
	const struct policy_contain_config *c = &pc->cfg;
	int mature = s->hours >= c->min_hours;
	double usual = s->ema_rcpts > c->rcpts_floor ? s->ema_rcpts : c->rcpts_floor;
	double ratio = s->rcpts / usual;
	struct policy_contain_signals sig;

	memset(&sig, 0, sizeof sig);
	if (mature && s->rcpts > 0)
		sig.domains = 3.0 * ((double)s->unfamiliar_rcpts / s->rcpts) *
				  clamp((double)s->nnew / c->domains_full, 0, 1) *
				  clamp((double)s->unfamiliar_rcpts / (2.0 * c->domains_full), 0, 1) +
			      clamp(((double)s->nnew - c->domains_full) / (4.0 * c->domains_full), 0,
				    1.5);
	/* twice the free burst scores 1, four times or more 3 */
	if (ratio > c->volume_free)
		sig.volume = clamp(ratio / c->volume_free - 1, 0, 3);
	sig.network = s->outside ? 2.0 : s->new_network ? 1.5 : 0;
	if (mature)
		sig.fanout = clamp((double)s->max_fanout / c->fanout_full, 0, 1);
	if (s->rcpts >= 10)
		sig.failures = 3.0 * clamp((double)s->failed / s->rcpts, 0, 1);
	sig.content = clamp(0.5 * s->spam + 2.0 * s->virus, 0, 3);
	/* up to 2.5 for the attempts, 0.5 more for three addresses or more:
	 * one machine retrying is not enough alone, several are; never above
	 * the throttle threshold, whatever the configuration */
	if (s->blocked > 0)
		sig.egress = clamp(2.5 * clamp((double)s->blocked / (c->egress_full ? c->egress_full
									      : 1),
					       0, 1) +
					   0.5 * clamp(((double)s->blocked_sources - 1) / 2.0, 0, 1),
				   0, c->throttle);
	sig.total = sig.domains + sig.volume + sig.network + sig.fanout + sig.failures +
		    sig.content + sig.egress;
	if (sig_r != NULL)
		*sig_r = sig;
	return sig.total;
}

static void contain_raise(struct policy_contain *pc, struct contain_subject *s,
			  enum policy_contain_level want)
{
	if (want <= s->level)
		return;
	if (want == POLICY_CONTAIN_SUSPEND && s->kind == POLICY_CREDENTIAL) {
		struct contain_subject *t = contain_get(pc, POLICY_TENANT, s->tenant_id, 1);
		if (t != NULL && ++t->suspended_logins >= pc->cfg.tenant_suspend_logins &&
		    pc->cfg.tenant_suspend_logins > 0)
			t->level = POLICY_CONTAIN_SUSPEND;
	}
	s->level = want;
}

/* Raise the level to what the score asks (never lower it: that is the
 * operator's, or the hour's for a throttle). */
static enum policy_contain_level contain_judge(struct policy_contain *pc,
					       struct contain_subject *s,
					       struct policy_contain_signals *sig_r)
{
	double score = contain_score(pc, s, sig_r);
	enum policy_contain_level want = POLICY_CONTAIN_NONE;

	/* graded: suspension only after the hold, once further messages
	 * kept scoring for it */
	if (score >= pc->cfg.suspend && s->level >= POLICY_CONTAIN_HOLD &&
	    ++s->strikes >= pc->cfg.suspend_after)
		want = POLICY_CONTAIN_SUSPEND;
	else if (score >= pc->cfg.hold)
		want = POLICY_CONTAIN_HOLD;
	else if (score >= pc->cfg.throttle)
		want = POLICY_CONTAIN_THROTTLE;
	contain_raise(pc, s, want);
	return s->level;
}

/* ---- events ------------------------------------------------------------------- */

/* The subjects an event of (tenant, login) counts for, rolled to now:
 * [0] the login (NULL without one), [1] the tenant.  create 0: only known
 * ones. */
static void contain_pair(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			 int create, int64_t now, struct contain_subject *pair_r[2])
{
	pair_r[0] = credential_id > 0 ? contain_get(pc, POLICY_CREDENTIAL, credential_id, create)
				      : NULL;
	pair_r[1] = contain_get(pc, POLICY_TENANT, tenant_id, create);
	if (pair_r[0] != NULL) {
		pair_r[0]->tenant_id = tenant_id;
		contain_roll(pc, pair_r[0], now);
	}
	if (pair_r[1] != NULL)
		contain_roll(pc, pair_r[1], now);
}

/* Judge after an event: the login, or the tenant when there is none. */
static void contain_judge_pair(struct policy_contain *pc, struct contain_subject *pair[2],
			       int64_t credential_id)
{
	if (pair[0] != NULL)
		(void)contain_judge(pc, pair[0], NULL);
	else if (pair[1] != NULL && credential_id <= 0)
		(void)contain_judge(pc, pair[1], NULL);
}

void policy_contain_auth(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			 int new_network, int outside, int64_t now)
{
	struct contain_subject *pair[2];

	contain_pair(pc, tenant_id, credential_id, 1, now, pair);
	for (int k = 0; k < 2; k++) {
		if (pair[k] != NULL) {
			pair[k]->new_network |= new_network;
			pair[k]->outside |= outside;
		}
	}
}

static void contain_count_message(struct policy_contain *pc, struct contain_subject *s,
				  const struct policy_contain_message *m, int64_t now)
{
	int mature;
	uint32_t unfamiliar = 0;

	contain_roll(pc, s, now);
	mature = s->hours >= pc->cfg.min_hours;
	s->msgs++;
	s->last_msg = now;
	for (size_t i = 0; i < m->nrcpts; i++) {
		uint64_t h = m->rcpt_domains[i];
		s->rcpts++;
		if (set_has(s->domains, set_cap(pc->cfg.max_domains), h))
			continue;
		if (!mature) {
			/* no baseline yet: learn it */
			if (set_add(&s->domains, &s->ndomains, pc->cfg.max_domains, h) > 0)
				s->dirty = 1;
			continue;
		}
		unfamiliar++;
		(void)set_add(&s->new_domains, &s->nnew, pc->cfg.max_domains, h);
	}
	s->unfamiliar_rcpts += unfamiliar;
	if (m->body_hash != 0 && unfamiliar > 0) {
		struct contain_body *slot = NULL;
		for (size_t i = 0; i < CONTAIN_BODIES && slot == NULL; i++)
			if (s->bodies[i].hash == m->body_hash || s->bodies[i].hash == 0)
				slot = &s->bodies[i];
		if (slot != NULL) {
			slot->hash = m->body_hash;
			slot->unfamiliar_rcpts += unfamiliar;
			if (slot->unfamiliar_rcpts > s->max_fanout)
				s->max_fanout = slot->unfamiliar_rcpts;
		}
	}
}

enum policy_contain_level policy_contain_message(struct policy_contain *pc,
						 const struct policy_contain_message *m,
						 int64_t now, struct policy_contain_verdict *v_r)
{
	struct contain_subject *cred = NULL, *ten;
	enum policy_contain_level lc = POLICY_CONTAIN_NONE, lt;

	memset(v_r, 0, sizeof *v_r);
	if (m->credential_id > 0 && (cred = contain_get(pc, POLICY_CREDENTIAL, m->credential_id, 1))) {
		cred->tenant_id = m->tenant_id;
		contain_count_message(pc, cred, m, now);
		lc = contain_judge(pc, cred, &v_r->credential);
	}
	ten = contain_get(pc, POLICY_TENANT, m->tenant_id, 1);
	lt = POLICY_CONTAIN_NONE;
	if (ten != NULL) {
		contain_count_message(pc, ten, m, now);
		if (cred == NULL)
			lt = contain_judge(pc, ten, &v_r->tenant);
		else
			(void)contain_score(pc, ten, &v_r->tenant); /* reported, not acted on */
		lt = ten->level;
	}
	v_r->credential_level = lc;
	v_r->tenant_level = lt;
	return lc > lt ? lc : lt;
}

void policy_contain_outcome(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			    uint32_t failed, int64_t now)
{
	struct contain_subject *pair[2];

	contain_pair(pc, tenant_id, credential_id, 0, now, pair);
	for (int k = 0; k < 2; k++)
		if (pair[k] != NULL)
			pair[k]->failed += failed;
	contain_judge_pair(pc, pair, credential_id);
}

void policy_contain_scan(struct policy_contain *pc, int64_t tenant_id, int64_t credential_id,
			 int spam, int virus, int64_t now)
{
	struct contain_subject *pair[2];

	contain_pair(pc, tenant_id, credential_id, 1, now, pair);
	for (int k = 0; k < 2; k++) {
		if (pair[k] != NULL) {
			pair[k]->spam += spam != 0;
			pair[k]->virus += virus != 0;
		}
	}
	contain_judge_pair(pc, pair, credential_id);
}

enum policy_contain_level policy_contain_blocked(struct policy_contain *pc, int64_t tenant_id,
						 uint64_t attempts, uint32_t sources, int64_t now,
						 struct policy_contain_signals *sig_r)
{
	struct contain_subject *pair[2];
	enum policy_contain_level want = POLICY_CONTAIN_NONE;
	double score;

	if (sig_r != NULL)
		memset(sig_r, 0, sizeof *sig_r);
	contain_pair(pc, tenant_id, 0, attempts > 0, now, pair);
	if (pair[1] == NULL)
		return POLICY_CONTAIN_NONE;
	pair[1]->blocked += attempts;
	if (sources > pair[1]->blocked_sources)
		pair[1]->blocked_sources = sources;
	/* hold at most: suspension stays graded on messages (strikes) */
	score = contain_score(pc, pair[1], sig_r);
	if (score >= pc->cfg.hold)
		want = POLICY_CONTAIN_HOLD;
	else if (score >= pc->cfg.throttle)
		want = POLICY_CONTAIN_THROTTLE;
	contain_raise(pc, pair[1], want);
	return pair[1]->level;
}

enum policy_contain_level policy_contain_level(struct policy_contain *pc,
					       enum policy_subject_kind kind, int64_t id,
					       int64_t now)
{
	struct contain_subject *s = contain_get(pc, kind, id, 0);

	if (s == NULL)
		return POLICY_CONTAIN_NONE;
	contain_roll(pc, s, now);
	return s->level;
}

void policy_contain_release(struct policy_contain *pc, enum policy_subject_kind kind, int64_t id)
{
	struct contain_subject *s = contain_get(pc, kind, id, 0);

	if (s == NULL)
		return;
	if (s->kind == POLICY_CREDENTIAL && s->level == POLICY_CONTAIN_SUSPEND) {
		struct contain_subject *t = contain_get(pc, POLICY_TENANT, s->tenant_id, 0);
		if (t != NULL && t->suspended_logins > 0)
			t->suspended_logins--;
	}
	if (s->kind == POLICY_TENANT)
		s->suspended_logins = 0;
	s->level = POLICY_CONTAIN_NONE;
	s->strikes = 0;
	/* what this hour had is forgiven, not learnt: the operator said it
	 * was honest, so its domains join the baseline */
	for (size_t i = 0, cap = set_cap(pc->cfg.max_domains); s->new_domains != NULL && i < cap;
	     i++)
		if (s->new_domains[i] != 0)
			(void)set_add(&s->domains, &s->ndomains, pc->cfg.max_domains,
				      s->new_domains[i]);
	contain_hour_reset(s);
}

const char *policy_contain_level_name(enum policy_contain_level l)
{
	switch (l) {
	case POLICY_CONTAIN_NONE:
		return "none";
	case POLICY_CONTAIN_THROTTLE:
		return "throttle";
	case POLICY_CONTAIN_HOLD:
		return "hold";
	case POLICY_CONTAIN_SUSPEND:
		return "suspend";
	}
	return "?";
}

/* ---- persistence ------------------------------------------------------------- */

int policy_contain_export(struct policy_contain *pc, struct store_contain_baseline **list_r,
			  size_t *n_r)
{
	struct store_contain_baseline *list = NULL, *grown;
	size_t n = 0, cap = 0, setcap = set_cap(pc->cfg.max_domains);

	*list_r = NULL;
	*n_r = 0;
	for (size_t b = 0; b < CONTAIN_BUCKETS; b++) {
		for (struct contain_subject *s = pc->buckets[b]; s != NULL; s = s->next) {
			struct store_contain_baseline *x;
			size_t k = 0;

			if (!s->dirty || (s->kind == POLICY_CREDENTIAL && s->tenant_id <= 0))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				if ((grown = reallocarray(list, cap, sizeof *list)) == NULL)
					goto fail;
				list = grown;
			}
			x = &list[n];
			memset(x, 0, sizeof *x);
			x->kind = s->kind;
			x->subject_id = s->id;
			x->tenant_id = s->kind == POLICY_TENANT ? s->id : s->tenant_id;
			x->rcpts_per_hour = s->ema_rcpts;
			x->hours = s->hours;
			if (s->ndomains > 0) {
				size_t want = s->ndomains < STORE_CONTAIN_DOMAINS_MAX
						  ? s->ndomains
						  : STORE_CONTAIN_DOMAINS_MAX;
				if ((x->domains = calloc(want, sizeof *x->domains)) == NULL)
					goto fail;
				for (size_t i = 0; i < setcap && k < want; i++)
					if (s->domains[i] != 0)
						x->domains[k++] = s->domains[i];
			}
			x->ndomains = k;
			n++;
		}
	}
	/* only now: a failure above leaves every subject dirty for next time */
	for (size_t b = 0; b < CONTAIN_BUCKETS; b++)
		for (struct contain_subject *s = pc->buckets[b]; s != NULL; s = s->next)
			s->dirty = 0;
	*list_r = list;
	*n_r = n;
	return 0;
fail:
	store_contain_baselines_free(list, n);
	return -1;
}

int policy_contain_import(struct policy_contain *pc, const struct store_contain_baseline *list,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_contain_baseline *x = &list[i];
		struct contain_subject *s;

		if (x->kind != POLICY_TENANT && x->kind != POLICY_CREDENTIAL)
			continue;
		if ((s = contain_get(pc, (enum policy_subject_kind)x->kind, x->subject_id, 1)) == NULL)
			return -1;
		s->tenant_id = x->tenant_id;
		s->ema_rcpts = x->rcpts_per_hour;
		s->hours = x->hours;
		for (size_t k = 0; k < x->ndomains; k++)
			if (set_add(&s->domains, &s->ndomains, pc->cfg.max_domains,
				    x->domains[k] ? x->domains[k] : 1) < 0)
				return -1;
	}
	return 0;
}

void policy_contain_set_level(struct policy_contain *pc, enum policy_subject_kind kind,
			      int64_t id, int64_t tenant_id, enum policy_contain_level level,
			      int64_t since)
{
	struct contain_subject *s = contain_get(pc, kind, id, 1);

	if (s == NULL)
		return;
	if (kind == POLICY_CREDENTIAL)
		s->tenant_id = tenant_id;
	/* a throttle is the hour's: it lifts when the hour it was set in ends */
	if (level == POLICY_CONTAIN_THROTTLE && s->hour == 0)
		s->hour = since / 3600;
	contain_raise(pc, s, level);
}

size_t policy_contain_lifts(struct policy_contain *pc, int64_t now, struct policy_contain_lift *out,
			    size_t max)
{
	size_t n = 0;

	for (size_t b = 0; b < CONTAIN_BUCKETS && n < max; b++) {
		for (struct contain_subject *s = pc->buckets[b]; s != NULL && n < max; s = s->next) {
			if (s->level == POLICY_CONTAIN_THROTTLE && s->hour != now / 3600)
				contain_roll(pc, s, now);
			if (!s->lifted)
				continue;
			s->lifted = 0;
			out[n++] = (struct policy_contain_lift){
			    .kind = s->kind,
			    .id = s->id,
			    .tenant_id = s->kind == POLICY_TENANT ? s->id : s->tenant_id};
		}
	}
	return n;
}

int64_t policy_contain_wait(struct policy_contain *pc, enum policy_subject_kind kind, int64_t id,
			    int64_t now)
{
	struct contain_subject *s = contain_get(pc, kind, id, 0);

	if (s == NULL)
		return 0;
	contain_roll(pc, s, now);
	if (s->level != POLICY_CONTAIN_THROTTLE || s->last_msg == 0 ||
	    now - s->last_msg >= (int64_t)pc->cfg.throttle_interval)
		return 0;
	return s->last_msg + pc->cfg.throttle_interval - now;
}

void policy_contain_signals_of(struct policy_contain *pc, enum policy_subject_kind kind,
			       int64_t id, int64_t now, struct policy_contain_signals *sig_r)
{
	struct contain_subject *s = contain_get(pc, kind, id, 0);

	memset(sig_r, 0, sizeof *sig_r);
	if (s == NULL)
		return;
	contain_roll(pc, s, now);
	contain_score(pc, s, sig_r);
}
