/*
 * config - the daemon's configuration: a Postfix-like `name = value` file
 * checked against the table in config_table.h.
 *
 * A config is owned by whoever called config_new() and freed with
 * config_free(); string fields point into it and live as long as it does.
 * Modules read fields directly (cfg->message_size_limit).
 */
#ifndef STRICTMTA_CONFIG_H
#define STRICTMTA_CONFIG_H

#include <stdio.h>

#include "buf.h"

#define CFG_T_STR char *
#define CFG_T_LIST char *
#define CFG_T_INT long long
#define CFG_T_SIZE long long
#define CFG_T_TIME long long
#define CFG_T_BOOL int

struct config {
#define CFG(name, type, def, min, max, choices, doc) CFG_T_##type name;
#include "config_table.h"
#undef CFG
	char *source; /* file it was read from, or NULL */
};

/* A config holding every default. */
struct config *config_new(void);
void config_free(struct config *); /* NULL is a no-op */

/*
 * Reads path over the current values. On error returns -1 with
 * "FILE:LINE: KEY: what is wrong" in err and leaves cfg partly updated (the
 * caller exits). Expands $name references in text values when done.
 */
int config_load(struct config *, const char *path, buf_t *err);
/*
 * The same from an open descriptor, for a caller that has checked what fd
 * is (sendmail's -C file); name is used in messages and as cfg->source.
 * fd is the config's to close, on success and on error alike.
 */
int config_load_fd(struct config *, int fd, const char *name, buf_t *err);
/* Sets one parameter by name (from a file line or `-o name=value`). */
int config_set(
    struct config *, const char *name, const char *value, buf_t *err);
/* Expands $name and ${name} in text values; called by config_load. */
int config_expand(struct config *, buf_t *err);
/* Prints "name = value" for every parameter (all, or only non-defaults). */
void config_print(const struct config *, FILE *, int only_changed);
/* Writes the documentation table in Markdown (docs/config.md). */
void config_doc_markdown(FILE *);

/*
 * Pure line parser, for config_load and the fuzz target: splits
 * "name = value" (len bytes, no newline) into name and value slices with
 * surrounding blanks removed. Returns NULL or an error string.
 */
const char *config_parse_assignment(const char *line, size_t len,
    const char **name, size_t *namelen, const char **value, size_t *valuelen);
/* Parses "30", "30s", "5m", "2h", "5d", "1w" to seconds; -1 on error. */
long long config_parse_time(const char *);

/*
 * Iterates the items of a LIST value: copies the next item into out and
 * advances *cursor; returns 0 at the end, -1 if an item is longer than
 * outlen - 1.
 */
int config_list_next(const char **cursor, char *out, size_t outlen);

#endif
