/*
 * test_deliver_policy - the TLS policy seam and TLS fallback, without
 * DNS: transport_maps to a scripted server on 127.26.0.1 that offers
 * STARTTLS but breaks the handshake, a fake clock, a real queue.
 *   - default (smtp_tls_fallback_to_clear = no): the message is deferred
 *     (4.7.5), never sent in clear;
 *   - fallback = yes at level "may": retried in clear on the same
 *     address and delivered;
 *   - a policy hook answering "encrypt" for a server without STARTTLS:
 *     deferred 4.7.4;
 *   - a policy hook that skips the host (4.7.5 TLSA lookup error):
 *     deferred with that reason, no connection made.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "check.h"
#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"

static struct event_base *base;
static int offer_tls = 1, in_data, connections, delivered, starttls_seen;
static int after_starttls; /* the next bytes are a ClientHello */

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	(void)arg;
	if (after_starttls) {
		/* Answer the ClientHello with plain text: the handshake
		 * fails on the client's side. */
		after_starttls = 0;
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add(bufferevent_get_output(bev), "not TLS\r\n", 9);
		return;
	}
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) !=
	       NULL) {
		const char *r;

		if (in_data) {
			r = NULL;
			if (strcmp(line, ".") == 0) {
				in_data = 0;
				delivered++;
				r = "250 2.0.0 Ok\r\n";
			}
		} else if (strncasecmp(line, "EHLO", 4) == 0) {
			r = offer_tls ? "250-srv\r\n250 STARTTLS\r\n"
			              : "250 srv\r\n";
		} else if (strcmp(line, "STARTTLS") == 0) {
			starttls_seen++;
			after_starttls = 1;
			r = "220 2.0.0 go ahead\r\n";
		} else if (strcmp(line, "DATA") == 0) {
			in_data = 1;
			r = "354 go\r\n";
		} else if (strcmp(line, "QUIT") == 0) {
			r = "221 bye\r\n";
		} else {
			r = "250 2.0.0 Ok\r\n";
		}
		if (r != NULL)
			evbuffer_add(bufferevent_get_output(bev), r, strlen(r));
		free(line);
	}
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct bufferevent *bev =
	    bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	connections++;
	in_data = 0;
	bufferevent_setcb(bev, srv_read, NULL, srv_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	evbuffer_add(bufferevent_get_output(bev), "220 srv ESMTP\r\n", 15);
}

static queue_t *q;
static char qid[QUEUE_ID_SIZE];
static int64_t now0 = 1800000000;

static void
run_ms(int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Runs until the message's recipient was attempted (or 10 s). */
static struct queue_env *
attempt(deliver_t *d)
{
	struct queue_env *env = NULL;
	int i;

	deliver_kick(d);
	for (i = 0; i < 500; i++) {
		run_ms(20);
		if (queue_get(q, qid, &env) == QUEUE_ENOTFOUND)
			return NULL; /* delivered and removed */
		if (env->rcpts[0].attempts > 0)
			return env;
		queue_env_free(env);
		env = NULL;
	}
	return NULL;
}

static void
put_message(void)
{
	struct queue_env *env = queue_env_new();
	const char *content = "Subject: t\r\n\r\nb\r\n";

	queue_new_id(qid);
	memcpy(env->qid, qid, QUEUE_ID_SIZE);
	env->arrival = clock_now();
	env->size = strlen(content);
	free(env->sender);
	env->sender = strdup("a@src.example");
	queue_env_add_rcpt(env, "b@dest.example", NULL, DSN_NOTIFY_NEVER);
	CHECK_INT(queue_put(q, env, content, strlen(content), NULL), 0);
	queue_sync(q, NULL);
	queue_env_free(env);
}

/* The fake policy: answers from the event loop, as a real one must. */
static struct tls_verdict verdict;
static int policy_calls;
static char last_host[256];

struct pending {
	tls_verdict_done *done;
	void *arg;
};

static void
answer(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	(void)fd;
	(void)what;
	p->done(p->arg, &verdict);
	free(p);
}

static uint64_t
fake_policy(void *parg, const struct tls_verdict_req *req,
    tls_verdict_done *done, void *arg)
{
	struct pending *p = malloc(sizeof(*p));

	(void)parg;
	policy_calls++;
	snprintf(last_host, sizeof(last_host), "%s", req->host);
	p->done = done;
	p->arg = arg;
	event_base_once(base, -1, EV_TIMEOUT, answer, p, NULL);
	return (uint64_t)policy_calls;
}

static void
fake_cancel(void *parg, uint64_t id)
{
	(void)parg;
	(void)id;
}

int
main(void)
{
	struct evconnlistener *l;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char dir[] = "/tmp/smta-dpolicy-XXXXXX", path[300], map[300];
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	struct queue_env *env;
	deliver_t *d;
	FILE *fp;

	log_open("test_deliver_policy", "-");
	base = event_base_new();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.26.0.1", &sin.sin_addr);
	l = evconnlistener_new_bind(base, srv_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&sin, sizeof(sin));
	if (l == NULL || mkdtemp(dir) == NULL) {
		perror("setup");
		return 77;
	}
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &len);
	snprintf(map, sizeof(map), "%s/transport", dir);
	fp = fopen(map, "w");
	fprintf(fp, "dest.example [127.26.0.1]:%u\n", ntohs(sin.sin_port));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/q", dir);
	mkdir(path, 0700);
	q = queue_open(path, err);
	if (q == NULL) {
		fprintf(stderr, "%s\n", buf_data(err));
		return 1;
	}
	config_set(cfg, "transport_maps", map, err);
	config_set(cfg, "myhostname", "mta.test", err);
	config_set(cfg, "smtp_connection_cache_time_limit", "0", err);
	clock_set_fake(now0);
	d = deliver_new(base, cfg, q, NULL, err);
	CHECK(d != NULL);

	/* 1. Handshake fails, no fallback: deferred, nothing sent. */
	put_message();
	env = attempt(d);
	CHECK(env != NULL);
	if (env != NULL) {
		CHECK_INT(env->rcpts[0].state, RCPT_DEFERRED);
		CHECK_STR(env->rcpts[0].dsn_status, "4.7.5");
		CHECK(strstr(env->rcpts[0].last_response, "TLS error") != NULL);
		queue_env_free(env);
	}
	CHECK_INT(starttls_seen, 1);
	CHECK_INT(delivered, 0);

	/* 2. Fallback to clear at level may: delivered on a second
	 * connection without STARTTLS. */
	config_set(cfg, "smtp_tls_fallback_to_clear", "yes", err);
	clock_set_fake(now0 += 400);
	connections = 0;
	env = attempt(d);
	CHECK(env == NULL); /* delivered, removed */
	CHECK_INT(delivered, 1);
	CHECK_INT(connections, 2);
	CHECK_INT(starttls_seen, 2);

	/* 3. The destination's policy (here MTA-STS) requires TLS; the
	 * server offers no STARTTLS: deferred with 4.7.5, as every failure
	 * of TLS that a destination's own policy requires. */
	offer_tls = 0;
	deliver_set_policy(d, fake_policy, fake_cancel, NULL);
	memset(&verdict, 0, sizeof(verdict));
	verdict.level = TLS_LEV_ENCRYPT;
	verdict.source = "mta-sts";
	put_message();
	env = attempt(d);
	CHECK(env != NULL);
	if (env != NULL) {
		CHECK_INT(env->rcpts[0].state, RCPT_DEFERRED);
		CHECK_STR(env->rcpts[0].dsn_status, "4.7.5");
		CHECK(strstr(env->rcpts[0].last_response,
		          "TLS is required, but was not offered") != NULL);
		queue_env_free(env);
	}
	CHECK_INT(policy_calls, 1);
	CHECK_STR(last_host, "127.26.0.1");
	CHECK_INT(delivered, 1);

	/* 4. Policy skips the host: no connection at all. */
	connections = 0;
	snprintf(verdict.status, sizeof(verdict.status), "4.7.5");
	snprintf(verdict.reason, sizeof(verdict.reason),
	    "TLSA lookup error for 127.26.0.1:25");
	verdict.source = "dane";
	clock_set_fake(now0 += 400);
	{
		struct queue_env *e2 = NULL;

		/* Make it due again. */
		queue_get(q, qid, &e2);
		e2->rcpts[0].next_attempt = 0;
		e2->rcpts[0].attempts = 0;
		queue_update(q, e2);
		queue_env_free(e2);
	}
	env = attempt(d);
	CHECK(env != NULL);
	if (env != NULL) {
		CHECK_STR(env->rcpts[0].dsn_status, "4.7.5");
		CHECK(strstr(env->rcpts[0].last_response,
		          "TLSA lookup error for 127.26.0.1:25 (policy dane") !=
		      NULL);
		queue_env_free(env);
	}
	CHECK_INT(connections, 0);

	deliver_free(d);
	queue_close(q);
	evconnlistener_free(l);
	event_base_free(base);
	clock_set_fake(0);
	config_free(cfg);
	buf_free(err);
	{
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return check_done();
}
