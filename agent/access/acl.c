/*
 * acl: rule parsing, name resolution and matching (see acl.h for the rules
 * users rely on).
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "sm_id.h"
#include "sys_user.h"

#define RULE_MAX_LEN	4096
#define FNM_FLAGS	FNM_NOESCAPE

/* Secrets Manager's random ARN suffix, as a glob appended to patterns. */
static const char arn_suffix_glob[] =
    "-[A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9][A-Za-z0-9]";

struct acl_pattern {
	char *glob;
	char *suffixed;			/* glob + arn_suffix_glob */
	bool arn;			/* starts with "arn:" */
};

struct acl_rule {
	bool group;			/* false: a user */
	uint32_t id;			/* uid or gid */
	char *key;			/* key:NAME rule ([endpoint] auth = keys); else NULL */
	struct acl_pattern *patterns;
	size_t npatterns;
};

struct acl {
	struct acl_rule *rules;
	size_t nrules;
};

/* ---- parsing ----------------------------------------------------------------------------- */

/* Characters of a secret name (Secrets Manager allows these and no others). */
static bool
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("/_+=.@-", c) != NULL);
}

static int
parse_principal(const char *tok, bool *group, uint32_t *id, char *why, size_t whylen)
{
	const char *name;
	int rc;

	if (strncmp(tok, "user:", 5) == 0) {
		*group = false;
		name = tok + 5;
	} else if (strncmp(tok, "group:", 6) == 0) {
		*group = true;
		name = tok + 6;
	} else {
		snprintf(why, whylen, "'%s' is not user:NAME, user:UID, group:NAME or group:GID",
		    tok);
		return -1;
	}
	if (*name == '\0') {
		snprintf(why, whylen, "'%s' names no %s", tok, *group ? "group" : "user");
		return -1;
	}
	if (strspn(name, "0123456789") == strlen(name)) {
		if (sys_user_parse_id(name, id) != 0) {
			snprintf(why, whylen, "'%s' is not a valid %s", tok, *group ? "gid" : "uid");
			return -1;
		}
		return 0;
	}
	if (*group) {
		gid_t gid;

		rc = sys_group_by_name(name, &gid, why, whylen);
		*id = (uint32_t)gid;
	} else {
		uid_t uid;

		rc = sys_user_by_name(name, &uid, NULL, NULL, 0, why, whylen);
		*id = (uint32_t)uid;
	}
	if (rc == 0)
		snprintf(why, whylen, "unknown %s '%s'", *group ? "group" : "user", name);
	return rc == 1 ? 0 : -1;
}

/* A pattern uses only characters a secret id can hold, plus well-formed globs. */
static int
check_pattern(const char *p, char *why, size_t whylen)
{
	bool arn = strncmp(p, "arn:", 4) == 0;
	const char *end;
	size_t i, j;

	for (i = 0; p[i] != '\0'; i++) {
		char c = p[i];

		if (c == '*' || c == '?' || (c == ':' && arn) || name_char(c))
			continue;
		if (c == ':') {
			snprintf(why, whylen, "pattern '%s': a name cannot contain ':' (ARN patterns"
			    " start with arn:)", p);
			return -1;
		}
		if (c != '[') {
			if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
				snprintf(why, whylen, "pattern '%s': byte 0x%02x cannot appear in a"
				    " secret id", p, (unsigned char)c);
			else
				snprintf(why, whylen, "pattern '%s': '%c' cannot appear in a secret id",
				    p, c);
			return -1;
		}
		/* A bracket expression: [!...] or [^...], a leading ']', [:class:] inside. */
		j = i + 1;
		if (p[j] == '!' || p[j] == '^')
			j++;
		if (p[j] == ']')
			j++;
		for (; p[j] != '\0' && p[j] != ']'; j++) {
			if (p[j] == '[' && p[j + 1] == ':') {
				if ((end = strstr(p + j + 2, ":]")) == NULL)
					break;
				j = (size_t)(end - p) + 1;
				continue;
			}
			if (!name_char(p[j]) && p[j] != ':') {
				snprintf(why, whylen, "pattern '%s': '%c' cannot appear in a secret"
				    " id", p, p[j]);
				return -1;
			}
		}
		if (p[j] != ']') {
			snprintf(why, whylen, "pattern '%s': '[' without a closing ']'", p);
			return -1;
		}
		i = j;
	}
	return 0;
}

static void
rule_clear(struct acl_rule *r)
{
	for (size_t i = 0; i < r->npatterns; i++) {
		free(r->patterns[i].glob);
		free(r->patterns[i].suffixed);
	}
	free(r->patterns);
	free(r->key);
	memset(r, 0, sizeof(*r));
}

/* Parses text into *r (zeroed on error). */
static int
rule_parse(const char *text, struct acl_rule *r, char *why, size_t whylen)
{
	char copy[RULE_MAX_LEN], *tok, *save, *principal;
	struct acl_pattern *pat;
	size_t len = strlen(text), n = 0;

	memset(r, 0, sizeof(*r));
	if (len >= sizeof(copy)) {
		snprintf(why, whylen, "rule is too long");
		return -1;
	}
	memcpy(copy, text, len + 1);
	if ((tok = strtok_r(copy, " \t", &save)) == NULL) {
		snprintf(why, whylen, "empty rule (expected user:NAME or group:NAME, then patterns)");
		return -1;
	}
	principal = tok;
	if (strncmp(principal, "key:", 4) == 0) {
		/* A local key of the Secrets Manager endpoint ([endpoint] keys_file). */
		if (principal[4] == '\0') {
			snprintf(why, whylen, "'%s' names no key", principal);
			return -1;
		}
		if ((r->key = strdup(principal + 4)) == NULL)
			goto nomem;
	} else if (parse_principal(principal, &r->group, &r->id, why, whylen) != 0)
		return -1;
	/* At most one pattern per two characters of the rest, so one allocation fits all. */
	if ((r->patterns = calloc(len / 2 + 1, sizeof(*r->patterns))) == NULL)
		goto nomem;
	while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
		if (check_pattern(tok, why, whylen) != 0)
			goto fail;
		pat = &r->patterns[n];
		pat->arn = strncmp(tok, "arn:", 4) == 0;
		if ((pat->glob = strdup(tok)) == NULL ||
		    asprintf(&pat->suffixed, "%s%s", tok, arn_suffix_glob) < 0) {
			pat->suffixed = NULL;
			r->npatterns = n + 1;
			goto nomem;
		}
		r->npatterns = ++n;
	}
	if (n == 0) {
		snprintf(why, whylen, "'%s' is granted no pattern (expected secret names or ARNs"
		    " after it, like prod/app/*)", principal);
		goto fail;
	}
	return 0;
nomem:
	snprintf(why, whylen, "out of memory");
fail:
	rule_clear(r);
	return -1;
}

int
acl_rule_check(const char *text, char *why, size_t whylen)
{
	struct acl_rule r;

	if (rule_parse(text, &r, why, whylen) != 0)
		return -1;
	rule_clear(&r);
	return 0;
}

struct acl *
acl_new(const char *const *rules, size_t count, char *err, size_t errlen)
{
	char why[512];
	struct acl *acl;

	if ((acl = calloc(1, sizeof(*acl))) == NULL)
		goto nomem;
	if (count > 0 && (acl->rules = calloc(count, sizeof(*acl->rules))) == NULL)
		goto nomem;
	for (size_t i = 0; i < count; i++) {
		if (rule_parse(rules[i], &acl->rules[i], why, sizeof(why)) != 0) {
			snprintf(err, errlen, "access rule %zu ('%s'): %s", i + 1, rules[i], why);
			acl_free(acl);
			return NULL;
		}
		acl->nrules = i + 1;
	}
	return acl;
nomem:
	snprintf(err, errlen, "out of memory");
	acl_free(acl);
	return NULL;
}

void
acl_free(struct acl *acl)
{
	if (acl == NULL)
		return;
	for (size_t i = 0; i < acl->nrules; i++)
		rule_clear(&acl->rules[i]);
	free(acl->rules);
	free(acl);
}

/* ---- matching ---------------------------------------------------------------------------- */

bool
acl_enabled(const struct acl *acl)
{
	return acl != NULL && acl->nrules > 0;
}

size_t
acl_rule_count(const struct acl *acl)
{
	return acl != NULL ? acl->nrules : 0;
}

static bool
rule_names(const struct acl_rule *r, const struct acl_peer *p)
{
	/* A caller that proved a key is judged by key rules only, and only it by them. */
	if (r->key != NULL || p->key != NULL)
		return r->key != NULL && p->key != NULL && strcmp(r->key, p->key) == 0;
	if (!r->group)
		return (uint32_t)p->uid == r->id;
	if ((uint32_t)p->gid == r->id)
		return true;
	for (size_t i = 0; i < p->ngroups; i++)
		if ((uint32_t)p->groups[i] == r->id)
			return true;
	return false;
}

static bool
glob_match(const struct acl_pattern *pat, const char *s, bool with_suffix)
{
	return fnmatch(pat->glob, s, FNM_FLAGS) == 0 ||
	    (with_suffix && fnmatch(pat->suffixed, s, FNM_FLAGS) == 0);
}

bool
acl_allows_id(const struct acl *acl, const struct acl_peer *peer, const char *id)
{
	const char *name = NULL;
	bool arn = sm_id_is_arn(id);

	if (!acl_enabled(acl))
		return true;
	if (arn)
		name = sm_id_arn_name(id, false, NULL);
	for (size_t i = 0; i < acl->nrules; i++) {
		const struct acl_rule *r = &acl->rules[i];

		if (!rule_names(r, peer))
			continue;
		for (size_t j = 0; j < r->npatterns; j++) {
			const struct acl_pattern *pat = &r->patterns[j];

			if (!arn && !pat->arn && glob_match(pat, id, false))
				return true;
			if (arn && pat->arn && glob_match(pat, id, true))
				return true;
			if (arn && !pat->arn && name != NULL && glob_match(pat, name, true))
				return true;
		}
	}
	return false;
}

bool
acl_allows_resolved(const struct acl *acl, const struct acl_peer *peer, const char *name,
    const char *arn)
{
	if (!acl_enabled(acl))
		return true;
	for (size_t i = 0; i < acl->nrules; i++) {
		const struct acl_rule *r = &acl->rules[i];

		if (!rule_names(r, peer))
			continue;
		for (size_t j = 0; j < r->npatterns; j++) {
			const struct acl_pattern *pat = &r->patterns[j];

			if (!pat->arn && name != NULL && glob_match(pat, name, false))
				return true;
			if (pat->arn && arn != NULL && glob_match(pat, arn, true))
				return true;
		}
	}
	return false;
}

/* Does name end in what looks like Secrets Manager's suffix ("-" and 6 letters or digits)? */
bool
acl_id_unambiguous(const struct acl *acl, const struct acl_peer *peer, const char *id)
{
	const char *name;
	char *base;
	size_t len;
	bool ok;

	if (!acl_enabled(acl) || !sm_id_is_arn(id))
		return true;
	if ((name = sm_id_arn_name(id, false, &len)) == NULL)
		return false;
	/* The secret named like the name part itself... */
	if (!acl_allows_resolved(acl, peer, name, NULL))
		return false;
	if (!sm_id_has_suffix(name, len))
		return true;
	/* ...and the one whose name is the name part without its suffix. */
	if ((base = strndup(name, len - SM_ID_SUFFIX_LEN)) == NULL)
		return false;
	ok = acl_allows_resolved(acl, peer, base, NULL);
	free(base);
	return ok;
}

bool
acl_names_peer(const struct acl *acl, const struct acl_peer *peer)
{
	if (acl == NULL)
		return false;
	for (size_t i = 0; i < acl->nrules; i++)
		if (rule_names(&acl->rules[i], peer))
			return true;
	return false;
}

bool
acl_allows_stats(const struct acl *acl, const struct acl_peer *peer, uid_t agent_uid)
{
	return !acl_enabled(acl) || peer->uid == 0 || peer->uid == agent_uid ||
	    acl_names_peer(acl, peer);
}
