/*
 * smc_json: smcache_get_json_field (see smcache.h). cJSON parses the
 * SecretString; the library must not install process-wide cJSON hooks (the
 * program may use cJSON itself), so instead every string, key and number of
 * the parsed tree is wiped before cJSON_Delete. cJSON's parser allocates each
 * string once at its final size, so the tree holds every copy it made. The
 * answer is printed straight into guarded memory.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "smc_error.h"

/* A path component is at most this long (a Secrets Manager value is at most 64 KiB). */
#define PATH_MAX_LEN	4096

static void
wipe_tree(cJSON *item)
{
	for (; item != NULL; item = item->next) {
		if (item->string != NULL)
			sodium_memzero(item->string, strlen(item->string));
		if (item->valuestring != NULL)
			sodium_memzero(item->valuestring, strlen(item->valuestring));
		item->valuedouble = 0;
		item->valueint = 0;
		wipe_tree(item->child);
	}
}

static int
all_digits(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 9)
		return 0;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* Walks path (dot-separated) from root; NULL when a component is absent. */
static const cJSON *
walk(const cJSON *node, const char *path)
{
	char key[PATH_MAX_LEN + 1];
	const char *p = path, *dot;
	size_t n;

	for (;;) {
		dot = strchr(p, '.');
		n = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (n > PATH_MAX_LEN)
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		if (cJSON_IsArray(node) && all_digits(key, n))
			node = cJSON_GetArrayItem(node, atoi(key));
		else if (cJSON_IsObject(node))
			node = cJSON_GetObjectItemCaseSensitive(node, key);
		else
			node = NULL;
		if (node == NULL || dot == NULL)
			return node;
		p = dot + 1;
	}
}

int
smcache_get_json_field(const smc_secret *s, const char *path, char **out, size_t *out_len,
    smc_error *err)
{
	const cJSON *field;
	cJSON *root = NULL;
	const char *text;
	size_t len, cap;
	char *buf = NULL;
	int rc = -1;

	if (out != NULL)
		*out = NULL;
	if (out_len != NULL)
		*out_len = 0;
	if (s == NULL || path == NULL || out == NULL || path[0] == '\0') {
		smci_err_set(err, SMC_ERR_USAGE, "smcache_get_json_field needs a secret, a path and "
		    "a result pointer");
		return -1;
	}
	if ((text = smc_secret_string(s)) == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "the secret is binary, not a JSON SecretString");
		return -1;
	}
	if ((root = cJSON_ParseWithLength(text, smc_secret_value_len(s))) == NULL) {
		smci_err_set(err, SMC_ERR_USAGE, "the secret's value is not JSON");
		goto out;
	}
	if ((field = walk(root, path)) == NULL) {
		/* The path is the caller's own text, not the value: safe to show. */
		smci_err_set(err, SMC_ERR_NOT_FOUND, "the secret has no JSON field '%.200s'", path);
		goto out;
	}
	if (cJSON_IsString(field)) {
		len = strlen(field->valuestring);
		if ((buf = sodium_malloc(len + 1)) == NULL)
			goto nomem;
		memcpy(buf, field->valuestring, len + 1);
	} else {
		/* Compact JSON of a subtree: numbers may print longer than written
		 * ("1e5" -> "100000"), hence the margin; cJSON says when it is short. */
		cap = 2 * smc_secret_value_len(s) + 64;
		if ((buf = sodium_malloc(cap)) == NULL)
			goto nomem;
		if (!cJSON_PrintPreallocated((cJSON *)field, buf, (int)cap, 0)) {
			smci_err_set(err, SMC_ERR_NOMEM, "the JSON field does not fit its buffer");
			goto out;
		}
		len = strlen(buf);
	}
	*out = buf;
	buf = NULL;
	if (out_len != NULL)
		*out_len = len;
	smci_err_clear(err);
	rc = 0;
	goto out;
nomem:
	smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
out:
	if (buf != NULL)
		sodium_free(buf);
	if (root != NULL) {
		wipe_tree(root);
		cJSON_Delete(root);
	}
	return rc;
}

void
smc_value_free(char *value)
{
	if (value != NULL)
		sodium_free(value);	/* wipes */
}
