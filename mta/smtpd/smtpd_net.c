/*
 * smtpd_net - mynetworks matching and "host:port" parsing; see
 * smtpd_int.h.
 *
 * Postfix writes IPv6 networks in mynetworks as "[::1]/128"; the bare
 * form "::1/128" is accepted too.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mta/util/config.h"
#include "mta/util/xalloc.h"
#include "smtpd_int.h"

static int
parse_net(const char *item, struct smtpd_net *net)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *slash = strchr(item, '/'), *h = item;
	size_t hlen = slash ? (size_t)(slash - item) : strlen(item);
	unsigned max;

	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, host, net->addr) == 1) {
		net->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, net->addr) == 1) {
		net->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	net->prefix = max;
	if (slash) {
		const char *p = slash + 1;
		unsigned v = 0;

		if (*p == '\0' || strlen(p) > 3)
			return -1;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			v = v * 10 + (unsigned)(*p - '0');
		}
		if (v > max)
			return -1;
		net->prefix = v;
	}
	return 0;
}

int
smtpd_netlist_parse(const char *list, struct smtpd_netlist *nl, buf_t *err)
{
	const char *cur = list ? list : "";
	char item[128];
	int r;

	nl->nets = NULL;
	nl->n = 0;
	while ((r = config_list_next(&cur, item, sizeof(item))) != 0) {
		struct smtpd_net net;

		if (r < 0 || parse_net(item, &net) < 0) {
			buf_printf(err, "mynetworks: bad network: %.100s",
			    r < 0 ? "(too long)" : item);
			smtpd_netlist_free(nl);
			return -1;
		}
		nl->nets = xreallocarray(nl->nets, nl->n + 1, sizeof(net));
		nl->nets[nl->n++] = net;
	}
	return 0;
}

static int
prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int
smtpd_netlist_match(const struct smtpd_netlist *nl, const struct sockaddr *sa)
{
	unsigned char a[16];
	int family;
	size_t i;

	if (sa->sa_family == AF_INET) {
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		/* A v4-mapped client is matched as the IPv4 client it is. */
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(a, a6->s6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, a6->s6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return 0;
	}
	for (i = 0; i < nl->n; i++)
		if (nl->nets[i].family == family &&
		    prefix_match(a, nl->nets[i].addr, nl->nets[i].prefix))
			return 1;
	return 0;
}

void
smtpd_netlist_free(struct smtpd_netlist *nl)
{
	free(nl->nets);
	nl->nets = NULL;
	nl->n = 0;
}

int
smtpd_split_addrport(
    const char *ap, char *host, size_t hostsize, char *port, size_t portsize)
{
	const char *colon, *h;
	size_t hlen, plen;

	if (ap[0] == '[') {
		const char *close = strchr(ap, ']');

		if (close == NULL || close[1] != ':')
			return -1;
		h = ap + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(ap, ':');
		if (colon == NULL)
			return -1;
		h = ap;
		hlen = (size_t)(colon - ap);
		/* An unbracketed IPv6 address is ambiguous: refuse it. */
		if (memchr(h, ':', hlen) != NULL)
			return -1;
	}
	plen = strlen(colon + 1);
	if (hlen == 0 || hlen >= hostsize || plen == 0 || plen >= portsize ||
	    strspn(colon + 1, "0123456789") != plen)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memcpy(port, colon + 1, plen + 1);
	return 0;
}
