/*
 * control - the local control socket between the daemon and its tools
 * (`strictmta queue ...`, `mailq`, `sendmail -q`).
 *
 * The socket is queue_directory/private/control, a Unix stream socket that
 * only root, the mail owner and admin_group may open (the folder is 0750
 * and the socket 0660). One request per connection:
 *
 *   client: one line of words separated by single spaces, ending in LF,
 *           at most CONTROL_REQUEST_MAX bytes, e.g. "list --json",
 *           "show 0123456789ABCDEF", "delete --all", "flush".
 *   daemon: "OK\n" then the body, or "ERR text\n"; then it closes.
 *
 * This header is the client side; the daemon serves it (mta/daemon).
 */
#ifndef STRICTMTA_CONTROL_H
#define STRICTMTA_CONTROL_H

#include "mta/util/buf.h"

#define CONTROL_REQUEST_MAX 8192
#define CONTROL_SOCKET_NAME "private/control"

/*
 * Sends request (no newline) to the daemon whose queue is queue_directory
 * and appends the body of an OK reply to reply. Returns 0 on OK; -1 with a
 * clear message in err when the daemon is not running, access is denied,
 * or the daemon answered ERR (then err holds its text).
 */
int control_request(
    const char *queue_directory, const char *request, buf_t *reply, buf_t *err);

/* The same, telling the failures apart (the CLI's exit codes). */
#define CONTROL_OK 0
#define CONTROL_EREPLY -1 /* the daemon answered ERR; err has its text */
#define CONTROL_ENOCONN -2 /* no daemon listening (EX_TEMPFAIL) */
#define CONTROL_EDENIED -3 /* the socket or the daemon refused us */
#define CONTROL_EIO -4 /* broken or truncated reply, timeout */
int control_call(
    const char *queue_directory, const char *request, buf_t *reply, buf_t *err);

#endif
