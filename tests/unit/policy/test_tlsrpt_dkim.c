/*
 * test_tlsrpt_dkim - relaxed canonicalization against RFC 6376 3.4.5's
 * example, and signatures (rsa-sha256, ed25519-sha256) checked by a real
 * verifier: dkimpy (Debian's python3-dkim, python3-nacl for ed25519),
 * its DNS lookup answered with the test key. A changed body must fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "policy/tlsrpt/tlsrpt_dkim.h"

static char dir[] = "/tmp/test_dkim_XXXXXX";

static const char verify_py[] =
    "import base64, sys\n"
    "import dkim\n"
    "msg = open(sys.argv[1], 'rb').read()\n"
    "der = open(sys.argv[3], 'rb').read()\n"
    "if sys.argv[2] == 'ed25519':\n"
    "    rec = b'v=DKIM1; k=ed25519; p=' + base64.b64encode(der[-32:])\n"
    "else:\n"
    "    rec = b'v=DKIM1; k=rsa; p=' + base64.b64encode(der)\n"
    "def dns(name, timeout=5):\n"
    "    return rec if name == b'sel1._domainkey.example.org.' else None\n"
    "sys.exit(0 if dkim.verify(msg, dnsfunc=dns) else 1)\n";

static int
put_file(const char *name, const char *data, size_t len)
{
	char path[256];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
		return -1;
	ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static const char message[] =
    "From: TLS reports <tlsrpt@example.org>\r\n"
    "To: <reports@example.net>\r\n"
    "Subject: Report Domain: example.net Submitter: example.org\r\n"
    "  Report-ID: <2026.12.01.example.net@example.org>\r\n"
    "Date: Wed, 02 Dec 2026 01:00:00 +0000\r\n"
    "Message-ID: <x@example.org>\r\n"
    "TLS-Report-Domain: example.net\r\n"
    "TLS-Report-Submitter: example.org\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "A  body\t with  spaces  \r\n"
    "\r\n"
    "last line\r\n"
    "\r\n"
    "\r\n";

static void
sign_and_verify(const char *kind, const char *genpkey)
{
	char key[256], der[256], cmd[1024], *signed_msg;
	buf_t *out = buf_new(0), *err = buf_new(0);
	tlsrpt_dkim_t *d;
	size_t n;

	snprintf(key, sizeof(key), "%s/%s.pem", dir, kind);
	snprintf(der, sizeof(der), "%s/%s.der", dir, kind);
	snprintf(cmd, sizeof(cmd),
	    "openssl genpkey %s -out %s 2>/dev/null && "
	    "openssl pkey -in %s -pubout -outform DER -out %s",
	    genpkey, key, key, der);
	CHECK(system(cmd) == 0);

	d = tlsrpt_dkim_load(key, "example.org", "sel1", err);
	if (d == NULL)
		fprintf(stderr, "load: %s\n", buf_data(err));
	CHECK(d != NULL);
	if (d == NULL)
		goto out;
	CHECK_STR(tlsrpt_dkim_algorithm(d),
	    strcmp(kind, "ed25519") == 0 ? "ed25519-sha256" : "rsa-sha256");
	CHECK(tlsrpt_dkim_sign(d, message, sizeof(message) - 1,
	          "from:to:subject:date:message-id:tls-report-domain:"
	          "tls-report-submitter:mime-version:content-type:absent",
	          (int64_t)time(NULL), out, err) == 0);
	CHECK(strncmp(buf_data(out), "DKIM-Signature: v=1; a=", 23) == 0);
	CHECK(strstr(buf_data(out), "absent") == NULL);
	n = buf_len(out);
	buf_append(out, message, sizeof(message) - 1);
	CHECK(put_file("signed.eml", buf_data(out), buf_len(out)) == 0);
	snprintf(cmd, sizeof(cmd),
	    "/usr/bin/python3 %s/verify.py %s/signed.eml %s %s", dir, dir, kind,
	    der);
	CHECK(system(cmd) == 0);

	/* Tampering is noticed: the check above can fail. */
	signed_msg = buf_data_mut(out);
	signed_msg[n + strlen(message) - 12] = 'X';
	CHECK(put_file("signed.eml", buf_data(out), buf_len(out)) == 0);
	CHECK(system(cmd) != 0);
out:
	tlsrpt_dkim_free(d);
	buf_free(out);
	buf_free(err);
}

int
main(void)
{
	buf_t *b = buf_new(0), *err = buf_new(0);
	const char field[] = "B : Y\t\r\n\tZ  ";
	const char body[] = " C \r\nD \t E\r\n\r\n\r\n";

	/* RFC 6376 3.4.5 */
	tlsrpt_dkim_canon_header("A: X", 4, 1, b);
	tlsrpt_dkim_canon_header(field, sizeof(field) - 1, 1, b);
	CHECK_STR(buf_data(b), "a:X\r\nb:Y Z\r\n");
	buf_reset(b);
	tlsrpt_dkim_canon_body(body, sizeof(body) - 1, b);
	CHECK_STR(buf_data(b), " C\r\nD E\r\n");
	buf_reset(b);
	tlsrpt_dkim_canon_body("\r\n\r\n", 4, b);
	CHECK(buf_len(b) == 0);
	buf_reset(b);
	tlsrpt_dkim_canon_body("no end", 6, b);
	CHECK_STR(buf_data(b), "no end\r\n");

	CHECK(mkdtemp(dir) != NULL);
	CHECK(put_file("verify.py", verify_py, sizeof(verify_py) - 1) == 0);
	/* Missing file and wrong contents are load errors with a reason. */
	CHECK(tlsrpt_dkim_load(
	          "/nonexistent/key.pem", "example.org", "s", err) == NULL);
	CHECK(strstr(buf_data(err), "tlsrpt_dkim_key_file") != NULL);
	buf_reset(err);
	CHECK(put_file("bad.pem", "hello\n", 6) == 0);
	{
		char p[256];

		snprintf(p, sizeof(p), "%s/bad.pem", dir);
		CHECK(tlsrpt_dkim_load(p, "example.org", "s", err) == NULL);
		CHECK(strstr(buf_data(err), "not a PEM") != NULL);
	}
	sign_and_verify("rsa", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048");
	sign_and_verify("ed25519", "-algorithm ED25519");
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		CHECK(system(cmd) == 0);
	}
	buf_free(b);
	buf_free(err);
	return check_done();
}
