/*
 * sendmail - the Sendmail-compatible submission command (also `mailq`):
 * option parsing, the stdin reader, header fix-ups and the drop into the
 * maildrop area. The program (main.c) only dispatches on the mode; the
 * pieces here are pure or take their inputs as arguments, so the unit
 * tests drive them without a daemon.
 *
 * Choices where implementations differ, recorded here (the cases are in
 * shared/vectors/sendmail-cli.json):
 *  - -t with recipients on the command line ADDS them to the ones found in
 *    the headers (Postfix, Sendmail 8 per the O'Reilly book), not Exim's
 *    "remove them": a caller that names a recipient wants it to get mail.
 *  - Options are recognised anywhere before "--" (GNU getopt permutation,
 *    as Postfix on Linux); everything after "--" is a recipient.
 *  - -N, -R and -V with a bad value print a warning and are ignored
 *    (Postfix); -B with a bad value and any unknown option exit 64.
 *  - -n is accepted and ignored (its documented meaning; Postfix 3.12's
 *    parser refuses it, Exim ignores it).
 *  - Line endings: LF and CRLF both end a line and are stored as CRLF
 *    (the maildrop holds wire form; Postfix stores LF). A CR anywhere else
 *    (a "bare CR") becomes a space, since RFC 5322 forbids it and it is a
 *    smuggling tool; so does a NUL byte. Rewriting keeps cron and script
 *    output flowing where refusing would lose it.
 *  - Without -i, a line that is exactly "." (after its CR, if any, is
 *    removed) ends the input; ". " does not. Lines are never wrapped, so a
 *    "." at the end of a long line is text. No dot-unstuffing: "..x"
 *    stays "..x".
 *  - Leading "From " / ">From " (mbox) lines are dropped, never used as
 *    the sender.
 *  - Bcc:, Resent-Bcc:, Return-Path: and Content-Length: are always
 *    removed (Postfix's message_drop_headers), with or without -t.
 *  - Unqualified addresses (sender, recipients) get "@" mydomain. -f takes
 *    one address, "<>" or "" (the null sender), display name allowed.
 *  - -bv and -bd exit 64; -v is accepted but mails no delivery report;
 *    -qR<site> and -qI<id> flush the whole queue; -q<interval> does
 *    nothing (the daemon runs the queue).
 *  - sendmail never logs to its caller's stderr: maillog_file "-" (the
 *    daemon's stderr) and an unwritable log file mean syslog here.
 *  - When -C or STRICTMTA_CONFIG names another config file and sendmail
 *    runs setgid, it keeps its group only if root owns that file and its
 *    folder and neither is group or world writable; otherwise it drops
 *    the group first (as Exim does for -C), so that a user cannot aim the
 *    group's write access at a folder of their choosing.
 */
#ifndef STRICTMTA_SENDMAIL_H
#define STRICTMTA_SENDMAIL_H

#include <stddef.h>
#include <sys/types.h>

#include "maildrop.h"
#include "mta/util/buf.h"
#include "mta/util/config.h"

#define SENDMAIL_DEFAULT_CONFIG "/etc/strictmta/main.cf"
#define SENDMAIL_ADDRLIST_MAX (1024 * 1024) /* one header or argument */

enum sendmail_mode {
	SENDMAIL_MODE_DELIVER = 0, /* -bm, the default */
	SENDMAIL_MODE_LIST, /* -bp, mailq */
	SENDMAIL_MODE_FLUSH, /* -q */
	SENDMAIL_MODE_SMTP, /* -bs */
	SENDMAIL_MODE_NOOP, /* -bi, newaliases, -q<interval>: exit 0 */
};

/*
 * Parsed command line. String fields point into argv (not owned); rcpts
 * is an owned array of pointers into argv (free it with
 * sendmail_opts_free()).
 */
struct sendmail_opts {
	enum sendmail_mode mode;
	int extract; /* -t */
	int dot_ends; /* 1 unless -i or -oi */
	int verbose; /* count of -v */
	const char *sender; /* -f / -r; NULL: the login name */
	const char *fullname; /* -F; NULL: $NAME, then the GECOS field */
	const char *config; /* -C; NULL: default or $STRICTMTA_CONFIG */
	unsigned notify; /* -N, MAILDROP_NOTIFY_* */
	int ret; /* -R, MAILDROP_RET_* */
	const char *envid; /* -V */
	unsigned flags; /* -B8BITMIME, -SMTPUTF8: MAILDROP_F_* */
	char **rcpts; /* recipient arguments, each an address list */
	size_t nrcpt;
};

/*
 * Parses argv (argv[0] chooses mailq / newaliases). Returns 0, or an exit
 * code (EX_USAGE) with a message for the user in err. Warnings for
 * ignored bad values (-N, -R, -V) are appended to warn, one per line.
 */
int sendmail_parse_args(
    int argc, char **argv, struct sendmail_opts *, buf_t *err, buf_t *warn);
void sendmail_opts_free(struct sendmail_opts *);

/*
 * Pure RFC 5322 address-list parser (To:, Cc:, a command-line argument):
 * display names, comments, quoted strings, groups and routes are handled;
 * each addr-spec is appended (owned copies) to *list / *n, empty ones
 * ("<>", "undisclosed-recipients:;") are skipped. Returns NULL or an error
 * string; on error entries already appended stay (the caller frees).
 */
const char *sendmail_addrlist_parse(
    const char *s, size_t len, char ***list, size_t *n);
/*
 * Normalises one address for the envelope: strips <>, appends
 * "@" domain when there is none. Returns an owned string, or NULL when the
 * address has control characters or is too long.
 */
char *sendmail_qualify(const char *addr, const char *domain);

/*
 * The stdin reader: feeds raw bytes in, gets CRLF lines out (see the
 * choices above). Owned by the caller; free with sendmail_reader_free().
 */
struct sendmail_reader;
struct sendmail_reader *sendmail_reader_new(int dot_ends, size_t cap);
void sendmail_reader_free(struct sendmail_reader *);
/* Returns 0 for more, 1 once the "." line was seen (stop reading), -1 when
 * the content would exceed cap. */
int sendmail_reader_feed(struct sendmail_reader *, const char *, size_t);
/* Ends input (a last line without newline gets CRLF); hands the content
 * to the caller (free()). */
char *sendmail_reader_finish(struct sendmail_reader *, size_t *lenp);

/* Header fix-up inputs: complete header lines without CRLF, or NULL. */
struct sendmail_hdr_params {
	int extract; /* -t: collect To/Cc/Bcc (or Resent-*) */
	const char *received; /* prepended; may contain CRLF TAB folds */
	const char *from; /* "From: ..." added when missing */
	const char *date; /* "Date: ..." added when missing */
	const char *message_id; /* "Message-ID: ..." added when missing */
};

struct sendmail_hdr_result {
	char **rcpts; /* -t: addresses from the headers, owned */
	size_t nrcpt;
	int tls_optional; /* "TLS-Required: No" (RFC 8689 5) */
	int eightbit; /* a byte >= 0x80 anywhere */
};

/*
 * Pure: content (CRLF lines, from the reader) -> out (appended) with
 * Bcc and friends removed and missing headers added; with extract, the
 * header recipients in res. Returns NULL or an error string (a bad
 * address list in a recipient header).
 */
const char *sendmail_fix_headers(const char *content, size_t len,
    const struct sendmail_hdr_params *, buf_t *out,
    struct sendmail_hdr_result *res);
void sendmail_hdr_result_free(struct sendmail_hdr_result *);

/* Who is submitting (main.c fills it from getpwuid(getuid())). */
struct sendmail_ident {
	const char *user; /* login name */
	uid_t uid;
	const char *fullname; /* GECOS, or NULL */
};

/* myhostname and mydomain with their empty-value defaults (config_table). */
void sendmail_hostnames(const struct config *, buf_t *host, buf_t *domain);

/*
 * The header values sendmail adds, pure for the tests: RFC 5322 3.3 date
 * in the local zone, and a From: value "Full Name <addr>" with the name
 * quoted when it needs to be and stripped of control characters.
 */
void sendmail_format_date(long long when, buf_t *out);
void sendmail_format_from(const char *fullname, const char *addr, buf_t *out);

/*
 * Delivery mode: reads the message from fd, builds the envelope and drops
 * it into cfg->queue_directory/maildrop. Returns 0 (qid_out set) or a
 * sysexits code with a message for the user in err.
 */
int sendmail_submit(const struct sendmail_opts *, const struct config *,
    const struct sendmail_ident *, int fd, char qid_out[QID_SIZE], buf_t *err);

/*
 * The same from an already collected message (used by -bs, which read
 * its DATA itself): sender NULL means the default; rcpts are
 * recipient addresses (not lists). content has CRLF lines.
 */
int sendmail_submit_content(const struct sendmail_opts *, const struct config *,
    const struct sendmail_ident *, const char *sender, char **rcpts,
    size_t nrcpt, const char *content, size_t len, char qid_out[QID_SIZE],
    buf_t *err);

/*
 * -bs: an SMTP session on in/out (see bs.c). Each accepted message goes to
 * the maildrop. Returns 0 (the exit status) when the session ends.
 */
int sendmail_smtp_session(const struct sendmail_opts *, const struct config *,
    const struct sendmail_ident *, int in, int out);

#endif
