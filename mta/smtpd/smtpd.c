/*
 * smtpd - the SMTP listener; see smtpd.h.
 *
 * RFC 5321 (4.1 commands, 4.2 replies, 4.3.2 sequencing, 4.4 Received,
 * 4.5.3 limits), RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME,
 * RFC 6531 SMTPUTF8, RFC 2034 ENHANCEDSTATUSCODES, RFC 3461 DSN, RFC 3207
 * STARTTLS, RFC 4954 AUTH, RFC 8314 (implicit TLS, no credentials in
 * clear, TLS in Received), RFC 8689 REQUIRETLS.
 *
 * Outline:
 *  1. accept_cb: connection limits (421 4.7.0 and close), then a session
 *     with a bufferevent (plain, or OpenSSL for implicit TLS) and the
 *     220 greeting.
 *  2. session_process: the one input loop. In command states it cuts
 *     lines (smtp_line_find, 512 bytes, 12288 for AUTH) and dispatches
 *     them in order, so that a pipelined batch is answered in full; in
 *     S_DATA it feeds the DATA reader (smtp_data). It runs from the read
 *     callback and from a "resume" event, never recursively.
 *  3. At the final dot the envelope and the content (our Received: header
 *     first) go to qcommit; the session waits in S_COMMIT without reading
 *     commands and answers 250 only from the done callback.
 *  4. session_close: S_CLOSING, stop reading, free once the output has
 *     been written (polling a timer, bounded).
 *
 * Sessions are a named state machine (enter_state logs old -> new at
 * debug level). Each pending commit is cancelled when its session goes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "smtpd_sess.h"

/* Lines handled per turn before yielding to other sessions. */
#define LINES_PER_TURN 100
/* How long a closing session may wait for its last reply to drain. */
#define CLOSE_POLL_USEC 10000
#define CLOSE_POLL_MAX 300
/* Room for our Received: header in front of the message. */
#define RECEIVED_MAX 2048

static const char *const state_names[] = {
    [S_CMD] = "CMD",
    [S_AUTH_PLAIN] = "AUTH_PLAIN",
    [S_AUTH_USER] = "AUTH_USER",
    [S_AUTH_PASS] = "AUTH_PASS",
    [S_AUTH_CHECK] = "AUTH_CHECK",
    [S_DATA] = "DATA",
    [S_COMMIT] = "COMMIT",
    [S_CLOSING] = "CLOSING",
};

static void session_process(struct session *);

void
smtpd_enter_state(struct session *s, enum sess_state st)
{
	if (s->state != st)
		log_debug("%s: state %s -> %s", s->client,
		    state_names[s->state], state_names[st]);
	s->state = st;
}

/* Postfix's style: "timeout after RCPT", "lost connection after DATA". */
void
smtpd_set_last_cmd(struct session *s, const char *name)
{
	size_t i;

	for (i = 0; name[i] && i < sizeof(s->last_cmd) - 1; i++)
		s->last_cmd[i] =
		    (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32
		                                            : name[i]);
	s->last_cmd[i] = '\0';
}

static const char *
qid_or_noqueue(const struct session *s)
{
	return s->env ? s->env->qid : "NOQUEUE";
}

/* Writes one reply line (CRLF added) and counts errors for the session. */
void
smtpd_reply(struct session *s, const char *text)
{
	int code = smtp_reply_code(text);

	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", text);
	if (!s->verb_counted && code != 0) {
		s->verb_counted = 1;
		if (code < 400)
			s->cnt_ok[s->verb]++;
	}
	if (code >= 400)
		s->errors++;
}

void
smtpd_replyf(struct session *s, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtpd_reply(s, text);
}

/* A rejection that Postfix would log: MAIL, RCPT and DATA refusals. */
static void
reject(struct session *s, const char *what, const char *text, const char *rcpt)
{
	buf_t *b = buf_new(2048);

	smtpd_reply(s, text);
	s->sd->stats.rejected++;
	buf_printf(b, "%s: reject: %s from %s: %s; from=<%s>",
	    qid_or_noqueue(s), what, s->client, text, s->sender_log);
	if (rcpt) {
		buf_puts(b, " to=<");
		buf_put_printable(b, rcpt, strlen(rcpt));
		buf_puts(b, ">");
	}
	buf_printf(b, " proto=%s helo=<%s>",
	    s->helo_kind == SMTP_VERB_HELO ? "SMTP" : "ESMTP", s->helo);
	log_info("%s", buf_data(b));
	buf_free(b);
}

static void
transaction_reset(struct session *s)
{
	queue_env_free(s->env);
	s->env = NULL;
	s->sender_log[0] = '\0';
	buf_free(s->content);
	s->content = NULL;
}

/* RFC 3207 4.2 and 8314: after STARTTLS everything learned is dropped. */
void
smtpd_sess_reset_all(struct session *s)
{
	transaction_reset(s);
	s->helo_kind = 0;
	s->helo[0] = '\0';
	s->authenticated = 0;
	s->sasl_user[0] = '\0';
	s->sasl_method[0] = '\0';
}

static int
relay_allowed(const struct session *s)
{
	return s->in_mynetworks || s->authenticated;
}

void
smtpd_set_read_timeout(struct session *s, int on)
{
	struct timeval tv = {(time_t)s->sd->cfg->smtpd_timeout, 0};
	struct bufferevent *under = bufferevent_get_underlying(s->bev);

	bufferevent_set_timeouts(s->bev, on ? &tv : NULL, &tv);
	/* Under STARTTLS the socket's own bufferevent times out too, and
	 * its timeout reaches us as ours. */
	if (under != NULL)
		bufferevent_set_timeouts(under, on ? &tv : NULL, &tv);
}

void
smtpd_resume_soon(struct session *s)
{
	event_active(s->resume_ev, EV_TIMEOUT, 0);
}

/* ---- EHLO and friends ---- */

static void
do_helo(struct session *s, const struct smtp_cmd *cmd)
{
	const char *err = smtp_cmd_check_helo(cmd->arg, cmd->arglen);
	buf_t *b;

	if (err) {
		smtpd_reply(s, cmd->verb == SMTP_VERB_HELO
		                   ? "501 5.5.4 Syntax: HELO hostname"
		                   : err);
		return;
	}
	/* RFC 5321 4.1.4: EHLO/HELO resets the transaction. */
	transaction_reset(s);
	memcpy(s->helo, cmd->arg, cmd->arglen);
	s->helo[cmd->arglen] = '\0';
	s->helo_kind = cmd->verb;
	smtpd_sess_phase_timeout(s, 0);
	if (cmd->verb == SMTP_VERB_HELO) {
		smtpd_replyf(s, "250 %s", s->sd->hostname);
		return;
	}
	b = buf_new(4096);
	buf_printf(b, "250-%s\r\n", s->sd->hostname);
	buf_puts(b, "250-PIPELINING\r\n");
	buf_printf(b, "250-SIZE %lld\r\n", s->sd->cfg->message_size_limit);
	if (s->sd->ssl_ctx && !s->tls)
		buf_puts(b, "250-STARTTLS\r\n");
	/* RFC 4954 4 / RFC 8314: no AUTH before TLS. */
	if (smtpd_sasl_offered(s))
		buf_puts(b, "250-AUTH PLAIN LOGIN\r\n");
	/* RFC 8689 4: REQUIRETLS only on a TLS session. */
	if (s->tls)
		buf_puts(b, "250-REQUIRETLS\r\n");
	buf_puts(b, "250-ENHANCEDSTATUSCODES\r\n");
	buf_puts(b, "250-8BITMIME\r\n");
	buf_puts(b, "250-DSN\r\n");
	buf_puts(b, "250 SMTPUTF8\r\n");
	evbuffer_add(bufferevent_get_output(s->bev), buf_data(b), buf_len(b));
	buf_free(b);
	s->verb_counted = 1;
	s->cnt_ok[s->verb]++;
}

static void
do_mail(struct session *s, const struct smtp_cmd *cmd)
{
	struct smtp_mail_args m;
	const char *err;
	buf_t *b;

	if (s->helo_kind == 0) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->env) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if ((err = smtp_cmd_parse_mail(cmd->arg, cmd->arglen, &m)) != NULL) {
		reject(s, "MAIL", err, NULL);
		return;
	}
	/* ESMTP parameters need EHLO (RFC 5321 4.1.1.2 and each
	 * extension's "MUST NOT be used unless advertised"). */
	if (s->helo_kind != SMTP_VERB_EHLO &&
	    (m.has_size || m.body || m.smtputf8 || m.requiretls || m.ret ||
	        m.has_envid || m.has_auth)) {
		reject(s, "MAIL", "555 5.5.4 Unsupported option", NULL);
		return;
	}
	if (m.has_size &&
	    m.size > (unsigned long long)s->sd->cfg->message_size_limit) {
		reject(s, "MAIL", "552 5.3.4 Message size exceeds fixed limit",
		    NULL);
		return;
	}
	if (m.requiretls && !s->tls) {
		reject(s, "MAIL",
		    "530 5.7.10 REQUIRETLS needs a TLS session (RFC 8689)",
		    NULL);
		return;
	}
	s->env = queue_env_new();
	/* The ID comes now, as in Postfix, so that the log lines of the
	 * whole transaction and the Received: header share it. */
	queue_new_id(s->env->qid);
	free(s->env->sender); /* queue_env_new() made it "" */
	s->env->sender = xstrdup(m.path);
	s->env->ret = m.ret == SMTP_RET_FULL   ? DSN_RET_FULL
	              : m.ret == SMTP_RET_HDRS ? DSN_RET_HDRS
	                                       : DSN_RET_UNSPEC;
	s->env->envid = m.has_envid ? xstrdup(m.envid) : NULL;
	if (m.body == SMTP_BODY_8BITMIME)
		s->env->flags |= QENV_8BITMIME;
	if (m.smtputf8)
		s->env->flags |= QENV_SMTPUTF8;
	if (m.requiretls)
		s->env->flags |= QENV_REQUIRETLS;
	s->env->client = xstrdup(s->client);
	s->env->helo = xstrdup(s->helo);
	b = buf_new(sizeof(s->sender_log));
	buf_put_printable(b, m.path, strlen(m.path));
	snprintf(s->sender_log, sizeof(s->sender_log), "%s", buf_data(b));
	buf_free(b);
	if (s->authenticated)
		log_info("%s: client=%s, sasl_method=%s, sasl_username=%s",
		    s->env->qid, s->client, s->sasl_method, s->sasl_user);
	else
		log_info("%s: client=%s", s->env->qid, s->client);
	smtpd_reply(s, "250 2.1.0 Ok");
}

static void
do_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	struct smtp_rcpt_args r;
	const char *err;
	char text[600];

	if (s->env == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	err = smtp_cmd_parse_rcpt(
	    cmd->arg, cmd->arglen, (s->env->flags & QENV_SMTPUTF8) != 0, &r);
	if (err) {
		reject(s, "RCPT", err, NULL);
		return;
	}
	if (s->helo_kind != SMTP_VERB_EHLO && (r.notify || r.has_orcpt)) {
		reject(s, "RCPT", "555 5.5.4 Unsupported option", r.path);
		return;
	}
	if (s->env->nrcpt >= (size_t)s->sd->cfg->smtpd_recipient_limit) {
		reject(
		    s, "RCPT", "452 4.5.3 Error: too many recipients", r.path);
		return;
	}
	/* There is no local delivery: every recipient is relayed, so only
	 * our own networks and authenticated clients may give one. */
	if (!relay_allowed(s)) {
		buf_t *b = buf_new(sizeof(text));

		buf_put_printable(b, r.path, strlen(r.path));
		snprintf(text, sizeof(text),
		    "554 5.7.1 <%s>: Relay access denied", buf_data(b));
		buf_free(b);
		reject(s, "RCPT", text, r.path);
		return;
	}
	queue_env_add_rcpt(
	    s->env, r.path, r.has_orcpt ? r.orcpt : NULL, r.notify);
	smtpd_reply(s, "250 2.1.5 Ok");
}

/* Builds the Received: header (RFC 5321 4.4, RFC 8314 4.3). */
static void
add_received(struct session *s)
{
	buf_t *b = s->content;
	char date[64];
	time_t now = (time_t)clock_now();
	struct tm tm;
	const char *proto;
	int utf8 = (s->env->flags & QENV_SMTPUTF8) != 0;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	/* RFC 3848 and RFC 6531 4.3 protocol names. */
	if (s->helo_kind == SMTP_VERB_HELO)
		proto = "SMTP";
	else if (utf8)
		proto = s->tls ? (s->authenticated ? "UTF8SMTPSA" : "UTF8SMTPS")
		               : (s->authenticated ? "UTF8SMTPA" : "UTF8SMTP");
	else
		proto = s->tls ? (s->authenticated ? "ESMTPSA" : "ESMTPS")
		               : (s->authenticated ? "ESMTPA" : "ESMTP");
	buf_printf(b, "Received: from %s (%s%s%s)\r\n", s->helo,
	    s->ss.ss_family == AF_INET6 ? "[IPv6:" : "[", s->addr, "]");
	if (s->tls) {
		buf_puts(b, "\t(using ");
		smtpd_tls_describe(s, b);
		buf_puts(b, ")\r\n");
	}
	buf_printf(b, "\tby %s (strictmta) with %s id %s", s->sd->hostname,
	    proto, s->env->qid);
	/* Only a single recipient is named, so that Bcc stays hidden. */
	if (s->env->nrcpt == 1)
		buf_printf(b, "\r\n\tfor <%s>", s->env->rcpts[0].address);
	buf_printf(b, "; %s\r\n", date);
}

static void
do_data(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t limit = (size_t)s->sd->cfg->message_size_limit;

	if (s->env == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (s->env->nrcpt == 0) {
		smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	/* RFC 2920 3.1: DATA ends a group; a client must wait for the 354.
	 * Bytes already here were sent before it: smuggling or a broken
	 * client. Unauthenticated clients are dropped, as Postfix's
	 * smtpd_forbid_unauth_pipelining does. */
	if (!s->authenticated && evbuffer_get_length(in) > 0) {
		buf_t *b = buf_new(256);
		size_t n = evbuffer_get_length(in);
		unsigned char *p = evbuffer_pullup(in, n > 100 ? 100 : n);

		buf_put_printable(b, p, n > 100 ? 100 : n);
		log_info("improper command pipelining after DATA from %s: %s",
		    s->client, buf_data(b));
		buf_free(b);
		reject(s, "DATA",
		    "554 5.5.0 Error: SMTP protocol synchronization", NULL);
		smtpd_sess_close(s);
		return;
	}
	s->content = buf_new(limit + RECEIVED_MAX);
	add_received(s);
	smtp_data_init(
	    &s->reader, limit, s->sd->cfg->smtpd_forbid_bare_newline);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtpd_enter_state(s, S_DATA);
}

static int
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 8689 5: "TLS-Required: No" in the header, unless REQUIRETLS. */
static int
has_tls_required_no(const char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *eol = memchr(p + i, '\n', len - i);
		size_t ll = eol ? (size_t)(eol - (p + i)) + 1 : len - i;

		if (ll <= 2) /* the empty line ends the header */
			return 0;
		if (ll > 13 && strncasecmp(p + i, "TLS-Required:", 13) == 0) {
			size_t a = i + 13, b = i + ll;

			/* Unfold: continuation lines belong to the value. */
			while (b < len && (p[b] == ' ' || p[b] == '\t')) {
				const char *e = memchr(p + b, '\n', len - b);

				b = e ? (size_t)(e - p) + 1 : len;
			}
			while (a < b && is_space(p[a]))
				a++;
			while (b > a && is_space(p[b - 1]))
				b--;
			return b - a == 2 && strncasecmp(p + a, "no", 2) == 0;
		}
		i += ll;
	}
	return 0;
}

static void
commit_done(void *arg, int err, const char *qid)
{
	struct session *s = arg;
	char text[128];

	s->ticket = 0;
	if (err == QUEUE_OK) {
		snprintf(text, sizeof(text), "250 2.0.0 Ok: queued as %s", qid);
		smtpd_reply(s, text);
		/* queue_put() logs "QID: from=<...>, size=N, nrcpt=N
		 * (queue active)". */
		s->sd->stats.messages++;
	} else if (err == QUEUE_ENOSPC) {
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
		log_warn("%s: queue file write error: no space", qid);
	} else {
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		log_warn("%s: queue file write error", qid);
	}
	transaction_reset(s);
	smtpd_enter_state(s, S_CMD);
	smtpd_set_read_timeout(s, 1);
	if (err == QUEUE_OK && s->sd->on_queued)
		s->sd->on_queued(s->sd->arg, qid);
	smtpd_resume_soon(s);
}

static void
data_finished(struct session *s)
{
	const char *err = smtp_data_error(&s->reader);
	struct queue_env *env;
	char *content;
	size_t len;

	if (err) {
		smtpd_enter_state(s, S_CMD);
		if (s->reader.bare_lf || s->reader.bare_cr)
			log_info("%s: bare <%s> received from %s", s->env->qid,
			    s->reader.bare_lf ? "LF" : "CR", s->client);
		reject(s, "END-OF-MESSAGE", err, NULL);
		transaction_reset(s);
		return;
	}
	if ((s->env->flags & QENV_REQUIRETLS) == 0 &&
	    has_tls_required_no(buf_data(s->content), buf_len(s->content)))
		s->env->flags |= QENV_TLS_OPTIONAL;
	env = s->env;
	s->env = NULL;
	content = buf_steal(s->content, &len);
	env->size = len;
	env->arrival = clock_now();
	/* Keep a copy for the log line and the reply. */
	s->env = queue_env_dup(env);
	smtpd_enter_state(s, S_COMMIT);
	/* The client waits for our answer; its silence is no timeout. */
	smtpd_set_read_timeout(s, 0);
	s->ticket =
	    qcommit_submit(s->sd->commit, env, content, len, commit_done, s);
}

static void
feed_data(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec vec[16];
	int n, i;
	size_t used = 0;

	n = evbuffer_peek(in, -1, NULL, vec, 16);
	if (n > 16)
		n = 16;
	for (i = 0; i < n && !smtp_data_done(&s->reader); i++) {
		size_t u = smtp_data_feed(
		    &s->reader, vec[i].iov_base, vec[i].iov_len, s->content);

		used += u;
	}
	evbuffer_drain(in, used);
	if (smtp_data_done(&s->reader))
		data_finished(s);
}

static void
do_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *err = smtp_cmd_parse(line, len, &cmd);

	s->verb = cmd.verb;
	s->verb_counted = 0;
	s->cnt_all[cmd.verb]++;
	smtpd_set_last_cmd(s, smtp_verb_name(cmd.verb));
	if (err) {
		smtpd_reply(s, err);
		return;
	}
	switch (cmd.verb) {
	case SMTP_VERB_EHLO:
	case SMTP_VERB_HELO:
		do_helo(s, &cmd);
		break;
	case SMTP_VERB_MAIL:
		do_mail(s, &cmd);
		break;
	case SMTP_VERB_RCPT:
		do_rcpt(s, &cmd);
		break;
	case SMTP_VERB_DATA:
		do_data(s);
		break;
	case SMTP_VERB_RSET:
		transaction_reset(s);
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_NOOP:
		smtpd_reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_QUIT:
		smtpd_reply(s, "221 2.0.0 Bye");
		smtpd_sess_close(s);
		break;
	case SMTP_VERB_VRFY:
		/* RFC 5321 3.5.3: 252 when we will not say. */
		smtpd_reply(s,
		    "252 2.1.5 Cannot VRFY user; try RCPT to attempt "
		    "delivery");
		break;
	case SMTP_VERB_HELP:
		smtpd_reply(s,
		    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET "
		    "NOOP QUIT VRFY HELP STARTTLS AUTH");
		break;
	case SMTP_VERB_STARTTLS:
		smtpd_tls_starttls(s);
		break;
	case SMTP_VERB_AUTH:
		smtpd_sasl_auth(s, &cmd);
		break;
	default:
		smtpd_reply(s, "502 5.5.2 Error: command not recognized");
		break;
	}
}

/* smtpd_hard_error_limit: checked after every line, so that failed AUTH
 * responses and bad data count as much as bad commands. */
static void
check_error_limit(struct session *s)
{
	if (s->state != S_CLOSING && s->state != S_COMMIT &&
	    s->errors >= (unsigned)s->sd->cfg->smtpd_hard_error_limit) {
		log_info(
		    "too many errors after %s from %s", s->last_cmd, s->client);
		smtpd_replyf(
		    s, "421 4.7.0 %s Error: too many errors", s->sd->hostname);
		smtpd_sess_close(s);
	}
}

static void
session_process(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	unsigned lines = 0;

	while (lines < LINES_PER_TURN) {
		size_t avail = evbuffer_get_length(in), max, n, linelen, used;
		enum smtp_line_status st;
		unsigned char *p;

		if (s->state == S_CLOSING || s->state == S_COMMIT ||
		    s->state == S_AUTH_CHECK || avail == 0)
			return;
		if (s->state == S_DATA) {
			feed_data(s);
			check_error_limit(s);
			continue;
		}
		if (s->discard_line) {
			struct evbuffer_ptr lf =
			    evbuffer_search(in, "\n", 1, NULL);

			if (lf.pos < 0) {
				evbuffer_drain(in, avail);
				return;
			}
			evbuffer_drain(in, (size_t)lf.pos + 1);
			s->discard_line = 0;
			s->verb = SMTP_VERB_UNKNOWN;
			s->verb_counted = 0;
			s->cnt_all[SMTP_VERB_UNKNOWN]++;
			smtpd_reply(s, "500 5.5.2 Error: line too long");
			check_error_limit(s);
			lines++;
			continue;
		}
		/* AUTH lines and SASL responses may be longer (RFC 4954 4). */
		max = SMTP_LINE_MAX;
		p = evbuffer_pullup(in, avail < 5 ? avail : 5);
		if (s->state != S_CMD ||
		    (avail >= 5 && strncasecmp((char *)p, "AUTH ", 5) == 0))
			max = SMTP_AUTH_LINE_MAX;
		n = avail < max ? avail : max;
		p = evbuffer_pullup(in, n);
		st = smtp_line_find((char *)p, n, max, &linelen, &used);
		if (st == SMTP_LINE_PARTIAL)
			return;
		lines++;
		if (st == SMTP_LINE_TOOLONG) {
			s->discard_line = 1;
			continue;
		}
		memcpy(s->line, p, linelen);
		s->line[linelen] = '\0';
		evbuffer_drain(in, used);
		if (st == SMTP_LINE_BARE_LF) {
			/* Postfix's smtpd_forbid_bare_newline=reject for
			 * commands: a bare LF is no line end of ours. */
			s->verb = SMTP_VERB_UNKNOWN;
			s->verb_counted = 0;
			s->cnt_all[SMTP_VERB_UNKNOWN]++;
			smtpd_reply(s, "500 5.5.2 Error: bare <LF> received");
			check_error_limit(s);
			continue;
		}
		if (s->state != S_CMD)
			smtpd_sasl_line(s, s->line, linelen);
		else
			do_command(s, s->line, linelen);
		explicit_bzero(s->line, linelen);
		check_error_limit(s);
	}
	smtpd_resume_soon(s); /* more to do: after the other sessions */
}

/* ---- session life ---- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_process(arg);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_process(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	const char *after = s->last_cmd;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		buf_t *b = buf_new(256);

		smtpd_tls_describe(s, b);
		log_info("Anonymous TLS connection established from %s: %s",
		    s->client, buf_data(b));
		buf_free(b);
		s->handshaking = 0;
		smtpd_sess_phase_timeout(
		    s, s->helo_kind ? 0
		                    : (unsigned)s->sd->cfg->smtpd_helo_timeout);
		return;
	}
	if (s->state == S_CLOSING) {
		smtpd_sess_free(s);
		return;
	}
	if (s->state == S_DATA)
		after = "DATA";
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("timeout after %s from %s", after, s->client);
		smtpd_replyf(
		    s, "421 4.4.2 %s Error: timeout exceeded", s->sd->hostname);
		smtpd_sess_close(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		if (s->tls)
			smtpd_tls_log_errors(s, after);
		else
			log_info("lost connection after %s from %s: %s", after,
			    s->client, strerror(EVUTIL_SOCKET_ERROR()));
	} else {
		log_info("lost connection after %s from %s", after, s->client);
	}
	smtpd_sess_free(s);
}

void
smtpd_sess_setup_bev(struct session *s)
{
	bufferevent_setcb(s->bev, read_cb, NULL, event_cb, s);
	/* The watermark only throttles reading; lengths are checked by
	 * the parsers. */
	bufferevent_setwatermark(s->bev, EV_READ, 0, 256 * 1024);
	smtpd_set_read_timeout(s, s->state != S_COMMIT);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (s->tls)
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
}

static int
flushed(struct session *s)
{
	struct bufferevent *under = bufferevent_get_underlying(s->bev);

	if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
		return 0;
	return under == NULL ||
	       evbuffer_get_length(bufferevent_get_output(under)) == 0;
}

static void
close_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct timeval tv = {0, CLOSE_POLL_USEC};

	(void)fd;
	(void)what;
	if (flushed(s)) {
		SSL *ssl = smtpd_tls_ssl(s);

		/* RFC 8446 6.1: end TLS with close_notify before closing,
		 * so that clients can tell the end from a truncation. */
		if (ssl != NULL && !s->tls_closed) {
			s->tls_closed = 1;
			SSL_shutdown(ssl);
			ERR_clear_error();
			if (!flushed(s) && s->close_polls < CLOSE_POLL_MAX) {
				evtimer_add(s->close_ev, &tv);
				return;
			}
		}
		smtpd_sess_free(s);
		return;
	}
	if (++s->close_polls > CLOSE_POLL_MAX) {
		smtpd_sess_free(s);
		return;
	}
	evtimer_add(s->close_ev, &tv);
}

void
smtpd_sess_close(struct session *s)
{
	struct timeval tv = {0, 0};

	if (s->state == S_CLOSING)
		return;
	smtpd_enter_state(s, S_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	evtimer_add(s->close_ev, &tv);
}

void
smtpd_sess_free(struct session *s)
{
	struct smtpd *sd = s->sd;
	buf_t *b;
	unsigned total = 0, ok = 0;
	int v;

	if (s->ticket)
		qcommit_cancel(sd->commit, s->ticket);
	b = buf_new(1024);
	buf_printf(b, "disconnect from %s", s->client);
	for (v = 0; v < SMTP_VERB_COUNT; v++) {
		if (s->cnt_all[v] == 0)
			continue;
		total += s->cnt_all[v];
		ok += s->cnt_ok[v];
		if (s->cnt_ok[v] == s->cnt_all[v])
			buf_printf(
			    b, " %s=%u", smtp_verb_name(v), s->cnt_all[v]);
		else
			buf_printf(b, " %s=%u/%u", smtp_verb_name(v),
			    s->cnt_ok[v], s->cnt_all[v]);
	}
	if (ok == total)
		buf_printf(b, " commands=%u", total);
	else
		buf_printf(b, " commands=%u/%u", ok, total);
	log_info("%s", buf_data(b));
	buf_free(b);
	transaction_reset(s);
	smtpd_sasl_cancel(s);
	smtpd_listen_release(s);
	bufferevent_free(s->bev);
	event_free(s->resume_ev);
	event_free(s->close_ev);
	event_free(s->phase_ev);
	event_free(s->deadline_ev);
	if (s->prev)
		s->prev->next = s->next;
	else
		sd->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	sd->stats.active--;
	free(s);
}

/* The TLS handshake or the EHLO took too long. */
static void
phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	if (s->state == S_CLOSING)
		return;
	if (s->handshaking) {
		/* Nothing can be said in clear inside a handshake. */
		log_info("timeout in TLS handshake from %s "
		         "(smtpd_tls_handshake_timeout)",
		    s->client);
		smtpd_sess_free(s);
		return;
	}
	log_info("timeout before EHLO from %s (smtpd_helo_timeout)", s->client);
	smtpd_replyf(
	    s, "421 4.4.2 %s Error: timeout exceeded", s->sd->hostname);
	smtpd_sess_close(s);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	struct timeval again = {1, 0};

	(void)fd;
	(void)what;
	if (s->state == S_CLOSING)
		return;
	/* A message at the final dot is answered first: the client must
	 * learn whether we took it. The commit ends in bounded time. */
	if (s->state == S_COMMIT) {
		evtimer_add(s->deadline_ev, &again);
		return;
	}
	log_info("session time limit reached after %s from %s "
	         "(smtpd_session_time_limit)",
	    s->state == S_DATA ? "DATA" : s->last_cmd, s->client);
	if (s->handshaking) {
		smtpd_sess_free(s);
		return;
	}
	smtpd_replyf(s, "421 4.4.2 %s Error: session time limit exceeded",
	    s->sd->hostname);
	smtpd_sess_close(s);
}

void
smtpd_sess_phase_timeout(struct session *s, unsigned secs)
{
	struct timeval tv = {(time_t)secs, 0};

	if (secs == 0)
		evtimer_del(s->phase_ev);
	else
		evtimer_add(s->phase_ev, &tv);
}

void
smtpd_sess_new(struct smtpd *sd, int fd, const struct sockaddr *sa,
    socklen_t salen, int implicit_tls, const char *addr, const char *client,
    const struct smtpd_client_key *key, int in_mynetworks)
{
	struct session *s;
	struct timeval deadline = {0, 0};

	s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	memcpy(&s->ss, sa,
	    (size_t)salen < sizeof(s->ss) ? (size_t)salen : sizeof(s->ss));
	snprintf(s->addr, sizeof(s->addr), "%s", addr);
	snprintf(s->client, sizeof(s->client), "%s", client);
	s->key = *key;
	s->in_mynetworks = in_mynetworks;
	s->state = S_CMD;
	smtpd_set_last_cmd(s, "CONNECT");
	evutil_make_socket_closeonexec(fd);
	if (implicit_tls) {
		SSL *ssl = SSL_new(sd->ssl_ctx);

		if (ssl == NULL) {
			log_warn("%s: SSL_new failed", client);
			close(fd);
			free(s);
			return;
		}
		s->bev = bufferevent_openssl_socket_new(sd->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		s->tls = 1;
	} else {
		s->bev = bufferevent_socket_new(sd->base, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	if (s->bev == NULL) {
		log_warn("%s: cannot create a bufferevent", client);
		close(fd);
		free(s);
		return;
	}
	s->resume_ev = event_new(sd->base, -1, 0, resume_cb, s);
	s->close_ev = evtimer_new(sd->base, close_cb, s);
	s->phase_ev = evtimer_new(sd->base, phase_cb, s);
	s->deadline_ev = evtimer_new(sd->base, deadline_cb, s);
	if (!in_mynetworks) {
		s->in_general_pool = 1;
		sd->general_active++;
	}
	s->next = sd->sessions;
	if (sd->sessions)
		sd->sessions->prev = s;
	sd->sessions = s;
	sd->stats.active++;
	smtpd_sess_setup_bev(s);
	deadline.tv_sec = (time_t)sd->cfg->smtpd_session_time_limit;
	evtimer_add(s->deadline_ev, &deadline);
	s->handshaking = implicit_tls;
	smtpd_sess_phase_timeout(
	    s, (unsigned)(implicit_tls ? sd->cfg->smtpd_tls_handshake_timeout
	                               : sd->cfg->smtpd_helo_timeout));
	s->verb_counted = 1; /* the greeting answers no command */
	smtpd_replyf(s, "220 %s", sd->banner);
}

/* ---- public API ---- */

smtpd_t *
smtpd_new(const struct smtpd_params *p, buf_t *err)
{
	struct smtpd *sd = xcalloc(1, sizeof(*sd));
	const struct config *cfg = p->cfg;

	sd->base = p->base;
	sd->cfg = cfg;
	sd->commit = p->commit;
	sd->on_queued = p->on_queued;
	sd->arg = p->arg;
	if (cfg->myhostname && cfg->myhostname[0])
		snprintf(
		    sd->hostname, sizeof(sd->hostname), "%s", cfg->myhostname);
	else if (gethostname(sd->hostname, sizeof(sd->hostname) - 1) < 0)
		snprintf(sd->hostname, sizeof(sd->hostname), "localhost");
	/* With myhostname empty, "$myhostname ESMTP" expands to " ESMTP". */
	if (cfg->smtpd_banner == NULL || cfg->smtpd_banner[0] == '\0' ||
	    cfg->smtpd_banner[0] == ' ')
		snprintf(sd->banner, sizeof(sd->banner), "%s%s", sd->hostname,
		    cfg->smtpd_banner ? cfg->smtpd_banner : "");
	else
		snprintf(
		    sd->banner, sizeof(sd->banner), "%s", cfg->smtpd_banner);
	if (smtpd_netlist_parse(cfg->mynetworks, &sd->mynetworks, err) < 0)
		goto fail;
	if (cfg->smtpd_tls_cert_file && cfg->smtpd_tls_cert_file[0]) {
		if ((sd->ssl_ctx = smtpd_tls_ctx_new(cfg, err)) == NULL)
			goto fail;
	}
	if (cfg->smtpd_sasl_password_file && cfg->smtpd_sasl_password_file[0]) {
		sd->passwd =
		    smtpd_passwd_load(cfg->smtpd_sasl_password_file, err);
		if (sd->passwd == NULL)
			goto fail;
	}
	if (cfg->smtpd_sasl_auth_enable && smtpd_passwd_count(sd->passwd) == 0)
		log_warn("smtpd_sasl_auth_enable = yes but "
		         "smtpd_sasl_password_file has no users: AUTH is off");
	if (cfg->smtpd_sasl_auth_enable && sd->ssl_ctx == NULL)
		log_warn("smtpd_sasl_auth_enable = yes but no TLS certificate: "
		         "AUTH is never offered");
	if (smtpd_sasl_start(sd, err) < 0)
		goto fail;
	return sd;
fail:
	smtpd_free(sd);
	return NULL;
}

void
smtpd_set_commit(smtpd_t *sd, qcommit_t *commit)
{
	if (sd->commit != NULL || commit == NULL)
		abort();
	sd->commit = commit;
}

void
smtpd_free(smtpd_t *sd)
{
	unsigned guard = 0;

	if (sd == NULL)
		return;
	smtpd_stop_accepting(sd);
	while (sd->sessions && guard++ < 1000000)
		smtpd_sess_free(sd->sessions);
	/* After the sessions, which cancel their checks; before the
	 * password table, which the workers read. */
	smtpd_sasl_stop(sd);
	SSL_CTX_free(sd->ssl_ctx);
	smtpd_passwd_free(sd->passwd);
	smtpd_netlist_free(&sd->mynetworks);
	free(sd);
}

void
smtpd_get_stats(smtpd_t *sd, struct smtpd_stats *st)
{
	*st = sd->stats;
}
