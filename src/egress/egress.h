/*
 * egress: the nftables port-25 egress ruleset (DESIGN.md, "Egress control").
 *
 * One table, "table inet sluice", owned by sluice and by nothing else.
 * TCP 25 from the customer networks is rejected with a TCP reset (clients
 * fail fast) and counted per source address in a dynamic set, unless it
 * goes to sluice's own addresses, to a private subnet, or comes from a
 * source with an exception.  Exceptions are set elements whose kernel
 * timeout is the time left until their stored expiry.
 *
 * The module is three parts:
 *   render.c  a pure data model (configuration + store rows) to the text
 *             of the table: no I/O, golden-tested;
 *   nft.c     libnftables: load the text in one transaction that deletes
 *             and re-creates only sluice's table (atomic, idempotent), and
 *             list the table as JSON;
 *   status.c  the JSON of `nft -j list table inet sluice` read back (with
 *             jansson, bounded): counters, exceptions in force, the
 *             per-source counts of blocked attempts and their tenants.
 * cidr.c parses and matches addresses and networks for all three.
 *
 * Errors: functions return 0 or -1 and fill *err_r (malloc'd, the caller
 * frees) with a text for the operator.
 */
#ifndef SLUICE_EGRESS_H
#define SLUICE_EGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

#define EGRESS_FAMILY "inet"
#define EGRESS_TABLE "sluice"
#define EGRESS_CIDR_MAX 64 /* "ffff:...:ffff/128" and its NUL fit */
#define EGRESS_TENANT_MAX 64
#define EGRESS_BLOCKED_SIZE 65536 /* source addresses counted per family */
/* Bounds on what status.c reads from libnftables. */
#define EGRESS_JSON_MAX (64u * 1024 * 1024)
#define EGRESS_ELEMENTS_MAX (2 * EGRESS_BLOCKED_SIZE + 65536)

/* ---- cidr.c --------------------------------------------------------------- */

struct egress_cidr {
	int family;       /* 4 or 6 */
	uint8_t addr[16]; /* network byte order; 4 bytes used for IPv4 */
	unsigned prefix;  /* 0..32 or 0..128 */
};

/* "ADDR/PREFIX" or a bare address (a host).  Refuses host bits set, a
 * prefix of 0 and IPv4-mapped IPv6; input longer than EGRESS_CIDR_MAX is
 * refused unread.  0, or -1 with err[errsize] naming the input. */
int egress_cidr_parse(const char *s, struct egress_cidr *c_r, char *err, size_t errsize);
/* Canonical text: "10.0.0.0/8", "2001:db8::/32", hosts with /32 or /128. */
int egress_cidr_format(const struct egress_cidr *c, char out[EGRESS_CIDR_MAX]);
/* a is inside c (same family, first c->prefix bits equal). */
int egress_cidr_contains(const struct egress_cidr *c, const struct egress_cidr *a);
/* The two networks share an address: one contains the other. */
int egress_cidr_overlap(const struct egress_cidr *a, const struct egress_cidr *b);

/* ---- render.c ------------------------------------------------------------- */

/* An exception to render (the store's active rows). */
struct egress_exception {
	int64_t id;
	char tenant[EGRESS_TENANT_MAX + 1];
	char cidr[EGRESS_CIDR_MAX];
	int64_t expires; /* unix seconds; 0 never */
};

/* A source address counted by the block, as read back from the kernel. */
struct egress_source {
	char addr[EGRESS_CIDR_MAX]; /* "198.18.1.5", "2001:db8::5" */
	int family;                 /* 4 or 6 */
	uint64_t packets;           /* blocked connection attempts (SYNs) */
	uint64_t bytes;
	uint64_t expires_s; /* seconds until the kernel forgets it; 0 unknown */
	int64_t tenant_id;  /* 0: in no tenant's network */
	char tenant[EGRESS_TENANT_MAX + 1];
};

struct egress_model {
	const char *const *customers; /* the customer networks (config) */
	size_t ncustomers;
	const char *const *relays; /* sluice's addresses: port 25 stays open to them */
	size_t nrelays;
	const char *const *privates; /* private subnets: port 25 stays open into them */
	size_t nprivates;
	const struct egress_exception *exceptions;
	size_t nexceptions;
	/* counts of the table being replaced, carried into the new one so an
	 * apply does not forget the blocked sources */
	const struct egress_source *carry;
	size_t ncarry;
	uint32_t log_rate;        /* log lines a minute at most; 0: no log */
	int log_nflog;            /* 1: to nfnetlink_log group log_group, 0: the kernel log */
	uint16_t log_group;
	uint32_t blocked_timeout; /* seconds a quiet source stays counted */
	int64_t now;              /* unix seconds: exceptions' time left */
};

/* The whole apply transaction: "add table; delete table; table {...}", so
 * loading it replaces sluice's table in one step whether it existed or not.
 * Expired exceptions are left out; one that overlaps an earlier one is left
 * out too (nftables refuses overlapping intervals) and named in *warn_r
 * (malloc'd, NULL when none).  0, or -1 with *err_r (a bad address in the
 * configuration names its key). */
int egress_render(const struct egress_model *m, struct buf *out, char **warn_r, char **err_r);

/* ---- nft.c ------------------------------------------------------------------ */

/* Load rendered text through libnftables: one netlink transaction.  Needs
 * CAP_NET_ADMIN in the network namespace.  0, or -1 with nft's message. */
int egress_nft_apply(const char *text, char **err_r);
/* `nft -j list table inet sluice` through the library: *json_r malloc'd.
 * 0; 1 when sluice's table is not there (*json_r NULL); -1 on error. */
int egress_nft_list(char **json_r, char **err_r);
/* The text form of the table with its counters, as `nft list` prints it. */
int egress_nft_list_text(char **text_r, char **err_r);

/* ---- status.c ---------------------------------------------------------------- */

struct egress_status {
	int present;               /* the table is loaded */
	uint64_t rejected_packets; /* the reject rule's counter */
	uint64_t rejected_bytes;
	size_t ncustomers, nrelays, nprivates; /* elements per kind, both families */
	struct egress_exception *exceptions;   /* in force, expires = now + time left */
	size_t nexceptions;
	struct egress_source *blocked; /* sorted by packets, most first */
	size_t nblocked;
};

/* Read the JSON of egress_nft_list (untrusted: bounded in size, depth and
 * element count; unknown objects ignored).  now: for exceptions' expiry.
 * 0, or -1 with *err_r. */
int egress_status_parse(const char *json, size_t len, int64_t now, struct egress_status *st_r,
                        char **err_r);
void egress_status_free(struct egress_status *st);

/* A network of a tenant (the store's networks table). */
struct egress_owner {
	int64_t tenant_id;
	const char *tenant;
	const char *cidr;
};

/* Name the tenant owning each blocked source (the longest matching
 * network).  Owners with a bad cidr are skipped. */
void egress_sources_name(struct egress_source *src, size_t n, const struct egress_owner *owners,
                         size_t nowners);

/* Blocked attempts per tenant, for the tenant's containment score. */
struct egress_tenant_count {
	int64_t tenant_id;
	uint64_t attempts; /* blocked connection attempts from its addresses */
	size_t sources;    /* distinct addresses */
};
/* From sources already named: one entry per tenant seen, *list_r malloc'd
 * (free()), most attempts first.  0 or -1 (out of memory). */
int egress_tenant_counts(const struct egress_source *src, size_t n,
                         struct egress_tenant_count **list_r, size_t *n_r);
/* All of it at once, for the containment score: the kernel's blocked
 * sources now (nft.c; CAP_NET_ADMIN in the gateway's namespace), named by
 * owners (the store's networks), counted per tenant.  The table not
 * loaded: an empty list.  0 or -1 with *err_r. */
int egress_blocked_tenants(const struct egress_owner *owners, size_t nowners,
                           struct egress_tenant_count **list_r, size_t *n_r, char **err_r);

#endif
