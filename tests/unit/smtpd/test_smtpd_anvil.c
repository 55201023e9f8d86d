/*
 * test_smtpd_anvil - client keys (IPv4, v4-mapped, IPv6 folded to a
 * prefix) and the bounded failure counters behind the listener's limits.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "mta/smtpd/smtpd_int.h"

static void
key_of(const char *text, unsigned prefix, struct smtpd_client_key *key)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		CHECK(inet_pton(AF_INET6, text, &s6->sin6_addr) == 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		CHECK(inet_pton(AF_INET, text, &s4->sin_addr) == 1);
	}
	smtpd_client_key((struct sockaddr *)&ss, prefix, key);
}

static void
test_keys(void)
{
	struct smtpd_client_key a, b;
	char text[64];

	key_of("192.0.2.1", 64, &a);
	key_of("::ffff:192.0.2.1", 64, &b);
	CHECK(smtpd_client_key_eq(&a, &b));
	smtpd_client_key_format(&b, 64, text, sizeof(text));
	CHECK_STR(text, "192.0.2.1");
	key_of("192.0.2.2", 64, &b);
	CHECK(!smtpd_client_key_eq(&a, &b));

	/* One /64 is one client; the next /64 is another. */
	key_of("2001:db8:1:2::1", 64, &a);
	key_of("2001:db8:1:2:ffff:1:2:3", 64, &b);
	CHECK(smtpd_client_key_eq(&a, &b));
	smtpd_client_key_format(&a, 64, text, sizeof(text));
	CHECK_STR(text, "2001:db8:1:2::/64");
	key_of("2001:db8:1:3::1", 64, &b);
	CHECK(!smtpd_client_key_eq(&a, &b));
	/* A prefix that is not a multiple of 8. */
	key_of("2001:db8:1:2::1", 60, &a);
	key_of("2001:db8:1:f::1", 60, &b);
	CHECK(smtpd_client_key_eq(&a, &b));
	key_of("2001:db8:1:12::1", 60, &b);
	CHECK(!smtpd_client_key_eq(&a, &b));
	/* /128: every address on its own. */
	key_of("2001:db8::1", 128, &a);
	key_of("2001:db8::2", 128, &b);
	CHECK(!smtpd_client_key_eq(&a, &b));
	smtpd_client_key_format(&a, 128, text, sizeof(text));
	CHECK_STR(text, "2001:db8::1");
	/* An IPv6 key never equals an IPv4 one with the same bytes. */
	key_of("0.0.0.0", 64, &a);
	key_of("::", 64, &b);
	CHECK(!smtpd_client_key_eq(&a, &b));
}

static void
test_rate(void)
{
	smtpd_rate_t *r = smtpd_rate_new(16, 60);
	unsigned i, n = 0;
	char key[32];

	CHECK(smtpd_rate_get(r, "alice", 5, 1000) == 0);
	CHECK(smtpd_rate_add(r, "alice", 5, 1000) == 1);
	CHECK(smtpd_rate_add(r, "alice", 5, 1010) == 2);
	CHECK(smtpd_rate_get(r, "alice", 5, 1059) == 2);
	CHECK(smtpd_rate_get(r, "bob", 3, 1059) == 0);
	/* A new window starts from nothing. */
	CHECK(smtpd_rate_get(r, "alice", 5, 1060) == 0);
	CHECK(smtpd_rate_add(r, "alice", 5, 1061) == 1);
	/* Many more keys than slots: memory stays put, counts stay sane,
	 * and the most recent key is still counted. */
	for (i = 0; i < 10000; i++) {
		int len = snprintf(key, sizeof(key), "k%u", i);

		if (smtpd_rate_add(r, key, (size_t)len, 2000 + i) > 1)
			n++;
	}
	CHECK(n < 100);
	CHECK(smtpd_rate_get(r, "k9999", 5, 11999) == 1);
	smtpd_rate_free(r);
	smtpd_rate_free(NULL);
}

int
main(void)
{
	test_keys();
	test_rate();
	return check_done();
}
