/*
 * policy_int: what the policy module's files share and nobody else uses.
 */
#ifndef SLUICE_POLICY_INT_H
#define SLUICE_POLICY_INT_H

#include "policy/policy.h"

/* limits.c: count an AUTH event of credential.c in the stats of the login
 * and of its tenant. */
void policy_limits_count_auth(struct policy_limits *pl, int64_t tenant_id, int64_t credential_id,
                              int outside, int new_network, int64_t now_s);

#endif
