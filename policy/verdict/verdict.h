/*
 * verdict - what the policy layer (DANE, MTA-STS, the configured level)
 * answers for one host delivery is about to connect to, and the types of
 * that conversation. Delivery asks (tls_verdict_fn) and the SMTP client
 * enforces the answer; both arrows point down here, to policy/.
 *
 * Header only: the SMTP client uses the levels without linking the
 * policy engine.
 */
#ifndef STRICTMTA_VERDICT_H
#define STRICTMTA_VERDICT_H

#include <stdint.h>
#include <strings.h>

#include <openssl/ssl.h>

#include "resolver/resolver.h"

/*
 * TLS security levels, weakest first, so that policies compare with <
 * and >.
 */
enum tls_level {
	TLS_LEV_NONE, /* never STARTTLS */
	TLS_LEV_MAY, /* STARTTLS when offered, any certificate */
	TLS_LEV_ENCRYPT, /* TLS required, certificate not checked */
	TLS_LEV_DANE, /* TLS required, certificate must match TLSA */
	TLS_LEV_STS_ENFORCE, /* TLS 1.2+, WebPKI certificate for the MX name */
	TLS_LEV_SECURE, /* TLS 1.2+, WebPKI certificate for the host name */
};

static inline int
tls_level_must_encrypt(enum tls_level l)
{
	return l >= TLS_LEV_ENCRYPT;
}

static inline int
tls_level_must_match(enum tls_level l)
{
	return l >= TLS_LEV_DANE;
}

static inline const char *
tls_level_name(enum tls_level l)
{
	switch (l) {
	case TLS_LEV_NONE:
		return "none";
	case TLS_LEV_MAY:
		return "may";
	case TLS_LEV_ENCRYPT:
		return "encrypt";
	case TLS_LEV_DANE:
		return "dane";
	case TLS_LEV_STS_ENFORCE:
		return "sts-enforce";
	case TLS_LEV_SECURE:
		return "secure";
	}
	return "unknown";
}

/* "none", "may", "encrypt", "dane", "sts-enforce", "secure"; -1 if
 * unknown. */
static inline int
tls_level_parse(const char *s, enum tls_level *out)
{
	int l;

	for (l = TLS_LEV_NONE; l <= TLS_LEV_SECURE; l++)
		if (strcasecmp(s, tls_level_name((enum tls_level)l)) == 0) {
			*out = (enum tls_level)l;
			return 0;
		}
	return -1;
}

/* Returns 0, or -1 when the SSL could not be set up as the verdict needs:
 * the session then fails with 4.7.5, never goes on less verified. */
typedef int tls_setup_fn(void *arg, SSL *);

/* What the engine is asked about. */
struct tls_verdict_req {
	const char *domain; /* recipient domain (the policy domain) */
	const char *host; /* MX host name (or the nexthop) */
	unsigned port;
	int via_mx; /* host came from an MX lookup */
	enum dnssec_status mx_dnssec; /* of the MX RRset */
	enum dnssec_status host_dnssec; /* of the host's address records */
	int nexthop; /* routed by transport_maps or an address literal,
	                not by the recipient domain's own DNS */
};

#define TLS_VERDICT_STATUS_SIZE 16

struct tls_verdict {
	enum tls_level level;
	/* "" to use the host; else skip it (e.g. "4.7.5") with reason. */
	char status[TLS_VERDICT_STATUS_SIZE];
	char reason[256];
	/* static: "config", "dane", "mta-sts". Only a "config" verdict at
	 * level may allows smtp_tls_fallback_to_clear: the engine answers
	 * "config" for destinations without a DANE or MTA-STS policy. */
	const char *source;
	/* Optional: set up the SSL (TLSA records) before the handshake;
	 * free_fn(arg) is called when the connection ends. */
	tls_setup_fn *tls_setup;
	void *tls_setup_arg;
	void (*tls_setup_free)(void *);
};

/* Called once, from the event loop, never from inside the request. */
typedef void tls_verdict_done(void *arg, const struct tls_verdict *);
/* Returns a nonzero request id for cancel. */
typedef uint64_t tls_verdict_fn(void *parg, const struct tls_verdict_req *,
    tls_verdict_done *done, void *arg);
typedef void tls_verdict_cancel_fn(void *parg, uint64_t id);

#endif
