/*
 * test_json - the one JSON string writer: escapes, UTF-8 kept, anything
 * else made U+FFFD, so that every --json output parses.
 */
#include <string.h>

#include "check.h"
#include "mta/util/json.h"

static void
expect(const char *in, const char *want)
{
	buf_t *b = buf_new(256);

	json_put_string(b, in);
	CHECK_STR(buf_data(b), want);
	buf_free(b);
}

int
main(void)
{
	expect(NULL, "null");
	expect("", "\"\"");
	expect("a\"b\\c", "\"a\\\"b\\\\c\"");
	expect("tab\there\r\n\x7f", "\"tab\\u0009here\\u000d\\u000a\\u007f\"");
	expect("b\xc3\xbc"
	       "cher",
	    "\"b\xc3\xbc"
	    "cher\"");
	expect("\xf0\x9f\x93\xac", "\"\xf0\x9f\x93\xac\"");
	expect("\xff", "\"\\ufffd\"");
	/* Overlong "/", a surrogate, a cut sequence: not text. */
	expect("\xc0\xaf", "\"\\ufffd\\ufffd\"");
	expect("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");
	expect("x\xe2\x82", "\"x\\ufffd\\ufffd\"");
	return check_done();
}
