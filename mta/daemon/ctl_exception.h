/*
 * ctl_exception - the control socket's exception commands (see
 * policy/verdict/exception.h for the request grammar). The socket's peer
 * check (root, mail_owner, admin_group) has been passed before these run.
 */
#ifndef STRICTMTA_CTL_EXCEPTION_H
#define STRICTMTA_CTL_EXCEPTION_H

#include <stddef.h>
#include <sys/types.h>

#include "mta/util/buf.h"

struct daemon;

/* Nonzero when line is an exception command. */
int ctl_exception_match(const char *line, size_t len);
/* 0 with the body in out, -1 with the ERR text in out. */
int ctl_exception_handle(
    struct daemon *, const char *line, size_t len, uid_t uid, buf_t *out);

#endif
