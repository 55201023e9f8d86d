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
#include "fake_smtp.h"
#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/config.h"
#include "mta/util/log.h"

static struct event_base *base;
static struct fake_smtp srv;

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

/* Runs until the message's recipient was attempted once more than when
 * it started (or 10 s): a count already there from an earlier step is
 * no answer. */
static struct queue_env *
attempt(deliver_t *d)
{
	struct queue_env *env = NULL;
	unsigned before = 0;
	int i;

	if (queue_get(q, qid, &env) == QUEUE_OK) {
		before = env->rcpts[0].attempts;
		queue_env_free(env);
		env = NULL;
	}
	deliver_kick(d);
	for (i = 0; i < 500; i++) {
		run_ms(20);
		if (queue_get(q, qid, &env) == QUEUE_ENOTFOUND)
			return NULL; /* delivered and removed */
		if (env->rcpts[0].attempts > before)
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
	char dir[] = "/tmp/smta-dpolicy-XXXXXX", path[300], map[300];
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	struct queue_env *env;
	deliver_t *d;
	FILE *fp;

	log_open("test_deliver_policy", "-");
	base = event_base_new();
	srv.ehlo = "250-srv\r\n250 STARTTLS\r\n";
	if (fake_smtp_start(&srv, base, "127.26.0.1") < 0 ||
	    mkdtemp(dir) == NULL) {
		perror("setup");
		return 77;
	}
	snprintf(map, sizeof(map), "%s/transport", dir);
	fp = fopen(map, "w");
	fprintf(fp, "dest.example [127.26.0.1]:%u\n", fake_smtp_port(&srv));
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
	CHECK_INT(srv.starttls_seen, 1);
	CHECK_INT(srv.delivered, 0);

	/* 2. Fallback to clear at level may: delivered on a second
	 * connection without STARTTLS. */
	config_set(cfg, "smtp_tls_fallback_to_clear", "yes", err);
	clock_set_fake(now0 += 400);
	srv.connections = 0;
	env = attempt(d);
	CHECK(env == NULL); /* delivered, removed */
	CHECK_INT(srv.delivered, 1);
	CHECK_INT(srv.connections, 2);
	CHECK_INT(srv.starttls_seen, 2);

	/* 3. The destination's policy (here MTA-STS) requires TLS; the
	 * server offers no STARTTLS: deferred with 4.7.5, as every failure
	 * of TLS that a destination's own policy requires. */
	srv.ehlo = "250 srv\r\n";
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
	CHECK_INT(srv.delivered, 1);

	/* 4. Policy skips the host: no connection at all. */
	srv.connections = 0;
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
	CHECK_INT(srv.connections, 0);

	deliver_free(d);
	queue_close(q);
	fake_smtp_stop(&srv);
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
