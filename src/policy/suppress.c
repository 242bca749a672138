/*
 * The suppression list (issue 4): per tenant, addresses sluice will not
 * send to any more.  A hard bounce (5.1.x: no such mailbox, no such
 * domain, null MX) puts the recipient there (deliver outcome ->
 * policy_usage_suppress -> the store at the next flush); operators and
 * tenants add and remove entries (`sluice suppression`).  RCPT to a listed
 * address is refused before anything is queued, so a tenant's list of
 * dead addresses does not become repeated bounces that hurt its
 * reputation and ours.
 */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int policy_suppress_reply(int code, const char *enhanced, const char *reply)
{
	const char *p;

	if (code < 500 || code > 599)
		return 0;
	if (enhanced != NULL && enhanced[0] != '\0')
		return strncmp(enhanced, "5.1.", 4) == 0;
	/* A server that does not announce ENHANCEDSTATUSCODES may still
	 * start its text with one ("550 5.1.1 No such user"), as Postfix
	 * reads it too: "5.1." then a digit. */
	if (reply == NULL || strlen(reply) < 4)
		return 0;
	p = reply + 4; /* after "550 " or "550-" */
	return strncmp(p, "5.1.", 4) == 0 && p[4] >= '0' && p[4] <= '9';
}

int policy_check_suppressed(struct store *st, const struct policy_client *c,
                            const struct smtp_address *rcpt, struct policy_verdict *v_r)
{
	struct store_suppression x;
	char addr[SMTP_PATH_MAX * 2], *err = NULL;
	int r;

	v_r->code = 250;
	util_strlcpy(v_r->enhanced, "2.1.5", sizeof v_r->enhanced);
	util_strlcpy(v_r->text, "Ok", sizeof v_r->text);
	if (rcpt->is_null || smtp_address_format(rcpt, addr, sizeof addr) < 0 ||
	    strlen(addr) > STORE_ADDRESS_MAX)
		return 0; /* longer than anything the list can hold */
	r = store_suppression_get(st, c->tenant_id, addr, &x, &err);
	free(err); /* set for "not found" too */
	if (r < 0) {
		v_r->code = 451;
		util_strlcpy(v_r->enhanced, "4.3.0", sizeof v_r->enhanced);
		util_strlcpy(v_r->text,
		             "Temporary failure reading the suppression list, try again "
		             "later",
		             sizeof v_r->text);
		return -1;
	}
	if (r == STORE_NOTFOUND)
		return 0;
	v_r->code = 550;
	util_strlcpy(v_r->enhanced, "5.1.1", sizeof v_r->enhanced);
	/* the address itself is the client's own RCPT: not repeated, so the
	 * text never outgrows the reply */
	snprintf(v_r->text, sizeof v_r->text,
	         "Recipient is on tenant %s's suppression list (%s); not sent",
	         c->tenant ? c->tenant : "?",
	         strcmp(x.source, "bounce") == 0 ? "it bounced earlier" : "added by hand");
	return 0;
}
