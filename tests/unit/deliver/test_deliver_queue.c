/*
 * test_deliver_queue - the whole delivery path without DNS: a real queue
 * in a temporary folder, transport_maps pointing at a scripted SMTP
 * server on 127.26.0.1, and a fake clock. Checks what is written back to
 * the envelope (state, attempts, next attempt with backoff, last
 * response, status), the DSN that is queued and delivered for a failure,
 * the retry after the backoff, and expiry after maximal_queue_lifetime.
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

/* Runs the loop in 20 ms steps until pred() or about 10 s. */
static int
run_until(int (*pred)(void))
{
	int i;

	for (i = 0; i < 500; i++) {
		struct timeval tv = {0, 20000};

		if (pred())
			return 1;
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return pred();
}

/* A short run (pred never true): 2 s at most. */
static int steps;
static int
never(void)
{
	return ++steps % 100 == 0;
}

static char qid1[QUEUE_ID_SIZE], qid2[QUEUE_ID_SIZE];

static int
first_round_done(void)
{
	struct queue_env *env = NULL;
	int done;

	if (queue_get(q, qid1, &env) != QUEUE_OK)
		return 0;
	done = env->rcpts[1].state == RCPT_DEFERRED &&
	       env->rcpts[2].state == RCPT_FAILED && buf_len(srv.bounce) > 0;
	queue_env_free(env);
	return done;
}

static int
qid1_gone(void)
{
	struct queue_env *env = NULL;

	if (queue_get(q, qid1, &env) == QUEUE_ENOTFOUND)
		return 1;
	queue_env_free(env);
	return 0;
}

static int
count_msgs(void *arg, const struct queue_env *env)
{
	(void)env;
	(*(int *)arg)++;
	return 0;
}

/* The second message and its DSN have both been delivered. */
static int
all_gone(void)
{
	int n = 0;

	queue_walk(q, count_msgs, &n);
	return n == 0 && buf_len(srv.bounce) > 0;
}

static void
put_message(char *qid, int64_t arrival, const char **rcpts, size_t n)
{
	struct queue_env *env = queue_env_new();
	const char *content = "Subject: test\r\n\r\nbody\r\n";
	size_t i;

	queue_new_id(qid);
	memcpy(env->qid, qid, QUEUE_ID_SIZE);
	free(env->sender);
	env->sender = strdup("alice@src.example");
	env->arrival = arrival;
	env->size = strlen(content);
	env->envid = strdup("ENV-1");
	for (i = 0; i < n; i++)
		queue_env_add_rcpt(env, rcpts[i], NULL, 0);
	CHECK_INT(queue_put(q, env, content, strlen(content), NULL), 0);
	CHECK_INT(queue_sync(q, NULL), 0);
	queue_env_free(env);
}

int
main(void)
{
	char dir[] = "/tmp/smta-deliver-XXXXXX", path[256], map[256];
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	struct queue_env *env = NULL;
	deliver_t *d;
	struct deliver_stats st;
	const char *r1[] = {
	    "ok@dest.example", "temp@dest.example", "reject@dest.example"};
	const char *r2[] = {"temp2@dest.example"};
	int64_t t0 = 1800000000;
	FILE *fp;
	int n;

	log_open("test_deliver_queue", "-");
	base = event_base_new();
	srv.ehlo = "250-srv.example\r\n250-PIPELINING\r\n250 DSN\r\n";
	/* Sessions that deliver closes still wait for their 221 when
	 * deliver_free comes: it must free them (ASan's leak check). */
	srv.ignore_quit = 1;
	if (fake_smtp_start(&srv, base, "127.26.0.1") < 0 ||
	    mkdtemp(dir) == NULL) {
		perror("setup");
		return 77;
	}
	snprintf(map, sizeof(map), "%s/transport", dir);
	fp = fopen(map, "w");
	fprintf(fp,
	    "dest.example [127.26.0.1]:%u\nsrc.example [127.26.0.1]:%u\n",
	    fake_smtp_port(&srv), fake_smtp_port(&srv));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/q", dir);
	mkdir(path, 0700);
	q = queue_open(path, err);
	CHECK(q != NULL);
	if (q == NULL) {
		fprintf(stderr, "%s\n", buf_data(err));
		return 1;
	}
	config_set(cfg, "transport_maps", map, err);
	config_set(cfg, "myhostname", "mta.test", err);
	config_set(cfg, "smtp_connection_cache_time_limit", "0", err);

	clock_set_fake(t0);
	put_message(qid1, t0, r1, 3);
	d = deliver_new(base, cfg, q, NULL, err);
	CHECK(d != NULL);

	/* Round 1: delivered, deferred, failed + DSN. */
	CHECK(run_until(first_round_done));
	CHECK_INT(queue_get(q, qid1, &env), QUEUE_OK);
	if (env != NULL) {
		CHECK_INT(env->rcpts[0].state, RCPT_DELIVERED);
		CHECK_STR(env->rcpts[0].dsn_status, "2.0.0");
		CHECK_INT(env->rcpts[1].state, RCPT_DEFERRED);
		CHECK_INT(env->rcpts[1].attempts, 1);
		CHECK_INT(env->rcpts[1].next_attempt, t0 + 300);
		CHECK_INT(env->rcpts[1].last_attempt, t0);
		CHECK_STR(env->rcpts[1].dsn_status, "4.2.0");
		CHECK(env->rcpts[1].last_response != NULL &&
		      strstr(env->rcpts[1].last_response,
		          "said: 451 4.2.0 mailbox busy") != NULL);
		CHECK_INT(env->rcpts[2].state, RCPT_FAILED);
		CHECK_STR(env->rcpts[2].dsn_status, "5.1.1");
		queue_env_free(env);
		env = NULL;
	}
	/* The DSN went to the sender, from the null sender. */
	CHECK(strstr(buf_data(srv.mails), "MAIL FROM:<>") != NULL);
	CHECK(strstr(buf_data(srv.bounce), "Final-Recipient: rfc822; "
	                                   "reject@dest.example\r\n") != NULL);
	CHECK(strstr(buf_data(srv.bounce), "Status: 5.1.1\r\n") != NULL);
	CHECK(strstr(buf_data(srv.bounce), "Original-Envelope-Id: ENV-1\r\n") !=
	      NULL);
	CHECK(strstr(buf_data(srv.bounce), "ok@dest.example") == NULL);
	CHECK(strstr(buf_data(srv.bounce), "temp@dest.example") == NULL);
	/* Nothing happens before the backoff is over. */
	buf_reset(srv.mails);
	deliver_kick(d);
	run_until(never);
	CHECK_STR(buf_data(srv.mails), "");

	/* Round 2: after the backoff the recipient is accepted. */
	srv.accept_temp = 1;
	clock_set_fake(t0 + 301);
	deliver_kick(d);
	CHECK(run_until(qid1_gone));
	CHECK(strstr(buf_data(srv.mails), "MAIL FROM:<alice@src.example> "
	                                  "ENVID=ENV-1") != NULL);

	/* Expiry: queued 5 days ago, still failing: fails now, DSN. */
	srv.accept_temp = 0;
	buf_reset(srv.bounce);
	put_message(qid2, t0 + 301 - 5 * 86400, r2, 1);
	deliver_kick(d);
	CHECK(run_until(all_gone));
	CHECK(strstr(buf_data(srv.bounce),
	          "Final-Recipient: rfc822; "
	          "temp2@dest.example\r\nAction: failed\r\n"
	          "Status: 4.2.0\r\n") != NULL);

	/* Everything, bounces included, has left the queue. */
	n = 0;
	queue_walk(q, count_msgs, &n);
	CHECK_INT(n, 0);
	deliver_get_stats(d, &st);
	CHECK_INT(st.sent, 4); /* ok, DSN, temp, DSN */
	CHECK_INT(st.bounced, 1);
	CHECK_INT(st.expired, 1);
	CHECK_INT(st.dsns, 2);

	deliver_free(d);
	queue_close(q);
	fake_smtp_stop(&srv);
	event_base_free(base);
	clock_set_fake(0);
	config_free(cfg);
	buf_free(err);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", dir);
	}
	return check_done();
}
