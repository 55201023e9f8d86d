/*
 * resolver_probe - one lookup through the resolver module, printed.
 *
 * usage: resolver_probe [-v] [-o name=value]... [-n count] [-w seconds]
 *                       CONFIG NAME TYPE
 *
 * CONFIG is a strictmta config file ("-" for the defaults); -o overrides
 * one parameter. TYPE is A, AAAA, MX, TXT or TLSA. -n starts count
 * identical lookups at once (they must share one query); -w repeats the
 * lookup after that many seconds (a cache hit, with a smaller TTL).
 *
 * Output, one answer per block (the same for each of the -n lookups, so
 * only the first is printed):
 *   rcode=ok dnssec=secure ttl=3600 canonical=x.test cname_secure=1 rrs=2
 *   MX 10 mx1.secure.test
 *   why=...                      (only with a reason)
 * and at the end
 *   stats lookups=N cache_hits=N queries=N
 * Exit status: 0 when every lookup was answered, 2 on usage or config
 * errors, 3 when the loop ended without an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "mta/util/buf.h"
#include "mta/util/config.h"
#include "mta/util/log.h"
#include "resolver/resolver.h"

static resolver_t *res;
static struct event_base *base;
static const char *qname;
static int qtype;
static int count = 1, answered, printed, rounds_left;
static long wait_secs = -1;

static void
print_answer(const struct resolver_answer *a)
{
	buf_t *b = buf_new(0);

	resolver_format_answer(a, b);
	fputs(buf_data(b), stdout);
	fflush(stdout);
	buf_free(b);
}

static void start_round(void);

static void
again_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	start_round();
}

static void
answer_cb(void *arg, const struct resolver_answer *a)
{
	(void)arg;
	if (!printed) {
		print_answer(a);
		printed = 1;
	}
	if (++answered < count)
		return;
	if (rounds_left > 0) {
		struct timeval tv = {wait_secs, 0};

		event_base_once(base, -1, EV_TIMEOUT, again_cb, NULL, &tv);
	}
}

static void
start_round(void)
{
	int i;

	rounds_left--;
	answered = printed = 0;
	for (i = 0; i < count; i++)
		resolver_lookup(res, qname, qtype, answer_cb, NULL);
}

static void
usage(void)
{
	fprintf(stderr, "usage: resolver_probe [-v] [-o name=value]... "
	                "[-n count] [-w seconds] CONFIG NAME TYPE\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct config *cfg = config_new();
	buf_t *err = buf_new(1024);
	struct resolver_stats st;
	char *eq;
	int ch;

	log_open("resolver_probe", "-");
	/* Overrides are applied after the file, so remember them. */
	char **over = calloc((size_t)argc, sizeof(char *));
	int nover = 0, i;

	while ((ch = getopt(argc, argv, "vo:n:w:")) != -1) {
		switch (ch) {
		case 'v':
			log_set_verbose(1);
			break;
		case 'o':
			over[nover++] = optarg;
			break;
		case 'n':
			count = atoi(optarg);
			if (count < 1 || count > 100000)
				usage();
			break;
		case 'w':
			wait_secs = atol(optarg);
			if (wait_secs < 0 || wait_secs > 3600)
				usage();
			break;
		default:
			usage();
		}
	}
	if (argc - optind != 3)
		usage();
	if (strcmp(argv[optind], "-") != 0 &&
	    config_load(cfg, argv[optind], err) < 0) {
		fprintf(stderr, "resolver_probe: %s\n", buf_data(err));
		return 2;
	}
	for (i = 0; i < nover; i++) {
		if ((eq = strchr(over[i], '=')) == NULL)
			usage();
		*eq = '\0';
		if (config_set(cfg, over[i], eq + 1, err) < 0) {
			fprintf(stderr, "resolver_probe: %s\n", buf_data(err));
			return 2;
		}
	}
	free(over);
	qname = argv[optind + 1];
	if ((qtype = resolver_type_from_name(argv[optind + 2])) == 0) {
		fprintf(stderr, "resolver_probe: unknown type %s\n",
		    argv[optind + 2]);
		return 2;
	}
	base = event_base_new();
	if ((res = resolver_new(base, cfg, err)) == NULL) {
		fprintf(stderr, "resolver_probe: %s\n", buf_data(err));
		return 2;
	}
	rounds_left = wait_secs >= 0 ? 2 : 1;
	start_round();
	event_base_dispatch(base);
	resolver_get_stats(res, &st);
	printf("stats lookups=%llu cache_hits=%llu queries=%llu\n",
	    (unsigned long long)st.lookups, (unsigned long long)st.cache_hits,
	    (unsigned long long)st.queries);
	resolver_free(res);
	event_base_free(base);
	config_free(cfg);
	buf_free(err);
	return answered == count && rounds_left == 0 ? 0 : 3;
}
