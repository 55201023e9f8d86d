/*
 * sendmail, mailq - the Sendmail-compatible command (sendmail.h).
 *
 * Installed setgid setgid_group so that it can write the maildrop area
 * (maildrop.h); it never opens the queue database. The list and flush
 * requests go to the daemon's control socket (mta/cli/control.h).
 *
 * Exit codes are sysexits.h: 0 accepted, 64 usage (bad option, no
 * recipient), 65 bad input, 67 unknown user, 69 the daemon refused a
 * request, 75 try again later (maildrop not writable, daemon not running),
 * 77 control socket access denied, 78 config error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "mta/cli/control.h"
#include "mta/sendmail/sendmail.h"
#include "mta/util/log.h"
#include "mta/util/safepath.h"
#include "mta/util/xalloc.h"

static const char *prog = "sendmail";

static void __attribute__((noreturn)) die(int code, const char *msg)
{
	fprintf(stderr, "%s: %s\n", prog, msg);
	log_warn("%s", msg);
	exit(code);
}

/*
 * A config file other than the default keeps the setgid group only when
 * root controls it: otherwise a user could aim the group's write access
 * at a folder of their choosing, and we drop the group (as Exim does for
 * -C), which leaves the user's own rights.
 *
 * "Root controls it": the file is a plain file of root's that only root
 * may write, and every folder from "/" down to it is root's alone
 * (safepath.h; sticky folders such as /tmp are fine). The file is opened
 * once, with the user's own rights (so the group reads nothing for
 * them), by a walk that opens each folder relative to the one before
 * without following links, and the descriptor that was checked is the
 * one parsed: a link swapped in between a check and the read cannot
 * change what is read. realpath() first, so that a link the admin made
 * still works: what it leads to is walked and checked.
 *
 * Returns the descriptor to parse, or -1 with the reason in why (then the
 * caller drops the group and opens the file as the user).
 */
static int
open_trusted_config(const char *path, buf_t *why)
{
	char *real, last[256];
	struct stat st;
	int dfd, fd;

	if ((real = realpath(path, NULL)) == NULL) {
		buf_printf(why, "%s: %s", path, strerror(errno));
		return -1;
	}
	dfd = safepath_open_parent(real, 1, last, sizeof(last), why);
	if (dfd < 0) {
		free(real);
		return -1;
	}
	fd = openat(dfd, last,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	close(dfd);
	if (fd < 0) {
		buf_printf(why, "%s: %s", real, strerror(errno));
		free(real);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022)) {
		buf_printf(why,
		    "%s: not a plain file that only root may change", real);
		close(fd);
		free(real);
		return -1;
	}
	free(real);
	return fd;
}

/* Parses an alternate config (-C or STRICTMTA_CONFIG); see above. */
static void
load_alternate_config(struct config *cfg, const char *path, buf_t *err)
{
	gid_t rgid = getgid(), egid = getegid();
	buf_t *why;
	int fd, r;

	if (egid == rgid) {
		/* Not setgid (or the caller is in the group): own rights. */
		r = config_load(cfg, path, err);
		goto done;
	}
	why = buf_new(4096);
	/* The user's own rights for the walk; the saved id keeps the group
	 * for a moment (setgid exec set it). */
	if (setresgid(-1, rgid, -1) < 0)
		die(EX_OSERR, "cannot act without the setgid group");
	fd = open_trusted_config(path, why);
	if (fd >= 0) {
		if (setresgid(-1, egid, -1) < 0)
			die(EX_OSERR, "cannot take the setgid group back");
	} else {
		if (setresgid(rgid, rgid, rgid) < 0 || getegid() != rgid)
			die(EX_OSERR, "cannot drop the setgid group");
		fprintf(stderr,
		    "%s: warning: %s is not root's alone (%s): running "
		    "without the setgid group\n",
		    prog, path, buf_data(why));
	}
	buf_free(why);
	if (fd >= 0)
		r = config_load_fd(cfg, fd, path, err);
	else
		r = config_load(cfg, path, err);
done:
	if (r < 0) {
		fprintf(stderr, "%s: fatal: %s\n", prog, buf_data(err));
		exit(EX_CONFIG);
	}
}

static struct config *
load_config(const char *opt_path)
{
	struct config *cfg = config_new();
	const char *path = opt_path;
	buf_t *err = buf_new(4096);

	if (path == NULL)
		path = getenv("STRICTMTA_CONFIG");
	if (path != NULL && *path != '\0' &&
	    strcmp(path, SENDMAIL_DEFAULT_CONFIG) != 0) {
		load_alternate_config(cfg, path, err);
		buf_free(err);
		return cfg;
	}
	path = SENDMAIL_DEFAULT_CONFIG;
	/* No main.cf yet: the defaults are the configuration. */
	if (access(path, F_OK) < 0 && errno == ENOENT) {
		buf_free(err);
		return cfg;
	}
	if (config_load(cfg, path, err) < 0) {
		fprintf(stderr, "%s: fatal: %s\n", prog, buf_data(err));
		exit(EX_CONFIG);
	}
	buf_free(err);
	return cfg;
}

static void
get_ident(struct sendmail_ident *id, char **fullname_store)
{
	struct passwd *pw = getpwuid(getuid());
	const char *name = getenv("NAME");

	if (pw == NULL)
		die(EX_NOUSER, "cannot find your user name");
	id->user = pw->pw_name;
	id->uid = pw->pw_uid;
	/* $NAME, then the GECOS field up to its first comma. */
	if (name != NULL && *name != '\0')
		*fullname_store = xstrdup(name);
	else
		*fullname_store = xstrndup(pw->pw_gecos ? pw->pw_gecos : "",
		    pw->pw_gecos ? strcspn(pw->pw_gecos, ",") : 0);
	id->fullname = *fullname_store;
}

static int
control(const struct config *cfg, const char *request, int print)
{
	buf_t *reply = buf_new(0), *err = buf_new(4096);
	int rc = 0;

	switch (control_call(cfg->queue_directory, request, reply, err)) {
	case CONTROL_OK:
		if (print) {
			fwrite(buf_data(reply), 1, buf_len(reply), stdout);
			if (fflush(stdout) != 0)
				rc = EX_IOERR;
		}
		break;
	case CONTROL_ENOCONN:
		fprintf(stderr,
		    "%s: the strictmta daemon is not running (%s)\n", prog,
		    buf_data(err));
		rc = EX_TEMPFAIL;
		break;
	case CONTROL_EDENIED:
		fprintf(stderr, "%s: %s\n", prog, buf_data(err));
		rc = EX_NOPERM;
		break;
	case CONTROL_EREPLY:
		fprintf(stderr, "%s: the daemon refused: %s\n", prog,
		    buf_data(err));
		rc = EX_UNAVAILABLE;
		break;
	default:
		fprintf(stderr, "%s: %s\n", prog, buf_data(err));
		rc = EX_TEMPFAIL;
		break;
	}
	buf_free(reply);
	buf_free(err);
	return rc;
}

int
main(int argc, char **argv)
{
	struct sendmail_opts o;
	struct sendmail_ident id;
	struct config *cfg = NULL;
	buf_t *err, *warn;
	char qid[QID_SIZE], *fullname = NULL;
	const char *w;
	int rc;

	/* A setgid program must not let its own files become fd 0-2: an
	 * error message would then land in a maildrop file. */
	for (;;) {
		int fd = open("/dev/null", O_RDWR);

		if (fd < 0)
			return EX_OSERR;
		if (fd > 2) {
			close(fd);
			break;
		}
	}
	/* A user's RLIMIT_FSIZE must give a write error (and a clean
	 * exit), not a kill that leaves a temporary file behind. */
	signal(SIGXFSZ, SIG_IGN);
	if (argc > 0 && argv[0] != NULL) {
		const char *slash = strrchr(argv[0], '/');

		if (strcmp(slash ? slash + 1 : argv[0], "mailq") == 0)
			prog = "mailq";
	}
	err = buf_new(4096);
	warn = buf_new(4096);
	rc = sendmail_parse_args(argc, argv, &o, err, warn);
	for (w = buf_data(warn); *w != '\0'; w += strcspn(w, "\n") + 1)
		fprintf(stderr, "%s: warning: %.*s\n", prog,
		    (int)strcspn(w, "\n"), w);
	if (rc != 0) {
		fprintf(stderr, "%s: %s\n", prog, buf_data(err));
		fprintf(
		    stderr, "usage: %s [options] [--] recipient...\n", prog);
		goto done;
	}
	if (o.mode == SENDMAIL_MODE_NOOP)
		goto done;
	/* Usage errors before anything else: no config, no waiting on
	 * stdin. */
	if (o.mode == SENDMAIL_MODE_DELIVER && !o.extract && o.nrcpt == 0) {
		fprintf(stderr,
		    "%s: Recipient addresses must be specified on the "
		    "command line or via the -t option\n",
		    prog);
		rc = EX_USAGE;
		goto done;
	}
	cfg = load_config(o.config);
	/* The daemon's standard error is not ours: a caller (cron, a web
	 * application) would get log lines as mail or errors. Success is
	 * silent, so "-" means syslog here; so does a log file we may not
	 * write. */
	if (strcmp(cfg->maillog_file, "-") == 0 ||
	    strcmp(cfg->maillog_file, "/dev/stderr") == 0 ||
	    log_open(prog, cfg->maillog_file) < 0)
		(void)log_open(prog, "");
	if (o.verbose > 1)
		log_set_verbose(1);
	switch (o.mode) {
	case SENDMAIL_MODE_LIST:
		rc = control(cfg, "list", 1);
		break;
	case SENDMAIL_MODE_FLUSH:
		rc = control(cfg, "flush", 0);
		break;
	case SENDMAIL_MODE_SMTP:
		get_ident(&id, &fullname);
		rc = sendmail_smtp_session(&o, cfg, &id, 0, 1);
		break;
	default:
		get_ident(&id, &fullname);
		rc = sendmail_submit(&o, cfg, &id, 0, qid, err);
		if (rc != 0) {
			fprintf(stderr, "%s: %s\n", prog, buf_data(err));
			log_warn("%s", buf_data(err));
		}
		break;
	}
done:
	free(fullname);
	sendmail_opts_free(&o);
	config_free(cfg);
	buf_free(err);
	buf_free(warn);
	log_close();
	return rc;
}
