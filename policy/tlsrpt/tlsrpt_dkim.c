/*
 * tlsrpt_dkim - RFC 6376 signing with relaxed/relaxed canonicalization
 * (3.4.2, 3.4.4), rsa-sha256 (3.3.1) and ed25519-sha256 (RFC 8463 3).
 * Outline of tlsrpt_dkim_sign (RFC 6376 5):
 *   1. split the message into header fields and body at the first empty
 *      line; canonicalize the body and hash it (bh=, 3.7);
 *   2. for each name in the list, take the last field of that name
 *      (5.4.2), canonicalized, in list order;
 *   3. add the DKIM-Signature field being built, with an empty b=, without
 *      its final CRLF (3.7), and sign the SHA-256 of all that (ed25519
 *      signs the digest itself, RFC 8463 3);
 *   4. put the base64 signature into b=.
 * One signature per report a day: an RSA-2048 signature takes about a
 * millisecond, so it runs on the loop.
 */
#include "policy/tlsrpt/tlsrpt_dkim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mta/util/safepath.h"
#include "mta/util/xalloc.h"

#define DKIM_KEY_MAX (64 * 1024)

struct tlsrpt_dkim {
	EVP_PKEY *key;
	int ed25519;
	char *domain;
	char *selector;
};

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static char *
read_key(const char *path, size_t *lenp, buf_t *err)
{
	char last[NAME_MAX + 1], *data;
	struct stat st;
	ssize_t n;
	int dfd, fd;

	dfd = safepath_open_parent(path, 1, last, sizeof(last), err);
	if (dfd < 0)
		return NULL;
	fd = openat(dfd, last, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	close(dfd);
	if (fd < 0) {
		buf_printf(err, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > DKIM_KEY_MAX) {
		buf_puts(err, "not a regular file of 1 byte to 64 KiB");
		close(fd);
		return NULL;
	}
	data = xmalloc((size_t)st.st_size + 1);
	n = read(fd, data, (size_t)st.st_size);
	close(fd);
	if (n != (ssize_t)st.st_size) {
		buf_puts(err, "short read");
		free(data);
		return NULL;
	}
	data[n] = '\0';
	*lenp = (size_t)n;
	return data;
}

tlsrpt_dkim_t *
tlsrpt_dkim_load(
    const char *path, const char *domain, const char *selector, buf_t *err)
{
	buf_t *why = buf_new(512);
	tlsrpt_dkim_t *d = NULL;
	EVP_PKEY *key = NULL;
	size_t len = 0;
	char *pem;
	BIO *bio;

	if (domain == NULL || domain[0] == '\0' || selector == NULL ||
	    selector[0] == '\0') {
		buf_printf(err,
		    "tlsrpt_dkim_key_file %s: needs "
		    "tlsrpt_dkim_domain and tlsrpt_dkim_selector",
		    path);
		goto out;
	}
	pem = read_key(path, &len, why);
	if (pem == NULL) {
		buf_printf(
		    err, "tlsrpt_dkim_key_file %s: %s", path, buf_data(why));
		goto out;
	}
	bio = BIO_new_mem_buf(pem, (int)len);
	if (bio != NULL)
		key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	OPENSSL_cleanse(pem, len);
	free(pem);
	if (key == NULL || (EVP_PKEY_base_id(key) != EVP_PKEY_RSA &&
	                       EVP_PKEY_base_id(key) != EVP_PKEY_ED25519)) {
		buf_printf(err,
		    "tlsrpt_dkim_key_file %s: not a PEM RSA or "
		    "Ed25519 private key",
		    path);
		EVP_PKEY_free(key);
		goto out;
	}
	if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA &&
	    EVP_PKEY_bits(key) < 1024) {
		buf_printf(err,
		    "tlsrpt_dkim_key_file %s: RSA key shorter "
		    "than 1024 bits (RFC 8301)",
		    path);
		EVP_PKEY_free(key);
		goto out;
	}
	d = xcalloc(1, sizeof(*d));
	d->key = key;
	d->ed25519 = EVP_PKEY_base_id(key) == EVP_PKEY_ED25519;
	d->domain = xstrdup(domain);
	d->selector = xstrdup(selector);
out:
	buf_free(why);
	return d;
}

void
tlsrpt_dkim_free(tlsrpt_dkim_t *d)
{
	if (d == NULL)
		return;
	EVP_PKEY_free(d->key);
	free(d->domain);
	free(d->selector);
	free(d);
}

const char *
tlsrpt_dkim_algorithm(const tlsrpt_dkim_t *d)
{
	return d->ed25519 ? "ed25519-sha256" : "rsa-sha256";
}

void
tlsrpt_dkim_canon_header(const char *f, size_t len, int crlf, buf_t *out)
{
	size_t i = 0;
	int space = 0, started = 0;

	while (i < len && f[i] != ':' && !is_wsp(f[i])) {
		char c = f[i++];

		buf_putc(out, c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	while (i < len && f[i] != ':')
		i++;
	buf_putc(out, ':');
	if (i < len)
		i++;
	for (; i < len; i++) {
		char c = f[i];

		if (c == '\r' || c == '\n' || is_wsp(c)) {
			space = 1;
			continue;
		}
		if (space && started)
			buf_putc(out, ' ');
		space = 0;
		started = 1;
		buf_putc(out, c);
	}
	if (crlf)
		buf_puts(out, "\r\n");
}

void
tlsrpt_dkim_canon_body(const char *body, size_t len, buf_t *out)
{
	size_t i = 0, empty = 0;
	buf_t *line = buf_new(0);

	while (i < len) {
		size_t e = i;
		int space = 0;

		while (e < len && body[e] != '\n')
			e++;
		buf_reset(line);
		for (size_t k = i; k < e; k++) {
			char c = body[k];

			if (c == '\r' && k + 1 == e)
				break;
			if (is_wsp(c)) {
				space = 1;
				continue;
			}
			if (space)
				buf_putc(line, ' ');
			space = 0;
			buf_putc(line, c);
		}
		/* Trailing WSP is dropped by not flushing space. */
		if (buf_len(line) == 0) {
			empty++;
		} else {
			for (; empty > 0; empty--)
				buf_puts(out, "\r\n");
			buf_append(out, buf_data(line), buf_len(line));
			buf_puts(out, "\r\n");
		}
		i = e < len ? e + 1 : e;
	}
	buf_free(line);
}

/* The field named name (last one of that name), start and length without
 * the final CRLF; 0 when there is none. */
static int
find_field(const char *h, size_t hlen, const char *name, size_t nlen,
    size_t *start, size_t *flen)
{
	size_t i = 0;
	int found = 0;

	while (i < hlen) {
		size_t e = i;

		for (;;) {
			while (e < hlen && h[e] != '\n')
				e++;
			if (e + 1 < hlen && is_wsp(h[e + 1])) {
				e++;
				continue;
			}
			break;
		}
		if (e - i > nlen && strncasecmp(h + i, name, nlen) == 0) {
			size_t k = i + nlen;

			while (k < e && is_wsp(h[k]))
				k++;
			if (k < e && h[k] == ':') {
				*start = i;
				*flen = e - i;
				if (*flen > 0 && h[i + *flen - 1] == '\r')
					(*flen)--;
				found = 1;
			}
		}
		i = e + 1;
	}
	return found;
}

static void
put_base64(buf_t *out, const unsigned char *p, size_t len)
{
	size_t cap = 4 * ((len + 2) / 3) + 1;
	unsigned char *b = xmalloc(cap);
	int n = EVP_EncodeBlock(b, p, (int)len);

	buf_append(out, b, (size_t)n);
	free(b);
}

int
tlsrpt_dkim_sign(tlsrpt_dkim_t *d, const char *msg, size_t len,
    const char *headers, int64_t now, buf_t *out, buf_t *err)
{
	unsigned char bh[32], digest[32], sig[1024];
	buf_t *canon = buf_new(0), *field = buf_new(0), *hlist = buf_new(0);
	size_t hlen = 0, siglen = sizeof(sig);
	const char *body = NULL, *p;
	EVP_MD_CTX *md = NULL;
	int rc = -1;

	if (len >= 2 && msg[0] == '\r' && msg[1] == '\n') {
		body = msg + 2;
	} else {
		const char *sep = memmem(msg, len, "\r\n\r\n", 4);

		if (sep != NULL) {
			hlen = (size_t)(sep - msg) + 2;
			body = sep + 4;
		}
	}
	if (body == NULL) {
		buf_puts(err, "DKIM: message without a header/body separator");
		goto out;
	}
	tlsrpt_dkim_canon_body(body, len - (size_t)(body - msg), canon);
	if (EVP_Digest(buf_data(canon), buf_len(canon), bh, NULL, EVP_sha256(),
	        NULL) != 1) {
		buf_puts(err, "DKIM: SHA-256 failed");
		goto out;
	}
	buf_reset(canon);
	for (p = headers; *p != '\0';) {
		size_t n = strcspn(p, ":"), start, flen;

		if (n > 0 && find_field(msg, hlen, p, n, &start, &flen)) {
			tlsrpt_dkim_canon_header(msg + start, flen, 1, canon);
			if (buf_len(hlist) > 0)
				buf_putc(hlist, ':');
			buf_append(hlist, p, n);
		}
		p += n;
		if (*p == ':')
			p++;
	}
	buf_printf(field,
	    "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;\r\n"
	    "\tt=%lld; h=%s;\r\n\tbh=",
	    tlsrpt_dkim_algorithm(d), d->domain, d->selector, (long long)now,
	    buf_data(hlist));
	put_base64(field, bh, sizeof(bh));
	buf_puts(field, ";\r\n\tb=");
	tlsrpt_dkim_canon_header(buf_data(field), buf_len(field), 0, canon);
	if (EVP_Digest(buf_data(canon), buf_len(canon), digest, NULL,
	        EVP_sha256(), NULL) != 1) {
		buf_puts(err, "DKIM: SHA-256 failed");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (d->ed25519) {
		if (md == NULL ||
		    EVP_DigestSignInit(md, NULL, NULL, NULL, d->key) != 1 ||
		    EVP_DigestSign(md, sig, &siglen, digest, sizeof(digest)) !=
		        1) {
			buf_puts(err, "DKIM: Ed25519 signing failed");
			goto out;
		}
	} else {
		if (md == NULL ||
		    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, d->key) !=
		        1 ||
		    EVP_DigestSignUpdate(md, buf_data(canon), buf_len(canon)) !=
		        1 ||
		    EVP_DigestSignFinal(md, NULL, &siglen) != 1 ||
		    siglen > sizeof(sig) ||
		    EVP_DigestSignFinal(md, sig, &siglen) != 1) {
			buf_puts(err, "DKIM: RSA signing failed");
			goto out;
		}
	}
	buf_append(out, buf_data(field), buf_len(field));
	put_base64(out, sig, siglen);
	buf_puts(out, "\r\n");
	rc = buf_error(out) ? -1 : 0;
	if (rc < 0)
		buf_puts(err, "DKIM: signature does not fit");
out:
	EVP_MD_CTX_free(md);
	buf_free(canon);
	buf_free(field);
	buf_free(hlist);
	return rc;
}
