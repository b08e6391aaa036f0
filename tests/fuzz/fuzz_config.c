/*
 * fuzz_config: arbitrary bytes as smcached.conf, through config_load_buffer
 * (the same reader, libinih and key table the agent runs at start-up).
 * Beyond "no crash":
 *   - the verdict, the message and the effective configuration are
 *     deterministic;
 *   - a rejection leaves the config zeroed and carries a message that starts
 *     with the file name and has no control bytes (it goes to a terminal);
 *   - an accepted file round-trips: the keys config_describe() shows with a
 *     non-default value, written back as INI, load to the same configuration.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz.h"

#define CHECK(cond) do {							\
	if (!(cond)) {								\
		fprintf(stderr, "fuzz_config: %s:%d: check failed: %s\n",	\
		    __FILE__, __LINE__, #cond);					\
		abort();							\
	}									\
} while (0)

#define NAME "fuzz.conf"
/* The reader's line limit (config.h): a longer round-trip line is skipped. */
#define LINE_MAX_CHARS 199

static char *
describe(const struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	CHECK(f != NULL);
	config_describe(cfg, f);
	CHECK(fclose(f) == 0);
	CHECK(buf != NULL);
	return buf;
}

static bool
all_zero(const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		if (b[i] != 0)
			return false;
	}
	return true;
}

/*
 * "section.key = value" lines that differ from the defaults' (given with a
 * leading newline) become an INI file. Returns NULL when a line would be too
 * long for the reader.
 */
static char *
to_ini(const char *desc, const char *defaults)
{
	char *out = NULL, *copy = strdup(desc), *line, *save = NULL;
	size_t len = 0;
	bool too_long = false;
	FILE *f = open_memstream(&out, &len);

	CHECK(f != NULL && copy != NULL);
	for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char probe[1024];
		const char *dot = strchr(line, '.'), *eq = strstr(line, " = ");

		CHECK(dot != NULL && eq != NULL && dot < eq);
		/* defaults starts with '\n' too, so this matches whole lines only. */
		snprintf(probe, sizeof(probe), "\n%s\n", line);
		if (strstr(defaults, probe) != NULL)
			continue;
		if (strlen(dot + 1) > LINE_MAX_CHARS)
			too_long = true;
		fprintf(f, "[%.*s]\n%s\n", (int)(dot - line), line, dot + 1);
	}
	CHECK(fclose(f) == 0);
	free(copy);
	if (too_long) {
		free(out);
		return NULL;
	}
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config a, b, c;
	char err_a[CONFIG_ERR_SIZE], err_b[CONFIG_ERR_SIZE], err_c[CONFIG_ERR_SIZE];
	char *desc_a, *desc_b, *desc_c, *defaults, *ini;
	int rc_a, rc_b;

	memset(err_a, 'x', sizeof(err_a));
	rc_a = config_load_buffer(&a, data, size, NAME, err_a, sizeof(err_a));
	rc_b = config_load_buffer(&b, data, size, NAME, err_b, sizeof(err_b));
	CHECK(rc_a == rc_b);
	if (rc_a != 0) {
		CHECK(rc_a == -1);
		CHECK(all_zero(&a, sizeof(a)) && all_zero(&b, sizeof(b)));
		CHECK(memchr(err_a, '\0', sizeof(err_a)) != NULL);
		CHECK(strcmp(err_a, err_b) == 0);
		CHECK(strncmp(err_a, NAME ":", strlen(NAME ":")) == 0);
		CHECK(strlen(err_a) > strlen(NAME ":"));
		for (const char *p = err_a; *p != '\0'; p++)
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
		return 0;
	}
	desc_a = describe(&a);
	desc_b = describe(&b);
	CHECK(strcmp(desc_a, desc_b) == 0);
	CHECK(a.file_path != NULL);

	CHECK(config_defaults(&c) == 0);
	desc_c = describe(&c);
	config_free(&c);
	CHECK(asprintf(&defaults, "\n%s", desc_c) > 0);
	free(desc_c);
	if ((ini = to_ini(desc_a, defaults)) != NULL) {
		if (config_load_string(&c, ini, "round-trip.conf", err_c, sizeof(err_c)) != 0) {
			fprintf(stderr, "fuzz_config: round trip failed: %s\n--- ini:\n%s", err_c, ini);
			abort();
		}
		desc_c = describe(&c);
		if (strcmp(desc_a, desc_c) != 0) {
			fprintf(stderr, "fuzz_config: round trip differs:\n%s---\n%s", desc_a, desc_c);
			abort();
		}
		free(desc_c);
		config_free(&c);
		free(ini);
	}
	free(defaults);
	free(desc_a);
	free(desc_b);
	config_free(&a);
	config_free(&b);
	CHECK(all_zero(&a, sizeof(a)));
	return 0;
}
