/*
 * test_sts_cache - the MTA-STS policy cache: what is put is got back at
 * once and after a reopen (the writer thread reached the file before
 * close returned), deletes stick, keys ignore case and the root dot, walk
 * goes in domain order and lets its callback change the cache, and a
 * damaged record reads as none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <db.h>

#include "check.h"
#include "policy/sts/sts_cache.h"

static struct sts_cache_entry
entry(const char *domain, const char *id, const char *body)
{
	struct sts_cache_entry e;

	memset(&e, 0, sizeof(e));
	snprintf(e.domain, sizeof(e.domain), "%s", domain);
	snprintf(e.id, sizeof(e.id), "%s", id);
	e.fetched = 1000;
	e.expires = 2000;
	e.last_used = 1500;
	e.body = (char *)body;
	e.len = strlen(body);
	return e;
}

static char order[256];

static int
visit(void *arg, const struct sts_cache_entry *e)
{
	sts_cache_t *c = arg;

	strcat(order, e->domain);
	strcat(order, " ");
	/* The callback may change the cache it walks. */
	if (strcmp(e->domain, "b.example") == 0)
		sts_cache_delete(c, "c.example");
	return 0;
}

int
main(void)
{
	char dir[] = "/tmp/strictmta-stscache-XXXXXX", path[300];
	buf_t *err = buf_new(256);
	struct sts_cache_entry e, *got = NULL;
	sts_cache_t *c;
	DB *db;
	DBT k, v;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sts-cache.db", dir);
	c = sts_cache_open(path, err);
	CHECK(c != NULL);
	e = entry("B.Example.", "id1", "version: STSv1\r\nmode: enforce\r\n");
	CHECK(sts_cache_put(c, &e) == 0);
	e = entry("a.example", "id2", "version: STSv1\r\nmode: testing\r\n");
	CHECK(sts_cache_put(c, &e) == 0);
	e = entry("c.example", "id3", "version: STSv1\r\nmode: none\r\n");
	CHECK(sts_cache_put(c, &e) == 0);
	CHECK(sts_cache_get(c, "b.example", &got) == 0);
	CHECK_STR(got->id, "id1");
	CHECK_STR(got->domain, "b.example");
	sts_cache_entry_free(got);
	CHECK(sts_cache_delete(c, "a.example") == 0);
	CHECK(sts_cache_delete(c, "a.example") == 1);
	CHECK(sts_cache_get(c, "a.example", &got) == 1);
	sts_cache_close(c);

	/* Reopened: the writes are in the file. */
	c = sts_cache_open(path, err);
	CHECK(c != NULL);
	CHECK(sts_cache_get(c, "a.example", &got) == 1);
	CHECK(sts_cache_get(c, "C.EXAMPLE", &got) == 0);
	CHECK_STR(got->id, "id3");
	CHECK(got->fetched == 1000 && got->expires == 2000 &&
	      got->last_used == 1500);
	CHECK(got->len == strlen("version: STSv1\r\nmode: none\r\n"));
	sts_cache_entry_free(got);
	order[0] = '\0';
	CHECK(sts_cache_walk(c, visit, c) == 0);
	CHECK_STR(order, "b.example c.example ");
	CHECK(sts_cache_get(c, "c.example", &got) == 1);
	sts_cache_close(c);

	/* A damaged record (written behind the cache's back) is as none. */
	CHECK(db_create(&db, NULL, 0) == 0);
	CHECK(db->open(db, NULL, path, NULL, DB_BTREE, 0, 0600) == 0);
	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	k.data = "bad.example";
	k.size = 11;
	v.data = "garbage";
	v.size = 7;
	CHECK(db->put(db, NULL, &k, &v, 0) == 0);
	db->close(db, 0);
	c = sts_cache_open(path, err);
	CHECK(c != NULL);
	CHECK(sts_cache_get(c, "bad.example", &got) == 1);
	CHECK(sts_cache_get(c, "b.example", &got) == 0);
	sts_cache_entry_free(got);
	sts_cache_close(c);

	unlink(path);
	rmdir(dir);
	buf_free(err);
	return check_done();
}
