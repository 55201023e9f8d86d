/*
 * bs - `sendmail -bs`: an SMTP session on stdin/stdout (RFC 5321), for
 * mail programs that submit through a pipe. Each accepted message goes to
 * the maildrop like any other submission.
 *
 * Steps: greet; read a line (smtp_line_find), parse it with the smtpd
 * parsers (mta/smtpd/smtp_cmd.h), answer; after DATA feed the bytes to the
 * shared DATA reader (mta/smtpd/smtp_data.h) until CRLF.CRLF, then
 * submit. One maildrop file per distinct NOTIFY value among the
 * recipients, since the file has one NOTIFY for all (ORCPT is not kept).
 *
 * Blocking I/O is right here: there is one peer, and it is our own
 * parent. Every read waits at most smtpd_timeout; smtpd_hard_error_limit
 * bad commands end the session, like the SMTP listener.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "mta/proto/smtp_cmd.h"
#include "mta/proto/smtp_data.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"
#include "sendmail.h"

#define BS_READ_CHUNK 16384

struct bs {
	const struct sendmail_opts *opts;
	const struct config *cfg;
	const struct sendmail_ident *id;
	int in, out;
	buf_t *inbuf;
	buf_t *host;
	int eof;
	int errors;
	/* The transaction. */
	int have_mail;
	struct smtp_mail_args mail;
	char **rcpts;
	unsigned *notify;
	size_t nrcpt;
};

static int
bs_write(struct bs *s, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(s->out, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
reply(struct bs *s, const char *text)
{
	buf_t *b = buf_new(SMTP_LINE_MAX * 8);
	int rc;

	buf_puts(b, text);
	buf_puts(b, "\r\n");
	rc = bs_write(s, buf_data(b), buf_len(b));
	buf_free(b);
	return rc;
}

/* Reads more input into inbuf; 0, or -1 at EOF, error or timeout (then
 * s->eof is set; a timeout gets its 421 here). */
static int
fill(struct bs *s)
{
	char chunk[BS_READ_CHUNK];
	struct pollfd pfd = {.fd = s->in, .events = POLLIN};
	ssize_t n;
	int pr;

	do
		pr = poll(&pfd, 1, (int)(s->cfg->smtpd_timeout * 1000));
	while (pr < 0 && errno == EINTR);
	if (pr == 0) {
		reply(s, "421 4.4.2 Error: timeout exceeded");
		s->eof = 1;
		return -1;
	}
	do
		n = read(s->in, chunk, sizeof(chunk));
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		s->eof = 1;
		return -1;
	}
	buf_append(s->inbuf, chunk, (size_t)n);
	return 0;
}

static void
reset(struct bs *s)
{
	size_t i;

	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	free(s->notify);
	s->rcpts = NULL;
	s->notify = NULL;
	s->nrcpt = 0;
	s->have_mail = 0;
	memset(&s->mail, 0, sizeof(s->mail));
}

static void
do_ehlo(struct bs *s, const struct smtp_cmd *cmd)
{
	buf_t *b = buf_new(4096);
	const char *why;

	if ((why = smtp_cmd_check_helo(cmd->arg, cmd->arglen)) != NULL) {
		reply(s, why);
		s->errors++;
		buf_free(b);
		return;
	}
	reset(s);
	if (cmd->verb == SMTP_VERB_HELO) {
		buf_printf(b, "250 %s", buf_data(s->host));
	} else {
		buf_printf(b,
		    "250-%s\r\n250-PIPELINING\r\n250-SIZE %lld\r\n"
		    "250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n"
		    "250 ENHANCEDSTATUSCODES",
		    buf_data(s->host), (long long)s->cfg->message_size_limit);
	}
	reply(s, buf_data(b));
	buf_free(b);
}

static void
do_mail(struct bs *s, const struct smtp_cmd *cmd)
{
	const char *why;

	if (s->have_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		s->errors++;
		return;
	}
	if ((why = smtp_cmd_parse_mail(cmd->arg, cmd->arglen, &s->mail)) !=
	    NULL) {
		reply(s, why);
		s->errors++;
		return;
	}
	if (s->mail.has_size &&
	    s->mail.size > (unsigned long long)s->cfg->message_size_limit) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	s->have_mail = 1;
	reply(s, "250 2.1.0 Ok");
}

static void
do_rcpt(struct bs *s, const struct smtp_cmd *cmd)
{
	struct smtp_rcpt_args r;
	const char *why;

	if (!s->have_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		s->errors++;
		return;
	}
	if ((why = smtp_cmd_parse_rcpt(
	         cmd->arg, cmd->arglen, s->mail.smtputf8, &r)) != NULL) {
		reply(s, why);
		s->errors++;
		return;
	}
	if ((long long)s->nrcpt >= s->cfg->smtpd_recipient_limit) {
		reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	s->rcpts = xreallocarray(s->rcpts, s->nrcpt + 1, sizeof(*s->rcpts));
	s->notify = xreallocarray(s->notify, s->nrcpt + 1, sizeof(*s->notify));
	s->rcpts[s->nrcpt] = xstrdup(r.path);
	s->notify[s->nrcpt] = r.notify;
	s->nrcpt++;
	reply(s, "250 2.1.5 Ok");
}

/* Submits the message once per NOTIFY value; the reply names the IDs. */
static void
submit_all(struct bs *s, const char *content, size_t len)
{
	struct sendmail_opts o = *s->opts;
	buf_t *ids = buf_new(1024), *err = buf_new(4096), *b = buf_new(8192);
	char **group = xcalloc(s->nrcpt, sizeof(*group));
	char *done = xcalloc(s->nrcpt, 1);
	char qid[QID_SIZE];
	size_t i, j, n;
	int rc = 0;

	o.extract = 0;
	o.ret = s->mail.ret == SMTP_RET_FULL   ? MAILDROP_RET_FULL
	        : s->mail.ret == SMTP_RET_HDRS ? MAILDROP_RET_HDRS
	                                       : 0;
	o.envid = s->mail.has_envid ? s->mail.envid : NULL;
	o.flags = 0;
	if (s->mail.body == SMTP_BODY_8BITMIME)
		o.flags |= MAILDROP_F_8BITMIME;
	if (s->mail.smtputf8)
		o.flags |= MAILDROP_F_SMTPUTF8;
	for (i = 0; i < s->nrcpt && rc == 0; i++) {
		if (done[i])
			continue;
		n = 0;
		for (j = i; j < s->nrcpt; j++)
			if (!done[j] && s->notify[j] == s->notify[i]) {
				group[n++] = s->rcpts[j];
				done[j] = 1;
			}
		o.notify = s->notify[i];
		buf_reset(err);
		rc = sendmail_submit_content(&o, s->cfg, s->id, s->mail.path,
		    group, n, content, len, qid, err);
		if (rc == 0)
			buf_printf(ids, "%s%s", buf_len(ids) ? " " : "", qid);
	}
	if (rc == 0) {
		buf_printf(b, "250 2.0.0 Ok: queued as %s", buf_data(ids));
	} else {
		log_warn("sendmail -bs: %s", buf_data(err));
		/* Earlier groups are already in the maildrop: a retry
		 * would duplicate them, but losing mail is worse. */
		if (rc == EX_TEMPFAIL)
			buf_printf(b, "451 4.3.0 Error: queue file write "
			              "error");
		else
			buf_printf(b, "554 5.6.0 Error: %.300s", buf_data(err));
	}
	reply(s, buf_data(b));
	free(group);
	free(done);
	buf_free(ids);
	buf_free(err);
	buf_free(b);
}

static void
do_data(struct bs *s)
{
	struct smtp_data d;
	buf_t *content;
	size_t used;

	if (!s->have_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		s->errors++;
		return;
	}
	if (s->nrcpt == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (reply(s, "354 End data with <CR><LF>.<CR><LF>") < 0)
		return;
	/* Content cap one more than the limit so that the reader's own
	 * 552 fires first. */
	content = buf_new((size_t)s->cfg->message_size_limit + 1);
	smtp_data_init(&d, (size_t)s->cfg->message_size_limit, 1);
	/* Bounded: each turn consumes input or reads more, and fill()
	 * stops at EOF or after smtpd_timeout. */
	while (!smtp_data_done(&d)) {
		if (buf_len(s->inbuf) == 0 && fill(s) < 0)
			break;
		used = smtp_data_feed(
		    &d, buf_data(s->inbuf), buf_len(s->inbuf), content);
		buf_consume(s->inbuf, used);
	}
	if (!smtp_data_done(&d)) {
		/* EOF inside DATA: the message is not accepted. */
		buf_free(content);
		reset(s);
		return;
	}
	if (smtp_data_error(&d) != NULL)
		reply(s, smtp_data_error(&d));
	else
		submit_all(s, buf_data(content), buf_len(content));
	buf_free(content);
	reset(s);
}

int
sendmail_smtp_session(const struct sendmail_opts *opts,
    const struct config *cfg, const struct sendmail_ident *id, int in, int out)
{
	struct bs s;
	buf_t *greet = buf_new(1024), *domain = buf_new(1024);
	int skipping = 0, quit = 0;

	memset(&s, 0, sizeof(s));
	s.opts = opts;
	s.cfg = cfg;
	s.id = id;
	s.in = in;
	s.out = out;
	s.inbuf = buf_new(SMTP_LINE_MAX * 4 + BS_READ_CHUNK);
	s.host = buf_new(1024);
	sendmail_hostnames(cfg, s.host, domain);
	buf_printf(
	    greet, "220 %s ESMTP strictmta (sendmail -bs)", buf_data(s.host));
	if (reply(&s, buf_data(greet)) < 0)
		quit = 1;
	/* Bounded: every turn handles a line or reads input, and the loop
	 * ends at EOF, QUIT, a write error or the error limit. */
	while (!quit && !s.eof) {
		struct smtp_cmd cmd;
		enum smtp_line_status st;
		size_t linelen = 0, used = 0;
		const char *why;

		st = smtp_line_find(buf_data(s.inbuf), buf_len(s.inbuf),
		    SMTP_LINE_MAX, &linelen, &used);
		if (st == SMTP_LINE_PARTIAL) {
			if (fill(&s) < 0)
				break;
			continue;
		}
		if (st == SMTP_LINE_TOOLONG) {
			if (used == 0) {
				/* Drop what we have; reply once the line
				 * ends. */
				buf_reset(s.inbuf);
				skipping = 1;
				if (fill(&s) < 0)
					break;
				continue;
			}
			buf_consume(s.inbuf, used);
			skipping = 0;
			reply(&s, "500 5.5.2 Error: line too long");
			s.errors++;
		} else {
			/* A bare LF ends a command line too: this is a
			 * local pipe, and a command line cannot smuggle
			 * message content. */
			if (skipping) {
				buf_consume(s.inbuf, used);
				skipping = 0;
				reply(&s, "500 5.5.2 Error: line too long");
				s.errors++;
				continue;
			}
			why = smtp_cmd_parse(buf_data(s.inbuf), linelen, &cmd);
			if (why != NULL) {
				buf_consume(s.inbuf, used);
				reply(&s, why);
				s.errors++;
			} else {
				/* cmd points into inbuf: consume after. */
				switch (cmd.verb) {
				case SMTP_VERB_HELO:
				case SMTP_VERB_EHLO:
					do_ehlo(&s, &cmd);
					break;
				case SMTP_VERB_MAIL:
					do_mail(&s, &cmd);
					break;
				case SMTP_VERB_RCPT:
					do_rcpt(&s, &cmd);
					break;
				case SMTP_VERB_DATA:
					buf_consume(s.inbuf, used);
					used = 0;
					do_data(&s);
					break;
				case SMTP_VERB_RSET:
					reset(&s);
					reply(&s, "250 2.0.0 Ok");
					break;
				case SMTP_VERB_NOOP:
					reply(&s, "250 2.0.0 Ok");
					break;
				case SMTP_VERB_QUIT:
					reply(&s, "221 2.0.0 Bye");
					quit = 1;
					break;
				case SMTP_VERB_VRFY:
					reply(&s, "252 2.0.0 Cannot VRFY "
					          "user");
					break;
				case SMTP_VERB_HELP:
					reply(&s, "214 2.0.0 See RFC 5321");
					break;
				default:
					reply(&s, "502 5.5.1 Error: command "
					          "not available here");
					break;
				}
				buf_consume(s.inbuf, used);
			}
		}
		if (s.errors >= s.cfg->smtpd_hard_error_limit) {
			reply(&s, "421 4.7.0 Error: too many errors");
			break;
		}
	}
	reset(&s);
	buf_free(s.inbuf);
	buf_free(s.host);
	buf_free(greet);
	buf_free(domain);
	return 0;
}
