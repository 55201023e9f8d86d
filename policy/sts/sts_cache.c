/*
 * sts_cache - see sts_cache.h. Record format (version 1):
 *   "STSC1 <id> <fetched> <expires> <last_used>\n" then the policy text.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <db.h>

#include "mta/util/xalloc.h"
#include "policy/sts/sts_cache.h"

struct sts_cache {
	DB *db;
};

/*
 * Berkeley DB creates a database as "__db.NAME" beside it and renames it
 * into place; when it finds that file it waits, without end, for the
 * process it takes to be creating it. One left by a start that failed in
 * between (or a crash) would hang every later start. Only the daemon opens
 * its cache (it holds the pid file lock), so such a file is stale.
 */
static void
remove_stale_temp(const char *path)
{
	const char *slash = strrchr(path, '/');
	buf_t *tmp = buf_new(4096);

	if (slash != NULL)
		buf_printf(
		    tmp, "%.*s/__db.%s", (int)(slash - path), path, slash + 1);
	else
		buf_printf(tmp, "__db.%s", path);
	if (!buf_error(tmp))
		(void)unlink(buf_data(tmp));
	buf_free(tmp);
}

sts_cache_t *
sts_cache_open(const char *path, buf_t *err)
{
	sts_cache_t *c;
	DB *db;
	int r;

	remove_stale_temp(path);
	if ((r = db_create(&db, NULL, 0)) != 0) {
		buf_printf(err, "%s: %s", path, db_strerror(r));
		return NULL;
	}
	r = db->open(db, NULL, path, NULL, DB_BTREE, DB_CREATE, 0600);
	if (r != 0) {
		buf_printf(err, "cannot open the MTA-STS policy cache %s: %s",
		    path, db_strerror(r));
		db->close(db, 0);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->db = db;
	return c;
}

void
sts_cache_close(sts_cache_t *c)
{
	if (c == NULL)
		return;
	c->db->close(c->db, 0);
	free(c);
}

void
sts_cache_entry_free(struct sts_cache_entry *e)
{
	if (e == NULL)
		return;
	free(e->body);
	free(e);
}

void
sts_cache_encode(const struct sts_cache_entry *e, buf_t *out)
{
	buf_printf(out, "STSC1 %s %" PRId64 " %" PRId64 " %" PRId64 "\n", e->id,
	    e->fetched, e->expires, e->last_used);
	buf_append(out, e->body, e->len);
}

const char *
sts_cache_decode(const void *data, size_t len, struct sts_cache_entry **out)
{
	const char *s = data, *nl;
	char head[128];
	struct sts_cache_entry *e;
	long long fetched, expires, used;
	char id[STS_ID_MAX + 2];
	size_t hl;
	int n = 0;

	*out = NULL;
	if ((nl = memchr(s, '\n', len < 128 ? len : 128)) == NULL)
		return "no header line";
	hl = (size_t)(nl - s);
	memcpy(head, s, hl);
	head[hl] = '\0';
	if (sscanf(head, "STSC1 %33s %lld %lld %lld%n", id, &fetched, &expires,
	        &used, &n) != 4 ||
	    (size_t)n != hl)
		return "bad header line";
	if (strlen(id) > STS_ID_MAX)
		return "id too long";
	if (len - hl - 1 > STS_POLICY_MAX)
		return "policy too long";
	e = xcalloc(1, sizeof(*e));
	memcpy(e->id, id, strlen(id) + 1);
	e->fetched = fetched;
	e->expires = expires;
	e->last_used = used;
	e->len = len - hl - 1;
	e->body = xmemdup(nl + 1, e->len);
	*out = e;
	return NULL;
}

static void
lower_key(const char *domain, char key[256])
{
	size_t i, n = strnlen(domain, 255);

	for (i = 0; i < n; i++)
		key[i] = (char)((domain[i] >= 'A' && domain[i] <= 'Z')
		                    ? domain[i] + 32
		                    : domain[i]);
	/* MX and domain names compare without the root dot. */
	if (n && key[n - 1] == '.')
		n--;
	key[n] = '\0';
}

int
sts_cache_get(sts_cache_t *c, const char *domain, struct sts_cache_entry **out)
{
	char keybuf[256];
	DBT key, val;
	int r;

	lower_key(domain, keybuf);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = keybuf;
	key.size = (u_int32_t)strlen(keybuf);
	val.flags = DB_DBT_MALLOC;
	r = c->db->get(c->db, NULL, &key, &val, 0);
	if (r == DB_NOTFOUND)
		return 1;
	if (r != 0)
		return -1;
	if (sts_cache_decode(val.data, val.size, out) != NULL) {
		free(val.data);
		return -1;
	}
	memcpy((*out)->domain, keybuf, strlen(keybuf) + 1);
	free(val.data);
	return 0;
}

int
sts_cache_put(sts_cache_t *c, const struct sts_cache_entry *e)
{
	char keybuf[256];
	buf_t *b = buf_new(STS_POLICY_MAX + 256);
	DBT key, val;
	int r;

	lower_key(e->domain, keybuf);
	sts_cache_encode(e, b);
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	key.data = keybuf;
	key.size = (u_int32_t)strlen(keybuf);
	val.data = buf_data_mut(b);
	val.size = (u_int32_t)buf_len(b);
	r = c->db->put(c->db, NULL, &key, &val, 0);
	if (r == 0)
		r = c->db->sync(c->db, 0);
	buf_free(b);
	return r == 0 ? 0 : -1;
}

int
sts_cache_delete(sts_cache_t *c, const char *domain)
{
	char keybuf[256];
	DBT key;
	int r;

	lower_key(domain, keybuf);
	memset(&key, 0, sizeof(key));
	key.data = keybuf;
	key.size = (u_int32_t)strlen(keybuf);
	r = c->db->del(c->db, NULL, &key, 0);
	if (r == DB_NOTFOUND)
		return 1;
	if (r == 0)
		r = c->db->sync(c->db, 0);
	return r == 0 ? 0 : -1;
}

int
sts_cache_walk(sts_cache_t *c, sts_cache_visit_fn *fn, void *arg)
{
	DBC *cur;
	DBT key, val;
	int r, stop = 0;

	if (c->db->cursor(c->db, NULL, &cur, 0) != 0)
		return -1;
	memset(&key, 0, sizeof(key));
	memset(&val, 0, sizeof(val));
	while (!stop && (r = cur->get(cur, &key, &val, DB_NEXT)) == 0) {
		struct sts_cache_entry *e;

		if (key.size >= 256 ||
		    sts_cache_decode(val.data, val.size, &e) != NULL)
			continue;
		memcpy(e->domain, key.data, key.size);
		e->domain[key.size] = '\0';
		stop = fn(arg, e);
		sts_cache_entry_free(e);
	}
	cur->close(cur);
	return 0;
}
