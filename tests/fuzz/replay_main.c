/*
 * replay_main - runs a fuzz target over every file of a corpus folder, so
 * that the seeds (and every crash ever found, once added) are checked in
 * the ordinary test run without libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *data = NULL;
	size_t len = 0, alloc = 0, n;

	if (fp == NULL) {
		perror(path);
		return -1;
	}
	do {
		if (len == alloc) {
			alloc = alloc ? alloc * 2 : 4096;
			if ((data = realloc(data, alloc)) == NULL)
				abort();
		}
		n = fread(data + len, 1, alloc - len, fp);
		len += n;
	} while (n > 0);
	fclose(fp);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	return 0;
}

int
main(int argc, char **argv)
{
	int i, count = 0;

	for (i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (d == NULL) {
			if (run_file(argv[i]) < 0)
				return 1;
			count++;
			continue;
		}
		while ((e = readdir(d)) != NULL) {
			char path[4096];

			if (e->d_name[0] == '.')
				continue;
			snprintf(
			    path, sizeof(path), "%s/%s", argv[i], e->d_name);
			if (run_file(path) < 0)
				return 1;
			count++;
		}
		closedir(d);
	}
	/* An empty corpus proves nothing: fail so that it is noticed. */
	if (count == 0) {
		fprintf(stderr, "no corpus files given\n");
		return 1;
	}
	printf("%d passed, 0 failed\n", count);
	return 0;
}
