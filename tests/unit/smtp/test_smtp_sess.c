/*
 * test_smtp_sess - the client session against a scripted server on the
 * same event loop (127.26.0.1, ephemeral port): PIPELINING, DSN
 * parameters, per-recipient results, dot-stuffing, RSET on reuse,
 * HELO fallback, SIZE and SMTPUTF8 refusals, TLS required but not
 * offered, connection refused.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "check.h"
#include "fake_smtp.h"
#include "mta/smtp/smtp.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "queue/queue.h"

static struct fake_smtp srv;
static struct event_base *base;

/* The client side. */
static enum smtp_event last_ev;
static int nevents;

static void
client_cb(void *arg, smtp_sess_t *s, enum smtp_event ev)
{
	(void)arg;
	(void)s;
	last_ev = ev;
	nevents++;
	event_base_loopbreak(base);
}

static int closed_runs;

static void
note_closed(void *arg)
{
	(*(int *)arg)++;
}

static int
wait_event(void)
{
	int before = nevents, i;

	for (i = 0; i < 100 && nevents == before; i++)
		event_base_loop(base, EVLOOP_ONCE);
	return nevents > before ? (int)last_ev : -1;
}

static struct sockaddr_in sin_srv;
static struct config *cfg;

static smtp_sess_t *
connect_to(enum tls_level level)
{
	struct smtp_sess_opts o;

	memset(&o, 0, sizeof(o));
	o.helo_name = "client.example";
	o.host = "test.example";
	o.level = level;
	return smtp_sess_new(base, cfg, &o, (struct sockaddr *)&sin_srv,
	    sizeof(sin_srv), client_cb, NULL);
}

static void
test_pipelined_transaction(void)
{
	smtp_sess_t *s;
	struct smtp_msg_rcpt r[3] = {
	    {.address = "ok@dest.example",
	        .notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
	        .orcpt = "rfc822;ok@dest.example"},
	    {.address = "reject@dest.example"},
	    {.address = "temp@dest.example", .notify = DSN_NOTIFY_NEVER},
	};
	const char *content = "Subject: t\r\n\r\n.leading dot\r\nbare\nlf\r\n";
	struct smtp_msg m = {.qid = "Q1",
	    .sender = "a@src.example",
	    .envid = "E 1",
	    .ret = DSN_RET_HDRS,
	    .content = content,
	    .len = strlen(content),
	    .rcpts = r,
	    .nrcpt = 3};

	srv.ehlo = "250-test.example\r\n250-PIPELINING\r\n250-SIZE 100000\r\n"
	           "250-DSN\r\n250 8BITMIME\r\n";
	buf_reset(srv.transcript);
	s = connect_to(TLS_LEV_MAY);
	CHECK_INT(wait_event(), SMTP_EV_READY);
	CHECK(smtp_sess_ehlo(s)->ext & SMTP_EXT_PIPELINING);
	CHECK_INT(smtp_sess_ehlo(s)->size, 100000);
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK_INT(r[0].code, 250);
	CHECK_STR(r[0].status, "2.0.0");
	CHECK_STR(r[0].reply, "250 2.0.0 Ok: queued as X1");
	CHECK_INT(r[1].code, 550);
	CHECK_STR(r[1].status, "5.1.1");
	CHECK_INT(r[2].code, 451);
	CHECK_STR(r[2].status, "4.2.0");
	CHECK_STR(buf_data(srv.transcript),
	    "EHLO client.example\n"
	    "MAIL FROM:<a@src.example> SIZE=37 RET=HDRS ENVID=E+201\n"
	    "RCPT TO:<ok@dest.example> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;ok@dest.example\n"
	    "RCPT TO:<reject@dest.example>\n"
	    "RCPT TO:<temp@dest.example> NOTIFY=NEVER\n"
	    "DATA\n");
	CHECK_STR(buf_data(srv.data),
	    "Subject: t\r\n\r\n..leading dot\r\nbare\r\nlf\r\n");

	/* Second message on the same session: RSET first. */
	buf_reset(srv.transcript);
	r[1].address = "ok2@dest.example";
	r[2].address = "ok3@dest.example";
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK_INT(r[1].code, 250);
	CHECK_INT(r[2].code, 250);
	CHECK(strncmp(buf_data(srv.transcript), "RSET\nMAIL FROM:", 15) == 0);
	CHECK_INT(smtp_sess_ntrans(s), 2);

	/* SMTPUTF8 needed, not offered: refused before MAIL, 5.6.7. */
	buf_reset(srv.transcript);
	m.flags = QENV_SMTPUTF8;
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK_INT(r[0].code, 554);
	CHECK_STR(r[0].status, "5.6.7");
	CHECK_STR(buf_data(srv.transcript), "");

	/* 8BITMIME declared and offered: BODY=8BITMIME. */
	m.flags = QENV_8BITMIME;
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK(strstr(buf_data(srv.transcript), " BODY=8BITMIME") != NULL);
	m.flags = 0;

	/* Over the announced SIZE: 5.3.4, nothing sent. */
	buf_reset(srv.transcript);
	m.len = 200000;
	m.content = calloc(1, m.len);
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK_STR(r[0].status, "5.3.4");
	CHECK_STR(buf_data(srv.transcript), "");
	free((char *)m.content);
	closed_runs = 0;
	CHECK_INT(smtp_sess_close(s, note_closed, &closed_runs), 1);
	/* The QUIT goes out, the session frees itself and says so. */
	for (int i = 0; i < 100 && closed_runs == 0; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(closed_runs, 1);
}

static void
test_helo_fallback_and_no_pipelining(void)
{
	smtp_sess_t *s;
	struct smtp_msg_rcpt r[2] = {{.address = "reject@d.example"},
	    {.address = "ok@d.example", .notify = DSN_NOTIFY_FAILURE}};
	const char *content = "Subject: x\r\n\r\nhi\r\n";
	struct smtp_msg m = {.qid = "Q2",
	    .sender = "",
	    .content = content,
	    .len = strlen(content),
	    .rcpts = r,
	    .nrcpt = 2,
	    .flags = QENV_8BITMIME};

	srv.ehlo = NULL;
	buf_reset(srv.transcript);
	s = connect_to(TLS_LEV_MAY);
	CHECK_INT(wait_event(), SMTP_EV_READY);
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	/* No DSN, no SIZE, no BODY (7-bit content) with HELO. */
	CHECK_STR(buf_data(srv.transcript),
	    "EHLO client.example\nHELO client.example\nMAIL FROM:<>\n"
	    "RCPT TO:<reject@d.example>\nRCPT TO:<ok@d.example>\nDATA\n");
	CHECK_INT(r[0].code, 550);
	CHECK_INT(r[1].code, 250);
	/* 8-bit content flagged 8BITMIME to a server without it: 5.6.3. */
	m.content = "Subject: x\r\n\r\n\xc3\xa9t\xc3\xa9\r\n";
	m.len = strlen(m.content);
	smtp_sess_send(s, &m);
	CHECK_INT(wait_event(), SMTP_EV_DONE);
	CHECK_STR(r[1].status, "5.6.3");
	smtp_sess_free(s);
}

static void
test_tls_required(void)
{
	smtp_sess_t *s;

	srv.ehlo = "250-test.example\r\n250 PIPELINING\r\n";
	s = connect_to(TLS_LEV_ENCRYPT);
	CHECK_INT(wait_event(), SMTP_EV_FAIL);
	CHECK_INT(smtp_sess_failure(s)->stage, SMTP_FAIL_POLICY);
	CHECK_STR(smtp_sess_failure(s)->status, "4.7.4");
	smtp_sess_free(s);
}

static void
test_refused(void)
{
	smtp_sess_t *s;
	struct sockaddr_in sa = sin_srv;
	struct smtp_sess_opts o;

	sa.sin_port = htons(1); /* nothing listens on port 1 */
	memset(&o, 0, sizeof(o));
	o.helo_name = "c";
	o.host = "nowhere.example";
	s = smtp_sess_new(
	    base, cfg, &o, (struct sockaddr *)&sa, sizeof(sa), client_cb, NULL);
	CHECK_INT(wait_event(), SMTP_EV_FAIL);
	CHECK_INT(smtp_sess_failure(s)->stage, SMTP_FAIL_CONNECT);
	CHECK_STR(smtp_sess_failure(s)->status, "4.4.1");
	CHECK(strstr(smtp_sess_failure(s)->reason, "refused") != NULL);
	CHECK_STR(smtp_sess_relay(s), "nowhere.example[127.26.0.1]:1");
	smtp_sess_free(s);
}

int
main(void)
{
	log_open("test_smtp_sess", "-");
	cfg = config_new();
	base = event_base_new();
	if (fake_smtp_start(&srv, base, "127.26.0.1") < 0)
		return 77;
	sin_srv = srv.sin;
	test_pipelined_transaction();
	test_helo_fallback_and_no_pipelining();
	test_tls_required();
	test_refused();
	/* Let the server side see the clients' closes and free itself. */
	for (int i = 0; i < 50; i++) {
		struct timeval tv = {0, 10000};

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	fake_smtp_stop(&srv);
	event_base_free(base);
	config_free(cfg);
	return check_done();
}
