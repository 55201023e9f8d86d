/*
 * sts_parse - MTA-STS record and policy parsers (RFC 8461 3.1, 3.2, 3.3,
 * 4.1); see sts_parse.h.
 *
 * Outline of sts_policy_parse():
 *   1. split the body into lines ending in LF or CRLF (the last line may
 *      lack one); an empty body or an empty line is invalid;
 *   2. each line is "name:" *WSP value *WSP, with name and value checked
 *      against the ABNF of 3.2 for the known fields and the extension rule
 *      for the rest (unknown fields are otherwise ignored);
 *   3. every field but mx keeps its first occurrence (3.2: later duplicates
 *      "SHALL be ignored");
 *   4. version, mode and max_age are required, and at least one mx unless
 *      the mode is none.
 *
 * Decisions where the RFC leaves a choice (also in docs/mta-sts.md):
 *   - max_age above 31557600 makes the policy invalid rather than being
 *     clamped: a publisher that exceeds the stated maximum has a broken
 *     policy, and a failed fetch keeps any cached policy in force anyway;
 *   - field names and the values "STSv1", "enforce", "testing", "none" are
 *     compared case-sensitively, as the examples are written;
 *   - more than STS_MX_MAX mx lines make the policy invalid.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mta/util/xalloc.h"
#include "mta/util/ascii.h"
#include "policy/sts/sts_parse.h"

/* sts-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static int
valid_ext_name(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 32 || !ascii_is_alnum(s[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!ascii_is_alnum(s[i]) && s[i] != '_' && s[i] != '-' &&
		    s[i] != '.')
			return 0;
	return 1;
}

int
sts_txt_is_sts(const char *txt, size_t len)
{
	size_t i = 7;

	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	while (i < len && ascii_is_wsp(txt[i]))
		i++;
	return i < len && txt[i] == ';';
}

/*
 * RFC 8461 3.1:
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field)
 *                     [sts-field-delim]
 *   sts-field-delim = *WSP ";" *WSP
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name "=" sts-ext-value
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
 */
const char *
sts_txt_parse(const char *txt, size_t len, char id[STS_ID_MAX + 1])
{
	size_t i, fields = 0;
	int have_id = 0;

	if (len > 4096)
		return "TXT record too long";
	if (!sts_txt_is_sts(txt, len))
		return "record does not start with v=STSv1;";
	i = 7;
	for (;;) {
		size_t name_start, name_len, val_start, val_len;

		/* At a delimiter: *WSP ";" *WSP */
		while (i < len && ascii_is_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] != ';')
			return "expected ';' between fields";
		i++;
		while (i < len && ascii_is_wsp(txt[i]))
			i++;
		if (i == len)
			break; /* the optional trailing delimiter */
		name_start = i;
		while (i < len && txt[i] != '=' && txt[i] != ';' &&
		       !ascii_is_wsp(txt[i]))
			i++;
		name_len = i - name_start;
		if (i == len || txt[i] != '=')
			return "field without '='";
		if (!valid_ext_name(txt + name_start, name_len))
			return "bad field name";
		i++;
		val_start = i;
		while (i < len && txt[i] > 0x20 && txt[i] < 0x7f &&
		       txt[i] != ';' && txt[i] != '=')
			i++;
		val_len = i - val_start;
		if (i < len && !ascii_is_wsp(txt[i]) && txt[i] != ';')
			return "bad character in field value";
		if (val_len == 0)
			return "empty field value";
		fields++;
		if (name_len == 2 && memcmp(txt + name_start, "id", 2) == 0 &&
		    !have_id) {
			size_t k;

			if (val_len > STS_ID_MAX)
				return "id longer than 32 characters";
			for (k = 0; k < val_len; k++)
				if (!ascii_is_alnum(txt[val_start + k]))
					return "id has a character other "
					       "than letters and digits";
			memcpy(id, txt + val_start, val_len);
			id[val_len] = '\0';
			have_id = 1;
		}
	}
	if (fields == 0 || !have_id)
		return "no id field";
	return NULL;
}

enum sts_txt_result
sts_txt_select(const char *const *txts, const size_t *lens, size_t n,
    char id[STS_ID_MAX + 1], const char **why)
{
	size_t i, found = 0, which = 0;

	*why = NULL;
	for (i = 0; i < n; i++)
		if (sts_txt_is_sts(txts[i], lens[i])) {
			found++;
			which = i;
		}
	if (found == 0) {
		*why = "no v=STSv1 TXT record";
		return STS_TXT_NONE;
	}
	if (found > 1) {
		*why = "more than one v=STSv1 TXT record";
		return STS_TXT_MULTIPLE;
	}
	if ((*why = sts_txt_parse(txts[which], lens[which], id)) != NULL)
		return STS_TXT_INVALID;
	return STS_TXT_FOUND;
}

/*
 * RFC 5321 Domain: sub-domain *("." sub-domain), sub-domain = Let-dig
 * [Ldh-str]: letters, digits and inner hyphens, ASCII only.
 */
static int
valid_domain(const char *s, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!ascii_is_alnum(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[len - 1] != '-';
}

static int
valid_mx_pattern(const char *s, size_t len)
{
	if (len >= 2 && s[0] == '*' && s[1] == '.')
		return valid_domain(s + 2, len - 2);
	return valid_domain(s, len);
}

/* sts-policy-ext-value: VCHAR (and UTF-8) with inner spaces only. */
static int
valid_ext_value(const char *s, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f || (c == ' ' && (i == 0)))
			return 0;
		if (c == '\t')
			return 0;
	}
	return 1;
}

static int
is_field(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

void
sts_policy_free(struct sts_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	free(p);
}

const char *
sts_mode_name(enum sts_mode mode)
{
	switch (mode) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	default:
		return "none";
	}
}

static const char *
parse_field(struct sts_policy *p, const char *name, size_t name_len,
    const char *val, size_t val_len, unsigned *seen)
{
	enum { SEEN_VERSION = 1, SEEN_MODE = 2, SEEN_MAX_AGE = 4 };
	size_t i;

	if (is_field(name, name_len, "version")) {
		if (val_len != 5 || memcmp(val, "STSv1", 5) != 0)
			return "version is not STSv1";
		*seen |= SEEN_VERSION;
	} else if (is_field(name, name_len, "mode")) {
		enum sts_mode m;

		if (is_field(val, val_len, "enforce"))
			m = STS_MODE_ENFORCE;
		else if (is_field(val, val_len, "testing"))
			m = STS_MODE_TESTING;
		else if (is_field(val, val_len, "none"))
			m = STS_MODE_NONE;
		else
			return "mode is not enforce, testing or none";
		if (!(*seen & SEEN_MODE))
			p->mode = m;
		*seen |= SEEN_MODE;
	} else if (is_field(name, name_len, "max_age")) {
		long n = 0;

		if (val_len == 0 || val_len > 10)
			return "max_age is not 1 to 10 digits";
		for (i = 0; i < val_len; i++) {
			if (val[i] < '0' || val[i] > '9')
				return "max_age is not a number";
			n = n * 10 + (val[i] - '0');
		}
		if (n > STS_MAX_AGE_MAX)
			return "max_age is above 31557600";
		if (!(*seen & SEEN_MAX_AGE))
			p->max_age = n;
		*seen |= SEEN_MAX_AGE;
	} else if (is_field(name, name_len, "mx")) {
		char *pat;

		if (!valid_mx_pattern(val, val_len))
			return "mx is not a host name or *.domain pattern";
		if (p->nmx >= STS_MX_MAX)
			return "too many mx lines";
		pat = xmemdup(val, val_len);
		for (i = 0; i < val_len; i++)
			pat[i] = (char)tolower((unsigned char)pat[i]);
		p->mx = xreallocarray(p->mx, p->nmx + 1, sizeof(*p->mx));
		p->mx[p->nmx++] = pat;
	} else {
		if (!valid_ext_name(name, name_len))
			return "bad field name";
		if (!valid_ext_value(val, val_len))
			return "bad or empty extension value";
	}
	return NULL;
}

const char *
sts_policy_parse(const char *body, size_t len, struct sts_policy **out)
{
	struct sts_policy *p;
	unsigned seen = 0;
	size_t i = 0;
	const char *why = NULL;

	*out = NULL;
	if (len == 0)
		return "empty policy";
	if (len > STS_POLICY_MAX)
		return "policy larger than 64 KiB";
	p = xcalloc(1, sizeof(*p));
	while (i < len && why == NULL) {
		size_t start = i, end, name_end, val_start, val_end;

		while (i < len && body[i] != '\n')
			i++;
		end = i;
		if (i < len)
			i++; /* past LF */
		if (end > start && body[end - 1] == '\r')
			end--;
		if (end == start) {
			why = "empty line";
			break;
		}
		for (name_end = start; name_end < end && body[name_end] != ':';
		     name_end++)
			;
		if (name_end == end) {
			why = "line without ':'";
			break;
		}
		val_start = name_end + 1;
		while (val_start < end && ascii_is_wsp(body[val_start]))
			val_start++;
		val_end = end;
		while (val_end > val_start && ascii_is_wsp(body[val_end - 1]))
			val_end--;
		if (memchr(body + start, '\r', end - start) ||
		    memchr(body + start, '\0', end - start)) {
			why = "control character in line";
			break;
		}
		why = parse_field(p, body + start, name_end - start,
		    body + val_start, val_end - val_start, &seen);
	}
	if (why == NULL && !(seen & 1))
		why = "no version field";
	if (why == NULL && !(seen & 2))
		why = "no mode field";
	if (why == NULL && !(seen & 4))
		why = "no max_age field";
	if (why == NULL && p->mode != STS_MODE_NONE && p->nmx == 0)
		why = "no mx field";
	if (why) {
		sts_policy_free(p);
		return why;
	}
	*out = p;
	return NULL;
}

int
sts_pattern_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl = strlen(pattern);

	if (hl && host[hl - 1] == '.')
		hl--;
	if (pl && pattern[pl - 1] == '.')
		pl--;
	if (hl == 0 || memchr(host, '*', hl))
		return 0;
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = memchr(host, '.', hl);
		size_t first;

		if (dot == NULL)
			return 0;
		first = (size_t)(dot - host);
		/* exactly one label before the rest, and the rest equal */
		return first > 0 && hl - first == pl - 1 &&
		       strncasecmp(dot, pattern + 1, pl - 1) == 0;
	}
	return hl == pl && strncasecmp(host, pattern, hl) == 0;
}

int
sts_policy_match(const struct sts_policy *p, const char *host)
{
	size_t i;

	for (i = 0; i < p->nmx; i++)
		if (sts_pattern_match(p->mx[i], host))
			return 1;
	return 0;
}

int
sts_content_type_ok(const char *ct)
{
	size_t n;

	while (ascii_is_wsp(*ct))
		ct++;
	if (strncasecmp(ct, "text/plain", 10) != 0)
		return 0;
	ct += 10;
	n = strspn(ct, " \t");
	return ct[n] == '\0' || ct[n] == ';';
}
