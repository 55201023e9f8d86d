/*
 * check - the unit tests' few assertions. Each failed CHECK prints where
 * and goes on; check_done() prints "N passed, N failed" and gives the exit
 * status for main().
 */
#ifndef STRICTMTA_CHECK_H
#define STRICTMTA_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (cond) {                                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
			    __LINE__, #cond);                                  \
		}                                                              \
	} while (0)

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *check_a_ = (a), *check_b_ = (b);                   \
		if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0) { \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
			    "%s:%d: CHECK_STR failed: %s is \"%s\", "          \
			    "expected \"%s\"\n",                               \
			    __FILE__, __LINE__, #a,                            \
			    check_a_ ? check_a_ : "(null)",                    \
			    check_b_ ? check_b_ : "(null)");                   \
		}                                                              \
	} while (0)

#define CHECK_INT(a, b)                                                        \
	do {                                                                   \
		long long check_a_ = (long long)(a),                           \
		          check_b_ = (long long)(b);                           \
		if (check_a_ == check_b_) {                                    \
			check_passed++;                                        \
		} else {                                                       \
			check_failed++;                                        \
			fprintf(stderr,                                        \
			    "%s:%d: CHECK_INT failed: %s is %lld, "            \
			    "expected %lld\n",                                 \
			    __FILE__, __LINE__, #a, check_a_, check_b_);       \
		}                                                              \
	} while (0)

static inline int
check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
