/*
 * test_smtpd_util - the listener's helpers: mynetworks CIDR lists,
 * host:port splitting, base64, the SASL PLAIN message and the password
 * file (loading errors and crypt(3) checks).
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "mta/smtpd/smtpd_int.h"

static struct sockaddr_storage ss;

static const struct sockaddr *
addr(const char *text)
{
	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, text, &s6->sin6_addr);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		inet_pton(AF_INET, text, &s4->sin_addr);
	}
	return (const struct sockaddr *)&ss;
}

static void
test_netlist(void)
{
	struct smtpd_netlist nl;
	buf_t *err = buf_new(256);

	CHECK_INT(smtpd_netlist_parse("127.0.0.0/8 [::1]/128, 10.1.2.3 "
	                              "192.168.16.0/20 2001:db8::/32",
	              &nl, err),
	    0);
	CHECK_INT(nl.n, 5);
	CHECK(smtpd_netlist_match(&nl, addr("127.20.0.9")));
	CHECK(smtpd_netlist_match(&nl, addr("::1")));
	CHECK(!smtpd_netlist_match(&nl, addr("::2")));
	CHECK(smtpd_netlist_match(&nl, addr("10.1.2.3")));
	CHECK(!smtpd_netlist_match(&nl, addr("10.1.2.4")));
	CHECK(smtpd_netlist_match(&nl, addr("192.168.31.255")));
	CHECK(!smtpd_netlist_match(&nl, addr("192.168.32.0")));
	CHECK(smtpd_netlist_match(&nl, addr("2001:db8:ffff::1")));
	CHECK(!smtpd_netlist_match(&nl, addr("2001:db9::1")));
	/* v4-mapped IPv6 clients match as IPv4. */
	CHECK(smtpd_netlist_match(&nl, addr("::ffff:127.0.0.1")));
	CHECK(!smtpd_netlist_match(&nl, addr("::ffff:8.8.8.8")));
	smtpd_netlist_free(&nl);

	CHECK_INT(smtpd_netlist_parse("127.20.0.1/32", &nl, err), 0);
	CHECK(smtpd_netlist_match(&nl, addr("127.20.0.1")));
	CHECK(!smtpd_netlist_match(&nl, addr("127.20.0.9")));
	smtpd_netlist_free(&nl);

	CHECK_INT(smtpd_netlist_parse("", &nl, err), 0);
	CHECK(!smtpd_netlist_match(&nl, addr("127.0.0.1")));
	smtpd_netlist_free(&nl);
	/* 0/0 is everything: allowed, if unwise. */
	CHECK_INT(smtpd_netlist_parse("0.0.0.0/0", &nl, err), 0);
	CHECK(smtpd_netlist_match(&nl, addr("8.8.8.8")));
	smtpd_netlist_free(&nl);

	CHECK_INT(smtpd_netlist_parse("127.0.0.0/33", &nl, err), -1);
	CHECK_STR(buf_data(err), "mynetworks: bad network: 127.0.0.0/33");
	buf_reset(err);
	CHECK_INT(smtpd_netlist_parse("example.org", &nl, err), -1);
	CHECK_INT(smtpd_netlist_parse("10.0.0.0/", &nl, err), -1);
	CHECK_INT(smtpd_netlist_parse("[::1]/129", &nl, err), -1);
	CHECK_INT(smtpd_netlist_parse("10.0.0.0/8x", &nl, err), -1);
	buf_free(err);
}

static void
test_addrport(void)
{
	char h[64], p[8];

	CHECK_INT(
	    smtpd_split_addrport("127.0.0.1:25", h, sizeof(h), p, sizeof(p)),
	    0);
	CHECK_STR(h, "127.0.0.1");
	CHECK_STR(p, "25");
	CHECK_INT(
	    smtpd_split_addrport("[::1]:587", h, sizeof(h), p, sizeof(p)), 0);
	CHECK_STR(h, "::1");
	CHECK_STR(p, "587");
	CHECK_INT(
	    smtpd_split_addrport("localhost:2525", h, sizeof(h), p, sizeof(p)),
	    0);
	CHECK_INT(
	    smtpd_split_addrport("::1:25", h, sizeof(h), p, sizeof(p)), -1);
	CHECK_INT(
	    smtpd_split_addrport("127.0.0.1", h, sizeof(h), p, sizeof(p)), -1);
	CHECK_INT(
	    smtpd_split_addrport("127.0.0.1:", h, sizeof(h), p, sizeof(p)), -1);
	CHECK_INT(
	    smtpd_split_addrport("127.0.0.1:2x", h, sizeof(h), p, sizeof(p)),
	    -1);
	CHECK_INT(
	    smtpd_split_addrport("[::1]25", h, sizeof(h), p, sizeof(p)), -1);
	CHECK_INT(smtpd_split_addrport(":25", h, sizeof(h), p, sizeof(p)), -1);
}

static void
test_base64(void)
{
	unsigned char out[64];
	char enc[64];

	CHECK_INT(
	    smtpd_b64_decode("AHVzZXIAc2VjcmV0", 16, out, sizeof(out)), 12);
	CHECK(memcmp(out, "\0user\0secret", 12) == 0);
	CHECK_INT(smtpd_b64_decode("dXNlcg==", 8, out, sizeof(out)), 4);
	CHECK(memcmp(out, "user", 4) == 0);
	CHECK_INT(smtpd_b64_decode("dXNlcjE=", 8, out, sizeof(out)), 5);
	CHECK_INT(smtpd_b64_decode("=", 1, out, sizeof(out)), 0);
	CHECK_INT(smtpd_b64_decode("", 0, out, sizeof(out)), 0);
	CHECK_INT(smtpd_b64_decode("dXNlcg", 6, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dX=lcg==", 8, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dXNl cg=", 8, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dXNlcg==dXNl", 12, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("AHVzZXIAc2VjcmV0", 16, out, 11), -1);
	/* Pad bits set (found by fuzz_smtpd_auth): "dXNlcg==" with the
	 * last symbol's low bits nonzero is another spelling of "user". */
	CHECK_INT(smtpd_b64_decode("dXNlch==", 8, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dNlcgN==", 8, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dXNlcjF=", 8, out, sizeof(out)), -1);
	CHECK_INT(smtpd_b64_decode("dXNlcjE=", 8, out, sizeof(out)), 5);
	CHECK(memcmp(out, "user1", 5) == 0);
	CHECK_INT(smtpd_b64_encode(
	              (const unsigned char *)"Username:", 9, enc, sizeof(enc)),
	    12);
	CHECK_STR(enc, "VXNlcm5hbWU6");
	CHECK_INT(
	    smtpd_b64_encode((const unsigned char *)"ab", 2, enc, sizeof(enc)),
	    4);
	CHECK_STR(enc, "YWI=");
	CHECK_INT(
	    smtpd_b64_encode((const unsigned char *)"abcdef", 6, enc, 8), -1);
}

static void
test_plain(void)
{
	char user[16], pass[16];

	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"\0user\0secret", 12,
	              user, sizeof(user), pass, sizeof(pass)),
	    0);
	CHECK_STR(user, "user");
	CHECK_STR(pass, "secret");
	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"user\0user\0pw", 12,
	              user, sizeof(user), pass, sizeof(pass)),
	    0);
	/* Acting as someone else is refused. */
	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"boss\0user\0pw", 12,
	              user, sizeof(user), pass, sizeof(pass)),
	    -1);
	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"\0user", 5, user,
	              sizeof(user), pass, sizeof(pass)),
	    -1);
	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"\0\0pw", 4, user,
	              sizeof(user), pass, sizeof(pass)),
	    -1);
	CHECK_INT(smtpd_sasl_plain((const unsigned char *)"\0u\0p\0w", 6, user,
	              sizeof(user), pass, sizeof(pass)),
	    -1);
	CHECK_INT(smtpd_sasl_plain(
	              (const unsigned char *)"\0averyveryverylonguser\0p", 24,
	              user, sizeof(user), pass, sizeof(pass)),
	    -1);
}

static char *
write_file(const char *text)
{
	static char path[64];
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "/tmp/strictmta-pw-XXXXXX");
	fd = mkstemp(path);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	return path;
}

static void
test_passwd(void)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	buf_t *err = buf_new(512), *text = buf_new(4096);
	smtpd_passwd_t *pw;
	char *path;

	/* A yescrypt hash if libcrypt makes one, else SHA-512 only. */
	const char *setting = crypt_gensalt("$y$", 0, NULL, 0);
	char *yes = NULL;

	if (setting && (yes = crypt_r("pw2", setting, cd)) != NULL)
		yes = strdup(yes); /* cd is reused below */
	buf_printf(text, "# users\n\nalice:%s\n",
	    crypt_r("pw1", "$6$saltsaltsalt$", cd));
	if (yes && yes[0] == '$')
		buf_printf(text, "bob:%s\r\n", yes);
	path = write_file(buf_data(text));
	pw = smtpd_passwd_load(path, err);
	CHECK(pw != NULL);
	CHECK_INT(smtpd_passwd_count(pw), yes && yes[0] == '$' ? 2 : 1);
	CHECK(smtpd_passwd_check(pw, "alice", "pw1"));
	CHECK(!smtpd_passwd_check(pw, "alice", "pw2"));
	CHECK(!smtpd_passwd_check(pw, "alice", ""));
	CHECK(!smtpd_passwd_check(pw, "carol", "pw1"));
	if (yes && yes[0] == '$') {
		CHECK(smtpd_passwd_check(pw, "bob", "pw2"));
		CHECK(!smtpd_passwd_check(pw, "bob", "pw1"));
	}
	smtpd_passwd_free(pw);
	unlink(path);

	path = write_file("alice:plaintext\n");
	CHECK(smtpd_passwd_load(path, err) == NULL);
	CHECK(strstr(buf_data(err), ":1: not a crypt(3) hash") != NULL);
	unlink(path);
	buf_reset(err);
	path = write_file("# ok\nnocolon\n");
	CHECK(smtpd_passwd_load(path, err) == NULL);
	CHECK(strstr(buf_data(err), ":2: expected user:hash") != NULL);
	unlink(path);
	buf_reset(err);
	CHECK(smtpd_passwd_load("/nonexistent/strictmta-pw", err) == NULL);
	CHECK_STR(buf_data(err),
	    "/nonexistent/strictmta-pw: No such file or directory");
	CHECK(!smtpd_passwd_check(NULL, "a", "b"));
	smtpd_passwd_free(NULL);
	free(cd);
	free(yes);
	buf_free(err);
	buf_free(text);
}

int
main(void)
{
	test_netlist();
	test_addrport();
	test_base64();
	test_plain();
	test_passwd();
	return check_done();
}
