/*
 * aws_credentials: picks the credential source once (aws_credentials_new),
 * then fetches, caches and refreshes credentials from it on the event loop.
 *
 * Owns: the source selection rules, the three network protocols (STS
 * AssumeRoleWithWebIdentity, the ECS/EKS container endpoint, IMDSv2), the
 * small bounded XML reader for the STS answer, the cache with its refresh
 * and retry timers, and the list of callers waiting for credentials.
 *
 * Timing, for credentials that expire at E and were fetched at F (life L):
 *   usable until  E - min(60 s, L/4)   (aws_credentials_current() is NULL after)
 *   refreshed at  E - min(300 s, L/2)  (in the background)
 * A failed fetch is retried after 1, 2, 4 ... 60 s; while the old
 * credentials are usable they keep being served, and the retry is brought
 * forward so that it happens before they stop being usable.
 *
 * The provider struct holds the secrets: it lives in sodium_malloc() memory
 * (guarded, locked, wiped by sodium_free()); secrets are wiped when replaced,
 * and temporary copies (token files, request bodies, parsed responses) are
 * wiped before being freed. Nothing here logs a secret key or a token.
 */
#define LOG_COMPONENT "aws"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/event.h>
#include <sodium.h>

#include "aws_credentials.h"
#include "aws_profile.h"
#include "http.h"
#include "json_secure.h"
#include "log.h"
#include "sigv4.h"
#include "sm_id.h"
#include "sys_file.h"

#define CRED_TOKEN_FILE_MAX	(16 * 1024)	/* web identity JWT, container auth token */
#define CRED_USABLE_MARGIN	60		/* seconds before expiry: stop handing them out */
#define CRED_REFRESH_LEAD	300		/* seconds before expiry: refresh */
#define CRED_BACKOFF_MAX	60		/* seconds between failed attempts, at most */
#define CRED_STS_TIMEOUT_MS	5000
#define CRED_ECS_TIMEOUT_MS	2000
#define CRED_IMDS_TIMEOUT_MS	1000
#define CRED_IMDS_TOKEN_TTL	21600
#define CRED_ERR_LEN		256

#define ECS_RELATIVE_HOST	"http://169.254.170.2"
#define IMDS_DEFAULT_V4		"http://169.254.169.254"
#define IMDS_DEFAULT_V6		"http://[fd00:ec2::254]"
#define IMDS_ROLE_PATH		"/latest/meta-data/iam/security-credentials/"

enum cred_source {
	SRC_ENVIRONMENT,
	SRC_WEB_IDENTITY,
	SRC_SHARED_FILE,
	SRC_ECS,
	SRC_IMDS,
};

static const char *const cred_source_names[] = {
	"environment", "web-identity", "shared-file", "ecs", "imds",
};

enum imds_step {
	IMDS_TOKEN,
	IMDS_ROLE,
	IMDS_CREDS,
};

struct cred_waiter {
	aws_credentials_cb cb;
	void *arg;
	struct cred_waiter *next;
};

struct aws_credential_provider {
	struct event_base *base;
	struct http_client *http;
	enum cred_source src;

	/* configuration of the source */
	char role_arn[2048];
	char session_name[65];
	char token_file[4096];		/* web identity token, or container auth token file */
	char url[2048];			/* STS endpoint, container URL, or IMDS base */
	char ecs_token[4096];		/* AWS_CONTAINER_AUTHORIZATION_TOKEN */

	/* the cache */
	struct aws_credentials creds;
	bool have;
	time_t usable_until;		/* 0: forever */
	time_t refresh_at;		/* 0: never */

	/* the fetch in progress */
	bool fetching;
	struct http_call *call;
	enum imds_step imds_step;
	int attempt;			/* retries of the current step */
	bool imds_token_retried;
	char imds_token[512];
	time_t imds_token_expires;
	char imds_role[128];

	/* failures */
	unsigned failures;
	time_t next_attempt;		/* no new fetch for waiters before this */
	char last_error[CRED_ERR_LEN];

	struct event *refresh_ev;	/* background refresh and retry */
	struct event *notify_ev;	/* answers waiters from the loop */
	struct cred_waiter *waiters;
	struct cred_waiter *dispatching_list;
	int dispatching;
	bool free_pending;
};

static void cred_fetch_failed(struct aws_credential_provider *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- small helpers ----------------------------------------------------------------------- */

static const char *
cred_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

static bool
cred_env_true(const char *name)
{
	const char *v = cred_env(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

static int
cred_copy(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	if (srclen >= dstlen)
		return -1;
	memcpy(dst, src, srclen);
	dst[srclen] = '\0';
	return 0;
}

static int
cred_copy_str(char *dst, size_t dstlen, const char *src)
{
	return cred_copy(dst, dstlen, src, strlen(src));
}

static void
cred_wipe(struct aws_credentials *c)
{
	sodium_memzero(c, sizeof(*c));
}

/*
 * Reads a small secret file (token), trailing white space removed.
 * Returns 0, or -1 with a message naming the file (never its contents).
 */
static int
cred_read_token_file(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
	const struct sys_file_opts opts = { .max_size = outlen - 1, .trust = true };
	struct sys_file f;
	size_t got;
	int n, rc = -1;

	out[0] = '\0';
	/* The reason goes after the prefix, in err itself. */
	n = snprintf(err, errlen, "cannot read token file %s: ", path);
	if (n < 0 || (size_t)n >= errlen)
		n = 0;
	if (sys_file_read(path, &opts, &f, err + n, errlen - (size_t)n) != 1)
		return -1;
	err[0] = '\0';
	got = f.len;
	memcpy(out, f.data, got);
	while (got > 0 && isspace((unsigned char)out[got - 1]))
		got--;
	out[got] = '\0';
	if (got == 0) {
		snprintf(err, errlen, "token file %s is empty", path);
		goto out;
	}
	if (strlen(out) != got || strpbrk(out, "\r\n") != NULL) {
		snprintf(err, errlen, "token file %s holds more than one line of text", path);
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		sodium_memzero(out, outlen);
	sys_file_free(&f);
	return rc;
}

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

static int
cred_digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* ISO 8601 / RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM). */
static int
cred_parse_time(const char *s, time_t *out)
{
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0;
	struct tm tm;
	time_t t;

	if (strlen(s) < 20 || cred_digits(s, 4, &year) || s[4] != '-' ||
	    cred_digits(s + 5, 2, &mon) || s[7] != '-' || cred_digits(s + 8, 2, &day) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || cred_digits(s + 11, 2, &hour) ||
	    s[13] != ':' || cred_digits(s + 14, 2, &min) || s[16] != ':' ||
	    cred_digits(s + 17, 2, &sec))
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if ((*s == 'Z' || *s == 'z') && s[1] == '\0') {
		sign = 0;
	} else if ((*s == '+' || *s == '-') && strlen(s) == 6 && s[3] == ':' &&
	    cred_digits(s + 1, 2, &oh) == 0 && cred_digits(s + 4, 2, &om) == 0) {
		sign = *s == '+' ? 1 : -1;
	} else {
		return -1;
	}
	if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 ||
	    oh > 23 || om > 59 || year < 1970)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	*out = t - sign * (oh * 3600 + om * 60);
	return 0;
}

/* Printable ASCII only, for text taken from a response into a message. */
static void
cred_sanitize(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
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

/* ---- the cache and its waiters ----------------------------------------------------------- */

static bool
cred_usable(const struct aws_credential_provider *p, time_t now)
{
	return p->have && (p->creds.expiration == 0 || now < p->usable_until);
}

static void
cred_notify_soon(struct aws_credential_provider *p)
{
	static const struct timeval zero = { 0, 0 };

	evtimer_add(p->notify_ev, &zero);
}

static void
cred_schedule(struct aws_credential_provider *p, time_t delay)
{
	struct timeval tv = { delay > 0 ? delay : 0, 0 };

	evtimer_add(p->refresh_ev, &tv);
}

static void
cred_destroy(struct aws_credential_provider *p)
{
	struct cred_waiter *w;

	if (p->call != NULL)
		http_call_cancel(p->call);
	while ((w = p->waiters) != NULL) {
		p->waiters = w->next;
		free(w);
	}
	while ((w = p->dispatching_list) != NULL) {
		p->dispatching_list = w->next;
		free(w);
	}
	if (p->refresh_ev != NULL)
		event_free(p->refresh_ev);
	if (p->notify_ev != NULL)
		event_free(p->notify_ev);
	sodium_free(p);		/* wipes everything, secrets included */
}

/* Answers every waiter that can be answered: credentials, or the last error. */
static void
cred_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct aws_credential_provider *p = arg;
	struct cred_waiter *w, **tail;
	time_t now = time(NULL);

	if (p->fetching && !cred_usable(p, now))
		return;		/* the fetch's end notifies again */
	p->dispatching++;
	/* Detach the list: callbacks may call get() (new waiters go to p->waiters). */
	for (tail = &p->dispatching_list; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = p->waiters;
	p->waiters = NULL;
	while (!p->free_pending && (w = p->dispatching_list) != NULL) {
		p->dispatching_list = w->next;
		if (cred_usable(p, now))
			w->cb(w->arg, &p->creds, NULL);
		else
			w->cb(w->arg, NULL, p->last_error[0] != '\0' ? p->last_error :
			    "no AWS credentials");
		free(w);
	}
	p->dispatching--;
	if (p->free_pending && p->dispatching == 0)
		cred_destroy(p);
}

static void cred_start_fetch(struct aws_credential_provider *p);

static void
cred_refresh_cb(evutil_socket_t fd, short what, void *arg)
{
	struct aws_credential_provider *p = arg;

	if (!p->fetching)
		cred_start_fetch(p);
}

/* Starts a background refresh when one is due. Never calls back. */
static void
cred_maybe_refresh(struct aws_credential_provider *p, time_t now)
{
	if (p->fetching || p->refresh_at == 0 || now < p->refresh_at || now < p->next_attempt)
		return;
	cred_schedule(p, 0);
}

/* A fetch ended well: take the new credentials (c is wiped). */
static void
cred_fetch_succeeded(struct aws_credential_provider *p, struct aws_credentials *c)
{
	time_t now = time(NULL), life, margin, lead;
	char when[32];
	struct tm tm;
	bool first = !p->have;

	p->fetching = false;
	p->attempt = 0;
	if (c->access_key_id[0] == '\0' || c->secret_access_key[0] == '\0') {
		cred_wipe(c);
		cred_fetch_failed(p, "the answer has no access key id or no secret access key");
		return;
	}
	if (c->expiration != 0 && c->expiration <= now) {
		cred_wipe(c);
		cred_fetch_failed(p, "the credentials received have already expired"
		    " (is the clock right?)");
		return;
	}
	c->source = cred_source_names[p->src];
	cred_wipe(&p->creds);
	p->creds = *c;
	cred_wipe(c);
	p->have = true;
	p->failures = 0;
	p->next_attempt = 0;
	p->last_error[0] = '\0';
	if (p->creds.expiration != 0) {
		life = p->creds.expiration - now;
		margin = life / 4 < CRED_USABLE_MARGIN ? life / 4 : CRED_USABLE_MARGIN;
		lead = life / 2 < CRED_REFRESH_LEAD ? life / 2 : CRED_REFRESH_LEAD;
		p->usable_until = p->creds.expiration - margin;
		p->refresh_at = p->creds.expiration - lead;
		cred_schedule(p, p->refresh_at - now);
		gmtime_r(&p->creds.expiration, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	} else {
		p->usable_until = p->refresh_at = 0;
		snprintf(when, sizeof(when), "never");
	}
	if (first)
		log_info("aws credentials: from %s, access key %s, expire %s",
		    cred_source_names[p->src], p->creds.access_key_id, when);
	else
		log_debug("aws credentials: refreshed from %s, access key %s, expire %s",
		    cred_source_names[p->src], p->creds.access_key_id, when);
	cred_notify_soon(p);
}

/* A fetch failed: keep what still works, retry later, tell the waiters. */
static void
cred_fetch_failed(struct aws_credential_provider *p, const char *fmt, ...)
{
	char msg[CRED_ERR_LEN];
	time_t now = time(NULL), backoff, left;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->fetching = false;
	p->attempt = 0;
	p->failures++;
	snprintf(p->last_error, sizeof(p->last_error), "aws credentials (%s): %.200s",
	    cred_source_names[p->src], msg);
	backoff = p->failures >= 7 ? CRED_BACKOFF_MAX : (time_t)1 << (p->failures - 1);
	if (backoff > CRED_BACKOFF_MAX)
		backoff = CRED_BACKOFF_MAX;
	if (cred_usable(p, now)) {
		/* Retry while the old ones still serve, and before they stop. */
		left = p->usable_until - now;
		if (backoff > left / 2)
			backoff = left / 2 > 1 ? left / 2 : 1;
		p->next_attempt = now + backoff;
		cred_schedule(p, backoff);
		log_warn("%s; keeping the current credentials, retrying in %lds", p->last_error,
		    (long)backoff);
	} else {
		p->next_attempt = now + backoff;
		log_warn("%s", p->last_error);
	}
	cred_notify_soon(p);
}

/* ---- web identity (STS) ------------------------------------------------------------------ */

static bool cred_retry_once(struct aws_credential_provider *p, const struct http_response *r,
    enum http_error error);
static int cred_sts_start(struct aws_credential_provider *p, char *err, size_t errlen);

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

static int
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

/* ---- JSON answers (ECS, IMDS) ------------------------------------------------------------ */

static int
cred_json_string(const cJSON *obj, const char *name, char *out, size_t outlen, bool required)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (item == NULL || cJSON_IsNull(item))
		return required ? -1 : 0;
	if (!cJSON_IsString(item) || item->valuestring == NULL)
		return -1;
	return cred_copy_str(out, outlen, item->valuestring) == 0 ? 1 : -1;
}

/* {AccessKeyId, SecretAccessKey, Token, Expiration[, Code]} into credentials. */
static void
cred_take_json(struct aws_credential_provider *p, const struct http_response *r,
    const char *what)
{
	struct aws_credentials *c = NULL;
	char when[64], code[64];
	cJSON *root;

	root = cJSON_ParseWithLength((const char *)r->body, r->body_len);
	if (root == NULL || !cJSON_IsObject(root)) {
		cred_fetch_failed(p, "%s: the answer is not a JSON object", what);
		goto out;
	}
	if (cred_json_string(root, "Code", code, sizeof(code), false) == 1 &&
	    strcmp(code, "Success") != 0) {
		cred_sanitize(code);
		cred_fetch_failed(p, "%s: Code is %s", what, code);
		goto out;
	}
	if ((c = sodium_malloc(sizeof(*c))) == NULL) {
		cred_fetch_failed(p, "out of memory");
		goto out;
	}
	memset(c, 0, sizeof(*c));
	if (cred_json_string(root, "AccessKeyId", c->access_key_id,
	        sizeof(c->access_key_id), true) != 1 ||
	    cred_json_string(root, "SecretAccessKey", c->secret_access_key,
	        sizeof(c->secret_access_key), true) != 1 ||
	    cred_json_string(root, "Token", c->session_token,
	        sizeof(c->session_token), false) < 0) {
		cred_fetch_failed(p, "%s: missing or malformed AccessKeyId, SecretAccessKey "
		    "or Token", what);
		goto out;
	}
	if (cred_json_string(root, "Expiration", when, sizeof(when), true) != 1 ||
	    cred_parse_time(when, &c->expiration) != 0) {
		cred_fetch_failed(p, "%s: missing or malformed Expiration", what);
		goto out;
	}
	cred_fetch_succeeded(p, c);
out:
	if (c != NULL)
		sodium_free(c);
	cJSON_Delete(root);	/* json_secure hooks wipe its strings */
}

/* One retry for what may pass: timeouts, refused connections, 5xx. */
static bool
cred_retry_once(struct aws_credential_provider *p, const struct http_response *r,
    enum http_error error)
{
	bool transient = error == HTTP_ERR_TIMEOUT || error == HTTP_ERR_CONNECT ||
	    (error == HTTP_OK && r->status >= 500);

	if (!transient || p->attempt > 0)
		return false;
	p->attempt++;
	return true;
}

/* ---- ECS / EKS container credentials ----------------------------------------------------- */

static int cred_ecs_start(struct aws_credential_provider *p, char *err, size_t errlen);

static void
cred_ecs_done(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	struct aws_credential_provider *p = arg;
	char err[CRED_ERR_LEN];

	p->call = NULL;
	if (cred_retry_once(p, r, error)) {
		if (cred_ecs_start(p, err, sizeof(err)) != 0)
			cred_fetch_failed(p, "%s", err);
		return;
	}
	if (error != HTTP_OK) {
		cred_fetch_failed(p, "container endpoint %s: %s", p->url, msg);
		return;
	}
	if (r->status != 200) {
		cred_fetch_failed(p, "container endpoint %s: HTTP %ld%s", p->url, r->status,
		    r->status == 401 || r->status == 403 ? " (authorization token refused)" : "");
		return;
	}
	cred_take_json(p, r, "container endpoint");
}

static int
cred_ecs_start(struct aws_credential_provider *p, char *err, size_t errlen)
{
	struct http_header headers[2] = { { "Accept", "application/json" } };
	struct http_request req;
	char *token = NULL;
	int rc = -1;

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = p->url;
	req.headers = headers;
	req.header_count = 1;
	req.timeout_ms = CRED_ECS_TIMEOUT_MS;
	if (p->token_file[0] != '\0') {
		/* Re-read each time: the file is rotated underneath us. */
		if ((token = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (cred_read_token_file(p->token_file, token, CRED_TOKEN_FILE_MAX,
		        err, errlen) != 0)
			goto out;
		headers[1].name = "Authorization";
		headers[1].value = token;
		req.header_count = 2;
	} else if (p->ecs_token[0] != '\0') {
		headers[1].name = "Authorization";
		headers[1].value = p->ecs_token;
		req.header_count = 2;
	}
	if (http_client_request(p->http, &req, cred_ecs_done, p, &p->call) != 0) {
		snprintf(err, errlen, "cannot start the request to %.160s", p->url);
		goto out;
	}
	rc = 0;
out:
	if (token != NULL)
		sodium_free(token);
	return rc;
}

/* ---- EC2 instance metadata (IMDSv2) ------------------------------------------------------ */

static int cred_imds_request(struct aws_credential_provider *p, char *err, size_t errlen);

static bool
cred_role_name_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("+=,.@_-", *s) == NULL)
			return false;
	return true;
}

static void
cred_imds_next(struct aws_credential_provider *p, enum imds_step step)
{
	char err[CRED_ERR_LEN];

	p->imds_step = step;
	if (cred_imds_request(p, err, sizeof(err)) != 0)
		cred_fetch_failed(p, "%s", err);
}

static void
cred_imds_done(void *arg, const struct http_response *r, enum http_error error, const char *msg)
{
	static const char *const step_names[] = { "token", "role name", "credentials" };
	struct aws_credential_provider *p = arg;
	const char *what = step_names[p->imds_step];
	size_t n;

	p->call = NULL;
	if (cred_retry_once(p, r, error)) {
		cred_imds_next(p, p->imds_step);
		return;
	}
	p->attempt = 0;
	if (error != HTTP_OK) {
		cred_fetch_failed(p, "instance metadata %s (%s): %s", p->url, what, msg);
		return;
	}
	if (r->status == 401 && p->imds_step != IMDS_TOKEN && !p->imds_token_retried) {
		/* Our session token expired or was revoked: get a new one, once. */
		sodium_memzero(p->imds_token, sizeof(p->imds_token));
		p->imds_token_expires = 0;
		p->imds_token_retried = true;
		cred_imds_next(p, IMDS_TOKEN);
		return;
	}
	if (r->status == 404 && p->imds_step == IMDS_ROLE) {
		cred_fetch_failed(p, "instance metadata %s: no IAM role is attached to this "
		    "instance", p->url);
		return;
	}
	if (r->status != 200) {
		cred_fetch_failed(p, "instance metadata %s (%s): HTTP %ld", p->url, what,
		    r->status);
		return;
	}
	switch (p->imds_step) {
	case IMDS_TOKEN:
		n = r->body_len;
		while (n > 0 && isspace(r->body[n - 1]))
			n--;
		if (n == 0 || cred_copy(p->imds_token, sizeof(p->imds_token),
		        (const char *)r->body, n) != 0 || strpbrk(p->imds_token, "\r\n") != NULL) {
			sodium_memzero(p->imds_token, sizeof(p->imds_token));
			cred_fetch_failed(p, "instance metadata %s: unusable session token", p->url);
			return;
		}
		p->imds_token_expires = time(NULL) + CRED_IMDS_TOKEN_TTL - 60;
		cred_imds_next(p, IMDS_ROLE);
		return;
	case IMDS_ROLE:
		/* One role name per line; an instance profile has exactly one. */
		n = strcspn((const char *)r->body, "\r\n");
		if (cred_copy(p->imds_role, sizeof(p->imds_role), (const char *)r->body, n) != 0 ||
		    !cred_role_name_ok(p->imds_role)) {
			cred_fetch_failed(p, "instance metadata %s: no usable IAM role name", p->url);
			return;
		}
		cred_imds_next(p, IMDS_CREDS);
		return;
	case IMDS_CREDS:
		cred_take_json(p, r, "instance metadata");
		return;
	}
}

static int
cred_imds_request(struct aws_credential_provider *p, char *err, size_t errlen)
{
	char url[sizeof(p->url) + sizeof(IMDS_ROLE_PATH) + sizeof(p->imds_role)];
	char ttl[16];
	struct http_header h;
	struct http_request req;

	memset(&req, 0, sizeof(req));
	req.headers = &h;
	req.header_count = 1;
	req.timeout_ms = CRED_IMDS_TIMEOUT_MS;
	if (p->imds_step == IMDS_TOKEN) {
		snprintf(ttl, sizeof(ttl), "%d", CRED_IMDS_TOKEN_TTL);
		snprintf(url, sizeof(url), "%s/latest/api/token", p->url);
		req.method = "PUT";
		h.name = "X-aws-ec2-metadata-token-ttl-seconds";
		h.value = ttl;
	} else {
		snprintf(url, sizeof(url), "%s%s%s", p->url, IMDS_ROLE_PATH,
		    p->imds_step == IMDS_CREDS ? p->imds_role : "");
		req.method = "GET";
		h.name = "X-aws-ec2-metadata-token";
		h.value = p->imds_token;
	}
	req.url = url;
	if (http_client_request(p->http, &req, cred_imds_done, p, &p->call) != 0) {
		snprintf(err, errlen, "cannot start the request to %.160s", p->url);
		return -1;
	}
	return 0;
}

static int
cred_imds_start(struct aws_credential_provider *p, char *err, size_t errlen)
{
	p->imds_token_retried = false;
	p->imds_step = p->imds_token[0] != '\0' && time(NULL) < p->imds_token_expires ?
	    IMDS_ROLE : IMDS_TOKEN;
	return cred_imds_request(p, err, errlen);
}

/* ---- fetching ---------------------------------------------------------------------------- */

static void
cred_start_fetch(struct aws_credential_provider *p)
{
	char err[CRED_ERR_LEN] = "";
	int rc;

	if (p->fetching)
		return;
	p->fetching = true;
	p->attempt = 0;
	switch (p->src) {
	case SRC_WEB_IDENTITY:
		rc = cred_sts_start(p, err, sizeof(err));
		break;
	case SRC_ECS:
		rc = cred_ecs_start(p, err, sizeof(err));
		break;
	case SRC_IMDS:
		rc = cred_imds_start(p, err, sizeof(err));
		break;
	default:
		/* Static sources were loaded by aws_credentials_new(). */
		p->fetching = false;
		cred_notify_soon(p);
		return;
	}
	if (rc != 0)
		cred_fetch_failed(p, "%s", err);	/* waiters hear of it from the loop */
}

const struct aws_credentials *
aws_credentials_current(struct aws_credential_provider *p)
{
	time_t now = time(NULL);

	if (p == NULL || p->free_pending)
		return NULL;
	if (cred_usable(p, now)) {
		cred_maybe_refresh(p, now);
		return &p->creds;
	}
	/* Expired or never fetched: get some in the background for next time. */
	if (!p->fetching && now >= p->next_attempt && p->src != SRC_ENVIRONMENT &&
	    p->src != SRC_SHARED_FILE)
		cred_schedule(p, 0);
	return NULL;
}

int
aws_credentials_get(struct aws_credential_provider *p, aws_credentials_cb cb, void *arg)
{
	struct cred_waiter *w, **tail;
	time_t now = time(NULL);

	if (p == NULL || cb == NULL || p->free_pending) {
		errno = EINVAL;
		return -1;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return -1;
	w->cb = cb;
	w->arg = arg;
	for (tail = &p->waiters; *tail != NULL; tail = &(*tail)->next)
		;
	*tail = w;
	if (cred_usable(p, now)) {
		cred_maybe_refresh(p, now);
		cred_notify_soon(p);
	} else if (!p->fetching) {
		if (now < p->next_attempt)
			cred_notify_soon(p);	/* failed a moment ago: say so, do not hammer */
		else
			cred_start_fetch(p);
	}
	return 0;
}

const char *
aws_credentials_source(const struct aws_credential_provider *p)
{
	return p != NULL ? cred_source_names[p->src] : "none";
}

/* ---- choosing the source ----------------------------------------------------------------- */

static int
cred_set_static(struct aws_credential_provider *p, const char *what, const char *akid,
    const char *secret, const char *token, char *err, size_t errlen)
{
	if (cred_copy_str(p->creds.access_key_id, sizeof(p->creds.access_key_id), akid) != 0 ||
	    cred_copy_str(p->creds.secret_access_key, sizeof(p->creds.secret_access_key),
	        secret) != 0 ||
	    cred_copy_str(p->creds.session_token, sizeof(p->creds.session_token),
	        token != NULL ? token : "") != 0) {
		snprintf(err, errlen, "%s: access key id, secret key or session token too long",
		    what);
		return -1;
	}
	p->creds.expiration = 0;
	p->creds.source = cred_source_names[p->src];
	p->have = true;
	return 0;
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

static int
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

/* Hosts the SDKs accept for AWS_CONTAINER_CREDENTIALS_FULL_URI (no DNS lookups here). */
static bool
cred_container_host_ok(const char *url)
{
	static const char *const allowed[] = {
		"169.254.170.2", "169.254.170.23", "[fd00:ec2::23]", "localhost", "[::1]",
	};
	const char *host, *end;
	size_t len, i;
	int a, b, c, d;
	char tail;

	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return false;
	if (host[0] == '[')
		end = strchr(host, ']') != NULL ? strchr(host, ']') + 1 : NULL;
	else
		end = host + strcspn(host, ":/");
	if (end == NULL || (*end != '\0' && *end != ':' && *end != '/'))
		return false;
	len = (size_t)(end - host);
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (strlen(allowed[i]) == len && strncasecmp(host, allowed[i], len) == 0)
			return true;
	/* Any 127.0.0.0/8 address. */
	if (len < 16 && sscanf(host, "%3d.%3d.%3d.%3d%c", &a, &b, &c, &d, &tail) >= 4 &&
	    a == 127 && b >= 0 && b < 256 && c >= 0 && c < 256 && d >= 0 && d < 256) {
		char canon[16];

		snprintf(canon, sizeof(canon), "%d.%d.%d.%d", a, b, c, d);
		return strlen(canon) == len && strncmp(canon, host, len) == 0;
	}
	return false;
}

static int
cred_setup_ecs(struct aws_credential_provider *p, const char *relative, const char *full,
    char *err, size_t errlen)
{
	const char *token = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *token_file = cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	char *tmp, why[CRED_ERR_LEN];
	int n, rc;

	p->src = SRC_ECS;
	if (relative != NULL) {
		if (relative[0] != '/') {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start"
			    " with '/'");
			return -1;
		}
		n = snprintf(p->url, sizeof(p->url), "%s%s", ECS_RELATIVE_HOST, relative);
		if (n < 0 || (size_t)n >= sizeof(p->url)) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI is too long");
			return -1;
		}
	} else {
		if (cred_copy_str(p->url, sizeof(p->url), full) != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI is too long");
			return -1;
		}
		if (!cred_container_host_ok(full) || strpbrk(full, " \t\r\n@") != NULL) {
			snprintf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %.200s: only "
			    "http(s) URLs to a loopback address or the ECS/EKS addresses "
			    "169.254.170.2, 169.254.170.23 and [fd00:ec2::23] are allowed", full);
			return -1;
		}
	}
	/* The token file wins over the token, as in the SDKs; it is re-read on each fetch. */
	if (token_file != NULL) {
		if (cred_copy_str(p->token_file, sizeof(p->token_file), token_file) != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is too long");
			return -1;
		}
		if ((tmp = sodium_malloc(CRED_TOKEN_FILE_MAX)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		rc = cred_read_token_file(token_file, tmp, CRED_TOKEN_FILE_MAX, why, sizeof(why));
		sodium_free(tmp);
		if (rc != 0) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %s", why);
			return -1;
		}
	} else if (token != NULL) {
		if (cred_copy_str(p->ecs_token, sizeof(p->ecs_token), token) != 0 ||
		    strpbrk(token, "\r\n") != NULL) {
			snprintf(err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN is too long or "
			    "holds a line break");
			return -1;
		}
	}
	return 0;
}

static int
cred_setup_imds(struct aws_credential_provider *p, char *err, size_t errlen)
{
	const char *v, *mode;
	char why[CRED_ERR_LEN];

	p->src = SRC_IMDS;
	if ((v = cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT")) != NULL) {
		if (aws_endpoint_normalize(v, p->url, sizeof(p->url), why, sizeof(why)) != 0) {
			snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT: %s", why);
			return -1;
		}
		return 0;
	}
	mode = cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	if (mode != NULL && strcasecmp(mode, "IPv6") == 0)
		snprintf(p->url, sizeof(p->url), "%s", IMDS_DEFAULT_V6);
	else if (mode == NULL || strcasecmp(mode, "IPv4") == 0)
		snprintf(p->url, sizeof(p->url), "%s", IMDS_DEFAULT_V4);
	else {
		snprintf(err, errlen, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE = '%.32s': expected"
		    " IPv4 or IPv6", mode);
		return -1;
	}
	return 0;
}

/*
 * The profile in the shared files: web identity settings, then keys in the
 * credentials file, then keys in the config file. Returns 1 when the
 * profile configured a source, 0 when it did not, -1 on an error.
 */
static int
cred_try_profile(struct aws_credential_provider *p, const struct aws_resolved *r,
    char *err, size_t errlen)
{
	struct {
		char akid[128], secret[128], token[4096];
		char role_arn[2048], token_file[4096], session[128], other[256];
	} *v;
	const char *files[2] = { r->credentials_file, r->config_file };
	static const char *const unsupported[] = {
		"role_arn", "sso_session", "sso_start_url",
	};
	char what[4400], ferr[CRED_ERR_LEN];
	int rc = -1, ka, ks, kt, i, exists = 0;
	size_t u;

	if ((v = sodium_malloc(sizeof(*v))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memset(v, 0, sizeof(*v));

	/* Web identity from the profile (config file), as botocore reads it. */
	ka = aws_profile_get(r->config_file, true, r->profile, "web_identity_token_file",
	    v->token_file, sizeof(v->token_file), ferr, sizeof(ferr));
	if (ka < 0)
		goto perr;
	if (ka == 1) {
		ks = aws_profile_get(r->config_file, true, r->profile, "role_arn", v->role_arn,
		    sizeof(v->role_arn), ferr, sizeof(ferr));
		kt = aws_profile_get(r->config_file, true, r->profile, "role_session_name",
		    v->session, sizeof(v->session), ferr, sizeof(ferr));
		if (ks < 0 || kt < 0)
			goto perr;
		if (ks == 0) {
			snprintf(err, errlen, "profile '%s' in %s has web_identity_token_file but "
			    "no role_arn", r->profile, r->config_file);
			goto out;
		}
		snprintf(what, sizeof(what), "profile '%s' in %s", r->profile, r->config_file);
		rc = cred_setup_web_identity(p, r, v->role_arn, v->token_file,
		    kt == 1 ? v->session : cred_env("AWS_ROLE_SESSION_NAME"), what, err, errlen);
		rc = rc == 0 ? 1 : -1;
		goto out;
	}

	/* Role assumption and SSO are SDK features smcached does not have. */
	for (i = 0; i < 2; i++) {
		for (u = 0; u < sizeof(unsupported) / sizeof(unsupported[0]); u++) {
			ka = aws_profile_get(files[i], i == 1, r->profile, unsupported[u], v->other,
			    sizeof(v->other), ferr, sizeof(ferr));
			if (ka < 0)
				goto perr;
			if (ka == 1) {
				snprintf(err, errlen, "profile '%s' in %s uses %s, which smcached does "
				    "not support; give it static keys or use another source",
				    r->profile, files[i], unsupported[u]);
				goto out;
			}
		}
	}

	/* Static keys: the credentials file first, then the config file. */
	for (i = 0; i < 2; i++) {
		ka = aws_profile_get(files[i], i == 1, r->profile, "aws_access_key_id", v->akid,
		    sizeof(v->akid), ferr, sizeof(ferr));
		if (ka < 0)
			goto perr;
		ks = aws_profile_get(files[i], i == 1, r->profile, "aws_secret_access_key",
		    v->secret, sizeof(v->secret), ferr, sizeof(ferr));
		if (ks < 0)
			goto perr;
		kt = aws_profile_get(files[i], i == 1, r->profile, "aws_session_token", v->token,
		    sizeof(v->token), ferr, sizeof(ferr));
		if (kt < 0)
			goto perr;
		if (ka == 1 && ks == 1 && v->akid[0] != '\0' && v->secret[0] != '\0') {
			p->src = SRC_SHARED_FILE;
			snprintf(what, sizeof(what), "profile '%s' in %s", r->profile, files[i]);
			rc = cred_set_static(p, what, v->akid, v->secret, kt == 1 ? v->token : NULL,
			    err, errlen) == 0 ? 1 : -1;
			goto out;
		}
		if (ka == 1 || ks == 1) {
			snprintf(err, errlen, "profile '%s' in %s has only one of aws_access_key_id "
			    "and aws_secret_access_key", r->profile, files[i]);
			goto out;
		}
	}

	/* credential_process comes after static keys in the SDKs' order. */
	for (i = 0; i < 2; i++) {
		ka = aws_profile_get(files[i], i == 1, r->profile, "credential_process", v->other,
		    sizeof(v->other), ferr, sizeof(ferr));
		if (ka < 0)
			goto perr;
		if (ka == 1) {
			snprintf(err, errlen, "profile '%s' in %s uses credential_process, which "
			    "smcached does not support", r->profile, files[i]);
			goto out;
		}
	}

	/* A profile asked for by name must exist: no silent fall-through to IMDS. */
	if (strcmp(r->profile, "default") != 0) {
		for (i = 0; i < 2 && exists == 0; i++)
			if ((exists = aws_profile_exists(files[i], i == 1, r->profile, ferr,
			        sizeof(ferr))) < 0)
				goto perr;
		if (exists == 0) {
			snprintf(err, errlen, "profile '%s' was asked for but is in neither %s nor %s",
			    r->profile, r->credentials_file[0] ? r->credentials_file :
			    "(no credentials file)", r->config_file[0] ? r->config_file :
			    "(no config file)");
			goto out;
		}
	}
	rc = 0;
	goto out;
perr:
	snprintf(err, errlen, "%s", ferr);
	rc = -1;
out:
	sodium_free(v);
	return rc;
}

static int
cred_choose(struct aws_credential_provider *p, const struct aws_resolved *r, char *err,
    size_t errlen)
{
	const char *akid = cred_env("AWS_ACCESS_KEY_ID");
	const char *secret = cred_env("AWS_SECRET_ACCESS_KEY");
	const char *token_file = cred_env("AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *role_arn = cred_env("AWS_ROLE_ARN");
	const char *relative = cred_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = cred_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	int rc;

	/* 1. environment */
	if (akid != NULL && secret != NULL) {
		p->src = SRC_ENVIRONMENT;
		return cred_set_static(p, "environment", akid, secret,
		    cred_env("AWS_SESSION_TOKEN"), err, errlen);
	}
	if (akid != NULL || secret != NULL) {
		snprintf(err, errlen, "%s is set but %s is not: set both or neither",
		    akid != NULL ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
		    akid != NULL ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		return -1;
	}

	/* 2. web identity from the environment */
	if (token_file != NULL) {
		if (role_arn == NULL) {
			snprintf(err, errlen, "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN"
			    " is not");
			return -1;
		}
		return cred_setup_web_identity(p, r, role_arn, token_file,
		    cred_env("AWS_ROLE_SESSION_NAME"), "AWS_WEB_IDENTITY_TOKEN_FILE", err, errlen);
	}

	/* 3. the profile in the shared files */
	if ((rc = cred_try_profile(p, r, err, errlen)) != 0)
		return rc < 0 ? -1 : 0;

	/* 4. container credentials */
	if (relative != NULL || full != NULL)
		return cred_setup_ecs(p, relative, full, err, errlen);

	/* 5. instance metadata */
	if (cred_env_true("AWS_EC2_METADATA_DISABLED")) {
		snprintf(err, errlen, "no AWS credentials: none in the environment, no web "
		    "identity, none in profile '%s', no container endpoint, and instance "
		    "metadata is disabled (AWS_EC2_METADATA_DISABLED)", r->profile);
		return -1;
	}
	return cred_setup_imds(p, err, errlen);
}

struct aws_credential_provider *
aws_credentials_new(struct event_base *base, struct http_client *http,
    const struct aws_resolved *resolved, char *err, size_t errlen)
{
	struct aws_credential_provider *p;

	if (base == NULL || resolved == NULL) {
		snprintf(err, errlen, "aws credentials: bad arguments");
		return NULL;
	}
	if (sodium_init() < 0 || (p = sodium_malloc(sizeof(*p))) == NULL) {
		snprintf(err, errlen, "aws credentials: out of memory");
		return NULL;
	}
	memset(p, 0, sizeof(*p));
	json_secure_init();
	p->base = base;
	p->http = http;
	if ((p->refresh_ev = evtimer_new(base, cred_refresh_cb, p)) == NULL ||
	    (p->notify_ev = evtimer_new(base, cred_notify_cb, p)) == NULL) {
		snprintf(err, errlen, "aws credentials: out of memory");
		goto fail;
	}
	if (cred_choose(p, resolved, err, errlen) != 0)
		goto fail;
	if (p->src != SRC_ENVIRONMENT && p->src != SRC_SHARED_FILE && http == NULL) {
		snprintf(err, errlen, "aws credentials: %s needs an HTTP client",
		    cred_source_names[p->src]);
		goto fail;
	}
	log_debug("aws credentials: source %s%s%s", cred_source_names[p->src],
	    p->url[0] != '\0' ? " at " : "", p->url);
	return p;
fail:
	cred_destroy(p);
	return NULL;
}

void
aws_credentials_free(struct aws_credential_provider *p)
{
	struct cred_waiter *w;

	if (p == NULL || p->free_pending)
		return;
	if (p->dispatching > 0) {
		/* From inside a waiter's callback: finish there. */
		p->free_pending = true;
		if (p->call != NULL) {
			http_call_cancel(p->call);
			p->call = NULL;
		}
		while ((w = p->waiters) != NULL) {
			p->waiters = w->next;
			free(w);
		}
		evtimer_del(p->refresh_ev);
		evtimer_del(p->notify_ev);
		return;
	}
	cred_destroy(p);
}
