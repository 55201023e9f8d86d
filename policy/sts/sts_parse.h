/*
 * sts_parse - the MTA-STS text formats (RFC 8461), as pure functions.
 *
 *   3.1  the _mta-sts TXT record: "v=STSv1; id=...", and choosing the one
 *        record among a TXT RRset;
 *   3.2  the policy file: version, mode, max_age, mx lines;
 *   3.3  the media type of the policy response;
 *   4.1  matching an MX host name against the policy's mx patterns.
 *
 * Nothing here does I/O; every function takes (pointer, length) input from
 * the network and enforces its own caps, and is fuzzed (fuzz_sts_txt,
 * fuzz_sts_policy). Error strings are static and say what was wrong.
 */
#ifndef STRICTMTA_STS_PARSE_H
#define STRICTMTA_STS_PARSE_H

#include <stddef.h>

#define STS_ID_MAX 32 /* RFC 8461 3.1: 1*32(ALPHA / DIGIT) */
#define STS_POLICY_MAX 65536 /* body limit we fetch and parse */
#define STS_MAX_AGE_MAX 31557600 /* RFC 8461 3.2; larger is invalid here */
#define STS_MX_MAX 64 /* more mx lines than this: invalid */

enum sts_mode { STS_MODE_NONE, STS_MODE_TESTING, STS_MODE_ENFORCE };

/*
 * Parses one TXT record (character-strings already joined). On success
 * copies the id into id (NUL-terminated) and returns NULL.
 */
const char *sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1]);

/* Nonzero when the record begins "v=STSv1" then optional blanks and ";":
 * other records are not STS records at all (RFC 8461 3.1). */
int sts_txt_is_sts(const char *txt, size_t len);

enum sts_txt_result {
	STS_TXT_FOUND, /* exactly one valid STSv1 record; id set */
	STS_TXT_NONE, /* no STSv1 record */
	STS_TXT_MULTIPLE, /* more than one: no policy (3.1) */
	STS_TXT_INVALID, /* the one STSv1 record is malformed: no policy */
};
/* Picks the record out of an RRset of n records (txts[i], lens[i]). */
enum sts_txt_result sts_txt_select(const char *const *txts, const size_t *lens,
    size_t n, char id[STS_ID_MAX + 1], const char **why);

/* A parsed policy. Owned by the caller; free with sts_policy_free(). */
struct sts_policy {
	enum sts_mode mode;
	long max_age;
	size_t nmx;
	char **mx; /* lower-cased patterns, e.g. "mail.example", "*.example" */
};

const char *sts_policy_parse(
    const char *body, size_t len, struct sts_policy **out);
void sts_policy_free(struct sts_policy *); /* NULL is a no-op */
const char *sts_mode_name(enum sts_mode);

/*
 * RFC 8461 4.1: host (an MX name, case-insensitive, trailing dot allowed)
 * matches pattern when equal, or when the pattern is "*.rest" and host is
 * exactly one label followed by ".rest".
 */
int sts_pattern_match(const char *pattern, const char *host);
/* Nonzero if any of the policy's mx patterns matches host. */
int sts_policy_match(const struct sts_policy *, const char *host);

/* RFC 8461 3.3: the Content-Type must be text/plain (any parameters). */
int sts_content_type_ok(const char *content_type);

#endif
