/*
 * sts_probe - asks the MTA-STS module for the policy of each domain given,
 * with the daemon's resolver and cache code, and prints one JSON object a
 * domain. For the MTA-STS integration tests and for postmasters checking
 * a domain by hand:
 *
 *   sts_probe -c CONFIG -C CACHE_FILE [-r] [-f] DOMAIN...
 *     -r  refresh: fetch even when the cached policy is fresh
 *     -f  forget: remove the cached policy first
 *     -s  show the cache afterwards (JSON)
 *     -a  ask again once the first answers are in (same process)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "mta/util/config.h"
#include "mta/util/log.h"
#include "policy/sts/sts.h"
#include "resolver/resolver.h"

static int pending;
static struct event_base *base;

static void
json_str(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		if ((unsigned char)*s < 0x20)
			printf("\\u%04x", (unsigned char)*s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void
on_verdict(void *arg, const struct sts_verdict *v)
{
	size_t i;

	(void)arg;
	printf("{\"domain\": ");
	json_str(v->domain);
	printf(", \"policy\": %s, \"source\": ", v->policy ? "true" : "false");
	json_str(v->source);
	printf(", \"id\": ");
	json_str(v->id);
	printf(", \"note\": ");
	json_str(v->note ? v->note : "");
	if (v->policy) {
		printf(", \"mode\": \"%s\", \"max_age\": %ld, \"mx\": [",
		    sts_mode_name(v->policy->mode), v->policy->max_age);
		for (i = 0; i < v->policy->nmx; i++) {
			if (i)
				printf(", ");
			json_str(v->policy->mx[i]);
		}
		printf("]");
	}
	printf("}\n");
	fflush(stdout);
	if (--pending == 0)
		event_base_loopexit(base, NULL);
}

int
main(int argc, char **argv)
{
	const char *config_path = NULL, *cache_path = NULL;
	struct config *cfg = config_new();
	buf_t *err = buf_new(4096), *out;
	int c, refresh = 0, forget = 0, show = 0, again = 0, i, round;
	struct timeval limit = {90, 0};
	resolver_t *res;
	sts_t *sts;

	while ((c = getopt(argc, argv, "c:C:rfsa")) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			cache_path = optarg;
			break;
		case 'r':
			refresh = 1;
			break;
		case 'f':
			forget = 1;
			break;
		case 's':
			show = 1;
			break;
		case 'a':
			again = 1;
			break;
		default:
			fprintf(stderr, "usage: sts_probe -c CONFIG -C CACHE "
			                "[-r] [-f] [-s] DOMAIN...\n");
			return 64;
		}
	}
	if (cache_path == NULL) {
		fprintf(stderr, "sts_probe: -C CACHE is required\n");
		return 64;
	}
	log_open("sts_probe", "-");
	if (config_path && config_load(cfg, config_path, err) < 0) {
		fprintf(stderr, "sts_probe: %s\n", buf_data(err));
		return 78;
	}
	evthread_use_pthreads();
	base = event_base_new();
	if ((res = resolver_new(base, cfg, err)) == NULL ||
	    (sts = sts_new(base, cfg, res, cache_path, err)) == NULL) {
		fprintf(stderr, "sts_probe: %s\n", buf_data(err));
		return 78;
	}
	for (round = 0; round <= again; round++) {
		for (i = optind; i < argc; i++) {
			if (forget && round == 0)
				sts_forget(sts, argv[i]);
			pending++;
			if (refresh)
				sts_refresh(sts, argv[i], on_verdict, NULL);
			else
				sts_get(sts, argv[i], on_verdict, NULL);
		}
		if (pending) {
			event_base_loopexit(base, &limit);
			event_base_dispatch(base);
		}
		if (pending)
			break;
	}
	if (show) {
		out = buf_new(0);
		sts_describe(sts, NULL, 1, out);
		fputs(buf_data(out), stdout);
		buf_free(out);
	}
	sts_free(sts);
	resolver_free(res);
	event_base_free(base);
	config_free(cfg);
	buf_free(err);
	return pending ? 1 : 0;
}
