/*
 * aws_cred_common: what the credential source clients share (aws_cred_internal.h):
 * the environment, bounded copies, token files, ISO 8601 timestamps, the JSON
 * answer of the ECS and IMDS endpoints, and the one-retry rule.
 */
#define LOG_COMPONENT "aws"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "aws_cred_internal.h"
#include "sys_file.h"

const char *
cred_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

int
cred_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	if (srclen >= dstlen)
		return -1;
	memcpy(dst, src, srclen);
	dst[srclen] = '\0';
	return 0;
}

int
cred_copy_str(char *dst, size_t dstlen, const char *src)
{
	return cred_copy(dst, dstlen, src, strlen(src));
}

/*
 * Reads a small secret file (token), trailing white space removed.
 * Returns 0, or -1 with a message naming the file (never its contents).
 */
int
cred_read_token_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	const struct sys_file_opts opts = { .max_size = outlen - 1, .trust = true };
	struct sys_file f;
	size_t got;
	int n, rc = -1;

	out[0] = '\0';
	/* The reason goes after the prefix, in err itself. */
	n = snprintf(err, errlen, "cannot read token file %s: ", path);
	if (n < 0 || (size_t)n >= errlen)
		n = 0;
	if (sys_file_read(path, &opts, &f, err + n, errlen - (size_t)n) != 1)
		return -1;
	err[0] = '\0';
	got = f.len;
	memcpy(out, f.data, got);
	while (got > 0 && isspace((unsigned char)out[got - 1]))
		got--;
	out[got] = '\0';
	if (got == 0) {
		snprintf(err, errlen, "token file %s is empty", path);
		goto out;
	}
	if (strlen(out) != got || strpbrk(out, "\r\n") != NULL) {
		snprintf(err, errlen, "token file %s holds more than one line of text", path);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		sodium_memzero(out, outlen);
	sys_file_free(&f);
	return rc;
}

static int
cred_digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* ISO 8601 / RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). */
int
cred_parse_time(const char *s, time_t *out)
{
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	struct tm tm;
	time_t t;

	if (strlen(s) < 20 || cred_digits(s, 4, &year) || s[4] != '-' ||
	    cred_digits(s + 5, 2, &mon) || s[7] != '-' || cred_digits(s + 8, 2, &day) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || cred_digits(s + 11, 2, &hour) ||
	    s[13] != ':' || cred_digits(s + 14, 2, &min) || s[16] != ':' ||
	    cred_digits(s + 17, 2, &sec))
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
		sign = 0;
	} else if ((*s == '+' || *s == '-') && strlen(s) == 6 && s[3] == ':' &&
	    cred_digits(s + 1, 2, &oh) == 0 && cred_digits(s + 4, 2, &om) == 0) {
		sign = *s == '+' ? 1 : -1;
	} else {
		return -1;
	}
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 ||
	    oh > 23 || om > 59 || year < 1970)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

/* Printable ASCII only, for text taken from a response into a message. */
void
cred_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

/* ---- JSON answers (ECS, IMDS) ------------------------------------------------------------ */

static int
cred_json_string(const cJSON *obj, const char *name, char *out, size_t outlen, bool required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (item == NULL || cJSON_IsNull(item))
		return required ? -1 : 0;
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return -1;
	return cred_copy_str(out, outlen, item->valuestring) == 0 ? 1 : -1;
}

/* {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]} into credentials. */
void
cred_take_json(struct aws_credential_provider *p, const struct http_response *r,
    const char *what)
{
	struct aws_credentials *c = NULL;
	char when[64], code[64];
	cJSON *root;

	root = cJSON_ParseWithLength((const char *)r->body, r->body_len);
	if (root == NULL || !cJSON_IsObject(root)) {
		cred_fetch_failed(p, "%s: the answer is not a JSON object", what);
		goto out;
	}
	if (cred_json_string(root, "Code", code, sizeof(code), false) == 1 &&
	    strcmp(code, "Success") != 0) {
		cred_sanitize(code);
		cred_fetch_failed(p, "%s: Code is %s", what, code);
		goto out;
	}
	if ((c = sodium_malloc(sizeof(*c))) == NULL) {
		cred_fetch_failed(p, "out of memory");
		goto out;
	}
	memset(c, 0, sizeof(*c));
	if (cred_json_string(root, "AccessKeyId", c->access_key_id,
	        sizeof(c->access_key_id), true) != 1 ||
	    cred_json_string(root, "SecretAccessKey", c->secret_access_key,
	        sizeof(c->secret_access_key), true) != 1 ||
	    cred_json_string(root, "Token", c->session_token,
	        sizeof(c->session_token), false) < 0) {
		cred_fetch_failed(p, "%s: missing or malformed AccessKeyId, SecretAccessKey "
		    "or Token", what);
		goto out;
	}
	if (cred_json_string(root, "Expiration", when, sizeof(when), true) != 1 ||
	    cred_parse_time(when, &c->expiration) != 0) {
		cred_fetch_failed(p, "%s: missing or malformed Expiration", what);
		goto out;
	}
	cred_fetch_succeeded(p, c);
out:
	if (c != NULL)
		sodium_free(c);
	cJSON_Delete(root);	/* json_secure hooks wipe its strings */
}

/* One retry for what may pass: timeouts, refused connections, 5xx. */
bool
cred_retry_once(struct aws_credential_provider *p, const struct http_response *r,
    enum http_error error)
{
	bool transient = error == HTTP_ERR_TIMEOUT || error == HTTP_ERR_CONNECT ||
	    (error == HTTP_OK && r->status >= 500);

	if (!transient || p->attempt > 0)
		return false;
	p->attempt++;
	return true;
}
