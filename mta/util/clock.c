/*
 * clock - see clock.h.
 */
#include <stddef.h>
#include <sys/time.h>

#include "clock.h"

static int64_t fake_now;

int64_t
clock_now(void)
{
	if (fake_now)
		return fake_now;
	return clock_now_usec() / 1000000;
}

int64_t
clock_now_usec(void)
{
	struct timeval tv;

	if (fake_now)
		return fake_now * 1000000;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

void
clock_set_fake(int64_t seconds)
{
	fake_now = seconds;
}
