/*
 * strictmtad - the mail transfer agent daemon. See docs/strictmtad.8.md.
 *
 *   strictmtad [-c FILE] [-d | -f] [-n] [-v] [-o name=value]...
 *
 * This file only reads the command line and the configuration; the work
 * is in daemon.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "mta/util/log.h"
#include "mta/util/xalloc.h"

#define DEFAULT_CONFIG "/etc/strictmta/main.cf"
#define MAX_OVERRIDES 256

static void
usage(void)
{
	fprintf(stderr,
	    "usage: strictmtad [-c config_file] [-d | -f] [-n] [-v] [-V] "
	    "[-o name=value]...\n"
	    "  -c FILE  configuration (default " DEFAULT_CONFIG
	    ", or $STRICTMTA_CONFIG)\n"
	    "  -d       detach and run in the background\n"
	    "  -f       stay in the foreground (the default)\n"
	    "  -n       print the effective configuration and exit\n"
	    "  -o N=V   override one parameter\n"
	    "  -v       verbose logging\n"
	    "  -V       print the version and the commit, and exit\n");
	exit(DAEMON_EX_USAGE);
}

int
main(int argc, char **argv)
{
	const char *path = getenv("STRICTMTA_CONFIG");
	const char *overrides[MAX_OVERRIDES];
	struct daemon_opts opts = {0, 0};
	size_t noverrides = 0, i;
	int c, print = 0, code;
	struct config *cfg;
	daemon_t *d;
	buf_t *err;

	log_open("strictmtad", "-");
	while ((c = getopt(argc, argv, "c:dfno:vV")) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'd':
			opts.daemonize = 1;
			break;
		case 'f':
			opts.daemonize = 0;
			break;
		case 'n':
			print = 1;
			break;
		case 'o':
			if (noverrides >= MAX_OVERRIDES)
				log_fatal(DAEMON_EX_USAGE, "too many -o");
			overrides[noverrides++] = optarg;
			break;
		case 'v':
			opts.verbose++;
			break;
		case 'V':
			printf("strictmtad %s (commit %s)\n", STRICTMTA_VERSION,
			    STRICTMTA_COMMIT);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (path == NULL || *path == '\0')
		path = DEFAULT_CONFIG;

	cfg = config_new();
	err = buf_new(4096);
	if (config_load(cfg, path, err) < 0)
		log_fatal(DAEMON_EX_CONFIG, "%s", buf_data(err));
	for (i = 0; i < noverrides; i++) {
		const char *eq = strchr(overrides[i], '=');
		char *name;

		if (eq == NULL)
			log_fatal(DAEMON_EX_USAGE, "-o %s: expected name=value",
			    overrides[i]);
		name = xstrndup(overrides[i], (size_t)(eq - overrides[i]));
		if (config_set(cfg, name, eq + 1, err) < 0)
			log_fatal(DAEMON_EX_CONFIG, "-o: %s", buf_data(err));
		free(name);
	}
	if (noverrides && config_expand(cfg, err) < 0)
		log_fatal(DAEMON_EX_CONFIG, "%s", buf_data(err));
	if (print) {
		config_print(cfg, stdout, 0);
		config_free(cfg);
		buf_free(err);
		return 0;
	}

	if (log_open(cfg->syslog_name, cfg->maillog_file) < 0)
		log_fatal(DAEMON_EX_CONFIG, "maillog_file: %s: cannot open",
		    cfg->maillog_file);
	log_set_verbose(opts.verbose);
	if ((d = daemon_new(cfg, &opts, &code, err)) == NULL)
		log_fatal(code, "%s", buf_data(err));
	code = daemon_run(d);
	daemon_free(d);
	config_free(cfg);
	buf_free(err);
	log_close();
	return code;
}
