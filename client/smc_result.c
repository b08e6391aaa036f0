/*
 * smc_result: smc_secret, smc_description and smc_stat_list (see
 * smc_result.h): construction from replies, accessors, freeing.
 *
 * Secret values live in sodium_malloc() memory: guard pages, mlock and
 * MADV_DONTDUMP keep them out of overflows, swap and core dumps. That costs a
 * few system calls per value (a mapping and two mprotect), a few
 * microseconds next to the round trip to the agent, and a value is usually
 * fetched once and kept. Metadata (names, ARNs, dates) is not secret and
 * uses the ordinary heap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "smc_error.h"
#include "smc_result.h"

struct smc_secret {
	char *arn;
	char *name;
	char *version_id;
	char **stages;
	size_t stage_count;
	int64_t created_ms;
	int is_binary;
	int stale;
	unsigned char *value;	/* sodium_malloc'd, value_len + 1 bytes, NUL-terminated */
	size_t value_len;
};

struct smc_version {
	char *id;
	char **stages;
	size_t stage_count;
	int64_t created_ms;
};

struct smc_description {
	char *arn;
	char *name;
	char *text;		/* NULL when the secret has none */
	int64_t created_ms;
	int64_t last_changed_ms;
	int64_t deleted_ms;
	int stale;
	struct smc_version *versions;
	size_t version_count;
};

struct smc_stat {
	char *name;
	uint64_t value;
};

struct smc_stat_list {
	struct smc_stat *items;
	size_t count;
};

/* A NUL-terminated copy of s; an absent string becomes "". */
static char *
dup_str(struct proto_str s)
{
	char *p = malloc(s.len + 1);

	if (p == NULL)
		return NULL;
	if (s.len > 0)
		memcpy(p, s.ptr, s.len);
	p[s.len] = '\0';
	return p;
}

static void
free_strv(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Copies n strings into a new array; n may be 0. */
static int
dup_strv(const struct proto_str *src, size_t n, char ***out)
{
	char **v;
	size_t i;

	*out = NULL;
	v = calloc(n > 0 ? n : 1, sizeof(*v));
	if (v == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if ((v[i] = dup_str(src[i])) == NULL) {
			free_strv(v, i);
			return -1;
		}
	}
	*out = v;
	return 0;
}

/* Dates travel as u64; anything past INT64_MAX is not a date. */
static int
to_ms(uint64_t v, int64_t *out)
{
	if (v > (uint64_t)INT64_MAX)
		return -1;
	*out = (int64_t)v;
	return 0;
}

/* ---- smc_secret ----------------------------------------------------------------------- */

int
smci_secret_from_reply(const struct proto_reply *reply, smc_secret **out, smc_error *err)
{
	smc_secret *s;
	const uint8_t *data;
	size_t len;

	*out = NULL;
	if ((reply->secret_string == NULL) == (reply->secret_binary == NULL)) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent's reply carries %s value",
		    reply->secret_string == NULL ? "no" : "more than one");
		return -1;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	if (to_ms(reply->created_ms, &s->created_ms) == -1) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent sent an invalid date");
		goto fail;
	}
	s->is_binary = reply->secret_binary != NULL;
	s->stale = (reply->header.flags & PROTO_FLAG_STALE) != 0;
	if ((s->arn = dup_str(reply->arn)) == NULL ||
	    (s->name = dup_str(reply->name)) == NULL ||
	    (s->version_id = dup_str(reply->version_id)) == NULL ||
	    dup_strv(reply->stages, reply->stage_count, &s->stages) == -1)
		goto nomem;
	s->stage_count = reply->stage_count;

	data = s->is_binary ? reply->secret_binary : reply->secret_string;
	len = s->is_binary ? reply->secret_binary_len : reply->secret_string_len;
	if ((s->value = sodium_malloc(len + 1)) == NULL)
		goto nomem;
	if (len > 0)
		memcpy(s->value, data, len);
	s->value[len] = '\0';
	s->value_len = len;
	*out = s;
	return 0;
nomem:
	smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
fail:
	smc_secret_free(s);
	return -1;
}

const char *
smc_secret_arn(const smc_secret *s)
{
	return s->arn;
}

const char *
smc_secret_name(const smc_secret *s)
{
	return s->name;
}

const char *
smc_secret_version_id(const smc_secret *s)
{
	return s->version_id;
}

size_t
smc_secret_stage_count(const smc_secret *s)
{
	return s->stage_count;
}

const char *
smc_secret_stage(const smc_secret *s, size_t i)
{
	return i < s->stage_count ? s->stages[i] : NULL;
}

int64_t
smc_secret_created_ms(const smc_secret *s)
{
	return s->created_ms;
}

int
smc_secret_is_binary(const smc_secret *s)
{
	return s->is_binary;
}

int
smc_secret_is_stale(const smc_secret *s)
{
	return s->stale;
}

const unsigned char *
smc_secret_value(const smc_secret *s)
{
	return s->value;
}

size_t
smc_secret_value_len(const smc_secret *s)
{
	return s->value_len;
}

const char *
smc_secret_string(const smc_secret *s)
{
	return s->is_binary ? NULL : (const char *)s->value;
}

void
smc_secret_free(smc_secret *s)
{
	if (s == NULL)
		return;
	if (s->value != NULL) {
		/* sodium_free wipes too; be explicit about the one thing that matters. */
		sodium_memzero(s->value, s->value_len + 1);
		sodium_free(s->value);
	}
	free(s->arn);
	free(s->name);
	free(s->version_id);
	free_strv(s->stages, s->stage_count);
	free(s);
}

/* ---- smc_description ------------------------------------------------------------------ */

int
smci_description_from_reply(const struct proto_reply *reply, smc_description **out,
    smc_error *err)
{
	struct proto_version_info info;
	struct smc_version *v;
	smc_description *d;
	size_t cursor = 0;
	int rc;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		goto nomem;
	if (to_ms(reply->created_ms, &d->created_ms) == -1 ||
	    to_ms(reply->last_changed_ms, &d->last_changed_ms) == -1 ||
	    to_ms(reply->deleted_ms, &d->deleted_ms) == -1)
		goto baddate;
	d->stale = (reply->header.flags & PROTO_FLAG_STALE) != 0;
	if ((d->arn = dup_str(reply->arn)) == NULL || (d->name = dup_str(reply->name)) == NULL)
		goto nomem;
	if (reply->description.ptr != NULL && (d->text = dup_str(reply->description)) == NULL)
		goto nomem;
	if (reply->version_count > PROTO_MAX_VERSIONS) {
		smci_err_set(err, SMC_ERR_PROTOCOL, "the agent listed too many versions");
		goto fail;
	}
	d->versions = calloc(reply->version_count > 0 ? reply->version_count : 1,
	    sizeof(*d->versions));
	if (d->versions == NULL)
		goto nomem;
	while ((rc = proto_reply_next_version(reply, &cursor, &info)) == 1) {
		if (d->version_count == reply->version_count)
			goto malformed;
		v = &d->versions[d->version_count];
		if (to_ms(info.created_ms, &v->created_ms) == -1)
			goto baddate;
		if ((v->id = dup_str(info.version_id)) == NULL)
			goto nomem;
		d->version_count++;	/* from here on, freeing covers this entry */
		if (dup_strv(info.stages, info.stage_count, &v->stages) == -1)
			goto nomem;
		v->stage_count = info.stage_count;
	}
	if (rc == -1 || d->version_count != reply->version_count)
		goto malformed;
	*out = d;
	return 0;
malformed:
	smci_err_set(err, SMC_ERR_PROTOCOL, "the agent sent a malformed version list");
	goto fail;
baddate:
	smci_err_set(err, SMC_ERR_PROTOCOL, "the agent sent an invalid date");
	goto fail;
nomem:
	smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
fail:
	smc_description_free(d);
	return -1;
}

const char *
smc_description_arn(const smc_description *d)
{
	return d->arn;
}

const char *
smc_description_name(const smc_description *d)
{
	return d->name;
}

const char *
smc_description_text(const smc_description *d)
{
	return d->text;
}

int64_t
smc_description_created_ms(const smc_description *d)
{
	return d->created_ms;
}

int64_t
smc_description_last_changed_ms(const smc_description *d)
{
	return d->last_changed_ms;
}

int64_t
smc_description_deleted_ms(const smc_description *d)
{
	return d->deleted_ms;
}

int
smc_description_is_stale(const smc_description *d)
{
	return d->stale;
}

size_t
smc_description_version_count(const smc_description *d)
{
	return d->version_count;
}

const char *
smc_description_version_id(const smc_description *d, size_t i)
{
	return i < d->version_count ? d->versions[i].id : NULL;
}

int64_t
smc_description_version_created_ms(const smc_description *d, size_t i)
{
	return i < d->version_count ? d->versions[i].created_ms : 0;
}

size_t
smc_description_version_stage_count(const smc_description *d, size_t i)
{
	return i < d->version_count ? d->versions[i].stage_count : 0;
}

const char *
smc_description_version_stage(const smc_description *d, size_t i, size_t j)
{
	if (i >= d->version_count || j >= d->versions[i].stage_count)
		return NULL;
	return d->versions[i].stages[j];
}

void
smc_description_free(smc_description *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->version_count; i++) {
		free(d->versions[i].id);
		free_strv(d->versions[i].stages, d->versions[i].stage_count);
	}
	free(d->versions);
	free(d->arn);
	free(d->name);
	free(d->text);
	free(d);
}

/* ---- smc_stat_list--------------------------------------------------------------------- */

int
smci_stats_from_reply(const struct proto_reply *reply, smc_stat_list **out, smc_error *err)
{
	struct proto_str name;
	smc_stat_list *st;
	size_t cursor = 0;
	uint64_t value;
	int rc;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		goto nomem;
	if ((st->items = calloc(reply->stat_count > 0 ? reply->stat_count : 1,
	    sizeof(*st->items))) == NULL)
		goto nomem;
	while ((rc = proto_reply_next_stat(reply, &cursor, &name, &value)) == 1) {
		if (st->count == reply->stat_count)
			goto malformed;
		if ((st->items[st->count].name = dup_str(name)) == NULL)
			goto nomem;
		st->items[st->count++].value = value;
	}
	if (rc == -1 || st->count != reply->stat_count)
		goto malformed;
	*out = st;
	return 0;
malformed:
	smci_err_set(err, SMC_ERR_PROTOCOL, "the agent sent a malformed counter list");
	goto fail;
nomem:
	smci_err_set(err, SMC_ERR_NOMEM, "%s", smc_strerror(SMC_ERR_NOMEM));
fail:
	smc_stat_list_free(st);
	return -1;
}

size_t
smc_stat_list_count(const smc_stat_list *st)
{
	return st->count;
}

const char *
smc_stat_list_name(const smc_stat_list *st, size_t i)
{
	return i < st->count ? st->items[i].name : NULL;
}

uint64_t
smc_stat_list_value(const smc_stat_list *st, size_t i)
{
	return i < st->count ? st->items[i].value : 0;
}

int
smc_stat_list_find(const smc_stat_list *st, const char *name, uint64_t *value)
{
	size_t i;

	for (i = 0; i < st->count; i++) {
		if (strcmp(st->items[i].name, name) == 0) {
			if (value != NULL)
				*value = st->items[i].value;
			return 0;
		}
	}
	return -1;
}

void
smc_stat_list_free(smc_stat_list *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->count; i++)
		free(st->items[i].name);
	free(st->items);
	free(st);
}
