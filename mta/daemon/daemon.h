/*
 * daemon - strictmtad, the one long-running process: it binds the SMTP
 * ports as root, drops to mail_owner, and then runs one event loop with
 * the SMTP listener, the maildrop import, the control socket and (later)
 * delivery.
 *
 * Start-up order, each step failing with a clear message and nothing left
 * running: config, log, users and groups, queue_directory layout, pid file
 * lock, listening sockets, daemonize (optional), privilege drop, queue,
 * event loop. See docs/strictmtad.8.md.
 *
 * Ownership: daemon_new() keeps cfg (the caller frees it after
 * daemon_free()); the daemon owns everything else it creates.
 */
#ifndef STRICTMTA_DAEMON_H
#define STRICTMTA_DAEMON_H

#include "mta/util/buf.h"
#include "mta/util/config.h"

typedef struct daemon daemon_t;

/* Exit codes of the program (sysexits.h values). */
#define DAEMON_EX_OK 0
#define DAEMON_EX_USAGE 64
#define DAEMON_EX_SOFTWARE 70
#define DAEMON_EX_OSERR 71
#define DAEMON_EX_CONFIG 78

struct daemon_opts {
	int daemonize; /* fork, detach, report start-up via a pipe */
	int verbose;
};

/*
 * Runs every start-up step up to and including opening the queue and
 * arming the event loop. On error returns NULL with the reason in err and
 * *exit_code set; whatever was started has been stopped again.
 */
daemon_t *daemon_new(const struct config *cfg, const struct daemon_opts *,
    int *exit_code, buf_t *err);
/* Runs the event loop until SIGTERM or SIGINT; returns the exit code. */
int daemon_run(daemon_t *);
/* Stops accepting, finishes commits, closes the queue. NULL is a no-op. */
void daemon_free(daemon_t *);

/*
 * Called after the queue gained or changed messages (maildrop import, SMTP
 * commit, flush, release): the one place where delivery is told to look.
 */
void daemon_queue_changed(daemon_t *);

#endif
