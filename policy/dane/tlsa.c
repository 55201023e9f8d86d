/*
 * tlsa - TLSA RDATA decoding and SMTP usability (RFC 6698 2.1, RFC 7672
 * 3.1, RFC 7671 5); see tlsa.h.
 */
#include <stddef.h>

#include "policy/dane/tlsa.h"

const char *
tlsa_decode(const unsigned char *rdata, size_t len, struct tlsa_rec *rec)
{
	/* RFC 6698 2.1: usage, selector and matching type octets, then the
	 * certificate association data, which may not be empty. */
	if (len < 4)
		return "TLSA record shorter than 4 bytes";
	if (len - 3 > TLSA_DATA_MAX)
		return "TLSA association data too long";
	rec->usage = rdata[0];
	rec->selector = rdata[1];
	rec->mtype = rdata[2];
	rec->data = rdata + 3;
	rec->len = len - 3;
	return NULL;
}

const char *
tlsa_usable(const struct tlsa_rec *rec)
{
	/* RFC 7672 3.1.3: PKIX-TA(0) and PKIX-EE(1) are treated as unusable
	 * by SMTP clients; anything beyond 3 is unassigned. */
	switch (rec->usage) {
	case TLSA_PKIX_TA:
		return "usage PKIX-TA(0) is unusable for SMTP (RFC 7672 3.1.3)";
	case TLSA_PKIX_EE:
		return "usage PKIX-EE(1) is unusable for SMTP (RFC 7672 3.1.3)";
	case TLSA_DANE_TA:
	case TLSA_DANE_EE:
		break;
	default:
		return "unknown certificate usage";
	}
	if (rec->selector > 1)
		return "unknown selector";
	switch (rec->mtype) {
	case 0:
		/* Full data: a DER certificate or SubjectPublicKeyInfo,
		 * which is at least a SEQUENCE header. */
		if (rec->len < 2 || rec->data[0] != 0x30)
			return "full association data is not DER";
		break;
	case 1:
		if (rec->len != 32)
			return "SHA2-256 digest is not 32 bytes";
		break;
	case 2:
		if (rec->len != 64)
			return "SHA2-512 digest is not 64 bytes";
		break;
	default:
		return "unknown matching type";
	}
	return NULL;
}

const char *
tlsa_usage_name(unsigned usage)
{
	switch (usage) {
	case TLSA_PKIX_TA:
		return "PKIX-TA(0)";
	case TLSA_PKIX_EE:
		return "PKIX-EE(1)";
	case TLSA_DANE_TA:
		return "DANE-TA(2)";
	case TLSA_DANE_EE:
		return "DANE-EE(3)";
	default:
		return "unassigned";
	}
}
