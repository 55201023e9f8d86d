/*
 * clock - the one source of wall-clock time, injectable for tests.
 *
 * Backoff, queue lifetime and policy max_age are computed from clock_now()
 * so that tests can move time without sleeping.
 */
#ifndef STRICTMTA_CLOCK_H
#define STRICTMTA_CLOCK_H

#include <stdint.h>

int64_t clock_now(void); /* seconds since the epoch */
int64_t clock_now_usec(void); /* microseconds since the epoch */
/* 0 restores the real clock; otherwise clock_now() returns this value. */
void clock_set_fake(int64_t seconds);

#endif
