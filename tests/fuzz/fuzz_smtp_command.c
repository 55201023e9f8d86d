/*
 * fuzz_smtp_command - the SMTP command parsers on arbitrary bytes: line
 * cutting, then the verb, and MAIL/RCPT/HELO arguments and xtext on
 * whatever the line holds. Checks that success leaves NUL-terminated,
 * in-bounds outputs and that every error is a full reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/proto/smtp_cmd.h"
#include "mta/proto/smtp_xtext.h"

static void
check_reply(const char *err)
{
	if (err != NULL && smtp_reply_code(err) == 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t pos = 0, linelen, used;
	unsigned guard = 0;

	while (pos < size && guard++ < 1000) {
		enum smtp_line_status st = smtp_line_find(
		    p + pos, size - pos, SMTP_LINE_MAX, &linelen, &used);
		struct smtp_cmd cmd;
		struct smtp_mail_args m;
		struct smtp_rcpt_args r;
		const char *line = p + pos, *err;
		char xt[64];

		if (st == SMTP_LINE_PARTIAL) {
			linelen = size - pos;
			used = linelen;
		} else if (st == SMTP_LINE_TOOLONG) {
			if (used == 0)
				break;
			pos += used;
			continue;
		}
		err = smtp_cmd_parse(line, linelen, &cmd);
		check_reply(err);
		if (err == NULL && cmd.arglen > linelen)
			abort();
		/* The argument parsers take any bytes, not only those that
		 * passed smtp_cmd_parse. */
		err = smtp_cmd_parse_mail(line, linelen, &m);
		check_reply(err);
		if (err == NULL && strlen(m.path) > SMTP_PATH_MAX)
			abort();
		err = smtp_cmd_parse_rcpt(line, linelen, linelen & 1, &r);
		check_reply(err);
		if (err == NULL && (strlen(r.path) > SMTP_PATH_MAX ||
		                       strlen(r.orcpt) > SMTP_ORCPT_MAX))
			abort();
		check_reply(smtp_cmd_check_helo(line, linelen));
		check_reply(
		    smtp_xtext_decode(line, linelen, xt, sizeof(xt), NULL));
		(void)smtp_utf8_valid(line, linelen);
		pos += used;
	}
	return 0;
}
