/*
 * maildrop - the drop area between sendmail(1) and the daemon.
 *
 * sendmail never opens the queue database: it writes one file per message
 * into queue_directory/maildrop and the daemon imports it (Postfix's
 * postdrop model). The folder is owned by mail_owner, group setgid_group,
 * mode 1730; sendmail is setgid to that group, so any local user can add a
 * file but nobody except the daemon can list, read or remove one.
 *
 * File names. A finished file is named by its queue ID (qid_valid()); the
 * daemon uses that name as the queue ID, so an import that is interrupted
 * and repeated stores the same message once. Files in progress are named
 * ".tmp.XXXXXX" in the same folder (so the final rename is atomic) and are
 * never imported; the daemon may remove stale ones.
 *
 * File format, version 1 (all integers decimal ASCII, no sign, no leading
 * zeros):
 *
 *   "SMTAMD1\n"                    magic and version
 *   then records, in the order below: TAG LEN ':' BYTES '\n'
 *     TAG   one upper-case letter; LEN the count of BYTES (1 to 10 digits)
 *     S  sender address, no <> ("" = null sender)             once
 *     R  recipient address                                    1 or more
 *     N  DSN NOTIFY bits, DSN_NOTIFY_* of queue/queue.h        at most once
 *     T  DSN RET: 1 FULL, 2 HDRS                              at most once
 *     E  DSN ENVID (xtext-decoded, printable ASCII)           at most once
 *     F  envelope flags, QENV_* of queue/queue.h              at most once
 *     U  login name of the submitting user                    once
 *     I  that user's uid                                      once
 *     C  the message content                                  once, last
 *   and nothing after the C record's closing '\n'.
 *
 * Addresses, the user and the envid never contain control characters.
 * The content has CRLF line endings only (no bare CR or LF), no NUL, ends
 * in CRLF
 * unless empty, and is not dot-stuffed. An unknown tag is an error: a new
 * field means a new version. A reader in another language needs only to
 * split on the first ':' after the tag and count bytes.
 */
#ifndef STRICTMTA_MAILDROP_H
#define STRICTMTA_MAILDROP_H

#include <stddef.h>

#include "mta/util/buf.h"
#include "mta/util/qid.h"

#define MAILDROP_MAGIC "SMTAMD1\n"
#define MAILDROP_SUBDIR "maildrop"
#define MAILDROP_TMP_PREFIX ".tmp."

/* Parser limits: anything longer is refused, not truncated. */
#define MAILDROP_ADDR_MAX 1024 /* one address */
#define MAILDROP_RCPT_MAX 100000 /* recipients in one file */
#define MAILDROP_ENVID_MAX 100 /* RFC 3461 4.4 */
#define MAILDROP_USER_MAX 256 /* login name */
#define MAILDROP_CONTENT_MAX 2147483647ULL /* message_size_limit's bound */

/* Same values as queue/queue.h, which sendmail must not include. */
#define MAILDROP_NOTIFY_NEVER 0x1
#define MAILDROP_NOTIFY_SUCCESS 0x2
#define MAILDROP_NOTIFY_FAILURE 0x4
#define MAILDROP_NOTIFY_DELAY 0x8
#define MAILDROP_RET_FULL 1
#define MAILDROP_RET_HDRS 2
#define MAILDROP_F_8BITMIME 0x01
#define MAILDROP_F_SMTPUTF8 0x02
#define MAILDROP_F_REQUIRETLS 0x04 /* -O requiretls (RFC 8689) */
#define MAILDROP_F_TLS_OPTIONAL 0x08
#define MAILDROP_F_ALL                                                         \
	(MAILDROP_F_8BITMIME | MAILDROP_F_SMTPUTF8 | MAILDROP_F_REQUIRETLS |   \
	    MAILDROP_F_TLS_OPTIONAL)

/*
 * One message. Every pointer is owned by the struct and released by
 * maildrop_msg_free(); rcpts is an array of nrcpt owned strings.
 */
struct maildrop_msg {
	char *sender; /* "" = null sender */
	char **rcpts;
	size_t nrcpt;
	unsigned notify; /* MAILDROP_NOTIFY_* bits for every recipient; 0 =
	                    unspecified */
	int ret; /* 0 unspecified, MAILDROP_RET_* */
	char *envid; /* or NULL */
	unsigned flags; /* MAILDROP_F_* */
	char *user; /* submitting login name */
	/*
	 * The submitter's uid as recorded. maildrop_read() replaces it with
	 * the file's owner, which the kernel vouches for: a user could write
	 * any number into the record, never another owner onto the file.
	 */
	long uid;
	char *content; /* CRLF lines, not dot-stuffed; NUL-terminated too */
	size_t len;
};

struct maildrop_msg *maildrop_msg_new(void);
void maildrop_msg_free(struct maildrop_msg *); /* NULL is a no-op */
/* Copies address into the recipient list. */
void maildrop_msg_add_rcpt(struct maildrop_msg *, const char *address);

/*
 * Checks what the parser would refuse (so that a writer never drops a file
 * the daemon cannot import). Returns NULL or an error string.
 */
const char *maildrop_msg_check(const struct maildrop_msg *);

/* Appends the encoded file (see above) to out. */
void maildrop_encode(const struct maildrop_msg *, buf_t *out);

/*
 * Pure, capped parser over len bytes (untrusted: any local user can drop a
 * file). On success returns NULL and *out (the caller's, free with
 * maildrop_msg_free); otherwise a static error string and *out = NULL.
 */
const char *maildrop_parse(
    const void *data, size_t len, struct maildrop_msg **out);

/*
 * Writes msg atomically into maildrop_dir: a ".tmp." file there, write,
 * fsync, then a rename that never replaces an existing file to
 * maildrop_dir/QID, with QID from qid_new() returned in qid_out; mode 0644
 * (the folder's 1730 mode keeps others out). Returns 0, or -1 with a
 * message naming the path and the cause in err.
 */
int maildrop_write(const char *maildrop_dir, const struct maildrop_msg *,
    char qid_out[QID_SIZE], buf_t *err);
/*
 * The same with a queue ID chosen by the caller (sendmail puts it in the
 * Message-ID: and Received: headers first). Returns 0, -1 with err, or -2
 * if a file of that name already exists (take a new ID and retry).
 */
int maildrop_write_id(const char *maildrop_dir, const struct maildrop_msg *,
    const char *qid, buf_t *err);

/*
 * Reads and parses one file (the daemon's import). Returns 0 and *out, or
 * -1 with "path: what is wrong" in err. Sets (*out)->uid to the file's
 * owner. Refuses anything that is not a regular file.
 */
int maildrop_read(const char *path, struct maildrop_msg **out, buf_t *err);

#endif
