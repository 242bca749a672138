/*
 * Sender authorization at MAIL FROM (DESIGN.md "Tenancy and security").
 * The envelope sender's domain must be one the tenant owns and has
 * verified; the From: header is checked at end of DATA (later work).
 */
#include "policy/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int policy_check_sender(struct store *st, const struct policy_client *c,
			const struct smtp_address *sender, struct policy_verdict *v_r)
{
	struct store_tenant t;
	struct store_domain d;
	char *err = NULL;
	int r;

	r = store_tenant_get_id(st, c->tenant_id, &t, &err);
	if (r != 0) {
		free(err);
		verdict(v_r, 451, "4.3.0", "Temporary failure looking up the tenant, try again later");
		return -1;
	}
	if (t.suspended) {
		verdict(v_r, 550, "5.7.1", "Tenant %s is suspended; contact your provider", t.name);
		return 0;
	}
	if (sender->is_null) {
		if (c->submission)
			verdict(v_r, 550, "5.7.1",
				"The null sender <> is not permitted on submission ports");
		else
			verdict(v_r, 250, "2.1.0", "Ok");
		return 0;
	}
	r = store_domain_get(st, sender->domain, &d, &err);
	free(err); /* set for "not found" too */
	if (r < 0) {
		verdict(v_r, 451, "4.3.0", "Temporary failure looking up the sender domain");
		return -1;
	}
	if (r == STORE_NOTFOUND || d.tenant_id != c->tenant_id) {
		verdict(v_r, 553, "5.7.1", "Sender domain %s is not one of tenant %s's domains",
			sender->domain, t.name);
		return 0;
	}
	if (!d.verified) {
		verdict(v_r, 553, "5.7.1", "Sender domain %s is not verified yet", sender->domain);
		return 0;
	}
	verdict(v_r, 250, "2.1.0", "Ok");
	return 0;
}
