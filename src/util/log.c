/*
 * Logging.  Every event is one line of key=value pairs, written with a
 * single write so lines from several threads never interleave.
 */
#include "util/util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static const char *log_ident = "sluice";
static int log_use_syslog;
static enum log_level log_min_level = LOG_LEVEL_INFO;
/* getpid() is a system call: once per process, not once per line */
static pid_t log_pid;

static void log_pid_reset(void)
{
	log_pid = getpid();
}

static void log_register_atfork(void)
{
	(void)pthread_atfork(NULL, NULL, log_pid_reset);
}

void log_init(const char *ident, int use_syslog, enum log_level min_level)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, log_register_atfork);
	log_pid_reset();
	log_ident = ident;
	log_use_syslog = use_syslog;
	log_min_level = min_level;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void log_emit(enum log_level level, const char *fmt, va_list ap) UTIL_PRINTF(2, 0);

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	static const char *names[] = {"debug", "info", "warn", "err"};
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR};
	char line[2048];
	int saved = errno;

	if (level < log_min_level)
		return;
	vsnprintf(line, sizeof line, fmt, ap);
	if (log_use_syslog) {
		syslog(prio[level], "level=%s %s", names[level], line);
	} else {
		char out[2300];
		struct timespec ts;
		struct tm tm;
		char when[32];
		int n;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
		n = snprintf(out, sizeof out, "%s.%03ldZ %s[%d]: level=%s %s\n", when,
			     ts.tv_nsec / 1000000, log_ident, (int)(log_pid ? log_pid : getpid()),
			     names[level], line);
		if (n > (int)sizeof out - 1) {
			n = (int)sizeof out - 1;
			out[n - 1] = '\n';
		}
		if (write(STDERR_FILENO, out, (size_t)n) < 0) {
			/* nowhere left to report it */
		}
	}
	errno = saved;
}

#define LOG_FN(name, level)                                                                        \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_emit(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_err, LOG_LEVEL_ERR)

void log_fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_panic(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	abort();
}
