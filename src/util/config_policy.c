/*
 * The outbound policy's keys of the global section (src/policy reads
 * them):
 *   limit_NAME = N            a default limit of every tenant (0: none),
 *                             NAME as `sluice limit set` spells it;
 *   credential_network_mode = refuse | flag
 *                             AUTH from outside a login's bound networks;
 *   usage_flush_interval = 5s how often usage counters reach the store;
 *   contain = on | off        containment of compromised senders;
 *   contain_rcpts_floor = 100 recipients an hour below which volume is
 *                             never unusual;
 *   contain_throttle_interval = 60s  a throttled sender's pace.
 */
#include "util/config.h"
#include "util/util.h"

#include <string.h>

/* The order is policy.h's enum policy_limit. */
const char *const config_policy_limit_names[CONFIG_POLICY_LIMITS] = {
    "messages_per_second", "messages_per_minute",    "messages_per_hour",
    "messages_per_day",    "recipients_per_second",  "recipients_per_minute",
    "recipients_per_hour", "recipients_per_day",     "quota_day",
    "quota_month",         "recipients_per_message", "message_size",
};

void config_policy_defaults(struct config_policy *p)
{
	memset(p, 0, sizeof *p);
	p->usage_flush_interval = 5;
	p->contain = 1;
	p->contain_rcpts_floor = 100;
	p->contain_throttle_interval = 60;
}

int config_policy_limit_index(const char *name)
{
	for (int i = 0; i < CONFIG_POLICY_LIMITS; i++)
		if (strcmp(name, config_policy_limit_names[i]) == 0)
			return i;
	return -1;
}

int config_policy_limit_value(int index, const char *v, uint64_t *n_r)
{
	uint64_t n = 0;
	const char *p;

	if (strcmp(v, "none") == 0) {
		*n_r = 0;
		return 0;
	}
	/* a size takes k/m/g (binary, as max_message_size); a count is a
	 * plain number: "100k" recipients would read as 102,400 */
	if (strcmp(config_policy_limit_names[index], "message_size") == 0) {
		if (util_parse_size(v, &n) < 0 || n > INT64_MAX)
			return -1;
		*n_r = n;
		return 0;
	}
	if (*v == '\0')
		return -1;
	for (p = v; *p; p++) {
		if (*p < '0' || *p > '9' || n > (uint64_t)INT64_MAX / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*n_r = n;
	return 0;
}

int config_policy_key(struct config_policy *p, const char *k, const char *v, const char **why)
{
	uint64_t n;

	if (strncmp(k, "limit_", 6) == 0) {
		int i = config_policy_limit_index(k + 6);
		if (i < 0) {
			*why = "unknown limit (see etc/sluice.conf.example)";
			return -1;
		}
		if (config_policy_limit_value(i, v, &n) < 0) {
			*why = "bad number (0 or none: no limit)";
			return -1;
		}
		p->limits[i] = n;
		return 0;
	}
	if (strcmp(k, "credential_network_mode") == 0) {
		if (strcmp(v, "refuse") == 0)
			p->credential_network_flag = 0;
		else if (strcmp(v, "flag") == 0)
			p->credential_network_flag = 1;
		else {
			*why = "credential_network_mode must be refuse or flag";
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "usage_flush_interval") == 0) {
		if (util_parse_duration(v, &n) < 0 || n == 0 || n > 3600) {
			*why = "usage_flush_interval must be 1s to 1h";
			return -1;
		}
		p->usage_flush_interval = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "contain") == 0) {
		if (strcmp(v, "on") == 0 || strcmp(v, "off") == 0) {
			p->contain = strcmp(v, "on") == 0;
			return 0;
		}
		*why = "contain must be on or off";
		return -1;
	}
	if (strcmp(k, "contain_rcpts_floor") == 0) {
		if (util_parse_size(v, &n) < 0 || n == 0 || n > 10000000) {
			*why = "contain_rcpts_floor must be 1 to 10000000";
			return -1;
		}
		p->contain_rcpts_floor = (uint32_t)n;
		return 0;
	}
	if (strcmp(k, "contain_throttle_interval") == 0) {
		if (util_parse_duration(v, &n) < 0 || n == 0 || n > 3600) {
			*why = "contain_throttle_interval must be 1s to 1h";
			return -1;
		}
		p->contain_throttle_interval = (uint32_t)n;
		return 0;
	}
	return 1;
}
