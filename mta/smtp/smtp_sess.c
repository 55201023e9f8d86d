/*
 * smtp_sess - one outbound SMTP session as a named state machine.
 *
 * Outline: CONNECTING -> GREETING -> EHLO (HELO when EHLO is refused)
 * -> [STARTTLS -> TLS_HANDSHAKE -> EHLO] -> READY; then per message
 * [RSET] -> MAIL -> RCPT... -> DATA -> BODY -> READY, and QUIT at the end.
 * Every state has its RFC 5321 4.5.3.2 timeout; one reply parser, one
 * read callback, one enter_state() that logs old -> new.
 *
 * With PIPELINING (RFC 2920) MAIL, every RCPT and DATA go out in one
 * write and the replies are matched in order; without it each command
 * waits for the previous reply. The reply handlers are the same.
 *
 * Callbacks to the owner are posted through an event so that they run
 * from the top of the event loop: the owner may free the session in them.
 */
#include <errno.h>
#include <netdb.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "mta/proto/smtp_xtext.h"
#include "mta/smtp/smtp.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "queue/queue.h"

enum sess_state {
	S_CONNECTING,
	S_GREETING,
	S_EHLO,
	S_HELO,
	S_STARTTLS,
	S_TLS_HANDSHAKE,
	S_READY,
	S_RSET,
	S_MAIL,
	S_RCPT,
	S_DATA,
	S_BODY,
	S_QUIT,
	S_DEAD,
};

static const char *const state_names[] = {
    "CONNECTING",
    "GREETING",
    "EHLO",
    "HELO",
    "STARTTLS",
    "TLS_HANDSHAKE",
    "READY",
    "RSET",
    "MAIL",
    "RCPT",
    "DATA",
    "BODY",
    "QUIT",
    "DEAD",
};

/* What the peer was doing, for "... while receiving the greeting". */
static const char *const state_doing[] = {
    "connecting",
    "receiving the initial server greeting",
    "performing the EHLO handshake",
    "performing the HELO handshake",
    "sending STARTTLS",
    "performing the TLS handshake",
    "waiting for a message",
    "sending RSET",
    "sending MAIL FROM",
    "sending RCPT TO",
    "sending DATA command",
    "sending message body",
    "sending QUIT",
    "closing",
};

#define PENDING_READY 0x1
#define PENDING_DONE 0x2
#define PENDING_FAIL 0x4

struct smtp_sess {
	struct event_base *base;
	const struct config *cfg;
	struct smtp_sess_opts opts;
	char *host;
	char relay[320];
	struct bufferevent *bev;
	SSL *ssl; /* owned by the TLS bufferevent once it exists */
	enum sess_state state;
	struct event *timer;
	struct event *notify_ev;
	unsigned pending;
	int *alive; /* cleared by smtp_sess_free during a callback */
	smtp_sess_cb *cb;
	void *arg;
	struct smtp_reply *reply;
	struct smtp_ehlo ehlo;
	struct smtp_tls_info tls;
	struct smtp_failure fail;
	int closing; /* QUIT sent by smtp_sess_close: free on any outcome */
	smtp_sess_closed_fn *closed;
	void *closed_arg;
	/* The current transaction. */
	struct smtp_msg *msg;
	size_t rcpt_idx;
	size_t naccepted;
	int mail_failed;
	int pipelined;
	int body_ignored; /* 354 with no accepted recipient: send "." */
	unsigned ntrans;
	int64_t t_start, t_ready;
};

static void sess_fail(smtp_sess_t *, enum smtp_fail_stage, int code,
    const char *status, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static long long
state_timeout(const smtp_sess_t *s, enum sess_state st)
{
	const struct config *c = s->cfg;

	switch (st) {
	case S_CONNECTING:
		return c->smtp_connect_timeout;
	case S_GREETING:
	case S_EHLO:
	case S_HELO:
		return c->smtp_helo_timeout;
	case S_STARTTLS:
	case S_TLS_HANDSHAKE:
		return c->smtp_starttls_timeout;
	case S_RSET:
	case S_MAIL:
		return c->smtp_mail_timeout;
	case S_RCPT:
		return c->smtp_rcpt_timeout;
	case S_DATA:
		return c->smtp_data_init_timeout;
	case S_BODY:
		return c->smtp_data_done_timeout;
	case S_QUIT:
		return c->smtp_quit_timeout;
	default:
		return 0;
	}
}

static void
arm_timer(smtp_sess_t *s, long long secs)
{
	struct timeval tv = {(time_t)secs, 0};

	evtimer_del(s->timer);
	if (secs > 0)
		evtimer_add(s->timer, &tv);
}

static void
enter_state(smtp_sess_t *s, enum sess_state st)
{
	log_debug("smtp %s: %s -> %s", s->relay, state_names[s->state],
	    state_names[st]);
	s->state = st;
	arm_timer(s, state_timeout(s, st));
}

static void
post(smtp_sess_t *s, unsigned what)
{
	s->pending |= what;
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_READ);
	event_active(s->notify_ev, EV_TIMEOUT, 1);
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	smtp_sess_t *s = arg;
	int alive = 1;
	unsigned p;

	(void)fd;
	(void)what;
	while ((p = s->pending) != 0 && s->cb != NULL) {
		enum smtp_event ev;

		if (p & PENDING_READY) {
			s->pending &= ~PENDING_READY;
			ev = SMTP_EV_READY;
		} else if (p & PENDING_DONE) {
			s->pending &= ~PENDING_DONE;
			ev = SMTP_EV_DONE;
		} else {
			s->pending &= ~PENDING_FAIL;
			ev = SMTP_EV_FAIL;
		}
		s->alive = &alive;
		s->cb(s->arg, s, ev);
		if (!alive)
			return;
		s->alive = NULL;
		if (ev == SMTP_EV_FAIL)
			return;
	}
	/* Idle again: watch for the server closing or sending 421. */
	if (s->state == S_READY && s->bev != NULL && !s->pending)
		bufferevent_enable(s->bev, EV_READ);
}

static void
send_line(smtp_sess_t *s, const char *line, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add(out, line, len);
	evbuffer_add(out, "\r\n", 2);
}

static void
send_cmd(smtp_sess_t *s, const char *cmd)
{
	send_line(s, cmd, strlen(cmd));
}

static void
close_conn(smtp_sess_t *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
		s->ssl = NULL;
	}
	evtimer_del(s->timer);
}

/*
 * The session is finished: record why, give every recipient without a
 * final answer no result (code 0: the owner defers it), and tell the
 * owner.
 */
/* A closing session's end, whatever the server did: tell the owner. */
static void
closing_done(smtp_sess_t *s)
{
	smtp_sess_closed_fn *closed = s->closed;
	void *arg = s->closed_arg;

	smtp_sess_free(s);
	if (closed != NULL)
		closed(arg);
}

static void
sess_fail(smtp_sess_t *s, enum smtp_fail_stage stage, int code,
    const char *status, const char *fmt, ...)
{
	va_list ap;
	buf_t *b = buf_new(sizeof(s->fail.reason) - 1);
	size_t i;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
	s->fail.stage = stage;
	s->fail.code = code;
	snprintf(s->fail.status, sizeof(s->fail.status), "%s", status);
	snprintf(s->fail.reason, sizeof(s->fail.reason), "%s", buf_data(b));
	buf_free(b);
	if (s->msg != NULL) {
		for (i = 0; i < s->msg->nrcpt; i++) {
			struct smtp_msg_rcpt *r = &s->msg->rcpts[i];

			/* An accepted RCPT is not a delivery until the
			 * final dot is answered. */
			if (r->code / 100 == 2 || r->code == 0) {
				r->code = 0;
				r->status[0] = '\0';
				r->reply[0] = '\0';
			}
		}
	}
	log_debug("smtp %s: failed in %s: %s", s->relay, state_names[s->state],
	    s->fail.reason);
	close_conn(s);
	s->state = S_DEAD;
	if (s->closing) {
		closing_done(s);
		return;
	}
	post(s, PENDING_FAIL);
}

/* Stores a reply as the result of recipient r. */
static void
set_rcpt_result(
    smtp_sess_t *s, struct smtp_msg_rcpt *r, const struct smtp_reply *rep)
{
	buf_t *b = buf_new(sizeof(r->reply) - 1);

	r->code = rep->code;
	r->local = 0;
	if (rep->status[0] != '\0')
		snprintf(r->status, sizeof(r->status), "%s", rep->status);
	else
		/* No enhanced code: the generic one for the class. */
		snprintf(
		    r->status, sizeof(r->status), "%d.0.0", rep->code / 100);
	smtp_reply_format(rep, b);
	snprintf(r->reply, sizeof(r->reply), "%s", buf_data(b));
	buf_free(b);
	(void)s;
}

static void
set_rcpt_local(
    struct smtp_msg_rcpt *r, int code, const char *status, const char *text)
{
	r->code = code;
	r->local = 1;
	snprintf(r->status, sizeof(r->status), "%s", status);
	snprintf(r->reply, sizeof(r->reply), "%s", text);
}

static void
reply_text(const struct smtp_reply *rep, buf_t *b)
{
	smtp_reply_format(rep, b);
}

static void fail_reply(smtp_sess_t *, enum smtp_fail_stage,
    const struct smtp_reply *, const char *what);

static void
fail_reply(smtp_sess_t *s, enum smtp_fail_stage stage,
    const struct smtp_reply *rep, const char *what)
{
	buf_t *b = buf_new(520);
	char status[SMTP_STATUS_SIZE];

	reply_text(rep, b);
	if (rep->status[0] != '\0')
		snprintf(status, sizeof(status), "%s", rep->status);
	else
		snprintf(status, sizeof(status), "%d.0.0", rep->code / 100);
	sess_fail(s, stage, rep->code, status,
	    "host %s refused to talk to "
	    "me%s%s: %s",
	    s->relay, what ? " in " : "", what ? what : "", buf_data(b));
	buf_free(b);
}

static void
send_ehlo(smtp_sess_t *s, int helo)
{
	buf_t *b = buf_new(SMTP_REPLY_LINE_MAX);

	buf_printf(b, "%s %s", helo ? "HELO" : "EHLO", s->opts.helo_name);
	send_line(s, buf_data(b), buf_len(b));
	buf_free(b);
	enter_state(s, helo ? S_HELO : S_EHLO);
}

static void
become_ready(smtp_sess_t *s)
{
	enter_state(s, S_READY);
	s->t_ready = clock_now_usec();
	post(s, PENDING_READY);
}

static void start_tls(smtp_sess_t *);

/*
 * The enhanced code when required TLS is missing: 4.7.5 where a DANE or
 * MTA-STS policy asked for authenticated TLS (RFC 7672 and 8461 defer with
 * it, as Postfix does), 4.7.4 for the local "encrypt" setting.
 */
static const char *
tls_fail_status(const smtp_sess_t *s)
{
	return tls_level_must_match(s->opts.level) || s->opts.policy_required
	           ? "4.7.5"
	           : "4.7.4";
}

/* After EHLO/HELO: STARTTLS or not, as the level asks (RFC 3207). */
static void
after_ehlo(smtp_sess_t *s)
{
	int want = s->opts.level > TLS_LEV_NONE && !s->opts.no_tls &&
	           s->opts.ssl_ctx != NULL;

	if (s->tls.active || !want) {
		if (!s->tls.active && tls_level_must_encrypt(s->opts.level)) {
			sess_fail(s, SMTP_FAIL_POLICY, 0, tls_fail_status(s),
			    "TLS is required, but unavailable for host %s",
			    s->relay);
			return;
		}
		become_ready(s);
		return;
	}
	if (!(s->ehlo.ext & SMTP_EXT_STARTTLS)) {
		if (tls_level_must_encrypt(s->opts.level)) {
			sess_fail(s, SMTP_FAIL_POLICY, 0, tls_fail_status(s),
			    "TLS is required, but was not offered by host %s",
			    s->relay);
			return;
		}
		become_ready(s);
		return;
	}
	send_cmd(s, "STARTTLS");
	enter_state(s, S_STARTTLS);
}

static void event_cb(struct bufferevent *, short, void *);
static void read_cb(struct bufferevent *, void *);
static void write_cb(struct bufferevent *, void *);

static void
start_tls(smtp_sess_t *s)
{
	struct bufferevent *tb;
	SSL *ssl;

	/* Bytes after the 220 would be plaintext injected into the TLS
	 * session's command stream (cf. CVE-2011-0411): refuse them. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) != 0) {
		sess_fail(s, SMTP_FAIL_TLS, 0, "4.7.5",
		    "host %s sent data after the STARTTLS reply", s->relay);
		return;
	}
	ssl = SSL_new(s->opts.ssl_ctx);
	if (ssl == NULL) {
		sess_fail(s, SMTP_FAIL_TLS, 0, "4.7.5", "cannot create SSL");
		return;
	}
	SSL_set_tlsext_host_name(ssl, s->host);
	/* The name check happens during verification; the result is read
	 * after the handshake (opportunistic levels do not enforce it). */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	SSL_set1_host(ssl, s->host);
	if (s->opts.level >= TLS_LEV_STS_ENFORCE)
		SSL_set_min_proto_version(ssl, TLS1_2_VERSION); /* 8461 4.2 */
	if (s->opts.tls_setup != NULL &&
	    s->opts.tls_setup(s->opts.tls_setup_arg, ssl) < 0) {
		SSL_free(ssl);
		sess_fail(s, SMTP_FAIL_TLS, 0, "4.7.5",
		    "cannot set up the TLS policy for %s", s->relay);
		return;
	}
	tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tb == NULL) {
		SSL_free(ssl);
		sess_fail(s, SMTP_FAIL_TLS, 0, "4.7.5",
		    "cannot start TLS with %s", s->relay);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	s->bev = tb;
	s->ssl = ssl;
	bufferevent_setcb(tb, read_cb, write_cb, event_cb, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	enter_state(s, S_TLS_HANDSHAKE);
}

static void
tls_done(smtp_sess_t *s)
{
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	long vr = SSL_get_verify_result(s->ssl);

	s->tls.active = 1;
	snprintf(s->tls.protocol, sizeof(s->tls.protocol), "%s",
	    SSL_get_version(s->ssl));
	snprintf(s->tls.cipher, sizeof(s->tls.cipher), "%s",
	    SSL_get_cipher_name(s->ssl));
	if (peer == NULL) {
		snprintf(s->tls.verify, sizeof(s->tls.verify), "untrusted");
		snprintf(
		    s->tls.reason, sizeof(s->tls.reason), "no certificate");
	} else if (vr == X509_V_OK) {
		s->tls.verified = 1;
		snprintf(s->tls.verify, sizeof(s->tls.verify), "verified");
	} else {
		snprintf(s->tls.verify, sizeof(s->tls.verify), "%s",
		    vr == X509_V_ERR_HOSTNAME_MISMATCH ? "name-mismatch"
		                                       : "untrusted");
		snprintf(s->tls.reason, sizeof(s->tls.reason), "%s",
		    X509_verify_cert_error_string(vr));
	}
	if (s->tls.verified &&
	    SSL_get0_dane_authority(s->ssl, NULL, NULL) >= 0) {
		uint8_t usage, selector, mtype;

		if (SSL_get0_dane_tlsa(
		        s->ssl, &usage, &selector, &mtype, NULL, NULL) >= 0)
			snprintf(s->tls.match, sizeof(s->tls.match),
			    "%s %u %u depth %d",
			    usage == 3   ? "DANE-EE(3)"
			    : usage == 2 ? "DANE-TA(2)"
			                 : "TLSA",
			    selector, mtype,
			    SSL_get0_dane_authority(s->ssl, NULL, NULL));
	}
	log_debug("smtp %s: TLS %s %s %s", s->relay, s->tls.protocol,
	    s->tls.cipher, s->tls.verify);
	if (tls_level_must_match(s->opts.level) && !s->tls.verified) {
		sess_fail(s, SMTP_FAIL_POLICY, 0, "4.7.5",
		    "Server certificate not verified for %s: %s", s->relay,
		    s->tls.reason);
		return;
	}
	/* RFC 3207 4.2: forget what was learned before TLS. */
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	send_ehlo(s, 0);
}

static void start_mail(smtp_sess_t *);
static void finish_transaction(smtp_sess_t *);

static void
rcpt_params(smtp_sess_t *s, const struct smtp_msg_rcpt *r, buf_t *b)
{
	buf_printf(b, "RCPT TO:<%s>", r->address);
	if (!(s->ehlo.ext & SMTP_EXT_DSN))
		return;
	if (r->notify & DSN_NOTIFY_NEVER) {
		buf_puts(b, " NOTIFY=NEVER");
	} else if (r->notify != 0) {
		const char *sep = " NOTIFY=";

		if (r->notify & DSN_NOTIFY_SUCCESS) {
			buf_printf(b, "%sSUCCESS", sep);
			sep = ",";
		}
		if (r->notify & DSN_NOTIFY_FAILURE) {
			buf_printf(b, "%sFAILURE", sep);
			sep = ",";
		}
		if (r->notify & DSN_NOTIFY_DELAY)
			buf_printf(b, "%sDELAY", sep);
	}
	/* Stored as received, still xtext (RFC 3461 4.2). */
	if (r->orcpt != NULL)
		buf_printf(b, " ORCPT=%s", r->orcpt);
}

static void
send_rcpt(smtp_sess_t *s, size_t i)
{
	buf_t *b = buf_new(2048);

	rcpt_params(s, &s->msg->rcpts[i], b);
	send_line(s, buf_data(b), buf_len(b));
	buf_free(b);
}

static void
send_body(smtp_sess_t *s)
{
	buf_t *b = buf_new(0);
	char *data;
	size_t len;
	struct timeval xfer = {(time_t)s->cfg->smtp_data_xfer_timeout, 0};

	if (s->body_ignored)
		buf_append(b, ".\r\n", 3);
	else
		smtp_data_encode(s->msg->content, s->msg->len, b);
	data = buf_steal(b, &len);
	buf_free(b);
	evbuffer_add(bufferevent_get_output(s->bev), data, len);
	free(data);
	/* The write timeout restarts with every block that goes out:
	 * RFC 5321 4.5.3.2.5 (data block); the final reply then gets
	 * the data done timeout, armed in write_cb. */
	enter_state(s, S_BODY);
	evtimer_del(s->timer);
	bufferevent_set_timeouts(s->bev, NULL, &xfer);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
}

static void
handle_reply(smtp_sess_t *s, const struct smtp_reply *rep)
{
	int cls = rep->code / 100;

	switch (s->state) {
	case S_GREETING:
		if (cls != 2) {
			fail_reply(s, SMTP_FAIL_GREETING, rep, NULL);
			return;
		}
		send_ehlo(s, 0);
		return;
	case S_EHLO:
		if (cls == 2) {
			smtp_ehlo_parse(rep, &s->ehlo);
			after_ehlo(s);
		} else if (cls == 5 && !s->tls.active) {
			send_ehlo(s, 1); /* RFC 5321 3.2: fall back to HELO */
		} else {
			fail_reply(s, SMTP_FAIL_GREETING, rep, "reply to EHLO");
		}
		return;
	case S_HELO:
		if (cls != 2) {
			fail_reply(s, SMTP_FAIL_GREETING, rep, "reply to HELO");
			return;
		}
		memset(&s->ehlo, 0, sizeof(s->ehlo));
		after_ehlo(s);
		return;
	case S_STARTTLS:
		if (rep->code == 220) {
			start_tls(s);
		} else if (tls_level_must_encrypt(s->opts.level)) {
			fail_reply(
			    s, SMTP_FAIL_POLICY, rep, "reply to STARTTLS");
		} else {
			/* Opportunistic: the server declined; go on in
			 * clear on this connection (RFC 3207 4). */
			s->ehlo.ext &= ~SMTP_EXT_STARTTLS;
			s->opts.no_tls = 1;
			become_ready(s);
		}
		return;
	case S_RSET:
		if (cls != 2) {
			fail_reply(s, SMTP_FAIL_REUSE, rep, "reply to RSET");
			return;
		}
		start_mail(s);
		return;
	case S_MAIL:
		if (cls != 2) {
			size_t i;

			for (i = 0; i < s->msg->nrcpt; i++)
				set_rcpt_result(s, &s->msg->rcpts[i], rep);
			s->mail_failed = 1;
			if (!s->pipelined) {
				finish_transaction(s);
				return;
			}
		}
		s->rcpt_idx = 0;
		enter_state(s, S_RCPT);
		if (!s->pipelined)
			send_rcpt(s, 0);
		return;
	case S_RCPT:
		if (!s->mail_failed) {
			set_rcpt_result(s, &s->msg->rcpts[s->rcpt_idx], rep);
			if (cls == 2)
				s->naccepted++;
		}
		if (++s->rcpt_idx < s->msg->nrcpt) {
			if (!s->pipelined)
				send_rcpt(s, s->rcpt_idx);
			arm_timer(s, state_timeout(s, S_RCPT));
			return;
		}
		if (!s->pipelined) {
			if (s->naccepted == 0) {
				finish_transaction(s);
				return;
			}
			send_cmd(s, "DATA");
		}
		enter_state(s, S_DATA);
		return;
	case S_DATA:
		if (rep->code == 354) {
			/* RFC 2920 3.1: DATA accepted though no RCPT was:
			 * end it with a lone dot. */
			s->body_ignored = s->mail_failed || s->naccepted == 0;
			send_body(s);
			return;
		}
		if (!s->mail_failed) {
			size_t i;

			for (i = 0; i < s->msg->nrcpt; i++)
				if (s->msg->rcpts[i].code / 100 == 2)
					set_rcpt_result(
					    s, &s->msg->rcpts[i], rep);
		}
		finish_transaction(s);
		return;
	case S_BODY:
		if (!s->body_ignored && !s->mail_failed) {
			size_t i;

			for (i = 0; i < s->msg->nrcpt; i++)
				if (s->msg->rcpts[i].code / 100 == 2)
					set_rcpt_result(
					    s, &s->msg->rcpts[i], rep);
		}
		finish_transaction(s);
		return;
	case S_QUIT:
		closing_done(s);
		return;
	default: {
		buf_t *b = buf_new(520);

		/* READY: typically 421 before an idle timeout. */
		reply_text(rep, b);
		sess_fail(s,
		    s->state == S_READY ? SMTP_FAIL_REUSE
		                        : SMTP_FAIL_TRANSACTION,
		    rep->code, cls == 2 ? "4.4.2" : "4.4.2",
		    "unexpected reply from %s in state %s: %s", s->relay,
		    state_names[s->state], buf_data(b));
		buf_free(b);
		return;
	}
	}
}

static void
finish_transaction(smtp_sess_t *s)
{
	enter_state(s, S_READY);
	s->msg = NULL;
	post(s, PENDING_DONE);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	smtp_sess_t *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const size_t cap = SMTP_REPLY_LINES_MAX * SMTP_REPLY_LINE_MAX;

	/* Bounded: each pass consumes a reply or returns. */
	while (s->state != S_DEAD && !(s->pending & PENDING_FAIL)) {
		size_t avail = evbuffer_get_length(in), n, used;
		const char *data, *err;
		enum sess_state before = s->state;

		if (avail == 0)
			return;
		n = avail < cap ? avail : cap;
		data = (const char *)evbuffer_pullup(in, (ssize_t)n);
		err = smtp_reply_parse(data, n, s->reply, &used);
		if (err == NULL && used == 0 && n == cap)
			err = "reply too long";
		if (err != NULL) {
			sess_fail(s,
			    s->state == S_READY  ? SMTP_FAIL_REUSE
			    : s->state < S_READY ? SMTP_FAIL_GREETING
			                         : SMTP_FAIL_TRANSACTION,
			    0, "4.5.0", "protocol error from %s while %s: %s",
			    s->relay, state_doing[s->state], err);
			return;
		}
		if (used == 0)
			return;
		evbuffer_drain(in, used);
		handle_reply(s, s->reply);
		/* A handler that freed the session (QUIT) or started TLS
		 * (new bufferevent) ends this pass. */
		if (before == S_QUIT || before == S_STARTTLS || s->pending)
			return;
	}
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	smtp_sess_t *s = arg;

	if (s->state == S_BODY &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		bufferevent_set_timeouts(bev, NULL, NULL);
		arm_timer(s, s->cfg->smtp_data_done_timeout);
	}
}

static void
io_failed(smtp_sess_t *s, const char *what)
{
	enum smtp_fail_stage st;

	if (s->closing) {
		closing_done(s);
		return;
	}
	switch (s->state) {
	case S_CONNECTING:
	case S_GREETING:
		st = SMTP_FAIL_CONNECT;
		break;
	case S_EHLO:
	case S_HELO:
		st = SMTP_FAIL_GREETING;
		break;
	case S_STARTTLS:
	case S_TLS_HANDSHAKE:
		st = SMTP_FAIL_TLS;
		break;
	case S_READY:
	case S_RSET:
		st = SMTP_FAIL_REUSE;
		break;
	default:
		st = SMTP_FAIL_TRANSACTION;
		break;
	}
	if (s->state == S_CONNECTING)
		sess_fail(
		    s, st, 0, "4.4.1", "connect to %s: %s", s->relay, what);
	else
		sess_fail(s, st, 0, st == SMTP_FAIL_TLS ? "4.7.5" : "4.4.2",
		    "%s with %s while %s%s", what, s->relay,
		    state_doing[s->state],
		    s->state == S_BODY ? " (message may be sent more than once)"
		                       : "");
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	smtp_sess_t *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECTING) {
			enter_state(s, S_GREETING);
			bufferevent_enable(bev, EV_READ);
		} else if (s->state == S_TLS_HANDSHAKE) {
			tls_done(s);
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		io_failed(s, "conversation timed out");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		io_failed(s, "lost connection");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		char msg[256];
		unsigned long e = bufferevent_get_openssl_error(bev);

		if (e != 0) {
			char tmp[200];

			ERR_error_string_n(e, tmp, sizeof(tmp));
			snprintf(msg, sizeof(msg), "TLS error (%s)", tmp);
		} else if (EVUTIL_SOCKET_ERROR() != 0) {
			snprintf(msg, sizeof(msg), "%s",
			    evutil_socket_error_to_string(
			        EVUTIL_SOCKET_ERROR()));
		} else {
			snprintf(msg, sizeof(msg), "lost connection");
		}
		if (s->state == S_TLS_HANDSHAKE && e == 0)
			snprintf(msg, sizeof(msg), "TLS handshake failed");
		io_failed(s, msg);
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	smtp_sess_t *s = arg;

	(void)fd;
	(void)what;
	io_failed(s, "conversation timed out");
}

smtp_sess_t *
smtp_sess_new(struct event_base *base, const struct config *cfg,
    const struct smtp_sess_opts *opts, const struct sockaddr *sa,
    socklen_t salen, smtp_sess_cb *cb, void *arg)
{
	smtp_sess_t *s = xcalloc(1, sizeof(*s));
	char addr[INET6_ADDRSTRLEN + 8], port[16];

	s->base = base;
	s->cfg = cfg;
	s->opts = *opts;
	s->host = xstrdup(opts->host);
	s->opts.host = s->host;
	s->opts.helo_name = NULL; /* copied into the command at use */
	s->cb = cb;
	s->arg = arg;
	s->reply = xmalloc(sizeof(*s->reply));
	s->t_start = clock_now_usec();
	s->timer = evtimer_new(base, timer_cb, s);
	s->notify_ev = event_new(base, -1, 0, notify_cb, s);
	if (getnameinfo(sa, salen, addr, sizeof(addr), port, sizeof(port),
	        NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(addr, sizeof(addr), "?");
		snprintf(port, sizeof(port), "?");
	}
	snprintf(s->relay, sizeof(s->relay), "%s[%s]:%s", s->host, addr, port);
	/* helo_name must outlive the session in cfg or opts' owner;
	 * keep a private copy to be safe. */
	s->opts.helo_name =
	    xstrdup(opts->helo_name && *opts->helo_name ? opts->helo_name
	                                                : "localhost");
	s->state = S_CONNECTING;
	arm_timer(s, state_timeout(s, S_CONNECTING));
	s->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_enable(s->bev, EV_WRITE);
	log_debug("smtp %s: connecting", s->relay);
	if (bufferevent_socket_connect(s->bev, sa, (int)salen) < 0) {
		int e = errno;

		sess_fail(s, SMTP_FAIL_CONNECT, 0, "4.4.1", "connect to %s: %s",
		    s->relay, strerror(e ? e : ECONNREFUSED));
	}
	return s;
}

/* Checks that can refuse a message before MAIL: RFC 1870, 6531, 6152. */
static int
precheck(smtp_sess_t *s, struct smtp_msg *m)
{
	const char *why = NULL, *status = NULL;
	char text[400];
	size_t i;

	if ((s->ehlo.ext & SMTP_EXT_SIZE) && s->ehlo.size > 0 &&
	    m->len > s->ehlo.size) {
		why = "message size exceeds the fixed limit of host";
		status = "5.3.4";
	} else if ((m->flags & QENV_SMTPUTF8) &&
	           !(s->ehlo.ext & SMTP_EXT_SMTPUTF8)) {
		/* RFC 6531 3.2 and 3.5: no downgrade; bounce 5.6.7. */
		why = "SMTPUTF8 is required, but was not offered by host";
		status = "5.6.7";
	} else if ((m->flags & QENV_8BITMIME) &&
	           !(s->ehlo.ext & SMTP_EXT_8BITMIME) &&
	           smtp_has_8bit(m->content, m->len)) {
		/* RFC 6152 3: we do not convert to 7bit MIME; return the
		 * message with 5.6.3 (conversion required). Declared
		 * 8BITMIME but really 7-bit goes out without BODY=. */
		why = "8BITMIME is required, but was not offered by host";
		status = "5.6.3";
	} else if ((m->flags & QENV_REQUIRETLS) &&
	           (!s->tls.active || !tls_level_must_match(s->opts.level) ||
	               !(s->ehlo.ext & SMTP_EXT_REQUIRETLS))) {
		/* RFC 8689 4.2.1: the next hop must advertise REQUIRETLS
		 * (after STARTTLS); otherwise the message is returned with
		 * 5.7.10, never sent without the promise. */
		why = "REQUIRETLS is required, but was not offered by host";
		status = "5.7.10";
	} else if (strpbrk(m->sender, "\r\n<>") != NULL) {
		why = "bad sender address syntax, for host";
		status = "5.1.7";
	}
	if (why == NULL)
		return 0;
	snprintf(text, sizeof(text), "%s %s", why, s->relay);
	for (i = 0; i < m->nrcpt; i++)
		set_rcpt_local(&m->rcpts[i], 554, status, text);
	return -1;
}

static void
start_mail(smtp_sess_t *s)
{
	struct smtp_msg *m = s->msg;
	buf_t *b = buf_new(0);
	size_t i;

	s->ntrans++;
	buf_printf(b, "MAIL FROM:<%s>", m->sender);
	if (s->ehlo.ext & SMTP_EXT_SIZE)
		buf_printf(b, " SIZE=%zu", m->len);
	if ((m->flags & QENV_8BITMIME) && (s->ehlo.ext & SMTP_EXT_8BITMIME))
		buf_puts(b, " BODY=8BITMIME");
	if (m->flags & QENV_SMTPUTF8)
		buf_puts(b, " SMTPUTF8");
	if (m->flags & QENV_REQUIRETLS)
		buf_puts(b, " REQUIRETLS"); /* RFC 8689 4.2.1: passed on */
	if (s->ehlo.ext & SMTP_EXT_DSN) {
		if (m->ret == DSN_RET_FULL)
			buf_puts(b, " RET=FULL");
		else if (m->ret == DSN_RET_HDRS)
			buf_puts(b, " RET=HDRS");
		if (m->envid != NULL) {
			buf_puts(b, " ENVID=");
			smtp_xtext_encode(m->envid, b);
		}
	}
	buf_puts(b, "\r\n");
	s->pipelined = (s->ehlo.ext & SMTP_EXT_PIPELINING) != 0;
	if (s->pipelined) {
		/* RFC 2920 3.1: DATA may end the batch. */
		for (i = 0; i < m->nrcpt; i++) {
			rcpt_params(s, &m->rcpts[i], b);
			buf_puts(b, "\r\n");
		}
		buf_puts(b, "DATA\r\n");
	}
	evbuffer_add(bufferevent_get_output(s->bev), buf_data(b), buf_len(b));
	buf_free(b);
	enter_state(s, S_MAIL);
}

void
smtp_sess_send(smtp_sess_t *s, struct smtp_msg *m)
{
	size_t i;

	if (s->state != S_READY || s->msg != NULL)
		log_fatal(
		    70, "smtp_sess_send in state %s", state_names[s->state]);
	s->msg = m;
	s->rcpt_idx = 0;
	s->naccepted = 0;
	s->mail_failed = 0;
	s->body_ignored = 0;
	for (i = 0; i < m->nrcpt; i++) {
		m->rcpts[i].code = 0;
		m->rcpts[i].local = 0;
		m->rcpts[i].status[0] = '\0';
		m->rcpts[i].reply[0] = '\0';
	}
	if (precheck(s, m) < 0) {
		finish_transaction(s);
		return;
	}
	bufferevent_enable(s->bev, EV_READ);
	if (s->ntrans > 0) {
		/* A reused connection: RSET also proves it still works. */
		send_cmd(s, "RSET");
		enter_state(s, S_RSET);
		return;
	}
	start_mail(s);
}

int
smtp_sess_close(smtp_sess_t *s, smtp_sess_closed_fn *closed, void *arg)
{
	if (s == NULL)
		return 0;
	s->cb = NULL;
	if (s->state != S_READY || s->bev == NULL) {
		smtp_sess_free(s);
		return 0;
	}
	s->closing = 1;
	s->closed = closed;
	s->closed_arg = arg;
	s->pending = 0;
	send_cmd(s, "QUIT");
	bufferevent_enable(s->bev, EV_READ);
	enter_state(s, S_QUIT);
	return 1;
}

void
smtp_sess_free(smtp_sess_t *s)
{
	if (s == NULL)
		return;
	if (s->alive != NULL)
		*s->alive = 0;
	close_conn(s);
	event_free(s->timer);
	event_free(s->notify_ev);
	free(s->reply);
	free(s->host);
	free((char *)s->opts.helo_name);
	free(s);
}

const struct smtp_failure *
smtp_sess_failure(const smtp_sess_t *s)
{
	return &s->fail;
}

const struct smtp_tls_info *
smtp_sess_tls(const smtp_sess_t *s)
{
	return &s->tls;
}

const struct smtp_ehlo *
smtp_sess_ehlo(const smtp_sess_t *s)
{
	return &s->ehlo;
}

const char *
smtp_sess_relay(const smtp_sess_t *s)
{
	return s->relay;
}

unsigned
smtp_sess_ntrans(const smtp_sess_t *s)
{
	return s->ntrans;
}

int64_t
smtp_sess_setup_usec(const smtp_sess_t *s)
{
	return s->t_ready ? s->t_ready - s->t_start : 0;
}

SSL_CTX *
smtp_tls_ctx_new(const struct config *cfg, buf_t *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		buf_printf(err, "cannot create TLS client context");
		return NULL;
	}
	/* Verification is computed for every session and enforced per
	 * level in tls_done(), never by failing the handshake. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cfg->smtp_tls_CAfile != NULL && cfg->smtp_tls_CAfile[0] != '\0') {
		if (SSL_CTX_load_verify_locations(
		        ctx, cfg->smtp_tls_CAfile, NULL) != 1) {
			buf_printf(err, "smtp_tls_CAfile %s: cannot load",
			    cfg->smtp_tls_CAfile);
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_default_verify_paths(ctx);
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

void
smtp_tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}
