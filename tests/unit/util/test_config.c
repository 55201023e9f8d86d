/*
 * test_config - the config table, file parser and error messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/config.h"

static char *
write_file(const char *text)
{
	static char path[64];
	FILE *fp;
	int fd;

	strcpy(path, "/tmp/strictmta-cfg-XXXXXX");
	fd = mkstemp(path);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	return path;
}

static void
test_defaults(void)
{
	struct config *cfg = config_new();

	CHECK_STR(cfg->queue_directory, "/var/spool/strictmta");
	CHECK_INT(cfg->message_size_limit, 10240000);
	CHECK_INT(cfg->maximal_queue_lifetime, 5 * 86400);
	CHECK_INT(cfg->smtpd_forbid_bare_newline, 1);
	config_free(cfg);
}

static void
test_load_ok(void)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	char *path = write_file("# comment\n"
	                        "myhostname = mx.example.org\n"
	                        "\n"
	                        "smtpd_banner = $myhostname ESMTP\n"
	                        "mynetworks = 127.0.0.0/8,\n"
	                        "    10.0.0.0/8\n"
	                        "smtpd_timeout = 5m\n"
	                        "smtp_tls_security_level = encrypt\n");

	CHECK_INT(config_load(cfg, path, err), 0);
	CHECK_STR(buf_data(err), "");
	CHECK_STR(cfg->smtpd_banner, "mx.example.org ESMTP");
	CHECK_STR(cfg->mynetworks, "127.0.0.0/8, 10.0.0.0/8");
	CHECK_INT(cfg->smtpd_timeout, 300);
	CHECK_STR(cfg->smtp_tls_security_level, "encrypt");
	unlink(path);
	config_free(cfg);
	buf_free(err);
}

static void
expect_error(const char *text, const char *want)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	char *path = write_file(text);
	char expect[256];

	snprintf(expect, sizeof(expect), "%s:%s", path, want);
	CHECK_INT(config_load(cfg, path, err), -1);
	CHECK_STR(buf_data(err), expect);
	unlink(path);
	config_free(cfg);
	buf_free(err);
}

static void
test_errors(void)
{
	expect_error("\nbogus_key = 1\n", "2: bogus_key: unknown parameter");
	expect_error("message_size_limit = lots\n",
	    "1: message_size_limit: 'lots' is not a number");
	expect_error("a\nsmtpd_timeout = 1x\n",
	    "1: expected '=' after the parameter name");
	expect_error("smtpd_recipient_limit = 5\n",
	    "1: smtpd_recipient_limit: 5 is out of range (100 to 100000)");
	expect_error("smtp_tls_security_level = maybe\n",
	    "1: smtp_tls_security_level: 'maybe' is not one of "
	    "none|may|encrypt|dane|dane-only|secure");
	expect_error("  continued\n",
	    "1: continuation line with no parameter before it");
	expect_error("smtpd_sasl_auth_enable = perhaps\n",
	    "1: smtpd_sasl_auth_enable: 'perhaps' is not yes or no");
}

static void
test_list_and_time(void)
{
	const char *cur = " a, b\tc ,";
	char item[8];

	CHECK_INT(config_list_next(&cur, item, sizeof(item)), 1);
	CHECK_STR(item, "a");
	CHECK_INT(config_list_next(&cur, item, sizeof(item)), 1);
	CHECK_STR(item, "b");
	CHECK_INT(config_list_next(&cur, item, sizeof(item)), 1);
	CHECK_STR(item, "c");
	CHECK_INT(config_list_next(&cur, item, sizeof(item)), 0);
	cur = "toolongitem";
	CHECK_INT(config_list_next(&cur, item, sizeof(item)), -1);
	CHECK_INT(config_parse_time("1w"), 604800);
	CHECK_INT(config_parse_time("90"), 90);
	CHECK_INT(config_parse_time("-1"), -1);
	CHECK_INT(config_parse_time("1d2"), -1);
}

int
main(void)
{
	test_defaults();
	test_load_ok();
	test_errors();
	test_list_and_time();
	return check_done();
}
