/*
 * log - see log.h.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "log.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_ident[64] = "strictmta";
static FILE *log_file; /* NULL: syslog */
static int log_to_stderr = 1;
static int log_verbose;

int
log_open(const char *ident, const char *path)
{
	pthread_mutex_lock(&log_lock);
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (log_file && log_file != stderr)
		fclose(log_file);
	log_file = NULL;
	log_to_stderr = 0;
	if (path == NULL || *path == '\0') {
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	} else if (strcmp(path, "-") == 0 || strcmp(path, "/dev/stderr") == 0) {
		log_to_stderr = 1;
	} else if ((log_file = fopen(path, "a")) == NULL) {
		log_to_stderr = 1;
		pthread_mutex_unlock(&log_lock);
		return -1;
	} else {
		setvbuf(log_file, NULL, _IOLBF, 0);
	}
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void
log_set_verbose(int v)
{
	log_verbose = v;
}

void
log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file && log_file != stderr)
		fclose(log_file);
	log_file = NULL;
	log_to_stderr = 1;
	pthread_mutex_unlock(&log_lock);
}

static const char *
level_word(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_WARN:
		return "warning: ";
	case LOG_LEVEL_ERR:
		return "error: ";
	default:
		return "";
	}
}

static void log_vmsg(enum log_level, const char *, va_list)
    __attribute__((format(printf, 2, 0)));

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[4096];
	FILE *out;

	if (level == LOG_LEVEL_DEBUG && !log_verbose)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	pthread_mutex_lock(&log_lock);
	out = log_to_stderr ? stderr : log_file;
	if (out) {
		struct timeval tv;
		struct tm tm;
		char stamp[32];

		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(out, "%s.%06ld %s[%ld]: %s%s\n", stamp,
		    (long)tv.tv_usec, log_ident, (long)getpid(),
		    level_word(level), line);
		fflush(out);
	} else {
		int prio = level == LOG_LEVEL_ERR     ? LOG_ERR
		           : level == LOG_LEVEL_WARN  ? LOG_WARNING
		           : level == LOG_LEVEL_DEBUG ? LOG_DEBUG
		                                      : LOG_INFO;

		syslog(prio, "%s%s", level_word(level), line);
	}
	pthread_mutex_unlock(&log_lock);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_fatal(int exit_code, const char *fmt, ...)
{
	va_list ap;
	char line[4096];

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(LOG_LEVEL_ERR, "fatal: %s", line);
	if (!log_to_stderr)
		fprintf(stderr, "%s: fatal: %s\n", log_ident, line);
	exit(exit_code);
}
