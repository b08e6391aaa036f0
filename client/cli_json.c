/*
 * cli_json: the AWS CLI's JSON layout (see cli_json.h). What Python's
 * encoder does, rule by rule: 4 spaces per level; ", " is not used between
 * items (indent puts each on its own line, "," at the end of the line);
 * "key": value with one space; empty arrays and objects as [] and {};
 * strings escape only '"', '\\', control characters (\n \r \t \b \f by
 * name, the others as \u00xx in lower-case hex), everything else verbatim.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "cli_json.h"

void
cjw_init(struct cjw *w)
{
	memset(w, 0, sizeof(*w));
}

void
cjw_free(struct cjw *w)
{
	if (w->buf != NULL)
		sodium_free(w->buf);	/* wipes */
	cjw_init(w);
}

static void
put(struct cjw *w, const char *p, size_t n)
{
	size_t cap;
	char *nb;

	if (w->failed)
		return;
	if (w->cap - w->len < n + 1) {
		cap = w->cap == 0 ? 1024 : w->cap;
		while (cap - w->len < n + 1)
			cap *= 2;
		if ((nb = sodium_malloc(cap)) == NULL) {
			w->failed = true;
			return;
		}
		if (w->buf != NULL) {
			memcpy(nb, w->buf, w->len);
			sodium_free(w->buf);
		}
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
newline_indent(struct cjw *w, unsigned depth)
{
	put(w, "\n", 1);
	for (unsigned i = 0; i < depth; i++)
		put(w, "    ", 4);
}

/* Before any value: its separator and indentation, unless it follows a key. */
static void
value_start(struct cjw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth == 0)
		return;
	if (w->has_items[w->depth - 1])
		put(w, ",", 1);
	w->has_items[w->depth - 1] = true;
	newline_indent(w, w->depth);
}

static void
open_container(struct cjw *w, const char *c)
{
	value_start(w);
	put(w, c, 1);
	if (w->depth >= CJW_MAX_DEPTH) {
		w->failed = true;
		return;
	}
	w->has_items[w->depth++] = false;
}

static void
close_container(struct cjw *w, const char *c)
{
	if (w->depth == 0) {
		w->failed = true;
		return;
	}
	w->depth--;
	if (w->has_items[w->depth])
		newline_indent(w, w->depth);
	put(w, c, 1);
}

void
cjw_object_begin(struct cjw *w)
{
	open_container(w, "{");
}

void
cjw_object_end(struct cjw *w)
{
	close_container(w, "}");
}

void
cjw_array_begin(struct cjw *w)
{
	open_container(w, "[");
}

void
cjw_array_end(struct cjw *w)
{
	close_container(w, "]");
}

static void
put_escaped(struct cjw *w, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];
	size_t i, run = 0;

	put(w, "\"", 1);
	for (i = 0; i < len; i++) {
		const char *e = NULL;

		switch (p[i]) {
		case '"':	e = "\\\""; break;
		case '\\':	e = "\\\\"; break;
		case '\n':	e = "\\n"; break;
		case '\r':	e = "\\r"; break;
		case '\t':	e = "\\t"; break;
		case '\b':	e = "\\b"; break;
		case '\f':	e = "\\f"; break;
		default:
			if (p[i] < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
				e = esc;
			}
		}
		if (e == NULL)
			continue;
		put(w, s + run, i - run);
		put(w, e, strlen(e));
		run = i + 1;
	}
	put(w, s + run, len - run);
	put(w, "\"", 1);
	sodium_memzero(esc, sizeof(esc));
}

void
cjw_key(struct cjw *w, const char *key)
{
	value_start(w);
	put_escaped(w, key, strlen(key));
	put(w, ": ", 2);
	w->after_key = true;
}

void
cjw_string(struct cjw *w, const char *s, size_t len)
{
	value_start(w);
	put_escaped(w, s, len);
}

void
cjw_cstring(struct cjw *w, const char *s)
{
	cjw_string(w, s, strlen(s));
}

void
cjw_uint(struct cjw *w, uint64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);

	value_start(w);
	put(w, num, (size_t)n);
}

void
cjw_bool(struct cjw *w, bool v)
{
	value_start(w);
	put(w, v ? "true" : "false", v ? 4 : 5);
}

int
cjw_finish(struct cjw *w, const char **text, size_t *len)
{
	if (w->depth != 0)
		w->failed = true;
	put(w, "\n", 1);
	if (w->failed)
		return -1;
	*text = w->buf;
	*len = w->len;
	return 0;
}
