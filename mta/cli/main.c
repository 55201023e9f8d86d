/*
 * strictmta - the admin command. See docs/strictmta.1.md.
 *
 *   strictmta [-c FILE] queue list|show|delete|hold|release|flush|stats ...
 *   strictmta [-c FILE] config check|doc|print
 *
 * Queue commands are requests to the running daemon over its control
 * socket; the daemon formats the answer and this program prints it.
 * Exit codes (sysexits.h): 0 done, 1 the daemon refused the request,
 * 64 usage, 75 daemon not running, 77 permission denied, 78 config error.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "mta/util/buf.h"
#include "mta/util/config.h"
#include "mta/util/qid.h"

#define DEFAULT_CONFIG "/etc/strictmta/main.cf"
#define EX_FAIL 1
#define EX_USAGE_ 64
#define EX_TEMPFAIL_ 75
#define EX_NOPERM_ 77
#define EX_CONFIG_ 78

static const char usage_text[] =
    "usage: strictmta [-c config_file] command\n"
    "  queue list [--json]          list queued messages (like mailq)\n"
    "  queue show ID [--json]       one message: envelope and header\n"
    "  queue delete ID... | --all   remove messages\n"
    "  queue hold ID...             keep messages from delivery\n"
    "  queue release ID...          release held messages\n"
    "  queue flush [ID...]          retry deferred mail now\n"
    "  queue stats [--json]         queue and daemon counters\n"
    "  config check                 validate the configuration\n"
    "  config print                 print every parameter's value\n"
    "  config doc                   print the parameter reference "
    "(Markdown)\n"
    "  version                      print the version\n"
    "The configuration is -c FILE, else $STRICTMTA_CONFIG, else " DEFAULT_CONFIG
    ".\n";

static void
usage(const char *why)
{
	if (why)
		fprintf(stderr, "strictmta: %s\n", why);
	fputs(usage_text, stderr);
	exit(EX_USAGE_);
}

/*
 * Loads the configuration. A missing default file means the defaults (so
 * that queue commands work on a bare install); a file named by -c or the
 * environment must exist.
 */
static struct config *
load_config(const char *path, int explicit_path)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(4096);

	if (!explicit_path && access(path, F_OK) < 0 && errno == ENOENT) {
		buf_free(err);
		return cfg;
	}
	if (config_load(cfg, path, err) < 0) {
		fprintf(stderr, "strictmta: %s\n", buf_data(err));
		exit(EX_CONFIG_);
	}
	buf_free(err);
	return cfg;
}

static int
cmd_config(const char *path, int explicit_path, int argc, char **argv)
{
	struct config *cfg;

	if (argc != 1)
		usage("config: expected check, print or doc");
	if (strcmp(argv[0], "doc") == 0) {
		config_doc_markdown(stdout);
		return 0;
	}
	if (strcmp(argv[0], "check") == 0) {
		/* Like the daemon: the file must exist. */
		cfg = load_config(path, 1);
		printf("%s: configuration OK\n", path);
		config_free(cfg);
		return 0;
	}
	if (strcmp(argv[0], "print") == 0) {
		cfg = load_config(path, explicit_path);
		config_print(cfg, stdout, 0);
		config_free(cfg);
		return 0;
	}
	usage("config: expected check, print or doc");
	return EX_USAGE_;
}

/* Upper-cases an ID typed in lower case; exits on anything else. */
static void
check_qid(char *s)
{
	char *p;

	for (p = s; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	if (!qid_valid(s)) {
		fprintf(stderr,
		    "strictmta: '%s' is not a queue ID (16 hex "
		    "digits)\n",
		    s);
		exit(EX_USAGE_);
	}
}

static int
cmd_queue(const char *path, int explicit_path, int argc, char **argv)
{
	static const struct {
		const char *name;
		int json_ok, all_ok, min_ids, max_ids;
	} cmds[] = {
	    {"list", 1, 0, 0, 0},
	    {"show", 1, 0, 1, 1},
	    {"delete", 0, 1, 1, -1},
	    {"hold", 0, 0, 1, -1},
	    {"release", 0, 0, 1, -1},
	    {"flush", 0, 0, 0, -1},
	    {"stats", 1, 0, 0, 0},
	};
	buf_t *req, *reply, *err;
	struct config *cfg;
	size_t c, ncmd = sizeof(cmds) / sizeof(cmds[0]);
	int i, nids = 0, all = 0, r;

	if (argc < 1)
		usage("queue: expected a command");
	for (c = 0; c < ncmd; c++)
		if (strcmp(argv[0], cmds[c].name) == 0)
			break;
	if (c == ncmd)
		usage("queue: unknown command");
	req = buf_new(CONTROL_REQUEST_MAX);
	buf_puts(req, cmds[c].name);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && cmds[c].json_ok) {
			/* passed on as is */
		} else if (strcmp(argv[i], "--all") == 0 && cmds[c].all_ok) {
			all = 1;
		} else if (argv[i][0] == '-') {
			usage("queue: unknown option");
		} else {
			check_qid(argv[i]);
			nids++;
		}
		buf_putc(req, ' ');
		buf_puts(req, argv[i]);
	}
	if (all && nids)
		usage("queue delete: give queue IDs or --all, not both");
	if ((nids < cmds[c].min_ids && !all) ||
	    (cmds[c].max_ids >= 0 && nids > cmds[c].max_ids))
		usage(cmds[c].max_ids == 1 ? "queue show: give one queue ID"
		      : cmds[c].max_ids == 0
		          ? "queue: this command takes no queue ID"
		          : "queue: give at least one queue ID");
	if (buf_error(req) || buf_len(req) > CONTROL_REQUEST_MAX)
		usage("queue: too many queue IDs in one command");

	cfg = load_config(path, explicit_path);
	reply = buf_new(0);
	err = buf_new(8192);
	r = control_call(cfg->queue_directory, buf_data(req), reply, err);
	fwrite(buf_data(reply), 1, buf_len(reply), stdout);
	if (r != CONTROL_OK)
		fprintf(stderr, "strictmta: %s\n", buf_data(err));
	buf_free(req);
	buf_free(reply);
	buf_free(err);
	config_free(cfg);
	if (fflush(stdout) != 0)
		return EX_FAIL;
	switch (r) {
	case CONTROL_OK:
		return 0;
	case CONTROL_ENOCONN:
	case CONTROL_EIO:
		return EX_TEMPFAIL_;
	case CONTROL_EDENIED:
		return EX_NOPERM_;
	default:
		return EX_FAIL;
	}
}

int
main(int argc, char **argv)
{
	const char *path = getenv("STRICTMTA_CONFIG");
	char **words = calloc((size_t)argc + 1, sizeof(char *));
	int i, nwords = 0, explicit_path = path && *path;

	if (words == NULL)
		return EX_FAIL;
	/* -c may come before or after the command words. */
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 >= argc)
				usage("-c needs a file name");
			path = argv[++i];
			explicit_path = 1;
		} else if (strncmp(argv[i], "-c", 2) == 0) {
			path = argv[i] + 2;
			explicit_path = 1;
		} else if (strcmp(argv[i], "-h") == 0 ||
		           strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			words[nwords++] = argv[i];
		}
	}
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;
	if (nwords == 0)
		usage(NULL);
	if (strcmp(words[0], "queue") == 0)
		i = cmd_queue(path, explicit_path, nwords - 1, words + 1);
	else if (strcmp(words[0], "config") == 0)
		i = cmd_config(path, explicit_path, nwords - 1, words + 1);
	else if (strcmp(words[0], "version") == 0 && nwords == 1) {
		printf("strictmta %s\n", STRICTMTA_VERSION);
		i = 0;
	} else
		usage("unknown command");
	free(words);
	return i;
}
