/*
 * policy_tool - runs the pure policy parsers on data given on the command
 * line and prints the result as one JSON object, so that the conformance
 * tests (tests/conformance/) can drive them with other implementations'
 * vectors.
 *
 *   policy_tool sts-policy FILE        parse a policy body
 *   policy_tool sts-txt HEX...         choose and parse a TXT RRset
 *   policy_tool tlsrpt-txt HEX...      choose and parse a TLSRPT RRset
 *   policy_tool mx-match HOST PATTERN...
 *   policy_tool content-type VALUE
 *   policy_tool tlsa HEX               decode one TLSA RDATA
 *   policy_tool dane-chain BASE PEM HEX...
 *                                      verify a chain (leaf first, in the
 *                                      PEM file) against TLSA RDATA
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/buf.h"
#include "mta/util/xalloc.h"
#include <openssl/pem.h>

#include "policy/dane/dane.h"
#include "policy/dane/tlsa.h"
#include "policy/sts/sts_parse.h"
#include "policy/tlsrpt/tlsrpt_txt.h"

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static unsigned char *
unhex(const char *hex, size_t *lenp)
{
	size_t n = strlen(hex) / 2, i;
	unsigned char *out = xmalloc(n + 1);

	for (i = 0; i < n; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			fprintf(stderr, "bad hex\n");
			exit(2);
		}
		out[i] = (unsigned char)v;
	}
	*lenp = n;
	return out;
}

static int
cmd_sts_policy(const char *path)
{
	FILE *fp = fopen(path, "rb");
	buf_t *b = buf_new(0);
	struct sts_policy *p;
	const char *why;
	char chunk[4096];
	size_t n, i;

	if (fp == NULL) {
		perror(path);
		return 2;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		buf_append(b, chunk, n);
	fclose(fp);
	why = sts_policy_parse(buf_data(b), buf_len(b), &p);
	if (why) {
		printf("{\"valid\": false, \"error\": ");
		json_string(why);
		printf("}\n");
	} else {
		printf("{\"valid\": true, \"mode\": \"%s\", \"max_age\": %ld, "
		       "\"mx\": [",
		    sts_mode_name(p->mode), p->max_age);
		for (i = 0; i < p->nmx; i++) {
			if (i)
				printf(", ");
			json_string(p->mx[i]);
		}
		printf("]}\n");
	}
	sts_policy_free(p);
	buf_free(b);
	return 0;
}

static int
cmd_sts_txt(int argc, char **argv)
{
	const char **txts = xcalloc((size_t)argc + 1, sizeof(*txts));
	size_t *lens = xcalloc((size_t)argc + 1, sizeof(*lens));
	static const char *names[] = {"found", "none", "multiple", "invalid"};
	char id[STS_ID_MAX + 1] = "";
	const char *why;
	enum sts_txt_result r;
	int i;

	for (i = 0; i < argc; i++)
		txts[i] = (const char *)unhex(argv[i], &lens[i]);
	r = sts_txt_select(txts, lens, (size_t)argc, id, &why);
	printf("{\"result\": \"%s\", \"id\": ", names[r]);
	json_string(r == STS_TXT_FOUND ? id : "");
	printf(", \"error\": ");
	json_string(why ? why : "");
	printf("}\n");
	for (i = 0; i < argc; i++)
		free((void *)txts[i]);
	free(txts);
	free(lens);
	return 0;
}

static int
cmd_tlsrpt_txt(int argc, char **argv)
{
	const char **txts = xcalloc((size_t)argc + 1, sizeof(*txts));
	size_t *lens = xcalloc((size_t)argc + 1, sizeof(*lens));
	static const char *names[] = {"found", "none", "multiple", "invalid"};
	struct tlsrpt_rua rua;
	const char *why;
	enum tlsrpt_txt_result r;
	size_t j;
	int i;

	for (i = 0; i < argc; i++)
		txts[i] = (const char *)unhex(argv[i], &lens[i]);
	r = tlsrpt_txt_select(txts, lens, (size_t)argc, &rua, &why);
	printf("{\"result\": \"%s\", \"rua\": [", names[r]);
	for (j = 0; r == TLSRPT_TXT_FOUND && j < rua.n; j++) {
		printf(j ? ", " : "");
		json_string(rua.uri[j]);
	}
	printf("], \"error\": ");
	json_string(why ? why : "");
	printf("}\n");
	for (i = 0; i < argc; i++)
		free((void *)txts[i]);
	free(txts);
	free(lens);
	return 0;
}

static int
cmd_tlsa(const char *hex)
{
	size_t len;
	unsigned char *rdata = unhex(hex, &len);
	struct tlsa_rec rec;
	const char *why = tlsa_decode(rdata, len, &rec);

	if (why == NULL)
		why = tlsa_usable(&rec);
	printf("{\"usable\": %s, \"why\": ", why ? "false" : "true");
	json_string(why ? why : "");
	printf("}\n");
	free(rdata);
	return 0;
}

static int
cmd_dane_chain(const char *base, const char *pem, int n, char **hex)
{
	struct tlsa_rec *recs = xcalloc((size_t)n + 1, sizeof(*recs));
	unsigned char **rdata = xcalloc((size_t)n + 1, sizeof(*rdata));
	STACK_OF(X509) *chain = sk_X509_new_null();
	buf_t *desc = buf_new(1024);
	FILE *fp = fopen(pem, "r");
	X509 *x;
	int i, usable, verified, nrec = 0;

	if (fp == NULL) {
		perror(pem);
		return 2;
	}
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL)
		sk_X509_push(chain, x);
	fclose(fp);
	for (i = 0; i < n; i++) {
		size_t len;

		rdata[i] = unhex(hex[i], &len);
		if (tlsa_decode(rdata[i], len, &recs[nrec]) == NULL)
			nrec++;
	}
	usable = dane_verify_chain(
	    base, NULL, recs, (size_t)nrec, chain, &verified, desc);
	printf("{\"usable\": %d, \"verified\": %s, \"desc\": ", usable,
	    verified ? "true" : "false");
	json_string(buf_data(desc));
	printf("}\n");
	for (i = 0; i < n; i++)
		free(rdata[i]);
	free(rdata);
	free(recs);
	sk_X509_pop_free(chain, X509_free);
	buf_free(desc);
	return 0;
}

int
main(int argc, char **argv)
{
	int i, match = 0;

	if (argc >= 3 && strcmp(argv[1], "sts-policy") == 0)
		return cmd_sts_policy(argv[2]);
	if (argc >= 2 && strcmp(argv[1], "sts-txt") == 0)
		return cmd_sts_txt(argc - 2, argv + 2);
	if (argc >= 2 && strcmp(argv[1], "tlsrpt-txt") == 0)
		return cmd_tlsrpt_txt(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "mx-match") == 0) {
		for (i = 3; i < argc; i++)
			match |= sts_pattern_match(argv[i], argv[2]);
		printf("{\"match\": %s}\n", match ? "true" : "false");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "content-type") == 0) {
		printf("{\"plaintext\": %s}\n",
		    sts_content_type_ok(argv[2]) ? "true" : "false");
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "tlsa") == 0)
		return cmd_tlsa(argv[2]);
	if (argc >= 4 && strcmp(argv[1], "dane-chain") == 0)
		return cmd_dane_chain(argv[2], argv[3], argc - 4, argv + 4);
	fprintf(stderr, "usage: policy_tool sts-policy FILE | sts-txt HEX... | "
	                "mx-match HOST PATTERN... | content-type VALUE | "
	                "tlsa HEX\n");
	return 64;
}
