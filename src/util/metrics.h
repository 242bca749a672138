/*
 * metrics: counters that any thread bumps without a lock (C11 atomics,
 * relaxed: a scrape needs each value, not an order between them), and a
 * writer of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/):
 *
 *   # HELP sluice_smtp_sessions_total SMTP sessions accepted.
 *   # TYPE sluice_smtp_sessions_total counter
 *   sluice_smtp_sessions_total{listener="submission"} 12
 *
 * The writer checks metric and label names against the format's grammar
 * and escapes what it must: in HELP text backslash and line feed, in label
 * values backslash, double quote and line feed.  Nothing else is special,
 * so any other byte (UTF-8 included) passes as it is.  Knows nothing of
 * mail; the daemon's metric set is src/cmd/metrics.c.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

/* ---- lock-free counters and gauges --------------------------------------- */

typedef _Atomic uint64_t metrics_counter;
typedef _Atomic int64_t metrics_gauge;

static inline void metrics_add(metrics_counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t metrics_get(metrics_counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static inline void metrics_gauge_add(metrics_gauge *g, int64_t n)
{
	atomic_fetch_add_explicit(g, n, memory_order_relaxed);
}

static inline int64_t metrics_gauge_get(metrics_gauge *g)
{
	return atomic_load_explicit(g, memory_order_relaxed);
}

/* ---- the exposition format ------------------------------------------------ */

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE };

struct metrics_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting "__" (reserved) */
	const char *value; /* any text; escaped on output */
};

#define METRICS_LABELS_MAX 8

/* 1 when name is a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), else 0. */
int metrics_name_valid(const char *name);
/* 1 when name may name a label, else 0. */
int metrics_label_name_valid(const char *name);

/* The "# HELP" and "# TYPE" lines that open a family; a counter's name
 * should end in _total.  0, or -1 (a bad name, out of memory: out is
 * left as it was). */
int metrics_family(struct buf *out, const char *name, enum metrics_type type, const char *help);
/* One sample line, "name{l1="v1",l2="v2"} value"; no braces without
 * labels.  0, or -1 (bad name or label name, too many labels, out of
 * memory: out is left as it was). */
int metrics_sample(struct buf *out, const char *name, const struct metrics_label *labels,
                   size_t nlabels, uint64_t value);
int metrics_sample_i64(struct buf *out, const char *name, const struct metrics_label *labels,
                       size_t nlabels, int64_t value);
/* A float sample: "%.15g", or "%.17g" when only that reads back exactly;
 * "+Inf", "-Inf", "NaN" (the C locale's decimal point: sluiced sets none). */
int metrics_sample_double(struct buf *out, const char *name, const struct metrics_label *labels,
                          size_t nlabels, double value);

#endif
