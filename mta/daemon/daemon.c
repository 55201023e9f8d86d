/*
 * daemon - see daemon.h.
 *
 * Outline of daemon_new():
 *   1. resolve mail_owner, setgid_group and admin_group (names -> ids);
 *   2. create the queue_directory layout with owners and modes, walking
 *      the path without following links and keeping the queue folder,
 *      pid/ and private/ open; check that mail_owner can reach the queue;
 *   3. lock pid/master.pid (with mail_owner's effective ids), so two
 *      daemons never share one queue;
 *   4. bind smtpd_listen and smtps_listen (as root) and the control
 *      socket (with mail_owner's effective ids);
 *   5. daemonize if asked (the parent waits for a "ready" byte);
 *   6. as root, create the modules that read root-only files (resolver,
 *      delivery, the SMTP listener with its TLS key), without the queue;
 *   7. drop root for good (groups with setgid_group, gid, uid; checked),
 *      then open the queue, group commit and the MTA-STS cache;
 *   8. write the pid, start listening, the control server, the maildrop
 *      import, the checkpoint timer and the signal events.
 * No root operation names a path inside a folder that mail_owner can
 * write (docs/trust-model.md).
 * Every step can fail with a message and the exit code; nothing keeps
 * running after a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "daemon_int.h"
#include "mta/deliver/deliver.h"
#include "policy/verdict/tls_policy.h"
#include "metrics_http.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/safepath.h"
#include "mta/util/xalloc.h"
#include "policy/sts/sts_fetch.h"

#define DAEMON_CHECKPOINT_INTERVAL 60 /* seconds, see queue_checkpoint() */
#define DAEMON_STOP_GRACE 1 /* seconds for commits in flight */
#define DAEMON_MAX_LISTENERS 64
#define DAEMON_MAX_GROUPS 1024

/* The resolver kept until exit (see daemon_free); a global so that leak
 * checkers see it as kept, not lost. */
static struct resolver *volatile daemon_exit_resolver;

static char *
path_join(const char *dir, const char *name)
{
	buf_t *b = buf_new(8192);
	char *s;

	buf_printf(b, "%s/%s", dir, name);
	s = buf_steal(b, NULL);
	buf_free(b);
	return s;
}

/* Step 1. Missing users and groups are configuration errors. */
static int
resolve_ids(daemon_t *d, buf_t *err)
{
	const struct config *cfg = d->cfg;
	struct passwd *pw;
	struct group *gr;

	if (d->qdir[0] != '/') {
		buf_printf(err, "queue_directory: '%s' is not an absolute path",
		    d->qdir);
		return -1;
	}
	d->as_root = geteuid() == 0;
	if (!d->as_root) {
		/* Development mode: run as whoever started us. */
		d->owner_uid = geteuid();
		d->owner_gid = getegid();
		d->drop_gid = getegid();
		if ((gr = getgrnam(cfg->setgid_group)) != NULL)
			d->drop_gid = gr->gr_gid;
	} else {
		if ((pw = getpwnam(cfg->mail_owner)) == NULL) {
			buf_printf(err,
			    "mail_owner: no such user '%s' (create it: useradd "
			    "--system --no-create-home --shell "
			    "/usr/sbin/nologin %s)",
			    cfg->mail_owner, cfg->mail_owner);
			return -1;
		}
		if (pw->pw_uid == 0 || pw->pw_gid == 0) {
			buf_printf(err,
			    "mail_owner: user '%s' has uid or gid 0; it must "
			    "be an unprivileged account",
			    cfg->mail_owner);
			return -1;
		}
		d->owner_uid = pw->pw_uid;
		d->owner_gid = pw->pw_gid;
		if ((gr = getgrnam(cfg->setgid_group)) == NULL) {
			buf_printf(err,
			    "setgid_group: no such group '%s' (create it: "
			    "groupadd --system %s)",
			    cfg->setgid_group, cfg->setgid_group);
			return -1;
		}
		if (gr->gr_gid == 0) {
			buf_printf(err, "setgid_group: group '%s' has gid 0",
			    cfg->setgid_group);
			return -1;
		}
		d->drop_gid = gr->gr_gid;
	}
	if (cfg->admin_group[0]) {
		if ((gr = getgrnam(cfg->admin_group)) == NULL) {
			buf_printf(err, "admin_group: no such group '%s'",
			    cfg->admin_group);
			return -1;
		}
		d->admin_gid = gr->gr_gid;
		d->have_admin_gid = 1;
	}
	return 0;
}

/*
 * Opens the folder that holds queue_directory and puts the last path
 * component in last. As root every folder from "/" down must be root's
 * alone and no link (safepath.h): whoever could write to one of them
 * could swap the queue for a link between our checks and our chowns.
 * Without root nothing is at stake and the path is opened as given.
 */
static int
open_qdir_parent(const daemon_t *d, char *last, size_t lastlen, buf_t *err)
{
	buf_t *why;
	char *parent, *slash;
	int fd;

	if (d->as_root) {
		why = buf_new(4096);
		fd = safepath_open_parent(d->qdir, 1, last, lastlen, why);
		if (fd < 0)
			buf_printf(err, "queue_directory: %s%s", buf_data(why),
			    strstr(buf_data(why), "symbolic link") ||
			            strstr(buf_data(why), "others than root")
			        ? " (every folder above the queue must be "
			          "root's alone, not a link)"
			        : "");
		buf_free(why);
		return fd;
	}
	parent = xstrdup(d->qdir);
	while (strlen(parent) > 1 && parent[strlen(parent) - 1] == '/')
		parent[strlen(parent) - 1] = '\0';
	slash = strrchr(parent, '/');
	if (slash == NULL || slash[1] == '\0' || strlen(slash + 1) >= lastlen) {
		buf_printf(err, "queue_directory: '%s' does not name a folder",
		    d->qdir);
		free(parent);
		return -1;
	}
	memcpy(last, slash + 1, strlen(slash + 1) + 1);
	if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		buf_printf(
		    err, "queue_directory: %s: %s", parent, strerror(errno));
	free(parent);
	return fd;
}

/*
 * Opens one folder below the queue, creating it when missing, and sets
 * its owner and mode through the descriptor. The folder the name is
 * looked up in is mail_owner's: O_NOFOLLOW refuses a link put in place
 * of the folder, O_DIRECTORY anything else, so the chown cannot be aimed
 * elsewhere. Returns the descriptor or -1.
 */
static int
open_dir_at(const daemon_t *d, int at, const char *name, const char *path,
    mode_t mode, uid_t uid, gid_t gid, buf_t *err)
{
	int fd;

	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST) {
		buf_printf(err, "%s: cannot create: %s", path, strerror(errno));
		return -1;
	}
	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOTDIR)
			buf_printf(err, "%s is not a folder", path);
		else if (errno == ELOOP)
			buf_printf(
			    err, "%s is a symbolic link, not a folder", path);
		else
			buf_printf(err, "%s: cannot open folder: %s", path,
			    strerror(errno));
		return -1;
	}
	if (d->as_root && fchown(fd, uid, gid) < 0) {
		buf_printf(err, "%s: cannot chown: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (fchmod(fd, mode) < 0) {
		buf_printf(err, "%s: cannot chmod: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Step 2. Keeps the queue folder, pid/ and private/ open (daemon_int.h). */
static int
make_layout(daemon_t *d, buf_t *err)
{
	static const struct {
		const char *name;
		mode_t mode;
		int group; /* 0 owner's, 1 setgid_group, 2 admin_group */
	} dirs[] = {
	    {"db", 0700, 0},
	    {"maildrop", 01730, 1},
	    {"private", 0750, 2},
	    {"pid", 0755, 0},
	    {"corrupt", 0700, 0},
	};
	char last[256];
	size_t i;
	int pfd;

	if ((pfd = open_qdir_parent(d, last, sizeof(last), err)) < 0)
		return -1;
	/* The mail owner owns its spool (queue_open checks it may write
	 * there); 0755 so that sendmail can reach maildrop/. */
	d->qdir_fd = open_dir_at(
	    d, pfd, last, d->qdir, 0755, d->owner_uid, d->owner_gid, err);
	close(pfd);
	if (d->qdir_fd < 0)
		return -1;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *p = path_join(d->qdir, dirs[i].name);
		gid_t gid = d->owner_gid;
		int fd;

		if (dirs[i].group == 1)
			gid = d->drop_gid;
		else if (dirs[i].group == 2 && d->have_admin_gid)
			gid = d->admin_gid;
		fd = open_dir_at(d, d->qdir_fd, dirs[i].name, p, dirs[i].mode,
		    d->owner_uid, gid, err);
		free(p);
		if (fd < 0)
			return -1;
		if (strcmp(dirs[i].name, "pid") == 0)
			d->pid_dir_fd = fd;
		else if (strcmp(dirs[i].name, "private") == 0)
			d->private_dir_fd = fd;
		else
			close(fd);
	}
	return 0;
}

/*
 * The common mistake: a parent folder closed to mail_owner. AT_EACCESS:
 * checked with the effective ids, i.e. mail_owner's.
 */
static int
check_owner_reach(daemon_t *d, buf_t *err)
{
	int r, e;

	if (daemon_act_as_owner(d, d->owner_gid, err) < 0)
		return -1;
	r = faccessat(AT_FDCWD, d->qdir, R_OK | W_OK | X_OK, AT_EACCESS);
	e = errno;
	if (daemon_act_as_root(d, err) < 0)
		return -1;
	if (r < 0) {
		buf_printf(err,
		    "queue_directory: %s: %s for user %s (can every parent "
		    "folder be searched by it?)",
		    d->qdir, strerror(e),
		    d->as_root ? d->cfg->mail_owner : "(current user)");
		return -1;
	}
	return 0;
}

/*
 * Step 3. flock, not fcntl: the lock must survive the -d fork. pid/ is
 * mail_owner's, so the file is opened with mail_owner's effective ids
 * relative to the folder opened in step 2: a link or a hard link that
 * mail_owner put there leads only to what mail_owner may open anyway, and
 * the result must be a plain file of mail_owner's with one link. It is
 * never chowned.
 */
static int
lock_pid_file(daemon_t *d, buf_t *err)
{
	uid_t uid = d->as_root ? d->owner_uid : geteuid();
	struct stat st;
	char old[32];
	ssize_t n;
	int e;

	d->pid_path = path_join(d->qdir, "pid/master.pid");
	if (daemon_act_as_owner(d, d->owner_gid, err) < 0)
		return -1;
	d->pid_fd = openat(d->pid_dir_fd, "master.pid",
	    O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
	    0644);
	e = errno;
	if (daemon_act_as_root(d, err) < 0)
		return -1;
	if (d->pid_fd < 0) {
		if (e == ELOOP)
			buf_printf(err,
			    "%s is a symbolic link: remove it (someone with "
			    "%s's rights put it there)",
			    d->pid_path,
			    d->as_root ? d->cfg->mail_owner : "your");
		else
			buf_printf(err, "%s: cannot open: %s", d->pid_path,
			    strerror(e));
		return -1;
	}
	if (fstat(d->pid_fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != uid || st.st_nlink != 1) {
		buf_printf(err,
		    "%s: not a plain file of uid %ld with one link: remove "
		    "it",
		    d->pid_path, (long)uid);
		close(d->pid_fd);
		d->pid_fd = -1;
		return -1;
	}
	if (flock(d->pid_fd, LOCK_EX | LOCK_NB) < 0) {
		n = pread(d->pid_fd, old, sizeof(old) - 1, 0);
		old[n > 0 ? n : 0] = '\0';
		old[strcspn(old, "\n")] = '\0';
		buf_printf(err,
		    "another strictmtad is running on %s (pid %s; lock %s)",
		    d->qdir, old[0] ? old : "unknown", d->pid_path);
		close(d->pid_fd);
		d->pid_fd = -1;
		return -1;
	}
	/* Through the descriptor: the file is mail_owner's own. */
	(void)fchmod(d->pid_fd, 0644);
	return 0;
}

/* Removes the pid file if the name still leads to the file we locked. */
static void
remove_pid_file(daemon_t *d)
{
	struct stat a, b;

	if (d->pid_fd < 0 || d->pid_dir_fd < 0)
		return;
	/* Relative to pid/ (this may run as root after a failed start);
	 * an unlink there removes a name in mail_owner's folder only. */
	if (fstat(d->pid_fd, &a) == 0 &&
	    fstatat(d->pid_dir_fd, "master.pid", &b, AT_SYMLINK_NOFOLLOW) ==
	        0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlinkat(d->pid_dir_fd, "master.pid", 0);
}

static int
write_pid(daemon_t *d, buf_t *err)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "%ld\n", (long)getpid());

	if (ftruncate(d->pid_fd, 0) < 0 || pwrite(d->pid_fd, s, n, 0) != n) {
		buf_printf(
		    err, "%s: cannot write: %s", d->pid_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int
bind_list(daemon_t *d, const char *param, const char *list, int tls, buf_t *err)
{
	const char *cursor = list;
	char item[512];
	int r;

	while ((r = config_list_next(&cursor, item, sizeof(item))) > 0) {
		struct daemon_listener *l;
		buf_t *why;
		int fd;

		if (d->nlisteners >= DAEMON_MAX_LISTENERS) {
			buf_printf(err, "%s: more than %d addresses", param,
			    DAEMON_MAX_LISTENERS);
			return -1;
		}
		why = buf_new(1024);
		fd = smtpd_bind(item, why);
		if (fd < 0) {
			/* smtpd_bind's message starts with the address. */
			if (buf_len(why))
				buf_printf(err, "%s: %s", param, buf_data(why));
			else
				buf_printf(
				    err, "%s: %s: cannot listen", param, item);
			buf_free(why);
			return -1;
		}
		buf_free(why);
		d->listeners = xreallocarray(
		    d->listeners, d->nlisteners + 1, sizeof(*d->listeners));
		l = &d->listeners[d->nlisteners++];
		l->fd = fd;
		l->implicit_tls = tls;
		l->addr = xstrdup(item);
	}
	if (r < 0) {
		buf_printf(err, "%s: an address is too long", param);
		return -1;
	}
	return 0;
}

/* Step 4 (SMTP part). */
static int
bind_listeners(daemon_t *d, buf_t *err)
{
	if (d->cfg->smtps_listen[0] && !d->cfg->smtpd_tls_cert_file[0]) {
		buf_puts(err, "smtps_listen is set but smtpd_tls_cert_file is "
		              "not: implicit TLS needs a certificate");
		return -1;
	}
	if (bind_list(d, "smtpd_listen", d->cfg->smtpd_listen, 0, err) < 0 ||
	    bind_list(d, "smtps_listen", d->cfg->smtps_listen, 1, err) < 0)
		return -1;
	return 0;
}

/*
 * Step 5. The parent stays until the child has opened the queue, so that
 * `strictmtad -d` exits non-zero when start-up fails; the child's stderr
 * is still the terminal until then.
 */
static int
daemonize(daemon_t *d, buf_t *err)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) < 0) {
		buf_printf(err, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		buf_printf(err, "fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0) {
		ssize_t n;

		close(p[1]);
		do
			n = read(p[0], &c, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && c == '1' ? 0 : 1);
	}
	close(p[0]);
	d->ready_fd = p[1];
	if (setsid() < 0) {
		buf_printf(err, "setsid: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void
detach_stdio(const daemon_t *d)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	if (strcmp(d->cfg->maillog_file, "-") != 0)
		dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/*
 * Privileges. Root is needed to bind the ports and to read files that are
 * often root's alone (the TLS key, the SASL password file, CA bundles),
 * and for nothing in the queue: whatever is opened, created or removed in
 * a folder that mail_owner can write is done either relative to a folder
 * descriptor checked at start-up, or with mail_owner's effective ids
 * (daemon_act_as_owner), so that the kernel checks mail_owner's rights on
 * wherever a path leads; the queue itself is opened only after root is
 * given up for good (drop_privileges). See docs/trust-model.md.
 */
static int
set_groups(daemon_t *d, buf_t *err)
{
	gid_t groups[DAEMON_MAX_GROUPS];
	int n = DAEMON_MAX_GROUPS - 1, i, have_drop = 0;

	/* Supplementary groups from /etc/group, plus setgid_group so that
	 * the maildrop files sendmail wrote are readable. */
	if (getgrouplist(d->cfg->mail_owner, d->owner_gid, groups, &n) < 0) {
		buf_printf(err, "mail_owner: %s is in too many groups",
		    d->cfg->mail_owner);
		return -1;
	}
	for (i = 0; i < n; i++)
		if (groups[i] == d->drop_gid)
			have_drop = 1;
	if (!have_drop)
		groups[n++] = d->drop_gid;
	if (setgroups(n, groups) < 0) {
		buf_printf(err, "setgroups for %s: %s", d->cfg->mail_owner,
		    strerror(errno));
		return -1;
	}
	d->groups_set = 1;
	return 0;
}

int
daemon_act_as_owner(daemon_t *d, gid_t egid, buf_t *err)
{
	if (!d->as_root)
		return 0;
	/* Root's own supplementary groups must not lend their rights. */
	if (!d->groups_set && set_groups(d, err) < 0)
		return -1;
	if (setresgid(-1, egid, -1) < 0 ||
	    setresuid(-1, d->owner_uid, -1) < 0) {
		buf_printf(err, "cannot act as %s: %s", d->cfg->mail_owner,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
daemon_act_as_root(daemon_t *d, buf_t *err)
{
	if (!d->as_root)
		return 0;
	if (setresuid(-1, 0, -1) < 0 || setresgid(-1, 0, -1) < 0) {
		buf_printf(
		    err, "cannot become root again: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int
drop_privileges(daemon_t *d, buf_t *err)
{
	if (!d->as_root)
		return 0;
	if ((!d->groups_set && set_groups(d, err) < 0) ||
	    setresgid(d->owner_gid, d->owner_gid, d->owner_gid) < 0 ||
	    setresuid(d->owner_uid, d->owner_uid, d->owner_uid) < 0) {
		buf_printf(err, "cannot become %s: %s", d->cfg->mail_owner,
		    strerror(errno));
		return -1;
	}
	/* A drop that can be undone is no drop: abort loudly. */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 ||
	    geteuid() == 0 || getuid() == 0 || getegid() != d->owner_gid ||
	    getgid() != d->owner_gid) {
		log_err("privilege drop did not stick; aborting");
		abort();
	}
	return 0;
}

static void
on_queued(void *arg, const char *qid)
{
	daemon_t *d = arg;

	(void)qid;
	daemon_queue_changed(d);
}

static void
on_import_timer(evutil_socket_t fd, short what, void *arg)
{
	daemon_t *d = arg;

	(void)fd;
	(void)what;
	import_scan(d->import);
}

static void
on_checkpoint_timer(evutil_socket_t fd, short what, void *arg)
{
	daemon_t *d = arg;

	(void)fd;
	(void)what;
	if (queue_checkpoint(d->queue) != QUEUE_OK)
		log_warn("queue checkpoint failed");
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	daemon_t *d = arg;
	struct timeval grace = {DAEMON_STOP_GRACE, 0};

	(void)what;
	if (sig == SIGHUP) {
		log_info("SIGHUP ignored: restart strictmtad to read the "
		         "configuration again");
		return;
	}
	if (d->exit_code == -1) {
		log_info("terminating on signal %d", (int)sig);
		d->exit_code = 0;
	}
	/* New work stops now; commits in flight get a moment to answer
	 * their clients, so that no 250 is lost to a restart. */
	if (d->smtpd)
		smtpd_stop_accepting(d->smtpd);
	if (d->ev_import)
		event_del(d->ev_import);
	event_base_loopexit(d->base, &grace);
}

static struct event *
add_timer(daemon_t *d, long long seconds, event_callback_fn fn)
{
	struct event *ev = event_new(d->base, -1, EV_PERSIST, fn, d);
	struct timeval tv = {(time_t)seconds, 0};

	if (ev == NULL)
		abort();
	event_add(ev, &tv);
	return ev;
}

static struct event *
add_signal(daemon_t *d, int sig)
{
	struct event *ev = evsignal_new(d->base, sig, on_signal, d);

	if (ev == NULL)
		abort();
	event_add(ev, NULL);
	return ev;
}

/* Step 6: libevent, before the modules that register events. */
static int
make_base(daemon_t *d, int *exit_code, buf_t *err)
{
	evthread_use_pthreads();
	if ((d->base = event_base_new()) == NULL) {
		buf_puts(err, "cannot create the event loop");
		*exit_code = DAEMON_EX_OSERR;
		return -1;
	}
	return 0;
}

/*
 * Step 6, as root: the modules that read root-only files (TLS keys, the
 * SASL password file, CA bundles, transport_maps, trust anchors). None of
 * them touches the queue folder: delivery and the listener get the queue
 * later (step 7).
 */
static int
load_services(daemon_t *d, int *exit_code, buf_t *err)
{
	struct smtpd_params sp;

	/* Delivery: its resolver, then the scheduler (mta/deliver). The
	 * MTA-STS CA bundle is read now, as root: the fetches made after
	 * the drop read it from memory (it may be root's alone). */
	if ((d->resolver = resolver_new(d->base, d->cfg, err)) == NULL ||
	    (d->deliver = deliver_new(
	         d->base, d->cfg, NULL, d->resolver, err)) == NULL ||
	    (d->cfg->mta_sts_enable && sts_fetch_load_ca(d->cfg, err) < 0)) {
		*exit_code = DAEMON_EX_CONFIG;
		return -1;
	}
	memset(&sp, 0, sizeof(sp));
	sp.base = d->base;
	sp.cfg = d->cfg;
	sp.commit = NULL;
	sp.on_queued = on_queued;
	sp.arg = d;
	if ((d->smtpd = smtpd_new(&sp, err)) == NULL) {
		*exit_code = DAEMON_EX_CONFIG;
		return -1;
	}
	return 0;
}

/*
 * Step 7, as mail_owner for good: the queue (its Berkeley DB files, the
 * log files the environment adds later) and the MTA-STS policy cache are
 * opened only now, so no root process ever opens a file in db/ or
 * policy/.
 */
static int
open_queue(daemon_t *d, int *exit_code, buf_t *err)
{
	*exit_code = DAEMON_EX_OSERR;
	/* queue_open() takes queue_directory and uses its db/. */
	d->queue = queue_open(d->qdir, err);
	if (d->queue == NULL) {
		if (buf_len(err) == 0)
			buf_printf(err, "%s: cannot open the queue", d->qdir);
		return -1;
	}
	d->commit = qcommit_new(d->queue, d->base);
	deliver_set_queue(d->deliver, d->queue);
	/* Delivery results and DSNs are written by the commit thread. */
	deliver_set_commit(d->deliver, d->commit);
	smtpd_set_commit(d->smtpd, d->commit);
	/* DANE and MTA-STS verdicts, and the MTA-STS cache in policy/;
	 * reads no root-only file (the CA bundle was read in
	 * load_services). */
	if ((d->tls_policy = tls_policy_new(
	         d->base, d->cfg, d->resolver, err)) == NULL) {
		*exit_code = DAEMON_EX_CONFIG;
		return -1;
	}
	deliver_use_tls_policy(d->deliver, d->tls_policy);
	return 0;
}

/* Step 8, as mail_owner for good: start listening and the timers. */
static int
start_services(daemon_t *d, int *exit_code, buf_t *err)
{
	size_t i;

	for (i = 0; i < d->nlisteners; i++) {
		struct daemon_listener *l = &d->listeners[i];
		int fd = l->fd;

		l->fd = -1; /* the smtpd's now, even on error */
		if (smtpd_add_listener(d->smtpd, fd, l->implicit_tls, err) <
		    0) {
			*exit_code = DAEMON_EX_SOFTWARE;
			return -1;
		}
	}
	if (ctlsrv_start(d->ctl, err) < 0) {
		*exit_code = DAEMON_EX_OSERR;
		return -1;
	}
	/* explain-metrics: after the drop (a port of 1024 or more). */
	if (d->cfg->metrics_listen[0] &&
	    (d->metrics = metrics_http_new(d, err)) == NULL) {
		*exit_code = DAEMON_EX_CONFIG;
		return -1;
	}
	d->import = import_new(d);
	d->ev_import = add_timer(d, d->cfg->import_interval, on_import_timer);
	d->ev_checkpoint =
	    add_timer(d, DAEMON_CHECKPOINT_INTERVAL, on_checkpoint_timer);
	d->ev_sigterm = add_signal(d, SIGTERM);
	d->ev_sigint = add_signal(d, SIGINT);
	d->ev_sighup = add_signal(d, SIGHUP);
	return 0;
}

daemon_t *
daemon_new(const struct config *cfg, const struct daemon_opts *opts,
    int *exit_code, buf_t *err)
{
	daemon_t *d = xcalloc(1, sizeof(*d));
	sigset_t stopsigs, oldmask;
	size_t i;

	d->cfg = cfg;
	d->opts = *opts;
	d->pid_fd = -1;
	d->qdir_fd = d->pid_dir_fd = d->private_dir_fd = -1;
	d->ready_fd = -1;
	d->exit_code = -1;
	d->qdir = xstrdup(cfg->queue_directory);
	/* A write to a client that hung up is an error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * A stop request during start-up waits until the event loop can
	 * handle it (and the threads started meanwhile inherit the mask, so
	 * it is the main thread that gets it): the queue is never left
	 * half-opened by a default-action SIGTERM.
	 */
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigaddset(&stopsigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &stopsigs, &oldmask);
	*exit_code = DAEMON_EX_CONFIG;
	if (resolve_ids(d, err) < 0)
		goto fail;
	*exit_code = DAEMON_EX_OSERR;
	if (make_layout(d, err) < 0 || check_owner_reach(d, err) < 0 ||
	    lock_pid_file(d, err) < 0 || bind_listeners(d, err) < 0 ||
	    (d->ctl = ctlsrv_open(d, err)) == NULL)
		goto fail;
	if (d->opts.daemonize && daemonize(d, err) < 0)
		goto fail;
	if (make_base(d, exit_code, err) < 0 ||
	    load_services(d, exit_code, err) < 0)
		goto fail;
	*exit_code = DAEMON_EX_OSERR;
	if (drop_privileges(d, err) < 0 || open_queue(d, exit_code, err) < 0)
		goto fail;
	*exit_code = DAEMON_EX_OSERR;
	if (write_pid(d, err) < 0 || start_services(d, exit_code, err) < 0)
		goto fail;
	/* The signal events exist now: a pending SIGTERM stops the loop. */
	sigprocmask(SIG_SETMASK, &oldmask, NULL);

	d->started = clock_now();
	d->running = 1;
	log_info("daemon started -- version %s (commit %s), configuration %s, "
	         "queue %s, user %s",
	    STRICTMTA_VERSION, STRICTMTA_COMMIT,
	    cfg->source ? cfg->source : "(defaults)", d->qdir,
	    d->as_root ? cfg->mail_owner : "(current user)");
	for (i = 0; i < d->nlisteners; i++)
		log_info("listening on %s%s", d->listeners[i].addr,
		    d->listeners[i].implicit_tls ? " (implicit TLS)" : "");
	if (d->ready_fd >= 0) {
		char c = '1';

		if (write(d->ready_fd, &c, 1) != 1)
			log_warn("cannot tell the parent process we are "
			         "ready: %s",
			    strerror(errno));
		close(d->ready_fd);
		d->ready_fd = -1;
		detach_stdio(d);
	}
	/* Mail sendmail left while we were down goes first. */
	import_scan(d->import);
	return d;

fail:
	daemon_free(d);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return NULL;
}

int
daemon_run(daemon_t *d)
{
	event_base_dispatch(d->base);
	return d->exit_code < 0 ? 0 : d->exit_code;
}

void
daemon_queue_changed(daemon_t *d)
{
	/* The delivery module's hook. */
	deliver_kick(d->deliver);
}

void
daemon_free(daemon_t *d)
{
	struct event **evs[] = {&d->ev_import, &d->ev_checkpoint,
	    &d->ev_sigterm, &d->ev_sigint, &d->ev_sighup};
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (*evs[i]) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	if (d->smtpd)
		smtpd_stop_accepting(d->smtpd);
	ctlsrv_free(d->ctl);
	metrics_http_free(d->metrics); /* explain-metrics */
	import_free(d->import);
	smtpd_free(d->smtpd);
	/* In-flight deliveries are forgotten: retried after restart. */
	deliver_free(d->deliver);
	tls_policy_free(d->tls_policy);
	/* Finishes the batch being written: what was committed stays. */
	qcommit_free(d->commit);
	queue_close(d->queue);
	/*
	 * After the queue is closed. On a stop after running, the resolver
	 * is left to the process exit: getdns_context_destroy() can crash
	 * with recursive lookups in flight when unbound runs on the libevent
	 * extension (getdns issue #507), and a crash at exit would turn a
	 * clean stop into a failure. A failed start-up has no lookups.
	 */
	if (!d->running)
		resolver_free(d->resolver);
	else
		daemon_exit_resolver = d->resolver; /* still reachable */
	for (i = 0; i < d->nlisteners; i++) {
		if (d->listeners[i].fd >= 0)
			close(d->listeners[i].fd);
		free(d->listeners[i].addr);
	}
	free(d->listeners);
	if (d->base)
		event_base_free(d->base);
	if (d->pid_fd >= 0) {
		/* Only the daemon that holds the lock removes the file. */
		remove_pid_file(d);
		close(d->pid_fd);
	}
	if (d->pid_dir_fd >= 0)
		close(d->pid_dir_fd);
	if (d->private_dir_fd >= 0)
		close(d->private_dir_fd);
	if (d->qdir_fd >= 0)
		close(d->qdir_fd);
	if (d->ready_fd >= 0)
		close(d->ready_fd);
	if (d->running)
		log_info("daemon stopped");
	free(d->pid_path);
	free(d->qdir);
	free(d);
}
