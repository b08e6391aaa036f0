/*
 * sigv4: AWS Signature Version 4 signing and verification (see sigv4.h).
 * Owns canonicalisation, the HMAC key chain and Authorization parsing;
 * SHA-256 and HMAC come from OpenSSL.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

/* Inputs are capped, so outputs are too; this only backs that up. */
#define SIGV4_MAX_OUTPUT	(512 * 1024)

#define SCOPE_TERMINATOR	"aws4_request"
#define HDR_AMZ_DATE		"x-amz-date"
#define HDR_TOKEN		"x-amz-security-token"
#define HDR_AUTHORIZATION	"authorization"

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static int
fail(enum sigv4_error *err, enum sigv4_error code)
{
	if (err != NULL)
		*err = code;
	return -1;
}

/* ---- character classes (ASCII only, independent of the locale) --------------------- */

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* RFC 3986 unreserved: the only bytes SigV4 leaves unescaped. */
static bool
is_unreserved(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

/* RFC 9110 tchar: what a method or header name may contain. */
static bool
is_tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* White space folded by Trimall: OWS and the line breaks of an obs-fold. */
static bool
is_fold_ws(unsigned char c)
{
	return is_ows(c) || c == '\r' || c == '\n';
}

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static int
hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int
ascii_casecmp(const char *a, const char *b)
{
	unsigned char ca, cb;

	do {
		ca = ascii_lower((unsigned char)*a++);
		cb = ascii_lower((unsigned char)*b++);
	} while (ca != '\0' && ca == cb);
	return (int)ca - (int)cb;
}

static void
hex_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex_lower[in[i] >> 4];
		out[2 * i + 1] = hex_lower[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* ---- bounded string builder; wipes what it frees ---------------------------------- */

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
	enum sigv4_error err;	/* sticky: once set, every call fails */
};

static int
sb_reserve(struct sbuf *b, size_t more)
{
	size_t need, ncap;
	char *np;

	if (b->err != SIGV4_OK)
		return -1;
	if (more > SIGV4_MAX_OUTPUT - b->len) {
		b->err = SIGV4_E_LIMIT;
		return -1;
	}
	need = b->len + more + 1;
	if (need <= b->cap)
		return 0;
	for (ncap = b->cap != 0 ? b->cap : 256; ncap < need; ncap *= 2)
		;
	/* Not realloc: the old block is wiped before it goes back to the heap. */
	if ((np = malloc(ncap)) == NULL) {
		b->err = SIGV4_E_NOMEM;
		return -1;
	}
	if (b->p != NULL) {
		memcpy(np, b->p, b->len);
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = np;
	b->cap = ncap;
	b->p[b->len] = '\0';
	return 0;
}

static int
sb_put(struct sbuf *b, const void *data, size_t n)
{
	if (sb_reserve(b, n) == -1)
		return -1;
	if (n > 0)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int
sb_putc(struct sbuf *b, unsigned char c)
{
	return sb_put(b, &c, 1);
}

static int
sb_puts(struct sbuf *b, const char *s)
{
	return sb_put(b, s, strlen(s));
}

/* Drops everything after len (len <= b->len). */
static void
sb_truncate(struct sbuf *b, size_t len)
{
	if (b->p == NULL || len > b->len)
		return;
	OPENSSL_cleanse(b->p + len, b->len - len);
	b->len = len;
	b->p[len] = '\0';
}

static void
sb_free(struct sbuf *b)
{
	if (b->p != NULL) {
		OPENSSL_cleanse(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Hands the NUL-terminated string to the caller; on a failed builder, frees it. */
static int
sb_take(struct sbuf *b, char **out, enum sigv4_error *err)
{
	if (sb_reserve(b, 0) == -1) {
		enum sigv4_error code = b->err;

		sb_free(b);
		return fail(err, code);
	}
	*out = b->p;
	b->p = NULL;
	b->len = b->cap = 0;
	return 0;
}

/* The encoded form of one byte into esc: itself when unreserved, else %XX. Its length. */
static size_t
uri_encode_byte(unsigned char c, char esc[3])
{
	if (is_unreserved(c)) {
		esc[0] = (char)c;
		return 1;
	}
	esc[0] = '%';
	esc[1] = hex_upper[c >> 4];
	esc[2] = hex_upper[c & 0x0f];
	return 3;
}

int
sigv4_uri_encode(char *buf, size_t buflen, size_t *off, const char *s)
{
	size_t o = *off, k;
	char esc[3];

	for (; *s != '\0'; s++) {
		k = uri_encode_byte((unsigned char)*s, esc);
		if (o + k >= buflen)
			return -1;
		memcpy(buf + o, esc, k);
		o += k;
	}
	if (o >= buflen)
		return -1;
	buf[o] = '\0';
	*off = o;
	return 0;
}

/* Writes n bytes, %XX-escaping all but unreserved ones. With decode, valid
 * %XX escapes in the input are decoded first, so they are not escaped twice. */
static int
sb_put_uri_encoded(struct sbuf *b, const char *s, size_t n, bool decode)
{
	char esc[3];
	unsigned char c;
	size_t i;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (decode && c == '%' && n - i > 2 && hex_value((unsigned char)s[i + 1]) >= 0 &&
		    hex_value((unsigned char)s[i + 2]) >= 0) {
			c = (unsigned char)(hex_value((unsigned char)s[i + 1]) * 16 +
			    hex_value((unsigned char)s[i + 2]));
			i += 2;
		}
		if (sb_put(b, esc, uri_encode_byte(c, esc)) == -1)
			return -1;
	}
	return 0;
}

/* Trimall: no leading or trailing white space, inner runs become one space. */
static int
sb_put_trimmed(struct sbuf *b, const char *v)
{
	bool pending = false, any = false;
	unsigned char c;

	for (; *v != '\0'; v++) {
		c = (unsigned char)*v;
		if (is_fold_ws(c)) {
			pending = true;
			continue;
		}
		if (pending && any && sb_putc(b, ' ') == -1)
			return -1;
		pending = false;
		any = true;
		if (sb_putc(b, c) == -1)
			return -1;
	}
	return 0;
}

/* ---- input checks ------------------------------------------------------------------ */

/* Length of s, which must hold min..max bytes. */
static int
check_len(const char *s, size_t min, size_t max, size_t *lenp, enum sigv4_error *err)
{
	size_t n;

	if (s == NULL)
		return fail(err, SIGV4_E_INVALID);
	n = strnlen(s, max + 1);
	if (n > max)
		return fail(err, SIGV4_E_LIMIT);
	if (n < min)
		return fail(err, SIGV4_E_INVALID);
	if (lenp != NULL)
		*lenp = n;
	return 0;
}

static int
check_token(const char *s, size_t max, enum sigv4_error *err)
{
	size_t n, i;

	if (check_len(s, 1, max, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++)
		if (!is_tchar((unsigned char)s[i]))
			return fail(err, SIGV4_E_INVALID);
	return 0;
}

/* Region and service: they sit between '/' in the scope. */
static bool
scope_field_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > SIGV4_MAX_SCOPE_FIELD)
		return false;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && strchr("-._", s[i]) == NULL)
			return false;
	return true;
}

static int
check_scope_field(const char *s, enum sigv4_error *err)
{
	size_t n;

	if (check_len(s, 1, SIGV4_MAX_SCOPE_FIELD, &n, err) == -1)
		return -1;
	return scope_field_ok(s, n) ? 0 : fail(err, SIGV4_E_INVALID);
}

static bool
access_key_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > SIGV4_MAX_ACCESS_KEY)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || strchr("/,;=\"", s[i]) != NULL)
			return false;
	return true;
}

static int
two_digits(const char *s)
{
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* YYYYMMDD, with a plausible month and day. */
static bool
date8_ok(const char *s, size_t n)
{
	size_t i;
	int month, day;

	if (n != SIGV4_DATE_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	month = two_digits(s + 4);
	day = two_digits(s + 6);
	return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

/* YYYYMMDDTHHMMSSZ */
static bool
amz_date_ok(const char *s, size_t n)
{
	size_t i;

	if (n != SIGV4_AMZ_DATE_LEN || !date8_ok(s, SIGV4_DATE_LEN) || s[8] != 'T' || s[15] != 'Z')
		return false;
	for (i = 9; i < 15; i++)
		if (!is_digit((unsigned char)s[i]))
			return false;
	return two_digits(s + 9) < 24 && two_digits(s + 11) < 60 && two_digits(s + 13) <= 60;
}

static int
check_scope(const struct sigv4_scope *scope, enum sigv4_error *err)
{
	size_t n;

	if (scope == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (check_len(scope->amz_date, 1, SIGV4_AMZ_DATE_LEN, &n, err) == -1)
		return scope->amz_date == NULL ? -1 : fail(err, SIGV4_E_DATE);
	if (!amz_date_ok(scope->amz_date, n))
		return fail(err, SIGV4_E_DATE);
	if (check_scope_field(scope->region, err) == -1 ||
	    check_scope_field(scope->service, err) == -1)
		return -1;
	return 0;
}

/* A field value: bytes other than controls, HTAB, and CR LF only as obs-fold. */
static int
check_header_value(const char *v, size_t *lenp, enum sigv4_error *err)
{
	size_t n, i;
	unsigned char c;

	if (check_len(v, 0, SIGV4_MAX_HEADER_VALUE, &n, err) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		c = (unsigned char)v[i];
		if (c == '\r' && v[i + 1] != '\n')
			return fail(err, SIGV4_E_INVALID);
		if (c == '\n' && !is_ows((unsigned char)v[i + 1]))
			return fail(err, SIGV4_E_INVALID);
		if (is_ctl(c) && c != '\t' && c != '\r' && c != '\n')
			return fail(err, SIGV4_E_INVALID);
	}
	*lenp = n;
	return 0;
}

static int
check_headers(const struct sigv4_request *req, enum sigv4_error *err)
{
	size_t i, nlen, vlen, total = 0;

	if (req->header_count > SIGV4_MAX_HEADERS)
		return fail(err, SIGV4_E_LIMIT);
	if (req->header_count > 0 && req->headers == NULL)
		return fail(err, SIGV4_E_INVALID);
	for (i = 0; i < req->header_count; i++) {
		if (check_token(req->headers[i].name, SIGV4_MAX_HEADER_NAME, err) == -1 ||
		    check_header_value(req->headers[i].value, &vlen, err) == -1)
			return -1;
		nlen = strlen(req->headers[i].name);
		total += nlen + vlen;
		if (total > SIGV4_MAX_HEADER_BYTES)
			return fail(err, SIGV4_E_LIMIT);
	}
	if (req->signed_headers == NULL)
		return 0;
	if (req->signed_count > SIGV4_MAX_HEADERS)
		return fail(err, SIGV4_E_LIMIT);
	for (i = 0; i < req->signed_count; i++)
		if (check_token(req->signed_headers[i], SIGV4_MAX_HEADER_NAME, err) == -1)
			return -1;
	return 0;
}

/* The request-line path and query: no control bytes; the path is absolute. */
static int
check_target(const char *s, size_t max, bool is_path, size_t *lenp, enum sigv4_error *err)
{
	size_t n, i;

	if (s == NULL && !is_path) {
		*lenp = 0;
		return 0;
	}
	if (check_len(s, 0, max, &n, err) == -1)
		return -1;
	if (is_path && n > 0 && s[0] != '/')
		return fail(err, SIGV4_E_INVALID);
	for (i = 0; i < n; i++)
		if (is_ctl((unsigned char)s[i]))
			return fail(err, SIGV4_E_INVALID);
	*lenp = n;
	return 0;
}

static int
check_request(const struct sigv4_request *req, size_t *path_len, size_t *query_len,
    enum sigv4_error *err)
{
	if (req == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (check_token(req->method, SIGV4_MAX_METHOD, err) == -1 ||
	    check_target(req->path, SIGV4_MAX_PATH, true, path_len, err) == -1 ||
	    check_target(req->query, SIGV4_MAX_QUERY, false, query_len, err) == -1 ||
	    check_headers(req, err) == -1)
		return -1;
	return 0;
}

/* ---- header lookups ---------------------------------------------------------------- */

static bool
is_signed(const struct sigv4_request *req, const char *lname)
{
	size_t i;

	if (req->signed_headers == NULL)
		return true;
	for (i = 0; i < req->signed_count; i++)
		if (req->signed_headers[i] != NULL && ascii_casecmp(req->signed_headers[i], lname) == 0)
			return true;
	return false;
}

/* How many headers are called lname; *value gets the last one. */
static size_t
find_header(const struct sigv4_request *req, const char *lname, const char **value)
{
	size_t i, count = 0;

	*value = NULL;
	if (req->headers == NULL || req->header_count > SIGV4_MAX_HEADERS)
		return 0;
	for (i = 0; i < req->header_count; i++) {
		if (req->headers[i].name == NULL || req->headers[i].value == NULL)
			continue;
		if (ascii_casecmp(req->headers[i].name, lname) == 0) {
			*value = req->headers[i].value;
			count++;
		}
	}
	return count;
}

/* value, less surrounding OWS, equals want (want_len bytes). */
static bool
trimmed_equal(const char *value, const char *want, size_t want_len)
{
	while (is_ows((unsigned char)*value))
		value++;
	if (strncmp(value, want, want_len) != 0)
		return false;
	for (value += want_len; *value != '\0'; value++)
		if (!is_ows((unsigned char)*value))
			return false;
	return true;
}

/* ---- task 1: canonical request ----------------------------------------------------- */

/* Segments: "" and "." dropped, ".." pops one; trailing '/' kept (as botocore). */
static int
put_canonical_path(struct sbuf *b, const char *path, size_t len)
{
	size_t start = b->len, i = 0, j, seg;
	const char *slash;

	while (i < len) {
		for (j = i; j < len && path[j] != '/'; j++)
			;
		seg = j - i;
		if (seg == 2 && path[i] == '.' && path[i + 1] == '.') {
			if (b->len > start) {
				/* Encoded segments hold no '/', so the last one starts here. */
				slash = memrchr(b->p + start, '/', b->len - start);
				sb_truncate(b, (size_t)(slash - b->p));
			}
		} else if (seg > 0 && !(seg == 1 && path[i] == '.')) {
			if (sb_putc(b, '/') == -1 || sb_put_uri_encoded(b, path + i, seg, false) == -1)
				return -1;
		}
		i = j + 1;
	}
	if (b->len == start)
		return sb_putc(b, '/');
	if (path[len - 1] == '/')
		return sb_putc(b, '/');
	return 0;
}

struct qpair {
	const char *key;
	const char *value;
};

static int
qpair_cmp(const void *a, const void *b)
{
	const struct qpair *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	return c != 0 ? c : strcmp(x->value, y->value);
}

static int
put_canonical_query(struct sbuf *out, const char *q, size_t len)
{
	struct sbuf enc = { 0 };
	size_t (*offs)[2] = NULL;
	struct qpair *pairs = NULL;
	size_t n = 0, i = 0, j, k;
	const char *eq;
	int rc = -1;

	if (len == 0)
		return 0;
	if ((offs = calloc(SIGV4_MAX_QUERY_PARAMS, sizeof(*offs))) == NULL) {
		out->err = SIGV4_E_NOMEM;
		return -1;
	}
	/* Encoded keys and values go into enc as C strings (escaping leaves no NUL). */
	while (i <= len) {
		for (j = i; j < len && q[j] != '&'; j++)
			;
		if (j > i) {
			if (n == SIGV4_MAX_QUERY_PARAMS) {
				out->err = SIGV4_E_LIMIT;
				goto out;
			}
			eq = memchr(q + i, '=', j - i);
			k = eq != NULL ? (size_t)(eq - q) : j;
			offs[n][0] = enc.len;
			if (sb_put_uri_encoded(&enc, q + i, k - i, true) == -1 || sb_putc(&enc, '\0') == -1)
				goto enc_fail;
			offs[n][1] = enc.len;
			if (eq != NULL && sb_put_uri_encoded(&enc, eq + 1, j - k - 1, true) == -1)
				goto enc_fail;
			if (sb_putc(&enc, '\0') == -1)
				goto enc_fail;
			n++;
		}
		i = j + 1;
	}
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if ((pairs = calloc(n, sizeof(*pairs))) == NULL) {
		out->err = SIGV4_E_NOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		pairs[i].key = enc.p + offs[i][0];
		pairs[i].value = enc.p + offs[i][1];
	}
	qsort(pairs, n, sizeof(*pairs), qpair_cmp);
	for (i = 0; i < n; i++) {
		if ((i > 0 && sb_putc(out, '&') == -1) || sb_puts(out, pairs[i].key) == -1 ||
		    sb_putc(out, '=') == -1 || sb_puts(out, pairs[i].value) == -1)
			goto out;
	}
	rc = 0;
	goto out;
enc_fail:
	out->err = enc.err;
out:
	free(pairs);
	free(offs);
	sb_free(&enc);
	return rc;
}

struct hsel {
	const char *name;
	const char *value;
	size_t index;
};

/* By lowercase name; equal names keep request order (values join in that order). */
static int
hsel_cmp(const void *a, const void *b)
{
	const struct hsel *x = a, *y = b;
	int c = ascii_casecmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int
put_lower(struct sbuf *b, const char *s)
{
	for (; *s != '\0'; s++)
		if (sb_putc(b, ascii_lower((unsigned char)*s)) == -1)
			return -1;
	return 0;
}

/* Canonical header lines into b, the SignedHeaders list into list. */
static int
put_canonical_headers(struct sbuf *b, struct sbuf *list, const struct sigv4_request *req,
    enum sigv4_error *err)
{
	struct hsel sel[SIGV4_MAX_HEADERS];
	size_t n = 0, i, j;

	for (i = 0; i < req->header_count; i++) {
		if (!is_signed(req, req->headers[i].name))
			continue;
		sel[n].name = req->headers[i].name;
		sel[n].value = req->headers[i].value;
		sel[n].index = i;
		n++;
	}
	for (i = 0; req->signed_headers != NULL && i < req->signed_count; i++) {
		for (j = 0; j < n; j++)
			if (ascii_casecmp(sel[j].name, req->signed_headers[i]) == 0)
				break;
		if (j == n)
			return fail(err, SIGV4_E_NO_HEADER);
	}
	if (n == 0)
		return fail(err, SIGV4_E_INVALID);
	qsort(sel, n, sizeof(sel[0]), hsel_cmp);
	for (i = 0; i < n; i = j) {
		if (put_lower(b, sel[i].name) == -1 || sb_putc(b, ':') == -1 ||
		    (i > 0 && sb_putc(list, ';') == -1) || put_lower(list, sel[i].name) == -1)
			return -1;
		for (j = i; j < n && ascii_casecmp(sel[j].name, sel[i].name) == 0; j++) {
			if ((j > i && sb_putc(b, ',') == -1) || sb_put_trimmed(b, sel[j].value) == -1)
				return -1;
		}
		if (sb_putc(b, '\n') == -1)
			return -1;
	}
	/* Whatever is signed must fit the Authorization header a verifier accepts. */
	if (list->len > SIGV4_MAX_SIGNED_LIST)
		return fail(err, SIGV4_E_LIMIT);
	return 0;
}

static int
sha256_hex(const void *data, size_t len, char hex[SIGV4_HEX_LEN + 1])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(len > 0 ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != SIGV4_HEX_LEN / 2)
		return -1;
	hex_encode(md, mdlen, hex);
	return 0;
}

static int
put_payload_hash(struct sbuf *b, const struct sigv4_request *req, enum sigv4_error *err)
{
	char hex[SIGV4_HEX_LEN + 1];
	size_t n, i;

	if (req->payload_hash != NULL) {
		if (check_len(req->payload_hash, 1, SIGV4_MAX_PAYLOAD_HASH, &n, err) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (!is_alnum((unsigned char)req->payload_hash[i]) && req->payload_hash[i] != '-')
				return fail(err, SIGV4_E_INVALID);
		return sb_puts(b, req->payload_hash);
	}
	if (req->body == NULL && req->body_len > 0)
		return fail(err, SIGV4_E_INVALID);
	if (sha256_hex(req->body, req->body_len, hex) == -1)
		return fail(err, SIGV4_E_CRYPTO);
	return sb_puts(b, hex);
}

int
sigv4_canonical_request(const struct sigv4_request *req, char **creq_out,
    char **signed_headers_out, enum sigv4_error *err)
{
	struct sbuf b = { 0 }, list = { 0 };
	size_t path_len, query_len;
	enum sigv4_error code = SIGV4_OK;

	if (creq_out == NULL)
		return fail(err, SIGV4_E_INVALID);
	*creq_out = NULL;
	if (signed_headers_out != NULL)
		*signed_headers_out = NULL;
	if (check_request(req, &path_len, &query_len, err) == -1)
		return -1;

	if (sb_puts(&b, req->method) == -1 || sb_putc(&b, '\n') == -1 ||
	    put_canonical_path(&b, req->path, path_len) == -1 || sb_putc(&b, '\n') == -1 ||
	    put_canonical_query(&b, req->query, query_len) == -1 || sb_putc(&b, '\n') == -1)
		goto fail;
	if (put_canonical_headers(&b, &list, req, &code) == -1)
		goto fail;
	if (sb_putc(&b, '\n') == -1 || sb_put(&b, list.p, list.len) == -1 ||
	    sb_putc(&b, '\n') == -1)
		goto fail;
	if (put_payload_hash(&b, req, &code) == -1)
		goto fail;
	if (sb_take(&b, creq_out, err) == -1)
		goto fail;
	if (signed_headers_out != NULL && sb_take(&list, signed_headers_out, err) == -1) {
		sigv4_free(*creq_out);
		*creq_out = NULL;
		goto fail;
	}
	sb_free(&list);
	return 0;
fail:
	if (code == SIGV4_OK)
		code = b.err != SIGV4_OK ? b.err : list.err;
	sb_free(&b);
	sb_free(&list);
	return fail(err, code != SIGV4_OK ? code : SIGV4_E_INVALID);
}

/* ---- task 2: string to sign -------------------------------------------------------- */

static int
put_scope(struct sbuf *b, const char *date8, const char *region, const char *service)
{
	if (sb_put(b, date8, SIGV4_DATE_LEN) == -1 || sb_putc(b, '/') == -1 ||
	    sb_puts(b, region) == -1 || sb_putc(b, '/') == -1 || sb_puts(b, service) == -1 ||
	    sb_putc(b, '/') == -1 || sb_puts(b, SCOPE_TERMINATOR) == -1)
		return -1;
	return 0;
}

int
sigv4_string_to_sign(const struct sigv4_scope *scope, const char *canonical_request,
    char **sts_out, enum sigv4_error *err)
{
	struct sbuf b = { 0 };
	char hex[SIGV4_HEX_LEN + 1];
	size_t n;

	if (sts_out == NULL)
		return fail(err, SIGV4_E_INVALID);
	*sts_out = NULL;
	if (check_scope(scope, err) == -1 ||
	    check_len(canonical_request, 1, SIGV4_MAX_OUTPUT, &n, err) == -1)
		return -1;
	if (sha256_hex(canonical_request, n, hex) == -1)
		return fail(err, SIGV4_E_CRYPTO);
	/* Builder errors are sticky: sb_take() reports any of them. */
	sb_puts(&b, SIGV4_ALGORITHM "\n");
	sb_puts(&b, scope->amz_date);
	sb_putc(&b, '\n');
	put_scope(&b, scope->amz_date, scope->region, scope->service);
	sb_putc(&b, '\n');
	sb_puts(&b, hex);
	return sb_take(&b, sts_out, err);
}

/* ---- task 3: signing key and signature --------------------------------------------- */

static int
hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
    uint8_t out[SIGV4_KEY_LEN])
{
	unsigned int out_len = 0;

	if (key_len > INT_MAX)
		return -1;
	if (HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &out_len) == NULL ||
	    out_len != SIGV4_KEY_LEN)
		return -1;
	return 0;
}

int
sigv4_signing_key(const char *secret_key, const char *date, const char *region,
    const char *service, uint8_t key[SIGV4_KEY_LEN], enum sigv4_error *err)
{
	char seed[4 + SIGV4_MAX_SECRET_KEY];
	uint8_t k1[SIGV4_KEY_LEN], k2[SIGV4_KEY_LEN];
	size_t secret_len, date_len;
	int rc = -1;

	if (key == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (check_len(secret_key, 1, SIGV4_MAX_SECRET_KEY, &secret_len, err) == -1 ||
	    check_len(date, 1, SIGV4_DATE_LEN, &date_len, err) == -1 ||
	    check_scope_field(region, err) == -1 || check_scope_field(service, err) == -1)
		return -1;
	if (!date8_ok(date, date_len))
		return fail(err, SIGV4_E_DATE);

	memcpy(seed, "AWS4", 4);
	memcpy(seed + 4, secret_key, secret_len);
	if (hmac_sha256(seed, 4 + secret_len, date, date_len, k1) == -1 ||
	    hmac_sha256(k1, sizeof(k1), region, strlen(region), k2) == -1 ||
	    hmac_sha256(k2, sizeof(k2), service, strlen(service), k1) == -1 ||
	    hmac_sha256(k1, sizeof(k1), SCOPE_TERMINATOR, strlen(SCOPE_TERMINATOR), key) == -1) {
		OPENSSL_cleanse(key, SIGV4_KEY_LEN);
		fail(err, SIGV4_E_CRYPTO);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
	return rc;
}

int
sigv4_signature(const uint8_t key[SIGV4_KEY_LEN], const char *string_to_sign,
    char signature[SIGV4_HEX_LEN + 1], enum sigv4_error *err)
{
	uint8_t mac[SIGV4_KEY_LEN];
	size_t n;

	if (key == NULL || signature == NULL)
		return fail(err, SIGV4_E_INVALID);
	signature[0] = '\0';
	if (check_len(string_to_sign, 1, SIGV4_MAX_OUTPUT, &n, err) == -1)
		return -1;
	if (hmac_sha256(key, SIGV4_KEY_LEN, string_to_sign, n, mac) == -1)
		return fail(err, SIGV4_E_CRYPTO);
	hex_encode(mac, sizeof(mac), signature);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* ---- all tasks --------------------------------------------------------------------- */

int
sigv4_sign_with_key(const struct sigv4_request *req, const struct sigv4_scope *scope,
    const char *access_key_id, const uint8_t key[SIGV4_KEY_LEN],
    struct sigv4_result *out, enum sigv4_error *err)
{
	struct sbuf b = { 0 };
	const char *date_value;
	size_t ak_len, count;

	if (out == NULL)
		return fail(err, SIGV4_E_INVALID);
	memset(out, 0, sizeof(*out));
	if (req == NULL || key == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (check_len(access_key_id, 1, SIGV4_MAX_ACCESS_KEY, &ak_len, err) == -1 ||
	    check_scope(scope, err) == -1)
		return -1;
	if (!access_key_ok(access_key_id, ak_len))
		return fail(err, SIGV4_E_INVALID);

	if (sigv4_canonical_request(req, &out->canonical_request, &out->signed_headers, err) == -1)
		goto fail;
	/* AWS reads the time from X-Amz-Date: it must be the date signed with. */
	count = find_header(req, HDR_AMZ_DATE, &date_value);
	if (count > 1 || (count == 1 &&
	    !trimmed_equal(date_value, scope->amz_date, SIGV4_AMZ_DATE_LEN))) {
		fail(err, SIGV4_E_DATE);
		goto fail;
	}
	if (sigv4_string_to_sign(scope, out->canonical_request, &out->string_to_sign, err) == -1 ||
	    sigv4_signature(key, out->string_to_sign, out->signature, err) == -1)
		goto fail;

	/* Builder errors are sticky: sb_take() reports any of them. */
	sb_puts(&b, SIGV4_ALGORITHM " Credential=");
	sb_puts(&b, access_key_id);
	sb_putc(&b, '/');
	put_scope(&b, scope->amz_date, scope->region, scope->service);
	sb_puts(&b, ", SignedHeaders=");
	sb_puts(&b, out->signed_headers);
	sb_puts(&b, ", Signature=");
	sb_puts(&b, out->signature);
	if (sb_take(&b, &out->authorization, err) == -1)
		goto fail;
	return 0;
fail:
	sigv4_result_free(out);
	return -1;
}

/* With a token, exactly one X-Amz-Security-Token header holds it and is signed. */
static int
check_token_header(const struct sigv4_request *req, const char *token, enum sigv4_error *err)
{
	const char *value;
	size_t n;

	if (check_len(token, 1, SIGV4_MAX_HEADER_VALUE, &n, err) == -1)
		return -1;
	if (find_header(req, HDR_TOKEN, &value) != 1 || !trimmed_equal(value, token, n) ||
	    !is_signed(req, HDR_TOKEN))
		return fail(err, SIGV4_E_TOKEN);
	return 0;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_scope *scope,
    const struct sigv4_credentials *cred, struct sigv4_result *out, enum sigv4_error *err)
{
	uint8_t key[SIGV4_KEY_LEN];
	char date8[SIGV4_DATE_LEN + 1];
	size_t path_len, query_len;
	int rc;

	if (out == NULL)
		return fail(err, SIGV4_E_INVALID);
	memset(out, 0, sizeof(*out));
	if (cred == NULL)
		return fail(err, SIGV4_E_INVALID);
	/* The request first, so a broken header is reported as such, not as a token problem. */
	if (check_request(req, &path_len, &query_len, err) == -1 || check_scope(scope, err) == -1)
		return -1;
	if (cred->session_token != NULL && cred->session_token[0] != '\0' &&
	    check_token_header(req, cred->session_token, err) == -1)
		return -1;
	memcpy(date8, scope->amz_date, SIGV4_DATE_LEN);
	date8[SIGV4_DATE_LEN] = '\0';
	if (sigv4_signing_key(cred->secret_key, date8, scope->region, scope->service, key, err) == -1)
		return -1;
	rc = sigv4_sign_with_key(req, scope, cred->access_key_id, key, out, err);
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

/* ---- Authorization parsing --------------------------------------------------------- */

static bool
token_is(const char *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* AK/YYYYMMDD/region/service/aws4_request */
static bool
parse_credential(const char *v, size_t n, struct sigv4_auth *auth)
{
	const char *part[5];
	size_t len[5], i, k = 0, start = 0;

	for (i = 0; i <= n; i++) {
		if (i < n && v[i] != '/')
			continue;
		if (k == 5)
			return false;
		part[k] = v + start;
		len[k] = i - start;
		k++;
		start = i + 1;
	}
	if (k != 5 || !access_key_ok(part[0], len[0]) || !date8_ok(part[1], len[1]) ||
	    !scope_field_ok(part[2], len[2]) || !scope_field_ok(part[3], len[3]) ||
	    !token_is(part[4], len[4], SCOPE_TERMINATOR))
		return false;
	memcpy(auth->access_key_id, part[0], len[0]);
	memcpy(auth->date, part[1], len[1]);
	memcpy(auth->region, part[2], len[2]);
	memcpy(auth->service, part[3], len[3]);
	return true;
}

/* Lowercase tokens, strictly increasing, never "authorization". */
static enum sigv4_error
parse_signed_headers(const char *v, size_t n, struct sigv4_auth *auth)
{
	const char *prev = NULL, *name;
	size_t prev_len = 0, len, i, start = 0, count = 0, c;
	int cmp;

	if (n == 0)
		return SIGV4_E_AUTH_MALFORMED;
	if (n > SIGV4_MAX_SIGNED_LIST)
		return SIGV4_E_LIMIT;
	for (i = 0; i <= n; i++) {
		if (i < n && v[i] != ';')
			continue;
		name = v + start;
		len = i - start;
		start = i + 1;
		if (len == 0 || len > SIGV4_MAX_HEADER_NAME)
			return SIGV4_E_AUTH_MALFORMED;
		for (c = 0; c < len; c++)
			if (!is_tchar((unsigned char)name[c]) || (name[c] >= 'A' && name[c] <= 'Z'))
				return SIGV4_E_AUTH_MALFORMED;
		if (token_is(name, len, HDR_AUTHORIZATION))
			return SIGV4_E_AUTH_MALFORMED;
		if (prev != NULL) {
			cmp = memcmp(prev, name, prev_len < len ? prev_len : len);
			if (cmp > 0 || (cmp == 0 && prev_len >= len))
				return SIGV4_E_AUTH_MALFORMED;
		}
		if (++count > SIGV4_MAX_HEADERS)
			return SIGV4_E_LIMIT;
		prev = name;
		prev_len = len;
	}
	memcpy(auth->signed_headers, v, n);
	auth->signed_headers[n] = '\0';
	auth->signed_count = count;
	return SIGV4_OK;
}

static bool
parse_signature(const char *v, size_t n, struct sigv4_auth *auth)
{
	size_t i;

	if (n != SIGV4_HEX_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!is_digit((unsigned char)v[i]) && !(v[i] >= 'a' && v[i] <= 'f'))
			return false;
	memcpy(auth->signature, v, n);
	auth->signature[n] = '\0';
	return true;
}

static int
auth_parse(const char *value, size_t len, struct sigv4_auth *auth, enum sigv4_error *err)
{
	const size_t alg_len = strlen(SIGV4_ALGORITHM);
	bool have_cred = false, have_list = false, have_sig = false;
	size_t i, end, cend, klen;
	const char *comp, *eq;
	enum sigv4_error code;

	memset(auth, 0, sizeof(*auth));
	if (len > SIGV4_MAX_AUTHORIZATION)
		return fail(err, SIGV4_E_LIMIT);
	if (len <= alg_len || memcmp(value, SIGV4_ALGORITHM, alg_len) != 0 ||
	    value[alg_len] != ' ')
		goto malformed;
	for (i = alg_len; i < len && value[i] == ' '; i++)
		;
	for (;;) {
		/* One component: [i, cend), up to the next ',' less trailing OWS. */
		for (end = i; end < len && value[end] != ','; end++)
			;
		for (cend = end; cend > i && is_ows((unsigned char)value[cend - 1]); cend--)
			;
		comp = value + i;
		if ((eq = memchr(comp, '=', cend - i)) == NULL)
			goto malformed;
		klen = (size_t)(eq - comp);
		eq++;
		if (token_is(comp, klen, "Credential") && !have_cred) {
			if (!parse_credential(eq, cend - i - klen - 1, auth))
				goto malformed;
			have_cred = true;
		} else if (token_is(comp, klen, "SignedHeaders") && !have_list) {
			code = parse_signed_headers(eq, cend - i - klen - 1, auth);
			if (code != SIGV4_OK) {
				memset(auth, 0, sizeof(*auth));
				return fail(err, code);
			}
			have_list = true;
		} else if (token_is(comp, klen, "Signature") && !have_sig) {
			if (!parse_signature(eq, cend - i - klen - 1, auth))
				goto malformed;
			have_sig = true;
		} else {
			goto malformed;
		}
		if (end == len)
			break;
		for (i = end + 1; i < len && is_ows((unsigned char)value[i]); i++)
			;
		if (i == len)
			goto malformed;
	}
	if (have_cred && have_list && have_sig)
		return 0;
malformed:
	memset(auth, 0, sizeof(*auth));
	return fail(err, SIGV4_E_AUTH_MALFORMED);
}

int
sigv4_auth_parse(const char *value, struct sigv4_auth *auth, enum sigv4_error *err)
{
	if (auth == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (value == NULL) {
		memset(auth, 0, sizeof(*auth));
		return fail(err, SIGV4_E_AUTH_MISSING);
	}
	return auth_parse(value, strnlen(value, SIGV4_MAX_AUTHORIZATION + 1), auth, err);
}

int
sigv4_auth_find(const struct sigv4_request *req, struct sigv4_auth *auth, enum sigv4_error *err)
{
	const char *value;
	size_t count, len;

	if (auth == NULL)
		return fail(err, SIGV4_E_INVALID);
	memset(auth, 0, sizeof(*auth));
	if (req == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (req->header_count > SIGV4_MAX_HEADERS)
		return fail(err, SIGV4_E_LIMIT);
	count = find_header(req, HDR_AUTHORIZATION, &value);
	if (count == 0)
		return fail(err, SIGV4_E_AUTH_MISSING);
	if (count > 1)
		return fail(err, SIGV4_E_AUTH_MALFORMED);
	/* The value as a header parser may hand it over: drop surrounding OWS. */
	while (is_ows((unsigned char)*value))
		value++;
	len = strnlen(value, SIGV4_MAX_AUTHORIZATION + 1);
	while (len > 0 && len <= SIGV4_MAX_AUTHORIZATION && is_ows((unsigned char)value[len - 1]))
		len--;
	return auth_parse(value, len, auth, err);
}

/* ---- verification ------------------------------------------------------------------ */

/* Splits the parsed list into names (pointing into buf). */
static int
split_signed(const struct sigv4_auth *auth, char *buf, const char **names, size_t *count)
{
	size_t n = 0, i, len;

	len = strnlen(auth->signed_headers, sizeof(auth->signed_headers));
	if (len == 0 || len == sizeof(auth->signed_headers))
		return -1;
	memcpy(buf, auth->signed_headers, len + 1);
	names[n++] = buf;
	for (i = 0; i < len; i++) {
		if (buf[i] != ';')
			continue;
		if (n == SIGV4_MAX_HEADERS)
			return -1;
		buf[i] = '\0';
		names[n++] = buf + i + 1;
	}
	*count = n;
	return 0;
}

static bool
names_include(const char *const *names, size_t n, const char *lname)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], lname) == 0)
			return true;
	return false;
}

static bool
names_include_case(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ascii_casecmp(names[i], name) == 0)
			return true;
	return false;
}

/* value less surrounding OWS is exactly n bytes: copied into out, NUL-terminated. */
static bool
copy_trimmed(const char *value, char *out, size_t n)
{
	while (is_ows((unsigned char)*value))
		value++;
	if (strnlen(value, n) != n)
		return false;
	if (!trimmed_equal(value, value, n))	/* only OWS after n bytes */
		return false;
	memcpy(out, value, n);
	out[n] = '\0';
	return true;
}

static bool
has_amz_prefix(const char *name)
{
	static const char prefix[] = "x-amz-";
	size_t i;

	for (i = 0; i < sizeof(prefix) - 1; i++)
		if (ascii_lower((unsigned char)name[i]) != (unsigned char)prefix[i])
			return false;
	return true;
}

int
sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
    const char *secret_key, enum sigv4_error *err)
{
	struct sigv4_auth parsed;
	struct sigv4_request r;
	struct sigv4_scope scope;
	struct sigv4_result res;
	char list[SIGV4_MAX_SIGNED_LIST + 1];
	const char *names[SIGV4_MAX_HEADERS];
	char amz_date[SIGV4_AMZ_DATE_LEN + 1];
	uint8_t key[SIGV4_KEY_LEN];
	const char *value;
	size_t n, i;
	int rc = -1;

	memset(&res, 0, sizeof(res));
	if (req == NULL || secret_key == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (req->header_count > SIGV4_MAX_HEADERS)
		return fail(err, SIGV4_E_LIMIT);
	if (req->header_count > 0 && req->headers == NULL)
		return fail(err, SIGV4_E_INVALID);
	if (auth == NULL) {
		if (sigv4_auth_find(req, &parsed, err) == -1)
			return -1;
		auth = &parsed;
	}
	if (split_signed(auth, list, names, &n) == -1)
		return fail(err, SIGV4_E_AUTH_MALFORMED);
	/* AWS requires host signed; the date must be signed for a skew check to
	 * mean anything; and an unsigned x-amz-* header (x-amz-target picks the
	 * operation) could be changed in transit. */
	if (!names_include(names, n, "host") || !names_include(names, n, HDR_AMZ_DATE))
		return fail(err, SIGV4_E_AUTH_MALFORMED);
	for (i = 0; i < req->header_count; i++) {
		if (req->headers[i].name == NULL || !has_amz_prefix(req->headers[i].name))
			continue;
		if (!names_include_case(names, n, req->headers[i].name))
			return fail(err, SIGV4_E_AUTH_MALFORMED);
	}

	if (find_header(req, HDR_AMZ_DATE, &value) != 1 ||
	    !copy_trimmed(value, amz_date, SIGV4_AMZ_DATE_LEN) ||
	    !amz_date_ok(amz_date, SIGV4_AMZ_DATE_LEN) ||
	    memcmp(amz_date, auth->date, SIGV4_DATE_LEN) != 0)
		return fail(err, SIGV4_E_DATE);

	r = *req;
	r.signed_headers = names;
	r.signed_count = n;
	scope.amz_date = amz_date;
	scope.region = auth->region;
	scope.service = auth->service;
	if (sigv4_signing_key(secret_key, auth->date, auth->region, auth->service, key, err) == -1)
		return -1;
	if (sigv4_sign_with_key(&r, &scope, auth->access_key_id, key, &res, err) == -1)
		goto out;
	if (CRYPTO_memcmp(res.signature, auth->signature, SIGV4_HEX_LEN) != 0) {
		fail(err, SIGV4_E_MISMATCH);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	sigv4_result_free(&res);
	return rc;
}

/* ---- misc -------------------------------------------------------------------------- */

void
sigv4_free(char *s)
{
	if (s == NULL)
		return;
	OPENSSL_cleanse(s, strlen(s));
	free(s);
}

void
sigv4_result_free(struct sigv4_result *result)
{
	if (result == NULL)
		return;
	sigv4_free(result->canonical_request);
	sigv4_free(result->string_to_sign);
	sigv4_free(result->signed_headers);
	sigv4_free(result->authorization);
	OPENSSL_cleanse(result, sizeof(*result));
}

const char *
sigv4_strerror(enum sigv4_error err)
{
	switch (err) {
	case SIGV4_OK:
		return "success";
	case SIGV4_E_INVALID:
		return "invalid input";
	case SIGV4_E_LIMIT:
		return "input exceeds a size limit";
	case SIGV4_E_NO_HEADER:
		return "a header to sign is missing from the request";
	case SIGV4_E_DATE:
		return "X-Amz-Date missing, malformed or not the signing date";
	case SIGV4_E_TOKEN:
		return "session token not sent as a signed X-Amz-Security-Token header";
	case SIGV4_E_AUTH_MISSING:
		return "no Authorization header";
	case SIGV4_E_AUTH_MALFORMED:
		return "malformed Authorization header";
	case SIGV4_E_MISMATCH:
		return "signature does not match";
	case SIGV4_E_NOMEM:
		return "out of memory";
	case SIGV4_E_CRYPTO:
		return "cryptographic library failure";
	}
	return "unknown error";
}
