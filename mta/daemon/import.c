/*
 * import - the maildrop pickup: moves files that sendmail(1) left in
 * queue_directory/maildrop into the queue (see mta/sendmail/maildrop.h).
 *
 * Steps for each file named by a valid queue ID that is not already being
 * imported:
 *   1. if the queue already has that ID, an earlier import committed it
 *      and stopped before the unlink: unlink now (imports are idempotent);
 *   2. else read and parse it; a file that does not parse is moved to
 *      corrupt/ with a warning, never dropped silently;
 *   3. else submit it to group commit under the same queue ID, and unlink
 *      the file only when the commit is durable (QUEUE_OK).
 * A scan starts at most IMPORT_MAX_INFLIGHT imports and looks at most at
 * IMPORT_MAX_ENTRIES names, so a flood of files is taken in bounded bites;
 * when a scan stopped at the limit, finished imports start the next scan
 * at once instead of waiting for import_interval.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "daemon_int.h"
#include "mta/sendmail/maildrop.h"
#include "mta/util/clock.h"
#include "mta/util/log.h"
#include "mta/util/qid.h"
#include "mta/util/xalloc.h"

#define IMPORT_MAX_INFLIGHT 64
#define IMPORT_MAX_ENTRIES 10000
#define IMPORT_TMP_MAX_AGE 86400 /* a .tmp. file this old is abandoned */

struct import_job {
	struct import *imp;
	char qid[QID_SIZE];
	uint64_t ticket;
	struct import_job *next;
};

struct import {
	daemon_t *d;
	char *dir; /* queue_directory/maildrop */
	char *corrupt_dir; /* queue_directory/corrupt */
	struct import_job *jobs;
	unsigned njobs;
	int saturated; /* the last scan stopped at IMPORT_MAX_INFLIGHT */
	uint64_t imported, corrupt;
};

struct import *
import_new(daemon_t *d)
{
	struct import *imp = xcalloc(1, sizeof(*imp));
	buf_t *b = buf_new(8192);

	imp->d = d;
	buf_printf(b, "%s/%s", d->qdir, MAILDROP_SUBDIR);
	imp->dir = buf_steal(b, NULL);
	buf_printf(b, "%s/corrupt", d->qdir);
	imp->corrupt_dir = buf_steal(b, NULL);
	buf_free(b);
	return imp;
}

void
import_get_stats(struct import *imp, uint64_t *imported, uint64_t *corrupt)
{
	*imported = imp ? imp->imported : 0;
	*corrupt = imp ? imp->corrupt : 0;
}

static struct import_job *
find_job(struct import *imp, const char *qid)
{
	struct import_job *j;

	for (j = imp->jobs; j; j = j->next)
		if (strcmp(j->qid, qid) == 0)
			return j;
	return NULL;
}

static void
unlink_job(struct import *imp, struct import_job *job)
{
	struct import_job **pp;

	for (pp = &imp->jobs; *pp; pp = &(*pp)->next)
		if (*pp == job) {
			*pp = job->next;
			imp->njobs--;
			return;
		}
}

static void
remove_file(struct import *imp, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", imp->dir, name);
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("%s: cannot remove maildrop file: %s", name,
		    strerror(errno));
}

static void
move_to_corrupt(struct import *imp, const char *name, const char *why)
{
	char from[4096], to[4096];

	snprintf(from, sizeof(from), "%s/%s", imp->dir, name);
	snprintf(to, sizeof(to), "%s/%s", imp->corrupt_dir, name);
	imp->corrupt++;
	if (rename(from, to) < 0) {
		log_warn("%s: bad maildrop file (%s); cannot move it to %s: "
		         "%s",
		    name, why, imp->corrupt_dir, strerror(errno));
		return;
	}
	log_warn("%s: bad maildrop file moved to %s: %s", name, to, why);
}

static void
import_done(void *arg, int err, const char *qid)
{
	struct import_job *job = arg;
	struct import *imp = job->imp;

	unlink_job(imp, job);
	if (err == QUEUE_OK) {
		remove_file(imp, job->qid);
		imp->imported++;
		log_info("%s: queued from maildrop", qid);
		daemon_queue_changed(imp->d);
		/* A backlog is taken at the speed of the disk, not one bite
		 * per import_interval. */
		if (imp->saturated && imp->njobs < IMPORT_MAX_INFLIGHT / 2)
			import_scan(imp);
	} else {
		/* The file stays; the next scan tries again. */
		log_warn("%s: cannot queue maildrop file: %s", qid,
		    err == QUEUE_ENOSPC ? "queue file system full"
		                        : "queue error");
	}
	free(job);
}

static struct queue_env *
env_from_msg(const char *qid, struct maildrop_msg *msg)
{
	struct queue_env *env = queue_env_new();
	size_t i;

	memcpy(env->qid, qid, QUEUE_ID_SIZE);
	free(env->sender); /* queue_env_new() sets "" */
	env->sender = xstrdup(msg->sender ? msg->sender : "");
	env->arrival = clock_now();
	env->size = msg->len;
	env->ret = msg->ret == MAILDROP_RET_FULL   ? DSN_RET_FULL
	           : msg->ret == MAILDROP_RET_HDRS ? DSN_RET_HDRS
	                                           : DSN_RET_UNSPEC;
	env->envid = msg->envid ? xstrdup(msg->envid) : NULL;
	env->flags = 0;
	if (msg->flags & MAILDROP_F_8BITMIME)
		env->flags |= QENV_8BITMIME;
	if (msg->flags & MAILDROP_F_SMTPUTF8)
		env->flags |= QENV_SMTPUTF8;
	/* RFC 8689 5: REQUIRETLS wins over "TLS-Required: No". */
	if (msg->flags & MAILDROP_F_REQUIRETLS)
		env->flags |= QENV_REQUIRETLS;
	else if (msg->flags & MAILDROP_F_TLS_OPTIONAL)
		env->flags |= QENV_TLS_OPTIONAL;
	env->client = xstrdup("local");
	for (i = 0; i < msg->nrcpt; i++)
		queue_env_add_rcpt(env, msg->rcpts[i], NULL,
		    msg->notify & (DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS |
		                      DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY));
	return env;
}

static void
import_one(struct import *imp, const char *name)
{
	struct queue_env *old = NULL, *env;
	struct maildrop_msg *msg = NULL;
	struct import_job *job;
	char path[4096];
	buf_t *err;
	char *content;
	size_t len;
	buf_t *from;

	if (queue_get(imp->d->queue, name, &old) == QUEUE_OK) {
		queue_env_free(old);
		log_info(
		    "%s: already queued; removing the maildrop file", name);
		remove_file(imp, name);
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", imp->dir, name);
	err = buf_new(1024);
	if (maildrop_read(path, &msg, err) < 0) {
		struct stat st;

		if (lstat(path, &st) < 0 && errno == ENOENT) {
			buf_free(err);
			return; /* gone meanwhile: nothing lost */
		}
		move_to_corrupt(
		    imp, name, buf_len(err) ? buf_data(err) : "unreadable");
		buf_free(err);
		return;
	}
	buf_free(err);
	if (msg->nrcpt == 0) {
		move_to_corrupt(imp, name, "no recipients");
		maildrop_msg_free(msg);
		return;
	}
	/* Our sendmail never writes more; a file that has more was not
	 * written by it, and SMTP would have refused them too. */
	if ((long long)msg->nrcpt > imp->d->cfg->smtpd_recipient_limit) {
		char why[128];

		snprintf(why, sizeof(why),
		    "%zu recipients, more than smtpd_recipient_limit (%lld)",
		    msg->nrcpt, imp->d->cfg->smtpd_recipient_limit);
		move_to_corrupt(imp, name, why);
		maildrop_msg_free(msg);
		return;
	}
	from = buf_new(2048);
	buf_put_printable(from, msg->sender ? msg->sender : "",
	    msg->sender ? strlen(msg->sender) : 0);
	log_info("%s: uid=%ld from=<%s>", name, msg->uid, buf_data(from));
	buf_free(from);

	env = env_from_msg(name, msg);
	content = msg->content;
	len = msg->len;
	msg->content = NULL;
	maildrop_msg_free(msg);

	job = xcalloc(1, sizeof(*job));
	job->imp = imp;
	memcpy(job->qid, name, QID_SIZE);
	job->next = imp->jobs;
	imp->jobs = job;
	imp->njobs++;
	/* qcommit owns env and content from here. */
	job->ticket = qcommit_submit(imp->d->commit, env,
	    content ? content : xstrdup(""), len, import_done, job);
}

/* sendmail renames its .tmp. file into place; one left for a day belongs
 * to a sendmail that died, and only we can remove it (mode 1730). */
static void
reap_tmp(struct import *imp, const char *name)
{
	char path[4096];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", imp->dir, name);
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	if (st.st_mtime > clock_now() - IMPORT_TMP_MAX_AGE)
		return;
	if (unlink(path) == 0)
		log_warn("removed abandoned maildrop file %s (uid %ld)", name,
		    (long)st.st_uid);
}

void
import_scan(struct import *imp)
{
	struct dirent *de;
	unsigned seen = 0;
	DIR *dir;

	if (imp == NULL || imp->d->queue == NULL)
		return;
	if ((dir = opendir(imp->dir)) == NULL) {
		log_warn("%s: cannot list: %s", imp->dir, strerror(errno));
		return;
	}
	imp->saturated = 0;
	while ((de = readdir(dir)) != NULL && seen++ < IMPORT_MAX_ENTRIES) {
		const char *name = de->d_name;

		if (strncmp(name, MAILDROP_TMP_PREFIX,
		        strlen(MAILDROP_TMP_PREFIX)) == 0) {
			reap_tmp(imp, name);
			continue;
		}
		if (!qid_valid(name) || find_job(imp, name))
			continue;
		if (imp->njobs >= IMPORT_MAX_INFLIGHT) {
			imp->saturated = 1;
			break;
		}
		import_one(imp, name);
	}
	closedir(dir);
}

void
import_free(struct import *imp)
{
	struct import_job *j, *next;

	if (imp == NULL)
		return;
	for (j = imp->jobs; j; j = next) {
		next = j->next;
		/* Still committed; the file is removed at the next start. */
		qcommit_cancel(imp->d->commit, j->ticket);
		free(j);
	}
	free(imp->dir);
	free(imp->corrupt_dir);
	free(imp);
}
