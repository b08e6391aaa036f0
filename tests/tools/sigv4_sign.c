/*
 * sigv4_sign: signs request descriptions read on stdin with agent/sigv4 and
 * prints one Authorization header value per request (for the botocore
 * cross-check in tests/integration/test_sigv4_botocore.py).
 *
 * Input: requests one after another, each a run of "KEY VALUE" lines ended
 * by a line "end". VALUE is the rest of the line after the first space,
 * kept byte for byte (it may be empty or end in spaces).
 *
 *   method POST
 *   path /some/path            request-line path, before '?'
 *   query a=1&b=2              optional, without '?'
 *   region us-east-1
 *   service secretsmanager
 *   date 20150830T123600Z
 *   access-key AKIDEXAMPLE
 *   secret-key SECRET
 *   token TOKEN                optional session token
 *   signed host;x-amz-date     optional: sign only these (default: all headers)
 *   header Name:value          repeatable; value is everything after the first ':'
 *   body-hex 48656c6c6f        optional body, hex
 *   body 5                     optional body: exactly 5 raw bytes follow this line,
 *                              then a newline
 *   payload-hash HASH          optional, instead of hashing the body
 *   end
 *
 * Headers are signed as given: the tool adds none (no X-Amz-Date, no token
 * header). Lines starting with '#' and blank lines between requests are
 * skipped.
 *
 * Output: per request, the Authorization value, or "ERROR <reason>". With -v
 * the canonical request and string to sign go to stderr.
 * Exit status: 0 all signed, 1 some request failed, 2 unreadable input.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sigv4.h"

#define MAX_INPUT	(64u * 1024 * 1024)
#define MAX_ITEMS	256	/* more than SIGV4_MAX_HEADERS, so the cap can be hit */

struct job {
	const char *method, *path, *query, *region, *service, *date;
	const char *access_key, *secret_key, *token, *payload_hash;
	struct sigv4_header headers[MAX_ITEMS];
	size_t header_count;
	const char *signed_names[MAX_ITEMS];
	size_t signed_count;
	bool has_signed;
	const unsigned char *body;
	size_t body_len;
	unsigned char *body_owned;
};

static int verbose;

static void
die(const char *msg, size_t line)
{
	fprintf(stderr, "sigv4_sign: line %zu: %s\n", line, msg);
	exit(2);
}

static unsigned char *
read_all(size_t *len)
{
	unsigned char *buf = NULL, *nbuf;
	size_t cap = 0, n = 0;
	ssize_t r;

	for (;;) {
		if (n + 1 >= cap) {
			cap = cap == 0 ? 65536 : cap * 2;
			if (cap > MAX_INPUT + 1 || (nbuf = realloc(buf, cap)) == NULL) {
				fprintf(stderr, "sigv4_sign: input too large\n");
				exit(2);
			}
			buf = nbuf;
		}
		r = read(STDIN_FILENO, buf + n, cap - n - 1);
		if (r == 0)
			break;
		if (r < 0) {
			perror("sigv4_sign: read");
			exit(2);
		}
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int
hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
job_reset(struct job *j)
{
	free(j->body_owned);
	memset(j, 0, sizeof(*j));
}

static void
run_job(struct job *j, int *failed)
{
	struct sigv4_request req = { 0 };
	struct sigv4_scope scope = { j->date, j->region, j->service };
	struct sigv4_credentials cred = { j->access_key, j->secret_key, j->token };
	struct sigv4_result res;
	enum sigv4_error err = SIGV4_OK;

	req.method = j->method;
	req.path = j->path;
	req.query = j->query;
	req.headers = j->headers;
	req.header_count = j->header_count;
	req.body = j->body;
	req.body_len = j->body_len;
	req.payload_hash = j->payload_hash;
	if (j->has_signed) {
		req.signed_headers = j->signed_names;
		req.signed_count = j->signed_count;
	}
	if (sigv4_sign(&req, &scope, &cred, &res, &err) == -1) {
		printf("ERROR %s\n", sigv4_strerror(err));
		*failed = 1;
		return;
	}
	if (verbose)
		fprintf(stderr, "--- canonical request\n%s\n--- string to sign\n%s\n---\n",
		    res.canonical_request, res.string_to_sign);
	printf("%s\n", res.authorization);
	sigv4_result_free(&res);
}

int
main(int argc, char **argv)
{
	struct job *j;
	unsigned char *buf;
	size_t len, pos = 0, lineno = 0;
	int failed = 0;
	bool open_job = false;

	if (argc == 2 && strcmp(argv[1], "-v") == 0)
		verbose = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: sigv4_sign [-v] < requests\n");
		return 2;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return 2;
	buf = read_all(&len);

	while (pos < len) {
		char *line = (char *)buf + pos, *nl, *key, *val, *sp;

		lineno++;
		nl = memchr(line, '\n', len - pos);
		if (nl == NULL)
			nl = (char *)buf + len;
		*nl = '\0';
		pos = (size_t)(nl - (char *)buf) + 1;
		if (!open_job && (line[0] == '\0' || line[0] == '#'))
			continue;
		key = line;
		if ((sp = strchr(line, ' ')) != NULL) {
			*sp = '\0';
			val = sp + 1;
		} else {
			val = line + strlen(line);
		}
		open_job = true;

		if (strcmp(key, "end") == 0) {
			run_job(j, &failed);
			job_reset(j);
			open_job = false;
		} else if (strcmp(key, "method") == 0) {
			j->method = val;
		} else if (strcmp(key, "path") == 0) {
			j->path = val;
		} else if (strcmp(key, "query") == 0) {
			j->query = val;
		} else if (strcmp(key, "region") == 0) {
			j->region = val;
		} else if (strcmp(key, "service") == 0) {
			j->service = val;
		} else if (strcmp(key, "date") == 0) {
			j->date = val;
		} else if (strcmp(key, "access-key") == 0) {
			j->access_key = val;
		} else if (strcmp(key, "secret-key") == 0) {
			j->secret_key = val;
		} else if (strcmp(key, "token") == 0) {
			j->token = val;
		} else if (strcmp(key, "payload-hash") == 0) {
			j->payload_hash = val;
		} else if (strcmp(key, "header") == 0) {
			char *colon = strchr(val, ':');

			if (colon == NULL)
				die("header needs Name:value", lineno);
			if (j->header_count == MAX_ITEMS)
				die("too many headers", lineno);
			*colon = '\0';
			j->headers[j->header_count].name = val;
			j->headers[j->header_count].value = colon + 1;
			j->header_count++;
		} else if (strcmp(key, "signed") == 0) {
			char *name = val, *semi;

			j->has_signed = true;
			j->signed_count = 0;
			while (*name != '\0') {
				if (j->signed_count == MAX_ITEMS)
					die("too many signed names", lineno);
				j->signed_names[j->signed_count++] = name;
				if ((semi = strchr(name, ';')) == NULL)
					break;
				*semi = '\0';
				name = semi + 1;
			}
		} else if (strcmp(key, "body-hex") == 0) {
			size_t n = strlen(val), i;
			int hi, lo;

			if (n % 2 != 0)
				die("odd hex length", lineno);
			free(j->body_owned);
			if ((j->body_owned = malloc(n / 2 + 1)) == NULL)
				die("out of memory", lineno);
			for (i = 0; i < n / 2; i++) {
				hi = hex_nibble(val[2 * i]);
				lo = hex_nibble(val[2 * i + 1]);
				if (hi < 0 || lo < 0)
					die("bad hex digit", lineno);
				j->body_owned[i] = (unsigned char)(hi * 16 + lo);
			}
			j->body = j->body_owned;
			j->body_len = n / 2;
		} else if (strcmp(key, "body") == 0) {
			char *end;
			unsigned long long n = strtoull(val, &end, 10);

			if (*val == '\0' || *end != '\0' || n > len - pos)
				die("bad body length", lineno);
			j->body = buf + pos;
			j->body_len = (size_t)n;
			pos += (size_t)n;
			if (pos < len && buf[pos] == '\n')
				pos++;
		} else {
			die("unknown key", lineno);
		}
	}
	if (open_job)
		die("request not closed by \"end\"", lineno);
	job_reset(j);
	free(j);
	free(buf);
	if (fflush(stdout) != 0)
		return 2;
	return failed;
}
