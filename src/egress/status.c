/*
 * egress status: the JSON libnftables prints for sluice's table, read back
 * into counts (the reject rule's counter, elements per set), the
 * exceptions in force and the per-source counts of blocked attempts.
 *
 * The JSON is the kernel's state, but it is treated as untrusted input:
 * its size is bounded (EGRESS_JSON_MAX), jansson bounds the nesting, the
 * elements read are bounded (EGRESS_ELEMENTS_MAX), every value is checked
 * for its type and every address is parsed again; objects we do not know
 * are skipped.  libFuzzer runs it (tests/fuzz/fuzz_egress.c).
 */
#include "egress/egress_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* A set element: a bare value or {"elem": {"val": ..., "expires": ...}}. */
struct egress_elem {
	json_t *val;
	uint64_t expires;    /* seconds left; 0 none */
	const char *comment; /* NULL none */
	uint64_t packets, bytes;
};

static uint64_t egress_json_u64(json_t *v)
{
	json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

	return n > 0 ? (uint64_t)n : 0;
}

static void egress_elem_read(json_t *e, struct egress_elem *el)
{
	json_t *inner = json_is_object(e) ? json_object_get(e, "elem") : NULL;
	json_t *ctr;

	memset(el, 0, sizeof *el);
	if (!json_is_object(inner)) {
		el->val = e;
		return;
	}
	el->val = json_object_get(inner, "val");
	el->expires = egress_json_u64(json_object_get(inner, "expires"));
	el->comment = json_string_value(json_object_get(inner, "comment"));
	ctr = json_object_get(inner, "counter");
	if (json_is_object(ctr)) {
		el->packets = egress_json_u64(json_object_get(ctr, "packets"));
		el->bytes = egress_json_u64(json_object_get(ctr, "bytes"));
	}
}

/* An element value as canonical network text: "a.b.c.d" or
 * {"prefix": {"addr": "...", "len": N}}.  -1 for ranges and the rest. */
static int egress_elem_cidr(json_t *val, struct egress_cidr *c, char text[EGRESS_CIDR_MAX])
{
	char in[EGRESS_CIDR_MAX], err[128];
	json_t *p;

	if (json_is_string(val)) {
		if (util_strlcpy(in, json_string_value(val), sizeof in) >= sizeof in)
			return -1;
	} else if (json_is_object(val) && json_is_object(p = json_object_get(val, "prefix"))) {
		json_t *addr = json_object_get(p, "addr"), *len = json_object_get(p, "len");
		if (!json_is_string(addr) || !json_is_integer(len) || json_integer_value(len) < 0 ||
		    json_integer_value(len) > 128)
			return -1;
		if ((size_t)snprintf(in, sizeof in, "%s/%d", json_string_value(addr),
		                     (int)json_integer_value(len)) >= sizeof in)
			return -1;
	} else {
		return -1;
	}
	if (egress_cidr_parse(in, c, err, sizeof err) < 0)
		return -1;
	return egress_cidr_format(c, text);
}

/* "exception ID tenant NAME" (render.c's comment) */
static void egress_comment_read(const char *comment, struct egress_exception *x)
{
	char tenant[EGRESS_TENANT_MAX + 1];
	long long id;

	if (comment != NULL &&
	    sscanf(comment, "exception %lld tenant %64[A-Za-z0-9._-]", &id, tenant) == 2) {
		x->id = id;
		util_strlcpy(x->tenant, tenant, sizeof x->tenant);
	}
}

static int egress_grow(void **list, size_t n, size_t *cap, size_t size)
{
	void *p;

	if (n < *cap)
		return 0;
	*cap = *cap ? *cap * 2 : 16;
	if ((p = reallocarray(*list, *cap, size)) == NULL)
		return -1;
	*list = p;
	return 0;
}

struct egress_parse {
	struct egress_status *st;
	size_t cap_x, cap_b, elements;
	int64_t now;
};

static int egress_set_read(struct egress_parse *ps, json_t *set, char **err_r)
{
	const char *name = json_string_value(json_object_get(set, "name"));
	json_t *elems = json_object_get(set, "elem"), *e;
	struct egress_status *st = ps->st;
	struct egress_elem el;
	struct egress_cidr c;
	char text[EGRESS_CIDR_MAX];
	size_t i, *count = NULL;
	int kind; /* 0 count only, 1 exceptions, 2 blocked */

	if (name == NULL || !json_is_array(elems))
		return 0;
	if (strncmp(name, "customers", 9) == 0)
		count = &st->ncustomers, kind = 0;
	else if (strncmp(name, "relays", 6) == 0)
		count = &st->nrelays, kind = 0;
	else if (strncmp(name, "private", 7) == 0)
		count = &st->nprivates, kind = 0;
	else if (strncmp(name, "exceptions", 10) == 0)
		kind = 1;
	else if (strncmp(name, "blocked", 7) == 0)
		kind = 2;
	else
		return 0;
	json_array_foreach(elems, i, e)
	{
		if (++ps->elements > EGRESS_ELEMENTS_MAX)
			return egress_seterr(err_r, "nft: more than %d set elements in table %s",
			                     EGRESS_ELEMENTS_MAX, EGRESS_TABLE);
		egress_elem_read(e, &el);
		if (kind == 0) {
			(*count)++;
			continue;
		}
		if (egress_elem_cidr(el.val, &c, text) < 0)
			continue;
		if (kind == 1) {
			struct egress_exception *x;
			if (egress_grow((void **)&st->exceptions, st->nexceptions, &ps->cap_x,
			                sizeof *x) < 0)
				goto oom;
			x = &st->exceptions[st->nexceptions++];
			memset(x, 0, sizeof *x);
			memcpy(x->cidr, text, sizeof x->cidr);
			/* the kernel's value, bounded to ~100 years before adding */
			x->expires =
			    el.expires ? ps->now + (int64_t)(el.expires < 3153600000u ? el.expires
			                                                              : 3153600000u)
			               : 0;
			egress_comment_read(el.comment, x);
		} else {
			struct egress_source *s;
			char *slash;
			if (c.prefix != (c.family == 4 ? 32u : 128u))
				continue;
			if (egress_grow((void **)&st->blocked, st->nblocked, &ps->cap_b,
			                sizeof *s) < 0)
				goto oom;
			s = &st->blocked[st->nblocked++];
			memset(s, 0, sizeof *s);
			if ((slash = strchr(text, '/')) != NULL)
				*slash = '\0';
			memcpy(s->addr, text, sizeof s->addr);
			s->family = c.family;
			s->packets = el.packets;
			s->bytes = el.bytes;
			s->expires_s = el.expires;
		}
	}
	return 0;
oom:
	return egress_seterr(err_r, "egress status: out of memory");
}

/* The reject rule of chain port25: its counter. */
static void egress_rule_read(struct egress_status *st, json_t *rule)
{
	json_t *expr = json_object_get(rule, "expr"), *x, *ctr = NULL;
	const char *chain = json_string_value(json_object_get(rule, "chain"));
	int reject = 0;
	size_t i;

	if (chain == NULL || strcmp(chain, "port25") != 0 || !json_is_array(expr))
		return;
	json_array_foreach(expr, i, x)
	{
		if (!json_is_object(x))
			continue;
		if (json_object_get(x, "reject") != NULL)
			reject = 1;
		if (json_is_object(json_object_get(x, "counter")))
			ctr = json_object_get(x, "counter");
	}
	if (reject && ctr != NULL) {
		st->rejected_packets = egress_json_u64(json_object_get(ctr, "packets"));
		st->rejected_bytes = egress_json_u64(json_object_get(ctr, "bytes"));
	}
}

static int egress_source_cmp(const void *a, const void *b)
{
	const struct egress_source *x = a, *y = b;

	if (x->packets != y->packets)
		return x->packets < y->packets ? 1 : -1;
	if (x->family != y->family)
		return x->family - y->family;
	return strcmp(x->addr, y->addr);
}

int egress_status_parse(const char *json, size_t len, int64_t now, struct egress_status *st_r,
                        char **err_r)
{
	struct egress_parse ps = {.st = st_r, .now = now};
	json_error_t jerr;
	json_t *root, *list, *item;
	size_t i;

	memset(st_r, 0, sizeof *st_r);
	if (len > EGRESS_JSON_MAX)
		return egress_seterr(err_r, "nft: the table's JSON is larger than %u bytes",
		                     EGRESS_JSON_MAX);
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return egress_seterr(err_r, "nft: unreadable JSON at %d: %s", jerr.position,
		                     jerr.text);
	list = json_object_get(root, "nftables");
	if (!json_is_array(list)) {
		json_decref(root);
		return egress_seterr(err_r, "nft: JSON without an \"nftables\" array");
	}
	json_array_foreach(list, i, item)
	{
		json_t *v;
		if (!json_is_object(item))
			continue;
		if (json_is_object(v = json_object_get(item, "table"))) {
			const char *name = json_string_value(json_object_get(v, "name"));
			if (name != NULL && strcmp(name, EGRESS_TABLE) == 0)
				st_r->present = 1;
		} else if (json_is_object(v = json_object_get(item, "set"))) {
			if (egress_set_read(&ps, v, err_r) < 0)
				goto fail;
		} else if (json_is_object(v = json_object_get(item, "rule"))) {
			egress_rule_read(st_r, v);
		}
	}
	json_decref(root);
	if (st_r->nblocked > 1)
		qsort(st_r->blocked, st_r->nblocked, sizeof *st_r->blocked, egress_source_cmp);
	return 0;
fail:
	json_decref(root);
	egress_status_free(st_r);
	return -1;
}

void egress_status_free(struct egress_status *st)
{
	free(st->exceptions);
	free(st->blocked);
	memset(st, 0, sizeof *st);
}

void egress_sources_name(struct egress_source *src, size_t n, const struct egress_owner *owners,
                         size_t nowners)
{
	char err[128];

	for (size_t i = 0; i < n; i++) {
		struct egress_cidr a, c;
		unsigned best = 0;

		src[i].tenant_id = 0;
		src[i].tenant[0] = '\0';
		if (egress_cidr_parse(src[i].addr, &a, err, sizeof err) < 0)
			continue;
		for (size_t j = 0; j < nowners; j++) {
			if (egress_cidr_parse(owners[j].cidr, &c, err, sizeof err) < 0 ||
			    !egress_cidr_contains(&c, &a) || c.prefix <= best)
				continue;
			best = c.prefix;
			src[i].tenant_id = owners[j].tenant_id;
			util_strlcpy(src[i].tenant, owners[j].tenant, sizeof src[i].tenant);
		}
	}
}

static int egress_count_cmp(const void *a, const void *b)
{
	const struct egress_tenant_count *x = a, *y = b;

	if (x->attempts != y->attempts)
		return x->attempts < y->attempts ? 1 : -1;
	return x->tenant_id < y->tenant_id ? -1 : x->tenant_id > y->tenant_id;
}

int egress_tenant_counts(const struct egress_source *src, size_t n,
                         struct egress_tenant_count **list_r, size_t *n_r)
{
	struct egress_tenant_count *list = NULL;
	size_t cnt = 0, cap = 0, j;

	*list_r = NULL;
	*n_r = 0;
	for (size_t i = 0; i < n; i++) {
		if (src[i].tenant_id == 0)
			continue;
		for (j = 0; j < cnt && list[j].tenant_id != src[i].tenant_id; j++)
			;
		if (j == cnt) {
			if (egress_grow((void **)&list, cnt, &cap, sizeof *list) < 0) {
				free(list);
				return -1;
			}
			list[cnt].tenant_id = src[i].tenant_id;
			list[cnt].attempts = 0;
			list[cnt].sources = 0;
			cnt++;
		}
		list[j].attempts += src[i].packets;
		list[j].sources++;
	}
	if (cnt > 1)
		qsort(list, cnt, sizeof *list, egress_count_cmp);
	*list_r = list;
	*n_r = cnt;
	return 0;
}
