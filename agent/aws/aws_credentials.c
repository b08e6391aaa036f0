/*
 * aws_credentials: picks the credential source once (aws_credentials_new),
 * then fetches, caches and refreshes credentials from it on the event loop.
 *
 * Owns: the source selection rules (the chain), the cache with its refresh
 * and retry timers, and the list of callers waiting for credentials. The
 * network protocols are in aws_cred_sts.c (STS AssumeRoleWithWebIdentity),
 * aws_cred_ecs.c (the ECS/EKS container endpoint) and aws_cred_imds.c
 * (IMDSv2); what they share in aws_cred_common.c (see aws_cred_internal.h).
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

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <sodium.h>

#include "aws_cred_internal.h"
#include "aws_profile.h"
#include "json_secure.h"
#include "log.h"

static const char *const cred_source_names[] = {
	"environment", "web-identity", "shared-file", "ecs", "imds",
};

/* ---- small helpers ----------------------------------------------------------------------- */

static bool
cred_env_true(const char *name)
{
	const char *v = cred_env(name);

	return v != NULL && strcasecmp(v, "true") == 0;
}

static void
cred_wipe(struct aws_credentials *c)
{
	sodium_memzero(c, sizeof(*c));
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
void
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
void
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
