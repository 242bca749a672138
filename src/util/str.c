/* Bounded strings, parsing of sizes and durations, time formatting. */
#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

size_t util_strlcat(char *dst, const char *src, size_t size)
{
	size_t d = strnlen(dst, size);

	if (d == size)
		return size + strlen(src);
	return d + util_strlcpy(dst + d, src, size - d);
}

char *util_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int util_strncasecmp(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int ca = tolower((unsigned char)a[i]), cb = tolower((unsigned char)b[i]);
		if (ca != cb)
			return ca - cb;
		if (ca == 0)
			return 0;
	}
	return 0;
}

int util_memcmp_ct(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *pa = a, *pb = b;
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= pa[i] ^ pb[i];
	return d;
}

void util_wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n--)
		*v++ = 0;
}

static int parse_scaled(const char *s, uint64_t *v_r, const char *units, const uint64_t *scale)
{
	char *end;
	unsigned long long v;
	const char *u;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	if (*end == '\0') {
		*v_r = v;
		return 0;
	}
	u = strchr(units, tolower((unsigned char)*end));
	if (u == NULL || end[1] != '\0')
		return -1;
	if (v > UINT64_MAX / scale[u - units])
		return -1;
	*v_r = v * scale[u - units];
	return 0;
}

int util_parse_size(const char *s, uint64_t *v_r)
{
	static const uint64_t scale[] = {1024ULL, 1024ULL * 1024, 1024ULL * 1024 * 1024};
	return parse_scaled(s, v_r, "kmg", scale);
}

int util_parse_duration(const char *s, uint64_t *seconds_r)
{
	static const uint64_t scale[] = {1, 60, 3600, 86400};
	return parse_scaled(s, seconds_r, "smhd", scale);
}

uint64_t util_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t util_wall_seconds(void)
{
	return (int64_t)time(NULL);
}

int64_t util_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void util_rfc5322_date(int64_t t, char *out, size_t size)
{
	static const char *days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(out, size, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}
