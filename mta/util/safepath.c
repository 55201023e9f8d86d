/*
 * safepath - see safepath.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "safepath.h"

int
safepath_dir_trusted(const struct stat *st)
{
	if (!S_ISDIR(st->st_mode) || st->st_uid != 0)
		return 0;
	if (st->st_mode & S_ISVTX)
		return 1;
	if (st->st_mode & S_IWOTH)
		return 0;
	return !(st->st_mode & S_IWGRP) || st->st_gid == 0;
}

static int
check_dir(int fd, const char *name, buf_t *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		buf_printf(err, "%s: %s", name, strerror(errno));
		return -1;
	}
	if (!safepath_dir_trusted(&st)) {
		buf_printf(err,
		    "%s: can be changed by others than root (owner uid %ld, "
		    "mode %04o)",
		    name, (long)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int
safepath_open_parent(
    const char *path, int check, char *last, size_t lastlen, buf_t *err)
{
	char copy[PATH_MAX + 1], sofar[PATH_MAX + 2];
	char *comp, *next, *leaf;
	size_t len = strlen(path), n;
	int fd, nfd;

	if (path[0] != '/' || len > PATH_MAX) {
		buf_printf(err, "%s: not an absolute path of at most %d bytes",
		    path, PATH_MAX);
		return -1;
	}
	memcpy(copy, path, len + 1);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	leaf = strrchr(copy, '/') + 1;
	if (*leaf == '\0' || strcmp(leaf, ".") == 0 ||
	    strcmp(leaf, "..") == 0 || strlen(leaf) >= lastlen) {
		buf_printf(err, "%s: does not end in a file name", path);
		return -1;
	}
	memcpy(last, leaf, strlen(leaf) + 1);
	leaf[-1] = '\0'; /* copy is the parent now; "" for "/" */
	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		buf_printf(err, "/: %s", strerror(errno));
		return -1;
	}
	memcpy(sofar, "/", 2);
	for (comp = copy; *comp != '\0'; comp = next) {
		if ((next = strchr(comp, '/')) != NULL)
			*next++ = '\0';
		else
			next = comp + strlen(comp);
		if (*comp == '\0')
			continue; /* the leading slash, or "//" */
		if (check && check_dir(fd, sofar, err) < 0)
			goto fail;
		n = strlen(sofar);
		snprintf(sofar + n, sizeof(sofar) - n, "%s%s", n > 1 ? "/" : "",
		    comp);
		if (strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
			buf_printf(
			    err, "%s: give the path without '.' or '..'", path);
			goto fail;
		}
		nfd = openat(
		    fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			struct stat st;
			int e = errno;

			if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(st.st_mode))
				buf_printf(err, "%s is a symbolic link", sofar);
			else
				buf_printf(err, "%s: %s", sofar, strerror(e));
			goto fail;
		}
		close(fd);
		fd = nfd;
	}
	if (check && check_dir(fd, sofar, err) < 0)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}
