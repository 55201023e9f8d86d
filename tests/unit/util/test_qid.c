/*
 * test_qid - queue IDs: valid, increasing, and the arrival time they hold
 * (qid_usec), which the delivery log's delays= field uses.
 */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "mta/util/clock.h"
#include "mta/util/qid.h"

int
main(void)
{
	char a[QID_SIZE], b[QID_SIZE];
	long long before = (long long)clock_now_usec(), t;

	qid_new(a);
	qid_new(b);
	CHECK(qid_valid(a) && qid_valid(b));
	CHECK(strcmp(a, b) < 0);
	t = qid_usec(a);
	CHECK(t >= before && t <= (long long)clock_now_usec());
	CHECK(qid_usec("0000000000001000") == 1);
	CHECK(qid_usec("00000000000FF000") == 255);
	CHECK(qid_usec("661A7C155F65F00C") == 0x661A7C155F65FLL);
	CHECK(qid_usec("661a7c155f65f00c") == -1);
	CHECK(qid_usec("661A7C155F65F00") == -1);
	CHECK(qid_usec("661A7C155F65F00CX") == -1);
	return check_done();
}
