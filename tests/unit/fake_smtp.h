/*
 * fake_smtp - the one scripted SMTP server of the C unit tests: a libevent
 * listener on a loopback address that answers as a test sets it and
 * records what the client sent. Header only, like check.h.
 *
 * Answers: EHLO with fs->ehlo (NULL: 500, so the client falls back to
 * HELO); MAIL 250; RCPT 550 for a "reject" address, 451 for a "temp" one
 * unless accept_temp, else 250; DATA 354, then "250 2.0.0 Ok: queued as
 * X1"; STARTTLS 220 and then plain text where the TLS handshake should
 * be (a handshake that fails on the client's side); RSET, NOOP 250; QUIT
 * 221; anything else 502.
 */
#ifndef STRICTMTA_FAKE_SMTP_H
#define STRICTMTA_FAKE_SMTP_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "mta/util/buf.h"

struct fake_smtp {
	/* Set by the test. */
	const char *ehlo;
	int accept_temp;
	int ignore_quit; /* never answer QUIT: the client's goodbye hangs */
	/* Recorded. */
	int connections, delivered, starttls_seen;
	buf_t *transcript; /* every command line, LF-joined */
	buf_t *mails; /* the MAIL lines, LF-joined */
	buf_t *data; /* the last DATA content as received */
	buf_t *bounce; /* the last DATA content after MAIL FROM:<> */
	/* The listener. */
	struct event_base *base;
	struct evconnlistener *lev;
	struct sockaddr_in sin; /* where it listens (port filled in) */
	struct fake_smtp_conn *conns; /* open ones, freed by fake_smtp_stop */
};

/* One client connection. */
struct fake_smtp_conn {
	struct fake_smtp *fs;
	struct fake_smtp_conn *next;
	struct bufferevent *bev;
	int in_data, null_sender, after_starttls;
};

static inline void
fake_smtp_conn_free(struct fake_smtp_conn *c)
{
	struct fake_smtp_conn **pp;

	for (pp = &c->fs->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	bufferevent_free(c->bev);
	free(c);
}

static inline const char *
fake_smtp_answer(struct fake_smtp_conn *c, const char *line, size_t n)
{
	struct fake_smtp *fs = c->fs;

	if (c->in_data) {
		if (strcmp(line, ".") != 0) {
			buf_append(fs->data, line, n);
			buf_puts(fs->data, "\r\n");
			return NULL;
		}
		c->in_data = 0;
		fs->delivered++;
		if (c->null_sender) {
			buf_reset(fs->bounce);
			buf_append(
			    fs->bounce, buf_data(fs->data), buf_len(fs->data));
		}
		return "250 2.0.0 Ok: queued as X1\r\n";
	}
	buf_append(fs->transcript, line, n);
	buf_putc(fs->transcript, '\n');
	if (strncasecmp(line, "EHLO", 4) == 0)
		return fs->ehlo ? fs->ehlo : "500 5.5.1 what\r\n";
	if (strncasecmp(line, "HELO", 4) == 0)
		return "250 old.example\r\n";
	if (strncasecmp(line, "MAIL", 4) == 0) {
		c->null_sender = strncmp(line, "MAIL FROM:<>", 12) == 0;
		buf_append(fs->mails, line, n);
		buf_putc(fs->mails, '\n');
		return "250 2.1.0 Ok\r\n";
	}
	if (strncasecmp(line, "RCPT", 4) == 0)
		return strstr(line, "reject") ? "550 5.1.1 no such user\r\n"
		       : strstr(line, "temp") && !fs->accept_temp
		           ? "451 4.2.0 mailbox busy\r\n"
		           : "250 2.1.5 Ok\r\n";
	if (strcasecmp(line, "DATA") == 0) {
		c->in_data = 1;
		buf_reset(fs->data);
		return "354 go ahead\r\n";
	}
	if (strcasecmp(line, "STARTTLS") == 0) {
		fs->starttls_seen++;
		c->after_starttls = 1;
		return "220 2.0.0 go ahead\r\n";
	}
	if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0)
		return "250 2.0.0 Ok\r\n";
	if (strcasecmp(line, "QUIT") == 0)
		return fs->ignore_quit ? NULL : "221 2.0.0 Bye\r\n";
	return "502 5.5.2 unknown\r\n";
}

static inline void
fake_smtp_read(struct bufferevent *bev, void *arg)
{
	struct fake_smtp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	if (c->after_starttls) {
		/* Plain text for the ClientHello: the handshake fails. */
		c->after_starttls = 0;
		evbuffer_drain(in, evbuffer_get_length(in));
		evbuffer_add(bufferevent_get_output(bev), "not TLS\r\n", 9);
		return;
	}
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) !=
	       NULL) {
		const char *r = fake_smtp_answer(c, line, n);

		if (r != NULL)
			evbuffer_add(bufferevent_get_output(bev), r, strlen(r));
		free(line);
		if (c->after_starttls)
			break;
	}
}

static inline void
fake_smtp_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	fake_smtp_conn_free(arg);
}

static inline void
fake_smtp_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct fake_smtp *fs = arg;
	struct fake_smtp_conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev =
	    bufferevent_socket_new(fs->base, fd, BEV_OPT_CLOSE_ON_FREE);

	(void)l;
	(void)sa;
	(void)salen;
	c->fs = fs;
	c->bev = bev;
	c->next = fs->conns;
	fs->conns = c;
	fs->connections++;
	bufferevent_setcb(bev, fake_smtp_read, NULL, fake_smtp_event, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	evbuffer_add(bufferevent_get_output(bev), "220 srv ESMTP\r\n", 15);
}

/* Listens on addr (a loopback address), any port; -1 when it cannot. */
static inline int
fake_smtp_start(struct fake_smtp *fs, struct event_base *base, const char *addr)
{
	socklen_t len = sizeof(fs->sin);

	fs->base = base;
	fs->transcript = buf_new(0);
	fs->mails = buf_new(0);
	fs->data = buf_new(0);
	fs->bounce = buf_new(0);
	memset(&fs->sin, 0, sizeof(fs->sin));
	fs->sin.sin_family = AF_INET;
	inet_pton(AF_INET, addr, &fs->sin.sin_addr);
	fs->lev = evconnlistener_new_bind(base, fake_smtp_accept, fs,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	    (struct sockaddr *)&fs->sin, sizeof(fs->sin));
	if (fs->lev == NULL) {
		fprintf(
		    stderr, "fake_smtp: cannot listen on %s (taken?)\n", addr);
		return -1;
	}
	getsockname(
	    evconnlistener_get_fd(fs->lev), (struct sockaddr *)&fs->sin, &len);
	return 0;
}

static inline unsigned
fake_smtp_port(const struct fake_smtp *fs)
{
	return ntohs(fs->sin.sin_port);
}

static inline void
fake_smtp_stop(struct fake_smtp *fs)
{
	if (fs->lev)
		evconnlistener_free(fs->lev);
	fs->lev = NULL;
	while (fs->conns != NULL)
		fake_smtp_conn_free(fs->conns);
	buf_free(fs->transcript);
	buf_free(fs->mails);
	buf_free(fs->data);
	buf_free(fs->bounce);
}

#endif
