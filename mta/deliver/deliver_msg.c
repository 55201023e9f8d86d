/*
 * deliver_msg - the data at the bottom of the delivery engine: messages in
 * flight, their jobs and a destination's job list, and small helpers.
 * Calls nothing in the other files of mta/deliver/, so that routing,
 * connections and results can use it without a call circle
 * (deliver_int.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "mta/deliver/deliver_int.h"
#include "mta/util/clock.h"
#include "mta/util/xalloc.h"

/*
 * Small helpers
 */
const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at && at[1] ? at + 1 : NULL;
}

uint32_t
rand32(void *arg)
{
	uint32_t v = 0;

	(void)arg;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)clock_now_usec();
	return v;
}

/* Seconds for delay= and delays=, Postfix-like: 0.12, 3.4, 120. */
const char *
secs(char *out, size_t len, int64_t usec)
{
	double v = usec < 0 ? 0.0 : (double)usec / 1e6;

	if (v < 0.01)
		snprintf(out, len, "0");
	else if (v < 10)
		snprintf(out, len, "%.2g", v);
	else
		snprintf(out, len, "%.0f", v);
	return out;
}

/*
 * Messages and jobs
 */
static unsigned
msg_bucket(const char *qid)
{
	return qid_hash(qid) % MSG_BUCKETS;
}

struct dmsg *
msg_find(deliver_t *d, const char *qid)
{
	struct dmsg *m;

	for (m = d->msg_tab[msg_bucket(qid)]; m != NULL; m = m->hnext)
		if (strcmp(m->env->qid, qid) == 0)
			return m;
	return NULL;
}

/* Puts m, its envelope and content set, among the messages in flight. */
void
msg_add(deliver_t *d, struct dmsg *m)
{
	unsigned b = msg_bucket(m->env->qid);

	m->prev = NULL;
	m->next = d->msgs;
	if (d->msgs)
		d->msgs->prev = m;
	d->msgs = m;
	m->hnext = d->msg_tab[b];
	d->msg_tab[b] = m;
	d->nmsgs++;
	d->msg_bytes += m->len;
}

void
msg_free(deliver_t *d, struct dmsg *m)
{
	struct dmsg **pp;
	size_t i;

	if (m->prev)
		m->prev->next = m->next;
	else
		d->msgs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	for (pp = &d->msg_tab[msg_bucket(m->env->qid)]; *pp != NULL;
	     pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			break;
		}
	d->nmsgs--;
	d->msg_bytes -= m->len;
	for (i = 0; i < m->env->nrcpt; i++) {
		free(m->fail_remote[i]);
		free(m->fail_diag[i]);
	}
	free(m->fail_remote);
	free(m->fail_diag);
	free(m->failed);
	free(m->relayed);
	free(m->content);
	queue_env_free(m->env);
	free(m);
}

void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	free(j->idx);
	free(j->r);
	free(j);
}

struct job *
job_new(struct dmsg *m)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->m = m;
	j->t_created = clock_now_usec();
	j->smsg.qid = m->env->qid;
	j->smsg.sender = m->env->sender;
	j->smsg.envid = m->env->envid;
	j->smsg.flags = m->env->flags;
	j->smsg.ret = m->env->ret;
	j->smsg.content = m->content;
	j->smsg.len = m->len;
	m->njobs++;
	return j;
}

void
job_add_rcpt(struct job *j, size_t i)
{
	const struct queue_rcpt *qr = &j->m->env->rcpts[i];
	struct smtp_msg_rcpt *r;

	j->idx = xreallocarray(j->idx, j->smsg.nrcpt + 1, sizeof(*j->idx));
	j->r = xreallocarray(j->r, j->smsg.nrcpt + 1, sizeof(*j->r));
	j->idx[j->smsg.nrcpt] = i;
	r = &j->r[j->smsg.nrcpt];
	memset(r, 0, sizeof(*r));
	r->address = qr->address;
	r->orcpt = qr->orcpt;
	r->notify = qr->notify;
	j->smsg.nrcpt++;
	j->smsg.rcpts = j->r;
}

/*
 * A destination's job list
 */
struct job *
dest_take_job(struct dest *t)
{
	struct job *j = t->jobs;

	if (j == NULL)
		return NULL;
	t->jobs = j->next;
	if (t->jobs == NULL)
		t->jobs_tail = &t->jobs;
	t->njobs--;
	j->next = NULL;
	return j;
}
