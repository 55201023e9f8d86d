/*
 * safepath - opening a path that nobody but root can redirect.
 *
 * A root process (or a setgid one) that opens a file by name trusts every
 * folder on the way: whoever can write to one of them can put a link or
 * another folder in place of the next component between a check and the
 * use. safepath walks an absolute path from "/" one component at a time,
 * opening each folder relative to the one before with O_NOFOLLOW, and
 * checks each one it passes: it must be root's and writable by root only.
 * Writable by root's group, or sticky (like /tmp, where only an entry's
 * owner may rename it), is accepted. The caller then opens the last
 * component relative to the folder descriptor it gets back.
 *
 * Links are refused, not followed: a caller that wants to honour a link
 * an admin made resolves the path first (realpath) and walks the result;
 * what the link led to is then checked like any other path.
 */
#ifndef STRICTMTA_SAFEPATH_H
#define STRICTMTA_SAFEPATH_H

#include <stddef.h>
#include <sys/stat.h>

#include "buf.h"

/* Nonzero when st (of a folder) says only root can change its entries. */
int safepath_dir_trusted(const struct stat *st);

/*
 * Opens the folder that holds path, which must be absolute, at most
 * PATH_MAX bytes, without "." or ".." components, and not "/" itself.
 * Every folder from "/" down to that one is checked as above when check
 * is nonzero; with check zero only the links are refused. The last
 * component is copied to last (lastlen bytes). Returns the folder's
 * descriptor (O_DIRECTORY, O_CLOEXEC; the caller closes it), or -1 with
 * one line in err naming the folder: "/srv/q: can be changed by others
 * than root (owner uid 1000, mode 0777)", "/srv/q is a symbolic link".
 */
int safepath_open_parent(
    const char *path, int check, char *last, size_t lastlen, buf_t *err);

#endif
