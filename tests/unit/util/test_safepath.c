/*
 * test_safepath - the walk that refuses links and folders others control,
 * and config_load_fd (the parser fed from a checked descriptor).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "check.h"
#include "mta/util/buf.h"
#include "mta/util/config.h"
#include "mta/util/safepath.h"

static char top[64];

static int
contains(const buf_t *b, const char *s)
{
	return strstr(buf_data(b), s) != NULL;
}

static void
test_trusted_rule(void)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR | 0755;
	CHECK(safepath_dir_trusted(&st));
	st.st_uid = 1000;
	CHECK(!safepath_dir_trusted(&st)); /* not root's */
	st.st_uid = 0;
	st.st_mode = S_IFDIR | 0757;
	CHECK(!safepath_dir_trusted(&st)); /* anyone may write */
	st.st_mode = S_IFDIR | 01777;
	CHECK(safepath_dir_trusted(&st)); /* /tmp */
	st.st_mode = S_IFDIR | 0775;
	CHECK(safepath_dir_trusted(&st)); /* root's group */
	st.st_gid = 100;
	CHECK(!safepath_dir_trusted(&st)); /* another group */
	st.st_mode = S_IFREG | 0755;
	st.st_gid = 0;
	CHECK(!safepath_dir_trusted(&st)); /* not a folder */
}

static void
test_walk(void)
{
	char path[256], dir[128], last[64];
	buf_t *err = buf_new(1024);
	int fd;

	CHECK_INT(
	    safepath_open_parent("relative/x", 0, last, sizeof(last), err), -1);
	CHECK(contains(err, "not an absolute path"));
	buf_reset(err);
	CHECK_INT(safepath_open_parent("/", 0, last, sizeof(last), err), -1);
	CHECK(contains(err, "does not end in a file name"));
	buf_reset(err);

	/* No checks: only links are refused. */
	snprintf(path, sizeof(path), "%s/d/file", top);
	fd = safepath_open_parent(path, 0, last, sizeof(last), err);
	CHECK(fd >= 0);
	CHECK_STR(last, "file");
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s//d//file//", top);
	fd = safepath_open_parent(path, 0, last, sizeof(last), err);
	CHECK(fd >= 0);
	CHECK_STR(last, "file");
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/link/file", top);
	CHECK_INT(safepath_open_parent(path, 0, last, sizeof(last), err), -1);
	CHECK(contains(err, "/link is a symbolic link"));
	buf_reset(err);
	snprintf(path, sizeof(path), "%s/d/../d/file", top);
	CHECK_INT(safepath_open_parent(path, 0, last, sizeof(last), err), -1);
	CHECK(contains(err, "without '.' or '..'"));
	buf_reset(err);
	snprintf(path, sizeof(path), "%s/missing/file", top);
	CHECK_INT(safepath_open_parent(path, 0, last, sizeof(last), err), -1);
	CHECK(contains(err, "/missing: No such file or directory"));
	buf_reset(err);

	/* Checked: a folder anyone may write is refused, by name. */
	snprintf(path, sizeof(path), "%s/d/file", top);
	if (geteuid() == 0) {
		snprintf(dir, sizeof(dir), "%s/d", top);
		chmod(dir, 0757);
		CHECK_INT(
		    safepath_open_parent(path, 1, last, sizeof(last), err), -1);
		CHECK(contains(err, "/d: can be changed by others than root"));
		CHECK(contains(err, "mode 0757"));
		buf_reset(err);
		chmod(dir, 01777);
		fd = safepath_open_parent(path, 1, last, sizeof(last), err);
		CHECK(fd >= 0); /* sticky, like /tmp */
		if (fd >= 0)
			close(fd);
	} else {
		/* Our own folders are not root's. */
		CHECK_INT(
		    safepath_open_parent(path, 1, last, sizeof(last), err), -1);
		CHECK(contains(err, "can be changed by others than root"));
	}
	buf_free(err);
}

static void
test_config_fd(void)
{
	char path[128];
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	FILE *fp;
	int fd;

	snprintf(path, sizeof(path), "%s/main.cf", top);
	fp = fopen(path, "w");
	fputs("myhostname = fd.example\nbogus = 1\n", fp);
	fclose(fp);
	fd = open(path, O_RDONLY);
	CHECK_INT(config_load_fd(cfg, fd, "NAME", err), -1);
	CHECK_STR(buf_data(err), "NAME:2: bogus: unknown parameter");
	CHECK(fcntl(fd, F_GETFD) < 0); /* closed on error too */
	fp = fopen(path, "w");
	fputs("myhostname = fd.example\n", fp);
	fclose(fp);
	buf_reset(err);
	fd = open(path, O_RDONLY);
	CHECK_INT(config_load_fd(cfg, fd, "NAME", err), 0);
	CHECK_STR(cfg->myhostname, "fd.example");
	CHECK_STR(cfg->source, "NAME");
	CHECK(fcntl(fd, F_GETFD) < 0);
	unlink(path);
	config_free(cfg);
	buf_free(err);
}

int
main(void)
{
	char p[128];

	strcpy(top, "/tmp/strictmta-safepath-XXXXXX");
	if (mkdtemp(top) == NULL)
		return 1;
	snprintf(p, sizeof(p), "%s/d", top);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/link", top);
	if (symlink("d", p) < 0)
		return 1;
	test_trusted_rule();
	test_walk();
	test_config_fd();
	snprintf(p, sizeof(p), "%s/link", top);
	unlink(p);
	snprintf(p, sizeof(p), "%s/d", top);
	rmdir(p);
	rmdir(top);
	return check_done();
}
