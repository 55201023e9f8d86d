/*
 * test_tlsrpt_txt - the _smtp._tls TXT record parser on RFC 8460 3's
 * examples and the edges of its ABNF and of our caps.
 */
#include <string.h>

#include "check.h"
#include "policy/tlsrpt/tlsrpt_txt.h"

static const char *
err(const char *txt, struct tlsrpt_rua *rua)
{
	const char *why = tlsrpt_txt_parse(txt, strlen(txt), rua);

	return why ? why : "";
}

int
main(void)
{
	struct tlsrpt_rua r;
	char big[TLSRPT_TXT_MAX + 64];
	const char *set[3];
	size_t lens[3];
	const char *why;

	CHECK_STR(err("v=TLSRPTv1;rua=mailto:reports@example.com", &r), "");
	CHECK(r.n == 1);
	CHECK_STR(r.uri[0], "mailto:reports@example.com");
	CHECK_STR(err("v=TLSRPTv1 ; rua=mailto:a@x.example , "
	              "https://r.example/v1?a=1; ext=yes;",
	              &r),
	    "");
	CHECK(r.n == 2);
	CHECK_STR(r.uri[1], "https://r.example/v1?a=1");
	CHECK_STR(err("v=TLSRPTv1", &r), "no rua field");
	CHECK_STR(err("v=TLSRPTv10", &r), "trailing characters after a field");
	CHECK_STR(err("v=TLSRPTv1; rua=", &r), "empty URI in rua");
	CHECK_STR(err("v=TLSRPTv1; rua=http://bad/%", &r),
	    "incomplete %-escape in rua URI");
	CHECK_STR(err("v=TLSRPTv1; rua=!!", &r), "bad character in rua URI");
	CHECK_STR(
	    err("v=TLSRPTv1; rua=mailto:x@x.example;;", &r), "bad field name");
	CHECK_STR(err("v=TLSRPTv1; rua=mailto:x@x.example; test==", &r),
	    "empty extension value");
	CHECK_STR(err("v=TLSRPTv1; rua=ftp://x.example/", &r),
	    "no mailto: or https: URI in rua");
	CHECK_STR(err("v=TLSRPTv1; rua=mailto:x@x.example; "
	              "a12345678901234567890123456789012=1",
	              &r),
	    "field name too long");
	CHECK_STR(err("v=TLSRPTv1; rua=mailto:x@x.example; "
	              "a1234567890123456789012345678901=1",
	              &r),
	    "");
	/* Caps: URIs, URI length, record length. */
	strcpy(big, "v=TLSRPTv1; rua=mailto:a@b.example");
	for (int i = 0; i < TLSRPT_RUA_MAX; i++)
		strcat(big, ",mailto:a@b.example");
	CHECK_STR(err(big, &r), "too many rua URIs");
	strcpy(big, "v=TLSRPTv1; rua=mailto:a@b.example");
	memset(big + strlen(big), 'a', TLSRPT_URI_MAX);
	big[34 + TLSRPT_URI_MAX] = '\0';
	CHECK_STR(err(big, &r), "rua URI too long");
	memset(big, ' ', sizeof(big) - 1);
	memcpy(big, "v=TLSRPTv1", 10);
	big[sizeof(big) - 1] = '\0';
	CHECK_STR(err(big, &r), "record too long");
	/* The RRset: exactly one v=TLSRPTv1 record. */
	set[0] = "other";
	set[1] = "v=TLSRPTv1; rua=mailto:a@b.example";
	set[2] = "v=TLSRPTv1; rua=mailto:c@b.example";
	for (int i = 0; i < 3; i++)
		lens[i] = strlen(set[i]);
	CHECK(tlsrpt_txt_select(set, lens, 2, &r, &why) == TLSRPT_TXT_FOUND);
	CHECK(tlsrpt_txt_select(set, lens, 3, &r, &why) == TLSRPT_TXT_MULTIPLE);
	CHECK(tlsrpt_txt_select(set, lens, 1, &r, &why) == TLSRPT_TXT_NONE);
	return check_done();
}
