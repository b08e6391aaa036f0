/*
 * config_parse: reads a configuration (config_load*): the INI reading on top
 * of libinih, names and hints for what is misspelt, the checks between keys
 * after the whole file is read, and the file's trust rule. The key table and
 * what a value means are config.c's (config_table.h).
 *
 *
 * libinih (Debian's build: multi-line values on, ';' inline comments on,
 * 200-byte line buffer, no handler call on section headers, keeps parsing
 * after an error) is fed through our own line reader, which:
 *   - strips leading blanks, so an indented line is never taken as the
 *     continuation of the previous value (and indented keys just work);
 *   - rejects lines that do not fit the buffer (inih would otherwise parse
 *     the rest of a long line as a line of its own) and NUL bytes;
 *   - checks section headers itself, so an unknown section is reported on
 *     its own line even when it holds no keys, and "[agent] key = v" is an
 *     error rather than a header with ignored text;
 *   - stops at the first error, so the message is about the first problem.
 * The handler sees every key = value; inih's own return value then only
 * adds lines it could not parse at all.
 */
#define LOG_COMPONENT "config"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "config_table.h"
#include "http_door.h"
#include "log.h"
#include "sys_file.h"
#include "sys_user.h"

#define CONFIG_FILE_MAX	(1024 * 1024)	/* a configuration file larger than this is an error */

/* ---- names and hints ------------------------------------------------------------------- */

static bool
section_known(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < cfg_key_count; i++) {
		if (strlen(cfg_keys[i].section) == len &&
		    memcmp(cfg_keys[i].section, name, len) == 0)
			return true;
	}
	return false;
}

static const struct cfg_key *
key_find(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < cfg_key_count; i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0)
			return &cfg_keys[i];
	}
	return NULL;
}

/* Levenshtein distance for short words; SIZE_MAX when either is long. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[33], i, j, diag, up, best;

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		diag = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			up = row[j];
			best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* True when typed looks like a misspelling of known. */
static bool
near_miss(const char *typed, const char *known)
{
	size_t d;

	if (strcasecmp(typed, known) == 0)
		return true;
	d = edit_distance(typed, known);
	return d <= (strlen(known) > 4 ? 2u : 1u);
}

static void
hint_section(const char *typed, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < cfg_key_count; i++) {
		if (near_miss(typed, cfg_keys[i].section)) {
			snprintf(buf, len, " (did you mean [%s]?)", cfg_keys[i].section);
			return;
		}
	}
}

static void
hint_key(const char *section, const char *key, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < cfg_key_count; i++) {
		if (strcmp(cfg_keys[i].section, section) == 0 && near_miss(key, cfg_keys[i].key)) {
			snprintf(buf, len, " (did you mean '%s'?)", cfg_keys[i].key);
			return;
		}
	}
	for (i = 0; i < cfg_key_count; i++) {
		if (strcmp(cfg_keys[i].key, key) == 0) {
			snprintf(buf, len, " ('%s' belongs in section [%s])", key,
			    cfg_keys[i].section);
			return;
		}
	}
}

/* ---- parsing --------------------------------------------------------------------------- */

struct cfg_src {
	const unsigned char *buf;	/* len bytes */
	size_t len, pos;
};

struct cfg_parse {
	struct config *cfg;
	struct cfg_src src;
	int lineno;			/* last line handed to inih */
	size_t bom;			/* bytes of a byte order mark seen */
	int *seen;			/* per row of cfg_keys: line it was set on; 0: not set */
	bool failed;
	int fail_line;			/* 0: the message names no line */
	char msg[CONFIG_ERR_SIZE];	/* the first error, without "name:line: " */
};

static void cfg_fail(struct cfg_parse *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

/* Records the first error only. */
static void
cfg_fail(struct cfg_parse *p, int line, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	p->fail_line = line;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static int
src_getc(struct cfg_src *s)
{
	if (s->pos >= s->len)
		return EOF;
	return s->buf[s->pos++];
}


static bool
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* A line starting with '['. Returns -1 (error recorded) unless a known section. */
static int
check_section_header(struct cfg_parse *p, const char *line)
{
	const char *name = line + 1, *end = strchr(name, ']'), *rest;
	char typed[64], hint[64];
	size_t len;

	if (end == NULL) {
		cfg_fail(p, p->lineno, "section header without a closing ']'");
		return -1;
	}
	len = (size_t)(end - name);
	if (!section_known(name, len)) {
		snprintf(typed, sizeof(typed), "%.*s", (int)len, name);
		hint_section(typed, hint, sizeof(hint));
		cfg_fail(p, p->lineno, "unknown section [%.*s]%s", (int)len, name, hint);
		return -1;
	}
	for (rest = end + 1; is_blank(*rest); rest++)
		;
	if (*rest != '\0' && *rest != ';' && *rest != '#') {
		cfg_fail(p, p->lineno, "unexpected text after [%.*s] (put each key on a line"
		    " of its own)", (int)len, name);
		return -1;
	}
	return 0;
}

/* inih's fgets-like reader; see the comment at the top of the file. */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parse *p = stream;
	size_t n = 0, total = 0;
	int c;

	if (p->failed || num < 2)
		return NULL;
	if ((c = src_getc(&p->src)) == EOF)
		return NULL;
	p->lineno++;
	for (; c != EOF && c != '\n'; c = src_getc(&p->src)) {
		if (c == '\0') {
			cfg_fail(p, p->lineno, "line contains a NUL byte");
			return NULL;
		}
		/* A UTF-8 byte order mark at the start of the file: skip it. */
		if (p->lineno == 1 && total < 3 && total == p->bom) {
			if (c == (unsigned char)"\xef\xbb\xbf"[total]) {
				total++;
				p->bom++;
				continue;
			}
			if (p->bom != 0) {
				cfg_fail(p, p->lineno, "broken UTF-8 byte order mark");
				return NULL;
			}
		}
		if (++total > (size_t)num - 1) {
			/* The rest of a long comment is still comment. */
			if (n > 0 && (str[0] == '#' || str[0] == ';'))
				continue;
			cfg_fail(p, p->lineno, "line is too long (at most %d characters)", num - 1);
			return NULL;
		}
		if (n == 0 && is_blank(c))
			continue;
		str[n++] = (char)c;
	}
	str[n] = '\0';
	if (str[0] == '[' && check_section_header(p, str) == -1)
		return NULL;
	return str;
}

static int
cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *p = user;
	const struct cfg_key *k;
	char why[CONFIG_ERR_SIZE / 2], hint[96];
	size_t i;

	if (p->failed)
		return 0;
	if (*name == '\0') {
		cfg_fail(p, p->lineno, "missing key name before '='");
		return 0;
	}
	if (*section == '\0') {
		hint_key("", name, hint, sizeof(hint));
		cfg_fail(p, p->lineno, "key '%s' outside any section%s", name, hint);
		return 0;
	}
	if (!section_known(section, strlen(section))) {
		/* The reader checks headers; this is in case inih and it disagree. */
		cfg_fail(p, p->lineno, "unknown section [%s]", section);
		return 0;
	}
	if ((k = key_find(section, name)) == NULL) {
		hint_key(section, name, hint, sizeof(hint));
		cfg_fail(p, p->lineno, "unknown key '%s' in section [%s]%s", name, section, hint);
		return 0;
	}
	i = (size_t)(k - cfg_keys);
	if (value == NULL) {
		/* Only when inih is built to allow keys without '='. */
		cfg_fail(p, p->lineno, "[%s] %s: missing '= value'", section, name);
		return 0;
	}
	if (p->seen[i] != 0 && k->type != CT_LIST) {
		cfg_fail(p, p->lineno, "duplicate key '%s' in section [%s] (first set on line %d)",
		    name, section, p->seen[i]);
		return 0;
	}
	if (p->seen[i] == 0)
		p->seen[i] = p->lineno;
	if (cfg_set(p->cfg, k, value, why, sizeof(why)) == -1) {
		cfg_fail(p, p->lineno, "[%s] %s: %s", section, name, why);
		return 0;
	}
	return 1;
}

static int
seen_line(const struct cfg_parse *p, const char *section, const char *key)
{
	const struct cfg_key *k = key_find(section, key);

	return k == NULL ? 0 : p->seen[k - cfg_keys];
}

/* [http] listen and metrics_listen: loopback only unless allow_non_loopback. */
static void
cross_check_http(struct cfg_parse *p, const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[128];

	if (cfg->http_allow_non_loopback)
		return;
	for (size_t i = 0; i < cfg->http_listen.count; i++) {
		if (http_door_parse_address(cfg->http_listen.items[i], &ss, &len, why,
		    sizeof(why)) == 0 && !http_door_is_loopback(&ss))
			cfg_fail(p, seen_line(p, "http", "listen"), "[http] listen = %s is not a"
			    " loopback address (set [http] allow_non_loopback = yes to allow it,"
			    " which lets other hosts reach the agent)", cfg->http_listen.items[i]);
	}
	if (cfg->http_metrics_listen != NULL &&
	    http_door_parse_address(cfg->http_metrics_listen, &ss, &len, why, sizeof(why)) == 0 &&
	    !http_door_is_loopback(&ss))
		cfg_fail(p, seen_line(p, "http", "metrics_listen"), "[http] metrics_listen = %s is"
		    " not a loopback address (set [http] allow_non_loopback = yes to allow it)",
		    cfg->http_metrics_listen);
}

/* [endpoint]: loopback only unless allowed; auth = keys needs a keys file. */
static void
cross_check_endpoint(struct cfg_parse *p, const struct config *cfg)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char why[128];

	for (size_t i = 0; i < cfg->endpoint_listen.count && !cfg->endpoint_allow_non_loopback;
	    i++) {
		if (http_door_parse_address(cfg->endpoint_listen.items[i], &ss, &len, why,
		    sizeof(why)) == 0 && !http_door_is_loopback(&ss))
			cfg_fail(p, seen_line(p, "endpoint", "listen"), "[endpoint] listen = %s is"
			    " not a loopback address (set [endpoint] allow_non_loopback = yes to"
			    " allow it, which lets other hosts reach the agent)",
			    cfg->endpoint_listen.items[i]);
	}
	if (cfg->endpoint_auth == 1 && cfg->endpoint_keys_file == NULL)
		cfg_fail(p, seen_line(p, "endpoint", "auth"),
		    "[endpoint] auth = keys needs [endpoint] keys_file");
}

/* Checks between keys, after the whole file is read. */
static void
cfg_cross_check(struct cfg_parse *p)
{
	const struct config *cfg = p->cfg;

	cross_check_http(p, cfg);
	cross_check_endpoint(p, cfg);

	if (cfg->backend == CONFIG_BACKEND_FILE &&
	    (cfg->file_path == NULL || cfg->file_path[0] == '\0'))
		cfg_fail(p, seen_line(p, "backend", "type"),
		    "[backend] type = file needs [file] path");
	/* [aws] keys with the file backend would be silently ignored: the
	 * operator believes something is configured that is not. */
	if (cfg->backend == CONFIG_BACKEND_FILE) {
		const struct cfg_key *first = NULL;
		int line = 0;

		for (size_t i = 0; i < cfg_key_count; i++) {
			if (strcmp(cfg_keys[i].section, "aws") == 0 && p->seen[i] != 0 &&
			    (line == 0 || p->seen[i] < line)) {
				line = p->seen[i];
				first = &cfg_keys[i];
			}
		}
		if (first != NULL)
			cfg_fail(p, line, "[aws] %s is set but [backend] type is file, which "
			    "ignores [aws]; set [backend] type = aws, or remove the [aws] keys",
			    first->key);
	}
}

static void
set_err(char *err, size_t errlen, const char *name, int line, const char *msg)
{
	char *c;

	if (err == NULL || errlen == 0)
		return;
	if (line > 0)
		snprintf(err, errlen, "%s:%d: %s", name, line, msg);
	else
		snprintf(err, errlen, "%s: %s", name, msg);
	/* Names and values are echoed: keep terminal control bytes out. */
	for (c = err; *c != '\0'; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	}
}

/* Defaults, then src (NULL: none), then cross-key checks. */
static int
cfg_run(struct config *cfg, struct cfg_src *src, const char *name, char *err, size_t errlen)
{
	struct cfg_parse p;
	struct config tmp;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	memset(&p, 0, sizeof(p));
	p.cfg = &tmp;
	if ((p.seen = calloc(cfg_key_count, sizeof(*p.seen))) == NULL ||
	    config_defaults(&tmp) == -1) {
		free(p.seen);
		set_err(err, errlen, name, 0, "out of memory");
		return -1;
	}
	if (src != NULL) {
		p.src = *src;
		rc = ini_parse_stream(cfg_reader, &p, cfg_handler, &p);
		/*
		 * inih's rc is the first line that failed, ours or one it could
		 * not parse; the earlier of the two is the one to report.
		 */
		if (rc > 0 && (!p.failed || p.fail_line == 0 || rc < p.fail_line)) {
			p.failed = false;
			cfg_fail(&p, rc, "cannot parse line (expected '[section]', 'key = value'"
			    " or a comment)");
		} else if (rc < 0 && !p.failed)
			cfg_fail(&p, 0, rc == -2 ? "out of memory" : "cannot read");
	}
	if (!p.failed)
		cfg_cross_check(&p);
	free(p.seen);
	if (p.failed) {
		set_err(err, errlen, name, p.fail_line, p.msg);
		config_free(&tmp);
		return -1;
	}
	*cfg = tmp;
	return 0;
}

/*
 * The file must not be writable by anyone but root and the agent's user
 * (sys_file's rule): whoever can write it can grant themselves every
 * secret. The agent's user is the one the file names ([agent] user), else
 * the starting one, so start-up and a reload after the drop agree.
 */
static int
config_trust(const struct config *cfg, const char *path, const struct stat *st, char *msg,
    size_t msglen)
{
	uid_t agent = geteuid();
	uint32_t id;
	char why[256];

	if (cfg->user != NULL) {
		if (sys_user_parse_id(cfg->user, &id) == 0)
			agent = (uid_t)id;
		else if (sys_user_by_name(cfg->user, &agent, NULL, NULL, 0, why, sizeof(why)) != 1)
			agent = geteuid();	/* the drop itself will name the problem */
	}
	return sys_file_check_trust_as(path, st, agent, msg, msglen);
}

int
config_load(struct config *cfg, const char *path, char *err, size_t errlen)
{
	const struct sys_file_opts opts = { .max_size = CONFIG_FILE_MAX };
	struct cfg_src src = { 0 };
	struct sys_file f;
	char msg[CONFIG_ERR_SIZE], why[CONFIG_ERR_SIZE - 32];
	int rc;

	if (path == NULL)
		return cfg_run(cfg, NULL, "(built-in defaults)", err, errlen);
	if (sys_file_read(path, &opts, &f, why, sizeof(why)) != 1) {
		memset(cfg, 0, sizeof(*cfg));
		snprintf(msg, sizeof(msg), "cannot open: %s", why);
		set_err(err, errlen, path, 0, msg);
		return -1;
	}
	src.buf = (const unsigned char *)f.data;
	src.len = f.len;
	rc = cfg_run(cfg, &src, path, err, errlen);
	if (rc == 0 && config_trust(cfg, path, &f.st, msg, sizeof(msg)) != 0) {
		config_free(cfg);
		set_err(err, errlen, path, 0, msg);
		rc = -1;
	}
	sys_file_free(&f);
	return rc;
}

int
config_load_buffer(struct config *cfg, const void *data, size_t len, const char *name,
    char *err, size_t errlen)
{
	struct cfg_src src = { .buf = data, .len = len };

	if (data == NULL)
		src.len = 0;
	return cfg_run(cfg, &src, name != NULL ? name : "(string)", err, errlen);
}

int
config_load_string(struct config *cfg, const char *text, const char *name, char *err,
    size_t errlen)
{
	return config_load_buffer(cfg, text, text != NULL ? strlen(text) : 0, name, err, errlen);
}
