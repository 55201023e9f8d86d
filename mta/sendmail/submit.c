/*
 * submit - delivery mode: read the message, settle sender and recipients,
 * add the headers Postfix adds to local submissions, drop the file.
 *
 * Steps: read stdin through the reader (line endings, ".", size cap);
 * qualify the sender (-f, else login@mydomain) and the recipients
 * (arguments, then with -t the headers), drop duplicates; take a queue ID,
 * build Received:/From:/Date:/Message-ID: with it and fix the headers;
 * write the maildrop file, retrying with a new ID on a name clash.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "sendmail.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"

#define SUBMIT_READ_CHUNK 65536
#define SUBMIT_ID_TRIES 5

struct rcpt_set {
	char **v;
	size_t n;
	size_t max; /* smtpd_recipient_limit: the daemon takes no more */
};

#define SET_TOO_MANY (-2)

static void
set_free(struct rcpt_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* Qualifies and adds addr unless already present (Postfix's cleanup
 * drops duplicates too). Returns -1 for an unusable address,
 * SET_TOO_MANY past the recipient limit. */
static int
set_add(struct rcpt_set *s, const char *addr, const char *domain)
{
	char *q = sendmail_qualify(addr, domain);
	size_t i;

	if (q == NULL || *q == '\0') {
		free(q);
		return -1;
	}
	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i], q) == 0) {
			free(q);
			return 0;
		}
	if (s->n >= s->max) {
		free(q);
		return SET_TOO_MANY;
	}
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = q;
	return 0;
}

static void
too_many(const struct rcpt_set *s, buf_t *err)
{
	buf_printf(err,
	    "too many recipients: more than %zu (smtpd_recipient_limit); "
	    "nothing was sent",
	    s->max);
}

static int
non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
submit(const struct sendmail_opts *o, const struct config *cfg,
    const struct sendmail_ident *id, const char *sender_arg,
    struct rcpt_set *rcpts, const char *content, size_t len,
    char qid_out[QID_SIZE], buf_t *err)
{
	buf_t *host = buf_new(1024), *domain = buf_new(1024);
	buf_t *dir = buf_new(4096), *out = NULL, *line = buf_new(4096);
	buf_t *recv = buf_new(4096), *from = buf_new(4096);
	buf_t *date = buf_new(256), *msgid = buf_new(1024);
	struct maildrop_msg *m = maildrop_msg_new();
	struct sendmail_hdr_result res;
	struct stat st;
	const char *why;
	char *sender = NULL, *from_addr;
	int rc = 0, tries;
	size_t i;

	memset(&res, 0, sizeof(res));
	sendmail_hostnames(cfg, host, domain);
	buf_printf(dir, "%s/%s", cfg->queue_directory, MAILDROP_SUBDIR);
	errno = 0;
	if (stat(buf_data(dir), &st) < 0 || !S_ISDIR(st.st_mode)) {
		/* Mail cannot be taken now, but may be later, when the
		 * daemon has made its folders. */
		buf_printf(err, "maildrop %s: %s (is strictmtad set up?)",
		    buf_data(dir), errno ? strerror(errno) : "not a directory");
		rc = EX_TEMPFAIL;
		goto out;
	}
	if (sender_arg == NULL) {
		sender = sendmail_qualify(id->user, buf_data(domain));
	} else {
		/* -f may be "<>", "" or "Name <addr>": one address or
		 * none (the null sender), parsed like a header. */
		char **list = NULL;
		size_t n = 0;

		if (sendmail_addrlist_parse(
		        sender_arg, strlen(sender_arg), &list, &n) == NULL &&
		    n <= 1)
			sender = sendmail_qualify(
			    n ? list[0] : "", buf_data(domain));
		for (i = 0; i < n; i++)
			free(list[i]);
		free(list);
	}
	if (sender == NULL) {
		buf_printf(err, "bad sender address");
		rc = EX_USAGE;
		goto out;
	}
	for (tries = 0; tries < SUBMIT_ID_TRIES; tries++) {
		struct sendmail_hdr_params hp;
		char utc[32];
		time_t now = (time_t)clock_now();
		struct tm tm;

		qid_new(qid_out);
		buf_reset(recv);
		buf_reset(from);
		buf_reset(date);
		buf_reset(msgid);
		buf_reset(line);
		buf_free(out);
		out = buf_new(len + 64 * 1024);
		sendmail_hdr_result_free(&res);
		sendmail_format_date(now, line);
		buf_printf(date, "Date: %s", buf_data(line));
		buf_printf(recv,
		    "Received: by %s (strictmta, from userid %ld)\r\n"
		    "\tid %s; %s",
		    buf_data(host), (long)id->uid, qid_out, buf_data(line));
		gmtime_r(&now, &tm);
		strftime(utc, sizeof(utc), "%Y%m%d%H%M%S", &tm);
		buf_printf(msgid, "Message-ID: <%s.%s@%s>", utc, qid_out,
		    buf_data(host));
		/* The From: of a null-sender message is the user. */
		buf_reset(line);
		if (*sender == '\0')
			buf_printf(line, "%s@%s", id->user, buf_data(domain));
		else
			buf_puts(line, sender);
		from_addr = xstrdup(buf_data(line));
		buf_puts(from, "From: ");
		sendmail_format_from(
		    o->fullname ? o->fullname : id->fullname, from_addr, from);
		free(from_addr);
		hp.extract = o->extract;
		hp.received = buf_data(recv);
		hp.from = buf_data(from);
		hp.date = buf_data(date);
		hp.message_id = buf_data(msgid);
		if ((why = sendmail_fix_headers(
		         content, len, &hp, out, &res)) != NULL) {
			buf_printf(err, "bad message header: %s", why);
			rc = EX_DATAERR;
			goto out;
		}
		if (tries == 0) {
			for (i = 0; i < res.nrcpt; i++) {
				int r = set_add(
				    rcpts, res.rcpts[i], buf_data(domain));

				if (r == SET_TOO_MANY) {
					too_many(rcpts, err);
					rc = EX_DATAERR;
					goto out;
				}
				if (r < 0) {
					buf_printf(err,
					    "bad recipient address in message "
					    "header");
					rc = EX_DATAERR;
					goto out;
				}
			}
			if (rcpts->n == 0) {
				buf_printf(err,
				    o->extract
				        ? "No recipient addresses found in "
				          "message header"
				        : "Recipient addresses must be "
				          "specified on the command line or "
				          "via the -t option");
				rc = EX_USAGE;
				goto out;
			}
		}
		if ((size_t)cfg->message_size_limit < buf_len(out)) {
			buf_printf(err, "message exceeds message_size_limit");
			rc = EX_DATAERR;
			goto out;
		}
		/* Fill the envelope. */
		maildrop_msg_free(m);
		m = maildrop_msg_new();
		free(m->sender);
		m->sender = xstrdup(sender);
		for (i = 0; i < rcpts->n; i++)
			maildrop_msg_add_rcpt(m, rcpts->v[i]);
		m->notify = o->notify;
		m->ret = o->ret;
		m->envid = o->envid ? xstrdup(o->envid) : NULL;
		m->flags = o->flags;
		if (res.tls_optional)
			m->flags |= MAILDROP_F_TLS_OPTIONAL;
		if (res.eightbit)
			m->flags |= MAILDROP_F_8BITMIME;
		if (non_ascii(sender))
			m->flags |= MAILDROP_F_SMTPUTF8;
		for (i = 0; i < rcpts->n; i++)
			if (non_ascii(rcpts->v[i]))
				m->flags |= MAILDROP_F_SMTPUTF8;
		free(m->user);
		m->user = xstrdup(id->user);
		m->uid = (long)id->uid;
		free(m->content);
		m->content = buf_steal(out, &m->len);
		buf_reset(err);
		/* What the file format cannot hold is the message's fault
		 * (65), not a reason to try again later (75). */
		if ((why = maildrop_msg_check(m)) != NULL) {
			buf_printf(err, "cannot submit this message: %s", why);
			rc = EX_DATAERR;
			goto out;
		}
		rc = maildrop_write_id(buf_data(dir), m, qid_out, err);
		if (rc != -2)
			break;
	}
	if (rc != 0) {
		rc = EX_TEMPFAIL;
		goto out;
	}
	log_info("%s: uid=%ld from=<%s> size=%zu nrcpt=%zu", qid_out,
	    (long)id->uid, sender, m->len, m->nrcpt);
out:
	free(sender);
	sendmail_hdr_result_free(&res);
	maildrop_msg_free(m);
	buf_free(host);
	buf_free(domain);
	buf_free(dir);
	buf_free(out);
	buf_free(line);
	buf_free(recv);
	buf_free(from);
	buf_free(date);
	buf_free(msgid);
	return rc;
}

int
sendmail_submit_content(const struct sendmail_opts *o, const struct config *cfg,
    const struct sendmail_ident *id, const char *sender, char **rcpts,
    size_t nrcpt, const char *content, size_t len, char qid_out[QID_SIZE],
    buf_t *err)
{
	struct rcpt_set set = {NULL, 0, (size_t)cfg->smtpd_recipient_limit};
	buf_t *host = buf_new(1024), *domain = buf_new(1024);
	size_t i;
	int rc = 0;

	sendmail_hostnames(cfg, host, domain);
	for (i = 0; i < nrcpt && rc == 0; i++) {
		int r = set_add(&set, rcpts[i], buf_data(domain));

		if (r == SET_TOO_MANY) {
			too_many(&set, err);
			rc = EX_DATAERR;
		} else if (r < 0) {
			buf_printf(err, "bad recipient address");
			rc = EX_USAGE;
		}
	}
	if (rc == 0)
		rc = submit(
		    o, cfg, id, sender, &set, content, len, qid_out, err);
	set_free(&set);
	buf_free(host);
	buf_free(domain);
	return rc;
}

int
sendmail_submit(const struct sendmail_opts *o, const struct config *cfg,
    const struct sendmail_ident *id, int fd, char qid_out[QID_SIZE], buf_t *err)
{
	struct sendmail_reader *r;
	struct rcpt_set set = {NULL, 0, (size_t)cfg->smtpd_recipient_limit};
	buf_t *host = buf_new(1024), *domain = buf_new(1024);
	char *chunk = xmalloc(SUBMIT_READ_CHUNK), *content = NULL;
	size_t i, j, len = 0;
	int rc = 0, fed = 0;

	sendmail_hostnames(cfg, host, domain);
	/* Arguments first: a bad one is a usage error before any input. */
	for (i = 0; i < o->nrcpt && rc == 0; i++) {
		char **list = NULL;
		size_t n = 0;
		const char *why = sendmail_addrlist_parse(
		    o->rcpts[i], strlen(o->rcpts[i]), &list, &n);

		if (why != NULL) {
			buf_printf(err, "bad recipient argument: %s", why);
			rc = EX_USAGE;
		}
		for (j = 0; j < n; j++) {
			int added =
			    rc == 0 ? set_add(&set, list[j], buf_data(domain))
			            : 0;

			if (added == SET_TOO_MANY) {
				too_many(&set, err);
				rc = EX_DATAERR;
			} else if (added < 0) {
				buf_printf(err, "bad recipient address");
				rc = EX_USAGE;
			}
			free(list[j]);
		}
		free(list);
	}
	if (rc == 0 && !o->extract && set.n == 0) {
		buf_printf(err, "Recipient addresses must be specified on the "
		                "command line or via the -t option");
		rc = EX_USAGE;
	}
	if (rc != 0)
		goto out;
	r = sendmail_reader_new(o->dot_ends, (size_t)cfg->message_size_limit);
	/* Bounded by the reader's cap: it refuses more than
	 * message_size_limit, and EOF or "." end the loop. */
	while (fed == 0) {
		ssize_t n = read(fd, chunk, SUBMIT_READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_printf(err, "error reading the message: %s",
			    strerror(errno));
			rc = EX_DATAERR;
			break;
		}
		if (n == 0)
			break;
		fed = sendmail_reader_feed(r, chunk, (size_t)n);
	}
	if (fed < 0) {
		buf_printf(err, "message exceeds message_size_limit (%lld)",
		    (long long)cfg->message_size_limit);
		rc = EX_DATAERR;
	}
	content = sendmail_reader_finish(r, &len);
	sendmail_reader_free(r);
	if (rc == 0)
		rc = submit(
		    o, cfg, id, o->sender, &set, content, len, qid_out, err);
out:
	free(content);
	free(chunk);
	set_free(&set);
	buf_free(host);
	buf_free(domain);
	return rc;
}
