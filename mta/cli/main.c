/*
 * strictmta - the admin command. See docs/strictmta.1.md.
 *
 *   strictmta [-c FILE] queue list|show|delete|hold|release|flush|stats ...
 *   strictmta [-c FILE] policy list|show|refresh|forget [DOMAIN] [--json]
 *   strictmta [-c FILE] exception add|list|remove ...
 *   strictmta [-c FILE] config check|doc|print
 *
 * Queue commands are requests to the running daemon over its control
 * socket; the daemon formats the answer and this program prints it.
 * Exit codes (sysexits.h): 0 done, 1 the daemon refused the request,
 * 64 usage, 75 daemon not running, 77 permission denied, 78 config error.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
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
    "  queue show ID --content      the stored message itself\n"
    "  queue delete ID... | --all   remove messages\n"
    "  queue hold ID...             keep messages from delivery\n"
    "  queue release ID...          release held messages\n"
    "  queue flush [ID...]          retry deferred mail now\n"
    "  queue stats [--json]         queue and daemon counters\n"
    "  queue checkpoint             checkpoint and compact the queue now\n"
    "  policy list [--json]         cached MTA-STS policies\n"
    "  policy show DOMAIN [--json]  one domain's cached policy, id, age\n"
    "  policy refresh DOMAIN [--json]  fetch the policy now\n"
    "  policy forget DOMAIN         drop the cached policy\n"
    "  exception add DOMAIN --level LEVEL --ttl DURATION --reason TEXT\n"
    "                               override DOMAIN's TLS level until "
    "expiry\n"
    "  exception list [--json]      exceptions in force\n"
    "  exception remove DOMAIN      end an exception now\n"
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

/*
 * What the daemon checks at start beyond the file's syntax: the accounts
 * exist and settings that only make sense together. Returns the number of
 * problems, each printed as "FILE: what".
 */
/* Every file strictmtad reads at start (as root, before it drops to
 * mail_owner): a name that cannot be opened stops the daemon, so it is
 * named here first. */
static int
check_files(const char *path, const struct config *cfg)
{
	const struct {
		const char *name, *value;
	} files[] = {
	    {"smtpd_tls_cert_file", cfg->smtpd_tls_cert_file},
	    {"smtpd_tls_key_file", cfg->smtpd_tls_key_file},
	    {"smtpd_sasl_password_file", cfg->smtpd_sasl_password_file},
	    {"transport_maps", cfg->transport_maps},
	    {"smtp_tls_CAfile", cfg->smtp_tls_CAfile},
	    {"mta_sts_CAfile", cfg->mta_sts_CAfile},
	    {"dnssec_trust_anchor_file", cfg->dnssec_trust_anchor_file},
	};
	size_t i;
	int bad = 0;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *fp;

		if (files[i].value == NULL || files[i].value[0] == '\0')
			continue;
		if ((fp = fopen(files[i].value, "re")) != NULL) {
			fclose(fp);
			continue;
		}
		fprintf(stderr, "strictmta: %s: %s: %s: %s\n", path,
		    files[i].name, files[i].value, strerror(errno));
		bad++;
	}
	return bad;
}

static int
check_semantics(const char *path, const struct config *cfg)
{
	int bad = 0;

	if (cfg->queue_directory[0] != '/') {
		fprintf(stderr,
		    "strictmta: %s: queue_directory: '%s' is not an "
		    "absolute path\n",
		    path, cfg->queue_directory);
		bad++;
	}
	if (getpwnam(cfg->mail_owner) == NULL) {
		fprintf(stderr,
		    "strictmta: %s: mail_owner: no such user '%s'\n", path,
		    cfg->mail_owner);
		bad++;
	}
	if (getgrnam(cfg->setgid_group) == NULL) {
		fprintf(stderr,
		    "strictmta: %s: setgid_group: no such group '%s'\n", path,
		    cfg->setgid_group);
		bad++;
	}
	if (cfg->admin_group[0] && getgrnam(cfg->admin_group) == NULL) {
		fprintf(stderr,
		    "strictmta: %s: admin_group: no such group '%s'\n", path,
		    cfg->admin_group);
		bad++;
	}
	if (cfg->smtps_listen[0] && !cfg->smtpd_tls_cert_file[0]) {
		fprintf(stderr,
		    "strictmta: %s: smtps_listen is set but "
		    "smtpd_tls_cert_file is not\n",
		    path);
		bad++;
	}
	bad += check_files(path, cfg);
	return bad;
}

static int
cmd_config(const char *path, int explicit_path, int argc, char **argv)
{
	struct config *cfg;

	if (argc != 1)
		usage("config: expected check, print or doc");
	if (strcmp(argv[0], "doc") == 0) {
		/* docs/config.md is exactly this output. */
		fputs("# strictmta configuration parameters\n\n"
		      "The file is `/etc/strictmta/main.cf` (or `strictmtad -c "
		      "FILE`): one `name = value` per line, `#` comments, "
		      "and lines starting with white space continue the one "
		      "before. `$name` and `${name}` refer to other text "
		      "parameters. Times take a unit: `s`, `m`, `h`, `d`, `w` "
		      "(seconds without one). Where Postfix has the same "
		      "parameter, the name and meaning are Postfix's.\n\n"
		      "Check a file with `strictmta config check -c FILE`; "
		      "print the values in effect with `strictmtad -n`. This "
		      "page is generated by `strictmta config doc`.\n\n",
		    stdout);
		config_doc_markdown(stdout);
		return 0;
	}
	if (strcmp(argv[0], "check") == 0) {
		int bad;

		/* Like the daemon: the file must exist. */
		cfg = load_config(path, 1);
		bad = check_semantics(path, cfg);
		if (!bad)
			printf("%s: configuration OK\n", path);
		config_free(cfg);
		return bad ? EX_CONFIG_ : 0;
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

/* Sends one control request; prints the reply; returns the exit code. */
static int
send_request(const char *path, int explicit_path, buf_t *req)
{
	struct config *cfg = load_config(path, explicit_path);
	buf_t *reply = buf_new(0), *err = buf_new(8192);
	int r;

	r = control_call(cfg->queue_directory, buf_data(req), reply, err);
	fwrite(buf_data(reply), 1, buf_len(reply), stdout);
	if (r != CONTROL_OK)
		fprintf(stderr, "strictmta: %s\n", buf_data(err));
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
	    {"checkpoint", 0, 0, 0, 0},
	};
	buf_t *req;
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
		} else if (strcmp(argv[i], "--content") == 0 &&
		           strcmp(cmds[c].name, "show") == 0) {
			/* show --content: passed on as is */
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

	r = send_request(path, explicit_path, req);
	buf_free(req);
	return r;
}

/*
 * strictmta policy list|show DOMAIN|refresh DOMAIN|forget DOMAIN [--json]:
 * the daemon's MTA-STS policy cache (RFC 8461 5.1).
 */
static int
cmd_policy(const char *path, int explicit_path, int argc, char **argv)
{
	static const struct {
		const char *name;
		int json_ok, needs_domain;
	} cmds[] = {
	    {"list", 1, 0},
	    {"show", 1, 1},
	    {"refresh", 1, 1},
	    {"forget", 0, 1},
	};
	size_t c, ncmd = sizeof(cmds) / sizeof(cmds[0]);
	const char *domain = NULL;
	int i, json = 0, r;
	buf_t *req;

	if (argc < 1)
		usage("policy: expected list, show, refresh or forget");
	for (c = 0; c < ncmd; c++)
		if (strcmp(argv[0], cmds[c].name) == 0)
			break;
	if (c == ncmd)
		usage("policy: expected list, show, refresh or forget");
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && cmds[c].json_ok)
			json = 1;
		else if (argv[i][0] == '-')
			usage("policy: unknown option");
		else if (cmds[c].needs_domain && domain == NULL &&
		         strlen(argv[i]) < 254)
			domain = argv[i];
		else
			usage("policy: unexpected argument");
	}
	if (cmds[c].needs_domain && domain == NULL)
		usage("policy: give a domain");
	req = buf_new(CONTROL_REQUEST_MAX);
	buf_printf(req, "policy-%s", cmds[c].name);
	if (domain)
		buf_printf(req, " %s", domain);
	if (json)
		buf_puts(req, " --json");
	r = send_request(path, explicit_path, req);
	buf_free(req);
	return r;
}

/*
 * strictmta exception add DOMAIN --level LEVEL --ttl DURATION --reason TEXT
 * | list [--json] | remove DOMAIN: operator overrides of a domain's TLS
 * level that expire (policy/verdict/exception.h). The daemon checks the
 * words; this only puts them in its request syntax.
 */
static int
cmd_exception(const char *path, int explicit_path, int argc, char **argv)
{
	const char *domain = NULL, *level = NULL, *ttl = NULL, *reason = NULL;
	int i, json = 0, r;
	buf_t *req;

	if (argc < 1 ||
	    (strcmp(argv[0], "add") != 0 && strcmp(argv[0], "list") != 0 &&
	        strcmp(argv[0], "remove") != 0))
		usage("exception: expected add, list or remove");
	for (i = 1; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--json") == 0 &&
		    strcmp(argv[0], "list") == 0) {
			json = 1;
			continue;
		}
		if (strcmp(argv[i], "--level") == 0)
			slot = &level;
		else if (strcmp(argv[i], "--ttl") == 0)
			slot = &ttl;
		else if (strcmp(argv[i], "--reason") == 0)
			slot = &reason;
		if (slot != NULL && strcmp(argv[0], "add") == 0) {
			if (i + 1 >= argc)
				usage("exception: option needs a value");
			*slot = argv[++i];
		} else if (argv[i][0] != '-' && domain == NULL &&
		           strcmp(argv[0], "list") != 0 &&
		           strlen(argv[i]) < 254) {
			domain = argv[i];
		} else {
			usage("exception: unexpected argument");
		}
	}
	if (strcmp(argv[0], "list") != 0 && domain == NULL)
		usage("exception: give a domain");
	if (strcmp(argv[0], "add") == 0 &&
	    (level == NULL || ttl == NULL || reason == NULL || !*reason))
		usage("exception add: --level, --ttl and --reason are needed");
	req = buf_new(CONTROL_REQUEST_MAX);
	if (strcmp(argv[0], "add") == 0) {
		if (strlen(level) + strlen(ttl) + strlen(reason) > 400) {
			buf_free(req);
			usage("exception add: arguments too long");
		}
		buf_printf(req, "exception-add %s %s %s %s", domain, level, ttl,
		    reason);
	} else if (strcmp(argv[0], "remove") == 0) {
		buf_printf(req, "exception-remove %s", domain);
	} else {
		buf_puts(
		    req, json ? "exception-list --json" : "exception-list");
	}
	r = send_request(path, explicit_path, req);
	buf_free(req);
	return r;
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
	else if (strcmp(words[0], "policy") == 0)
		i = cmd_policy(path, explicit_path, nwords - 1, words + 1);
	else if (strcmp(words[0], "exception") == 0)
		i = cmd_exception(path, explicit_path, nwords - 1, words + 1);
	else if (strcmp(words[0], "config") == 0)
		i = cmd_config(path, explicit_path, nwords - 1, words + 1);
	else if (strcmp(words[0], "version") == 0 && nwords == 1) {
		printf("strictmta %s (commit %s)\n", STRICTMTA_VERSION,
		    STRICTMTA_COMMIT);
		i = 0;
	} else
		usage("unknown command");
	free(words);
	return i;
}
