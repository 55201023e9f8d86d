/*
 * qid - queue IDs: 16 uppercase hex digits, 13 of microseconds since the
 * epoch and 3 of a per-process counter mixed with the process ID, so that
 * IDs sort by arrival and two programs (the daemon, sendmail) never make
 * the same one in practice. The maildrop uses the ID as the file name, so
 * the daemon's import is idempotent.
 */
#ifndef STRICTMTA_QID_H
#define STRICTMTA_QID_H

#define QID_LEN 16
#define QID_SIZE (QID_LEN + 1)

void qid_new(char out[QID_SIZE]); /* thread-safe */
/* Nonzero when s is exactly QID_LEN uppercase hex digits. */
int qid_valid(const char *s);
/* The microseconds since the epoch that a valid ID was made at; -1 for an
 * invalid one. Arrival to the microsecond, for delays= in log lines. */
long long qid_usec(const char *s);

#endif
