/*
 * dane_probe - the DANE decision and check for one MX host, with the
 * daemon's resolver and policy code: resolves the host, looks up its TLSA
 * records (RFC 7672 2.2), and with -t connects to it on port 25, does
 * EHLO and STARTTLS, and verifies the certificate with OpenSSL's DANE
 * support as delivery would. Prints one JSON object. For the DANE tests
 * and for postmasters checking a host by hand:
 *
 *   dane_probe -c CONFIG [-t] [-p PORT] HOST
 *
 * The TLS check uses blocking sockets: this is a command-line tool, not
 * the event loop.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mta/util/config.h"
#include "mta/util/log.h"
#include "policy/dane/dane.h"
#include "policy/dane/dane_lookup.h"
#include "resolver/resolver.h"

static struct event_base *base;
static resolver_t *res;
static int do_tls, port = 25, done;
static char host[256], addr_text[INET6_ADDRSTRLEN];
static struct tlsa_rec saved[64];
static unsigned char saved_data[64][TLSA_DATA_MAX];
static size_t nsaved;
static char saved_base[256];
static enum dane_host_state saved_state;

static void
json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

/* Reads one SMTP reply (all lines); returns its code, 0 on error. */
static int
read_reply(int fd, char *ehlo_text, size_t len)
{
	char line[1024];
	size_t n = 0, used = 0;

	for (;;) {
		char c;

		if (read(fd, &c, 1) != 1)
			return 0;
		if (n < sizeof(line) - 1)
			line[n++] = c;
		if (c != '\n')
			continue;
		line[n] = '\0';
		if (ehlo_text && used + n < len) {
			memcpy(ehlo_text + used, line, n + 1);
			used += n;
		}
		if (n >= 4 && line[3] == ' ')
			return atoi(line);
		n = 0;
	}
}

static void
tls_check(void)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct timeval tv = {10, 0};
	char ehlo[4096] = "";
	int fd, starttls, verified = 0;
	SSL_CTX *ctx;
	SSL *ssl;
	buf_t *desc;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr_text, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		inet_pton(AF_INET6, addr_text, &s6->sin6_addr);
		sl = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		inet_pton(AF_INET, addr_text, &s4->sin_addr);
		sl = sizeof(*s4);
	}
	fd = socket(ss.ss_family, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 ||
	    read_reply(fd, NULL, 0) != 220) {
		printf(", \"connected\": false");
		close(fd);
		return;
	}
	dprintf(fd, "EHLO probe.invalid\r\n");
	if (read_reply(fd, ehlo, sizeof(ehlo)) != 250) {
		printf(", \"connected\": true, \"starttls\": false");
		close(fd);
		return;
	}
	/* A keyword line, not the server's name ("mx.nostarttls..."). */
	starttls = strcasestr(ehlo, "250-STARTTLS\r") != NULL ||
	           strcasestr(ehlo, "250 STARTTLS\r") != NULL;
	printf(", \"connected\": true, \"starttls\": %s",
	    starttls ? "true" : "false");
	if (!starttls) {
		close(fd);
		return;
	}
	dprintf(fd, "STARTTLS\r\n");
	if (read_reply(fd, NULL, 0) != 220) {
		close(fd);
		return;
	}
	desc = buf_new(1024);
	ctx = SSL_CTX_new(TLS_client_method());
	dane_ctx_enable(ctx);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	ssl = SSL_new(ctx);
	if (saved_state == DANE_HOST_USABLE)
		dane_ssl_setup(ssl, saved_base, host, saved, nsaved, desc);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1) {
		printf(", \"handshake\": true, \"protocol\": \"%s\"",
		    SSL_get_version(ssl));
		if (saved_state == DANE_HOST_USABLE)
			verified = dane_ssl_verified(ssl, desc);
		SSL_shutdown(ssl);
	} else {
		printf(", \"handshake\": false");
	}
	printf(", \"verified\": %s, \"desc\": ", verified ? "true" : "false");
	json_str(buf_data(desc));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	buf_free(desc);
}

static void
on_dane(void *arg, const struct dane_host_result *r)
{
	size_t i;

	(void)arg;
	saved_state = r->state;
	printf("\"state\": \"%s\", \"base\": ", dane_host_state_name(r->state));
	json_str(r->base ? r->base : "");
	printf(", \"nrec\": %zu, \"nusable\": %zu, \"why\": ", r->nrec,
	    r->nusable);
	json_str(r->why);
	if (r->base)
		snprintf(saved_base, sizeof(saved_base), "%s", r->base);
	for (i = 0; i < r->nrec && i < 64; i++) {
		saved[i] = r->recs[i];
		if (r->recs[i].len && r->recs[i].len <= TLSA_DATA_MAX) {
			memcpy(saved_data[i], r->recs[i].data, r->recs[i].len);
			saved[i].data = saved_data[i];
		}
	}
	nsaved = i;
	done = 1;
	event_base_loopexit(base, NULL);
}

static void
on_addr(void *arg, const struct resolver_answer *a)
{
	(void)arg;
	printf("{\"host\": ");
	json_str(host);
	printf(", \"addr_rcode\": \"%s\", \"addr_dnssec\": \"%s\", "
	       "\"canonical\": ",
	    resolver_rcode_name(a->rcode), resolver_dnssec_name(a->dnssec));
	json_str(a->canonical);
	printf(", ");
	if (a->rcode == RESOLVER_OK && a->nrr > 0)
		inet_ntop(a->rr[0].u.addr.family, a->rr[0].u.addr.addr,
		    addr_text, sizeof(addr_text));
	if (a->rcode != RESOLVER_OK ||
	    dane_lookup(res, host, a->dnssec, a->canonical, a->cname_secure,
	        on_dane, NULL) == 0) {
		saved_state = DANE_HOST_NONE;
		printf("\"state\": \"none\", \"why\": \"address records not "
		       "secure: no TLSA lookup\"");
		done = 1;
		event_base_loopexit(base, NULL);
	}
}

int
main(int argc, char **argv)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(4096);
	struct timeval limit = {60, 0};
	int c;

	while ((c = getopt(argc, argv, "c:tp:")) != -1) {
		switch (c) {
		case 'c':
			if (config_load(cfg, optarg, err) < 0) {
				fprintf(
				    stderr, "dane_probe: %s\n", buf_data(err));
				return 78;
			}
			break;
		case 't':
			do_tls = 1;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: dane_probe -c CONFIG [-t] [-p "
			                "PORT] HOST\n");
			return 64;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: dane_probe -c CONFIG [-t] HOST\n");
		return 64;
	}
	snprintf(host, sizeof(host), "%s", argv[optind]);
	log_open("dane_probe", "-");
	base = event_base_new();
	if ((res = resolver_new(base, cfg, err)) == NULL) {
		fprintf(stderr, "dane_probe: %s\n", buf_data(err));
		return 78;
	}
	resolver_lookup(res, host, RESOLVER_A, on_addr, NULL);
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	if (done && do_tls && addr_text[0])
		tls_check();
	printf("}\n");
	resolver_free(res);
	event_base_free(base);
	config_free(cfg);
	buf_free(err);
	return done ? 0 : 1;
}
