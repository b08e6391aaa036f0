/*
 * aws_profile: region, endpoint and profile resolution, and lookups in the
 * AWS shared config/credentials files.
 *
 * The files are INI and parsed with libinih, fed by our own line reader:
 *   - Debian's libinih reads at most 199 bytes of a line and silently drops
 *     the rest, which would cut a session token short. The reader keeps long
 *     "key = value" lines whole: it hands inih the key with a placeholder
 *     (0x1f and an index) and keeps the value itself on the side; the handler
 *     swaps it back. Inline ';' comments are stripped from long values the
 *     way inih strips them from short ones.
 *   - Indented lines stay indented, so inih's multi-line handling treats
 *     them as the continuation of the key above, as botocore does: nested
 *     sub-sections ("s3 =" followed by indented keys) never leak keys into
 *     the profile. The handler ignores continuations.
 *   - The whole file is read into memory and wiped afterwards (it can hold
 *     secret keys); NUL and 0x1f bytes are rejected.
 * Section names are matched after trimming; in the config file a profile is
 * "[profile NAME]" ("[default]" or "[profile default]" for the default one),
 * in the credentials file "[NAME]". Keys compare case-insensitively (botocore
 * lowercases them); the first occurrence of a key in a profile wins.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>
#include <sodium.h>

#include "aws_profile.h"
#include "sm_id.h"
#include "sys_file.h"
#include "sys_user.h"

#define AWS_FILE_MAX		(1024 * 1024)	/* a shared file larger than this is an error */
#define AWS_LINE_MAX		(64 * 1024)	/* and so is a line longer than this */
#define AWS_LONG_VALUES_MAX	64		/* long lines in one file */
#define AWS_PLACEHOLDER		'\x1f'

struct aws_span {
	size_t off, len;
};

struct aws_parse {
	/* input */
	const char *path;
	const char *data;
	size_t len, pos;
	unsigned lineno;
	bool is_config;
	const char *profile;
	const char *key;		/* NULL: only look for the section */
	char *value;
	size_t value_len;

	/* state */
	bool line_indented;
	char last_section[256];
	char last_name[256];
	struct aws_span long_values[AWS_LONG_VALUES_MAX];
	size_t nlong;

	/* result */
	bool found;
	bool section_found;
	bool failed;
	char *err;
	size_t errlen;
};

/* ---- small string helpers ---------------------------------------------------------------- */

static bool
aws_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trimmed view [*start, *start + *len) of s[0..len). */
static void
aws_trim(const char **s, size_t *len)
{
	while (*len > 0 && aws_is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && aws_is_blank((*s)[*len - 1]))
		(*len)--;
}

static bool
aws_span_equals(const char *s, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(s, want, len) == 0;
}

/* Does the section header text (between the brackets) name our profile? */
static bool
aws_section_matches(const struct aws_parse *p, const char *sec, size_t len)
{
	aws_trim(&sec, &len);
	if (!p->is_config)
		return aws_span_equals(sec, len, p->profile);
	if (strcmp(p->profile, "default") == 0 && aws_span_equals(sec, len, "default"))
		return true;
	if (len < 8 || memcmp(sec, "profile", 7) != 0 || !aws_is_blank(sec[7]))
		return false;
	sec += 7;
	len -= 7;
	aws_trim(&sec, &len);
	return aws_span_equals(sec, len, p->profile);
}

static void
aws_parse_fail(struct aws_parse *p, const char *what)
{
	if (!p->failed)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->path, p->lineno, what);
	p->failed = true;
}

/* ---- the line reader --------------------------------------------------------------------- */

/*
 * A line too long for inih: "key = value" becomes "key = <0x1f><index>".
 * Returns false (with the error set) for anything else.
 */
static bool
aws_shorten_line(struct aws_parse *p, const char *line, size_t len, char *out, int num)
{
	const char *key = line, *val, *eq, *c;
	size_t klen, vlen;
	int n;

	eq = memchr(line, '=', len);
	if (eq == NULL) {
		aws_parse_fail(p, "line too long");
		return false;
	}
	klen = (size_t)(eq - line);
	aws_trim(&key, &klen);
	val = eq + 1;
	vlen = len - (size_t)(val - line);
	/* inih's inline comments: ';' at the start or after a blank ends the value. */
	for (c = val; c < val + vlen; c++) {
		if (*c == ';' && (c == val || aws_is_blank(c[-1]))) {
			vlen = (size_t)(c - val);
			break;
		}
	}
	aws_trim(&val, &vlen);
	if (p->nlong >= AWS_LONG_VALUES_MAX) {
		aws_parse_fail(p, "too many long lines");
		return false;
	}
	if (klen == 0 || klen > 100) {
		aws_parse_fail(p, "line too long");
		return false;
	}
	p->long_values[p->nlong].off = (size_t)(val - p->data);
	p->long_values[p->nlong].len = vlen;
	n = snprintf(out, (size_t)num, "%s%.*s = %c%zu\n", line[0] == ' ' || line[0] == '\t' ?
	    " " : "", (int)klen, key, AWS_PLACEHOLDER, p->nlong);
	if (n < 0 || n >= num) {
		aws_parse_fail(p, "line too long");
		return false;
	}
	p->nlong++;
	return true;
}

/* ini_reader: one line per call, like fgets. NULL at the end or on an error. */
static char *
aws_reader(char *out, int num, void *stream)
{
	struct aws_parse *p = stream;
	const char *line, *nl, *s;
	size_t len, slen;

	if (p->failed || p->pos >= p->len || num < 2)
		return NULL;
	line = p->data + p->pos;
	nl = memchr(line, '\n', p->len - p->pos);
	len = nl != NULL ? (size_t)(nl - line) : p->len - p->pos;
	p->pos += len + (nl != NULL);
	p->lineno++;
	if (len > AWS_LINE_MAX) {
		aws_parse_fail(p, "line too long");
		return NULL;
	}
	if (memchr(line, '\0', len) != NULL || memchr(line, AWS_PLACEHOLDER, len) != NULL) {
		aws_parse_fail(p, "unexpected control character");
		return NULL;
	}
	p->line_indented = len > 0 && aws_is_blank(line[0]) && line[0] != '\r';

	/* Section headers are checked here, so empty profiles are seen too. */
	s = line;
	slen = len;
	aws_trim(&s, &slen);
	if (slen > 0 && s[0] == '[') {
		const char *end = memchr(s, ']', slen);

		if (end != NULL && aws_section_matches(p, s + 1, (size_t)(end - s - 1)))
			p->section_found = true;
	}

	if (len + 2 <= (size_t)num) {
		memcpy(out, line, len);
		out[len] = '\n';
		out[len + 1] = '\0';
		return out;
	}
	if (slen > 0 && (s[0] == ';' || s[0] == '#')) {
		out[0] = '\n';
		out[1] = '\0';
		return out;
	}
	return aws_shorten_line(p, line, len, out, num) ? out : NULL;
}

/* ini_handler: every key = value line (and every continuation line). */
static int
aws_handler(void *user, const char *section, const char *name, const char *value)
{
	struct aws_parse *p = user;
	const char *v = value;
	size_t vlen = strlen(value), idx;
	char *end;
	bool continuation;

	continuation = p->line_indented && strcmp(section, p->last_section) == 0 &&
	    strcmp(name, p->last_name) == 0;
	snprintf(p->last_section, sizeof(p->last_section), "%s", section);
	snprintf(p->last_name, sizeof(p->last_name), "%s", name);
	if (continuation || p->key == NULL || p->found || p->failed)
		return 1;
	if (!aws_section_matches(p, section, strlen(section)) || strcasecmp(name, p->key) != 0)
		return 1;
	if (v[0] == AWS_PLACEHOLDER) {
		errno = 0;
		idx = strtoul(v + 1, &end, 10);
		if (errno != 0 || *end != '\0' || idx >= p->nlong) {
			aws_parse_fail(p, "internal error reading a long line");
			return 0;
		}
		v = p->data + p->long_values[idx].off;
		vlen = p->long_values[idx].len;
	}
	if (vlen >= p->value_len) {
		snprintf(p->err, p->errlen, "%s: value of %s in profile %s is too long (%zu bytes)",
		    p->path, p->key, p->profile, vlen);
		p->failed = true;
		return 0;
	}
	memcpy(p->value, v, vlen);
	p->value[vlen] = '\0';
	p->found = true;
	return 1;
}

static int aws_file_path(const char *env_name, const char *default_name, char *out,
    size_t outlen, char *err, size_t errlen);
static const char *aws_env(const char *name);

/*
 * How messages name a shared file: "AWS_CONFIG_FILE=/dev/x" when a variable
 * pointed at it, so the operator knows what to change; else the path.
 */
static void
aws_file_label(const char *path, char *out, size_t outlen)
{
	static const char *const vars[][2] = {
		{ "AWS_CONFIG_FILE", "config" },
		{ "AWS_SHARED_CREDENTIALS_FILE", "credentials" },
	};
	char resolved[4096], err[256];

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		if (aws_env(vars[i][0]) != NULL && aws_file_path(vars[i][0], vars[i][1], resolved,
		    sizeof(resolved), err, sizeof(err)) == 0 && strcmp(resolved, path) == 0) {
			snprintf(out, outlen, "%s=%s", vars[i][0], path);
			return;
		}
	}
	snprintf(out, outlen, "%s", path);
}

/*
 * Reads a whole shared file (sys_file: trusted, bounded; /dev/null or an
 * empty file is "no profiles"). Returns 1 with *f read, 0 when the file does
 * not exist, -1 on an error.
 */
static int
aws_read_file(const char *path, const char *label, struct sys_file *f, char *err, size_t errlen)
{
	const struct sys_file_opts opts = {
		.max_size = AWS_FILE_MAX, .missing_ok = true, .empty_device_ok = true, .trust = true,
	};
	char why[512];
	int rc = sys_file_read(path, &opts, f, why, sizeof(why));

	if (rc < 0)
		snprintf(err, errlen, "%s: %s", label, why);
	return rc;
}

/* Parses path for (profile, key); key NULL looks for the section only. */
static int
aws_profile_scan(const char *path, bool is_config_file, const char *profile, const char *key,
    char *value, size_t value_len, bool *section_found, char *err, size_t errlen)
{
	struct aws_parse *p;
	struct sys_file f;
	char label[4200];
	int rc;

	if (section_found != NULL)
		*section_found = false;
	if (value != NULL && value_len > 0)
		value[0] = '\0';
	if (path == NULL || path[0] == '\0')
		return 0;
	if (profile == NULL || profile[0] == '\0' || (key != NULL && (value == NULL ||
	    value_len == 0))) {
		snprintf(err, errlen, "aws_profile_get: bad arguments");
		return -1;
	}
	aws_file_label(path, label, sizeof(label));
	if ((rc = aws_read_file(path, label, &f, err, errlen)) <= 0)
		return rc;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", label);
		rc = -1;
		goto out;
	}
	p->path = label;
	p->data = f.data;
	p->len = f.len;
	p->is_config = is_config_file;
	p->profile = profile;
	p->key = key;
	p->value = value;
	p->value_len = value_len;
	p->err = err;
	p->errlen = errlen;

	rc = ini_parse_stream(aws_reader, p, aws_handler, p);
	if (p->failed) {
		rc = -1;
	} else if (rc > 0) {
		snprintf(err, errlen, "%s:%d: not a [section] or key = value line", label, rc);
		rc = -1;
	} else if (rc < 0) {
		snprintf(err, errlen, "%s: cannot parse (out of memory)", label);
		rc = -1;
	} else {
		rc = key != NULL ? p->found : p->section_found;
		if (section_found != NULL)
			*section_found = p->section_found;
	}
	if (rc != 1 && value != NULL && value_len > 0)
		sodium_memzero(value, value_len);
	sodium_memzero(p, sizeof(*p));
	free(p);
out:
	sys_file_free(&f);
	return rc;
}

int
aws_profile_get(const char *path, bool is_config_file, const char *profile,
    const char *key, char *value, size_t value_len, char *err, size_t errlen)
{
	if (key == NULL || key[0] == '\0') {
		snprintf(err, errlen, "aws_profile_get: no key");
		return -1;
	}
	return aws_profile_scan(path, is_config_file, profile, key, value, value_len, NULL,
	    err, errlen);
}

int
aws_profile_exists(const char *path, bool is_config_file, const char *profile,
    char *err, size_t errlen)
{
	return aws_profile_scan(path, is_config_file, profile, NULL, NULL, 0, NULL, err, errlen);
}

/* ---- resolution -------------------------------------------------------------------------- */

static const char *
aws_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

int
aws_endpoint_normalize(const char *url, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *host, *c;
	size_t len;

	if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else {
		snprintf(err, errlen, "endpoint '%s' must start with http:// or https://", url);
		return -1;
	}
	if (*host == '\0' || *host == '/' || *host == ':') {
		snprintf(err, errlen, "endpoint '%s' has no host name", url);
		return -1;
	}
	for (c = url; *c != '\0'; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
			snprintf(err, errlen, "endpoint '%.64s' contains a space or control character", url);
			return -1;
		}
		if (*c == '?' || *c == '#' || *c == '@') {
			snprintf(err, errlen, "endpoint '%s' must not contain '%c'", url, *c);
			return -1;
		}
	}
	len = strlen(url);
	while (len > (size_t)(host - url) && url[len - 1] == '/')
		len--;
	if (len >= outlen) {
		snprintf(err, errlen, "endpoint '%.64s...' is too long", url);
		return -1;
	}
	memcpy(out, url, len);
	out[len] = '\0';
	return 0;
}

/* "~/x" and a default under $HOME/.aws/. Empty when there is no home. */
static int
aws_file_path(const char *env_name, const char *default_name, char *out, size_t outlen,
    char *err, size_t errlen)
{
	const char *v = aws_env(env_name), *home = aws_env("HOME");
	char pwhome[4096], why[256];
	int n;

	if (home == NULL && sys_user_home(getuid(), pwhome, sizeof(pwhome), why, sizeof(why)) == 1 &&
	    pwhome[0] != '\0')
		home = pwhome;
	if (v != NULL && strncmp(v, "~/", 2) != 0) {
		n = snprintf(out, outlen, "%s", v);
	} else if (v != NULL) {
		if (home == NULL) {
			snprintf(err, errlen, "%s=%s: no home directory to expand '~'", env_name, v);
			return -1;
		}
		n = snprintf(out, outlen, "%s/%s", home, v + 2);
	} else if (home != NULL) {
		n = snprintf(out, outlen, "%s/.aws/%s", home, default_name);
	} else {
		out[0] = '\0';
		return 0;
	}
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "%s: path too long", env_name);
		return -1;
	}
	return 0;
}

static int
aws_parse_bool(const char *what, const char *v, bool *out, char *err, size_t errlen)
{
	if (strcasecmp(v, "true") == 0)
		*out = true;
	else if (strcasecmp(v, "false") == 0)
		*out = false;
	else {
		snprintf(err, errlen, "%s = '%s': expected true or false", what, v);
		return -1;
	}
	return 0;
}

int
aws_resolve(const struct aws_settings *settings, struct aws_resolved *out,
    char *err, size_t errlen)
{
	static const struct aws_settings none;
	char value[256];
	const char *v, *from;
	bool fips = false;
	int rc;

	if (settings == NULL)
		settings = &none;
	memset(out, 0, sizeof(*out));

	/* profile */
	if ((v = settings->profile) != NULL && v[0] != '\0')
		from = "[aws] profile";
	else if ((v = aws_env("AWS_PROFILE")) != NULL)
		from = "AWS_PROFILE";
	else {
		v = "default";
		from = "default";
	}
	if (strlen(v) >= sizeof(out->profile) || strpbrk(v, "[]\r\n") != NULL) {
		snprintf(err, errlen, "%s: '%.64s' is not a usable profile name", from, v);
		goto fail;
	}
	snprintf(out->profile, sizeof(out->profile), "%s", v);

	/* shared files */
	if (aws_file_path("AWS_CONFIG_FILE", "config", out->config_file,
	        sizeof(out->config_file), err, errlen) != 0 ||
	    aws_file_path("AWS_SHARED_CREDENTIALS_FILE", "credentials", out->credentials_file,
	        sizeof(out->credentials_file), err, errlen) != 0)
		goto fail;

	/* region */
	if ((v = settings->region) != NULL && v[0] != '\0')
		from = "[aws] region";
	else if ((v = aws_env("AWS_REGION")) != NULL)
		from = "AWS_REGION";
	else if ((v = aws_env("AWS_DEFAULT_REGION")) != NULL)
		from = "AWS_DEFAULT_REGION";
	else {
		rc = aws_profile_get(out->config_file, true, out->profile, "region", value,
		    sizeof(value), err, errlen);
		if (rc < 0)
			goto fail;
		if (rc == 0) {
			snprintf(err, errlen, "no AWS region: set [aws] region, AWS_REGION or "
			    "AWS_DEFAULT_REGION, or region in profile '%s' of %s", out->profile,
			    out->config_file[0] != '\0' ? out->config_file : "the AWS config file");
			goto fail;
		}
		v = value;
		from = "region in the AWS config file";
	}
	if (!sm_id_region_valid(v)) {
		snprintf(err, errlen, "%s: '%.64s' is not a region name (expected lowercase letters,"
		    " digits and dashes, like us-east-1)", from, v);
		goto fail;
	}
	memcpy(out->region, v, strlen(v) + 1);		/* valid: at most 63 bytes */

	/* FIPS: the agent's setting, else the environment, else the profile. */
	if (settings->fips)
		fips = true;
	else if ((v = aws_env("AWS_USE_FIPS_ENDPOINT")) != NULL) {
		if (aws_parse_bool("AWS_USE_FIPS_ENDPOINT", v, &fips, err, errlen) != 0)
			goto fail;
	} else {
		rc = aws_profile_get(out->config_file, true, out->profile, "use_fips_endpoint",
		    value, sizeof(value), err, errlen);
		if (rc < 0 || (rc == 1 && aws_parse_bool("use_fips_endpoint", value, &fips,
		    err, errlen) != 0))
			goto fail;
	}
	out->fips = fips;

	/* endpoint */
	if ((v = settings->endpoint) != NULL && v[0] != '\0')
		from = "[aws] endpoint";
	else if ((v = aws_env("AWS_ENDPOINT_URL_SECRETS_MANAGER")) != NULL)
		from = "AWS_ENDPOINT_URL_SECRETS_MANAGER";
	else if ((v = aws_env("AWS_ENDPOINT_URL")) != NULL)
		from = "AWS_ENDPOINT_URL";
	else
		from = NULL;
	if (from != NULL) {
		if (aws_endpoint_normalize(v, out->endpoint, sizeof(out->endpoint), value,
		        sizeof(value)) != 0) {
			snprintf(err, errlen, "%s: %s", from, value);
			goto fail;
		}
	} else {
		snprintf(out->endpoint, sizeof(out->endpoint), "https://secretsmanager%s.%s.%s",
		    fips ? "-fips" : "", out->region, sm_id_region_dns_suffix(out->region));
	}
	sodium_memzero(value, sizeof(value));
	return 0;
fail:
	sodium_memzero(value, sizeof(value));
	memset(out, 0, sizeof(*out));
	return -1;
}
