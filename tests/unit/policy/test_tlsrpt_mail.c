/*
 * test_tlsrpt_mail - the mailto: report as a real mail parser sees it:
 * Python's email package reads the multipart/report message, its
 * RFC 8460 5.3 headers, the summary and the gzip part (decoded back to the
 * JSON), and dkimpy verifies its rsa-sha256 signature. Also the 5.3 file
 * name and header injection refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "policy/tlsrpt/tlsrpt_gzip.h"
#include "policy/tlsrpt/tlsrpt_mail.h"

static char dir[] = "/tmp/test_tlsrpt_mail_XXXXXX";

static const char check_py[] =
    "import base64, email, gzip, json, sys\n"
    "import dkim\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "der = open(sys.argv[2], 'rb').read()\n"
    "m = email.message_from_bytes(raw)\n"
    "assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
    "assert m.get_param('report-type') == 'tlsrpt'\n"
    "subj = ' '.join(m['Subject'].split())\n"
    "assert subj == 'Report Domain: example.net Submitter: mx.example.org "
    "Report-ID: <2026-12-01T00:00:00Z_example.net@mx.example.org>', subj\n"
    "assert m['TLS-Report-Domain'] == 'example.net'\n"
    "assert m['TLS-Report-Submitter'] == 'mx.example.org'\n"
    "assert m['TLS-Required'] == 'No'\n"
    "parts = m.get_payload()\n"
    "assert parts[0].get_content_type() == 'text/plain'\n"
    "assert 'sessions' in parts[0].get_payload()\n"
    "assert parts[1].get_content_type() == 'application/tlsrpt+gzip'\n"
    "assert parts[1].get_filename() == "
    "'mx.example.org!example.net!1764547200!1764633599.json.gz'\n"
    "doc = json.loads(gzip.decompress(parts[1].get_payload(decode=True)))\n"
    "assert doc['policies'][0]['policy']['policy-domain'] == 'example.net'\n"
    "rec = b'v=DKIM1; k=rsa; p=' + base64.b64encode(der)\n"
    "def dns(name, timeout=5):\n"
    "    return rec if name == b'rpt._domainkey.example.org.' else None\n"
    "assert dkim.verify(raw, dnsfunc=dns), 'DKIM'\n";

static const char report[] =
    "{\"organization-name\":\"Example\",\"date-range\":{\"start-datetime\":"
    "\"2026-12-01T00:00:00Z\",\"end-datetime\":\"2026-12-01T23:59:59Z\"},"
    "\"contact-info\":\"tlsrpt@example.org\",\"report-id\":"
    "\"2026-12-01T00:00:00Z_example.net@mx.example.org\",\"policies\":[{"
    "\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-domain\":"
    "\"example.net\"},\"summary\":{\"total-successful-session-count\":3,"
    "\"total-failure-session-count\":0}}]}";

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

int
main(void)
{
	buf_t *b = buf_new(0), *gz = buf_new(0), *err = buf_new(0);
	struct tlsrpt_mail m = {0};
	tlsrpt_dkim_t *dkim;
	char cmd[1024], key[256];

	CHECK(tlsrpt_mail_filename("mx.example.org", "example.net", 1764547200,
	          1764633599, "a!b/c", b) == 0);
	CHECK_STR(buf_data(b),
	    "mx.example.org!example.net!1764547200!1764633599!a_b_c.json.gz");
	buf_reset(b);

	CHECK(mkdtemp(dir) != NULL);
	snprintf(key, sizeof(key), "%s/k.pem", dir);
	snprintf(cmd, sizeof(cmd),
	    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
	    "-out %s 2>/dev/null && openssl pkey -in %s -pubout -outform DER "
	    "-out %s/k.der",
	    key, key, dir);
	CHECK(system(cmd) == 0);
	dkim = tlsrpt_dkim_load(key, "example.org", "rpt", err);
	CHECK(dkim != NULL);

	CHECK(tlsrpt_gzip(report, sizeof(report) - 1, 0, gz) == 0);
	m.submitter = "mx.example.org";
	m.from = "tlsrpt@example.org";
	m.to = "reports@example.net";
	m.policy_domain = "example.net";
	m.report_id = "2026-12-01T00:00:00Z_example.net@mx.example.org";
	m.begin = 1764547200;
	m.end = 1764633599;
	m.summary = "example.net on 2026-12-01: 3 sessions, 0 failures\n";
	m.gz = buf_data(gz);
	m.gzlen = buf_len(gz);
	m.now = 1764550000;
	CHECK(tlsrpt_mail_build(&m, dkim, b, err) == 0);
	CHECK(strncmp(buf_data(b), "DKIM-Signature:", 15) == 0);
	CHECK(put_file("r.eml", buf_data(b), buf_len(b)) == 0);
	CHECK(put_file("check.py", check_py, sizeof(check_py) - 1) == 0);
	snprintf(cmd, sizeof(cmd),
	    "/usr/bin/python3 %s/check.py %s/r.eml %s/k.der", dir, dir, dir);
	CHECK(system(cmd) == 0);

	/* A value that would start a new header is refused. */
	buf_reset(b);
	m.to = "a@example.net>\r\nBcc: <x@example.com";
	CHECK(tlsrpt_mail_build(&m, dkim, b, err) == -1);
	CHECK(buf_len(b) == 0);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	tlsrpt_dkim_free(dkim);
	buf_free(b);
	buf_free(gz);
	buf_free(err);
	return check_done();
}
