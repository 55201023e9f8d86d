/*
 * smtpd_listen - listening sockets and admission for the SMTP listener;
 * see smtpd_sess.h.
 *
 * Admission, in order: the total smtpd_connection_limit; for clients
 * outside mynetworks, the general pool (the limit less
 * smtpd_connection_reserve, so that a crowd of strangers, slow or not,
 * cannot keep our own networks out) and smtpd_client_connection_count_limit
 * per client, an IPv6 client counted per smtpd_client_ipv6_prefix_length
 * network. mynetworks clients are exempt from the per-client limit, as
 * in Postfix (smtpd_client_event_limit_exceptions), because a relaying
 * Postfix opens many connections from one address. A session that
 * authenticates leaves the general pool.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "smtpd_sess.h"

/* Refuses a connection before a session exists. */
static void
refuse(struct smtpd *sd, int fd, int implicit_tls, const char *why,
    const char *client)
{
	char text[512];
	int n;

	log_warn("%s from %s", why, client);
	sd->stats.rejected++;
	/* Over implicit TLS there is no clear-text way to say it. */
	if (!implicit_tls) {
		n = snprintf(text, sizeof(text),
		    "421 4.7.0 %s Error: too many connections\r\n",
		    sd->hostname);
		if (n > 0)
			(void)send(
			    fd, text, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close(fd);
}

static unsigned
general_pool_size(const struct smtpd *sd)
{
	int limit = sd->cfg->smtpd_connection_limit;
	int reserve = sd->cfg->smtpd_connection_reserve;

	/* A small limit keeps at least half for everyone. */
	if (reserve > limit / 2)
		reserve = limit / 2;
	return (unsigned)(limit - reserve);
}

void
smtpd_listen_promote(struct session *s)
{
	if (s->in_general_pool) {
		s->in_general_pool = 0;
		s->sd->general_active--;
	}
}

void
smtpd_listen_release(struct session *s)
{
	smtpd_listen_promote(s);
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct listener *l = arg;
	struct smtpd *sd = l->sd;
	const struct config *cfg = sd->cfg;
	struct session *o;
	struct smtpd_client_key key;
	char addr[INET6_ADDRSTRLEN] = "?", client[INET6_ADDRSTRLEN + 8];
	unsigned same = 0;
	int mine;

	(void)lev;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, addr,
		    sizeof(addr));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr,
		    addr, sizeof(addr));
	snprintf(client, sizeof(client), "[%s]", addr);
	sd->stats.connections++;
	log_info("connect from %s", client);
	if (sd->stats.active >= (unsigned)cfg->smtpd_connection_limit) {
		refuse(sd, fd, l->implicit_tls,
		    "Connection limit exceeded (smtpd_connection_limit)",
		    client);
		return;
	}
	mine = smtpd_netlist_match(&sd->mynetworks, sa);
	smtpd_client_key(
	    sa, (unsigned)cfg->smtpd_client_ipv6_prefix_length, &key);
	if (!mine) {
		if (sd->general_active >= general_pool_size(sd)) {
			refuse(sd, fd, l->implicit_tls,
			    "Connection limit for clients outside mynetworks "
			    "exceeded (smtpd_connection_limit less "
			    "smtpd_connection_reserve)",
			    client);
			return;
		}
		/* Bounded by smtpd_connection_limit. */
		for (o = sd->sessions; o; o = o->next)
			if (smtpd_client_key_eq(&o->key, &key))
				same++;
		if (same >=
		    (unsigned)cfg->smtpd_client_connection_count_limit) {
			refuse(sd, fd, l->implicit_tls,
			    "Connection concurrency limit exceeded "
			    "(smtpd_client_connection_count_limit)",
			    client);
			return;
		}
	}
	smtpd_sess_new(sd, fd, sa, (socklen_t)salen, l->implicit_tls, addr,
	    client, &key, mine);
}

static void
accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(l->lev);
}

static void
accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = {1, 0};

	/* EMFILE and the like would make the loop spin on a readable
	 * listener: pause accepting for a second instead. */
	log_warn("accept: %s; pausing for 1s", strerror(EVUTIL_SOCKET_ERROR()));
	evconnlistener_disable(lev);
	evtimer_add(l->retry_ev, &tv);
}

int
smtpd_bind(const char *addrport, buf_t *err)
{
	char host[256], port[16];
	struct addrinfo hints, *res = NULL;
	int fd, on = 1, r;

	if (smtpd_split_addrport(
	        addrport, host, sizeof(host), port, sizeof(port)) < 0) {
		buf_printf(
		    err, "%s: expected host:port or [v6]:port", addrport);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		buf_printf(err, "%s: %s", addrport, gai_strerror(r));
		return -1;
	}
	fd = socket(
	    res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0) {
		buf_printf(err, "%s: socket: %s", addrport, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, 128) < 0 || evutil_make_socket_nonblocking(fd) < 0) {
		int e = errno;
		char lower[128];
		size_t i;

		snprintf(lower, sizeof(lower), "%s", strerror(e));
		for (i = 0; lower[i]; i++)
			if (lower[i] >= 'A' && lower[i] <= 'Z')
				lower[i] = (char)(lower[i] + 32);
		buf_printf(err, "%s: %s", addrport, lower);
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

int
smtpd_add_listener(smtpd_t *sd, int fd, int implicit_tls, buf_t *err)
{
	struct listener *l;

	if (implicit_tls && sd->ssl_ctx == NULL) {
		buf_puts(
		    err, "implicit TLS listener needs smtpd_tls_cert_file");
		close(fd);
		return -1;
	}
	if (sd->nlisteners >= SMTPD_MAX_LISTENERS) {
		buf_puts(err, "too many listeners");
		close(fd);
		return -1;
	}
	l = xcalloc(1, sizeof(*l));
	l->sd = sd;
	l->implicit_tls = implicit_tls;
	/* backlog 0: the socket already listens (smtpd_bind). */
	l->lev = evconnlistener_new(sd->base, accept_cb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l->lev == NULL) {
		buf_printf(err, "cannot listen on fd %d", fd);
		close(fd);
		free(l);
		return -1;
	}
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	l->retry_ev = evtimer_new(sd->base, accept_retry_cb, l);
	sd->listeners[sd->nlisteners++] = l;
	return 0;
}

void
smtpd_stop_accepting(smtpd_t *sd)
{
	size_t i;

	for (i = 0; i < sd->nlisteners; i++) {
		evconnlistener_free(sd->listeners[i]->lev);
		event_free(sd->listeners[i]->retry_ev);
		free(sd->listeners[i]);
	}
	sd->nlisteners = 0;
}
