/*
 * smtp_cmd - pure parsers for SMTP server commands (RFC 5321 4.1, with the
 * MAIL/RCPT parameters of SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8
 * RFC 6531, DSN RFC 3461, REQUIRETLS RFC 8689 and AUTH RFC 4954).
 *
 * No I/O, no allocation, no libevent or OpenSSL: the SMTP listener and
 * `sendmail -bs` share these. Every function works on (const char *,
 * size_t) input that need not be NUL-terminated, and returns NULL on
 * success or a complete SMTP reply line without CRLF, for example
 * "501 5.1.3 Bad recipient address syntax". The reply code is the first
 * three digits (smtp_reply_code()); the string is static.
 *
 * Outputs are fixed-size arrays in caller-owned structs, sized for the
 * RFC limits below, so nothing needs freeing.
 */
#ifndef STRICTMTA_SMTP_CMD_H
#define STRICTMTA_SMTP_CMD_H

#include <stddef.h>

/* RFC 5321 4.5.3.1: command line incl. CRLF, local part, domain, path
 * incl. the angle brackets. */
#define SMTP_LINE_MAX 512
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256
/* RFC 4954 4: an AUTH line (command with initial response, or a
 * continuation) may be up to 12288 octets. */
#define SMTP_AUTH_LINE_MAX 12288
/* RFC 3461 4.4 (ENVID, decoded) and 4.2 (ORCPT, as sent). */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

enum smtp_line_status {
	SMTP_LINE_OK, /* a line ending in CRLF */
	SMTP_LINE_BARE_LF, /* a line ending in LF without CR: refuse it */
	SMTP_LINE_PARTIAL, /* no LF yet and still under the limit */
	SMTP_LINE_TOOLONG, /* no LF within max bytes */
};

/*
 * Finds the first line in data[0..len). On SMTP_LINE_OK and
 * SMTP_LINE_BARE_LF, *linelen is its length without the terminator and
 * *used the bytes to consume with it. max is the limit incl. CRLF
 * (SMTP_LINE_MAX); a line longer than that, even if complete, is
 * SMTP_LINE_TOOLONG with *used covering it when its LF was seen (else 0:
 * the caller discards input up to the next LF).
 */
enum smtp_line_status smtp_line_find(
    const char *data, size_t len, size_t max, size_t *linelen, size_t *used);

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};

/* Lower-case name of a verb ("ehlo"), for logs; "unknown" otherwise. */
const char *smtp_verb_name(enum smtp_verb);

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* points into the line; NOT NUL-terminated */
	size_t arglen; /* 0 when there is no argument */
};

/*
 * Splits a command line (without CRLF) into verb and argument (surrounding
 * spaces removed) and checks the argument's presence per verb. Refuses
 * control characters, a line over SMTP_LINE_MAX - 2 bytes (AUTH:
 * SMTP_AUTH_LINE_MAX - 2) and unknown verbs (502 5.5.2; cmd->verb is then
 * SMTP_VERB_UNKNOWN). Bytes >= 0x80 are allowed (SMTPUTF8 addresses).
 */
const char *smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd);

/* HELO/EHLO argument: a domain or address literal, printable, no spaces. */
const char *smtp_cmd_check_helo(const char *arg, size_t len);

enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME };
enum smtp_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };

struct smtp_mail_args {
	char path[SMTP_PATH_MAX + 1]; /* "local@domain", "" = null sender */
	int has_size;
	unsigned long long size;
	enum smtp_body body;
	int smtputf8;
	int requiretls;
	enum smtp_ret ret;
	int has_envid;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext-decoded */
	int has_auth;
	char auth[SMTP_ORCPT_MAX + 1]; /* AUTH=, xtext-decoded; "<>" kept */
	int utf8_path; /* path has bytes >= 0x80 */
};

/* RFC 3461 NOTIFY bits, the same values as queue.h's DSN_NOTIFY_*. */
#define SMTP_NOTIFY_NEVER 0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY 0x8

struct smtp_rcpt_args {
	char path[SMTP_PATH_MAX + 1]; /* "local@domain" or "postmaster" */
	unsigned notify; /* SMTP_NOTIFY_*; 0: not given */
	int has_orcpt;
	/* "addr-type;xtext" exactly as sent (validated), so that a relay
	 * passes it on unchanged (RFC 3461 4.2). */
	char orcpt[SMTP_ORCPT_MAX + 1];
	int utf8_path;
};

/*
 * MAIL argument: "FROM:<path> [params]" (spaces after the colon are
 * tolerated). Unknown parameters: 555 5.5.4. A non-ASCII path without
 * SMTPUTF8: 553 5.6.7. The SIZE value is returned, not checked against a
 * limit (the caller's 552 5.3.4).
 */
const char *smtp_cmd_parse_mail(
    const char *arg, size_t len, struct smtp_mail_args *out);
/*
 * RCPT argument: "TO:<path> [params]". smtputf8: the transaction's MAIL
 * had SMTPUTF8 (else a non-ASCII path is 553 5.6.7). "<postmaster>"
 * without a domain is accepted (RFC 5321 4.5.1).
 */
const char *smtp_cmd_parse_rcpt(
    const char *arg, size_t len, int smtputf8, struct smtp_rcpt_args *out);

/* Nonzero when data[0..len) is well-formed UTF-8 (no overlongs or
 * surrogates). */
int smtp_utf8_valid(const char *data, size_t len);

/* The three-digit code at the start of a reply string; 0 if none. */
int smtp_reply_code(const char *reply);

#endif
