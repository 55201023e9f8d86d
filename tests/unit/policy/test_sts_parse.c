/*
 * test_sts_parse - the MTA-STS parsers on RFC 8461's own examples and the
 * edges of its ABNF. (Other implementations' vectors run separately in
 * tests/conformance/test_mta_sts_vectors.py.)
 */
#include <string.h>

#include "check.h"
#include "policy/dane/tlsa.h"
#include "policy/sts/sts_parse.h"

static const char *
policy_error(const char *text)
{
	struct sts_policy *p;
	const char *why = sts_policy_parse(text, strlen(text), &p);

	sts_policy_free(p);
	return why ? why : "";
}

static void
test_policy(void)
{
	/* RFC 8461 3.2 example */
	const char *rfc = "version: STSv1\r\nmode: enforce\r\n"
	                  "mx: mail.example.com\r\nmx: *.example.net\r\n"
	                  "mx: backupmx.example.com\r\nmax_age: 604800\r\n";
	struct sts_policy *p;

	CHECK(sts_policy_parse(rfc, strlen(rfc), &p) == NULL);
	CHECK_INT(p->mode, STS_MODE_ENFORCE);
	CHECK_INT(p->max_age, 604800);
	CHECK_INT(p->nmx, 3);
	CHECK_STR(p->mx[1], "*.example.net");
	CHECK(sts_policy_match(p, "mail.example.com"));
	CHECK(sts_policy_match(p, "mx1.example.net"));
	CHECK(!sts_policy_match(p, "a.b.example.net"));
	CHECK(!sts_policy_match(p, "example.net"));
	sts_policy_free(p);

	CHECK_STR(policy_error(""), "empty policy");
	CHECK_STR(policy_error("version: STSv1\nmode: enforce\nmax_age: 1\n"),
	    "no mx field");
	CHECK_STR(policy_error("version: STSv1\nmode: none\nmax_age: 1"), "");
	CHECK_STR(policy_error("version: STSv1\nmode: none\nmax_age: "
	                       "31557601"),
	    "max_age is above 31557600");
	CHECK_STR(policy_error("version: STSv1\nmode: none\nmax_age: "
	                       "31557600"),
	    "");
	CHECK_STR(policy_error("version: STSv1\n\nmode: none\nmax_age: 1"),
	    "empty line");
	CHECK_STR(policy_error("version: STSv1\nmode none\nmax_age: 1"),
	    "line without ':'");
	CHECK_STR(policy_error("version: STSv1\nmode: none\nmax_age: 1\n"
	                       "mx: -bad.example"),
	    "mx is not a host name or *.domain pattern");
	/* First occurrence wins (3.2). */
	const char *dup = "version: STSv1\nmode: testing\nmode: enforce\n"
	                  "mx: a.example\nmax_age: 5\n";
	p = NULL;
	CHECK(sts_policy_parse(dup, strlen(dup), &p) == NULL);
	CHECK(p != NULL && p->mode == STS_MODE_TESTING);
	sts_policy_free(p);
}

static void
test_txt(void)
{
	char id[STS_ID_MAX + 1];
	const char *rrset[] = {"v=STSv1; id=20160831085700Z;", "other"};
	size_t lens[] = {strlen(rrset[0]), strlen(rrset[1])};
	const char *why;

	CHECK(sts_txt_parse(rrset[0], lens[0], id) == NULL);
	CHECK_STR(id, "20160831085700Z");
	CHECK_INT(sts_txt_select(rrset, lens, 2, id, &why), STS_TXT_FOUND);
	rrset[1] = "v=STSv1; id=2";
	lens[1] = strlen(rrset[1]);
	CHECK_INT(sts_txt_select(rrset, lens, 2, id, &why), STS_TXT_MULTIPLE);
	CHECK_INT(sts_txt_select(rrset, lens, 0, id, &why), STS_TXT_NONE);
	CHECK(sts_txt_parse("v=STSv1; id=a-b", 15, id) != NULL);
	CHECK(sts_txt_parse("v=STSv1;", 8, id) != NULL);
}

static void
test_tlsa(void)
{
	unsigned char r311[35] = {3, 1, 1};
	unsigned char r011[35] = {0, 1, 1};
	unsigned char r312[35] = {3, 1, 2};
	struct tlsa_rec rec;

	CHECK(tlsa_decode(r311, sizeof(r311), &rec) == NULL);
	CHECK(tlsa_usable(&rec) == NULL);
	CHECK(tlsa_decode(r011, sizeof(r011), &rec) == NULL);
	CHECK(tlsa_usable(&rec) != NULL);
	CHECK(tlsa_decode(r312, sizeof(r312), &rec) == NULL);
	CHECK_STR(tlsa_usable(&rec), "SHA2-512 digest is not 64 bytes");
	CHECK(tlsa_decode(r311, 3, &rec) != NULL);
}

int
main(void)
{
	test_policy();
	test_txt();
	test_tlsa();
	return check_done();
}
