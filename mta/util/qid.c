/*
 * qid - see qid.h.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "qid.h"

static pthread_mutex_t qid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t qid_last_usec;
static unsigned qid_counter;

void
qid_new(char out[QID_SIZE])
{
	int64_t usec;
	unsigned low;

	pthread_mutex_lock(&qid_lock);
	usec = clock_now_usec();
	if (usec <= qid_last_usec) {
		/* Same microsecond (or the clock went back): count on. */
		if (++qid_counter >= 0x100) {
			usec = qid_last_usec + 1;
			qid_counter = 0;
		} else {
			usec = qid_last_usec;
		}
	} else {
		qid_counter = 0;
	}
	qid_last_usec = usec;
	/* Two hex digits of counter, one of the process ID: two processes
	 * in the same microsecond still differ unless their PIDs agree
	 * modulo 16. */
	low = (qid_counter << 4) | ((unsigned)getpid() & 0xf);
	pthread_mutex_unlock(&qid_lock);
	snprintf(out, QID_SIZE, "%013llX%03X",
	    (unsigned long long)usec & 0xFFFFFFFFFFFFFULL, low & 0xfff);
}

long long
qid_usec(const char *s)
{
	long long v = 0;
	size_t i;

	if (!qid_valid(s))
		return -1;
	for (i = 0; i < 13; i++)
		v = v * 16 + (s[i] <= '9' ? s[i] - '0' : s[i] - 'A' + 10);
	return v;
}

int
qid_valid(const char *s)
{
	size_t i;

	for (i = 0; i < QID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		        (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return s[QID_LEN] == '\0';
}
