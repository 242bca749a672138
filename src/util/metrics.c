/* The Prometheus text exposition format (version 0.0.4); see metrics.h. */
#include "util/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int name_char(char c, int first, int colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return 1;
	if (c == ':')
		return colon;
	return !first && c >= '0' && c <= '9';
}

int metrics_name_valid(const char *name)
{
	if (name == NULL || name[0] == '\0')
		return 0;
	for (const char *p = name; *p; p++)
		if (!name_char(*p, p == name, 1))
			return 0;
	return 1;
}

int metrics_label_name_valid(const char *name)
{
	if (name == NULL || name[0] == '\0' || strncmp(name, "__", 2) == 0)
		return 0;
	for (const char *p = name; *p; p++)
		if (!name_char(*p, p == name, 0))
			return 0;
	return 1;
}

/* Append s with the given bytes escaped: '\\' and '\n' always, '"'
 * when quote is set (label values; HELP text keeps its quotes). */
static int escape(struct buf *out, const char *s, int quote)
{
	const char *run = s;

	for (const char *p = s;; p++) {
		const char *rep = NULL;

		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '\n')
			rep = "\\n";
		else if (*p == '"' && quote)
			rep = "\\\"";
		else if (*p != '\0')
			continue;
		if (buf_append(out, run, (size_t)(p - run)) < 0)
			return -1;
		if (rep == NULL)
			return 0;
		if (buf_append_str(out, rep) < 0)
			return -1;
		run = p + 1;
	}
}

int metrics_family(struct buf *out, const char *name, enum metrics_type type, const char *help)
{
	size_t mark = out->len;

	if (!metrics_name_valid(name))
		return -1;
	if (buf_printf(out, "# HELP %s ", name) < 0 || escape(out, help ? help : "", 0) < 0 ||
	    buf_printf(out, "\n# TYPE %s %s\n", name,
	               type == METRICS_COUNTER ? "counter" : "gauge") < 0)
		goto fail;
	return 0;
fail:
	out->len = mark;
	if (out->data != NULL)
		out->data[mark] = '\0';
	return -1;
}

/* name{labels} value\n, value already formatted. */
static int sample(struct buf *out, const char *name, const struct metrics_label *labels,
                  size_t nlabels, const char *value)
{
	size_t mark = out->len;

	if (!metrics_name_valid(name) || nlabels > METRICS_LABELS_MAX ||
	    (nlabels > 0 && labels == NULL))
		return -1;
	for (size_t i = 0; i < nlabels; i++) {
		if (!metrics_label_name_valid(labels[i].name) || labels[i].value == NULL)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(labels[i].name, labels[j].name) == 0)
				return -1; /* a label twice: the parser refuses it */
	}
	if (buf_append_str(out, name) < 0)
		goto fail;
	for (size_t i = 0; i < nlabels; i++)
		if (buf_printf(out, "%s%s=\"", i ? "," : "{", labels[i].name) < 0 ||
		    escape(out, labels[i].value, 1) < 0 || buf_append_str(out, "\"") < 0)
			goto fail;
	if (buf_printf(out, "%s %s\n", nlabels ? "}" : "", value) < 0)
		goto fail;
	return 0;
fail:
	out->len = mark;
	if (out->data != NULL)
		out->data[mark] = '\0';
	return -1;
}

int metrics_sample(struct buf *out, const char *name, const struct metrics_label *labels,
                   size_t nlabels, uint64_t value)
{
	char v[24];

	snprintf(v, sizeof v, "%" PRIu64, value);
	return sample(out, name, labels, nlabels, v);
}

int metrics_sample_i64(struct buf *out, const char *name, const struct metrics_label *labels,
                       size_t nlabels, int64_t value)
{
	char v[24];

	snprintf(v, sizeof v, "%" PRId64, value);
	return sample(out, name, labels, nlabels, v);
}

int metrics_sample_double(struct buf *out, const char *name, const struct metrics_label *labels,
                          size_t nlabels, double value)
{
	char v[32];

	if (isnan(value))
		snprintf(v, sizeof v, "NaN");
	else if (isinf(value))
		snprintf(v, sizeof v, "%cInf", value > 0 ? '+' : '-');
	else {
		/* the shorter form when it reads back exactly */
		snprintf(v, sizeof v, "%.15g", value);
		if (strtod(v, NULL) != value)
			snprintf(v, sizeof v, "%.17g", value);
	}
	return sample(out, name, labels, nlabels, v);
}
