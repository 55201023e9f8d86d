/*
 * log - one line per event, to syslog (facility mail) or to a file.
 *
 * Lines follow Postfix's shape: "QUEUEID: key=value, key=value ...". The
 * message text is passed through as given; callers make network bytes
 * printable first (buf_put_printable). Safe to call from any thread.
 */
#ifndef STRICTMTA_LOG_H
#define STRICTMTA_LOG_H

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERR
};

/*
 * ident: program name for syslog and the line prefix. path: NULL or "" for
 * syslog, "-" or "/dev/stderr" for standard error, else a file appended to.
 * Returns -1 if the file cannot be opened (errno set).
 */
int log_open(const char *ident, const char *path);
void log_set_verbose(int);
void log_close(void);

void log_msg(enum log_level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_err(...) log_msg(LOG_LEVEL_ERR, __VA_ARGS__)

/* A start-up or config error: logs, prints to stderr, exits with code. */
void log_fatal(int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
