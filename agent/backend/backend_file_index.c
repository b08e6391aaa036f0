/*
 * backend_file_index: the file backend's file format, its validation and the
 * sealed index it is parsed into (backend_file_index.h). Keeps no plaintext:
 * the file's bytes and the JSON copies of values are wiped once sealed.
 *
 * File format (UTF-8 JSON; field names are the AWS API's; at most 16 MiB):
 *
 *   {
 *     "Region": "us-east-1",                  required, [a-z0-9-]{1,32}
 *     "Account": "123456789012",              required, 12 digits
 *     "Secrets": [                            required, may be empty
 *       {
 *         "Name": "demo/db-password",         required, unique, 1..512 of [A-Za-z0-9/_+=.@-]
 *         "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:demo/db-password-a1B2c3",
 *                                             optional; must be
 *                                             arn:<partition>:secretsmanager:<Region>:<Account>:secret:<Name>-<6 of [A-Za-z0-9]>
 *                                             when absent, derived from the Name (stable hash)
 *         "Description": "...",               optional, <= 2048 bytes
 *         "CreatedDate": 1700000000,          optional dates: epoch seconds,
 *         "LastChangedDate": 1700000000.25,     fractions allowed (kept in ms)
 *         "DeletedDate": 1800000000,          optional: scheduled for deletion
 *         "Versions": [                       optional, at most 100
 *           {
 *             "VersionId": "...",             required, unique in the secret, 1..64 of [A-Za-z0-9_-]
 *             "VersionStages": ["AWSCURRENT"],  optional, at most 20 labels of 1..256 printable
 *                                             ASCII; a label is on at most one version
 *             "SecretString": "...",          exactly one of SecretString (<= 65536 bytes)
 *             "SecretBinary": "<base64>",       or SecretBinary (standard base64, padded,
 *                                               <= 65536 bytes decoded)
 *             "CreatedDate": 1700000000.5     optional
 *           } ] } ] }
 *
 * Any other field is an error (typos do not go unnoticed); JSON null counts
 * as absent for optional fields. A secret with versions must have one
 * labelled AWSCURRENT, as in AWS. Versions without labels are kept (GET by
 * VersionId finds them) but DESCRIBE does not list them, as in AWS.
 *
 * The index: names, ARNs, versions, labels, dates, and each value sealed
 * (libsodium's secretbox, XSalsa20-Poly1305, under the backend's key in
 * guarded memory); a hash table finds a secret by name, ARN or partial ARN.
 */
#define LOG_COMPONENT "file"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "backend_file.h"
#include "backend_file_index.h"
#include "json_secure.h"
#include "sm_id.h"
#include "table.h"
#include "utf8.h"

#define SF_MAX_PARTITION	16
#define SF_ACCOUNT_LEN		12
#define SF_MAX_DATE_S		253402300799.0	/* 9999-12-31T23:59:59Z */
#define SF_MAX_B64 \
	(sodium_base64_ENCODED_LEN(PROTO_MAX_VALUE, sodium_base64_VARIANT_ORIGINAL) - 1)
#define SF_SCRATCH_LEN		(PROTO_MAX_VALUE + 2)	/* unpadded max-length base64 decodes to 2 more */

static const char sf_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Where validation is, so errors name the secret, version and field. */
struct sf_where {
	char *err;
	size_t errlen;
	bool in_secret;
	size_t secret_idx;
	const char *secret_name;	/* once validated */
	bool in_version;
	size_t version_idx;
};

/* ---- text helpers ------------------------------------------------------------------------ */

/* Copies printable ASCII (others become '?') for a message; "..." marks a cut. */
void
sf_shown(char *dst, size_t dstlen, const char *src)
{
	size_t i, n = strlen(src);

	for (i = 0; i < n && i + 1 < dstlen; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
	if (i < n && dstlen >= 4)
		memcpy(dst + dstlen - 4, "...", 4);
}

static bool
sf_charset(const char *s, size_t min, size_t max, const char *extra, bool lower_only)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (!lower_only && c >= 'A' && c <= 'Z') || (c != '\0' && strchr(extra, c) != NULL);
		if (!ok)
			return false;
	}
	return true;
}

static bool
sf_printable_ascii(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] >= 0x7f)
			return false;
	return true;
}

/* ---- validation -------------------------------------------------------------------------- */

static int
sf_fail(struct sf_where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
sf_fail(struct sf_where *w, const char *fmt, ...)
{
	char reason[256], where[160] = "", name[49];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (w->in_secret) {
		if (w->secret_name != NULL) {
			sf_shown(name, sizeof(name), w->secret_name);
			snprintf(where, sizeof(where), "secret \"%s\" (Secrets[%zu])", name,
			    w->secret_idx);
		} else {
			snprintf(where, sizeof(where), "Secrets[%zu]", w->secret_idx);
		}
		if (w->in_version) {
			size_t n = strlen(where);
			snprintf(where + n, sizeof(where) - n, ", Versions[%zu]", w->version_idx);
		}
		snprintf(w->err, w->errlen, "%s: %s", where, reason);
	} else {
		snprintf(w->err, w->errlen, "%s", reason);
	}
	return -1;
}

struct sf_field {
	const char *key;
	const cJSON *item;	/* NULL when absent or null */
};

/* Sorts an object's members into fields; unknown or repeated keys are errors. */
static int
sf_take_fields(struct sf_where *w, const cJSON *obj, const char *what,
    struct sf_field *fields, size_t n)
{
	char key[72];

	if (!cJSON_IsObject(obj))
		return sf_fail(w, "%s must be a JSON object", what);
	for (const cJSON *c = obj->child; c != NULL; c = c->next) {
		bool seen = false;
		size_t i;

		if (c->string == NULL)
			return sf_fail(w, "%s has a member without a name", what);
		for (i = 0; i < n; i++)
			if (strcmp(c->string, fields[i].key) == 0)
				break;
		if (i == n) {
			sf_shown(key, sizeof(key), c->string);
			return sf_fail(w, "unknown field \"%s\" in %s", key, what);
		}
		/* A duplicate null still counts as a duplicate. */
		for (const cJSON *p = obj->child; p != c; p = p->next)
			if (strcmp(p->string, c->string) == 0)
				seen = true;
		if (seen)
			return sf_fail(w, "field %s appears twice", fields[i].key);
		if (!cJSON_IsNull(c))
			fields[i].item = c;
	}
	return 0;
}

static int
sf_date(struct sf_where *w, const struct sf_field *f, bool positive, int64_t *ms)
{
	double v;

	*ms = 0;
	if (f->item == NULL)
		return 0;
	if (!cJSON_IsNumber(f->item))
		return sf_fail(w, "%s must be a number (seconds since the epoch)", f->key);
	v = f->item->valuedouble;
	if (!isfinite(v) || v < 0 || v > SF_MAX_DATE_S || (positive && v <= 0))
		return sf_fail(w, "%s must be %s seconds since the epoch, before year 10000",
		    f->key, positive ? "a positive number of" : "a number of");
	*ms = (int64_t)llround(v * 1000.0);
	return 0;
}

static int
sf_string(struct sf_where *w, const struct sf_field *f, const char **out)
{
	if (!cJSON_IsString(f->item) || f->item->valuestring == NULL)
		return sf_fail(w, "%s must be a string", f->key);
	*out = f->item->valuestring;
	return 0;
}

static int
sf_secret_binary_check(struct sf_store *s, struct sf_where *w, const char *b64, size_t len)
{
	size_t bin_len;

	if (len > SF_MAX_B64)
		return sf_fail(w, "SecretBinary is larger than %d bytes", PROTO_MAX_VALUE);
	if (s->scratch == NULL && (s->scratch = malloc(SF_SCRATCH_LEN)) == NULL)
		return sf_fail(w, "out of memory");
	if (sodium_base642bin(s->scratch, SF_SCRATCH_LEN, b64, len, NULL, &bin_len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		return sf_fail(w, "SecretBinary is not valid base64 (standard alphabet, padded)");
	sodium_memzero(s->scratch, bin_len);
	if (bin_len > PROTO_MAX_VALUE)
		return sf_fail(w, "SecretBinary is larger than %d bytes", PROTO_MAX_VALUE);
	return 0;
}

enum { FV_ID, FV_STAGES, FV_STRING, FV_BINARY, FV_CREATED, FV_COUNT };

static int
sf_version_build(struct sf_store *s, struct sf_where *w, const cJSON *obj, struct sf_version *v)
{
	struct sf_field f[FV_COUNT] = {
		[FV_ID] = { "VersionId", NULL }, [FV_STAGES] = { "VersionStages", NULL },
		[FV_STRING] = { "SecretString", NULL }, [FV_BINARY] = { "SecretBinary", NULL },
		[FV_CREATED] = { "CreatedDate", NULL },
	};
	const char *text = NULL;

	if (sf_take_fields(w, obj, "a version", f, FV_COUNT) != 0)
		return -1;
	if (f[FV_ID].item == NULL)
		return sf_fail(w, "VersionId is missing");
	if (sf_string(w, &f[FV_ID], &v->version_id) != 0)
		return -1;
	if (!sf_charset(v->version_id, 1, PROTO_MAX_VERSION_ID, "_-", false))
		return sf_fail(w, "VersionId must be 1 to %d characters of [A-Za-z0-9_-]",
		    PROTO_MAX_VERSION_ID);

	if (f[FV_STAGES].item != NULL) {
		const cJSON *a = f[FV_STAGES].item;

		if (!cJSON_IsArray(a))
			return sf_fail(w, "VersionStages must be an array of strings");
		for (const cJSON *c = a->child; c != NULL; c = c->next) {
			if (v->stage_count == PROTO_MAX_STAGES)
				return sf_fail(w, "VersionStages has more than %d labels",
				    PROTO_MAX_STAGES);
			if (!cJSON_IsString(c) || c->valuestring == NULL)
				return sf_fail(w, "VersionStages must be an array of strings");
			if (!sf_printable_ascii(c->valuestring, 1, PROTO_MAX_VERSION_STAGE))
				return sf_fail(w, "VersionStages[%zu] must be 1 to %d printable "
				    "ASCII characters", v->stage_count, PROTO_MAX_VERSION_STAGE);
			v->stages[v->stage_count++] = c->valuestring;
		}
	}

	if (f[FV_STRING].item != NULL && f[FV_BINARY].item != NULL)
		return sf_fail(w, "has both SecretString and SecretBinary; a version has one");
	if (f[FV_STRING].item == NULL && f[FV_BINARY].item == NULL)
		return sf_fail(w, "has neither SecretString nor SecretBinary");
	v->is_binary = f[FV_BINARY].item != NULL;
	if (sf_string(w, &f[v->is_binary ? FV_BINARY : FV_STRING], &text) != 0)
		return -1;
	v->value_item = (cJSON *)f[v->is_binary ? FV_BINARY : FV_STRING].item;
	v->value = text;
	v->value_len = strlen(text);
	if (v->is_binary) {
		if (sf_secret_binary_check(s, w, v->value, v->value_len) != 0)
			return -1;
	} else if (v->value_len > PROTO_MAX_VALUE) {
		return sf_fail(w, "SecretString is larger than %d bytes", PROTO_MAX_VALUE);
	}
	return sf_date(w, &f[FV_CREATED], false, &v->created_ms);
}

/* Checks an ARN against arn:<partition>:secretsmanager:<Region>:<Account>:secret:<Name>-XXXXXX */
static bool
sf_arn_valid(const struct sf_store *s, const char *arn, const char *name)
{
	struct sm_arn a;
	size_t nlen = strlen(name);

	if (sm_id_arn_split(arn, &a) != 0 || a.partition_len > SF_MAX_PARTITION)
		return false;
	for (size_t i = 0; i < a.partition_len; i++)
		if (!((a.partition[i] >= 'a' && a.partition[i] <= 'z') || a.partition[i] == '-'))
			return false;
	if (a.region_len != strlen(s->region) || strncmp(a.region, s->region, a.region_len) != 0 ||
	    a.account_len != strlen(s->account) || strncmp(a.account, s->account, a.account_len) != 0)
		return false;
	return a.resource_len == nlen + SM_ID_SUFFIX_LEN && strncmp(a.resource, name, nlen) == 0 &&
	    sm_id_has_suffix(a.resource, a.resource_len);
}

/* The ARN AWS would have made, with a suffix derived from the name so it is stable. */
static char *
sf_arn_derive(const struct sf_store *s, const char *name)
{
	unsigned char h[16];
	char suffix[SM_ID_SUFFIX_CHARS + 1];
	const char *partition = sm_id_region_partition(s->region);
	char *arn;

	crypto_generichash(h, sizeof(h), (const unsigned char *)name, strlen(name),
	    (const unsigned char *)"smcache-file-arn", 16);
	for (size_t i = 0; i < SM_ID_SUFFIX_CHARS; i++)
		suffix[i] = sf_alnum[h[i] % (sizeof(sf_alnum) - 1)];
	suffix[SM_ID_SUFFIX_CHARS] = '\0';
	if (asprintf(&arn, "arn:%s:secretsmanager:%s:%s:secret:%s-%s", partition, s->region,
	    s->account, name, suffix) < 0)
		return NULL;
	return arn;
}

struct sf_label {
	const char *label;
	size_t version;
};

static int
sf_label_cmp(const void *a, const void *b)
{
	const struct sf_label *x = a, *y = b;
	int c = strcmp(x->label, y->label);

	if (c != 0)
		return c;
	return (x->version > y->version) - (x->version < y->version);
}

/* Version ids unique; each label on at most one version, once; AWSCURRENT present. */
static int
sf_versions_check(struct sf_where *w, const struct sf_secret *sec)
{
	struct sf_label *labels = NULL;
	size_t n = 0;
	bool current = false;
	char shown[72];
	int rc = -1;

	w->in_version = false;
	for (size_t i = 0; i < sec->version_count; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(sec->versions[i].version_id, sec->versions[j].version_id) == 0)
				return sf_fail(w, "Versions[%zu] and Versions[%zu] have the same "
				    "VersionId \"%s\"", j, i, sec->versions[i].version_id);
	if (sec->version_count == 0)
		return 0;
	labels = calloc(sec->version_count * PROTO_MAX_STAGES, sizeof(*labels));
	if (labels == NULL)
		return sf_fail(w, "out of memory");
	for (size_t i = 0; i < sec->version_count; i++) {
		for (size_t k = 0; k < sec->versions[i].stage_count; k++) {
			labels[n].label = sec->versions[i].stages[k];
			labels[n++].version = i;
		}
	}
	qsort(labels, n, sizeof(*labels), sf_label_cmp);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(labels[i].label, "AWSCURRENT") == 0)
			current = true;
		if (i == 0 || strcmp(labels[i].label, labels[i - 1].label) != 0)
			continue;
		sf_shown(shown, sizeof(shown), labels[i].label);
		if (labels[i].version == labels[i - 1].version)
			sf_fail(w, "Versions[%zu]: staging label \"%s\" is listed twice",
			    labels[i].version, shown);
		else
			sf_fail(w, "staging label \"%s\" is on Versions[%zu] and Versions[%zu]; "
			    "a label is on one version at most", shown, labels[i - 1].version,
			    labels[i].version);
		goto out;
	}
	if (!current) {
		sf_fail(w, "no version is labelled AWSCURRENT");
		goto out;
	}
	rc = 0;
out:
	free(labels);
	return rc;
}

enum { FS_NAME, FS_ARN, FS_DESCRIPTION, FS_CREATED, FS_CHANGED, FS_DELETED, FS_VERSIONS, FS_COUNT };

static int
sf_secret_build(struct sf_store *s, struct sf_where *w, const cJSON *obj, struct sf_secret *sec)
{
	struct sf_field f[FS_COUNT] = {
		[FS_NAME] = { "Name", NULL }, [FS_ARN] = { "ARN", NULL },
		[FS_DESCRIPTION] = { "Description", NULL }, [FS_CREATED] = { "CreatedDate", NULL },
		[FS_CHANGED] = { "LastChangedDate", NULL }, [FS_DELETED] = { "DeletedDate", NULL },
		[FS_VERSIONS] = { "Versions", NULL },
	};
	const cJSON *versions;
	size_t n = 0;

	/* Name the secret in errors about its other fields, whatever their order. */
	if (cJSON_IsObject(obj)) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(obj, "Name");

		if (cJSON_IsString(name) && name->valuestring != NULL &&
		    sm_id_name_valid(name->valuestring))
			w->secret_name = name->valuestring;
	}
	if (sf_take_fields(w, obj, "a secret", f, FS_COUNT) != 0)
		return -1;
	if (f[FS_NAME].item == NULL)
		return sf_fail(w, "Name is missing");
	if (sf_string(w, &f[FS_NAME], &sec->name) != 0)
		return -1;
	if (!sm_id_name_valid(sec->name))
		return sf_fail(w, "Name must be 1 to %d characters of [A-Za-z0-9/_+=.@-]",
		    SM_ID_MAX_NAME);
	w->secret_name = sec->name;

	if (f[FS_ARN].item != NULL) {
		if (sf_string(w, &f[FS_ARN], &sec->arn) != 0)
			return -1;
		if (!sf_arn_valid(s, sec->arn, sec->name))
			return sf_fail(w, "ARN must be arn:<partition>:secretsmanager:<Region>:"
			    "<Account>:secret:<Name>-<6 letters or digits>");
	} else {
		if ((sec->arn_owned = sf_arn_derive(s, sec->name)) == NULL)
			return sf_fail(w, "out of memory");
		sec->arn = sec->arn_owned;
	}

	if (f[FS_DESCRIPTION].item != NULL) {
		if (sf_string(w, &f[FS_DESCRIPTION], &sec->description) != 0)
			return -1;
		if (strlen(sec->description) > PROTO_MAX_DESCRIPTION ||
		    !proto_utf8_valid(sec->description,
		    strlen(sec->description)))
			return sf_fail(w, "Description must be valid UTF-8 of at most %d bytes",
			    PROTO_MAX_DESCRIPTION);
	}
	if (sf_date(w, &f[FS_CREATED], false, &sec->created_ms) != 0 ||
	    sf_date(w, &f[FS_CHANGED], false, &sec->last_changed_ms) != 0 ||
	    sf_date(w, &f[FS_DELETED], true, &sec->deleted_ms) != 0)
		return -1;

	versions = f[FS_VERSIONS].item;
	if (versions == NULL)
		return 0;
	if (!cJSON_IsArray(versions))
		return sf_fail(w, "Versions must be an array");
	for (const cJSON *c = versions->child; c != NULL; c = c->next)
		if (++n > PROTO_MAX_VERSIONS)
			return sf_fail(w, "Versions has more than %d versions", PROTO_MAX_VERSIONS);
	if (n == 0)
		return 0;
	if ((sec->versions = calloc(n, sizeof(*sec->versions))) == NULL)
		return sf_fail(w, "out of memory");
	w->in_version = true;
	for (const cJSON *c = versions->child; c != NULL; c = c->next) {
		w->version_idx = sec->version_count;
		if (sf_version_build(s, w, c, &sec->versions[sec->version_count]) != 0)
			return -1;
		sec->version_count++;
	}
	return sf_versions_check(w, sec);
}

static int
sf_name_cmp(const void *a, const void *b)
{
	const struct sf_secret *x = *(const struct sf_secret *const *)a;
	const struct sf_secret *y = *(const struct sf_secret *const *)b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return (x > y) - (x < y);
}

static int
sf_names_unique(struct sf_store *s, struct sf_where *w)
{
	struct sf_secret **sorted;
	int rc = 0;

	if (s->secret_count < 2)
		return 0;
	if ((sorted = calloc(s->secret_count, sizeof(*sorted))) == NULL)
		return sf_fail(w, "out of memory");
	for (size_t i = 0; i < s->secret_count; i++)
		sorted[i] = &s->secrets[i];
	qsort(sorted, s->secret_count, sizeof(*sorted), sf_name_cmp);
	for (size_t i = 1; i < s->secret_count; i++) {
		if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
			w->in_secret = true;
			w->in_version = false;
			w->secret_idx = (size_t)(sorted[i] - s->secrets);
			w->secret_name = sorted[i]->name;
			rc = sf_fail(w, "Name is already used by Secrets[%zu]; names are unique",
			    (size_t)(sorted[i - 1] - s->secrets));
			break;
		}
	}
	free(sorted);
	return rc;
}

enum { FT_REGION, FT_ACCOUNT, FT_SECRETS, FT_COUNT };

static int
sf_store_build(struct sf_store *s, struct sf_where *w)
{
	struct sf_field f[FT_COUNT] = {
		[FT_REGION] = { "Region", NULL }, [FT_ACCOUNT] = { "Account", NULL },
		[FT_SECRETS] = { "Secrets", NULL },
	};
	const cJSON *list;
	size_t n = 0;

	if (sf_take_fields(w, s->root, "the top level", f, FT_COUNT) != 0)
		return -1;
	if (f[FT_REGION].item == NULL)
		return sf_fail(w, "Region is missing");
	if (sf_string(w, &f[FT_REGION], &s->region) != 0)
		return -1;
	if (!sm_id_region_valid(s->region))
		return sf_fail(w, "Region must be a region name (1 to %d lowercase letters, digits"
		    " and single dashes, starting with a letter, like us-east-1)", SM_ID_MAX_REGION);
	if (f[FT_ACCOUNT].item == NULL)
		return sf_fail(w, "Account is missing");
	if (sf_string(w, &f[FT_ACCOUNT], &s->account) != 0)
		return -1;
	if (strlen(s->account) != SF_ACCOUNT_LEN || strspn(s->account, "0123456789") != SF_ACCOUNT_LEN)
		return sf_fail(w, "Account must be %d digits", SF_ACCOUNT_LEN);
	if (f[FT_SECRETS].item == NULL)
		return sf_fail(w, "Secrets is missing");
	list = f[FT_SECRETS].item;
	if (!cJSON_IsArray(list))
		return sf_fail(w, "Secrets must be an array");
	for (const cJSON *c = list->child; c != NULL; c = c->next)
		n++;
	if (n == 0)
		return 0;
	if ((s->secrets = calloc(n, sizeof(*s->secrets))) == NULL)
		return sf_fail(w, "out of memory");
	for (const cJSON *c = list->child; c != NULL; c = c->next) {
		w->in_secret = true;
		w->in_version = false;
		w->secret_idx = s->secret_count;
		w->secret_name = NULL;
		/* Counted first, so sf_store_free sees what this secret allocated. */
		s->secret_count++;
		if (sf_secret_build(s, w, c, &s->secrets[w->secret_idx]) != 0)
			return -1;
	}
	w->in_secret = false;
	return sf_names_unique(s, w);
}

/* 1-based line and column of a byte offset, for syntax errors. */
static void
sf_position(const char *buf, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/*
 * What cJSON accepts but cannot represent: NUL bytes, and "\u0000" escapes
 * (cJSON's strings end at the first NUL, so the value would be cut short).
 */
static int
sf_prescan(const char *buf, size_t len, char *err, size_t errlen)
{
	bool in_string = false;
	size_t line, col;

	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\0') {
			sf_position(buf, i, &line, &col);
			snprintf(err, errlen, "line %zu, column %zu: NUL byte", line, col);
			return -1;
		}
		if (!in_string) {
			in_string = buf[i] == '"';
		} else if (buf[i] == '"') {
			in_string = false;
		} else if (buf[i] == '\\' && i + 1 < len) {
			if (buf[i + 1] == 'u' && len - i >= 6 && memcmp(buf + i + 2, "0000", 4) == 0) {
				sf_position(buf, i, &line, &col);
				snprintf(err, errlen, "line %zu, column %zu: \\u0000 in a string is "
				    "not supported", line, col);
				return -1;
			}
			i++;	/* the escaped character, so \" does not end the string */
		}
	}
	return 0;
}

/* Parses and validates s->buf (s->len bytes, NUL-terminated). */
int
sf_store_parse(struct sf_store *s, char *err, size_t errlen)
{
	struct sf_where w = { .err = err, .errlen = errlen };
	const char *end = NULL;
	size_t i, line, col;

	if (s->len == 0 || strspn(s->buf, " \t\r\n") == s->len) {
		snprintf(err, errlen, "the file is empty");
		return -1;
	}
	if (sf_prescan(s->buf, s->len, err, errlen) != 0)
		return -1;
	/* The terminating NUL is part of the length: cJSON then rejects trailing bytes. */
	s->root = cJSON_ParseWithLengthOpts(s->buf, s->len + 1, &end, 1);
	if (s->root == NULL) {
		i = end != NULL && end >= s->buf ? (size_t)(end - s->buf) : 0;
		if (i > s->len)
			i = s->len;
		sf_position(s->buf, i, &line, &col);
		snprintf(err, errlen, "line %zu, column %zu: not valid JSON", line, col);
		return -1;
	}
	return sf_store_build(s, &w);
}

void
sf_store_free(struct sf_store *s)
{
	if (s->indexed)
		table_destroy(&s->ids);
	for (size_t i = 0; i < s->secret_count; i++) {
		free(s->secrets[i].arn_owned);
		free(s->secrets[i].partial);
		for (size_t j = 0; j < s->secrets[i].version_count; j++)
			free(s->secrets[i].versions[j].sealed);
		free(s->secrets[i].versions);
	}
	free(s->secrets);
	cJSON_Delete(s->root);
	if (s->buf != NULL) {
		sodium_memzero(s->buf, s->buf_size);
		free(s->buf);
	}
	if (s->scratch != NULL) {
		sodium_memzero(s->scratch, SF_SCRATCH_LEN);
		free(s->scratch);
	}
	memset(s, 0, sizeof(*s));
}

/* ---- sealing: what a parse keeps -------------------------------------------------------- */

/*
 * Seals every value under key and drops every plaintext copy the parse made:
 * the JSON strings of values, the decoded-binary scratch and the file's bytes.
 */
int
sf_store_seal(struct sf_store *s, const uint8_t *key, char *err, size_t errlen)
{
	size_t bin_len;

	/* Lookups by name, ARN and partial ARN: a hash each, not a scan of every secret. */
	if (table_init(&s->ids, s->secret_count * 3 + 16) != 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->indexed = true;
	for (size_t i = 0; i < s->secret_count; i++) {
		struct sf_secret *sec = &s->secrets[i];
		size_t alen = strlen(sec->arn);

		/* Every ARN here ends with "-XXXXXX". */
		if ((sec->partial = strndup(sec->arn, alen - SM_ID_SUFFIX_LEN)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		for (int k = 0; k < SF_ID_KINDS; k++) {
			const char *id = k == SF_ID_NAME ? sec->name : k == SF_ID_ARN ? sec->arn :
			    sec->partial;

			sec->ids[k].secret = sec;
			sec->ids[k].kind = (enum sf_id_kind)k;
			table_insert(&s->ids, &sec->ids[k].node, table_hash(&s->ids, id, NULL, NULL));
		}
	}

	for (size_t i = 0; i < s->secret_count; i++) {
		for (size_t j = 0; j < s->secrets[i].version_count; j++) {
			struct sf_version *v = &s->secrets[i].versions[j];
			const uint8_t *plain = (const uint8_t *)v->value;
			size_t len = v->value_len;

			if (v->is_binary) {
				/* Validated by the parse, so this decodes. */
				if (s->scratch == NULL || sodium_base642bin(s->scratch,
				    SF_SCRATCH_LEN, v->value, v->value_len, NULL, &bin_len, NULL,
				    sodium_base64_VARIANT_ORIGINAL) != 0) {
					snprintf(err, errlen, "cannot decode SecretBinary");
					return -1;
				}
				plain = s->scratch;
				len = bin_len;
			}
			if ((v->sealed = malloc(SF_NONCE + SF_MAC + len)) == NULL) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			randombytes_buf(v->sealed, SF_NONCE);
			crypto_secretbox_easy(v->sealed + SF_NONCE, plain, len, v->sealed, key);
			v->plain_len = len;
			if (v->is_binary)
				sodium_memzero(s->scratch, len);
			/* json_secure's free wipes the string too; wiping here says so. */
			sodium_memzero(v->value_item->valuestring, v->value_len);
			cJSON_free(v->value_item->valuestring);
			v->value_item->valuestring = NULL;
			v->value = NULL;
		}
	}
	if (s->buf != NULL) {
		sodium_memzero(s->buf, s->buf_size);
		free(s->buf);
		s->buf = NULL;
	}
	if (s->scratch != NULL) {
		sodium_memzero(s->scratch, SF_SCRATCH_LEN);
		free(s->scratch);
		s->scratch = NULL;
	}
	return 0;
}

int
backend_file_validate_buffer(const void *data, size_t len, size_t *secret_count,
    char *err, size_t errlen)
{
	struct sf_store s;
	int rc;

	memset(&s, 0, sizeof(s));
	if (len > BACKEND_FILE_MAX_SIZE) {
		snprintf(err, errlen, "larger than %u MiB", BACKEND_FILE_MAX_SIZE >> 20);
		return -1;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialize");
		return -1;
	}
	json_secure_init();
	if ((s.buf = malloc(len + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s.buf_size = len + 1;
	if (len > 0)
		memcpy(s.buf, data, len);
	s.buf[len] = '\0';
	s.len = len;
	rc = sf_store_parse(&s, err, errlen);
	if (rc == 0 && secret_count != NULL)
		*secret_count = s.secret_count;
	sf_store_free(&s);
	return rc;
}
