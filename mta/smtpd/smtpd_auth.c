/*
 * smtpd_auth - SASL for the SMTP listener: the password file, base64 and
 * the PLAIN message (RFC 4954, RFC 4616); see smtpd_int.h.
 *
 * Hashes are checked with crypt_r() from libcrypt, so any scheme it knows
 * (yescrypt "$y$", SHA-512 "$6$", bcrypt "$2b$") works; plaintext and the
 * old DES scheme are refused at load time.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/xalloc.h"
#include "smtpd_int.h"

#define PASSWD_LINE_MAX 1024
#define PASSWD_MAX_USERS 100000

struct smtpd_passwd {
	char **users;
	char **hashes;
	size_t n;
};

smtpd_passwd_t *
smtpd_passwd_load(const char *path, buf_t *err)
{
	FILE *fp = fopen(path, "r");
	smtpd_passwd_t *pw;
	char line[PASSWD_LINE_MAX + 2];
	unsigned lineno = 0;

	if (fp == NULL) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	pw = xcalloc(1, sizeof(*pw));
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t len = strlen(line);
		char *colon;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(fp)) {
			buf_printf(err, "%s:%u: line too long", path, lineno);
			goto fail;
		}
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line) {
			buf_printf(
			    err, "%s:%u: expected user:hash", path, lineno);
			goto fail;
		}
		*colon = '\0';
		if (colon[1] != '$' || strchr(colon + 1, ':') != NULL) {
			buf_printf(err,
			    "%s:%u: not a crypt(3) hash (use mkpasswd -m "
			    "yescrypt or sha-512)",
			    path, lineno);
			goto fail;
		}
		if (pw->n >= PASSWD_MAX_USERS) {
			buf_printf(err, "%s:%u: too many users", path, lineno);
			goto fail;
		}
		pw->users = xreallocarray(pw->users, pw->n + 1, sizeof(char *));
		pw->hashes =
		    xreallocarray(pw->hashes, pw->n + 1, sizeof(char *));
		pw->users[pw->n] = xstrdup(line);
		pw->hashes[pw->n] = xstrdup(colon + 1);
		pw->n++;
	}
	if (ferror(fp)) {
		buf_printf(err, "%s: read error", path);
		goto fail;
	}
	fclose(fp);
	return pw;
fail:
	fclose(fp);
	smtpd_passwd_free(pw);
	return NULL;
}

void
smtpd_passwd_free(smtpd_passwd_t *pw)
{
	size_t i;

	if (pw == NULL)
		return;
	for (i = 0; i < pw->n; i++) {
		free(pw->users[i]);
		free(pw->hashes[i]);
	}
	free(pw->users);
	free(pw->hashes);
	free(pw);
}

size_t
smtpd_passwd_count(const smtpd_passwd_t *pw)
{
	return pw ? pw->n : 0;
}

int
smtpd_passwd_check(const smtpd_passwd_t *pw, const char *user, const char *pass)
{
	struct crypt_data *cd;
	const char *hash = NULL, *out;
	size_t i, hl;
	int found = 0;
	unsigned char diff = 0;

	if (pw == NULL || pw->n == 0)
		return 0;
	for (i = 0; i < pw->n; i++)
		if (strcmp(pw->users[i], user) == 0) {
			hash = pw->hashes[i];
			found = 1;
			break;
		}
	/* Hash even for an unknown user, so that timing does not tell
	 * which user names exist. */
	if (hash == NULL)
		hash = pw->hashes[0];
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_r(pass, hash, cd);
	hl = strlen(hash);
	if (out == NULL || out[0] == '*' || strlen(out) != hl) {
		free(cd);
		return 0;
	}
	for (i = 0; i < hl; i++)
		diff |= (unsigned char)(out[i] ^ hash[i]);
	free(cd);
	return found && diff == 0;
}

static int
b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
smtpd_b64_decode(const char *in, size_t len, unsigned char *out, size_t outsize)
{
	size_t i, o = 0;

	if (len == 1 && in[0] == '=')
		return 0;
	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		int v[4], k, pad = 0;

		for (k = 0; k < 4; k++) {
			if (in[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after padding */
				return -1;
			if ((v[k] = b64_value((unsigned char)in[i + k])) < 0)
				return -1;
		}
		/* RFC 4648 3.5: the bits that padding leaves over must be
		 * zero, so that each string has exactly one encoding and no
		 * two client lines decode alike. */
		if ((pad == 2 && (v[1] & 15) != 0) ||
		    (pad == 1 && (v[2] & 3) != 0))
			return -1;
		if (o + 3 - (size_t)pad > outsize)
			return -1;
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			out[o++] =
			    (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
		if (pad < 1)
			out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
	}
	return (long)o;
}

long
smtpd_b64_encode(const unsigned char *in, size_t len, char *out, size_t outsize)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	if ((len + 2) / 3 * 4 + 1 > outsize)
		return -1;
	for (i = 0; i < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? tab[v & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

int
smtpd_sasl_plain(const unsigned char *msg, size_t len, char *user,
    size_t usersize, char *pass, size_t passsize)
{
	const unsigned char *n1, *n2;
	size_t zl, ul, pl;

	n1 = memchr(msg, '\0', len);
	if (n1 == NULL)
		return -1;
	zl = (size_t)(n1 - msg);
	n2 = memchr(n1 + 1, '\0', len - zl - 1);
	if (n2 == NULL)
		return -1;
	ul = (size_t)(n2 - n1 - 1);
	pl = len - zl - ul - 2;
	if (ul == 0 || ul >= usersize || pl >= passsize ||
	    memchr(n2 + 1, '\0', pl) != NULL)
		return -1;
	/* We do not let one user act for another. */
	if (zl != 0 && (zl != ul || memcmp(msg, n1 + 1, ul) != 0))
		return -1;
	memcpy(user, n1 + 1, ul);
	user[ul] = '\0';
	memcpy(pass, n2 + 1, pl);
	pass[pl] = '\0';
	return 0;
}
