/*
 * backend_file: secrets from a local JSON file that models AWS Secrets
 * Manager. Owns the file format, its validation, the sealed index of the
 * file's last state, lookups and the deferred request queue. Keeps no
 * plaintext value between requests.
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
 * The file is parsed once per change, not per request: each request
 * stat()s it (about a microsecond) and only a new identity (device, inode,
 * size, mtime, ctime) makes it read and validate the file again (about
 * 30 ms for a 15 MB file, on the event loop, once). A change inside the
 * file system's timestamp granularity (a same-size rewrite in place within
 * one clock tick of the last read) is caught by reading once more on the
 * first request 200 ms after such a "racy" read (hashing the bytes, and
 * parsing only when they differ), so every change is seen within a second. What a parse keeps is an index: names, ARNs, versions,
 * labels, dates, and each value sealed (libsodium's secretbox,
 * XSalsa20-Poly1305, under a key in guarded memory); the file's bytes and the JSON copies of values are
 * wiped as soon as the index is built. A request opens one value into
 * guarded memory, hands it to the callback and wipes it. An invalid edit
 * fails requests with UPSTREAM_UNAVAILABLE until fixed (that state is kept
 * too, so a broken file is not parsed again per request either). The file
 * must pass sys_file's trust rule (not writable by group or others, owned
 * by root or the agent's user, on a safe path).
 */
#define LOG_COMPONENT "file"

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
#include "sm_id.h"
#include "sys_file.h"
#include "table.h"
#include "utf8.h"

#define SF_MAX_PARTITION	16
#define SF_ACCOUNT_LEN		12
#define SF_MAX_DATE_S		253402300799.0	/* 9999-12-31T23:59:59Z */
#define SF_MAX_B64 \
	(sodium_base64_ENCODED_LEN(PROTO_MAX_VALUE, sodium_base64_VARIANT_ORIGINAL) - 1)
#define SF_SCRATCH_LEN		(PROTO_MAX_VALUE + 2)	/* unpadded max-length base64 decodes to 2 more */
#define SF_SHOWN_ID		64	/* client-given ids are shortened to this in messages */
#define SF_SHOWN_PATH		72
/*
 * File times come from the kernel's coarse clock (one tick: 1 to 10 ms), so
 * a read within a tick of the file's last change could miss a same-size
 * rewrite in that tick. A read this close (with room for clock skew) is
 * "racy" and looked at again this long after it.
 */
#define SF_RACY_MS		100
#define SF_RECHECK_MS		200
/* The index's sealing: libsodium's secretbox, directly (cache/seal.c is the cache's, with
 * size classes this backend does not need, and the backend wing may not include cache/). */
#define SF_NONCE		crypto_secretbox_NONCEBYTES
#define SF_MAC			crypto_secretbox_MACBYTES

static const char sf_alnum[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* ---- the parsed file: the index of its last valid state ---------------------------------- */

struct sf_version {
	const char *version_id;
	const char *stages[PROTO_MAX_STAGES];
	size_t stage_count;
	int64_t created_ms;
	bool is_binary;
	const char *value;		/* SecretString, or SecretBinary's base64, in the cJSON
					 * tree; NULL once sealed */
	size_t value_len;
	cJSON *value_item;		/* its tree node, to drop the string once sealed */
	uint8_t *sealed;		/* nonce, then secretbox of the (decoded) value */
	size_t plain_len;		/* bytes of the (decoded) value */
};

/* One way to name a secret, in the index's hash table. */
enum sf_id_kind { SF_ID_NAME, SF_ID_ARN, SF_ID_PARTIAL, SF_ID_KINDS };

struct sf_id_node {
	struct table_node node;
	struct sf_secret *secret;
	enum sf_id_kind kind;
};

struct sf_secret {
	const char *name;
	const char *arn;		/* in the tree, or arn_owned */
	char *arn_owned;
	char *partial;			/* the ARN without its "-XXXXXX", for the index */
	struct sf_id_node ids[SF_ID_KINDS];
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
	struct table ids;		/* names, ARNs and partial ARNs (the index only) */
	bool indexed;
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
	uint8_t *key;			/* sealing key of the index, in guarded memory */
	/* The state of the file last read: its index, or why it failed (logged once). */
	struct sys_file_ident ident;
	struct sf_store *index;		/* NULL while failing */
	bool failing;
	struct backend_error fail_error;
	int64_t recheck_at;		/* 0, or when a racy read is looked at again (CLOCK_REALTIME ms) */
	bool have_digest;
	uint8_t digest[crypto_generichash_BYTES];	/* of the bytes of a racy read */
	uint8_t *plain;			/* one opened value at a time, in guarded memory */
	int in_callback;		/* a callback is running: free only after it */
	bool free_pending;
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
static int
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

/* ---- reading the file -------------------------------------------------------------------- */

static int64_t
sf_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* What one read of the file gave, besides the index. */
struct sf_read {
	struct sys_file_ident ident;	/* of what was read (or of the path, unreadable) */
	bool racy;			/* read within SF_RACY_MS of its last change */
	bool have_digest;
	uint8_t digest[crypto_generichash_BYTES];	/* of the bytes, when racy */
	bool unchanged;			/* the bytes hash to the digest given: not parsed */
};

/*
 * Reads (sys_file: trusted, bounded, read(2) only), validates and seals the
 * file into a new index. On failure the error is UPSTREAM_UNAVAILABLE (the
 * file is this backend's upstream). A racy read (the file changed within
 * SF_RACY_MS before now_ms) keeps a digest of the bytes; when same_as is
 * given and the bytes hash to it, nothing is parsed: rd->unchanged, NULL,
 * no error.
 */
static struct sf_store *
sf_parse_file(struct backend_file *bf, int64_t now_ms, const uint8_t *same_as,
    struct sf_read *rd, struct backend_error *error)
{
	const struct sys_file_opts opts = { .max_size = BACKEND_FILE_MAX_SIZE, .trust = true };
	struct sys_file f;
	struct sf_store *s = NULL;
	char reason[512];
	int64_t changed_ms;

	memset(rd, 0, sizeof(*rd));
	sys_file_ident_path(bf->path, &rd->ident);
	if (sys_file_read(bf->path, &opts, &f, reason, sizeof(reason)) != 1) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "cannot read secrets file %s: %s", bf->path_shown, reason);
		return NULL;
	}
	sys_file_ident_of(&f.st, &rd->ident);
	changed_ms = sf_ms(&f.st.st_ctim) > sf_ms(&f.st.st_mtim) ? sf_ms(&f.st.st_ctim) :
	    sf_ms(&f.st.st_mtim);
	rd->racy = now_ms < changed_ms + SF_RACY_MS;
	if (rd->racy || same_as != NULL) {
		/* BLAKE2b, about 20 ms for 15 MB: only for racy reads and their second look. */
		crypto_generichash(rd->digest, sizeof(rd->digest), (const unsigned char *)f.data,
		    f.len, NULL, 0);
		rd->have_digest = true;
		if (same_as != NULL && sodium_memcmp(rd->digest, same_as, sizeof(rd->digest)) == 0) {
			rd->unchanged = true;
			sys_file_free(&f);
			return NULL;
		}
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		sys_file_free(&f);
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE, "out of memory");
		return NULL;
	}
	/* The store takes the buffer: it wipes it (sf_store_seal or sf_store_free). */
	s->buf = f.data;
	s->len = f.len;
	s->buf_size = f.size;
	if (sf_store_parse(s, reason, sizeof(reason)) != 0) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "secrets file %s is invalid: %s", bf->path_shown, reason);
		goto fail;
	}
	if (sf_store_seal(s, bf->key, reason, sizeof(reason)) != 0) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "secrets file %s: %s", bf->path_shown, reason);
		goto fail;
	}
	return s;
fail:
	sf_store_free(s);
	free(s);
	return NULL;
}

static void
sf_index_drop(struct backend_file *bf)
{
	if (bf->index != NULL) {
		sf_store_free(bf->index);
		free(bf->index);
		bf->index = NULL;
	}
}

/*
 * The index of the file as it is now: read again only when the file's
 * identity changed, or for the second look a racy read is due (which parses
 * only if the bytes differ). NULL with *error when the file is unreadable or
 * invalid; that is logged once per state.
 */
static struct sf_store *
sf_current(struct backend_file *bf, struct backend_error *error, bool log)
{
	struct sys_file_ident now;
	struct sf_read rd;
	struct timespec ts, done;
	struct sf_store *s;
	bool known, second_look;

	clock_gettime(CLOCK_REALTIME, &ts);
	sys_file_ident_path(bf->path, &now);
	known = (bf->index != NULL || bf->failing) && sys_file_ident_same(&now, &bf->ident);
	second_look = known && bf->recheck_at != 0 && sf_ms(&ts) >= bf->recheck_at;
	if (known && !second_look)
		goto same;
	s = sf_parse_file(bf, sf_ms(&ts), second_look && bf->have_digest ? bf->digest : NULL,
	    &rd, error);
	clock_gettime(CLOCK_REALTIME, &done);
	log_debug("file backend: %s %s in %ld ms: %s", second_look ? "looked again at" : "read",
	    bf->path_shown, (long)((done.tv_sec - ts.tv_sec) * 1000 +
	    (done.tv_nsec - ts.tv_nsec) / 1000000), rd.unchanged ? "unchanged" :
	    s != NULL ? "new index" : "failed");
	bf->recheck_at = rd.racy ? sf_ms(&ts) + SF_RECHECK_MS : 0;
	bf->have_digest = rd.have_digest;
	memcpy(bf->digest, rd.digest, sizeof(bf->digest));
	if (rd.unchanged) {
		bf->ident = rd.ident;
		goto same;
	}
	if (s != NULL) {
		sf_index_drop(bf);
		bf->index = s;
		bf->ident = rd.ident;
		if (bf->failing && log)
			log_info("file backend: secrets file %s is valid again", bf->path_shown);
		bf->failing = false;
		return s;
	}
	sf_index_drop(bf);
	/* The same failure on a second look at the same state is not news. */
	if (log && !(bf->failing && strcmp(error->message, bf->fail_error.message) == 0 &&
	    sys_file_ident_same(&bf->ident, &rd.ident)))
		log_error("file backend: %s", error->message);
	bf->ident = rd.ident;
	bf->failing = true;
	bf->fail_error = *error;
	return NULL;
same:
	if (bf->index != NULL)
		return bf->index;
	*error = bf->fail_error;
	return NULL;
}

/* ---- lookups ----------------------------------------------------------------------------- */

/*
 * A full ARN or name wins over a partial ARN: secret "a" with ARN
 * "...:secret:a-Abc123" and a secret named "a-Abc123" share that string.
 */
static struct sf_secret *
sf_find_secret(const struct sf_store *s, const char *id)
{
	uint64_t h = table_hash(&s->ids, id, NULL, NULL);
	struct sf_secret *full = NULL, *partial = NULL;

	/* The first in file order of each kind, as a scan would find it. */
	for (struct table_node *n = table_chain(&s->ids, h); n != NULL; n = n->next) {
		const struct sf_id_node *in = table_entry(n, struct sf_id_node, node);
		struct sf_secret *sec = in->secret;

		if (n->hash != h)
			continue;
		if (in->kind == SF_ID_PARTIAL) {
			if (strcmp(id, sec->partial) == 0 && (partial == NULL || sec < partial))
				partial = sec;
		} else if (strcmp(id, in->kind == SF_ID_NAME ? sec->name : sec->arn) == 0 &&
		    (full == NULL || sec < full)) {
			full = sec;
		}
	}
	return full != NULL ? full : partial;
}

static bool
sf_has_stage(const struct sf_version *v, const char *stage)
{
	for (size_t i = 0; i < v->stage_count; i++)
		if (strcmp(v->stages[i], stage) == 0)
			return true;
	return false;
}

/*
 * Finds the version a query means and fills *value, its bytes opened into
 * plain (PROTO_MAX_VALUE bytes of guarded memory; the caller wipes them).
 */
static int
sf_lookup_value(const struct sf_store *s, const uint8_t *key, const struct sf_request *req,
    struct backend_value *value, uint8_t *plain, struct backend_error *error)
{
	const char *stage = req->version_stage;
	const struct sf_secret *sec;
	const struct sf_version *v = NULL;
	char id[SF_SHOWN_ID + 1], name[SF_SHOWN_ID + 1], what[SF_SHOWN_ID + 1];

	sf_shown(id, sizeof(id), req->secret_id);
	if ((sec = sf_find_secret(s, req->secret_id)) == NULL) {
		backend_error_set(error, PROTO_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		return -1;
	}
	sf_shown(name, sizeof(name), sec->name);
	if (sec->deleted_ms != 0) {
		backend_error_set(error, PROTO_STATUS_NOT_FOUND,
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
			backend_error_set(error, PROTO_STATUS_NOT_FOUND,
			    "secret \"%s\" has no version \"%s\"", name, what);
			return -1;
		}
		if (stage != NULL && !sf_has_stage(v, stage)) {
			char st[SF_SHOWN_ID + 1];

			sf_shown(what, sizeof(what), req->version_id);
			sf_shown(st, sizeof(st), stage);
			backend_error_set(error, PROTO_STATUS_NOT_FOUND, "version id \"%s\" and "
			    "staging label \"%s\" do not match (secret \"%s\")", what, st, name);
			return -1;
		}
	} else {
		for (size_t i = 0; i < sec->version_count && v == NULL; i++)
			if (sf_has_stage(&sec->versions[i], stage))
				v = &sec->versions[i];
		if (v == NULL) {
			sf_shown(what, sizeof(what), stage);
			backend_error_set(error, PROTO_STATUS_NOT_FOUND,
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
	/* plain_len <= PROTO_MAX_VALUE: the parse checked every value. */
	if (crypto_secretbox_open_easy(plain, v->sealed + SF_NONCE, v->plain_len + SF_MAC,
	    v->sealed, key) != 0) {
		sodium_memzero(plain, v->plain_len);
		backend_error_set(error, PROTO_STATUS_INTERNAL, "sealed value failed to open");
		return -1;
	}
	value->data = plain;
	value->len = v->plain_len;
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

static void sf_destroy(struct backend_file *bf);

static void
sf_do_get(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store *s;
	struct backend_error error;
	struct backend_value value;
	bool ok;

	ok = (s = sf_current(bf, &error, true)) != NULL;
	if (ok && sf_lookup_value(s, bf->key, req, &value, bf->plain, &error) != 0) {
		/* The file was read: the answer is about this secret, not the backend. */
		error.about_secret = true;
		ok = false;
	}
	if (ok)
		bf->b.counters.get_ok++;
	else
		bf->b.counters.get_error++;
	backend_note(&bf->b, ok ? NULL : &error);
	/* The callback may free bf: sf_free then leaves the end to us. */
	bf->in_callback++;
	if (ok)
		req->value_cb(req->arg, &value, NULL);
	else
		req->value_cb(req->arg, NULL, &error);
	bf->in_callback--;
	if (ok)
		sodium_memzero(bf->plain, value.len);
	if (bf->free_pending && bf->in_callback == 0)
		sf_destroy(bf);
}

static void
sf_do_describe(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store *s;
	struct backend_error error;
	struct backend_description d;
	struct backend_version_stages *vs = NULL;
	const struct sf_secret *sec = NULL;
	char id[SF_SHOWN_ID + 1];
	bool ok = false;

	if ((s = sf_current(bf, &error, true)) == NULL)
		goto done;
	if ((sec = sf_find_secret(s, req->secret_id)) == NULL) {
		sf_shown(id, sizeof(id), req->secret_id);
		backend_error_set(&error, PROTO_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		error.about_secret = true;
		goto done;
	}
	if (sec->version_count > 0 &&
	    (vs = calloc(sec->version_count, sizeof(*vs))) == NULL) {
		backend_error_set(&error, PROTO_STATUS_INTERNAL, "out of memory");
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
	backend_note(&bf->b, ok ? NULL : &error);
	/* From here on the callback may have freed bf. */
	if (ok)
		req->describe_cb(req->arg, &d, NULL);
	else
		req->describe_cb(req->arg, NULL, &error);
	free(vs);
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

static void
sf_destroy(struct backend_file *bf)
{
	sf_index_drop(bf);
	if (bf->key != NULL)
		sodium_free(bf->key);
	if (bf->plain != NULL)
		sodium_free(bf->plain);		/* wipes it */
	free(bf->path);
	free(bf);
}

/* Pending requests are dropped: their callbacks are never called. From a
 * value callback, the rest waits until that callback returned. */
static void
sf_free(struct backend *b)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	while ((req = TAILQ_FIRST(&bf->pending)) != NULL) {
		TAILQ_REMOVE(&bf->pending, req, entry);
		sf_request_free(req);
	}
	if (bf->in_callback > 0) {
		bf->free_pending = true;
		return;
	}
	sf_destroy(bf);
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
	struct sf_store *s;
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
	if ((bf->path = sf_absolute_path(path)) == NULL ||
	    (bf->key = sodium_malloc(crypto_secretbox_KEYBYTES)) == NULL ||
	    (bf->plain = sodium_malloc(PROTO_MAX_VALUE)) == NULL)
		goto nomem;
	crypto_secretbox_keygen(bf->key);
	/* Messages show the path as given: shorter, and what the operator typed. */
	sf_shown_tail(shown, sizeof(shown), path);
	memcpy(bf->path_shown, shown, sizeof(shown));
	/* The first parse: its index answers the first requests. */
	if ((s = sf_current(bf, &error, false)) == NULL) {
		snprintf(err, errlen, "%s", error.message);
		sf_free(&bf->b);
		return NULL;
	}
	log_debug("file backend: %zu secrets in %s", s->secret_count, bf->path_shown);
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
