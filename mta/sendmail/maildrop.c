/*
 * maildrop - see maildrop.h for the file format and the folder's rules.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "maildrop.h"
#include "mta/util/xalloc.h"

/* The largest file maildrop_read() accepts: the content plus generous
 * room for the envelope records. */
#define MAILDROP_ORDER "SRNTEFUIC"
#define MAILDROP_FILE_MAX (MAILDROP_CONTENT_MAX + 64ULL * 1024 * 1024)

struct maildrop_msg *
maildrop_msg_new(void)
{
	struct maildrop_msg *m = xcalloc(1, sizeof(*m));

	m->sender = xstrdup("");
	m->user = xstrdup("");
	m->content = xstrdup("");
	return m;
}

void
maildrop_msg_free(struct maildrop_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	free(m->sender);
	for (i = 0; i < m->nrcpt; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m->envid);
	free(m->user);
	free(m->content);
	free(m);
}

void
maildrop_msg_add_rcpt(struct maildrop_msg *m, const char *address)
{
	m->rcpts = xreallocarray(m->rcpts, m->nrcpt + 1, sizeof(*m->rcpts));
	m->rcpts[m->nrcpt++] = xstrdup(address);
}

/* Text fields: no control characters, since they end up in log lines and
 * SMTP commands. Bytes >= 0x80 are allowed for SMTPUTF8 addresses. */
static int
text_ok(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

/* RFC 3461 4.4: ENVID is printable US-ASCII once xtext is decoded. */
static int
envid_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > MAILDROP_ENVID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* NEVER excludes the others (RFC 3461 4.1). */
static int
notify_ok(unsigned long n)
{
	if (n > 0xf)
		return 0;
	return !((n & MAILDROP_NOTIFY_NEVER) && n != MAILDROP_NOTIFY_NEVER);
}

/* Every CR is followed by LF and every LF preceded by CR; a non-empty
 * content ends in CRLF. Bare CR or LF is how SMTP smuggling splits
 * messages, so the daemon never gets one from here. */
static const char *
content_check(const char *s, size_t len)
{
	const char *p, *end = s + len;

	for (p = s; p < end; p += 2) {
		p = memchr(p, '\r', (size_t)(end - p));
		if (p == NULL)
			break;
		if (p + 1 >= end || p[1] != '\n')
			return "bare CR in content";
	}
	for (p = s; p < end; p++) {
		p = memchr(p, '\n', (size_t)(end - p));
		if (p == NULL)
			break;
		if (p == s || p[-1] != '\r')
			return "bare LF in content";
	}
	if (memchr(s, '\0', len) != NULL)
		return "NUL in content";
	if (len > 0 && (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n'))
		return "content does not end in CRLF";
	return NULL;
}

const char *
maildrop_msg_check(const struct maildrop_msg *m)
{
	size_t i, n;

	if (m->sender == NULL || m->user == NULL || m->content == NULL)
		return "missing field";
	n = strlen(m->sender);
	if (n > MAILDROP_ADDR_MAX || !text_ok(m->sender, n))
		return "bad sender address";
	if (m->nrcpt == 0)
		return "no recipients";
	if (m->nrcpt > MAILDROP_RCPT_MAX)
		return "too many recipients";
	for (i = 0; i < m->nrcpt; i++) {
		n = strlen(m->rcpts[i]);
		if (n == 0 || n > MAILDROP_ADDR_MAX || !text_ok(m->rcpts[i], n))
			return "bad recipient address";
	}
	if (!notify_ok(m->notify))
		return "bad DSN NOTIFY value";
	if (m->ret < 0 || m->ret > MAILDROP_RET_HDRS)
		return "bad DSN RET value";
	if (m->envid != NULL && !envid_ok(m->envid, strlen(m->envid)))
		return "bad DSN ENVID";
	if (m->flags & ~(unsigned)MAILDROP_F_ALL)
		return "bad flags";
	n = strlen(m->user);
	if (n > MAILDROP_USER_MAX || !text_ok(m->user, n))
		return "bad user name";
	if (m->uid < 0 || m->uid > 4294967295L)
		return "bad uid";
	if (m->len > MAILDROP_CONTENT_MAX)
		return "content too long";
	return content_check(m->content, m->len);
}

static void
put_record(buf_t *out, char tag, const void *data, size_t len)
{
	buf_printf(out, "%c%zu:", tag, len);
	buf_append(out, data, len);
	buf_putc(out, '\n');
}

static void
put_number(buf_t *out, char tag, unsigned long n)
{
	char tmp[32];
	int len = snprintf(tmp, sizeof(tmp), "%lu", n);

	put_record(out, tag, tmp, (size_t)len);
}

void
maildrop_encode(const struct maildrop_msg *m, buf_t *out)
{
	size_t i;

	buf_puts(out, MAILDROP_MAGIC);
	put_record(out, 'S', m->sender, strlen(m->sender));
	for (i = 0; i < m->nrcpt; i++)
		put_record(out, 'R', m->rcpts[i], strlen(m->rcpts[i]));
	if (m->notify)
		put_number(out, 'N', m->notify);
	if (m->ret)
		put_number(out, 'T', (unsigned long)m->ret);
	if (m->envid != NULL)
		put_record(out, 'E', m->envid, strlen(m->envid));
	if (m->flags)
		put_number(out, 'F', m->flags);
	put_record(out, 'U', m->user, strlen(m->user));
	put_number(out, 'I', (unsigned long)m->uid);
	put_record(out, 'C', m->content, m->len);
}

/* A decimal without sign or leading zeros, at most 10 digits. */
static int
parse_decimal(const char *s, size_t len, unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	if (len == 0 || len > 10 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	*out = v;
	return 0;
}

const char *
maildrop_parse(const void *data, size_t len, struct maildrop_msg **out)
{
	const char *p = data, *end = p + len;
	struct maildrop_msg *m;
	unsigned seen = 0; /* bit per tag letter */
	size_t last_rank = 0;
	size_t maglen = strlen(MAILDROP_MAGIC);
	const char *err = NULL;

	*out = NULL;
	if (len < maglen || memcmp(p, MAILDROP_MAGIC, maglen) != 0)
		return "not a maildrop file (bad magic or version)";
	p += maglen;
	m = xcalloc(1, sizeof(*m));
	for (;;) {
		const char *colon, *val;
		unsigned long long n, vlen;
		char tag;

		if (p >= end) {
			err = "truncated: no content record";
			break;
		}
		tag = *p++;
		if (tag < 'A' || tag > 'Z') {
			err = "bad record tag";
			break;
		}
		/* Look for ':' within the 10 digits a length may have. */
		colon = memchr(
		    p, ':', (size_t)(end - p) < 11 ? (size_t)(end - p) : 11);
		if (colon == NULL ||
		    parse_decimal(p, (size_t)(colon - p), &vlen) < 0) {
			err = "bad record length";
			break;
		}
		val = colon + 1;
		/* vlen + 1 for the '\n'; compare without overflowing. */
		if (vlen >= (unsigned long long)(end - val) ||
		    val[vlen] != '\n') {
			err = "truncated record";
			break;
		}
		p = val + vlen + 1;
		if (tag != 'R' && (seen & (1u << (tag - 'A')))) {
			err = "duplicate record";
			break;
		}
		/* One spelling per message: records in the documented
		 * order, so that parse and encode are inverses. */
		if (strchr(MAILDROP_ORDER, tag) != NULL) {
			size_t rank = (size_t)(strchr(MAILDROP_ORDER, tag) -
			                       MAILDROP_ORDER);

			if (rank < last_rank) {
				err = "records out of order";
				break;
			}
			last_rank = rank;
		}
		seen |= 1u << (tag - 'A');
		switch (tag) {
		case 'S':
			if (vlen > MAILDROP_ADDR_MAX || !text_ok(val, vlen))
				err = "bad sender record";
			else
				m->sender = xstrndup(val, vlen);
			break;
		case 'R':
			if (vlen == 0 || vlen > MAILDROP_ADDR_MAX ||
			    !text_ok(val, vlen))
				err = "bad recipient record";
			else if (m->nrcpt >= MAILDROP_RCPT_MAX)
				err = "too many recipients";
			else {
				m->rcpts = xreallocarray(
				    m->rcpts, m->nrcpt + 1, sizeof(*m->rcpts));
				m->rcpts[m->nrcpt++] = xstrndup(val, vlen);
			}
			break;
		case 'N':
			if (parse_decimal(val, vlen, &n) < 0 || n == 0 ||
			    !notify_ok(n))
				err = "bad notify record";
			else
				m->notify = (unsigned)n;
			break;
		case 'T':
			if (parse_decimal(val, vlen, &n) < 0 || n < 1 ||
			    n > MAILDROP_RET_HDRS)
				err = "bad ret record";
			else
				m->ret = (int)n;
			break;
		case 'E':
			if (!envid_ok(val, vlen))
				err = "bad envid record";
			else
				m->envid = xstrndup(val, vlen);
			break;
		case 'F':
			if (parse_decimal(val, vlen, &n) < 0 || n == 0 ||
			    (n & ~(unsigned long long)MAILDROP_F_ALL))
				err = "bad flags record";
			else
				m->flags = (unsigned)n;
			break;
		case 'U':
			if (vlen > MAILDROP_USER_MAX || !text_ok(val, vlen))
				err = "bad user record";
			else
				m->user = xstrndup(val, vlen);
			break;
		case 'I':
			if (parse_decimal(val, vlen, &n) < 0 ||
			    n > 4294967295ULL)
				err = "bad uid record";
			else
				m->uid = (long)n;
			break;
		case 'C':
			if (vlen > MAILDROP_CONTENT_MAX)
				err = "content too long";
			else if ((err = content_check(val, vlen)) == NULL) {
				m->content = xmemdup(val, vlen);
				m->len = vlen;
			}
			break;
		default:
			err = "unknown record tag";
			break;
		}
		if (err != NULL || tag == 'C')
			break;
	}
	if (err == NULL && p != end)
		err = "data after the content record";
	if (err == NULL && !(seen & (1u << ('S' - 'A'))))
		err = "no sender record";
	if (err == NULL && m->nrcpt == 0)
		err = "no recipient record";
	if (err == NULL && !(seen & (1u << ('U' - 'A'))))
		err = "no user record";
	if (err == NULL && !(seen & (1u << ('I' - 'A'))))
		err = "no uid record";
	if (err != NULL) {
		maildrop_msg_free(m);
		return err;
	}
	*out = m;
	return NULL;
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Makes the rename durable. The folder is not readable by the setgid
 * group (mode 1730), so an unprivileged writer cannot open it: the daemon
 * then syncs when it imports, and the file itself is already on disk. */
static void
sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

int
maildrop_write_id(
    const char *dir, const struct maildrop_msg *m, const char *qid, buf_t *err)
{
	buf_t *tmp = buf_new(0), *final = buf_new(0), *data = buf_new(0);
	const char *why;
	int fd = -1, rc = -1, saved, masked = 0;
	sigset_t block, saved_mask;

	if ((why = maildrop_msg_check(m)) != NULL) {
		buf_printf(err, "maildrop: refusing message: %s", why);
		goto out;
	}
	if (!qid_valid(qid)) {
		buf_printf(err, "maildrop: bad queue ID");
		goto out;
	}
	buf_printf(tmp, "%s/%sXXXXXX", dir, MAILDROP_TMP_PREFIX);
	buf_printf(final, "%s/%s", dir, qid);
	maildrop_encode(m, data);
	if (buf_error(tmp) || buf_error(final) || buf_error(data)) {
		buf_printf(err, "maildrop: message too large");
		goto out;
	}
	/* An interrupt between create and rename would leave a temporary
	 * file: hold the usual ones until the file is in place. */
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGTSTP);
	pthread_sigmask(SIG_BLOCK, &block, &saved_mask);
	masked = 1;
	fd = mkostemp(buf_data_mut(tmp), O_CLOEXEC);
	if (fd < 0) {
		buf_printf(
		    err, "create %s: %s", buf_data(tmp), strerror(errno));
		goto out;
	}
	/* mkstemp makes 0600; the daemon (another uid) must read it. */
	if (fchmod(fd, 0644) < 0 ||
	    write_all(fd, buf_data(data), buf_len(data)) < 0 || fsync(fd) < 0) {
		buf_printf(err, "write %s: %s", buf_data(tmp), strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		buf_printf(err, "write %s: %s", buf_data(tmp), strerror(errno));
		goto out;
	}
	fd = -1;
	/* Never replace a file: two writers with the same ID must not lose
	 * a message. */
	if (renameat2(AT_FDCWD, buf_data(tmp), AT_FDCWD, buf_data(final),
	        RENAME_NOREPLACE) < 0) {
		saved = errno;
		if (saved == EEXIST) {
			rc = -2;
			buf_printf(err, "%s exists", buf_data(final));
		} else if (saved == EINVAL) {
			/* A file system without RENAME_NOREPLACE: link()
			 * refuses to replace too. */
			if (link(buf_data(tmp), buf_data(final)) == 0) {
				rc = 0;
			} else if (errno == EEXIST) {
				rc = -2;
				buf_printf(err, "%s exists", buf_data(final));
			} else {
				buf_printf(err, "link %s: %s", buf_data(final),
				    strerror(errno));
			}
		} else {
			buf_printf(err, "rename %s: %s", buf_data(final),
			    strerror(saved));
		}
		/* After link() or a failure the temporary name remains. */
		unlink(buf_data(tmp));
		if (rc == 0)
			sync_dir(dir);
		goto out_kept;
	}
	sync_dir(dir);
	rc = 0;
	goto out_kept;
out:
	if (fd >= 0) {
		close(fd);
		unlink(buf_data(tmp));
	}
out_kept:
	if (masked)
		pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
	buf_free(tmp);
	buf_free(final);
	buf_free(data);
	return rc;
}

int
maildrop_write(const char *dir, const struct maildrop_msg *m,
    char qid_out[QID_SIZE], buf_t *err)
{
	int tries, rc = -1;

	/* Bounded: a clash needs the same microsecond and PID digit. */
	for (tries = 0; tries < 5; tries++) {
		qid_new(qid_out);
		buf_reset(err);
		rc = maildrop_write_id(dir, m, qid_out, err);
		if (rc != -2)
			break;
	}
	return rc == 0 ? 0 : -1;
}

int
maildrop_read(const char *path, struct maildrop_msg **out, buf_t *err)
{
	struct stat st;
	char *data = NULL;
	size_t got = 0;
	const char *why;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		buf_printf(err, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		buf_printf(err, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if ((unsigned long long)st.st_size > MAILDROP_FILE_MAX) {
		buf_printf(err, "%s: file too large", path);
		close(fd);
		return -1;
	}
	data = xmalloc((size_t)st.st_size + 1);
	/* Read what fstat promised; a file that changes meanwhile is cut at
	 * that size and then fails to parse. */
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			buf_printf(err, "%s: %s", path, strerror(errno));
			free(data);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if ((why = maildrop_parse(data, got, out)) != NULL) {
		buf_printf(err, "%s: %s", path, why);
		free(data);
		return -1;
	}
	free(data);
	(*out)->uid = (long)st.st_uid;
	return 0;
}
