/*
 * ctlproto - see ctlproto.h.
 *
 * The request grammar is deliberately narrow (single spaces, printable
 * ASCII, a fixed set of words) so that anything a confused or hostile
 * local client sends is refused with one ERR line before it reaches the
 * queue.
 */
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "ctlproto.h"
#include "mta/cli/control.h"
#include "mta/util/json.h"

/* Longest word worth looking at: the longest command or option is short. */
#define CTL_WORD_MAX 32

struct ctl_cmd_def {
	const char *name;
	enum ctl_cmd cmd;
	int json_ok; /* accepts --json */
	int min_qids; /* 0 or 1 */
	int max_qids; /* 0, 1 or CTL_MAX_QIDS */
	int all_ok; /* accepts --all */
	int domain; /* takes one domain name */
};

static const struct ctl_cmd_def ctl_cmds[] = {
    {"list", CTL_LIST, 1, 0, 0, 0, 0},
    {"show", CTL_SHOW, 1, 1, 1, 0, 0},
    {"delete", CTL_DELETE, 0, 1, CTL_MAX_QIDS, 1, 0},
    {"hold", CTL_HOLD, 0, 1, CTL_MAX_QIDS, 0, 0},
    {"release", CTL_RELEASE, 0, 1, CTL_MAX_QIDS, 0, 0},
    {"flush", CTL_FLUSH, 0, 0, CTL_MAX_QIDS, 0, 0},
    {"stats", CTL_STATS, 1, 0, 0, 0, 0},
    {"checkpoint", CTL_CHECKPOINT, 0, 0, 0, 0, 0},
    {"policy-list", CTL_POLICY_LIST, 1, 0, 0, 0, 0},
    {"policy-show", CTL_POLICY_SHOW, 1, 0, 0, 0, 1},
    {"policy-refresh", CTL_POLICY_REFRESH, 1, 0, 0, 0, 1},
    {"policy-forget", CTL_POLICY_FORGET, 0, 0, 0, 0, 1},
};

/* A DNS name as a domain argument: letters, digits, '-', '.'. */
static int
valid_domain_word(const char *w, size_t wl)
{
	size_t i;

	if (wl == 0 || wl > 253 || w[0] == '.' || w[0] == '-')
		return 0;
	for (i = 0; i < wl; i++)
		if (!isalnum((unsigned char)w[i]) && w[i] != '-' && w[i] != '.')
			return 0;
	return 1;
}

static int
word_is(const char *w, size_t wl, const char *s)
{
	return strlen(s) == wl && memcmp(w, s, wl) == 0;
}

const char *
ctl_parse_request(const char *line, size_t len, struct ctl_req *req)
{
	const struct ctl_cmd_def *def = NULL;
	size_t i, start, nwords = 0;

	memset(req, 0, sizeof(*req));
	if (len == 0)
		return "empty request";
	if (len > CONTROL_REQUEST_MAX)
		return "request too long";
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if ((c < 0x21 || c > 0x7e) && c != ' ')
			return "control or non-ASCII character in request";
	}
	if (line[0] == ' ' || line[len - 1] == ' ')
		return "malformed request (leading or trailing space)";

	for (start = 0; start < len; start = i + 1) {
		const char *w = line + start;
		size_t wl;

		for (i = start; i < len && line[i] != ' '; i++)
			;
		wl = i - start;
		if (wl == 0)
			return "malformed request (two spaces in a row)";
		if (nwords++ == 0) {
			size_t c;

			for (c = 0; c < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);
			     c++)
				if (word_is(w, wl, ctl_cmds[c].name))
					def = &ctl_cmds[c];
			if (def == NULL)
				return "unknown command (expected list, show, "
				       "delete, hold, release, flush, stats or "
				       "policy-list/show/refresh/forget)";
			req->cmd = def->cmd;
			continue;
		}
		if (wl > CTL_WORD_MAX && wl != QID_LEN)
			return "argument too long";
		if (word_is(w, wl, "--json")) {
			if (!def->json_ok)
				return "--json is not an option of this "
				       "command";
			req->json = 1;
		} else if (word_is(w, wl, "--content")) {
			if (def->cmd != CTL_SHOW)
				return "--content is an option of show only";
			req->content = 1;
		} else if (word_is(w, wl, "--all")) {
			if (!def->all_ok)
				return "--all is not an option of this command";
			req->all = 1;
		} else if (wl > 0 && w[0] == '-') {
			return "unknown option";
		} else if (def->domain) {
			if (req->domain[0])
				return "give one domain";
			if (!valid_domain_word(w, wl))
				return "not a domain name";
			memcpy(req->domain, w, wl);
			req->domain[wl] = '\0';
		} else {
			char id[QID_SIZE];

			if (wl != QID_LEN)
				return "not a queue ID (16 hex digits)";
			memcpy(id, w, QID_LEN);
			id[QID_LEN] = '\0';
			if (!qid_valid(id))
				return "not a queue ID (16 hex digits)";
			if (req->nqid >= (size_t)def->max_qids)
				return def->max_qids == 0
				           ? "this command takes no queue ID"
				       : def->max_qids == 1
				           ? "give one queue ID"
				           : "too many queue IDs";
			memcpy(req->qids[req->nqid++], id, QID_SIZE);
		}
	}
	if (req->content && req->json)
		return "give --content or --json, not both";
	if (def->domain && req->domain[0] == '\0')
		return "give a domain";
	if (req->all && req->nqid)
		return "give queue IDs or --all, not both";
	if (req->nqid < (size_t)def->min_qids && !req->all)
		return def->all_ok ? "give queue IDs or --all"
		                   : "give a queue ID";
	return NULL;
}

void
ctl_format_time(buf_t *out, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char s[64];

	if (localtime_r(&tt, &tm) == NULL ||
	    strftime(s, sizeof(s), "%a %b %d %H:%M:%S", &tm) == 0) {
		buf_printf(out, "@%lld", (long long)t);
		return;
	}
	buf_puts(out, s);
}

static void
put_text(buf_t *out, const char *s)
{
	buf_put_printable(out, s, strlen(s));
}

int
ctl_peer_allowed(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
    uid_t owner_uid, const gid_t *admin_gid)
{
	size_t i;

	if (uid == 0 || uid == owner_uid)
		return 1;
	if (admin_gid == NULL)
		return 0;
	if (gid == *admin_gid)
		return 1;
	for (i = 0; i < ngroups; i++)
		if (groups[i] == *admin_gid)
			return 1;
	return 0;
}

int
ctl_env_held(const struct queue_env *env)
{
	size_t i;
	int held = 0;

	for (i = 0; i < env->nrcpt; i++) {
		switch (env->rcpts[i].state) {
		case RCPT_HELD:
			held = 1;
			break;
		case RCPT_PENDING:
		case RCPT_DEFERRED:
			return 0;
		default:
			break;
		}
	}
	return held;
}

/* The column where the sender and the recipients start. */
#define CTL_INDENT "                                                "

void
ctl_list_header(buf_t *out)
{
	buf_puts(out, "-Queue ID-------- --Size-- ----Arrival Time---- "
	              "-Sender/Recipient-------\n");
}

void
ctl_list_entry(buf_t *out, const struct queue_env *env)
{
	size_t i;

	buf_printf(out, "%-16s%c %8llu ", env->qid,
	    ctl_env_held(env) ? '!' : ' ', (unsigned long long)env->size);
	ctl_format_time(out, env->arrival);
	buf_puts(out, "  ");
	if (env->sender == NULL || env->sender[0] == '\0')
		buf_puts(out, "MAILER-DAEMON");
	else
		put_text(out, env->sender);
	buf_putc(out, '\n');
	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		buf_puts(out, CTL_INDENT);
		put_text(out, r->address ? r->address : "");
		buf_printf(out, " (%s", queue_rcpt_state_name(r->state));
		if (r->attempts)
			buf_printf(out, ", %u attempt%s", r->attempts,
			    r->attempts == 1 ? "" : "s");
		if (r->state == RCPT_DEFERRED && r->next_attempt > 0) {
			buf_puts(out, ", next ");
			ctl_format_time(out, r->next_attempt);
		}
		buf_puts(out, ")\n");
		if (r->last_response && r->last_response[0]) {
			buf_puts(out, CTL_INDENT "  ");
			put_text(out, r->last_response);
			buf_putc(out, '\n');
		}
	}
	buf_putc(out, '\n');
}

void
ctl_list_footer(buf_t *out, uint64_t kbytes, uint64_t messages)
{
	if (messages == 0) {
		buf_puts(out, "Mail queue is empty\n");
		return;
	}
	buf_printf(out, "-- %llu Kbytes in %llu Request%s.\n",
	    (unsigned long long)kbytes, (unsigned long long)messages,
	    messages == 1 ? "" : "s");
}

static const char *
ret_name(enum dsn_ret ret)
{
	switch (ret) {
	case DSN_RET_FULL:
		return "full";
	case DSN_RET_HDRS:
		return "hdrs";
	default:
		return NULL;
	}
}

static const struct {
	unsigned bit;
	const char *name;
} ctl_flag_names[] = {
    {QENV_8BITMIME, "8bitmime"},
    {QENV_SMTPUTF8, "smtputf8"},
    {QENV_REQUIRETLS, "requiretls"},
    {QENV_TLS_OPTIONAL, "tls-optional"},
    {QENV_BOUNCE, "bounce"},
    {QENV_WARNED, "warned"},
};

static const struct {
	unsigned bit;
	const char *name;
} ctl_notify_names[] = {
    {DSN_NOTIFY_NEVER, "never"},
    {DSN_NOTIFY_SUCCESS, "success"},
    {DSN_NOTIFY_FAILURE, "failure"},
    {DSN_NOTIFY_DELAY, "delay"},
};

#define CTL_NAMES(out, table, bits, json)                                      \
	do {                                                                   \
		size_t k_;                                                     \
		int first_ = 1;                                                \
		for (k_ = 0; k_ < sizeof(table) / sizeof(table[0]); k_++)      \
			if ((bits)&table[k_].bit) {                            \
				if (!first_)                                   \
					buf_puts(out, (json) ? "," : " ");     \
				first_ = 0;                                    \
				if (json)                                      \
					json_put_string(out, table[k_].name);  \
				else                                           \
					buf_puts(out, table[k_].name);         \
			}                                                      \
	} while (0)

void
ctl_json_entry(buf_t *out, const struct queue_env *env)
{
	size_t i;

	buf_puts(out, "{\"queue_id\":");
	json_put_string(out, env->qid);
	buf_printf(out, ",\"size\":%llu,\"arrival\":%lld,\"sender\":",
	    (unsigned long long)env->size, (long long)env->arrival);
	json_put_string(out, env->sender ? env->sender : "");
	buf_puts(out, ",\"client\":");
	json_put_string(out, env->client);
	buf_puts(out, ",\"helo\":");
	json_put_string(out, env->helo);
	buf_puts(out, ",\"envid\":");
	json_put_string(out, env->envid);
	buf_puts(out, ",\"ret\":");
	json_put_string(out, ret_name(env->ret));
	buf_puts(out, ",\"flags\":[");
	CTL_NAMES(out, ctl_flag_names, env->flags, 1);
	buf_printf(out, "],\"held\":%s,\"recipients\":[",
	    ctl_env_held(env) ? "true" : "false");
	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		if (i)
			buf_putc(out, ',');
		buf_puts(out, "{\"address\":");
		json_put_string(out, r->address ? r->address : "");
		buf_puts(out, ",\"orcpt\":");
		json_put_string(out, r->orcpt);
		buf_puts(out, ",\"notify\":[");
		CTL_NAMES(out, ctl_notify_names, r->notify, 1);
		buf_puts(out, "],\"state\":");
		json_put_string(out, queue_rcpt_state_name(r->state));
		buf_printf(out,
		    ",\"attempts\":%u,\"next_attempt\":%lld,"
		    "\"last_attempt\":%lld,\"last_response\":",
		    r->attempts, (long long)r->next_attempt,
		    (long long)r->last_attempt);
		json_put_string(out, r->last_response);
		buf_puts(out, ",\"dsn_status\":");
		json_put_string(out, r->dsn_status);
		buf_putc(out, '}');
	}
	buf_puts(out, "]}");
}

/* A header line made printable, folding tabs kept as they are. */
static void
put_line(buf_t *out, const char *s, size_t n)
{
	size_t i, start = 0;

	for (i = 0; i <= n; i++)
		if (i == n || s[i] == '\t') {
			buf_put_printable(out, s + start, i - start);
			if (i < n)
				buf_putc(out, '\t');
			start = i + 1;
		}
}

static void
show_field(buf_t *out, const char *name, const char *value)
{
	if (value == NULL)
		return;
	buf_printf(out, "%s: ", name);
	put_text(out, value);
	buf_putc(out, '\n');
}

void
ctl_show_entry(
    buf_t *out, const struct queue_env *env, const char *content, size_t len)
{
	size_t i, hdr_end;

	show_field(out, "queue_id", env->qid);
	buf_puts(out, "arrival: ");
	ctl_format_time(out, env->arrival);
	buf_printf(out, " (%lld)\n", (long long)env->arrival);
	buf_printf(out, "size: %llu\n", (unsigned long long)env->size);
	buf_puts(out, "sender: <");
	put_text(out, env->sender ? env->sender : "");
	buf_puts(out, ">\n");
	show_field(out, "client", env->client);
	show_field(out, "helo", env->helo);
	show_field(out, "envid", env->envid);
	show_field(out, "ret", ret_name(env->ret));
	if (env->flags) {
		buf_puts(out, "flags: ");
		CTL_NAMES(out, ctl_flag_names, env->flags, 0);
		buf_putc(out, '\n');
	}
	for (i = 0; i < env->nrcpt; i++) {
		const struct queue_rcpt *r = &env->rcpts[i];

		buf_puts(out, "recipient: <");
		put_text(out, r->address ? r->address : "");
		buf_printf(out, "> state=%s attempts=%u",
		    queue_rcpt_state_name(r->state), r->attempts);
		if (r->notify) {
			buf_puts(out, " notify=");
			CTL_NAMES(out, ctl_notify_names, r->notify, 0);
		}
		if (r->orcpt) {
			buf_puts(out, " orcpt=");
			put_text(out, r->orcpt);
		}
		buf_putc(out, '\n');
		if (r->last_attempt > 0) {
			buf_puts(out, "  last_attempt: ");
			ctl_format_time(out, r->last_attempt);
			buf_putc(out, '\n');
		}
		if (r->next_attempt > 0 &&
		    (r->state == RCPT_DEFERRED || r->state == RCPT_PENDING)) {
			buf_puts(out, "  next_attempt: ");
			ctl_format_time(out, r->next_attempt);
			buf_putc(out, '\n');
		}
		if (r->dsn_status)
			show_field(out, "  dsn_status", r->dsn_status);
		if (r->last_response)
			show_field(out, "  last_response", r->last_response);
	}
	if (content == NULL)
		return;
	/* Only the header: the body may be large and is the sender's. */
	for (hdr_end = 0; hdr_end < len; hdr_end++) {
		if (content[hdr_end] == '\n' &&
		    (hdr_end + 1 >= len || content[hdr_end + 1] == '\n' ||
		        (content[hdr_end + 1] == '\r' && hdr_end + 2 < len &&
		            content[hdr_end + 2] == '\n'))) {
			hdr_end++;
			break;
		}
	}
	buf_puts(out, "-- header --\n");
	for (i = 0; i < hdr_end;) {
		size_t e = i;

		while (e < hdr_end && content[e] != '\n')
			e++;
		if (e > i && content[e - 1] == '\r')
			put_line(out, content + i, e - i - 1);
		else
			put_line(out, content + i, e - i);
		buf_putc(out, '\n');
		i = e + 1;
	}
}
