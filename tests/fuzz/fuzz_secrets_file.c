/*
 * fuzz_secrets_file: arbitrary bytes as the content of a `file` backend
 * secrets file, through the same parser and validator the backend runs on
 * every request. Beyond "no crash": the verdict is deterministic, an
 * accepted file has a plausible secret count, and a rejection carries a
 * non-empty message of printable ASCII (it goes to logs and clients).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_file.h"
#include "fuzz.h"

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz_secrets_file: %s:%d: check failed: %s\n",	\
		    __FILE__, __LINE__, #cond);					\
		abort();							\
	}									\
} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err1[256], err2[256];
	size_t count1 = 0, count2 = 0;
	int rc1, rc2;

	memset(err1, 'x', sizeof(err1));
	rc1 = backend_file_validate_buffer(data, size, &count1, err1, sizeof(err1));
	rc2 = backend_file_validate_buffer(data, size, &count2, err2, sizeof(err2));
	CHECK(rc1 == rc2);
	if (rc1 == 0) {
		CHECK(count1 == count2);
		/* Each secret takes at least {"Name":"x"} in the file. */
		CHECK(count1 <= size / 12);
		return 0;
	}
	CHECK(rc1 == -1);
	CHECK(memchr(err1, '\0', sizeof(err1)) != NULL);
	CHECK(strcmp(err1, err2) == 0);
	CHECK(err1[0] != '\0');
	for (const char *p = err1; *p != '\0'; p++)
		CHECK(*p >= 0x20 && *p < 0x7f);
	return 0;
}
