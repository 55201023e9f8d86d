/*
 * tlsrpt_mail - the artefacts of one TLS report as RFC 8460 5 wants them
 * delivered, as pure functions (no I/O):
 *
 *   tlsrpt_mail_filename  "sender!policy-domain!begin!end!id.json.gz" (5.3);
 *   tlsrpt_mail_build     the mailto: message: multipart/report;
 *                         report-type="tlsrpt" with the Subject, the
 *                         TLS-Report-Domain and TLS-Report-Submitter
 *                         headers (5.3), TLS-Required: No (RFC 8689 5, so
 *                         that a report about broken TLS can arrive), a
 *                         text/plain summary, the application/tlsrpt+gzip
 *                         part in base64; DKIM-signed when a signer is
 *                         given (5.3).
 *
 * The message uses CRLF line ends and 7-bit text only. The caller owns
 * every argument; the message is appended to out (its cap bounds it).
 * When queued, its envelope gets QENV_TLS_OPTIONAL | QENV_TLSRPT.
 */
#ifndef STRICTMTA_TLSRPT_MAIL_H
#define STRICTMTA_TLSRPT_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include "mta/util/buf.h"
#include "policy/tlsrpt/tlsrpt_dkim.h"

struct tlsrpt_mail {
	const char *submitter; /* e.g. the host name: "mx.example.org" */
	const char *from; /* envelope and From: address */
	const char *to; /* the rua mailto: address, without "mailto:" */
	const char *policy_domain;
	const char *report_id; /* from the JSON's report-id */
	int64_t begin, end; /* the report's date-range, unix seconds */
	const char *summary; /* human-readable text, LF or CRLF lines */
	const void *gz; /* the gzip report */
	size_t gzlen;
	int64_t now; /* Date: and DKIM t= */
};

/* Appends the file name (without any path) to out; -1 if out overflowed. */
int tlsrpt_mail_filename(const char *submitter, const char *policy_domain,
    int64_t begin, int64_t end, const char *unique_id, buf_t *out);

/* 0, or -1 with err set (a header value with CR/LF, DKIM failure, full
 * buffer). dkim may be NULL: no signature. */
int tlsrpt_mail_build(
    const struct tlsrpt_mail *, tlsrpt_dkim_t *dkim, buf_t *out, buf_t *err);

#endif
