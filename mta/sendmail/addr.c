/*
 * addr - RFC 5322 3.4 address lists, as found in To:/Cc:/Bcc: headers and
 * in sendmail's recipient arguments.
 *
 * Steps: walk the text once, skipping comments (nested, RFC 5322 3.2.2)
 * and keeping quoted strings and domain literals whole; ',' ends an
 * address, ':' outside <> starts a group (its name is dropped) and ';'
 * ends it (RFC 5322 3.4 group). Inside <...> the text is the address, less
 * an obsolete route "@a,@b:" (RFC 5322 4.4). Without <>, the words of the
 * element, joined without blanks, are the address.
 */
#include <stdlib.h>
#include <string.h>

#include "sendmail.h"
#include "mta/util/xalloc.h"

#define COMMENT_DEPTH_MAX 32

struct addr_state {
	buf_t *plain; /* words of the element outside <> */
	buf_t *angle; /* text inside <> */
	int has_angle;
	char ***list;
	size_t *n;
};

static void
emit(struct addr_state *st)
{
	const char *a;

	if (st->has_angle) {
		a = buf_data(st->angle);
		/* Obsolete route: "@relay1,@relay2:user@domain". */
		if (a[0] == '@' && strchr(a, ':') != NULL)
			a = strchr(a, ':') + 1;
	} else {
		a = buf_data(st->plain);
	}
	if (*a != '\0') {
		*st->list =
		    xreallocarray(*st->list, *st->n + 1, sizeof(**st->list));
		(*st->list)[(*st->n)++] = xstrdup(a);
	}
	buf_reset(st->plain);
	buf_reset(st->angle);
	st->has_angle = 0;
}

const char *
sendmail_addrlist_parse(const char *s, size_t len, char ***list, size_t *n)
{
	struct addr_state st;
	const char *err = NULL;
	int in_angle = 0, in_group = 0;
	size_t i;

	if (len > SENDMAIL_ADDRLIST_MAX)
		return "address list too long";
	st.plain = buf_new(len + 1);
	st.angle = buf_new(len + 1);
	st.has_angle = 0;
	st.list = list;
	st.n = n;
	for (i = 0; i < len && err == NULL; i++) {
		char c = s[i];
		buf_t *cur = in_angle ? st.angle : st.plain;

		if (c == '(') {
			int depth = 1;

			/* A comment; quoted-pairs inside are skipped. */
			for (i++; i < len && depth > 0; i++) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				else if (s[i] == '(' &&
				         ++depth > COMMENT_DEPTH_MAX)
					break;
				else if (s[i] == ')')
					depth--;
			}
			if (depth != 0)
				err = depth > COMMENT_DEPTH_MAX
				          ? "comments nested too deeply"
				          : "unterminated comment";
			i--;
		} else if (c == '"' || c == '[') {
			char close = c == '"' ? '"' : ']';
			size_t j;

			/* Kept with its delimiters: part of the address. */
			for (j = i + 1; j < len && s[j] != close; j++)
				if (s[j] == '\\' && j + 1 < len)
					j++;
			if (j >= len) {
				err = c == '"' ? "unterminated quoted string"
				               : "unterminated domain literal";
				break;
			}
			buf_append(cur, s + i, j - i + 1);
			i = j;
		} else if (c == '<') {
			if (in_angle) {
				err = "nested '<'";
				break;
			}
			/* Words before '<' are a display name. */
			in_angle = 1;
			st.has_angle = 1;
			buf_reset(st.angle);
		} else if (c == '>') {
			if (!in_angle) {
				err = "unbalanced '>'";
				break;
			}
			in_angle = 0;
		} else if (in_angle) {
			if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
				buf_putc(st.angle, c);
		} else if (c == ',') {
			emit(&st);
		} else if (c == ':') {
			/* "name: a, b;" - the name is not an address. */
			if (in_group) {
				err = "nested group";
				break;
			}
			in_group = 1;
			buf_reset(st.plain);
			st.has_angle = 0;
		} else if (c == ';') {
			if (!in_group) {
				err = "';' outside a group";
				break;
			}
			emit(&st);
			in_group = 0;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			continue;
		} else {
			buf_putc(st.plain, c);
		}
	}
	if (err == NULL && in_angle)
		err = "unterminated '<'";
	/* A group without its closing ';' is common enough in hand-written
	 * headers that its members are taken anyway. */
	if (err == NULL)
		emit(&st);
	buf_free(st.plain);
	buf_free(st.angle);
	return err;
}

/* Index of the '@' that separates local part and domain, ignoring any
 * inside a quoted local part; -1 if none. */
static long
domain_at(const char *a)
{
	long at = -1, i;
	int quoted = 0;

	for (i = 0; a[i] != '\0'; i++) {
		if (quoted && a[i] == '\\' && a[i + 1] != '\0')
			i++;
		else if (a[i] == '"')
			quoted = !quoted;
		else if (!quoted && a[i] == '@')
			at = i;
	}
	return at;
}

char *
sendmail_qualify(const char *addr, const char *domain)
{
	size_t len = strlen(addr), i;
	buf_t *b;
	char *out;

	if (len >= 2 && addr[0] == '<' && addr[len - 1] == '>') {
		addr++;
		len -= 2;
	}
	if (len > MAILDROP_ADDR_MAX)
		return NULL;
	for (i = 0; i < len; i++)
		if ((unsigned char)addr[i] < 0x20 ||
		    (unsigned char)addr[i] == 0x7f)
			return NULL;
	b = buf_new(MAILDROP_ADDR_MAX + 1);
	buf_append(b, addr, len);
	/* The null sender stays empty; "user" becomes user@domain. */
	if (len > 0 && domain_at(buf_data(b)) < 0 && domain && *domain)
		buf_printf(b, "@%s", domain);
	if (buf_error(b) || (len > 0 && domain_at(buf_data(b)) == 0)) {
		buf_free(b);
		return NULL;
	}
	out = buf_steal(b, NULL);
	buf_free(b);
	return out;
}
