/*
 * ctlproto - the daemon's side of the control protocol (mta/cli/control.h):
 * parsing one request line and rendering queue entries as text (mailq
 * style) or JSON. Pure functions, so they are unit-tested without a
 * socket or a queue.
 */
#ifndef STRICTMTA_CTLPROTO_H
#define STRICTMTA_CTLPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mta/util/buf.h"
#include "mta/util/qid.h"
#include "queue/queue.h"

/* A request names at most this many queue IDs (8192 / 17 fits). */
#define CTL_MAX_QIDS 512

enum ctl_cmd {
	CTL_LIST,
	CTL_SHOW,
	CTL_DELETE,
	CTL_HOLD,
	CTL_RELEASE,
	CTL_FLUSH,
	CTL_STATS,
	CTL_CHECKPOINT, /* checkpoint and compact the queue now */
	CTL_POLICY_LIST, /* MTA-STS cache: every domain */
	CTL_POLICY_SHOW, /* one domain's cached policy */
	CTL_POLICY_REFRESH, /* fetch one domain's policy now */
	CTL_POLICY_FORGET, /* drop one domain's cached policy */
};

struct ctl_req {
	enum ctl_cmd cmd;
	int json; /* --json given */
	int all; /* delete --all */
	int content; /* show --content: the message itself */
	char domain[256]; /* policy-show/refresh/forget */
	size_t nqid;
	char qids[CTL_MAX_QIDS][QID_SIZE];
};

/*
 * Parses one request (len bytes, no newline): a command word and its
 * arguments separated by single spaces. Returns NULL and fills req, or an
 * error string for the ERR reply.
 */
const char *ctl_parse_request(
    const char *line, size_t len, struct ctl_req *req);

/* "Sun Nov 22 23:27:30" in local time, as mailq shows arrival. */
void ctl_format_time(buf_t *, int64_t t);

/* The mailq header line, one message and the footer. */
void ctl_list_header(buf_t *);
void ctl_list_entry(buf_t *, const struct queue_env *);
void ctl_list_footer(buf_t *, uint64_t kbytes, uint64_t messages);
/* One message as a JSON object (no trailing newline). */
void ctl_json_entry(buf_t *, const struct queue_env *);

/*
 * "show": every envelope field as "name: value" lines, then the headers of
 * the content (up to the first empty line) made printable.
 */
void ctl_show_entry(
    buf_t *, const struct queue_env *, const char *content, size_t len);

/*
 * Who may use the control socket: root, the mail owner (owner_uid), and
 * members of admin_group (admin_gid NULL when not set) by primary or
 * supplementary group.
 */
int ctl_peer_allowed(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups,
    uid_t owner_uid, const gid_t *admin_gid);

/* Nonzero when every recipient still to be delivered is on hold. */
int ctl_env_held(const struct queue_env *);

#endif
