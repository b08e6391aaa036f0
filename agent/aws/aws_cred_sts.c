/*
 * aws_cred_sts: web identity credentials, STS AssumeRoleWithWebIdentity (an
 * unsigned form POST carrying the token file's JWT) and the small bounded XML
 * reader for its answer. The token file is read again for every fetch: it is
 * rotated underneath us.
 */
#define LOG_COMPONENT "aws"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "aws_cred_internal.h"
#include "aws_profile.h"
#include "sigv4.h"
#include "sm_id.h"

#define CRED_STS_TIMEOUT_MS	5000

/* application/x-www-form-urlencoded name=value, the value encoded as SigV4 encodes. */
static int
cred_form_append(char *buf, size_t buflen, size_t *off, const char *name, const char *value)
{
	size_t o = *off;

	if (o > 0) {
		if (o + 1 >= buflen)
			return -1;
		buf[o++] = '&';
	}
	if (o + strlen(name) + 1 >= buflen)
		return -1;
	memcpy(buf + o, name, strlen(name));
	o += strlen(name);
	buf[o++] = '=';
	if (sigv4_uri_encode(buf, buflen, &o, value) != 0)
		return -1;
	*off = o;
	return 0;
}

/* ---- the STS XML answer ------------------------------------------------------------------ */

/*
 * The text of the first <tag>...</tag> inside doc[0..len), entities
 * replaced. Returns 1 found, 0 absent, -1 malformed or too long for out.
 * Enough for the flat, attribute-free elements of an STS answer; nested
 * markup, CDATA and unknown entities are errors.
 */
static int
cred_xml_text(const char *doc, size_t len, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *start, *end, *c;
	size_t o = 0;
	int n1, n2;

	n1 = snprintf(open, sizeof(open), "<%s>", tag);
	n2 = snprintf(close, sizeof(close), "</%s>", tag);
	if (n1 < 0 || n2 < 0 || (size_t)n1 >= sizeof(open) || (size_t)n2 >= sizeof(close))
		return -1;
	if ((start = memmem(doc, len, open, (size_t)n1)) == NULL)
		return 0;
	start += n1;
	if ((end = memmem(start, len - (size_t)(start - doc), close, (size_t)n2)) == NULL)
		return -1;
	for (c = start; c < end; ) {
		char ch = *c;
		size_t rest = (size_t)(end - c);

		if (ch == '<' || ch == '\0')
			return -1;
		if (ch == '&') {
			static const struct { const char *ent; char ch; } ents[] = {
				{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
				{ "&quot;", '"' }, { "&apos;", '\'' },
			};
			size_t i, elen;
			bool matched = false;

			for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
				elen = strlen(ents[i].ent);
				if (rest >= elen && memcmp(c, ents[i].ent, elen) == 0) {
					ch = ents[i].ch;
					c += elen;
					matched = true;
					break;
				}
			}
			if (!matched && rest >= 4 && c[1] == '#') {
				/* &#NN; or &#xHH; for printable ASCII */
				const char *d = c + 2;
				unsigned long v = 0;
				bool hexa = (*d == 'x' || *d == 'X');
				int digits = 0;

				if (hexa)
					d++;
				while (d < end && digits < 6 && (hexa ? isxdigit((unsigned char)*d) :
				    isdigit((unsigned char)*d))) {
					v = v * (hexa ? 16 : 10) + (unsigned long)(isdigit((unsigned char)*d) ?
					    *d - '0' : (tolower((unsigned char)*d) - 'a' + 10));
					d++;
					digits++;
				}
				if (digits == 0 || d >= end || *d != ';' || v < 0x20 || v >= 0x7f)
					return -1;
				ch = (char)v;
				c = d + 1;
				matched = true;
			}
			if (!matched)
				return -1;
		} else {
			c++;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = ch;
	}
	out[o] = '\0';
	return 1;
}

static void
cred_sts_done(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct aws_credential_provider *p = arg;
	char code[64] = "", text[160] = "";
	struct aws_credentials *c = NULL;
	const char *doc, *start, *end;
	char when[64];
	size_t len;
	int rc;

	p->call = NULL;
	if (cred_retry_once(p, r, error)) {
		if (cred_sts_start(p, text, sizeof(text)) != 0)
			cred_fetch_failed(p, "%s", text);
		return;
	}
	if (error != HTTP_OK) {
		cred_fetch_failed(p, "STS %s: %s", p->url, msg);
		return;
	}
	doc = (const char *)r->body;
	len = r->body_len;
	if (r->status != 200) {
		if (cred_xml_text(doc, len, "Code", code, sizeof(code)) != 1)
			code[0] = '\0';
		if (cred_xml_text(doc, len, "Message", text, sizeof(text)) != 1)
			text[0] = '\0';
		cred_sanitize(code);
		cred_sanitize(text);
		cred_fetch_failed(p, "STS AssumeRoleWithWebIdentity: HTTP %ld%s%s%s%s", r->status,
		    code[0] ? " " : "", code, text[0] ? ": " : "", text);
		return;
	}
	/* Only look inside <Credentials> ... </Credentials>. */
	if ((start = memmem(doc, len, "<Credentials>", 13)) == NULL ||
	    (end = memmem(start, len - (size_t)(start - doc), "</Credentials>", 14)) == NULL) {
		cred_fetch_failed(p, "STS answer has no <Credentials> element");
		return;
	}
	len = (size_t)(end - start);
	if ((c = sodium_malloc(sizeof(*c))) == NULL) {
		cred_fetch_failed(p, "out of memory");
		return;
	}
	memset(c, 0, sizeof(*c));
	if (cred_xml_text(start, len, "AccessKeyId", c->access_key_id,
	        sizeof(c->access_key_id)) != 1 ||
	    cred_xml_text(start, len, "SecretAccessKey", c->secret_access_key,
	        sizeof(c->secret_access_key)) != 1 ||
	    cred_xml_text(start, len, "SessionToken", c->session_token,
	        sizeof(c->session_token)) != 1) {
		cred_fetch_failed(p, "STS answer: missing or malformed AccessKeyId, "
		    "SecretAccessKey or SessionToken");
		goto out;
	}
	rc = cred_xml_text(start, len, "Expiration", when, sizeof(when));
	if (rc != 1 || cred_parse_time(when, &c->expiration) != 0) {
		cred_fetch_failed(p, "STS answer: missing or malformed Expiration");
		goto out;
	}
	cred_fetch_succeeded(p, c);
out:
	sodium_free(c);
}

int
cred_sts_start(struct aws_credential_provider *p, char *err, size_t errlen)
{
	static const struct http_header headers[] = {
		{ "Content-Type", "application/x-www-form-urlencoded; charset=utf-8" },
		{ "Accept", "text/xml" },
	};
	size_t bodylen = 3 * CRED_TOKEN_FILE_MAX + 8192, off = 0;
	struct http_request req;
	char *token = NULL, *body = NULL, url[sizeof(p->url) + 1];
	int rc = -1;

	if ((token = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL ||
	    (body = sodium_malloc(bodylen)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (cred_read_token_file(p->token_file, token, CRED_TOKEN_FILE_MAX, err, errlen) != 0)
		goto out;
	body[0] = '\0';
	if (cred_form_append(body, bodylen, &off, "Action", "AssumeRoleWithWebIdentity") != 0 ||
	    cred_form_append(body, bodylen, &off, "Version", "2011-06-15") != 0 ||
	    cred_form_append(body, bodylen, &off, "RoleArn", p->role_arn) != 0 ||
	    cred_form_append(body, bodylen, &off, "RoleSessionName", p->session_name) != 0 ||
	    cred_form_append(body, bodylen, &off, "WebIdentityToken", token) != 0) {
		snprintf(err, errlen, "STS request too large");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/", p->url);
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.header_count = sizeof(headers) / sizeof(headers[0]);
	req.body = (const uint8_t *)body;
	req.body_len = off;
	req.timeout_ms = CRED_STS_TIMEOUT_MS;
	/* Unsigned, as AWS wants it: the web identity token is the proof. */
	if (http_client_request(p->http, &req, cred_sts_done, p, &p->call) != 0) {
		snprintf(err, errlen, "cannot start the STS request to %.160s", p->url);
		goto out;
	}
	rc = 0;
out:
	sodium_free(token);	/* both wipe */
	sodium_free(body);
	return rc;
}

static int
cred_session_name(struct aws_credential_provider *p, const char *v, char *err, size_t errlen)
{
	size_t len;
	const char *c;

	if (v == NULL) {
		snprintf(p->session_name, sizeof(p->session_name), "smcached-%lld",
		    (long long)time(NULL));
		return 0;
	}
	len = strlen(v);
	for (c = v; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && strchr("+=,.@_-", *c) == NULL)
			break;
	if (len < 2 || len > 64 || *c != '\0') {
		snprintf(err, errlen, "role session name '%.64s' must be 2 to 64 characters of"
		    " letters, digits and +=,.@_-", v);
		return -1;
	}
	memcpy(p->session_name, v, len + 1);
	return 0;
}

int
cred_setup_web_identity(struct aws_credential_provider *p, const struct aws_resolved *r,
    const char *role_arn, const char *token_file, const char *session, const char *from,
    char *err, size_t errlen)
{
	const char *endpoint, *name = "AWS_ENDPOINT_URL_STS";
	char *token = NULL, why[CRED_ERR_LEN];
	int rc = -1;

	p->src = SRC_WEB_IDENTITY;
	if (cred_copy_str(p->role_arn, sizeof(p->role_arn), role_arn) != 0 ||
	    cred_copy_str(p->token_file, sizeof(p->token_file), token_file) != 0) {
		snprintf(err, errlen, "%s: role ARN or token file path too long", from);
		return -1;
	}
	if (strncmp(role_arn, "arn:", 4) != 0) {
		snprintf(err, errlen, "%s: role ARN '%.128s' does not start with arn:", from,
		    role_arn);
		return -1;
	}
	if (cred_session_name(p, session, err, errlen) != 0)
		return -1;
	/* A broken token file is a configuration error: say so now. */
	if ((token = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (cred_read_token_file(token_file, token, CRED_TOKEN_FILE_MAX, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", from, why);
		goto out;
	}
	if ((endpoint = cred_env(name)) == NULL && (endpoint = cred_env(name = "AWS_ENDPOINT_URL"))
	    == NULL) {
		snprintf(p->url, sizeof(p->url), "https://sts%s.%s.%s", r->fips ? "-fips" : "",
		    r->region, sm_id_region_dns_suffix(r->region));
	} else if (aws_endpoint_normalize(endpoint, p->url, sizeof(p->url), why,
	    sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: %s", name, why);
		goto out;
	}
	rc = 0;
out:
	sodium_free(token);
	return rc;
}
