/*
 * dane - RFC 7672 usability rules around OpenSSL's DANE matching; see
 * dane.h. Steps of a DANE session:
 *   1. the caller looked up TLSA at _25._tcp.<host> and found a secure,
 *      non-empty RRset (2.2);
 *   2. dane_ssl_setup(): SNI = base domain, reference names, usable
 *      records to OpenSSL;
 *   3. the handshake; OpenSSL fails it, or records the match;
 *   4. dane_ssl_verified(): what matched, at which depth, for the log.
 */
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "policy/dane/dane.h"

int
dane_ctx_enable(SSL_CTX *ctx)
{
	/* The digests OpenSSL may use for matching types 1 and 2. */
	if (SSL_CTX_dane_enable(ctx) <= 0)
		return -1;
	return 0;
}

int
dane_ssl_setup(SSL *ssl, const char *base, const char *mx_host,
    const struct tlsa_rec *recs, size_t n, buf_t *why)
{
	size_t i;
	int added = 0;

	if (SSL_dane_enable(ssl, base) <= 0) {
		buf_printf(why, "cannot enable DANE for %s", base);
		return -1;
	}
	/* RFC 7672 1.3 (and 8461 4.2 alike): TLS 1.2 or later. */
	SSL_set_min_proto_version(ssl, TLS1_2_VERSION);
	/* RFC 7672 8.1: SNI carries the TLSA base domain. */
	SSL_set_tlsext_host_name(ssl, base);
	/* RFC 7672 3.2.2: with DANE-TA, the MX host name is a reference
	 * identifier too when it differs from the base domain. */
	if (mx_host && strcasecmp(mx_host, base) != 0)
		SSL_add1_host(ssl, mx_host);
	/* RFC 7671 5.1: DANE-EE binds the key by DNS alone. */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	for (i = 0; i < n; i++) {
		if (tlsa_usable(&recs[i]) != NULL)
			continue;
		if (SSL_dane_tlsa_add(ssl, (uint8_t)recs[i].usage,
		        (uint8_t)recs[i].selector, (uint8_t)recs[i].mtype,
		        recs[i].data, recs[i].len) > 0)
			added++;
	}
	ERR_clear_error();
	return added;
}

static void
describe_match(SSL *ssl, int depth, buf_t *desc)
{
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	int d;

	d = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen);
	if (d >= 0)
		buf_printf(desc, "dane: matched %s %u %u at depth %d",
		    tlsa_usage_name(usage), selector, mtype,
		    depth >= 0 ? depth : d);
	else
		buf_puts(desc, "dane: verified");
}

static void
describe_failure(long result, buf_t *desc)
{
	if (result == X509_V_ERR_DANE_NO_MATCH)
		buf_puts(desc, "dane: no TLSA record matched the certificate");
	else if (result == X509_V_ERR_HOSTNAME_MISMATCH)
		buf_puts(desc, "dane: DANE-TA(2) matched but the certificate "
		               "is not valid for the base domain or MX name");
	else
		buf_printf(desc, "dane: verification failed: %s",
		    X509_verify_cert_error_string(result));
}

int
dane_ssl_verified(SSL *ssl, buf_t *desc)
{
	long result = SSL_get_verify_result(ssl);
	EVP_PKEY *mspki = NULL;
	X509 *mcert = NULL;
	int depth;

	if (result != X509_V_OK) {
		describe_failure(result, desc);
		return 0;
	}
	depth = SSL_get0_dane_authority(ssl, &mcert, &mspki);
	if (depth < 0) {
		buf_puts(desc, "dane: no TLSA record matched the certificate");
		return 0;
	}
	describe_match(ssl, depth, desc);
	return 1;
}

int
dane_verify_chain(const char *base, const char *mx_host,
    const struct tlsa_rec *recs, size_t n, STACK_OF(X509) * chain,
    int *verified, buf_t *desc)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	SSL *ssl = NULL;
	int usable = -1, ok;

	*verified = 0;
	if (ctx == NULL || sctx == NULL || dane_ctx_enable(ctx) < 0)
		goto out;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if ((ssl = SSL_new(ctx)) == NULL)
		goto out;
	usable = dane_ssl_setup(ssl, base, mx_host, recs, n, desc);
	if (usable <= 0)
		goto out;
	/* Verify as a TLS client would: the store of the SSL_CTX (empty:
	 * only DNS-published trust), the chain as the server sent it. */
	if (!X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx),
	        sk_X509_value(chain, 0), chain))
		goto out;
	X509_STORE_CTX_set_default(sctx, "ssl_server");
	X509_VERIFY_PARAM_set1(
	    X509_STORE_CTX_get0_param(sctx), SSL_get0_param(ssl));
	X509_STORE_CTX_set0_dane(sctx, SSL_get0_dane(ssl));
	ok = X509_verify_cert(sctx);
	if (ok > 0) {
		/* The SSL's DANE state was filled in by the verification. */
		*verified = 1;
		describe_match(
		    ssl, SSL_get0_dane_authority(ssl, NULL, NULL), desc);
	} else {
		describe_failure(X509_STORE_CTX_get_error(sctx), desc);
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(sctx);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return usable;
}
