/*
 * aws_json: owns the Secrets Manager wire format (AWS JSON 1.1 request
 * bodies, response parsing and validation) and the mapping of upstream
 * errors to protocol statuses. No I/O, no clock, no global state.
 *
 * cJSON silently truncates a string at an escaped NUL ("\u0000") or a raw
 * NUL byte, which would hand out a shortened secret; bodies containing
 * either are rejected before parsing.
 */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "aws_json.h"
#include "utf8.h"

#define AJ_MAX_DATE_S		253402300799.0	/* 9999-12-31T23:59:59Z */
#define AJ_MAX_B64 \
	(sodium_base64_ENCODED_LEN(PROTO_MAX_VALUE, sodium_base64_VARIANT_ORIGINAL) - 1)
#define AJ_MAX_BATCH_VALUES	100	/* entries accepted in one batch page */
#define AJ_MAX_BATCH_ERRORS	100

/* ---- small helpers -------------------------------------------------------------------- */

static int aj_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
aj_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Valid UTF-8 without control characters (tab and newline allowed when multiline). */
static bool
aj_text_ok(const char *s, bool multiline)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s), n;

	while (left > 0) {
		if (*p < 0x20 || *p == 0x7f) {
			if (!multiline || (*p != '\t' && *p != '\n' && *p != '\r'))
				return false;
		}
		if ((n = proto_utf8_seq_len(p, left)) == 0)
			return false;
		p += n;
		left -= n;
	}
	return true;
}

/*
 * Whether the JSON text holds a NUL byte or a "\u0000" escape (inside a
 * string; escapes are only meaningful there, and "\\u0000" is not one).
 */
static bool
aj_has_nul(const char *s, size_t len)
{
	bool in_string = false;
	size_t i;

	if (memchr(s, '\0', len) != NULL)
		return true;
	for (i = 0; i < len; i++) {
		if (!in_string) {
			if (s[i] == '"')
				in_string = true;
			continue;
		}
		if (s[i] == '"')
			in_string = false;
		else if (s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
				return true;
			i++;	/* skip the escaped character */
		}
	}
	return false;
}

/* Parses a whole body that must be one JSON object. */
static int
aj_parse_root(const void *body, size_t len, cJSON **root, char *err, size_t errlen)
{
	const char *text = body, *end = NULL;
	cJSON *doc;

	*root = NULL;
	if (body == NULL || len == 0)
		return aj_fail(err, errlen, "empty body");
	if (len > AWS_JSON_MAX_BODY)
		return aj_fail(err, errlen, "body of %zu bytes is over the %u-byte limit", len,
		    AWS_JSON_MAX_BODY);
	if (aj_has_nul(text, len))
		return aj_fail(err, errlen, "body contains a NUL character");
	if ((doc = cJSON_ParseWithLengthOpts(text, len, &end, 0)) == NULL)
		return aj_fail(err, errlen, "body is not valid JSON");
	for (; end != NULL && end < text + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
			cJSON_Delete(doc);
			return aj_fail(err, errlen, "text after the JSON value");
		}
	}
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return aj_fail(err, errlen, "body is not a JSON object");
	}
	*root = doc;
	return 0;
}

/* A member, or NULL when absent or JSON null. */
static const cJSON *
aj_member(const cJSON *obj, const char *name)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsNull(m) ? NULL : m;
}

enum aj_text { AJ_ID, AJ_MULTILINE, AJ_ANY };

/*
 * A string member of 1..max bytes (0..max for AJ_ANY) into *out; NULL when
 * absent and not required.
 */
static int
aj_string(const cJSON *obj, const char *name, bool required, size_t max, enum aj_text kind,
    const char **out, char *err, size_t errlen)
{
	const cJSON *m = aj_member(obj, name);
	size_t len;

	*out = NULL;
	if (m == NULL) {
		if (required)
			return aj_fail(err, errlen, "%s is missing", name);
		return 0;
	}
	if (!cJSON_IsString(m) || m->valuestring == NULL)
		return aj_fail(err, errlen, "%s is not a string", name);
	len = strlen(m->valuestring);
	if ((len == 0 && kind != AJ_ANY) || len > max)
		return aj_fail(err, errlen, "%s has a bad length (%zu bytes, allowed %d..%zu)",
		    name, len, kind != AJ_ANY, max);
	if (kind != AJ_ANY && !aj_text_ok(m->valuestring, kind == AJ_MULTILINE))
		return aj_fail(err, errlen, "%s is not printable UTF-8", name);
	*out = m->valuestring;
	return 0;
}

/* An optional date: epoch seconds (fractions allowed) into ms; 0 when absent. */
static int
aj_date(const cJSON *obj, const char *name, int64_t *ms, char *err, size_t errlen)
{
	const cJSON *m = aj_member(obj, name);
	double v;

	*ms = 0;
	if (m == NULL)
		return 0;
	if (!cJSON_IsNumber(m))
		return aj_fail(err, errlen, "%s is not a number of seconds", name);
	v = m->valuedouble;
	if (!isfinite(v) || v < 0 || v > AJ_MAX_DATE_S)
		return aj_fail(err, errlen, "%s is out of range", name);
	*ms = (int64_t)llround(v * 1000.0);
	return 0;
}

/* An optional array of staging labels into stages[0..max). */
static int
aj_stages(const cJSON *arr, const char *what, const char **stages, size_t max, size_t *count,
    char *err, size_t errlen)
{
	const cJSON *s;
	size_t n = 0, len;

	*count = 0;
	if (arr == NULL || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr))
		return aj_fail(err, errlen, "%s is not an array", what);
	cJSON_ArrayForEach(s, arr) {
		if (n == max)
			return aj_fail(err, errlen, "%s has more than %zu labels", what, max);
		if (!cJSON_IsString(s) || s->valuestring == NULL)
			return aj_fail(err, errlen, "%s holds a non-string", what);
		len = strlen(s->valuestring);
		if (len == 0 || len > PROTO_MAX_VERSION_STAGE || !aj_text_ok(s->valuestring, false))
			return aj_fail(err, errlen, "%s holds a bad label", what);
		stages[n++] = s->valuestring;
	}
	*count = n;
	return 0;
}

/* ---- values --------------------------------------------------------------------------- */

static void
aj_value_clear(struct aws_value *v)
{
	if (v->binary != NULL) {
		sodium_memzero(v->binary, v->binary_len);
		free(v->binary);
	}
	memset(v, 0, sizeof(*v));
}

/* One GetSecretValue-shaped object (also the entries of SecretValues[]). */
static int
aj_value(const cJSON *o, struct aws_value *v, char *err, size_t errlen)
{
	struct backend_value *bv = &v->value;
	const cJSON *str, *bin;
	size_t b64_len, max, len;

	memset(v, 0, sizeof(*v));
	if (!cJSON_IsObject(o))
		return aj_fail(err, errlen, "secret value is not an object");
	if (aj_string(o, "ARN", true, PROTO_MAX_ARN, AJ_ID, &bv->arn, err, errlen) != 0 ||
	    aj_string(o, "Name", true, PROTO_MAX_NAME, AJ_ID, &bv->name, err, errlen) != 0 ||
	    aj_string(o, "VersionId", true, PROTO_MAX_VERSION_ID, AJ_ID, &bv->version_id,
	    err, errlen) != 0 ||
	    aj_stages(aj_member(o, "VersionStages"), "VersionStages", v->stages, PROTO_MAX_STAGES,
	    &bv->stage_count, err, errlen) != 0 ||
	    aj_date(o, "CreatedDate", &bv->created_ms, err, errlen) != 0)
		return -1;
	bv->stages = v->stages;
	str = aj_member(o, "SecretString");
	bin = aj_member(o, "SecretBinary");
	if ((str == NULL) == (bin == NULL))
		return aj_fail(err, errlen, str == NULL ? "neither SecretString nor SecretBinary" :
		    "both SecretString and SecretBinary");
	if (str != NULL) {
		if (!cJSON_IsString(str) || str->valuestring == NULL)
			return aj_fail(err, errlen, "SecretString is not a string");
		if ((len = strlen(str->valuestring)) > PROTO_MAX_VALUE)
			return aj_fail(err, errlen, "SecretString is larger than %d bytes",
			    PROTO_MAX_VALUE);
		bv->is_binary = false;
		bv->data = (const uint8_t *)str->valuestring;
		bv->len = len;
		return 0;
	}
	if (!cJSON_IsString(bin) || bin->valuestring == NULL)
		return aj_fail(err, errlen, "SecretBinary is not a string");
	b64_len = strlen(bin->valuestring);
	if (b64_len > AJ_MAX_B64)
		return aj_fail(err, errlen, "SecretBinary is larger than %d bytes", PROTO_MAX_VALUE);
	max = b64_len / 4 * 3 + 3;
	if ((v->binary = malloc(max)) == NULL)
		return aj_fail(err, errlen, "out of memory");
	if (sodium_base642bin(v->binary, max, bin->valuestring, b64_len, NULL, &v->binary_len,
	    NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
		v->binary_len = max;
		aj_value_clear(v);
		return aj_fail(err, errlen, "SecretBinary is not valid base64");
	}
	if (v->binary_len > PROTO_MAX_VALUE) {
		aj_value_clear(v);
		return aj_fail(err, errlen, "SecretBinary is larger than %d bytes", PROTO_MAX_VALUE);
	}
	bv->is_binary = true;
	bv->data = v->binary;
	bv->len = v->binary_len;
	return 0;
}

int
aws_json_parse_get(const void *body, size_t len, struct aws_get_result *out, char *err,
    size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (aj_parse_root(body, len, &out->root, err, errlen) != 0) {
		/* A "\u0000" escape in a string of a JSON text is a value the agent
		 * cannot hold (cJSON strings end at NUL), not a broken upstream. */
		out->answer_parsed = body != NULL && len <= AWS_JSON_MAX_BODY &&
		    memchr(body, '\0', len) == NULL && aj_has_nul(body, len);
		return -1;
	}
	out->answer_parsed = true;
	if (aj_value(out->root, &out->v, err, errlen) != 0) {
		aws_get_result_free(out);
		return -1;
	}
	return 0;
}

void
aws_get_result_free(struct aws_get_result *r)
{
	if (r == NULL)
		return;
	aj_value_clear(&r->v);
	cJSON_Delete(r->root);
	r->root = NULL;
}

/* ---- describe ------------------------------------------------------------------------- */

int
aws_json_parse_describe(const void *body, size_t len, struct aws_describe_result *out,
    char *err, size_t errlen)
{
	struct backend_description *d = &out->d;
	const cJSON *map, *ver;
	size_t n = 0, used = 0, count;

	memset(out, 0, sizeof(*out));
	if (aj_parse_root(body, len, &out->root, err, errlen) != 0)
		return -1;
	if (aj_string(out->root, "ARN", true, PROTO_MAX_ARN, AJ_ID, &d->arn, err, errlen) != 0 ||
	    aj_string(out->root, "Name", true, PROTO_MAX_NAME, AJ_ID, &d->name, err, errlen) != 0 ||
	    aj_string(out->root, "Description", false, PROTO_MAX_DESCRIPTION, AJ_MULTILINE,
	    &d->description, err, errlen) != 0 ||
	    aj_date(out->root, "CreatedDate", &d->created_ms, err, errlen) != 0 ||
	    aj_date(out->root, "LastChangedDate", &d->last_changed_ms, err, errlen) != 0 ||
	    aj_date(out->root, "DeletedDate", &d->deleted_ms, err, errlen) != 0)
		goto fail;
	if ((map = aj_member(out->root, "VersionIdsToStages")) == NULL)
		return 0;
	if (!cJSON_IsObject(map)) {
		aj_fail(err, errlen, "VersionIdsToStages is not an object");
		goto fail;
	}
	cJSON_ArrayForEach(ver, map)
		n++;
	if (n > PROTO_MAX_VERSIONS) {
		aj_fail(err, errlen, "VersionIdsToStages lists more than %d versions",
		    PROTO_MAX_VERSIONS);
		goto fail;
	}
	if (n == 0)
		return 0;
	out->versions = calloc(n, sizeof(*out->versions));
	out->stages = calloc(n * PROTO_MAX_STAGES, sizeof(*out->stages));
	if (out->versions == NULL || out->stages == NULL) {
		aj_fail(err, errlen, "out of memory");
		goto fail;
	}
	n = 0;
	cJSON_ArrayForEach(ver, map) {
		struct backend_version_stages *v = &out->versions[n];
		size_t klen = ver->string != NULL ? strlen(ver->string) : 0;

		if (klen == 0 || klen > PROTO_MAX_VERSION_ID || !aj_text_ok(ver->string, false)) {
			aj_fail(err, errlen, "VersionIdsToStages has a bad version id");
			goto fail;
		}
		if (aj_stages(ver, "VersionIdsToStages entry", out->stages + used, PROTO_MAX_STAGES,
		    &count, err, errlen) != 0)
			goto fail;
		v->version_id = ver->string;
		v->stages = out->stages + used;
		v->stage_count = count;
		used += count;
		n++;
	}
	d->versions = out->versions;
	d->version_count = n;
	return 0;
fail:
	aws_describe_result_free(out);
	return -1;
}

void
aws_describe_result_free(struct aws_describe_result *r)
{
	if (r == NULL)
		return;
	free(r->versions);
	free(r->stages);
	cJSON_Delete(r->root);
	memset(r, 0, sizeof(*r));
}

/* ---- batch ---------------------------------------------------------------------------- */

static int
aj_batch_errors(const cJSON *arr, struct aws_batch_result *out, char *err, size_t errlen)
{
	const cJSON *e;
	size_t n = 0;

	if (arr == NULL)
		return 0;
	if (!cJSON_IsArray(arr))
		return aj_fail(err, errlen, "Errors is not an array");
	cJSON_ArrayForEach(e, arr)
		n++;
	if (n > AJ_MAX_BATCH_ERRORS)
		return aj_fail(err, errlen, "Errors has more than %d entries", AJ_MAX_BATCH_ERRORS);
	if (n == 0)
		return 0;
	if ((out->errors = calloc(n, sizeof(*out->errors))) == NULL)
		return aj_fail(err, errlen, "out of memory");
	cJSON_ArrayForEach(e, arr) {
		struct aws_batch_error *be = &out->errors[out->error_count];

		if (!cJSON_IsObject(e))
			return aj_fail(err, errlen, "Errors holds a non-object");
		if (aj_string(e, "SecretId", true, PROTO_MAX_SECRET_ID, AJ_ANY, &be->secret_id,
		    err, errlen) != 0 ||
		    aj_string(e, "ErrorCode", false, AWS_ERROR_CODE_LEN - 1, AJ_ANY, &be->code,
		    err, errlen) != 0 ||
		    aj_string(e, "Message", false, PROTO_MAX_MESSAGE, AJ_ANY, &be->message,
		    err, errlen) != 0)
			return -1;
		if (be->code == NULL)
			be->code = "";
		if (be->message == NULL)
			be->message = "";
		out->error_count++;
	}
	return 0;
}

int
aws_json_parse_batch(const void *body, size_t len, struct aws_batch_result *out, char *err,
    size_t errlen)
{
	const cJSON *arr, *e;
	size_t n = 0;

	memset(out, 0, sizeof(*out));
	if (aj_parse_root(body, len, &out->root, err, errlen) != 0)
		return -1;
	if ((arr = aj_member(out->root, "SecretValues")) != NULL) {
		if (!cJSON_IsArray(arr)) {
			aj_fail(err, errlen, "SecretValues is not an array");
			goto fail;
		}
		cJSON_ArrayForEach(e, arr)
			n++;
		if (n > AJ_MAX_BATCH_VALUES) {
			aj_fail(err, errlen, "SecretValues has more than %d entries",
			    AJ_MAX_BATCH_VALUES);
			goto fail;
		}
		if (n > 0 && (out->values = calloc(n, sizeof(*out->values))) == NULL) {
			aj_fail(err, errlen, "out of memory");
			goto fail;
		}
		cJSON_ArrayForEach(e, arr) {
			if (aj_value(e, &out->values[out->value_count], err, errlen) != 0)
				goto fail;
			out->value_count++;
		}
	}
	if (aj_batch_errors(aj_member(out->root, "Errors"), out, err, errlen) != 0 ||
	    aj_string(out->root, "NextToken", false, AWS_MAX_NEXT_TOKEN, AJ_ANY,
	    &out->next_token, err, errlen) != 0)
		goto fail;
	if (out->next_token != NULL && out->next_token[0] == '\0')
		out->next_token = NULL;
	return 0;
fail:
	aws_batch_result_free(out);
	return -1;
}

void
aws_batch_result_free(struct aws_batch_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->value_count; i++)
		aj_value_clear(&r->values[i]);
	free(r->values);
	free(r->errors);
	cJSON_Delete(r->root);
	memset(r, 0, sizeof(*r));
}

/* ---- requests ------------------------------------------------------------------------- */

static bool
aj_id_ok(const char *s, size_t max)
{
	return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

static char *
aj_print(cJSON *obj)
{
	char *s = cJSON_PrintUnformatted(obj);

	cJSON_Delete(obj);
	return s;
}

char *
aws_json_get_request(const struct backend_query *q)
{
	cJSON *o;

	if (q == NULL || !aj_id_ok(q->secret_id, PROTO_MAX_SECRET_ID) ||
	    (q->version_stage != NULL && !aj_id_ok(q->version_stage, PROTO_MAX_VERSION_STAGE)) ||
	    (q->version_id != NULL && !aj_id_ok(q->version_id, PROTO_MAX_VERSION_ID)))
		return NULL;
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (cJSON_AddStringToObject(o, "SecretId", q->secret_id) == NULL)
		goto fail;
	if (q->version_id != NULL && cJSON_AddStringToObject(o, "VersionId", q->version_id) == NULL)
		goto fail;
	if (q->version_stage != NULL || q->version_id == NULL) {
		if (cJSON_AddStringToObject(o, "VersionStage", q->version_stage != NULL ?
		    q->version_stage : "AWSCURRENT") == NULL)
			goto fail;
	}
	return aj_print(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

char *
aws_json_describe_request(const char *secret_id)
{
	cJSON *o;

	if (!aj_id_ok(secret_id, PROTO_MAX_SECRET_ID) || (o = cJSON_CreateObject()) == NULL)
		return NULL;
	if (cJSON_AddStringToObject(o, "SecretId", secret_id) == NULL) {
		cJSON_Delete(o);
		return NULL;
	}
	return aj_print(o);
}

char *
aws_json_batch_request(const char *const *secret_ids, size_t count, const char *next_token)
{
	cJSON *o, *list, *s;
	size_t i;

	if (secret_ids == NULL || count == 0 || count > AWS_BATCH_MAX ||
	    (next_token != NULL && !aj_id_ok(next_token, AWS_MAX_NEXT_TOKEN)))
		return NULL;
	for (i = 0; i < count; i++)
		if (!aj_id_ok(secret_ids[i], PROTO_MAX_SECRET_ID))
			return NULL;
	if ((o = cJSON_CreateObject()) == NULL)
		return NULL;
	if ((list = cJSON_AddArrayToObject(o, "SecretIdList")) == NULL)
		goto fail;
	for (i = 0; i < count; i++) {
		if ((s = cJSON_CreateString(secret_ids[i])) == NULL ||
		    !cJSON_AddItemToArray(list, s)) {
			cJSON_Delete(s);
			goto fail;
		}
	}
	if (next_token != NULL && cJSON_AddStringToObject(o, "NextToken", next_token) == NULL)
		goto fail;
	return aj_print(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

void
aws_json_free(char *body)
{
	cJSON_free(body);
}

/* ---- errors --------------------------------------------------------------------------- */

/* "com.amazonaws.secretsmanager#Foo:http://..." -> "Foo"; keeps [A-Za-z0-9._-]. */
static void
aj_set_code(char *dst, size_t dstlen, const char *src, size_t len)
{
	const char *hash, *colon;
	size_t i, n = 0;

	if ((hash = memrchr(src, '#', len)) != NULL) {
		len -= (size_t)(hash + 1 - src);
		src = hash + 1;
	}
	if ((colon = memchr(src, ':', len)) != NULL)
		len = (size_t)(colon - src);
	while (len > 0 && isspace((unsigned char)*src)) {
		src++;
		len--;
	}
	for (i = 0; i < len && n + 1 < dstlen; i++) {
		char c = src[i];

		if (isspace((unsigned char)c))
			break;
		dst[n++] = (isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-') ? c : '?';
	}
	dst[n] = '\0';
}

/* Printable text: control characters and white space runs become one space,
 * bytes that are not UTF-8 become '?', cut at a character boundary. */
static void
aj_set_text(char *dst, size_t dstlen, const char *src, size_t len)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t n = 0, k;
	bool space = true;	/* drops leading blanks */

	while (len > 0 && n + 1 < dstlen) {
		if (*p < 0x20 || *p == 0x7f || *p == ' ') {
			if (!space)
				dst[n++] = ' ';
			space = true;
			p++;
			len--;
			continue;
		}
		space = false;
		if ((k = proto_utf8_seq_len(p, len)) == 0) {
			dst[n++] = '?';
			p++;
			len--;
			continue;
		}
		if (n + k + 1 > dstlen)
			break;
		memcpy(dst + n, p, k);
		n += k;
		p += k;
		len -= k;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

/* XML text between <tag> and </tag>, with the five predefined entities decoded. */
static void
aj_xml_text(const char *body, size_t len, const char *tag, char *dst, size_t dstlen)
{
	char open[32], close[32], tmp[AWS_ERROR_TEXT_LEN * 2];
	const char *start, *end, *p;
	size_t n = 0;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if ((start = memmem(body, len, open, strlen(open))) == NULL)
		return;
	start += strlen(open);
	if ((end = memmem(start, len - (size_t)(start - body), close, strlen(close))) == NULL)
		return;
	for (p = start; p < end && n + 1 < sizeof(tmp); ) {
		static const struct { const char *ent; char c; } ents[] = {
			{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			{ "&quot;", '"' }, { "&apos;", '\'' },
		};
		size_t i, el;

		for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
			el = strlen(ents[i].ent);
			if ((size_t)(end - p) >= el && memcmp(p, ents[i].ent, el) == 0)
				break;
		}
		if (i < sizeof(ents) / sizeof(ents[0])) {
			tmp[n++] = ents[i].c;
			p += strlen(ents[i].ent);
		} else
			tmp[n++] = *p++;
	}
	if (strcmp(tag, "Code") == 0)
		aj_set_code(dst, dstlen, tmp, n);
	else
		aj_set_text(dst, dstlen, tmp, n);
}

static const cJSON *
aj_first_string(const cJSON *obj, const char *const *names)
{
	const cJSON *m;

	for (; *names != NULL; names++) {
		m = cJSON_GetObjectItemCaseSensitive(obj, *names);
		if (cJSON_IsString(m) && m->valuestring != NULL)
			return m;
	}
	return NULL;
}

void
aws_error_parse(long http_status, const char *error_type, const void *body, size_t len,
    struct aws_error_info *out)
{
	static const char *const code_names[] = { "__type", "code", "Code", NULL };
	static const char *const msg_names[] = { "message", "Message", "errorMessage", NULL };
	const char *text = body;
	const cJSON *m;
	cJSON *doc;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->http_status = http_status;
	if (error_type != NULL)
		aj_set_code(out->code, sizeof(out->code), error_type, strlen(error_type));
	if (text == NULL || len == 0 || len > AWS_JSON_MAX_BODY)
		return;
	for (i = 0; i < len && isspace((unsigned char)text[i]); i++)
		;
	if (i < len && text[i] == '{') {
		if (aj_has_nul(text, len) ||
		    (doc = cJSON_ParseWithLength(text, len)) == NULL)
			return;
		if (out->code[0] == '\0' && (m = aj_first_string(doc, code_names)) != NULL)
			aj_set_code(out->code, sizeof(out->code), m->valuestring,
			    strlen(m->valuestring));
		if ((m = aj_first_string(doc, msg_names)) != NULL)
			aj_set_text(out->message, sizeof(out->message), m->valuestring,
			    strlen(m->valuestring));
		cJSON_Delete(doc);
		return;
	}
	if (i < len && text[i] == '<' && memmem(text, len, "<Code>", 6) != NULL) {
		if (out->code[0] == '\0')
			aj_xml_text(text, len, "Code", out->code, sizeof(out->code));
		aj_xml_text(text, len, "Message", out->message, sizeof(out->message));
	}
}

static bool
aj_code_in(const char *code, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

static const char *const aj_auth_codes[] = {
	"UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
	"InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "IncompleteSignature",
	"IncompleteSignatureException", "MissingAuthenticationToken",
	"MissingAuthenticationTokenException", "InvalidAccessKeyId", "AuthFailure",
	"RequestExpired", "InvalidToken", "NotAuthorized", NULL,
};
static const char *const aj_throttle_codes[] = {
	"ThrottlingException", "Throttling", "TooManyRequestsException", "ThrottledException",
	"RequestThrottled", "RequestThrottledException", "RequestLimitExceeded",
	"SlowDown", "ProvisionedThroughputExceededException", "BandwidthLimitExceeded",
	"PriorRequestNotComplete", NULL,
};
static const char *const aj_transient_codes[] = {
	"InternalServiceError", "InternalServiceErrorException", "InternalFailure",
	"InternalError", "ServiceUnavailable", "ServiceUnavailableException",
	"RequestTimeout", "RequestTimeoutException", NULL,
};
static const char *const aj_bad_request_codes[] = {
	"InvalidParameterException", "InvalidRequestException", "ValidationException",
	"InvalidNextTokenException", "SerializationException", "MissingParameter",
	"InvalidParameterValue", "InvalidParameterCombination", "MalformedQueryString", NULL,
};

bool
aws_error_is_throttling(const char *code)
{
	return code != NULL && aj_code_in(code, aj_throttle_codes);
}

/* " CODE: text" or " HTTP 503" etc., for the end of a message. */
static void
aj_describe(const char *code, const char *message, long http_status, char *buf, size_t len)
{
	if (code[0] != '\0' && message[0] != '\0')
		snprintf(buf, len, "%s: %s", code, message);
	else if (code[0] != '\0')
		snprintf(buf, len, "%s (HTTP %ld)", code, http_status);
	else if (message[0] != '\0')
		snprintf(buf, len, "HTTP %ld: %s", http_status, message);
	else
		snprintf(buf, len, "HTTP %ld", http_status);
}

static bool
aj_mentions_deletion(const char *message)
{
	return strcasestr(message, "deleted") != NULL || strcasestr(message, "deletion") != NULL;
}

/*
 * Status and message of an error answer, and its scope (about_secret): an
 * answer about the secret asked for (it does not exist or is being deleted,
 * access to it is denied, its KMS key fails, the request about it is
 * invalid) or about the upstream as a whole (throttling, 5xx, the agent's
 * credentials refused, or anything that is not a Secrets Manager error).
 * Returns whether the call is worth retrying.
 */
static bool
aj_classify(const char *code, const char *message, long http_status, struct backend_error *out)
{
	char what[AWS_ERROR_CODE_LEN + AWS_ERROR_TEXT_LEN + 32];
	bool retry = false, about_secret = true;

	aj_describe(code, message, http_status, what, sizeof(what));
	if (strcmp(code, "ResourceNotFoundException") == 0) {
		backend_error_set(out, PROTO_STATUS_NOT_FOUND, "%s", what);
	} else if (strcmp(code, "InvalidRequestException") == 0 && aj_mentions_deletion(message)) {
		backend_error_set(out, PROTO_STATUS_NOT_FOUND,
		    "the secret is scheduled for deletion (%s)", what);
	} else if (aj_code_in(code, aj_auth_codes) || http_status == 401) {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_AUTH,
		    "upstream rejected the agent's credentials: %s", what);
		about_secret = false;
	} else if (strcmp(code, "AccessDeniedException") == 0 || strcmp(code, "AccessDenied") == 0) {
		backend_error_set(out, PROTO_STATUS_ACCESS_DENIED,
		    "Secrets Manager denied the agent's IAM identity: %s", what);
	} else if (aj_code_in(code, aj_throttle_codes) || http_status == 429) {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "Secrets Manager is throttling requests: %s", what);
		retry = true;
		about_secret = false;
	} else if (http_status == 404) {
		/* Not-found before bad-request: moto answers 404 InvalidRequestException
		 * for a version id whose labels do not include the stage asked for. */
		backend_error_set(out, PROTO_STATUS_NOT_FOUND, "%s", what);
	} else if (aj_code_in(code, aj_bad_request_codes)) {
		backend_error_set(out, PROTO_STATUS_BAD_REQUEST,
		    "Secrets Manager rejected the request: %s", what);
	} else if (strcmp(code, "DecryptionFailure") == 0 || strcmp(code, "EncryptionFailure") == 0) {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "Secrets Manager could not decrypt the secret with its KMS key: %s", what);
	} else if (http_status == 403) {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_AUTH,
		    "upstream rejected the agent's credentials: %s", what);
		about_secret = false;
	} else if (aj_code_in(code, aj_transient_codes) || http_status >= 500 || http_status == 408) {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "Secrets Manager failed: %s", what);
		retry = true;
		about_secret = false;
	} else {
		backend_error_set(out, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "Secrets Manager refused the request: %s", what);
		/* A coded 4xx answers this request; anything else is not Secrets Manager. */
		about_secret = code[0] != '\0' && http_status >= 400 && http_status < 500;
	}
	out->about_secret = about_secret;
	return retry;
}

bool
aws_error_classify(const struct aws_error_info *info, struct backend_error *out)
{
	return aj_classify(info->code, info->message, info->http_status, out);
}

bool
aws_batch_error_classify(const struct aws_batch_error *e, struct backend_error *out)
{
	char code[AWS_ERROR_CODE_LEN], message[AWS_ERROR_TEXT_LEN];

	aj_set_code(code, sizeof(code), e->code, strlen(e->code));
	aj_set_text(message, sizeof(message), e->message, strlen(e->message));
	/* Per-secret errors carry no HTTP status of their own; 400 is what AWS uses. */
	return aj_classify(code, message, 400, out);
}
