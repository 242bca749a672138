/*
 * backoff: the retry schedule.  A list of delays ("5m,10m,20m,40m,1h,2h,
 * 4h"), the last repeating, each stretched or shrunk by a random
 * +-jitter_pct so that the messages deferred together by one outage do
 * not all come back in the same second; and a lifetime after which a
 * still-deferred recipient bounces (RFC 5321 4.5.4.1: give up after at
 * least 4-5 days).
 *
 * The randomness comes from the caller (rnd), so this file is pure and
 * its tests exact.
 */
#include <string.h>

#include "sched/sched_int.h"
#include "util/util.h"

#define SCHED_STEP_MAX (30u * 86400) /* a step longer than a month is a typo */
#define SCHED_JITTER_MAX 50          /* percent */
#define SCHED_MIN_DELAY_MS 1000

void sched_backoff_default(struct sched_backoff *b_r)
{
	const char *why;

	memset(b_r, 0, sizeof *b_r);
	b_r->jitter_pct = SCHED_JITTER_DEFAULT;
	b_r->lifetime = SCHED_LIFETIME_DEFAULT;
	if (sched_backoff_parse(SCHED_BACKOFF_DEFAULT, b_r, &why) < 0)
		log_panic("sched default backoff \"%s\": %s", SCHED_BACKOFF_DEFAULT, why);
}

int sched_backoff_parse(const char *spec, struct sched_backoff *b_r, const char **why_r)
{
	uint32_t steps[SCHED_BACKOFF_MAX];
	size_t n = 0;
	const char *p = spec;

	if (spec == NULL) {
		*why_r = "empty schedule";
		return -1;
	}
	for (;;) {
		char item[32];
		size_t len;
		uint64_t secs;

		while (*p == ' ' || *p == '\t')
			p++;
		len = strcspn(p, ",");
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0) {
			*why_r = n == 0 && p[0] == '\0' ? "empty schedule" : "empty step";
			return -1;
		}
		if (len >= sizeof item) {
			*why_r = "step too long";
			return -1;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (util_parse_duration(item, &secs) < 0) {
			*why_r = "step is not a duration (30s, 5m, 2h, 1d)";
			return -1;
		}
		if (secs == 0 || secs > SCHED_STEP_MAX) {
			*why_r = "step must be from 1s to 30d";
			return -1;
		}
		if (n == SCHED_BACKOFF_MAX) {
			*why_r = "too many steps";
			return -1;
		}
		steps[n++] = (uint32_t)secs;
		p += strcspn(p, ",");
		if (*p == '\0')
			break;
		p++; /* the comma: a step must follow */
	}
	memcpy(b_r->steps, steps, n * sizeof steps[0]);
	b_r->nsteps = n;
	return 0;
}

uint32_t sched_backoff_delay(const struct sched_backoff *b, uint32_t attempts)
{
	if (attempts == 0 || b->nsteps == 0)
		return 0;
	return b->steps[attempts - 1 < b->nsteps ? attempts - 1 : b->nsteps - 1];
}

int64_t sched_backoff_next(const struct sched_backoff *b, uint32_t attempts, int64_t now_ms,
                           uint32_t rnd)
{
	int64_t delay = (int64_t)sched_backoff_delay(b, attempts) * 1000;
	uint32_t pct = b->jitter_pct <= SCHED_JITTER_MAX ? b->jitter_pct : SCHED_JITTER_MAX;
	int64_t span = delay * pct / 100;

	/* rnd maps onto [-span, +span] evenly: floor(rnd * (2 span + 1) / 2^32). */
	if (span > 0)
		delay += (int64_t)(((uint64_t)rnd * (uint64_t)(2 * span + 1)) >> 32) - span;
	if (delay < SCHED_MIN_DELAY_MS)
		delay = SCHED_MIN_DELAY_MS;
	return now_ms + delay;
}

int64_t sched_backoff_deadline(const struct sched_backoff *b, int64_t received_ms)
{
	return received_ms + (int64_t)b->lifetime * 1000;
}
