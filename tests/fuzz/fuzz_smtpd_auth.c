/*
 * fuzz_smtpd_auth - the AUTH decoders of the SMTP listener (smtpd_int.h):
 * strict base64 and the RFC 4616 PLAIN message. The input is tried three
 * ways: as base64 text from the client, as a decoded PLAIN message and as
 * bytes to encode. Each result is checked against what the decoders
 * promise, with output buffers of exactly the size allowed so that ASan
 * sees one byte too many. Password hashes (crypt) are never reached.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mta/smtpd/smtpd_int.h"

/* The buffers smtpd.c decodes into (auth_plain). */
#define USER_SIZE 256
#define PASS_SIZE 512

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			abort();                                               \
	} while (0)

static int
b64_char(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Client text: what decodes must re-encode to the same text (one
 * encoding per string), and fit exactly the room it needs. */
static void
check_decode(const uint8_t *data, size_t len)
{
	unsigned char *out = malloc(len + 1), *tight;
	char *enc;
	long n, m;
	size_t pad = 0;

	n = smtpd_b64_decode((const char *)data, len, out, len + 1);
	if (n < 0) {
		free(out);
		return;
	}
	if (len == 1 && data[0] == '=') { /* RFC 4954 4: empty response */
		CHECK(n == 0);
		free(out);
		return;
	}
	CHECK(len % 4 == 0);
	while (pad < len && data[len - 1 - pad] == '=')
		pad++;
	CHECK(pad <= 2);
	CHECK((size_t)n == len / 4 * 3 - pad);

	enc = malloc(len + 1);
	CHECK(smtpd_b64_encode(out, (size_t)n, enc, len + 1) == (long)len);
	CHECK(memcmp(enc, data, len) == 0);
	free(enc);

	/* Exactly n bytes of room is enough, one fewer is an error. */
	tight = malloc((size_t)n + 1);
	m = smtpd_b64_decode((const char *)data, len, tight, (size_t)n);
	CHECK(m == n && memcmp(tight, out, (size_t)n) == 0);
	if (n > 0)
		CHECK(smtpd_b64_decode(
		          (const char *)data, len, tight, (size_t)n - 1) == -1);
	free(tight);
	free(out);
}

/* Bytes from us: the encoding is canonical and decodes back. */
static void
check_encode(const uint8_t *data, size_t len)
{
	size_t elen = (len + 2) / 3 * 4, i;
	char *enc = malloc(elen + 1);
	unsigned char *dec = malloc(len + 1);

	CHECK(smtpd_b64_encode(data, len, enc, elen + 1) == (long)elen);
	CHECK(enc[elen] == '\0');
	for (i = 0; i < elen; i++)
		CHECK(b64_char((unsigned char)enc[i]) ||
		      (enc[i] == '=' && i + 2 >= elen));
	CHECK(smtpd_b64_encode(data, len, enc, elen) == -1);
	CHECK(smtpd_b64_decode(enc, elen, dec, len) == (long)len);
	CHECK(memcmp(dec, data, len) == 0);
	free(enc);
	free(dec);
}

/* One run of smtpd_sasl_plain with buffers of exactly these sizes. */
static int
plain(const uint8_t *msg, size_t len, size_t usize, size_t psize, size_t *ulen,
    size_t *plen, char *ucopy, char *pcopy)
{
	char *user = malloc(usize ? usize : 1),
	     *pass = malloc(psize ? psize : 1);
	int rc = smtpd_sasl_plain(msg, len, user, usize, pass, psize);

	if (rc == 0) {
		*ulen = strlen(user);
		*plen = strlen(pass);
		CHECK(*ulen < usize && *plen < psize);
		memcpy(ucopy, user, *ulen + 1);
		memcpy(pcopy, pass, *plen + 1);
	}
	free(user);
	free(pass);
	return rc;
}

/*
 * A decoded PLAIN message, against an independent reading of RFC 4616:
 * exactly two NULs, a non-empty authcid, an authzid that is empty or the
 * authcid, and fields that fit.
 */
static void
check_plain(const uint8_t *msg, size_t len)
{
	char user[USER_SIZE], pass[PASS_SIZE];
	size_t nuls = 0, p1 = 0, p2 = 0, i, zl, ul = 0, pl = 0, gotu, gotp;
	int ok, rc;

	for (i = 0; i < len; i++)
		if (msg[i] == '\0') {
			if (nuls == 0)
				p1 = i;
			else if (nuls == 1)
				p2 = i;
			nuls++;
		}
	ok = nuls == 2;
	if (ok) {
		zl = p1;
		ul = p2 - p1 - 1;
		pl = len - p2 - 1;
		ok = ul > 0 && ul < USER_SIZE && pl < PASS_SIZE &&
		     (zl == 0 ||
		         (zl == ul && memcmp(msg, msg + p1 + 1, ul) == 0));
	}
	rc = plain(msg, len, USER_SIZE, PASS_SIZE, &gotu, &gotp, user, pass);
	CHECK((rc == 0) == ok);
	CHECK(rc == 0 || rc == -1);
	if (!ok)
		return;
	/* What comes out is the authcid and the password, whole: no NUL
	 * can hide a second name behind the first. */
	CHECK(gotu == ul && memcmp(user, msg + p1 + 1, ul) == 0);
	CHECK(gotp == pl && memcmp(pass, msg + p2 + 1, pl) == 0);
	/* The limits are exact: room for the NUL and not one byte more. */
	CHECK(plain(msg, len, ul + 1, pl + 1, &gotu, &gotp, user, pass) == 0);
	CHECK(gotu == ul && gotp == pl);
	CHECK(plain(msg, len, ul, pl + 1, &gotu, &gotp, user, pass) == -1);
	CHECK(plain(msg, len, ul + 1, pl, &gotu, &gotp, user, pass) == -1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned char *msg;
	long n;

	check_decode(data, len);
	check_encode(data, len);
	check_plain(data, len);
	/* The way smtpd.c runs them: decode, then split. */
	msg = malloc(len + 1);
	n = smtpd_b64_decode((const char *)data, len, msg, len + 1);
	if (n >= 0)
		check_plain(msg, (size_t)n);
	free(msg);
	return 0;
}
