/*
 * smtp_cmd - pure parsers for SMTP server commands; see smtp_cmd.h.
 *
 * RFC 5321 4.1.2 gives the path grammar:
 *   Reverse-path / Forward-path = Path, Path = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 * RFC 6531 3.3 extends atext, qtext and sub-domains with UTF-8.
 * RFC 5321 4.1.2 esmtp-param = esmtp-keyword ["=" esmtp-value].
 *
 * Outline: smtp_line_find() cuts a line; smtp_cmd_parse() splits verb and
 * argument; smtp_cmd_parse_mail/rcpt() parse the path with parse_path()
 * and then each parameter with parse_param(). Every read checks the
 * remaining length first.
 */
#include <arpa/inet.h>
#include <string.h>

#include "smtp_cmd.h"
#include "smtp_xtext.h"

/* MAIL and RCPT differ in the enhanced code for a bad address (RFC 3463:
 * X.1.7 sender syntax, X.1.3 destination syntax). */
enum path_kind { PATH_MAIL, PATH_RCPT };
#define ADDR_ERR(kind, text)                                                   \
	((kind) == PATH_MAIL ? "501 5.1.7 " text : "501 5.1.3 " text)

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "unknown",
    [SMTP_VERB_HELO] = "helo",
    [SMTP_VERB_EHLO] = "ehlo",
    [SMTP_VERB_MAIL] = "mail",
    [SMTP_VERB_RCPT] = "rcpt",
    [SMTP_VERB_DATA] = "data",
    [SMTP_VERB_RSET] = "rset",
    [SMTP_VERB_NOOP] = "noop",
    [SMTP_VERB_QUIT] = "quit",
    [SMTP_VERB_VRFY] = "vrfy",
    [SMTP_VERB_HELP] = "help",
    [SMTP_VERB_STARTTLS] = "starttls",
    [SMTP_VERB_AUTH] = "auth",
};

/* Whether each verb takes an argument: 0 never, 1 always, 2 optional. */
static const unsigned char verb_arg[SMTP_VERB_COUNT] = {
    [SMTP_VERB_HELO] = 1,
    [SMTP_VERB_EHLO] = 1,
    [SMTP_VERB_MAIL] = 1,
    [SMTP_VERB_RCPT] = 1,
    [SMTP_VERB_DATA] = 0,
    [SMTP_VERB_RSET] = 0,
    [SMTP_VERB_NOOP] = 2,
    [SMTP_VERB_QUIT] = 0,
    [SMTP_VERB_VRFY] = 1,
    [SMTP_VERB_HELP] = 2,
    [SMTP_VERB_STARTTLS] = 0,
    [SMTP_VERB_AUTH] = 1,
};

static const char *const verb_syntax[SMTP_VERB_COUNT] = {
    [SMTP_VERB_HELO] = "501 5.5.4 Syntax: HELO hostname",
    [SMTP_VERB_EHLO] = "501 5.5.4 Syntax: EHLO hostname",
    [SMTP_VERB_MAIL] = "501 5.5.4 Syntax: MAIL FROM:<address>",
    [SMTP_VERB_RCPT] = "501 5.5.4 Syntax: RCPT TO:<address>",
    [SMTP_VERB_DATA] = "501 5.5.4 Syntax: DATA",
    [SMTP_VERB_RSET] = "501 5.5.4 Syntax: RSET",
    [SMTP_VERB_QUIT] = "501 5.5.4 Syntax: QUIT",
    [SMTP_VERB_VRFY] = "501 5.5.4 Syntax: VRFY address",
    [SMTP_VERB_STARTTLS] = "501 5.5.4 Syntax: STARTTLS",
    [SMTP_VERB_AUTH] = "501 5.5.4 Syntax: AUTH mechanism",
};

const char *
smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= SMTP_VERB_COUNT)
		return "unknown";
	return verb_names[v];
}

int
smtp_reply_code(const char *reply)
{
	if (reply == NULL || reply[0] < '2' || reply[0] > '5' ||
	    reply[1] < '0' || reply[1] > '9' || reply[2] < '0' ||
	    reply[2] > '9')
		return 0;
	return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + reply[2] - '0';
}

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* Case-insensitive ASCII comparison of a slice with a lower-case word. */
static int
word_eq(const char *p, size_t len, const char *word)
{
	size_t i;

	if (strlen(word) != len)
		return 0;
	for (i = 0; i < len; i++)
		if (lower((unsigned char)p[i]) != word[i])
			return 0;
	return 1;
}

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

enum smtp_line_status
smtp_line_find(
    const char *data, size_t len, size_t max, size_t *linelen, size_t *used)
{
	const char *lf;
	size_t scan = len < max ? len : max, n;

	*linelen = 0;
	*used = 0;
	lf = memchr(data, '\n', scan);
	if (lf == NULL) {
		if (len < max)
			return SMTP_LINE_PARTIAL;
		/* Maybe the LF is just past the limit: the line is still
		 * too long, but the caller can drop it in one go. */
		lf = memchr(data + scan, '\n', len - scan);
		if (lf != NULL)
			*used = (size_t)(lf - data) + 1;
		return SMTP_LINE_TOOLONG;
	}
	n = (size_t)(lf - data);
	*used = n + 1;
	if (n > 0 && data[n - 1] == '\r') {
		*linelen = n - 1;
		return SMTP_LINE_OK;
	}
	*linelen = n;
	return SMTP_LINE_BARE_LF;
}

const char *
smtp_cmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t i, vlen;
	const char *arg;
	size_t arglen;
	enum smtp_verb v;

	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->arg = NULL;
	cmd->arglen = 0;
	if (len > SMTP_AUTH_LINE_MAX - 2)
		return "500 5.5.2 Line too long";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		/* CR, LF and NUL inside a command are how command injection
		 * and smuggling start; refuse every control character. */
		if (c < 0x20 || c == 0x7f)
			return "500 5.5.2 Invalid character in command";
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	if (vlen == 0)
		return "500 5.5.2 Error: bad syntax";
	for (v = SMTP_VERB_HELO; v < SMTP_VERB_COUNT; v++)
		if (word_eq(line, vlen, verb_names[v]))
			break;
	if (v == SMTP_VERB_COUNT)
		return "502 5.5.2 Error: command not recognized";
	if (v != SMTP_VERB_AUTH && len > SMTP_LINE_MAX - 2)
		return "500 5.5.2 Line too long";
	cmd->verb = v;
	arg = line + vlen;
	arglen = len - vlen;
	/* Tolerate extra spaces (common in the wild) around the argument. */
	while (arglen > 0 && arg[0] == ' ') {
		arg++;
		arglen--;
	}
	while (arglen > 0 && arg[arglen - 1] == ' ')
		arglen--;
	if ((verb_arg[v] == 0 && arglen > 0) ||
	    (verb_arg[v] == 1 && arglen == 0))
		return verb_syntax[v];
	cmd->arg = arglen ? arg : NULL;
	cmd->arglen = arglen;
	return NULL;
}

const char *
smtp_cmd_check_helo(const char *arg, size_t len)
{
	size_t i;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return "501 5.5.4 Syntax: EHLO hostname";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];

		/* The name goes into the Received: header: printable ASCII
		 * only, so that it cannot break or fold the header. */
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '\\')
			return "501 5.5.4 Syntax: EHLO hostname";
	}
	return NULL;
}

int
smtp_utf8_valid(const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t i = 0;

	while (i < len) {
		unsigned c = p[i], need, cp, min, k;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (len - i <= need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

static int
is_atext(int c, int utf8)
{
	if (is_alpha(c) || is_digit(c))
		return 1;
	if (c >= 0x80)
		return utf8;
	return c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* A domain name (RFC 5321 4.1.2 Domain, RFC 6531 U-labels) of len bytes. */
static int
domain_valid(const char *p, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!(is_alpha(c) || is_digit(c) || c == '-' || c >= 0x80))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && p[len - 1] != '-';
}

/* An address literal's content between the brackets (RFC 5321 4.1.3). */
static int
literal_valid(const char *p, size_t len)
{
	char tmp[64];
	unsigned char a[16];
	size_t i, tag;

	if (len == 0 || len >= sizeof(tmp))
		return 0;
	if (len > 5 && word_eq(p, 5, "ipv6:")) {
		memcpy(tmp, p + 5, len - 5);
		tmp[len - 5] = '\0';
		return inet_pton(AF_INET6, tmp, a) == 1;
	}
	if (is_digit((unsigned char)p[0])) {
		memcpy(tmp, p, len);
		tmp[len] = '\0';
		return inet_pton(AF_INET, tmp, a) == 1;
	}
	/* General-address-literal = Standardized-tag ":" 1*dcontent. */
	for (tag = 0; tag < len && p[tag] != ':'; tag++)
		if (!(is_alpha((unsigned char)p[tag]) ||
		        is_digit((unsigned char)p[tag]) || p[tag] == '-'))
			return 0;
	if (tag == 0 || tag + 1 >= len)
		return 0;
	for (i = tag + 1; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			return 0;
	}
	return 1;
}

/*
 * Parses a Path at p[0..len) and stores the mailbox (without "<>" and
 * without a source route) in out. *end is set past the ">". null_ok: "<>"
 * is allowed (MAIL). postmaster_ok: "<postmaster>" (RCPT).
 */
static const char *
parse_path(const char *p, size_t len, enum path_kind kind, int null_ok,
    int postmaster_ok, char out[SMTP_PATH_MAX + 1], size_t *end, int *utf8)
{
	size_t i = 0, local_start, local_end, dom_start, dom_end, n;

	*utf8 = 0;
	out[0] = '\0';
	if (len == 0 || p[0] != '<')
		return ADDR_ERR(kind, "Bad address syntax: missing <");
	i = 1;
	/* A-d-l ":" : a source route, obsolete; accepted and dropped
	 * (RFC 5321 4.1.1.3 and Appendix C). */
	if (i < len && p[i] == '@') {
		while (i < len && p[i] != ':') {
			size_t s;

			if (p[i] != '@')
				return ADDR_ERR(kind, "Bad address syntax");
			s = ++i;
			while (i < len && p[i] != ',' && p[i] != ':')
				i++;
			if (!domain_valid(p + s, i - s))
				return ADDR_ERR(kind, "Bad address syntax");
			if (i < len && p[i] == ',')
				i++;
		}
		if (i >= len)
			return ADDR_ERR(kind, "Bad address syntax");
		i++; /* ':' */
	}
	if (i < len && p[i] == '>') {
		if (!null_ok)
			return ADDR_ERR(kind, "Bad address syntax: empty path");
		*end = i + 1;
		return NULL;
	}
	local_start = i;
	if (i < len && p[i] == '"') {
		i++;
		for (;;) {
			unsigned char c;

			if (i >= len)
				return ADDR_ERR(kind, "Bad address syntax");
			c = (unsigned char)p[i];
			if (c == '"')
				break;
			if (c == '\\') {
				if (i + 1 >= len ||
				    (unsigned char)p[i + 1] < 32 ||
				    (unsigned char)p[i + 1] > 126)
					return ADDR_ERR(
					    kind, "Bad address syntax");
				i += 2;
				continue;
			}
			if (c >= 0x80)
				*utf8 = 1;
			else if (c < 32 || c > 126)
				return ADDR_ERR(kind, "Bad address syntax");
			i++;
		}
		i++; /* closing quote */
	} else {
		int prev_dot = 1;

		while (i < len && p[i] != '@' && p[i] != '>') {
			unsigned char c = (unsigned char)p[i];

			if (c == '.') {
				if (prev_dot)
					return ADDR_ERR(
					    kind, "Bad address syntax");
				prev_dot = 1;
			} else if (is_atext(c, 1)) {
				if (c >= 0x80)
					*utf8 = 1;
				prev_dot = 0;
			} else {
				return ADDR_ERR(kind, "Bad address syntax");
			}
			i++;
		}
		if (prev_dot)
			return ADDR_ERR(kind, "Bad address syntax");
	}
	local_end = i;
	if (local_end - local_start > SMTP_LOCAL_MAX)
		return ADDR_ERR(kind, "Local part too long");
	if (i < len && p[i] == '>' && postmaster_ok &&
	    word_eq(p + local_start, local_end - local_start, "postmaster")) {
		memcpy(out, "postmaster", 10);
		out[10] = '\0';
		*end = i + 1;
		return NULL;
	}
	if (i >= len || p[i] != '@')
		return ADDR_ERR(kind, "Bad address syntax: domain required");
	dom_start = ++i;
	if (i < len && p[i] == '[') {
		while (i < len && p[i] != ']')
			i++;
		if (i >= len ||
		    !literal_valid(p + dom_start + 1, i - dom_start - 1))
			return ADDR_ERR(kind, "Bad address literal");
		i++;
		dom_end = i;
	} else {
		while (i < len && p[i] != '>')
			i++;
		dom_end = i;
		if (dom_end - dom_start > SMTP_DOMAIN_MAX)
			return ADDR_ERR(kind, "Domain too long");
		if (!domain_valid(p + dom_start, dom_end - dom_start))
			return ADDR_ERR(kind, "Bad domain syntax");
		for (n = dom_start; n < dom_end; n++)
			if ((unsigned char)p[n] >= 0x80)
				*utf8 = 1;
	}
	if (i >= len || p[i] != '>')
		return ADDR_ERR(kind, "Bad address syntax: missing >");
	/* RFC 5321 4.5.3.1.3: the path, punctuation included, is at most
	 * 256 octets; we count from the "<" to the ">" as written. */
	if (i + 1 > SMTP_PATH_MAX)
		return ADDR_ERR(kind, "Path too long");
	n = dom_end - local_start;
	if (n > SMTP_PATH_MAX)
		return ADDR_ERR(kind, "Path too long");
	if (*utf8 && !smtp_utf8_valid(p + local_start, n))
		return "553 5.6.7 Malformed UTF-8 in address";
	memcpy(out, p + local_start, n);
	out[n] = '\0';
	*end = i + 1;
	return NULL;
}

struct param {
	const char *key, *val;
	size_t keylen, vallen;
	int has_val;
};

/*
 * Parses the next " keyword[=value]" at p[*pos..len). Returns NULL with
 * par filled, NULL with par->keylen 0 at the end, or an error.
 */
static const char *
parse_param(const char *p, size_t len, size_t *pos, struct param *par)
{
	size_t i = *pos;

	memset(par, 0, sizeof(*par));
	if (i >= len)
		return NULL;
	if (p[i] != ' ')
		return "501 5.5.4 Bad parameter syntax";
	while (i < len && p[i] == ' ')
		i++;
	if (i >= len)
		return NULL;
	par->key = p + i;
	if (!is_alpha((unsigned char)p[i]) && !is_digit((unsigned char)p[i]))
		return "501 5.5.4 Bad parameter syntax";
	while (i < len && (is_alpha((unsigned char)p[i]) ||
	                      is_digit((unsigned char)p[i]) || p[i] == '-'))
		i++;
	par->keylen = (size_t)(p + i - par->key);
	if (i < len && p[i] == '=') {
		i++;
		par->val = p + i;
		par->has_val = 1;
		/* esmtp-value = 1*(%d33-60 / %d62-126) */
		while (i < len && (unsigned char)p[i] >= 33 &&
		       (unsigned char)p[i] <= 126 && p[i] != '=')
			i++;
		par->vallen = (size_t)(p + i - par->val);
		if (par->vallen == 0)
			return "501 5.5.4 Bad parameter syntax";
	}
	if (i < len && p[i] != ' ')
		return "501 5.5.4 Bad parameter syntax";
	*pos = i;
	return NULL;
}

/* "FROM:" / "TO:" then optional spaces; returns the offset of the path. */
static int
skip_prefix(const char *arg, size_t len, const char *word, size_t *pos)
{
	size_t n = strlen(word), i;

	if (len < n || !word_eq(arg, n, word))
		return -1;
	i = n;
	while (i < len && arg[i] == ' ')
		i++;
	*pos = i;
	return 0;
}

const char *
smtp_cmd_parse_mail(const char *arg, size_t len, struct smtp_mail_args *out)
{
	size_t pos, end;
	const char *err;
	struct param par;

	memset(out, 0, sizeof(*out));
	if (skip_prefix(arg, len, "from:", &pos) < 0)
		return "501 5.5.4 Syntax: MAIL FROM:<address>";
	err = parse_path(arg + pos, len - pos, PATH_MAIL, 1, 0, out->path, &end,
	    &out->utf8_path);
	if (err)
		return err;
	pos += end;
	for (;;) {
		if ((err = parse_param(arg, len, &pos, &par)) != NULL)
			return err;
		if (par.keylen == 0)
			break;
		if (word_eq(par.key, par.keylen, "size")) {
			unsigned long long v = 0;
			size_t i;

			if (out->has_size || !par.has_val || par.vallen > 20)
				return "501 5.5.4 Bad SIZE parameter";
			for (i = 0; i < par.vallen; i++) {
				if (!is_digit((unsigned char)par.val[i]))
					return "501 5.5.4 Bad SIZE parameter";
				if (v > (~0ULL - 9) / 10)
					return "552 5.3.4 Message size exceeds "
					       "fixed limit";
				v = v * 10 + (unsigned)(par.val[i] - '0');
			}
			out->has_size = 1;
			out->size = v;
		} else if (word_eq(par.key, par.keylen, "body")) {
			if (out->body != SMTP_BODY_NONE || !par.has_val)
				return "501 5.5.4 Bad BODY parameter";
			if (word_eq(par.val, par.vallen, "7bit"))
				out->body = SMTP_BODY_7BIT;
			else if (word_eq(par.val, par.vallen, "8bitmime"))
				out->body = SMTP_BODY_8BITMIME;
			else
				return "501 5.5.4 Unsupported BODY type";
		} else if (word_eq(par.key, par.keylen, "smtputf8")) {
			if (out->smtputf8 || par.has_val)
				return "501 5.5.4 Bad SMTPUTF8 parameter";
			out->smtputf8 = 1;
		} else if (word_eq(par.key, par.keylen, "requiretls")) {
			if (out->requiretls || par.has_val)
				return "501 5.5.4 Bad REQUIRETLS parameter";
			out->requiretls = 1;
		} else if (word_eq(par.key, par.keylen, "ret")) {
			if (out->ret != SMTP_RET_NONE || !par.has_val)
				return "501 5.5.4 Bad RET parameter";
			if (word_eq(par.val, par.vallen, "full"))
				out->ret = SMTP_RET_FULL;
			else if (word_eq(par.val, par.vallen, "hdrs"))
				out->ret = SMTP_RET_HDRS;
			else
				return "501 5.5.4 Bad RET parameter";
		} else if (word_eq(par.key, par.keylen, "envid")) {
			size_t i, n;

			if (out->has_envid || !par.has_val)
				return "501 5.5.4 Bad ENVID parameter";
			if (smtp_xtext_decode(par.val, par.vallen, out->envid,
			        sizeof(out->envid), &n) != NULL)
				return "501 5.5.4 Bad ENVID parameter";
			/* RFC 3461 4.4: printable US-ASCII only. */
			for (i = 0; i < n; i++)
				if ((unsigned char)out->envid[i] < 32 ||
				    (unsigned char)out->envid[i] > 126)
					return "501 5.5.4 Bad ENVID parameter";
			out->has_envid = 1;
		} else if (word_eq(par.key, par.keylen, "auth")) {
			if (out->has_auth || !par.has_val ||
			    smtp_xtext_decode(par.val, par.vallen, out->auth,
			        sizeof(out->auth), NULL) != NULL)
				return "501 5.5.4 Bad AUTH parameter";
			out->has_auth = 1;
		} else {
			return "555 5.5.4 Unsupported option";
		}
	}
	/* RFC 6531 3.4: a non-ASCII address needs the SMTPUTF8 parameter. */
	if (out->utf8_path && !out->smtputf8)
		return "553 5.6.7 Non-ASCII sender address requires SMTPUTF8";
	return NULL;
}

static const char *
parse_notify(const char *v, size_t len, unsigned *notify)
{
	size_t i = 0;

	*notify = 0;
	while (i < len) {
		size_t s = i;
		unsigned bit;

		while (i < len && v[i] != ',')
			i++;
		if (word_eq(v + s, i - s, "never"))
			bit = SMTP_NOTIFY_NEVER;
		else if (word_eq(v + s, i - s, "success"))
			bit = SMTP_NOTIFY_SUCCESS;
		else if (word_eq(v + s, i - s, "failure"))
			bit = SMTP_NOTIFY_FAILURE;
		else if (word_eq(v + s, i - s, "delay"))
			bit = SMTP_NOTIFY_DELAY;
		else
			return "501 5.5.4 Bad NOTIFY parameter";
		if (*notify & bit)
			return "501 5.5.4 Bad NOTIFY parameter";
		*notify |= bit;
		if (i < len && ++i == len) /* trailing comma */
			return "501 5.5.4 Bad NOTIFY parameter";
	}
	/* RFC 3461 4.1: NEVER stands alone. */
	if ((*notify & SMTP_NOTIFY_NEVER) && *notify != SMTP_NOTIFY_NEVER)
		return "501 5.5.4 Bad NOTIFY parameter";
	if (*notify == 0)
		return "501 5.5.4 Bad NOTIFY parameter";
	return NULL;
}

static const char *
check_orcpt(const char *v, size_t len)
{
	char dec[SMTP_ORCPT_MAX + 1];
	size_t i;

	if (len > SMTP_ORCPT_MAX)
		return "501 5.5.4 Bad ORCPT parameter";
	/* addr-type is an atom (RFC 3461 4.2), then ";" and xtext. */
	for (i = 0; i < len && v[i] != ';'; i++)
		if (!is_alpha((unsigned char)v[i]) &&
		    !is_digit((unsigned char)v[i]) && v[i] != '-')
			return "501 5.5.4 Bad ORCPT parameter";
	if (i == 0 || i + 1 >= len)
		return "501 5.5.4 Bad ORCPT parameter";
	if (smtp_xtext_decode(v + i + 1, len - i - 1, dec, sizeof(dec), NULL))
		return "501 5.5.4 Bad ORCPT parameter";
	return NULL;
}

const char *
smtp_cmd_parse_rcpt(
    const char *arg, size_t len, int smtputf8, struct smtp_rcpt_args *out)
{
	size_t pos, end;
	const char *err;
	struct param par;

	memset(out, 0, sizeof(*out));
	if (skip_prefix(arg, len, "to:", &pos) < 0)
		return "501 5.5.4 Syntax: RCPT TO:<address>";
	err = parse_path(arg + pos, len - pos, PATH_RCPT, 0, 1, out->path, &end,
	    &out->utf8_path);
	if (err)
		return err;
	pos += end;
	for (;;) {
		if ((err = parse_param(arg, len, &pos, &par)) != NULL)
			return err;
		if (par.keylen == 0)
			break;
		if (word_eq(par.key, par.keylen, "notify")) {
			if (out->notify || !par.has_val)
				return "501 5.5.4 Bad NOTIFY parameter";
			if ((err = parse_notify(
			         par.val, par.vallen, &out->notify)) != NULL)
				return err;
		} else if (word_eq(par.key, par.keylen, "orcpt")) {
			if (out->has_orcpt || !par.has_val)
				return "501 5.5.4 Bad ORCPT parameter";
			if ((err = check_orcpt(par.val, par.vallen)) != NULL)
				return err;
			memcpy(out->orcpt, par.val, par.vallen);
			out->orcpt[par.vallen] = '\0';
			out->has_orcpt = 1;
		} else {
			return "555 5.5.4 Unsupported option";
		}
	}
	if (out->utf8_path && !smtputf8)
		return "553 5.6.7 Non-ASCII recipient address requires "
		       "SMTPUTF8";
	return NULL;
}
