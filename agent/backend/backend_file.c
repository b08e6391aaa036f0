/*
 * backend_file: secrets from a local JSON file that models AWS Secrets
 * Manager. Owns the file format, its validation, lookups and the deferred
 * request queue. Keeps no secret value between requests.
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
 * Lookups: SecretId is the Name, the full ARN, or the ARN without its
 * "-XXXXXX" suffix. No stage and no version id means AWSCURRENT; with a
 * version id and a stage, the stage must be on that version. A secret with a
 * DeletedDate cannot be read but can be described.
 *
 * Every request re-reads the file (there is a cache in front of backends),
 * so edits are seen at once; an invalid edit fails requests with
 * UPSTREAM_UNAVAILABLE until fixed. The read is blocking I/O on a local
 * regular file, done in the event loop: fine for a development backend.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <sodium.h>

#include "backend_file.h"
#include "json_secure.h"
#include "log.h"

#define SF_MAX_REGION		32
#define SF_MAX_PARTITION	16
#define SF_ACCOUNT_LEN		12
#define SF_SUFFIX_LEN		6	/* the random "-XXXXXX" AWS appends to ARNs */
#define SF_MAX_DATE_S		253402300799.0	/* 9999-12-31T23:59:59Z */
#define SF_MAX_B64 \
	(sodium_base64_ENCODED_LEN(SMC_MAX_VALUE, sodium_base64_VARIANT_ORIGINAL) - 1)
#define SF_SCRATCH_LEN		(SMC_MAX_VALUE + 2)	/* unpadded max-length base64 decodes to 2 more */
#define SF_SHOWN_ID		64	/* client-given ids are shortened to this in messages */
#define SF_SHOWN_PATH		72

static const char sf_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* ---- the parsed file: lives for one request only ---------------------------------------- */

struct sf_version {
	const char *version_id;
	const char *stages[SMC_MAX_STAGES];
	size_t stage_count;
	int64_t created_ms;
	bool is_binary;
	const char *value;		/* SecretString, or SecretBinary's base64, in the cJSON tree */
	size_t value_len;
};

struct sf_secret {
	const char *name;
	const char *arn;		/* in the tree, or arn_owned */
	char *arn_owned;
	const char *description;
	int64_t created_ms;
	int64_t last_changed_ms;
	int64_t deleted_ms;
	struct sf_version *versions;
	size_t version_count;
};

struct sf_store {
	char *buf;			/* the file's bytes, NUL-terminated; wiped on free */
	size_t len;
	size_t buf_size;
	cJSON *root;			/* strings wiped on free by json_secure's hooks */
	uint8_t *scratch;		/* decoded SecretBinary; wiped on free */
	const char *region;
	const char *account;
	struct sf_secret *secrets;
	size_t secret_count;
};

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

/* What identifies one state of the file on disk, for "log once per change". */
struct sf_ident {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

/* ---- the backend ------------------------------------------------------------------------ */

struct sf_request {
	TAILQ_ENTRY(sf_request) entry;
	struct backend_file *bf;
	struct event *ev;
	bool is_describe;
	backend_value_cb value_cb;
	backend_describe_cb describe_cb;
	void *arg;
	char *secret_id;
	char *version_stage;		/* NULL when not given */
	char *version_id;		/* NULL when not given */
};

TAILQ_HEAD(sf_request_list, sf_request);

struct backend_file {
	struct backend b;		/* first: ops receive &bf->b */
	char *path;
	char path_shown[SF_SHOWN_PATH];	/* sanitized, for messages */
	struct sf_request_list pending;
	/* The last failure logged, so a broken file is logged once, not per request. */
	bool failing;
	struct sf_ident fail_ident;
	char fail_message[sizeof(((struct backend_error *)0)->message)];
};

/* ---- text helpers ------------------------------------------------------------------------ */

/* Copies printable ASCII (others become '?') for a message; "..." marks a cut. */
static void
sf_shown(char *dst, size_t dstlen, const char *src)
{
	size_t i, n = strlen(src);

	for (i = 0; i < n && i + 1 < dstlen; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
	if (i < n && dstlen >= 4)
		memcpy(dst + dstlen - 4, "...", 4);
}

/* Like sf_shown but keeps the end of a path, its most telling part. */
static void
sf_shown_tail(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);

	if (n + 1 <= dstlen || dstlen < 8) {
		sf_shown(dst, dstlen, src);
		return;
	}
	memcpy(dst, "...", 3);
	sf_shown(dst + 3, dstlen - 3, src + n - (dstlen - 4));
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

/* Well-formed UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static bool
sf_utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t need;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3; cp = c & 0x07; min = 0x10000;
		} else {
			return false;
		}
		if (len - i - 1 < need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
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
		return sf_fail(w, "SecretBinary is larger than %d bytes", SMC_MAX_VALUE);
	if (s->scratch == NULL && (s->scratch = malloc(SF_SCRATCH_LEN)) == NULL)
		return sf_fail(w, "out of memory");
	if (sodium_base642bin(s->scratch, SF_SCRATCH_LEN, b64, len, NULL, &bin_len, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0)
		return sf_fail(w, "SecretBinary is not valid base64 (standard alphabet, padded)");
	sodium_memzero(s->scratch, bin_len);
	if (bin_len > SMC_MAX_VALUE)
		return sf_fail(w, "SecretBinary is larger than %d bytes", SMC_MAX_VALUE);
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
	if (!sf_charset(v->version_id, 1, SMC_MAX_VERSION_ID, "_-", false))
		return sf_fail(w, "VersionId must be 1 to %d characters of [A-Za-z0-9_-]",
		    SMC_MAX_VERSION_ID);

	if (f[FV_STAGES].item != NULL) {
		const cJSON *a = f[FV_STAGES].item;

		if (!cJSON_IsArray(a))
			return sf_fail(w, "VersionStages must be an array of strings");
		for (const cJSON *c = a->child; c != NULL; c = c->next) {
			if (v->stage_count == SMC_MAX_STAGES)
				return sf_fail(w, "VersionStages has more than %d labels",
				    SMC_MAX_STAGES);
			if (!cJSON_IsString(c) || c->valuestring == NULL)
				return sf_fail(w, "VersionStages must be an array of strings");
			if (!sf_printable_ascii(c->valuestring, 1, SMC_MAX_VERSION_STAGE))
				return sf_fail(w, "VersionStages[%zu] must be 1 to %d printable "
				    "ASCII characters", v->stage_count, SMC_MAX_VERSION_STAGE);
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
	v->value = text;
	v->value_len = strlen(text);
	if (v->is_binary) {
		if (sf_secret_binary_check(s, w, v->value, v->value_len) != 0)
			return -1;
	} else if (v->value_len > SMC_MAX_VALUE) {
		return sf_fail(w, "SecretString is larger than %d bytes", SMC_MAX_VALUE);
	}
	return sf_date(w, &f[FV_CREATED], false, &v->created_ms);
}

/* Checks an ARN against arn:<partition>:secretsmanager:<Region>:<Account>:secret:<Name>-XXXXXX */
static bool
sf_arn_valid(const struct sf_store *s, const char *arn, const char *name)
{
	char middle[SF_MAX_REGION + SF_ACCOUNT_LEN + 64];
	size_t plen, mlen, nlen = strlen(name);
	const char *p;

	if (strncmp(arn, "arn:", 4) != 0)
		return false;
	p = arn + 4;
	plen = strcspn(p, ":");
	if (plen == 0 || plen > SF_MAX_PARTITION)
		return false;
	for (size_t i = 0; i < plen; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '-'))
			return false;
	p += plen;
	mlen = (size_t)snprintf(middle, sizeof(middle), ":secretsmanager:%s:%s:secret:",
	    s->region, s->account);
	if (mlen >= sizeof(middle) || strncmp(p, middle, mlen) != 0)
		return false;
	p += mlen;
	if (strncmp(p, name, nlen) != 0 || p[nlen] != '-')
		return false;
	p += nlen + 1;
	return strlen(p) == SF_SUFFIX_LEN && strspn(p, sf_alnum) == SF_SUFFIX_LEN;
}

/* The ARN AWS would have made, with a suffix derived from the name so it is stable. */
static char *
sf_arn_derive(const struct sf_store *s, const char *name)
{
	unsigned char h[16];
	char suffix[SF_SUFFIX_LEN + 1];
	const char *partition = "aws";
	char *arn;

	crypto_generichash(h, sizeof(h), (const unsigned char *)name, strlen(name),
	    (const unsigned char *)"smcache-file-arn", 16);
	for (size_t i = 0; i < SF_SUFFIX_LEN; i++)
		suffix[i] = sf_alnum[h[i] % (sizeof(sf_alnum) - 1)];
	suffix[SF_SUFFIX_LEN] = '\0';
	if (strncmp(s->region, "cn-", 3) == 0)
		partition = "aws-cn";
	else if (strncmp(s->region, "us-gov-", 7) == 0)
		partition = "aws-us-gov";
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
	labels = calloc(sec->version_count * SMC_MAX_STAGES, sizeof(*labels));
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
		    sf_charset(name->valuestring, 1, SMC_MAX_NAME, "/_+=.@-", false))
			w->secret_name = name->valuestring;
	}
	if (sf_take_fields(w, obj, "a secret", f, FS_COUNT) != 0)
		return -1;
	if (f[FS_NAME].item == NULL)
		return sf_fail(w, "Name is missing");
	if (sf_string(w, &f[FS_NAME], &sec->name) != 0)
		return -1;
	if (!sf_charset(sec->name, 1, SMC_MAX_NAME, "/_+=.@-", false))
		return sf_fail(w, "Name must be 1 to %d characters of [A-Za-z0-9/_+=.@-]",
		    SMC_MAX_NAME);
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
		if (strlen(sec->description) > SMC_MAX_DESCRIPTION ||
		    !sf_utf8_valid((const unsigned char *)sec->description,
		    strlen(sec->description)))
			return sf_fail(w, "Description must be valid UTF-8 of at most %d bytes",
			    SMC_MAX_DESCRIPTION);
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
		if (++n > SMC_MAX_VERSIONS)
			return sf_fail(w, "Versions has more than %d versions", SMC_MAX_VERSIONS);
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
	if (!sf_charset(s->region, 1, SF_MAX_REGION, "-", true))
		return sf_fail(w, "Region must be 1 to %d characters of [a-z0-9-]", SF_MAX_REGION);
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
static int
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

static void
sf_store_free(struct sf_store *s)
{
	for (size_t i = 0; i < s->secret_count; i++) {
		free(s->secrets[i].arn_owned);
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

/* ---- reading the file -------------------------------------------------------------------- */

/*
 * Reads the whole file into s->buf with read(2) (no stdio buffer keeps a
 * copy). Fills *ident when the file could be opened.
 */
static int
sf_read_file(const char *path, struct sf_store *s, struct sf_ident *ident,
    char *err, size_t errlen)
{
	struct stat st;
	size_t cap, got = 0;
	ssize_t n;
	int fd, rc = -1;

	memset(ident, 0, sizeof(*ident));
	/* O_NONBLOCK: opening a FIFO must not hang the event loop. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		goto out;
	}
	ident->exists = true;
	ident->dev = st.st_dev;
	ident->ino = st.st_ino;
	ident->size = st.st_size;
	ident->mtime = st.st_mtim;
	ident->ctime = st.st_ctim;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "not a regular file");
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > BACKEND_FILE_MAX_SIZE) {
		snprintf(err, errlen, "larger than %u MiB", BACKEND_FILE_MAX_SIZE >> 20);
		goto out;
	}
	/* One byte more than expected, to notice a file that grew under us. */
	cap = (size_t)st.st_size + 1;
	if ((s->buf = malloc(cap + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	s->buf_size = cap + 1;
	while (got < cap) {
		n = read(fd, s->buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s", strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got == cap) {
		snprintf(err, errlen, "the file changed while it was read");
		goto out;
	}
	s->buf[got] = '\0';
	s->len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

/*
 * Reads and validates the file. On failure the error is UPSTREAM_UNAVAILABLE
 * (the file is this backend's upstream) and is logged once per change.
 */
static int
sf_load(struct backend_file *bf, struct sf_store *s, struct backend_error *error, bool log)
{
	struct sf_ident ident;
	char reason[256];
	bool same;

	memset(s, 0, sizeof(*s));
	if (sf_read_file(bf->path, s, &ident, reason, sizeof(reason)) != 0) {
		backend_error_set(error, SMC_STATUS_UPSTREAM_UNAVAILABLE,
		    "cannot read secrets file %s: %s", bf->path_shown, reason);
	} else if (sf_store_parse(s, reason, sizeof(reason)) != 0) {
		backend_error_set(error, SMC_STATUS_UPSTREAM_UNAVAILABLE,
		    "secrets file %s is invalid: %s", bf->path_shown, reason);
	} else {
		if (bf->failing && log)
			log_info("file backend: secrets file %s is valid again", bf->path_shown);
		bf->failing = false;
		return 0;
	}
	sf_store_free(s);
	if (!log)
		return -1;
	same = bf->failing && ident.exists == bf->fail_ident.exists &&
	    ident.dev == bf->fail_ident.dev && ident.ino == bf->fail_ident.ino &&
	    ident.size == bf->fail_ident.size &&
	    ident.mtime.tv_sec == bf->fail_ident.mtime.tv_sec &&
	    ident.mtime.tv_nsec == bf->fail_ident.mtime.tv_nsec &&
	    ident.ctime.tv_sec == bf->fail_ident.ctime.tv_sec &&
	    ident.ctime.tv_nsec == bf->fail_ident.ctime.tv_nsec &&
	    strcmp(error->message, bf->fail_message) == 0;
	if (!same) {
		log_error("file backend: %s", error->message);
		bf->failing = true;
		bf->fail_ident = ident;
		snprintf(bf->fail_message, sizeof(bf->fail_message), "%s", error->message);
	}
	return -1;
}

/* ---- lookups ----------------------------------------------------------------------------- */

/*
 * A full ARN or name wins over a partial ARN: secret "a" with ARN
 * "...:secret:a-Abc123" and a secret named "a-Abc123" share that string.
 */
static struct sf_secret *
sf_find_secret(const struct sf_store *s, const char *id)
{
	size_t idlen = strlen(id);

	for (size_t i = 0; i < s->secret_count; i++)
		if (strcmp(id, s->secrets[i].name) == 0 || strcmp(id, s->secrets[i].arn) == 0)
			return &s->secrets[i];
	for (size_t i = 0; i < s->secret_count; i++) {
		const char *arn = s->secrets[i].arn;
		size_t alen = strlen(arn);

		/* Every ARN here ends with "-XXXXXX". */
		if (alen > SF_SUFFIX_LEN + 1 && idlen == alen - SF_SUFFIX_LEN - 1 &&
		    memcmp(id, arn, idlen) == 0)
			return &s->secrets[i];
	}
	return NULL;
}

static bool
sf_has_stage(const struct sf_version *v, const char *stage)
{
	for (size_t i = 0; i < v->stage_count; i++)
		if (strcmp(v->stages[i], stage) == 0)
			return true;
	return false;
}

/* Finds the version a query means and fills *value (binary decoded into s->scratch). */
static int
sf_lookup_value(struct sf_store *s, const struct sf_request *req, struct backend_value *value,
    struct backend_error *error)
{
	const char *stage = req->version_stage;
	const struct sf_secret *sec;
	const struct sf_version *v = NULL;
	char id[SF_SHOWN_ID + 1], name[SF_SHOWN_ID + 1], what[SF_SHOWN_ID + 1];
	size_t bin_len;

	sf_shown(id, sizeof(id), req->secret_id);
	if ((sec = sf_find_secret(s, req->secret_id)) == NULL) {
		backend_error_set(error, SMC_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		return -1;
	}
	sf_shown(name, sizeof(name), sec->name);
	if (sec->deleted_ms != 0) {
		backend_error_set(error, SMC_STATUS_NOT_FOUND,
		    "secret \"%s\" is scheduled for deletion", name);
		return -1;
	}
	if (req->version_id == NULL && stage == NULL)
		stage = "AWSCURRENT";
	if (req->version_id != NULL) {
		for (size_t i = 0; i < sec->version_count && v == NULL; i++)
			if (strcmp(sec->versions[i].version_id, req->version_id) == 0)
				v = &sec->versions[i];
		if (v == NULL) {
			sf_shown(what, sizeof(what), req->version_id);
			backend_error_set(error, SMC_STATUS_NOT_FOUND,
			    "secret \"%s\" has no version \"%s\"", name, what);
			return -1;
		}
		if (stage != NULL && !sf_has_stage(v, stage)) {
			char st[SF_SHOWN_ID + 1];

			sf_shown(what, sizeof(what), req->version_id);
			sf_shown(st, sizeof(st), stage);
			backend_error_set(error, SMC_STATUS_NOT_FOUND, "version id \"%s\" and "
			    "staging label \"%s\" do not match (secret \"%s\")", what, st, name);
			return -1;
		}
	} else {
		for (size_t i = 0; i < sec->version_count && v == NULL; i++)
			if (sf_has_stage(&sec->versions[i], stage))
				v = &sec->versions[i];
		if (v == NULL) {
			sf_shown(what, sizeof(what), stage);
			backend_error_set(error, SMC_STATUS_NOT_FOUND,
			    "secret \"%s\" has no version labelled \"%s\"", name, what);
			return -1;
		}
	}

	memset(value, 0, sizeof(*value));
	value->arn = sec->arn;
	value->name = sec->name;
	value->version_id = v->version_id;
	value->stages = v->stages;
	value->stage_count = v->stage_count;
	value->created_ms = v->created_ms;
	value->is_binary = v->is_binary;
	if (!v->is_binary) {
		value->data = (const uint8_t *)v->value;
		value->len = v->value_len;
		return 0;
	}
	/* Validated when the file was parsed, so this cannot fail. */
	if (s->scratch == NULL || sodium_base642bin(s->scratch, SF_SCRATCH_LEN, v->value,
	    v->value_len, NULL, &bin_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		backend_error_set(error, SMC_STATUS_INTERNAL, "cannot decode SecretBinary");
		return -1;
	}
	value->data = s->scratch;
	value->len = bin_len;
	return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

static void
sf_request_free(struct sf_request *req)
{
	if (req->ev != NULL)
		event_free(req->ev);
	free(req);
}

static void
sf_do_get(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store s;
	struct backend_error error;
	struct backend_value value;
	bool ok;

	ok = sf_load(bf, &s, &error, true) == 0;
	if (ok && sf_lookup_value(&s, req, &value, &error) != 0) {
		/* The file was read: the answer is about this secret, not the backend. */
		error.about_secret = true;
		ok = false;
	}
	if (ok)
		bf->b.counters.get_ok++;
	else
		bf->b.counters.get_error++;
	/* From here on the callback may have freed bf. */
	if (ok)
		req->value_cb(req->arg, &value, NULL);
	else
		req->value_cb(req->arg, NULL, &error);
	sf_store_free(&s);
}

static void
sf_do_describe(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store s;
	struct backend_error error;
	struct backend_description d;
	struct backend_version_stages *vs = NULL;
	const struct sf_secret *sec = NULL;
	char id[SF_SHOWN_ID + 1];
	bool ok = false;

	if (sf_load(bf, &s, &error, true) != 0)
		goto done;
	if ((sec = sf_find_secret(&s, req->secret_id)) == NULL) {
		sf_shown(id, sizeof(id), req->secret_id);
		backend_error_set(&error, SMC_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		error.about_secret = true;
		goto done;
	}
	if (sec->version_count > 0 &&
	    (vs = calloc(sec->version_count, sizeof(*vs))) == NULL) {
		backend_error_set(&error, SMC_STATUS_INTERNAL, "out of memory");
		goto done;
	}
	memset(&d, 0, sizeof(d));
	d.arn = sec->arn;
	d.name = sec->name;
	d.description = sec->description;
	d.created_ms = sec->created_ms;
	d.last_changed_ms = sec->last_changed_ms;
	d.deleted_ms = sec->deleted_ms;
	d.versions = vs;
	/* As DescribeSecret's VersionIdsToStages: only versions with a label. */
	for (size_t i = 0; i < sec->version_count; i++) {
		const struct sf_version *v = &sec->versions[i];

		if (v->stage_count == 0)
			continue;
		vs[d.version_count].version_id = v->version_id;
		vs[d.version_count].stages = v->stages;
		vs[d.version_count].stage_count = v->stage_count;
		vs[d.version_count].created_ms = v->created_ms;
		d.version_count++;
	}
	ok = true;
done:
	if (ok)
		bf->b.counters.describe_ok++;
	else
		bf->b.counters.describe_error++;
	/* From here on the callback may have freed bf. */
	if (ok)
		req->describe_cb(req->arg, &d, NULL);
	else
		req->describe_cb(req->arg, NULL, &error);
	free(vs);
	sf_store_free(&s);
}

static void
sf_request_run(evutil_socket_t fd, short what, void *arg)
{
	struct sf_request *req = arg;
	struct backend_file *bf = req->bf;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&bf->pending, req, entry);
	if (req->is_describe)
		sf_do_describe(bf, req);
	else
		sf_do_get(bf, req);
	sf_request_free(req);
}

/* Queues a request; its strings are copied into the same allocation. */
static struct sf_request *
sf_request_new(struct backend_file *bf, const char *secret_id, const char *stage,
    const char *version_id)
{
	size_t lid = strlen(secret_id) + 1;
	size_t lst = stage != NULL ? strlen(stage) + 1 : 0;
	size_t lvi = version_id != NULL ? strlen(version_id) + 1 : 0;
	struct sf_request *req;
	char *p;

	if ((req = calloc(1, sizeof(*req) + lid + lst + lvi)) == NULL)
		return NULL;
	p = (char *)(req + 1);
	req->secret_id = memcpy(p, secret_id, lid);
	p += lid;
	if (stage != NULL) {
		req->version_stage = memcpy(p, stage, lst);
		p += lst;
	}
	if (version_id != NULL)
		req->version_id = memcpy(p, version_id, lvi);
	req->bf = bf;
	/* An event made active by hand runs on the next loop pass, FIFO, never now. */
	if ((req->ev = event_new(bf->b.base, -1, 0, sf_request_run, req)) == NULL) {
		free(req);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&bf->pending, req, entry);
	event_active(req->ev, EV_TIMEOUT, 0);
	return req;
}

static int
sf_get_value(struct backend *b, const struct backend_query *query, backend_value_cb cb, void *arg)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	if (query == NULL || query->secret_id == NULL || cb == NULL)
		return -1;
	req = sf_request_new(bf, query->secret_id, query->version_stage, query->version_id);
	if (req == NULL)
		return -1;
	req->value_cb = cb;
	req->arg = arg;
	return 0;
}

static int
sf_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	if (secret_id == NULL || cb == NULL)
		return -1;
	if ((req = sf_request_new(bf, secret_id, NULL, NULL)) == NULL)
		return -1;
	req->is_describe = true;
	req->describe_cb = cb;
	req->arg = arg;
	return 0;
}

/* Pending requests are dropped: their callbacks are never called. */
static void
sf_free(struct backend *b)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	while ((req = TAILQ_FIRST(&bf->pending)) != NULL) {
		TAILQ_REMOVE(&bf->pending, req, entry);
		sf_request_free(req);
	}
	free(bf->path);
	free(bf);
}

static const struct backend_ops sf_ops = {
	.name = "file",
	.get_value = sf_get_value,
	.describe = sf_describe,
	.free = sf_free,
};

/* ---- public ------------------------------------------------------------------------------ */

static char *
sf_absolute_path(const char *path)
{
	char *cwd, *abs;

	if (path[0] == '/')
		return strdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

struct backend *
backend_file_new(struct event_base *base, const char *path, char *err, size_t errlen)
{
	struct backend_file *bf = NULL;
	struct backend_error error;
	struct sf_store s;
	char shown[SF_SHOWN_PATH];

	if (base == NULL || path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "file backend: no event base or no path");
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "file backend: libsodium failed to initialize");
		return NULL;
	}
	json_secure_init();
	if ((bf = calloc(1, sizeof(*bf))) == NULL)
		goto nomem;
	bf->b.ops = &sf_ops;
	bf->b.base = base;
	TAILQ_INIT(&bf->pending);
	if ((bf->path = sf_absolute_path(path)) == NULL)
		goto nomem;
	/* Messages show the path as given: shorter, and what the operator typed. */
	sf_shown_tail(shown, sizeof(shown), path);
	memcpy(bf->path_shown, shown, sizeof(shown));
	if (sf_load(bf, &s, &error, false) != 0) {
		snprintf(err, errlen, "%s", error.message);
		sf_free(&bf->b);
		return NULL;
	}
	log_debug("file backend: %zu secrets in %s", s.secret_count, bf->path_shown);
	sf_store_free(&s);
	return &bf->b;
nomem:
	snprintf(err, errlen, "file backend: out of memory");
	if (bf != NULL)
		sf_free(&bf->b);
	return NULL;
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
