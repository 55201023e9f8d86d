/*
 * test_smtpd_session - the SMTP listener end to end, in one process: an
 * event loop with a real queue (temp dir) and qcommit, the smtpd on
 * 127.20.0.1, and a client thread speaking SMTP over plain sockets (and
 * OpenSSL for STARTTLS and implicit TLS, with a throwaway self-signed
 * certificate made here).
 *
 * Checked: the pipelined transaction and what the queue holds (envelope,
 * DSN parameters, flags, content with the Received: header); relay denied
 * from 127.20.0.9 (outside mynetworks); AUTH neither offered nor accepted
 * before TLS; STARTTLS discards pipelined clear text; AUTH PLAIN and
 * LOGIN over TLS, then relay from outside; smuggling sequences refused;
 * SIZE, hard error limit, per-client connection limit, idle timeout.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
#include "mta/smtpd/smtpd.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "queue/qcommit.h"
#include "queue/queue.h"

#define SERVER_ADDR "127.20.0.1"
#define OUTSIDE_ADDR "127.20.0.9"

static int port, tls_port;
static atomic_int client_done;
static char qid_plain[QUEUE_ID_SIZE], qid_tls[QUEUE_ID_SIZE];
static atomic_int queued_calls;
static char tmpdir[64];

struct conn {
	int fd;
	SSL *ssl;
	SSL_CTX *ctx;
	char buf[65536];
	size_t len;
};

static int
conn_open(struct conn *c, const char *from, int to_port)
{
	struct sockaddr_in sa;
	struct timeval tv = {10, 0};

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	inet_pton(AF_INET, from, &sa.sin_addr);
	if (bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bind client");
		return -1;
	}
	inet_pton(AF_INET, SERVER_ADDR, &sa.sin_addr);
	sa.sin_port = htons((unsigned short)to_port);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		return -1;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	close(c->fd);
}

static void
conn_send(struct conn *c, const char *s, size_t n)
{
	if (n == 0)
		n = strlen(s);
	if (c->ssl)
		SSL_write(c->ssl, s, (int)n);
	else
		send(c->fd, s, n, MSG_NOSIGNAL);
}

/* One line without CRLF into line; -1 on EOF or timeout. */
static int
conn_line(struct conn *c, char *line, size_t size)
{
	unsigned guard = 0;

	while (guard++ < 10000) {
		char *lf = memchr(c->buf, '\n', c->len);
		long n;

		if (lf) {
			size_t ll = (size_t)(lf - c->buf) + 1, cl = ll;

			while (cl > 0 && (c->buf[cl - 1] == '\n' ||
			                     c->buf[cl - 1] == '\r'))
				cl--;
			if (cl >= size)
				cl = size - 1;
			memcpy(line, c->buf, cl);
			line[cl] = '\0';
			memmove(c->buf, c->buf + ll, c->len - ll);
			c->len -= ll;
			return 0;
		}
		if (c->len == sizeof(c->buf))
			return -1;
		if (c->ssl)
			n = SSL_read(c->ssl, c->buf + c->len,
			    (int)(sizeof(c->buf) - c->len));
		else
			n = recv(
			    c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
	return -1;
}

/* Reads a whole (multi-line) reply into text; returns its code or -1. */
static int
reply(struct conn *c, char *text, size_t size)
{
	char line[1024];
	size_t used = 0;
	unsigned guard = 0;

	text[0] = '\0';
	while (guard++ < 100) {
		if (conn_line(c, line, sizeof(line)) < 0)
			return -1;
		used += (size_t)snprintf(
		    text + used, used < size ? size - used : 0, "%s\n", line);
		if (used >= size)
			used = size - 1;
		if (strlen(line) < 4 || line[3] == ' ')
			return atoi(line);
	}
	return -1;
}

static int
expect(struct conn *c, int code, const char *contains)
{
	char text[4096];
	int got = reply(c, text, sizeof(text));

	if (got != code || (contains && strstr(text, contains) == NULL)) {
		fprintf(stderr, "  expected %d%s%s, got: %s", code,
		    contains ? " with " : "", contains ? contains : "",
		    got < 0 ? "(nothing)\n" : text);
		CHECK(0);
		return -1;
	}
	CHECK(1);
	return 0;
}

static int
start_tls(struct conn *c)
{
	c->ctx = SSL_CTX_new(TLS_client_method());
	c->ssl = SSL_new(c->ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return -1;
	}
	return 0;
}

static void
test_plain_transaction(void)
{
	struct conn c;
	char text[4096], *p;

	if (conn_open(&c, SERVER_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, "mx.test.example ESMTP");
	conn_send(&c, "EHLO client.example\r\n", 0);
	CHECK_INT(reply(&c, text, sizeof(text)), 250);
	CHECK(strstr(text, "250-PIPELINING") != NULL);
	CHECK(strstr(text, "SIZE 100000") != NULL);
	CHECK(strstr(text, "8BITMIME") != NULL);
	CHECK(strstr(text, "DSN") != NULL);
	CHECK(strstr(text, "SMTPUTF8") != NULL);
	CHECK(strstr(text, "STARTTLS") != NULL);
	/* RFC 8314 / 4954: no AUTH, no REQUIRETLS in clear. */
	CHECK(strstr(text, "AUTH") == NULL);
	CHECK(strstr(text, "REQUIRETLS") == NULL);
	conn_send(&c, "AUTH PLAIN AHVzZXIAc2VjcmV0\r\n", 0);
	expect(&c, 538, "5.7.11");
	conn_send(&c, "MAIL FROM:<a@example.org> REQUIRETLS\r\n", 0);
	expect(&c, 530, "5.7.10");
	conn_send(&c, "MAIL FROM:<a@example.org> SIZE=200000\r\n", 0);
	expect(&c, 552, "5.3.4");
	/* One pipelined batch (RFC 2920). */
	conn_send(&c,
	    "MAIL FROM:<a@example.org> BODY=8BITMIME RET=HDRS ENVID=e+2B1\r\n"
	    "RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY "
	    "ORCPT=rfc822;b+40example.net\r\n"
	    "RCPT TO:<bad>\r\n"
	    "RCPT TO:<c@example.net>\r\n"
	    "DATA\r\n",
	    0);
	expect(&c, 250, "2.1.0");
	expect(&c, 250, "2.1.5");
	expect(&c, 501, "5.1.3");
	expect(&c, 250, "2.1.5");
	expect(&c, 354, NULL);
	/* Content, the final dot and QUIT in one write: allowed. */
	conn_send(&c,
	    "Subject: test\r\nTLS-Required: No\r\n\r\n..dotted\r\nbody\r\n"
	    ".\r\nQUIT\r\n",
	    0);
	if (reply(&c, text, sizeof(text)) == 250 &&
	    (p = strstr(text, "queued as ")) != NULL) {
		memcpy(qid_plain, p + 10, QUEUE_ID_LEN);
		CHECK(1);
	} else {
		fprintf(stderr, "  no queue id: %s\n", text);
		CHECK(0);
	}
	expect(&c, 221, NULL);
	conn_close(&c);
}

static void
test_relay_denied(void)
{
	struct conn c;

	if (conn_open(&c, OUTSIDE_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	conn_send(&c, "EHLO outside.example\r\n", 0);
	expect(&c, 250, NULL);
	conn_send(&c,
	    "MAIL FROM:<x@outside.example>\r\nRCPT TO:<y@example.net>"
	    "\r\nDATA\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 554, "5.7.1 <y@example.net>: Relay access denied");
	expect(&c, 554, "no valid recipients");
	conn_send(&c, "RSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nQUIT\r\n", 0);
	expect(&c, 250, NULL);
	expect(&c, 250, NULL);
	expect(&c, 252, NULL);
	expect(&c, 214, NULL);
	expect(&c, 221, NULL);
	conn_close(&c);
}

static void
test_smuggling(void)
{
	struct conn c;

	if (conn_open(&c, SERVER_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	conn_send(&c, "EHLO client.example\r\n", 0);
	expect(&c, 250, NULL);
	conn_send(&c,
	    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>"
	    "\r\nDATA\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 250, NULL);
	expect(&c, 354, NULL);
	/* <LF>.<CRLF> then a smuggled transaction: one refusal, and the
	 * smuggled commands are never run. */
	conn_send(&c,
	    "Subject: x\r\n\r\nhi\n.\r\nMAIL FROM:<evil@example.org>\r\n"
	    "RCPT TO:<v@example.net>\r\nDATA\r\nSmuggled\r\n.\r\n",
	    0);
	expect(&c, 554, "5.5.2 Error: bare <LF>");
	/* Bare LF in a command, too. */
	conn_send(&c, "NOOP\n", 0);
	expect(&c, 500, "bare <LF>");
	/* Over-long command line. */
	{
		char big[700];

		memset(big, 'x', sizeof(big));
		memcpy(big, "NOOP ", 5);
		memcpy(big + sizeof(big) - 2, "\r\n", 2);
		conn_send(&c, big, sizeof(big));
		expect(&c, 500, "line too long");
	}
	/* DATA with content pipelined before the 354: refused (RFC 2920
	 * 3.1), the connection closed. */
	conn_send(&c,
	    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
	    "DATA\r\nSubject: early\r\n\r\n.\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 250, NULL);
	expect(&c, 554, "5.5.0");
	CHECK(reply(&c, (char[64]){0}, 64) == -1);
	conn_close(&c);
}

static void
test_limits(void)
{
	struct conn c[4];
	int i;

	/* Hard error limit (5 in this test). */
	if (conn_open(&c[0], SERVER_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c[0], 220, NULL);
	conn_send(&c[0], "FOO\r\nBAR\r\nBAZ\r\nQUX\r\nQUUX\r\nNOOP\r\n", 0);
	for (i = 0; i < 5; i++)
		expect(&c[0], 502, NULL);
	expect(&c[0], 421, "too many errors");
	CHECK(reply(&c[0], (char[64]){0}, 64) == -1);
	conn_close(&c[0]);

	/* Three per client address (this test's limit); the fourth 421. */
	for (i = 0; i < 4; i++) {
		if (conn_open(&c[i], OUTSIDE_ADDR, port) < 0) {
			CHECK(0);
			return;
		}
		expect(&c[i], i < 3 ? 220 : 421, i < 3 ? NULL : "4.7.0");
	}
	for (i = 0; i < 4; i++)
		conn_close(&c[i]);
	/* Wait (bounded) until the server has seen the hang-ups, so that
	 * the next tests from this address are not refused. */
	for (i = 0; i < 100; i++) {
		struct conn t;
		char text[256];
		int code;

		usleep(50000);
		if (conn_open(&t, OUTSIDE_ADDR, port) < 0)
			break;
		code = reply(&t, text, sizeof(text));
		conn_send(&t, "QUIT\r\n", 0);
		if (code == 220)
			reply(&t, text, sizeof(text));
		conn_close(&t);
		if (code == 220)
			break;
	}
	CHECK(i < 100);
	usleep(100000);
}

static void
test_timeout(void)
{
	struct conn c;

	/* smtpd_timeout is 1s here. */
	if (conn_open(&c, SERVER_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	expect(&c, 421, "4.4.2");
	conn_close(&c);
}

static void
test_starttls_auth(void)
{
	struct conn c;
	char text[4096], *p;

	if (conn_open(&c, OUTSIDE_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	conn_send(&c, "EHLO tls.example\r\n", 0);
	expect(&c, 250, "STARTTLS");
	/* Command injection: the RSET is sent in clear after STARTTLS. */
	conn_send(&c, "STARTTLS\r\nRSET\r\n", 0);
	expect(&c, 220, "2.0.0");
	c.len = 0;
	if (start_tls(&c) < 0) {
		CHECK(0);
		conn_close(&c);
		return;
	}
	/* State is reset: EHLO needed again; no stray RSET reply. */
	conn_send(&c, "MAIL FROM:<a@example.org>\r\n", 0);
	expect(&c, 503, "HELO/EHLO");
	conn_send(&c, "EHLO tls.example\r\n", 0);
	CHECK_INT(reply(&c, text, sizeof(text)), 250);
	CHECK(strstr(text, "AUTH PLAIN LOGIN") != NULL);
	CHECK(strstr(text, "REQUIRETLS") != NULL);
	CHECK(strstr(text, "STARTTLS") == NULL);
	/* Not yet authenticated, not in mynetworks: relay denied. */
	conn_send(&c,
	    "MAIL FROM:<a@example.org>\r\nRCPT TO:<d@example.net>"
	    "\r\nRSET\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 554, "Relay access denied");
	expect(&c, 250, NULL);
	/* user / wrong */
	conn_send(&c, "AUTH PLAIN AHVzZXIAd3Jvbmc=\r\n", 0);
	expect(&c, 535, "5.7.8");
	conn_send(&c, "AUTH LOGIN\r\n", 0);
	expect(&c, 334, "VXNlcm5hbWU6");
	conn_send(&c, "*\r\n", 0);
	expect(&c, 501, NULL);
	conn_send(&c, "AUTH PLAIN\r\n", 0);
	expect(&c, 334, NULL);
	/* "\0user\0secret" */
	conn_send(&c, "AHVzZXIAc2VjcmV0\r\n", 0);
	expect(&c, 235, "2.7.0");
	conn_send(&c,
	    "MAIL FROM:<a@example.org> REQUIRETLS SMTPUTF8\r\n"
	    "RCPT TO:<d\xc3\xa9@example.net>\r\nDATA\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 250, NULL);
	expect(&c, 354, NULL);
	conn_send(
	    &c, "Subject: tls\r\nTLS-Required: No\r\n\r\nhello\r\n.\r\n", 0);
	if (reply(&c, text, sizeof(text)) == 250 &&
	    (p = strstr(text, "queued as ")) != NULL) {
		memcpy(qid_tls, p + 10, QUEUE_ID_LEN);
		CHECK(1);
	} else {
		fprintf(stderr, "  no queue id: %s\n", text);
		CHECK(0);
	}
	conn_send(&c, "QUIT\r\n", 0);
	expect(&c, 221, NULL);
	conn_close(&c);
}

static void
test_implicit_tls(void)
{
	struct conn c;
	char text[4096];

	if (conn_open(&c, OUTSIDE_ADDR, tls_port) < 0 || start_tls(&c) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	conn_send(&c, "EHLO tls.example\r\n", 0);
	CHECK_INT(reply(&c, text, sizeof(text)), 250);
	CHECK(strstr(text, "AUTH PLAIN LOGIN") != NULL);
	conn_send(&c, "AUTH LOGIN dXNlcg==\r\n", 0);
	expect(&c, 334, "UGFzc3dvcmQ6");
	conn_send(&c, "c2VjcmV0\r\n", 0);
	expect(&c, 235, NULL);
	conn_send(&c, "QUIT\r\n", 0);
	expect(&c, 221, NULL);
	/* The server ends TLS with close_notify (RFC 8446 6.1). */
	{
		char b[16];
		int n = SSL_read(c.ssl, b, sizeof(b));

		CHECK(n <= 0);
		CHECK_INT(SSL_get_error(c.ssl, n), SSL_ERROR_ZERO_RETURN);
	}
	conn_close(&c);
}

/* Each end-of-data sequence of the shared smuggling vectors
 * (smtp-smuggling.json, end_of_data_sequences), placed before a smuggled
 * second transaction: the server must answer the whole thing once, with a
 * refusal, and never run the smuggled commands. */
static void
test_smuggling_vectors(void)
{
	static const struct {
		const char *id, *bytes;
		size_t len;
	} seqs[] = {
	    {"lf-dot-lf", "\n.\n", 3},
	    {"lf-dot-cr", "\n.\r", 3},
	    {"cr-dot-lf", "\r.\n", 3},
	    {"cr-dot-cr", "\r.\r", 3},
	    {"lf-dot-crlf", "\n.\r\n", 4},
	    {"cr-dot-crlf", "\r.\r\n", 4},
	    {"crlf-dot-lf", "\r\n.\n", 4},
	    {"crlf-dot-cr", "\r\n.\r", 4},
	    {"crlf-nul-dot-crlf", "\r\n\0.\r\n", 6},
	    {"crlf-dot-nul-crlf", "\r\n.\0\r\n", 6},
	    {"crlf-dot-cr-crlf", "\r\n.\r\r\n", 6},
	    {"crcrlf-dot-crcrlf", "\r\r\n.\r\r\n", 7},
	};
	static const char smuggled[] = "MAIL FROM:<evil@example.org>\r\n"
	                               "RCPT TO:<victim@example.net>\r\n"
	                               "DATA\r\nSubject: smuggled\r\n\r\n"
	                               "x\r\n.\r\n";
	size_t i;

	for (i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		struct conn c;
		char text[512];
		int code;

		if (conn_open(&c, SERVER_ADDR, port) < 0) {
			CHECK(0);
			return;
		}
		expect(&c, 220, NULL);
		conn_send(&c, "EHLO client.example\r\n", 0);
		expect(&c, 250, NULL);
		conn_send(&c,
		    "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>"
		    "\r\nDATA\r\n",
		    0);
		expect(&c, 250, NULL);
		expect(&c, 250, NULL);
		expect(&c, 354, NULL);
		conn_send(&c, "Subject: vector\r\n\r\nbody", 0);
		conn_send(&c, seqs[i].bytes, seqs[i].len);
		conn_send(&c, smuggled, 0);
		conn_send(&c, "QUIT\r\n", 0);
		code = reply(&c, text, sizeof(text));
		CHECK_INT(code / 100, 5);
		if (code / 100 != 5)
			fprintf(stderr, "  vector %s: %s\n", seqs[i].id, text);
		/* The very next reply is QUIT's: nothing was smuggled. */
		code = reply(&c, text, sizeof(text));
		CHECK_INT(code, 221);
		if (code != 221)
			fprintf(
			    stderr, "  vector %s then: %s\n", seqs[i].id, text);
		conn_close(&c);
	}
}

/* Clear text on the implicit TLS port: the handshake fails and the
 * server hangs up. A client gone in the middle of DATA: nothing queued
 * (main() checks that exactly two messages were). */
static void
test_broken_clients(void)
{
	struct conn c;

	if (conn_open(&c, OUTSIDE_ADDR, tls_port) < 0) {
		CHECK(0);
		return;
	}
	conn_send(&c, "EHLO plain.example\r\n", 0);
	CHECK(reply(&c, (char[64]){0}, 64) == -1);
	conn_close(&c);

	if (conn_open(&c, SERVER_ADDR, port) < 0) {
		CHECK(0);
		return;
	}
	expect(&c, 220, NULL);
	conn_send(&c, "EHLO client.example\r\n", 0);
	expect(&c, 250, NULL);
	conn_send(&c,
	    "MAIL FROM:<a@example.org>\r\nRCPT TO:<cut@example.net>"
	    "\r\nDATA\r\n",
	    0);
	expect(&c, 250, NULL);
	expect(&c, 250, NULL);
	expect(&c, 354, NULL);
	conn_send(&c, "Subject: cut\r\n\r\nbody\r\n.", 0);
	conn_close(&c);
	usleep(100000);
}

static void *
client_main(void *arg)
{
	(void)arg;
	test_plain_transaction();
	test_relay_denied();
	test_smuggling();
	test_smuggling_vectors();
	test_limits();
	test_starttls_auth();
	test_implicit_tls();
	test_broken_clients();
	test_timeout();
	atomic_store(&client_done, 1);
	return NULL;
}

static void
poll_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (atomic_load(&client_done))
		event_base_loopbreak(arg);
}

static void
on_queued(void *arg, const char *qid)
{
	(void)arg;
	CHECK(qid_valid(qid));
	atomic_fetch_add(&queued_calls, 1);
}

/* A self-signed P-256 certificate for "mx.test.example" in cert.pem. */
static int
make_cert(const char *certpath, const char *keypath)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *fp;

	if (key == NULL || x == NULL)
		return -1;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.test.example", -1, -1, 0);
	X509_set_issuer_name(x, name);
	if (X509_sign(x, key, EVP_sha256()) == 0)
		return -1;
	fp = fopen(certpath, "w");
	PEM_write_X509(fp, x);
	fclose(fp);
	fp = fopen(keypath, "w");
	PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL);
	fclose(fp);
	X509_free(x);
	EVP_PKEY_free(key);
	return 0;
}

static int
local_port(int fd)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	getsockname(fd, (struct sockaddr *)&sa, &len);
	return ntohs(sa.sin_port);
}

static void
check_queue(queue_t *q)
{
	struct queue_env *env = NULL;
	buf_t *content = buf_new(0);
	const char *c;

	CHECK_INT(queue_get(q, qid_plain, &env), QUEUE_OK);
	if (env == NULL)
		return;
	CHECK_STR(env->sender, "a@example.org");
	CHECK_INT(env->nrcpt, 2);
	if (env->nrcpt == 2) {
		CHECK_STR(env->rcpts[0].address, "b@example.net");
		CHECK_INT(env->rcpts[0].notify,
		    DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY);
		CHECK_STR(env->rcpts[0].orcpt, "rfc822;b+40example.net");
		CHECK_STR(env->rcpts[1].address, "c@example.net");
		CHECK(env->rcpts[1].orcpt == NULL);
	}
	CHECK_INT(env->ret, DSN_RET_HDRS);
	CHECK_STR(env->envid, "e+1");
	CHECK_INT(env->flags, QENV_8BITMIME | QENV_TLS_OPTIONAL);
	CHECK_STR(env->client, "[127.20.0.1]");
	CHECK_STR(env->helo, "client.example");
	CHECK_INT(queue_get_content(q, qid_plain, content), QUEUE_OK);
	c = buf_data(content);
	CHECK_INT(env->size, buf_len(content));
	CHECK(strncmp(c,
	          "Received: from client.example ([127.20.0.1])\r\n"
	          "\tby mx.test.example (strictmta) with ESMTP id ",
	          strlen("Received: from client.example ([127.20.0.1])\r\n"
	                 "\tby mx.test.example (strictmta) with ESMTP id ")) ==
	      0);
	CHECK(strstr(c, qid_plain) != NULL);
	CHECK(strstr(c, "for <") == NULL); /* two recipients */
	CHECK(strstr(c, "\r\n\r\n.dotted\r\nbody\r\n") != NULL);
	CHECK(strstr(c, "..dotted") == NULL);
	queue_env_free(env);
	env = NULL;

	buf_reset(content);
	CHECK_INT(queue_get(q, qid_tls, &env), QUEUE_OK);
	if (env == NULL) {
		buf_free(content);
		return;
	}
	/* REQUIRETLS wins over the header (RFC 8689 5). */
	CHECK_INT(env->flags, QENV_REQUIRETLS | QENV_SMTPUTF8);
	CHECK_STR(env->client, "[127.20.0.9]");
	CHECK_INT(env->nrcpt, 1);
	CHECK_INT(queue_get_content(q, qid_tls, content), QUEUE_OK);
	c = buf_data(content);
	CHECK(strstr(c, "with UTF8SMTPSA id ") != NULL);
	CHECK(strstr(c, "\t(using TLSv1.3 with cipher ") != NULL);
	CHECK(strstr(c, "for <d\xc3\xa9@example.net>; ") != NULL);
	queue_env_free(env);
	buf_free(content);
}

int
main(void)
{
	struct event_base *base;
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	queue_t *q;
	qcommit_t *qc;
	smtpd_t *sd;
	struct smtpd_params p;
	struct smtpd_stats st;
	pthread_t th;
	struct event *poll;
	struct timeval tv = {0, 20000};
	char path[128], cert[128], key[128], pw[128], line[256];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	FILE *fp;
	int fd, ok;

	signal(SIGPIPE, SIG_IGN);
	log_open("test_smtpd_session", "-");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/strictmta-smtpd-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	snprintf(pw, sizeof(pw), "%s/passwd", tmpdir);
	snprintf(path, sizeof(path), "%s/queue", tmpdir);
	mkdir(path, 0700);
	if (make_cert(cert, key) < 0) {
		fprintf(stderr, "cannot make a certificate\n");
		return 1;
	}
	fp = fopen(pw, "w");
	fprintf(fp, "# test users\nuser:%s\n",
	    crypt_r("secret", "$6$0123456789abcdef$", cd));
	fclose(fp);
	free(cd);

	config_set(cfg, "myhostname", "mx.test.example", err);
	config_set(cfg, "smtpd_banner", "mx.test.example ESMTP test", err);
	config_set(cfg, "mynetworks", "127.20.0.1/32, [::1]/128", err);
	config_set(cfg, "message_size_limit", "100000", err);
	config_set(cfg, "smtpd_timeout", "1s", err);
	config_set(cfg, "smtpd_hard_error_limit", "5", err);
	config_set(cfg, "smtpd_client_connection_count_limit", "3", err);
	config_set(cfg, "smtpd_tls_cert_file", cert, err);
	config_set(cfg, "smtpd_tls_key_file", key, err);
	config_set(cfg, "smtpd_sasl_auth_enable", "yes", err);
	config_set(cfg, "smtpd_sasl_password_file", pw, err);
	CHECK_INT(buf_len(err), 0);

	evthread_use_pthreads();
	base = event_base_new();
	q = queue_open(path, err);
	if (q == NULL) {
		fprintf(stderr, "queue_open: %s\n", buf_data(err));
		return 1;
	}
	qc = qcommit_new(q, base);
	memset(&p, 0, sizeof(p));
	p.base = base;
	p.cfg = cfg;
	p.commit = qc;
	p.on_queued = on_queued;
	sd = smtpd_new(&p, err);
	if (sd == NULL) {
		fprintf(stderr, "smtpd_new: %s\n", buf_data(err));
		return 1;
	}
	/* A bad address and an address in use give clear errors. */
	buf_reset(err);
	CHECK_INT(smtpd_bind("127.20.0.1", err), -1);
	CHECK(strstr(buf_data(err), "host:port") != NULL);
	fd = smtpd_bind(SERVER_ADDR ":0", err);
	CHECK(fd >= 0);
	port = local_port(fd);
	snprintf(line, sizeof(line), SERVER_ADDR ":%d", port);
	buf_reset(err);
	CHECK_INT(smtpd_bind(line, err), -1);
	CHECK(strstr(buf_data(err), "address already in use") != NULL);
	CHECK_INT(smtpd_add_listener(sd, fd, 0, err), 0);
	fd = smtpd_bind(SERVER_ADDR ":0", err);
	tls_port = local_port(fd);
	CHECK_INT(smtpd_add_listener(sd, fd, 1, err), 0);

	poll = event_new(base, -1, EV_PERSIST, poll_cb, base);
	event_add(poll, &tv);
	pthread_create(&th, NULL, client_main, NULL);
	event_base_dispatch(base);
	pthread_join(th, NULL);

	smtpd_get_stats(sd, &st);
	CHECK_INT(st.messages, 2);
	CHECK(st.connections >= 10);
	CHECK(st.rejected >= 5);
	CHECK_INT(atomic_load(&queued_calls), 2);
	check_queue(q);

	smtpd_stop_accepting(sd);
	smtpd_free(sd);
	event_free(poll);
	qcommit_free(qc);
	queue_close(q);
	event_base_free(base);
	config_free(cfg);
	buf_free(err);
	snprintf(line, sizeof(line), "rm -rf %s", tmpdir);
	ok = check_done();
	if (system(line) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	return ok;
}
