/*
 * cli_json: JSON text exactly as the AWS CLI prints it (`--output json`:
 * Python's json.dumps(indent=4, ensure_ascii=False) plus a newline), so
 * `smcache get --json` can be byte-identical to `aws secretsmanager
 * get-secret-value`. Objects keep the order keys are written in. The text
 * may hold secret values: it lives in guarded, locked memory (sodium_malloc)
 * and is wiped when freed.
 */
#ifndef SMC_CLI_JSON_H
#define SMC_CLI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CJW_MAX_DEPTH	8

struct cjw {
	char *buf;		/* sodium_malloc'd */
	size_t len, cap;
	unsigned depth;
	bool has_items[CJW_MAX_DEPTH];
	bool after_key;		/* the next value follows "key": on the same line */
	bool failed;		/* out of memory or misuse: cjw_finish fails */
};

void cjw_init(struct cjw *w);
/* Wipes and frees the text. */
void cjw_free(struct cjw *w);

void cjw_object_begin(struct cjw *w);
void cjw_object_end(struct cjw *w);
void cjw_array_begin(struct cjw *w);
void cjw_array_end(struct cjw *w);
/* The key of the next value, inside an object. */
void cjw_key(struct cjw *w, const char *key);
void cjw_string(struct cjw *w, const char *s, size_t len);
void cjw_cstring(struct cjw *w, const char *s);
void cjw_uint(struct cjw *w, uint64_t v);
void cjw_bool(struct cjw *w, bool v);

/* Ends the text with a newline. Returns 0 with *text, *len set (owned by w),
 * or -1 when anything failed. */
int cjw_finish(struct cjw *w, const char **text, size_t *len);

#endif
