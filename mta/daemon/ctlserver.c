/*
 * ctlserver - the daemon's end of the control socket (mta/cli/control.h).
 *
 * The socket is made before the privilege drop but with mail_owner's
 * effective ids (see ctlsrv_open), owned by mail_owner and admin_group (or
 * mail_owner's group), mode 0660, in private/ (0750).
 * The folder and mode keep strangers out; SO_PEERCRED is checked as well,
 * so that a mistaken chmod does not open the queue to everyone.
 *
 * One request per connection: read one line (at most CONTROL_REQUEST_MAX
 * bytes, CTL_TIMEOUT seconds), answer "OK\n" + body or "ERR text\n", close.
 * The queue calls are synchronous on the event loop; they are short reads
 * and writes of one database, and the admin waits for the answer anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ctl_flush.h"
#include "ctlproto.h"
#include "ctl_exception.h" /* ops-exceptions */
#include "daemon_int.h"
#include "policy/verdict/tls_policy.h"
#include "mta/cli/control.h"
#include "mta/deliver/deliver.h"
#include "mta/util/clock.h"
#include "mta/util/json.h"
#include "mta/util/log.h"
#include "mta/util/workq.h"
#include "mta/util/xalloc.h"

#define CTL_TIMEOUT 30 /* seconds to send the request */
#define CTL_MAX_CONNS 32 /* more at once are told to retry */
#define CTL_ACCEPT_BURST 16 /* accepts per wakeup */
#define CTL_REPLY_CAP (256u << 20) /* hard cap of one reply */
#define CTL_LIST_SOFT (128u << 20) /* a listing stops here */
#define CTL_PEER_GROUPS 256

/* The socket's name inside private/. */
static const char *
ctlsrv_leaf(void)
{
	return strrchr(CONTROL_SOCKET_NAME, '/') + 1;
}

struct ctl_conn {
	struct ctlsrv *srv;
	struct bufferevent *bev;
	uid_t uid;
	int denied; /* answer "ERR permission denied" to the request */
	uint64_t sts_id; /* a policy refresh in progress, or 0 */
	uint64_t ckpt_ticket; /* a checkpoint on the writer thread, or 0 */
	struct walk *walk; /* a queue walk on the reader thread, or NULL */
	int json;
	struct ctl_conn *next;
};

struct ctlsrv {
	daemon_t *d;
	int fd;
	int bound; /* the socket file is ours to remove */
	char *path; /* for messages and bind(); see ctlsrv_open */
	struct event *ev;
	struct ctl_conn *conns;
	unsigned nconns;
	/* Walks over the whole queue (list, stats) take time in proportion
	 * to it: they run here, off the loop. */
	workq_t *reader;
};

#define CTL_WALKS_MAX 8

/* One request done off the loop: the thread fills out (or qs); the
 * loop replies. */
struct walk {
	struct ctl_conn *c; /* NULL once the connection has gone */
	daemon_t *d;
	workq_job_t *job;
	struct ctl_req req; /* a copy */
	uid_t uid;
	int rc;
	int kick; /* the change makes mail due: tell delivery */
	buf_t *out;
	struct queue_stats qs;
};

/*
 * private/ is mail_owner's: whatever root did there by path would follow a
 * link that mail_owner put in its place (a chown after the bind handed any
 * root file to mail_owner). So the old socket is removed and the new one
 * bound with mail_owner's effective uid and the socket's group as the
 * effective gid: the kernel gives the new file those ids, the umask gives
 * it 0660, and a path that was redirected leads only where mail_owner
 * could write anyway. Nothing is changed by path afterwards. (fchown on a
 * socket before bind() does not set the file's owner on Linux.)
 */
struct ctlsrv *
ctlsrv_open(daemon_t *d, buf_t *err)
{
	struct ctlsrv *srv = xcalloc(1, sizeof(*srv));
	struct sockaddr_un sun;
	buf_t *p = buf_new(4096);
	gid_t gid = d->have_admin_gid ? d->admin_gid : d->owner_gid;
	mode_t old_mask;
	int r, e;

	srv->d = d;
	srv->fd = -1;
	buf_printf(p, "%s/%s", d->qdir, CONTROL_SOCKET_NAME);
	srv->path = buf_steal(p, NULL);
	buf_free(p);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(srv->path) >= sizeof(sun.sun_path)) {
		buf_printf(
		    err, "%s: path too long for a Unix socket", srv->path);
		goto fail;
	}
	memcpy(sun.sun_path, srv->path, strlen(srv->path) + 1);
	srv->fd =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		buf_printf(err, "%s: socket: %s", srv->path, strerror(errno));
		goto fail;
	}
	if (daemon_act_as_owner(d, gid, err) < 0)
		goto fail;
	old_mask = umask(0117);
	/* We hold the pid file lock, so a socket here is a stale one. */
	r = unlinkat(d->private_dir_fd, ctlsrv_leaf(), 0);
	if (r < 0 && errno != ENOENT) {
		e = errno;
		umask(old_mask);
		daemon_act_as_root(d, err);
		buf_printf(err, "%s: cannot remove the old socket: %s",
		    srv->path, strerror(e));
		goto fail;
	}
	r = bind(srv->fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old_mask);
	srv->bound = r == 0;
	if (daemon_act_as_root(d, err) < 0)
		goto fail;
	if (r < 0 || listen(srv->fd, 16) < 0) {
		buf_printf(err, "%s: cannot listen: %s", srv->path,
		    strerror(r < 0 ? e : errno));
		goto fail;
	}
	return srv;
fail:
	ctlsrv_free(srv);
	return NULL;
}

static int
peer_check(struct ctlsrv *srv, int fd, uid_t *uidp)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t groups[CTL_PEER_GROUPS];
	size_t ngroups = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return 0;
	*uidp = cred.uid;
#ifdef SO_PEERGROUPS
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0)
		ngroups = len / sizeof(gid_t);
#endif
	if (ngroups == 0 && srv->d->have_admin_gid) {
		/* Older kernels: the groups /etc/group gives the user. */
		struct passwd *pw = getpwuid(cred.uid);
		int n = CTL_PEER_GROUPS;

		if (pw &&
		    getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) >= 0)
			ngroups = (size_t)n;
	}
	return ctl_peer_allowed(cred.uid, cred.gid, groups, ngroups,
	    srv->d->owner_uid,
	    srv->d->have_admin_gid ? &srv->d->admin_gid : NULL);
}

static void
conn_free(struct ctl_conn *c)
{
	struct ctl_conn **pp;

	for (pp = &c->srv->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			c->srv->nconns--;
			break;
		}
	if (c->sts_id)
		sts_cancel(tls_policy_sts(c->srv->d->tls_policy), c->sts_id);
	if (c->ckpt_ticket)
		qcommit_cancel(c->srv->d->commit, c->ckpt_ticket);
	if (c->walk) {
		c->walk->c = NULL;
		workq_cancel(c->walk->job);
	}
	bufferevent_free(c->bev);
	free(c);
}

/* ---- the requests ---- */

struct list_ctx {
	buf_t *out;
	int json;
	uint64_t n, bytes;
	int truncated;
};

static int
list_visit(void *arg, const struct queue_env *env)
{
	struct list_ctx *lc = arg;

	if (buf_len(lc->out) > CTL_LIST_SOFT) {
		lc->truncated = 1;
		return 1;
	}
	if (lc->json) {
		if (lc->n)
			buf_putc(lc->out, ',');
		buf_puts(lc->out, "\n");
		ctl_json_entry(lc->out, env);
	} else {
		ctl_list_entry(lc->out, env);
	}
	lc->n++;
	lc->bytes += env->size;
	return 0;
}

static int
do_list(daemon_t *d, const struct ctl_req *req, buf_t *out)
{
	struct list_ctx lc = {out, req->json, 0, 0, 0};

	if (req->json)
		buf_puts(out, "{\"messages\":[");
	else
		ctl_list_header(out);
	if (queue_walk(d->queue, list_visit, &lc) < 0) {
		buf_reset(out);
		buf_puts(out, "queue read error");
		return -1;
	}
	if (req->json) {
		buf_printf(out,
		    "\n],\"count\":%llu,\"bytes\":%llu,"
		    "\"truncated\":%s}\n",
		    (unsigned long long)lc.n, (unsigned long long)lc.bytes,
		    lc.truncated ? "true" : "false");
		return 0;
	}
	if (lc.n == 0) {
		buf_reset(out);
		ctl_list_footer(out, 0, 0);
		return 0;
	}
	if (lc.truncated)
		buf_puts(out, "(listing truncated; see `strictmta queue "
		              "stats`)\n");
	ctl_list_footer(out, (lc.bytes + 1023) / 1024, lc.n);
	return 0;
}

static int
do_show(daemon_t *d, const struct ctl_req *req, buf_t *out)
{
	struct queue_env *env = NULL;
	buf_t *content;

	if (queue_get(d->queue, req->qids[0], &env) != QUEUE_OK) {
		buf_printf(out, "%s: no such message", req->qids[0]);
		return -1;
	}
	if (req->content) {
		/* The stored message as it will be sent (CRLF lines, with
		 * our Received: header), byte for byte. */
		if (queue_get_content(d->queue, req->qids[0], out) !=
		    QUEUE_OK) {
			buf_reset(out);
			buf_printf(
			    out, "%s: cannot read the content", req->qids[0]);
			queue_env_free(env);
			return -1;
		}
	} else if (req->json) {
		ctl_json_entry(out, env);
		buf_putc(out, '\n');
	} else {
		content = buf_new(0);
		if (queue_get_content(d->queue, req->qids[0], content) ==
		    QUEUE_OK)
			ctl_show_entry(
			    out, env, buf_data(content), buf_len(content));
		else
			ctl_show_entry(out, env, NULL, 0);
		buf_free(content);
	}
	queue_env_free(env);
	return 0;
}

/* Collects the IDs of every message (for --all and a flush of all). */
struct ids {
	char (*v)[QID_SIZE];
	size_t n, alloc;
};

static int
ids_visit(void *arg, const struct queue_env *env)
{
	struct ids *ids = arg;

	if (ids->n == ids->alloc) {
		ids->alloc = ids->alloc ? ids->alloc * 2 : 64;
		ids->v = xreallocarray(ids->v, ids->alloc, sizeof(*ids->v));
	}
	memcpy(ids->v[ids->n++], env->qid, QID_SIZE);
	return 0;
}

enum ctl_change { CHANGE_HOLD, CHANGE_RELEASE, CHANGE_FLUSH };

/* Returns how many recipients changed. */
static unsigned
change_env(struct queue_env *env, enum ctl_change what, int64_t now)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < env->nrcpt; i++) {
		struct queue_rcpt *r = &env->rcpts[i];

		switch (what) {
		case CHANGE_HOLD:
			if (r->state == RCPT_PENDING ||
			    r->state == RCPT_DEFERRED) {
				r->state = RCPT_HELD;
				n++;
			}
			break;
		case CHANGE_RELEASE:
			if (r->state == RCPT_HELD) {
				r->state =
				    r->attempts ? RCPT_DEFERRED : RCPT_PENDING;
				r->next_attempt = 0;
				n++;
			}
			break;
		case CHANGE_FLUSH:
			if (r->state == RCPT_DEFERRED ||
			    (r->state == RCPT_PENDING &&
			        r->next_attempt > now)) {
				r->next_attempt = now;
				n++;
			}
			break;
		}
	}
	return n;
}

static const char *const change_word[] = {
    "placed on hold", "released from hold", "flushed"};

/* On the reader thread; *kick: tell delivery to look. */
static int
do_change(
    daemon_t *d, const struct ctl_req *req, uid_t uid, buf_t *out, int *kick)
{
	enum ctl_change what = req->cmd == CTL_HOLD      ? CHANGE_HOLD
	                       : req->cmd == CTL_RELEASE ? CHANGE_RELEASE
	                                                 : CHANGE_FLUSH;
	struct ids all = {NULL, 0, 0};
	buf_t *missing = buf_new(8192);
	size_t i, n = req->nqid;
	unsigned changed = 0, nmissing = 0;
	int64_t now = clock_now();
	int r = 0;

	if (what == CHANGE_FLUSH && n == 0) {
		buf_free(missing);
		return ctl_flush_all(d, uid, out) < 0 ? -1 : 0; /* kicks */
	}
	for (i = 0; i < n; i++) {
		const char *qid = all.v ? all.v[i] : req->qids[i];
		struct queue_env *env = NULL;
		unsigned k;

		if (queue_get(d->queue, qid, &env) != QUEUE_OK) {
			buf_printf(
			    missing, "%s%s", nmissing++ ? ", " : "", qid);
			continue;
		}
		if ((k = change_env(env, what, now)) > 0) {
			if (queue_update(d->queue, env) != QUEUE_OK) {
				buf_printf(missing, "%s%s (update failed)",
				    nmissing++ ? ", " : "", qid);
				queue_env_free(env);
				continue;
			}
			changed++;
			log_info("%s: %s by uid %ld (%u recipient%s)", qid,
			    change_word[what], (long)uid, k, k == 1 ? "" : "s");
			buf_printf(out, "%s: %s\n", qid, change_word[what]);
		}
		queue_env_free(env);
	}
	free(all.v);
	if (changed && queue_sync(d->queue, NULL) != QUEUE_OK)
		log_warn("queue sync after %s failed", change_word[what]);
	if (changed && what != CHANGE_HOLD)
		*kick = 1;
	buf_printf(out, "%u message%s %s\n", changed, changed == 1 ? "" : "s",
	    change_word[what]);
	if (nmissing) {
		buf_reset(out);
		buf_printf(out, "no such message: %s", buf_data(missing));
		if (changed)
			buf_printf(out, " (%u other%s %s)", changed,
			    changed == 1 ? "" : "s", change_word[what]);
		r = -1;
	}
	buf_free(missing);
	return r;
}

/* On the reader thread. */
static int
do_delete(daemon_t *d, const struct ctl_req *req, uid_t uid, buf_t *out)
{
	struct ids all = {NULL, 0, 0};
	buf_t *missing = buf_new(8192);
	size_t i, n = req->nqid;
	unsigned deleted = 0, nmissing = 0;
	int r = 0;

	if (req->all) {
		queue_walk(d->queue, ids_visit, &all);
		n = all.n;
	}
	for (i = 0; i < n; i++) {
		const char *qid = all.v ? all.v[i] : req->qids[i];
		int e = queue_delete(d->queue, qid);

		if (e == QUEUE_OK) {
			deleted++;
			log_info("%s: removed by uid %ld", qid, (long)uid);
		} else {
			buf_printf(missing, "%s%s%s", nmissing++ ? ", " : "",
			    qid, e == QUEUE_ENOTFOUND ? "" : " (error)");
		}
	}
	free(all.v);
	if (deleted && queue_sync(d->queue, NULL) != QUEUE_OK)
		log_warn("queue sync after delete failed");
	buf_printf(
	    out, "Deleted: %u message%s\n", deleted, deleted == 1 ? "" : "s");
	if (nmissing) {
		buf_reset(out);
		buf_printf(out, "no such message: %s", buf_data(missing));
		if (deleted)
			buf_printf(out, " (%u other%s deleted)", deleted,
			    deleted == 1 ? "" : "s");
		r = -1;
	}
	buf_free(missing);
	return r;
}

static int
format_stats(daemon_t *d, int json, const struct queue_stats *qsp, buf_t *out)
{
	struct queue_stats qs = *qsp;
	struct smtpd_stats ss;
	struct qcommit_stats cs;
	struct deliver_stats ds;
	uint64_t imported, corrupt;
	long long uptime = (long long)(clock_now() - d->started);

	memset(&ss, 0, sizeof(ss));
	memset(&cs, 0, sizeof(cs));
	memset(&ds, 0, sizeof(ds));
	smtpd_get_stats(d->smtpd, &ss);
	qcommit_get_stats(d->commit, &cs);
	if (d->deliver)
		deliver_get_stats(d->deliver, &ds);
	import_get_stats(d->import, &imported, &corrupt);
#define U(x) ((unsigned long long)(x))
	if (json) {
		buf_printf(out,
		    "{\"uptime\":%lld,\"queue\":{\"messages\":%llu,"
		    "\"bytes\":%llu,\"recipients_pending\":%llu,"
		    "\"recipients_deferred\":%llu,\"recipients_held\":%llu,"
		    "\"oldest_arrival\":%lld},"
		    "\"smtpd\":{\"connections\":%llu,\"messages\":%llu,"
		    "\"rejected\":%llu,\"active\":%u},"
		    "\"commit\":{\"messages\":%llu,\"batches\":%llu,"
		    "\"syncs\":%llu},"
		    "\"maildrop\":{\"imported\":%llu,\"corrupt\":%llu},"
		    "\"delivery\":{\"sent\":%llu,\"deferred\":%llu,"
		    "\"bounced\":%llu,\"expired\":%llu,\"dsns\":%llu,"
		    "\"connections\":%llu,\"reused\":%llu,"
		    "\"active_connections\":%u,\"messages_in_flight\":%u}}\n",
		    uptime, U(qs.messages), U(qs.bytes), U(qs.rcpt_pending),
		    U(qs.rcpt_deferred), U(qs.rcpt_held),
		    (long long)qs.oldest_arrival, U(ss.connections),
		    U(ss.messages), U(ss.rejected), ss.active, U(cs.messages),
		    U(cs.batches), U(cs.syncs), U(imported), U(corrupt),
		    U(ds.sent), U(ds.deferred), U(ds.bounced), U(ds.expired),
		    U(ds.dsns), U(ds.connections), U(ds.reused),
		    ds.active_connections, ds.messages_in_flight);
		return 0;
	}
	buf_printf(out,
	    "uptime: %lld s\n"
	    "queue messages: %llu\n"
	    "queue bytes: %llu\n"
	    "recipients pending: %llu\n"
	    "recipients deferred: %llu\n"
	    "recipients held: %llu\n",
	    uptime, U(qs.messages), U(qs.bytes), U(qs.rcpt_pending),
	    U(qs.rcpt_deferred), U(qs.rcpt_held));
	if (qs.oldest_arrival > 0) {
		buf_puts(out, "oldest arrival: ");
		ctl_format_time(out, qs.oldest_arrival);
		buf_putc(out, '\n');
	}
	buf_printf(out,
	    "smtpd connections: %llu\n"
	    "smtpd messages: %llu\n"
	    "smtpd rejected: %llu\n"
	    "smtpd active sessions: %u\n"
	    "commit messages: %llu\n"
	    "commit batches: %llu\n"
	    "commit syncs: %llu\n"
	    "maildrop imported: %llu\n"
	    "maildrop corrupt: %llu\n"
	    "delivery sent: %llu\n"
	    "delivery deferred: %llu\n"
	    "delivery bounced: %llu\n"
	    "delivery expired: %llu\n"
	    "delivery DSNs: %llu\n"
	    "delivery connections: %llu (%llu reused)\n"
	    "delivery active connections: %u\n"
	    "delivery messages in flight: %u\n",
	    U(ss.connections), U(ss.messages), U(ss.rejected), ss.active,
	    U(cs.messages), U(cs.batches), U(cs.syncs), U(imported), U(corrupt),
	    U(ds.sent), U(ds.deferred), U(ds.bounced), U(ds.expired),
	    U(ds.dsns), U(ds.connections), U(ds.reused), ds.active_connections,
	    ds.messages_in_flight);
#undef U
	return 0;
}

static void reply(struct ctl_conn *, int ok, buf_t *body);

/* The MTA-STS state, or NULL with the reason in out. */
static sts_t *
policy_state(daemon_t *d, buf_t *out)
{
	sts_t *sts = d->tls_policy ? tls_policy_sts(d->tls_policy) : NULL;

	if (sts == NULL)
		buf_puts(out, "MTA-STS is disabled (mta_sts_enable = no)");
	return sts;
}

static void
walk_work(void *arg)
{
	struct walk *w = arg;

	switch (w->req.cmd) {
	case CTL_LIST:
		w->rc = do_list(w->d, &w->req, w->out);
		break;
	case CTL_STATS:
		w->rc = queue_stats(w->d->queue, &w->qs) == QUEUE_OK ? 0 : -1;
		break;
	case CTL_DELETE:
		w->rc = do_delete(w->d, &w->req, w->uid, w->out);
		break;
	default:
		w->rc = do_change(w->d, &w->req, w->uid, w->out, &w->kick);
		break;
	}
}

static void
walk_done(void *arg, int cancelled)
{
	struct walk *w = arg;

	if (!cancelled && w->c != NULL) {
		struct ctl_conn *c = w->c;

		c->walk = NULL;
		if (w->req.cmd == CTL_STATS) {
			if (w->rc == 0)
				w->rc = format_stats(
				    w->d, w->req.json, &w->qs, w->out);
			else
				buf_puts(w->out, "queue read error");
		}
		reply(c, w->rc == 0, w->out);
	}
	if (w->kick && !cancelled)
		daemon_queue_changed(w->d);
	buf_free(w->out);
	free(w);
}

/* list and stats: 1 with the walk started, -1 with the reason in out. */
static int
start_walk(struct ctl_conn *c, const struct ctl_req *req, uid_t uid, buf_t *out)
{
	struct ctlsrv *srv = c->srv;
	struct walk *w;

	if (srv->reader == NULL) {
		buf_t *err = buf_new(256);

		srv->reader = workq_new(srv->d->base, 1, CTL_WALKS_MAX, err);
		if (srv->reader == NULL) {
			log_warn("control: %s", buf_data(err));
			buf_free(err);
			buf_puts(out, "cannot start the queue reader");
			return -1;
		}
		buf_free(err);
	}
	w = xcalloc(1, sizeof(*w));
	w->c = c;
	w->d = srv->d;
	w->req = *req;
	w->uid = uid;
	w->out = buf_new(0);
	w->job = workq_submit(srv->reader, walk_work, walk_done, w);
	if (w->job == NULL) {
		buf_free(w->out);
		free(w);
		buf_puts(out, "busy: too many queue listings at once; try "
		              "again");
		return -1;
	}
	c->walk = w;
	return 1;
}

static void
on_checkpoint(void *arg, int err, const char *qid)
{
	struct ctl_conn *c = arg;
	buf_t *out = buf_new(256);

	(void)qid;
	c->ckpt_ticket = 0;
	if (err == QUEUE_OK) {
		buf_puts(out, "queue checkpointed; log files no longer needed "
		              "removed, files compacted\n");
		reply(c, 1, out);
	} else {
		buf_puts(out, "checkpoint failed (see the log)");
		reply(c, 0, out);
	}
	buf_free(out);
}

static void
on_refreshed(void *arg, const struct sts_verdict *v)
{
	struct ctl_conn *c = arg;
	sts_t *sts = tls_policy_sts(c->srv->d->tls_policy);
	buf_t *out = buf_new(1 << 20);

	c->sts_id = 0;
	if (c->json) {
		buf_puts(out, "{\"domain\":");
		json_put_string(out, v->domain);
		buf_printf(out,
		    ",\"policy\":%s,\"source\":", v->policy ? "true" : "false");
		json_put_string(out, v->source);
		buf_puts(out, ",\"id\":");
		json_put_string(out, v->id);
		buf_puts(out, ",\"mode\":");
		json_put_string(
		    out, v->policy ? sts_mode_name(v->policy->mode) : NULL);
		buf_puts(out, ",\"note\":");
		json_put_string(out, v->note);
		buf_puts(out, ",\"cache\":");
		sts_describe(sts, v->domain, 1, out);
		buf_puts(out, "}\n");
	} else {
		if (v->policy)
			buf_printf(out, "%s: policy id %s, mode %s, from %s\n",
			    v->domain, v->id, sts_mode_name(v->policy->mode),
			    v->source);
		else
			buf_printf(out, "%s: no MTA-STS policy\n", v->domain);
		if (v->note)
			buf_printf(out, "note: %s\n", v->note);
		sts_describe(sts, v->domain, 0, out);
	}
	reply(c, 1, out);
	buf_free(out);
}

/* Returns 0 with the body in out, -1 with the ERR text in out, or 1 when
 * the answer comes later (reply() from a callback). */
static int
handle(daemon_t *d, struct ctl_conn *c, const char *line, size_t len, uid_t uid,
    buf_t *out)
{
	sts_t *sts;
	struct ctl_req *req = xmalloc(sizeof(*req));
	const char *why;
	int r = -1;

	if (ctl_exception_match(line, len)) { /* ops-exceptions */
		free(req);
		return ctl_exception_handle(d, line, len, uid, out);
	}
	if ((why = ctl_parse_request(line, len, req)) != NULL) {
		buf_puts(out, why);
		free(req);
		return -1;
	}
	switch (req->cmd) {
	case CTL_LIST:
	case CTL_STATS:
	case CTL_DELETE:
	case CTL_HOLD:
	case CTL_RELEASE:
	case CTL_FLUSH:
		/* Each may touch the whole queue and sync it: off the
		 * loop. */
		r = start_walk(c, req, uid, out);
		break;
	case CTL_SHOW:
		r = do_show(d, req, out);
		break;
	case CTL_CHECKPOINT:
		/* On the writer thread: a checkpoint flushes and compacts,
		 * which takes disk time the loop must not wait for. */
		if (d->commit == NULL) {
			buf_puts(out, "the queue writer is not running");
			break;
		}
		log_info("control: uid %ld: queue checkpoint", (long)uid);
		c->ckpt_ticket =
		    qcommit_checkpoint(d->commit, on_checkpoint, c);
		r = 1;
		break;
	case CTL_POLICY_LIST:
	case CTL_POLICY_SHOW:
		if ((sts = policy_state(d, out)) == NULL)
			break;
		sts_describe(sts,
		    req->cmd == CTL_POLICY_SHOW ? req->domain : NULL, req->json,
		    out);
		r = 0;
		break;
	case CTL_POLICY_FORGET:
		if ((sts = policy_state(d, out)) == NULL)
			break;
		r = sts_forget(sts, req->domain);
		if (r == 0) {
			log_info("control: uid %ld: forgot the MTA-STS policy "
			         "of %s",
			    (long)uid, req->domain);
			buf_printf(out, "%s: cached MTA-STS policy removed\n",
			    req->domain);
		} else {
			buf_printf(
			    out, "%s: no cached MTA-STS policy", req->domain);
			r = -1;
		}
		break;
	case CTL_POLICY_REFRESH:
		if ((sts = policy_state(d, out)) == NULL)
			break;
		c->json = req->json;
		c->sts_id = sts_refresh(sts, req->domain, on_refreshed, c);
		r = 1;
		break;
	}
	free(req);
	return r;
}

/* ---- the connection ---- */

static void
on_written(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_free(arg);
}

static void on_conn_event(struct bufferevent *, short, void *);

static void
reply(struct ctl_conn *c, int ok, buf_t *body)
{
	struct evbuffer *o = bufferevent_get_output(c->bev);

	bufferevent_disable(c->bev, EV_READ);
	if (ok) {
		evbuffer_add(o, "OK\n", 3);
		evbuffer_add(o, buf_data(body), buf_len(body));
	} else {
		buf_t *line = buf_new(8192);

		/* ERR is one line: the text must not carry a newline. */
		buf_puts(line, "ERR ");
		buf_put_printable(line, buf_data(body), buf_len(body));
		buf_putc(line, '\n');
		evbuffer_add(o, buf_data(line), buf_len(line));
		buf_free(line);
	}
	/* Freed when the answer is out, or when the client hangs up or the
	 * write times out before that. */
	bufferevent_setcb(c->bev, NULL, on_written, on_conn_event, c);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct ctl_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	buf_t *out;
	int r;

	if (line == NULL) {
		if (evbuffer_get_length(in) > CONTROL_REQUEST_MAX) {
			out = buf_new(256);
			buf_puts(out, "request too long");
			reply(c, 0, out);
			buf_free(out);
		}
		return;
	}
	/* A CRLF line (socat, telnet) is the same request. */
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	out = buf_new(CTL_REPLY_CAP);
	if (c->denied) {
		/* Answered only now that the request is read: closing with
		 * unread input would reset the connection, and the client
		 * would see that instead of the reason. */
		buf_puts(out, "permission denied");
		r = -1;
	} else {
		r = handle(c->srv->d, c, line, n, c->uid, out);
	}
	if (r == 1) {
		/* The answer comes from the refresh callback; the client
		 * waits (no read timeout meanwhile). */
		free(line);
		buf_free(out);
		bufferevent_disable(bev, EV_READ);
		return;
	}
	free(line);
	if (buf_error(out)) {
		buf_free(out);
		out = buf_new(256);
		buf_puts(out, "reply too large");
		r = -1;
	}
	if (r == 0)
		log_debug("control: uid %ld: request done", (long)c->uid);
	reply(c, r == 0, out);
	buf_free(out);
}

static void
on_conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_free(arg);
}

static void
refuse(int fd, const char *text)
{
	char junk[512];

	/* Best effort: drop what the client sent so far (unread input
	 * makes close() reset the connection), then one short line, which
	 * a fresh socket's buffer holds. */
	while (read(fd, junk, sizeof(junk)) > 0)
		;
	if (write(fd, text, strlen(text)) < 0) {
		/* the peer is gone; nothing to tell */
	}
	close(fd);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct ctlsrv *srv = arg;
	int i;

	(void)what;
	for (i = 0; i < CTL_ACCEPT_BURST; i++) {
		struct timeval tv = {CTL_TIMEOUT, 0};
		struct ctl_conn *c;
		uid_t uid = (uid_t)-1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int denied;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn(
				    "control: accept: %s", strerror(errno));
			return;
		}
		if ((denied = !peer_check(srv, fd, &uid)) != 0)
			log_warn("control: connection from uid %ld refused: "
			         "not root, %s or admin_group",
			    (long)uid, srv->d->cfg->mail_owner);
		if (srv->nconns >= CTL_MAX_CONNS) {
			refuse(fd, "ERR busy, try again\n");
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->srv = srv;
		c->uid = uid;
		c->denied = denied;
		c->bev = bufferevent_socket_new(
		    srv->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (c->bev == NULL) {
			close(fd);
			free(c);
			continue;
		}
		c->next = srv->conns;
		srv->conns = c;
		srv->nconns++;
		bufferevent_setcb(c->bev, on_read, NULL, on_conn_event, c);
		bufferevent_set_timeouts(c->bev, &tv, &tv);
		bufferevent_enable(c->bev, EV_READ);
	}
}

int
ctlsrv_start(struct ctlsrv *srv, buf_t *err)
{
	srv->ev = event_new(
	    srv->d->base, srv->fd, EV_READ | EV_PERSIST, on_accept, srv);
	if (srv->ev == NULL || event_add(srv->ev, NULL) < 0) {
		buf_printf(
		    err, "%s: cannot watch the control socket", srv->path);
		return -1;
	}
	return 0;
}

void
ctlsrv_free(struct ctlsrv *srv)
{
	if (srv == NULL)
		return;
	while (srv->conns)
		conn_free(srv->conns);
	/* Before the queue closes: the walks read it. */
	workq_free(srv->reader);
	if (srv->ev)
		event_free(srv->ev);
	/* Relative to the folder opened at start-up: this may run as root
	 * (a failed start), and private/ is mail_owner's. */
	if (srv->bound && srv->d->private_dir_fd >= 0)
		unlinkat(srv->d->private_dir_fd, ctlsrv_leaf(), 0);
	if (srv->fd >= 0)
		close(srv->fd);
	free(srv->path);
	free(srv);
}
