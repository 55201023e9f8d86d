/*
 * test_tlsrpt_gzip - the gzip writer's output is read back by real
 * decoders: Python's gzip module and gzip -t, for stored and fixed blocks,
 * empty, tiny, repetitive, random and > 64 KiB inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "policy/tlsrpt/tlsrpt_gzip.h"

static int
write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(p, 1, len, f) == len;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* Python decompresses gz and compares with raw; gzip -t checks the CRC. */
static int
decodes_to(const buf_t *gz, const void *raw, size_t len)
{
	char gzp[64], rawp[64], cmd[512];
	int rc;

	snprintf(gzp, sizeof(gzp), "test_gzip_%ld.gz", (long)getpid());
	snprintf(rawp, sizeof(rawp), "test_gzip_%ld.raw", (long)getpid());
	if (write_file(gzp, buf_data(gz), buf_len(gz)) != 0 ||
	    write_file(rawp, raw, len) != 0)
		return 0;
	snprintf(cmd, sizeof(cmd),
	    "python3 -c 'import gzip,sys; "
	    "sys.exit(0 if gzip.open(sys.argv[1]).read() == "
	    "open(sys.argv[2],\"rb\").read() else 1)' %s %s && gzip -t %s",
	    gzp, rawp, gzp);
	rc = system(cmd);
	unlink(gzp);
	unlink(rawp);
	return rc == 0;
}

static void
roundtrip(const char *what, const void *p, size_t len)
{
	buf_t *a = buf_new(0), *b = buf_new(0);

	CHECK(tlsrpt_gzip(p, len, 1700000000u, a) == 0);
	CHECK(tlsrpt_gzip_stored(p, len, 0, b) == 0);
	if (!decodes_to(a, p, len))
		fprintf(stderr, "fixed: %s does not decode\n", what);
	CHECK(decodes_to(a, p, len));
	CHECK(decodes_to(b, p, len));
	/* Never larger than stored blocks. */
	CHECK(buf_len(a) <= buf_len(b));
	buf_free(a);
	buf_free(b);
}

int
main(void)
{
	static unsigned char big[200000];
	const char *json =
	    "{\"organization-name\":\"strictmta\","
	    "\"policies\":[{\"policy\":{\"policy-type\":\"sts\"},"
	    "\"summary\":{\"total-successful-session-count\":5,"
	    "\"total-failure-session-count\":0}},"
	    "{\"policy\":{\"policy-type\":\"sts\"},"
	    "\"summary\":{\"total-successful-session-count\":5,"
	    "\"total-failure-session-count\":0}}]}";
	uint32_t x = 12345;
	buf_t *small;

	CHECK(tlsrpt_crc32("123456789", 9) == 0xcbf43926u);
	CHECK(tlsrpt_crc32("", 0) == 0);

	roundtrip("empty", "", 0);
	roundtrip("one byte", "a", 1);
	roundtrip(
	    "aaa...", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 46);
	roundtrip("json", json, strlen(json));

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)("tlsrpt-report "[i % 14] + (i / 5000));
	roundtrip("large text", big, sizeof(big));
	for (size_t i = 0; i < sizeof(big); i++) {
		x = x * 1103515245u + 12345u;
		big[i] = (unsigned char)(x >> 16);
	}
	roundtrip("random", big, sizeof(big));
	memset(big, 0, sizeof(big));
	roundtrip("zeros", big, sizeof(big));

	/* Repetitive JSON compresses well. */
	{
		buf_t *in = buf_new(0), *out = buf_new(0);

		for (int i = 0; i < 200; i++)
			buf_puts(in, json);
		CHECK(tlsrpt_gzip(buf_data(in), buf_len(in), 0, out) == 0);
		CHECK(buf_len(out) * 10 < buf_len(in));
		CHECK(decodes_to(out, buf_data(in), buf_len(in)));
		buf_free(in);
		buf_free(out);
	}

	/* A cap too small is an error, not a truncated file. */
	small = buf_new(16);
	CHECK(tlsrpt_gzip(json, strlen(json), 0, small) == -1);
	buf_free(small);
	return check_done();
}
