/*
 * util: small, domain-free helpers shared by every module: logging,
 * growable byte buffers, bounded string copies, time.  Nothing here
 * knows about mail.
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- logging: one key=value line per event ---------------------------- */

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERR };

/* ident is kept by pointer. use_syslog: 0 = stderr, 1 = syslog(3). */
void log_init(const char *ident, int use_syslog, enum log_level min_level);
void log_debug(const char *fmt, ...) UTIL_PRINTF(1, 2);
void log_info(const char *fmt, ...) UTIL_PRINTF(1, 2);
void log_warn(const char *fmt, ...) UTIL_PRINTF(1, 2);
void log_err(const char *fmt, ...) UTIL_PRINTF(1, 2);
/* An impossible state the daemon cannot go on from: log and exit(1). */
void log_fatal(const char *fmt, ...) UTIL_PRINTF(1, 2) __attribute__((noreturn));
/* Internal inconsistency: log and abort() for a core dump. */
void log_panic(const char *fmt, ...) UTIL_PRINTF(1, 2) __attribute__((noreturn));

/* ---- growable byte buffer ---------------------------------------------- */

struct buf {
	char *data; /* always NUL-terminated when data != NULL */
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

/* All return 0 on success, -1 on allocation failure (buffer unchanged). */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) UTIL_PRINTF(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) UTIL_PRINTF(2, 0);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Free the storage; b is left empty and reusable. */
void buf_free(struct buf *b);
/* Hand the bytes to the caller, who frees them with free(); b is left empty. */
char *buf_export(struct buf *b, size_t *len_r);

/* ---- strings ------------------------------------------------------------ */

/* BSD strlcpy/strlcat: return the length they tried to create. */
size_t util_strlcpy(char *dst, const char *src, size_t size);
size_t util_strlcat(char *dst, const char *src, size_t size);
/* strdup that returns NULL for NULL. */
char *util_strdup(const char *s);
/* Case-insensitive ASCII compare of n bytes. */
int util_strncasecmp(const char *a, const char *b, size_t n);
/* Constant-time comparison; 0 when equal. */
int util_memcmp_ct(const void *a, const void *b, size_t n);
/* Zero memory in a way the compiler cannot drop. */
void util_wipe(void *p, size_t n);
/* Parse a decimal size with optional k/m/g suffix (binary). 0 ok, -1 bad. */
int util_parse_size(const char *s, uint64_t *v_r);
/* Parse a duration: "30", "30s", "5m", "2h", "7d". 0 ok, -1 bad. */
int util_parse_duration(const char *s, uint64_t *seconds_r);

/* ---- time --------------------------------------------------------------- */

uint64_t util_now_ms(void);      /* CLOCK_MONOTONIC */
int64_t util_wall_seconds(void); /* CLOCK_REALTIME */
int64_t util_wall_us(void);      /* CLOCK_REALTIME, microseconds */
/* RFC 5322 date-time, e.g. "Mon, 23 Nov 2026 19:30:00 +0000". */
void util_rfc5322_date(int64_t t, char *out, size_t size);

/* ---- rates: GCRA (gcra.c) ------------------------------------------------ */

struct util_gcra {
	int64_t tat_us; /* theoretical arrival time of the next cell */
};

/* Emission interval of count cells per period, in microseconds, rounded
 * up (never above the rate); 0 (no limit) for count 0. */
int64_t util_gcra_interval(int64_t period_us, uint64_t count);
/* 1 when n cells conform at now_us with a burst of burst cells (0 counts
 * as 1); else 0 with *wait_us_r = how long until they would, -1 when
 * never (n > burst).  Interval 0: always 1.  Nothing is counted. */
int util_gcra_check(const struct util_gcra *g, int64_t interval_us, uint32_t burst, uint32_t n,
		    int64_t now_us, int64_t *wait_us_r);
/* Count n cells at now_us (after a check said they conform). */
void util_gcra_add(struct util_gcra *g, int64_t interval_us, uint32_t n, int64_t now_us);
/* Give back n cells counted earlier (a reservation that was not used). */
void util_gcra_refund(struct util_gcra *g, int64_t interval_us, uint32_t n);
/* The time from which the next single cell conforms (TAT - tau). */
int64_t util_gcra_ready_us(const struct util_gcra *g, int64_t interval_us, uint32_t burst);

#endif
