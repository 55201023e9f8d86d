/*
 * tlsrpt_txt - the _smtp._tls TXT record of SMTP TLS Reporting (RFC 8460 3),
 * as pure functions.
 *
 *   tlsrpt_txt_parse   one record: "v=TLSRPTv1; rua=URI[,URI...]" plus
 *                      extensions, which are checked and ignored;
 *   tlsrpt_txt_select  the one record among a TXT RRset (3: records not
 *                      starting with v=TLSRPTv1 are discarded; not exactly
 *                      one left means the domain does not use TLSRPT).
 *
 * Input is (pointer, length) from the network, character-strings already
 * joined without spaces. Explicit caps below; fuzzed by fuzz_tlsrpt_txt.
 * Error strings are static. The caller owns struct tlsrpt_rua.
 */
#ifndef STRICTMTA_TLSRPT_TXT_H
#define STRICTMTA_TLSRPT_TXT_H

#include <stddef.h>

#define TLSRPT_TXT_MAX 4096 /* longer records are invalid here */
#define TLSRPT_RUA_MAX 8 /* more rua URIs: invalid */
#define TLSRPT_URI_MAX 512 /* longer URI: invalid */

/* The usable report URIs, "mailto:" and "https:" only, in record order. */
struct tlsrpt_rua {
	size_t n;
	char uri[TLSRPT_RUA_MAX][TLSRPT_URI_MAX + 1];
};

/* Parses one record into *out; NULL on success, else why it is invalid. */
const char *tlsrpt_txt_parse(
    const char *txt, size_t len, struct tlsrpt_rua *out);

/* Whether a record starts with the version tag (and is not another one). */
int tlsrpt_txt_is_tlsrpt(const char *txt, size_t len);

enum tlsrpt_txt_result {
	TLSRPT_TXT_FOUND,
	TLSRPT_TXT_NONE,
	TLSRPT_TXT_MULTIPLE,
	TLSRPT_TXT_INVALID
};

/* Picks and parses the record of an RRset of n records; *why is set for
 * INVALID (the parse error) and MULTIPLE, NULL otherwise. */
enum tlsrpt_txt_result tlsrpt_txt_select(const char *const *txts,
    const size_t *lens, size_t n, struct tlsrpt_rua *out, const char **why);

#endif
