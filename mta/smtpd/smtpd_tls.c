/*
 * smtpd_tls - the listener's TLS: the server context (RFC 8314 4.1: TLS
 * 1.2 or later), STARTTLS (RFC 3207) and the TLS parts of log lines; see
 * smtpd_sess.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mta/util/log.h"
#include "smtpd_sess.h"

SSL *
smtpd_tls_ssl(const struct session *s)
{
	return s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
}

/* "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))" */
void
smtpd_tls_describe(const struct session *s, buf_t *b)
{
	SSL *ssl = smtpd_tls_ssl(s);
	const SSL_CIPHER *c;
	int bits, alg = 0;

	if (ssl == NULL || (c = SSL_get_current_cipher(ssl)) == NULL)
		return;
	bits = SSL_CIPHER_get_bits(c, &alg);
	buf_printf(b, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(c), bits, alg);
}

void
smtpd_tls_log_errors(struct session *s, const char *after)
{
	unsigned long e, first = 0;
	unsigned guard = 0;
	char text[256];

	/* bufferevent_openssl keeps the errors of its SSL calls apart from
	 * the thread's error queue; the first one says what went wrong, and
	 * one line per event is enough. */
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0 && guard++ < 16)
		if (first == 0)
			first = e;
	if (first) {
		ERR_error_string_n(first, text, sizeof(text));
		log_info("lost connection after %s from %s: TLS: %s", after,
		    s->client, text);
	} else {
		log_info("lost connection after %s from %s: %s", after,
		    s->client, strerror(EVUTIL_SOCKET_ERROR()));
	}
}

SSL_CTX *
smtpd_tls_ctx_new(const struct config *cfg, buf_t *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char text[256];

	if (ctx == NULL) {
		buf_puts(err, "cannot create TLS context");
		return NULL;
	}
	/* RFC 8314 4.1: TLS 1.2 or later. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	                             SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->smtpd_tls_cert_file) !=
	    1) {
		ERR_error_string_n(ERR_get_error(), text, sizeof(text));
		buf_printf(err, "smtpd_tls_cert_file %s: %s",
		    cfg->smtpd_tls_cert_file, text);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx,
	        cfg->smtpd_tls_key_file[0] ? cfg->smtpd_tls_key_file
	                                   : cfg->smtpd_tls_cert_file,
	        SSL_FILETYPE_PEM) != 1) {
		ERR_error_string_n(ERR_get_error(), text, sizeof(text));
		buf_printf(err, "smtpd_tls_key_file %s: %s",
		    cfg->smtpd_tls_key_file, text);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		buf_printf(err, "smtpd_tls_key_file %s does not match %s",
		    cfg->smtpd_tls_key_file, cfg->smtpd_tls_cert_file);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}
void
smtpd_tls_starttls(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t junk;
	SSL *ssl;
	struct bufferevent *tls;

	if (s->sd->ssl_ctx == NULL) {
		smtpd_reply(s, "502 5.5.1 Error: command not supported");
		return;
	}
	if (s->tls) {
		smtpd_reply(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->helo_kind != SMTP_VERB_EHLO) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	/* Anything pipelined after STARTTLS was sent in clear and must not
	 * be taken as coming over TLS (command injection, CVE-2011-0411). */
	junk = evbuffer_get_length(in);
	if (junk > 0) {
		log_info("%s: discarding %zu bytes pipelined after STARTTLS",
		    s->client, junk);
		evbuffer_drain(in, junk);
	}
	ssl = SSL_new(s->sd->ssl_ctx);
	if (ssl == NULL) {
		log_warn("%s: SSL_new failed", s->client);
		ERR_clear_error();
		smtpd_reply(
		    s, "454 4.7.0 TLS not available due to local problem");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	tls = bufferevent_openssl_filter_new(s->sd->base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls == NULL) {
		SSL_free(ssl);
		log_warn("%s: cannot start TLS", s->client);
		smtpd_sess_close(s);
		return;
	}
	s->bev = tls;
	s->tls = 1;
	s->handshaking = 1;
	smtpd_sess_reset_all(s);
	smtpd_sess_setup_bev(s);
	smtpd_sess_phase_timeout(
	    s, (unsigned)s->sd->cfg->smtpd_tls_handshake_timeout);
}

/* ---- dispatch ---- */