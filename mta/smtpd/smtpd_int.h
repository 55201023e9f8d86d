/*
 * smtpd_int - internals of the SMTP listener shared by its files and its
 * unit tests; not for other modules.
 *
 *   smtpd_net.c   mynetworks (CIDR lists) and parsing "host:port"
 *   smtpd_auth.c  the SASL password file, base64, PLAIN decoding
 *   smtpd_anvil.c client keys for connection limits, failure counters
 */
#ifndef STRICTMTA_SMTPD_INT_H
#define STRICTMTA_SMTPD_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mta/util/buf.h"

/* One network of a CIDR list; IPv4 kept as 4 bytes, IPv6 as 16. */
struct smtpd_net {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	unsigned prefix;
};

struct smtpd_netlist {
	struct smtpd_net *nets; /* owned */
	size_t n;
};

/*
 * Parses a list like "127.0.0.0/8 [::1]/128 10.1.2.3 2001:db8::/32"
 * (items separated by spaces or commas; no prefix means a host). Returns
 * 0, or -1 with "mynetworks: bad network: ITEM" in err.
 */
int smtpd_netlist_parse(const char *list, struct smtpd_netlist *, buf_t *err);
/* Nonzero when addr (AF_INET or AF_INET6, v4-mapped too) is in the list. */
int smtpd_netlist_match(const struct smtpd_netlist *, const struct sockaddr *);
void smtpd_netlist_free(struct smtpd_netlist *);

/*
 * Splits "host:port", "[v6]:port" or "[v4]:port" into host (NUL-terminated,
 * without brackets) and port. Returns 0 or -1.
 */
int smtpd_split_addrport(const char *addrport, char *host, size_t hostsize,
    char *port, size_t portsize);

typedef struct smtpd_passwd smtpd_passwd_t;

/*
 * Reads "user:hash" lines (blank lines and '#' comments skipped); a hash
 * must be a crypt(3) hash ("$y$...", "$6$..."). NULL with
 * "PATH:LINE: what" or "PATH: cause" in err.
 */
smtpd_passwd_t *smtpd_passwd_load(const char *path, buf_t *err);
void smtpd_passwd_free(smtpd_passwd_t *);
size_t smtpd_passwd_count(const smtpd_passwd_t *);
/* 1 when user exists and pass matches its hash; 0 otherwise. */
int smtpd_passwd_check(
    const smtpd_passwd_t *, const char *user, const char *pass);

/*
 * Strict base64 (RFC 4648 4, padding required, pad bits zero as 3.5
 * allows us to demand) into out; "=" alone decodes to nothing (RFC 4954
 * 4). Returns the decoded length or -1.
 */
long smtpd_b64_decode(
    const char *in, size_t len, unsigned char *out, size_t outsize);
/* Encodes into out (NUL-terminated); returns the length or -1. */
long smtpd_b64_encode(
    const unsigned char *in, size_t len, char *out, size_t outsize);

/*
 * RFC 4616 PLAIN message: authzid NUL authcid NUL passwd. authzid must be
 * empty or equal to authcid. Copies user and password (NUL-terminated).
 * Returns 0 or -1.
 */
int smtpd_sasl_plain(const unsigned char *msg, size_t len, char *user,
    size_t usersize, char *pass, size_t passsize);

/*
 * What connection limits and failure counters count: an IPv4 address (a
 * v4-mapped IPv6 address counts as IPv4), or an IPv6 network of
 * v6_prefix bits, because one IPv6 client usually holds a whole /64.
 */
struct smtpd_client_key {
	unsigned char family; /* AF_INET or AF_INET6; 0 for anything else */
	unsigned char addr[16];
};

void smtpd_client_key(
    const struct sockaddr *, unsigned v6_prefix, struct smtpd_client_key *);
int smtpd_client_key_eq(
    const struct smtpd_client_key *, const struct smtpd_client_key *);
/* "192.0.2.1" or "2001:db8:1:2::/64" into out (NUL-terminated). */
void smtpd_client_key_format(
    const struct smtpd_client_key *, unsigned v6_prefix, char *, size_t);

/*
 * Counts events (failed logins) per key in fixed windows of window_secs,
 * in a table of a fixed number of slots: when full, the slot with the
 * oldest window goes, so memory is bounded whatever the clients do.
 * Keys are hashed with a per-table random seed.
 */
typedef struct smtpd_rate smtpd_rate_t;

smtpd_rate_t *smtpd_rate_new(size_t slots, unsigned window_secs);
void smtpd_rate_free(smtpd_rate_t *);
/* Adds one event; returns the count in the current window, this one in. */
unsigned smtpd_rate_add(smtpd_rate_t *, const void *key, size_t, int64_t now);
/* The count in the current window. */
unsigned smtpd_rate_get(smtpd_rate_t *, const void *key, size_t, int64_t now);

#endif
