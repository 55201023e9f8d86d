/*
 * control - the client side of the control socket; see control.h.
 *
 * Blocking I/O with a time limit: the callers are short-lived commands
 * (strictmta, mailq, sendmail -q) that have nothing else to do meanwhile.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "control.h"

#define CONTROL_TIMEOUT 300 /* seconds; a long listing takes time */
#define CONTROL_REPLY_MAX (257u << 20) /* the daemon caps at 256 MiB */

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		/* MSG_NOSIGNAL: a daemon that refused us and closed must
		 * not kill the caller with SIGPIPE. */
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
control_call(
    const char *queue_directory, const char *request, buf_t *reply, buf_t *err)
{
	struct sockaddr_un sun;
	struct timeval tv = {CONTROL_TIMEOUT, 0};
	buf_t *path = buf_new(sizeof(sun.sun_path) + 64);
	buf_t *in;
	const char *data, *nl;
	size_t reqlen = strlen(request), len;
	char chunk[65536];
	int fd = -1, r = CONTROL_EIO;

	buf_printf(path, "%s/%s", queue_directory, CONTROL_SOCKET_NAME);
	if (reqlen == 0 || reqlen > CONTROL_REQUEST_MAX ||
	    memchr(request, '\n', reqlen)) {
		buf_puts(err, "bad control request (empty, too long, or a "
		              "newline in it)");
		buf_free(path);
		return CONTROL_EIO;
	}
	if (buf_len(path) >= sizeof(sun.sun_path)) {
		buf_printf(
		    err, "%s: path too long for a Unix socket", buf_data(path));
		buf_free(path);
		return CONTROL_ENOCONN;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, buf_data(path), buf_len(path) + 1);

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		buf_printf(err, "socket: %s", strerror(errno));
		buf_free(path);
		return CONTROL_EIO;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		if (e == EACCES || e == EPERM) {
			buf_printf(err,
			    "cannot connect to the daemon at %s: permission "
			    "denied (root, mail_owner and admin_group only)",
			    buf_data(path));
			r = CONTROL_EDENIED;
		} else {
			buf_printf(err,
			    "cannot connect to the daemon at %s: is "
			    "strictmtad running?",
			    buf_data(path));
			r = CONTROL_ENOCONN;
		}
		buf_free(path);
		return r;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	in = buf_new(CONTROL_REPLY_MAX);
	if (write_all(fd, request, reqlen) < 0 || write_all(fd, "\n", 1) < 0) {
		/* A refusing daemon may have answered and closed already. */
		if (errno != EPIPE && errno != ECONNRESET) {
			buf_printf(err, "%s: cannot send the request: %s",
			    buf_data(path), strerror(errno));
			goto out;
		}
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET &&
		    memchr(buf_data(in), '\n', buf_len(in)) != NULL)
			break; /* a refusal: the answer line is here */
		if (n < 0) {
			buf_printf(err, "%s: no answer from the daemon: %s",
			    buf_data(path),
			    errno == EAGAIN ? "timed out" : strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (buf_append(in, chunk, (size_t)n) < 0 || buf_error(in)) {
			buf_printf(err, "%s: answer too large", buf_data(path));
			goto out;
		}
	}
	data = buf_data(in);
	len = buf_len(in);
	if ((nl = memchr(data, '\n', len)) == NULL) {
		buf_printf(err,
		    "%s: the daemon closed the connection without "
		    "an answer",
		    buf_data(path));
		goto out;
	}
	if (nl - data == 2 && memcmp(data, "OK", 2) == 0) {
		buf_append(reply, nl + 1, len - (size_t)(nl - data) - 1);
		r = CONTROL_OK;
	} else if (nl - data >= 4 && memcmp(data, "ERR ", 4) == 0) {
		buf_append(err, data + 4, (size_t)(nl - data) - 4);
		r = (size_t)(nl - data) == 4 + strlen("permission denied") &&
		            memcmp(data + 4, "permission denied", 17) == 0
		        ? CONTROL_EDENIED
		        : CONTROL_EREPLY;
	} else {
		buf_printf(err, "%s: unexpected answer from the daemon",
		    buf_data(path));
	}
out:
	close(fd);
	buf_free(in);
	buf_free(path);
	return r;
}

int
control_request(
    const char *queue_directory, const char *request, buf_t *reply, buf_t *err)
{
	return control_call(queue_directory, request, reply, err) == CONTROL_OK
	           ? 0
	           : -1;
}
