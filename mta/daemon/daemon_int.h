/*
 * daemon_int - what the daemon's own files share: the daemon struct, the
 * maildrop import (import.c) and the control server (ctlserver.c). Not for
 * other modules; they talk to the daemon through daemon.h.
 */
#ifndef STRICTMTA_DAEMON_INT_H
#define STRICTMTA_DAEMON_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "daemon.h"
#include "mta/smtpd/smtpd.h"
#include "queue/qcommit.h"
#include "queue/queue.h"

struct event;
struct event_base;
struct import;
struct ctlsrv;

struct daemon_listener {
	int fd; /* owned until handed to smtpd_add_listener */
	int implicit_tls;
	char *addr;
};

struct daemon {
	const struct config *cfg; /* the caller's */
	struct daemon_opts opts;
	int64_t started;
	int exit_code;
	int running; /* "daemon started" was logged */

	/* Who we are after the privilege drop. */
	int as_root; /* started as root: chown and drop */
	uid_t owner_uid;
	gid_t owner_gid;
	gid_t drop_gid; /* setgid_group: reads maildrop files */
	gid_t admin_gid; /* admin_group, when have_admin_gid */
	int have_admin_gid;

	char *qdir; /* queue_directory */
	/*
	 * The queue folder and the two subfolders that root touches, opened
	 * once without following links (make_layout): root works relative
	 * to these, never by a path that mail_owner could redirect. -1 when
	 * not open.
	 */
	int qdir_fd, pid_dir_fd, private_dir_fd;
	int groups_set; /* set_groups() done */
	int pid_fd; /* locked pid file, -1 when none */
	char *pid_path; /* for messages only */
	int ready_fd; /* -d: pipe to the waiting parent, else -1 */

	struct daemon_listener *listeners;
	size_t nlisteners;

	struct event_base *base;
	queue_t *queue;
	qcommit_t *commit;
	smtpd_t *smtpd;
	struct import *import;
	struct ctlsrv *ctl;

	struct event *ev_import, *ev_checkpoint;
	struct event *ev_sigterm, *ev_sigint, *ev_sighup;

	/*
	 * Delivery (mta/deliver) hangs off here: deliver_new() in
	 * daemon_new(), deliver_kick() in daemon_queue_changed(),
	 * deliver_free() in daemon_free().
	 */
	struct resolver *resolver;
	struct deliver *deliver;
	/* DANE and MTA-STS verdicts for delivery (policy/verdict), which
	 * keeps its MTA-STS cache in queue_directory/policy/. */
	struct tls_policy *tls_policy;
	/* explain-metrics: the Prometheus endpoint (metrics_http.h). */
	struct metrics_http *metrics;
};

/* import.c: the maildrop pickup. */
struct import *import_new(daemon_t *);
/* One pass over maildrop/; starts at most a bounded number of imports. */
void import_scan(struct import *);
/* Cancels commits still in flight (their files stay for the next start). */
void import_free(struct import *);
void import_get_stats(struct import *, uint64_t *imported, uint64_t *corrupt);

/*
 * daemon.c: act with mail_owner's effective uid (and egid as the given
 * group), so that the kernel checks mail_owner's rights on whatever a
 * path leads to; daemon_act_as_root() undoes it. No-ops when not root.
 */
int daemon_act_as_owner(daemon_t *, gid_t egid, buf_t *err);
int daemon_act_as_root(daemon_t *, buf_t *err);

/* ctlserver.c: the control socket, made before the privilege drop with
 * mail_owner's effective ids (see ctlsrv_open). */
struct ctlsrv *ctlsrv_open(daemon_t *, buf_t *err);
/* Starts accepting on the daemon's event base. */
int ctlsrv_start(struct ctlsrv *, buf_t *err);
/* Stops accepting, drops open connections, unlinks the socket. */
void ctlsrv_free(struct ctlsrv *);

#endif
