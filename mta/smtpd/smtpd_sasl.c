/*
 * smtpd_sasl - AUTH PLAIN and LOGIN (RFC 4954, RFC 4616) for the listener;
 * see smtpd_sess.h.
 *
 * A password check costs tens of milliseconds of CPU (yescrypt), so it
 * runs on a worker thread (workq) and the session waits in S_AUTH_CHECK,
 * reading nothing. A failure is answered only after a delay that grows
 * with the session's failures, and lines pipelined behind it wait for a
 * later turn. Failures are counted per client (address, or IPv6 network)
 * and per user name over smtpd_auth_failure_window: a client over its
 * limit is disconnected with 421 and refused AUTH until the window ends;
 * a user name over its limit gets 454 without a check, so that guessing
 * one account from many addresses gets nowhere either.
 *
 * The worker sees a copy of the name and password and the password
 * table, which nobody changes while the listener runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "smtpd_sess.h"

/* Checks waiting or running at once, all sessions together. */
#define SASL_QUEUE_MAX 64
/* Slots of each failure table (clients, user names). */
#define SASL_RATE_SLOTS 4096
/* The delay grows to this many times smtpd_sasl_failure_delay. */
#define SASL_DELAY_STEPS_MAX 10

#define REPLY_FAILED "535 5.7.8 Error: authentication failed"
#define REPLY_TEMPFAIL "454 4.7.0 Temporary authentication failure"

struct sasl_check {
	struct session *s; /* NULL once the session has gone */
	const smtpd_passwd_t *pw;
	char user[256];
	char pass[512];
	int ok;
	workq_job_t *job;
};

int
smtpd_sasl_start(struct smtpd *sd, buf_t *err)
{
	const struct config *cfg = sd->cfg;

	if (!cfg->smtpd_sasl_auth_enable || smtpd_passwd_count(sd->passwd) == 0)
		return 0;
	sd->authq = workq_new(sd->base, (unsigned)cfg->smtpd_sasl_check_threads,
	    SASL_QUEUE_MAX, err);
	if (sd->authq == NULL)
		return -1;
	sd->auth_fail_client = smtpd_rate_new(
	    SASL_RATE_SLOTS, (unsigned)cfg->smtpd_auth_failure_window);
	sd->auth_fail_user = smtpd_rate_new(
	    SASL_RATE_SLOTS, (unsigned)cfg->smtpd_auth_failure_window);
	return 0;
}

void
smtpd_sasl_stop(struct smtpd *sd)
{
	workq_free(sd->authq);
	sd->authq = NULL;
	smtpd_rate_free(sd->auth_fail_client);
	smtpd_rate_free(sd->auth_fail_user);
	sd->auth_fail_client = sd->auth_fail_user = NULL;
}

int
smtpd_sasl_offered(const struct session *s)
{
	return s->tls && s->sd->authq != NULL;
}

void
smtpd_sasl_cancel(struct session *s)
{
	if (s->auth_check) {
		s->auth_check->s = NULL;
		workq_cancel(s->auth_check->job);
		s->auth_check = NULL;
	}
	if (s->auth_delay_ev) {
		event_free(s->auth_delay_ev);
		s->auth_delay_ev = NULL;
	}
}

static int
client_over_limit(struct session *s)
{
	return smtpd_rate_get(s->sd->auth_fail_client, &s->key, sizeof(s->key),
	           clock_now()) >=
	       (unsigned)s->sd->cfg->smtpd_client_auth_failure_limit;
}

static void
refuse_client(struct session *s)
{
	char net[INET6_ADDRSTRLEN + 8];

	smtpd_client_key_format(&s->key,
	    (unsigned)s->sd->cfg->smtpd_client_ipv6_prefix_length, net,
	    sizeof(net));
	log_warn("%s: too many failed authentications from %s "
	         "(smtpd_client_auth_failure_limit)",
	    s->client, net);
	smtpd_replyf(s, "421 4.7.0 %s Error: too many failed authentications",
	    s->sd->hostname);
	smtpd_sess_close(s);
}

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	/* A deadline may have closed the session meanwhile. */
	if (s->state != S_AUTH_CHECK)
		return;
	if (client_over_limit(s)) {
		refuse_client(s);
		return;
	}
	smtpd_reply(s, s->auth_reply);
	smtpd_enter_state(s, S_CMD);
	smtpd_set_read_timeout(s, 1);
	smtpd_resume_soon(s);
}

/* A failed attempt (user NULL when the response named nobody): counted,
 * logged, and answered with text after the session's delay. */
static void
auth_failed(struct session *s, const char *user, const char *text)
{
	const struct config *cfg = s->sd->cfg;
	int64_t now = clock_now();
	unsigned steps, from_client;
	struct timeval tv;

	s->auth_failures++;
	from_client = smtpd_rate_add(
	    s->sd->auth_fail_client, &s->key, sizeof(s->key), now);
	if (user != NULL)
		(void)smtpd_rate_add(
		    s->sd->auth_fail_user, user, strlen(user), now);
	log_warn("%s: SASL %s authentication failed (%u in this session, "
	         "%u of %lld from this client)",
	    s->client, s->sasl_method, s->auth_failures, from_client,
	    cfg->smtpd_client_auth_failure_limit);
	steps = s->auth_failures < SASL_DELAY_STEPS_MAX ? s->auth_failures
	                                                : SASL_DELAY_STEPS_MAX;
	tv.tv_sec = (time_t)(steps * (unsigned)cfg->smtpd_sasl_failure_delay);
	tv.tv_usec = 0;
	s->auth_reply = text;
	smtpd_enter_state(s, S_AUTH_CHECK);
	smtpd_set_read_timeout(s, 0);
	if (s->auth_delay_ev == NULL)
		s->auth_delay_ev = evtimer_new(s->sd->base, delay_cb, s);
	evtimer_add(s->auth_delay_ev, &tv);
}

static void
auth_succeeded(struct session *s, const char *user)
{
	s->authenticated = 1;
	snprintf(s->sasl_user, sizeof(s->sasl_user), "%s", user);
	smtpd_listen_promote(s);
	smtpd_enter_state(s, S_CMD);
	smtpd_reply(s, "235 2.7.0 Authentication successful");
	log_info("%s: sasl_method=%s, sasl_username=%s", s->client,
	    s->sasl_method, s->sasl_user);
	smtpd_set_read_timeout(s, 1);
	smtpd_resume_soon(s);
}

static void
check_work(void *arg)
{
	struct sasl_check *c = arg;

	c->ok = smtpd_passwd_check(c->pw, c->user, c->pass);
	explicit_bzero(c->pass, sizeof(c->pass));
}

static void
check_done(void *arg, int cancelled)
{
	struct sasl_check *c = arg;
	struct session *s = c->s;

	if (!cancelled && s != NULL) {
		s->auth_check = NULL;
		/* A deadline may have closed the session meanwhile: then
		 * there is nobody to tell. */
		if (s->state == S_AUTH_CHECK && c->ok)
			auth_succeeded(s, c->user);
		else if (s->state == S_AUTH_CHECK)
			auth_failed(s, c->user, REPLY_FAILED);
	}
	explicit_bzero(c, sizeof(*c));
	free(c);
}

/* Starts the check of user and pass; the reply comes from check_done. */
static void
auth_finish(struct session *s, const char *user, const char *pass)
{
	struct sasl_check *c;
	const char *p;
	int printable = user[0] != '\0';

	/* The name goes into logs and the password file has no control
	 * characters: refuse them before looking. */
	for (p = user; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ':')
			printable = 0;
	if (!printable || strlen(user) >= sizeof(c->user) ||
	    strlen(pass) >= sizeof(c->pass)) {
		auth_failed(s, NULL, REPLY_FAILED);
		return;
	}
	if (smtpd_rate_get(
	        s->sd->auth_fail_user, user, strlen(user), clock_now()) >=
	    (unsigned)s->sd->cfg->smtpd_sasl_user_failure_limit) {
		log_warn("%s: SASL %s: user name over "
		         "smtpd_sasl_user_failure_limit: not checked",
		    s->client, s->sasl_method);
		auth_failed(s, user, REPLY_TEMPFAIL);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->s = s;
	c->pw = s->sd->passwd;
	memcpy(c->user, user, strlen(user) + 1);
	memcpy(c->pass, pass, strlen(pass) + 1);
	c->job = workq_submit(s->sd->authq, check_work, check_done, c);
	if (c->job == NULL) {
		explicit_bzero(c, sizeof(*c));
		free(c);
		log_warn("%s: SASL %s: too many password checks waiting",
		    s->client, s->sasl_method);
		auth_failed(s, NULL, REPLY_TEMPFAIL);
		return;
	}
	s->auth_check = c;
	smtpd_enter_state(s, S_AUTH_CHECK);
	smtpd_set_read_timeout(s, 0);
}

static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	unsigned char msg[1024];
	char user[256], pass[512];
	long n = smtpd_b64_decode(b64, len, msg, sizeof(msg));

	if (n < 0) {
		smtpd_enter_state(s, S_CMD);
		smtpd_reply(s, "501 5.5.2 Cannot decode response");
		return;
	}
	if (smtpd_sasl_plain(
	        msg, (size_t)n, user, sizeof(user), pass, sizeof(pass)) < 0) {
		explicit_bzero(msg, sizeof(msg));
		auth_failed(s, NULL, REPLY_FAILED);
		return;
	}
	auth_finish(s, user, pass);
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(msg, sizeof(msg));
}

void
smtpd_sasl_line(struct session *s, const char *line, size_t len)
{
	unsigned char dec[512];
	long n;

	if (len == 1 && line[0] == '*') {
		smtpd_enter_state(s, S_CMD);
		smtpd_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	if (s->state == S_AUTH_PLAIN) {
		auth_plain(s, line, len);
		return;
	}
	n = smtpd_b64_decode(line, len, dec, sizeof(dec) - 1);
	if (n < 0 || memchr(dec, '\0', (size_t)n) != NULL) {
		smtpd_enter_state(s, S_CMD);
		smtpd_reply(s, "501 5.5.2 Cannot decode response");
		return;
	}
	dec[n] = '\0';
	if (s->state == S_AUTH_USER) {
		snprintf(
		    s->login_user, sizeof(s->login_user), "%s", (char *)dec);
		smtpd_reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		smtpd_enter_state(s, S_AUTH_PASS);
		return;
	}
	auth_finish(s, s->login_user, (char *)dec);
	explicit_bzero(dec, sizeof(dec));
}

void
smtpd_sasl_auth(struct session *s, const struct smtp_cmd *cmd)
{
	const char *sp = memchr(cmd->arg, ' ', cmd->arglen);
	size_t mlen = sp ? (size_t)(sp - cmd->arg) : cmd->arglen;
	const char *init = sp ? sp + 1 : NULL;
	size_t ilen = sp ? cmd->arglen - mlen - 1 : 0;

	/* RFC 8314 / RFC 4954 4: credentials never travel in clear. */
	if (!s->tls) {
		smtpd_reply(s, "538 5.7.11 Encryption required for requested "
		               "authentication mechanism");
		return;
	}
	if (!smtpd_sasl_offered(s)) {
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (s->helo_kind != SMTP_VERB_EHLO) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->authenticated) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->env) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (client_over_limit(s)) {
		refuse_client(s);
		return;
	}
	if (mlen == 5 && strncasecmp(cmd->arg, "PLAIN", 5) == 0) {
		snprintf(s->sasl_method, sizeof(s->sasl_method), "PLAIN");
		if (init) {
			auth_plain(s, init, ilen);
		} else {
			smtpd_reply(s, "334 ");
			smtpd_enter_state(s, S_AUTH_PLAIN);
		}
	} else if (mlen == 5 && strncasecmp(cmd->arg, "LOGIN", 5) == 0) {
		snprintf(s->sasl_method, sizeof(s->sasl_method), "LOGIN");
		smtpd_enter_state(s, S_AUTH_USER);
		if (init) {
			smtpd_sasl_line(s, init, ilen);
		} else {
			smtpd_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
		}
	} else {
		smtpd_reply(s, "504 5.5.4 Unrecognized authentication type");
	}
}
