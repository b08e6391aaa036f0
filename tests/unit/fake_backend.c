/*
 * fake_backend: see fake_backend.h. One fake for the cache's unit tests, so
 * they agree on how a backend answers (lookups, labels, errors, lending).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "backend.h"
#include "fake_backend.h"
#include "sm_id.h"

struct fake_req {
	TAILQ_ENTRY(fake_req) entry;
	struct fake *fake;
	struct event *ev;		/* timed: its timer; batch: NULL */
	backend_value_cb cb;
	backend_describe_cb dcb;	/* a DescribeSecret (cb unused) */
	const struct backend_batch_cbs *bcbs;	/* a batch read of ids[0..count) */
	char *ids[BACKEND_BATCH_MAX];
	size_t count;
	void *arg;
	char *id, *stage, *vid;		/* in the same allocation */
};

static bool
has_stage(const struct fake_version *v, const char *stage)
{
	for (size_t i = 0; i < v->stage_count; i++)
		if (strcmp(v->stages[i], stage) == 0)
			return true;
	return false;
}

/* Name, full ARN or partial ARN (the ARN without "-XXXXXX"), as AWS matches them. */
static bool
id_matches(const struct fake *f, const struct fake_version *v, const char *id)
{
	size_t alen = strlen(v->arn);

	return strcmp(id, v->name) == 0 || strcmp(id, v->arn) == 0 ||
	    (!f->exact_ids && alen > SM_ID_SUFFIX_LEN && strlen(id) == alen - SM_ID_SUFFIX_LEN &&
	    strncmp(id, v->arn, alen - SM_ID_SUFFIX_LEN) == 0);
}

static const struct fake_version *
fake_lookup(struct fake *f, const struct fake_req *r, struct backend_error *error)
{
	const char *stage = r->stage;
	bool secret_seen = false;

	if (stage == NULL && r->vid == NULL)
		stage = "AWSCURRENT";
	for (size_t i = 0; i < FAKE_MAX_VERSIONS; i++) {
		const struct fake_version *v = &f->table[i];

		if (!v->used || !id_matches(f, v, r->id))
			continue;
		secret_seen = true;
		if (r->vid != NULL && strcmp(v->vid, r->vid) != 0)
			continue;
		if (stage != NULL && !has_stage(v, stage))
			continue;
		return v;
	}
	backend_error_set(error, PROTO_STATUS_NOT_FOUND, "%s", secret_seen ?
	    "no such version" : "no such secret");
	return NULL;
}

static void
fake_req_free(struct fake_req *r)
{
	if (r->ev != NULL)
		event_free(r->ev);
	for (size_t i = 0; i < r->count; i++)
		free(r->ids[i]);
	free(r);
}

/* Where fake_value() lends a batch answer's value. */
struct fake_item_ctx {
	const struct backend_batch_cbs *cbs;
	void *arg;
	size_t i;
};

static void fake_value(const struct fake_version *v, backend_value_cb cb, void *arg);

/* BatchGetSecretValue from the table: AWSCURRENT of each id, or an error for it. */
static void
fake_batch_answer(struct fake *f, struct fake_req *r)
{
	struct backend_error error;

	if (f->batch_fail != PROTO_STATUS_OK) {
		backend_error_set(&error, f->batch_fail, "fake whole failure");
		r->bcbs->done(r->arg, &error);
		return;
	}
	for (size_t i = 0; i < r->count; i++) {
		struct fake_req one = { .id = r->ids[i] };
		const struct fake_version *v = fake_lookup(f, &one, &error);

		if (v == NULL) {
			error.about_secret = true;
			r->bcbs->item(r->arg, i, NULL, &error);
		} else {
			struct fake_item_ctx ctx;

			ctx.cbs = r->bcbs;
			ctx.arg = r->arg;
			ctx.i = i;
			fake_value(v, NULL, &ctx);
		}
	}
	r->bcbs->done(r->arg, NULL);
}

/* DescribeSecret from the table: every version of the secret with its labels. */
static void
fake_describe_answer(struct fake *f, struct fake_req *r)
{
	struct backend_version_stages vs[FAKE_MAX_VERSIONS];
	const char *stages[FAKE_MAX_VERSIONS][FAKE_MAX_STAGES];
	struct backend_description d;
	struct backend_error error;
	size_t n = 0;

	memset(&d, 0, sizeof(d));
	if (f->fail != PROTO_STATUS_OK) {
		backend_error_set(&error, f->fail, "fake failure");
		error.about_secret = f->fail_about_secret;
		r->dcb(r->arg, NULL, &error);
		return;
	}
	for (size_t i = 0; i < FAKE_MAX_VERSIONS; i++) {
		const struct fake_version *v = &f->table[i];

		if (!v->used || !id_matches(f, v, r->id))
			continue;
		d.arn = v->arn;
		d.name = v->name;
		for (size_t j = 0; j < v->stage_count; j++)
			stages[n][j] = v->stages[j];
		vs[n].version_id = v->vid;
		vs[n].stages = stages[n];
		vs[n].stage_count = v->stage_count;
		vs[n].created_ms = 1700000000000;
		n++;
	}
	if (n == 0) {
		backend_error_set(&error, PROTO_STATUS_NOT_FOUND, "no such secret");
		error.about_secret = true;
		r->dcb(r->arg, NULL, &error);
		return;
	}
	d.created_ms = 1700000000000;
	d.versions = vs;
	d.version_count = n;
	r->dcb(r->arg, &d, NULL);
}

/* Answers r (already off the pending list) and frees it. */
static void
fake_answer_one(struct fake *f, struct fake_req *r)
{
	const struct fake_version *v;
	struct backend_error error;

	f->answered++;
	if (r->dcb != NULL) {
		fake_describe_answer(f, r);
		goto out;
	}
	if (r->bcbs != NULL) {
		fake_batch_answer(f, r);
		goto out;
	}
	if (f->fail != PROTO_STATUS_OK) {
		backend_error_set(&error, f->fail, "fake failure");
		error.about_secret = f->fail_about_secret;
		r->cb(r->arg, NULL, &error);
		goto out;
	}
	if ((v = fake_lookup(f, r, &error)) == NULL) {
		r->cb(r->arg, NULL, &error);
		goto out;
	}
	fake_value(v, r->cb, r->arg);
out:
	fake_req_free(r);
}

/* Lends v's value to cb (or, cb NULL, to the batch item in arg). */
static void
fake_value(const struct fake_version *v, backend_value_cb cb, void *arg)
{
	struct fake_item_ctx *ctx = arg;
	const char *stages[FAKE_MAX_STAGES];
	struct backend_value value;
	uint8_t *copy;

	/* Lent in a buffer of its own, wiped after the callback as real backends do. */
	copy = malloc(v->len + 1);
	assert_non_null(copy);
	memcpy(copy, v->value, v->len);
	memset(&value, 0, sizeof(value));
	for (size_t i = 0; i < v->stage_count; i++)
		stages[i] = v->stages[i];
	value.arn = v->arn;
	value.name = v->name;
	value.version_id = v->vid;
	value.stages = stages;
	value.stage_count = v->stage_count;
	value.created_ms = 1700000000000;
	value.is_binary = v->is_binary;
	value.data = copy;
	value.len = v->len;
	if (cb != NULL)
		cb(arg, &value, NULL);
	else
		ctx->cbs->item(ctx->arg, ctx->i, &value, NULL);
	sodium_memzero(copy, v->len);
	free(copy);
}

/* Timed: one request, its timer due. */
static void
fake_answer_timed(evutil_socket_t fd, short what, void *arg)
{
	struct fake_req *r = arg;
	struct fake *f = r->fake;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&f->pending, r, entry);
	fake_answer_one(f, r);
}

/* Batch: every request made before this pass; requests made while answering wait for the next. */
static void
fake_answer_batch(evutil_socket_t fd, short what, void *arg)
{
	struct fake *f = arg;
	struct fake_req_list now = TAILQ_HEAD_INITIALIZER(now);
	struct fake_req *r;

	(void)fd;
	(void)what;
	TAILQ_CONCAT(&now, &f->pending, entry);
	if (f->before_answer != NULL)
		f->before_answer();
	while ((r = TAILQ_FIRST(&now)) != NULL) {
		TAILQ_REMOVE(&now, r, entry);
		fake_answer_one(f, r);
	}
	if (f->after_answer != NULL)
		f->after_answer();
}

static char *
put_str(char **p, const char *s)
{
	char *start = *p;

	if (s == NULL)
		return NULL;
	memcpy(start, s, strlen(s) + 1);
	*p += strlen(s) + 1;
	return start;
}

/* Queues a request, its strings in the same allocation. */
static struct fake_req *
fake_req_new(struct fake *f, const char *id, const char *stage, const char *vid)
{
	size_t n = strlen(id) + 1 + (stage ? strlen(stage) + 1 : 0) + (vid ? strlen(vid) + 1 : 0);
	struct fake_req *r = calloc(1, sizeof(*r) + n);
	char *p;

	assert_non_null(r);
	p = (char *)(r + 1);
	r->id = put_str(&p, id);
	r->stage = put_str(&p, stage);
	r->vid = put_str(&p, vid);
	r->fake = f;
	if (f->batch) {
		event_active(f->batch_ev, EV_TIMEOUT, 0);
	} else {
		r->ev = evtimer_new(f->b.base, fake_answer_timed, r);
		assert_non_null(r->ev);
		assert_int_equal(evtimer_add(r->ev, &f->delay), 0);
	}
	TAILQ_INSERT_TAIL(&f->pending, r, entry);
	return r;
}

static int
fake_get_value(struct backend *b, const struct backend_query *q, backend_value_cb cb, void *arg)
{
	struct fake *f = (struct fake *)b;
	struct fake_req *r = fake_req_new(f, q->secret_id, q->version_stage, q->version_id);

	r->cb = cb;
	r->arg = arg;
	f->calls++;
	snprintf(f->last_id, sizeof(f->last_id), "%s", q->secret_id);
	f->last_had_stage = q->version_stage != NULL;
	snprintf(f->last_stage, sizeof(f->last_stage), "%s",
	    q->version_stage != NULL ? q->version_stage : "");
	return 0;
}

static int
fake_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg)
{
	struct fake *f = (struct fake *)b;
	struct fake_req *r = fake_req_new(f, secret_id, NULL, NULL);

	r->dcb = cb;
	r->arg = arg;
	f->describes++;
	return 0;
}

static int
fake_batch_get(struct backend *b, const struct backend_batch *batch,
    const struct backend_batch_cbs *cbs, void *arg)
{
	struct fake *f = (struct fake *)b;
	struct fake_req *r;

	assert_int_equal(batch->filter_count, 0);
	assert_true(batch->count >= 1 && batch->count <= BACKEND_BATCH_MAX);
	r = fake_req_new(f, "", NULL, NULL);
	for (size_t i = 0; i < batch->count; i++) {
		r->ids[i] = strdup(batch->secret_ids[i]);
		assert_non_null(r->ids[i]);
	}
	r->count = batch->count;
	r->bcbs = cbs;
	r->arg = arg;
	f->batches++;
	f->batch_ids += batch->count;
	return 0;
}

/* Pending requests are dropped without their callbacks, like the real backends. */
static void
fake_free(struct backend *b)
{
	struct fake *f = (struct fake *)b;
	struct fake_req *r;

	while ((r = TAILQ_FIRST(&f->pending)) != NULL) {
		TAILQ_REMOVE(&f->pending, r, entry);
		fake_req_free(r);
	}
	fake_clear(f);
	event_free(f->batch_ev);
	free(f);
}

static const struct backend_ops fake_ops = {
	.name = "fake",
	.get_value = fake_get_value,
	.describe = fake_describe,
	.free = fake_free,
};

/* The same fake with a batch read (BatchGetSecretValue). */
static const struct backend_ops fake_batch_ops = {
	.name = "fake-batch",
	.get_value = fake_get_value,
	.describe = fake_describe,
	.batch_get = fake_batch_get,
	.free = fake_free,
};

void
fake_enable_batch_read(struct fake *f)
{
	f->b.ops = &fake_batch_ops;
}

struct fake *
fake_new(struct event_base *base)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->b.ops = &fake_ops;
	f->b.base = base;
	TAILQ_INIT(&f->pending);
	f->batch_ev = event_new(base, -1, 0, fake_answer_batch, f);
	assert_non_null(f->batch_ev);
	return f;
}

static struct fake_version *
fake_find(struct fake *f, const char *name, const char *vid)
{
	for (size_t i = 0; i < FAKE_MAX_VERSIONS; i++)
		if (f->table[i].used && strcmp(f->table[i].name, name) == 0 &&
		    strcmp(f->table[i].vid, vid) == 0)
			return &f->table[i];
	return NULL;
}

void
fake_stages(struct fake *f, const char *name, const char *vid, const char *csv)
{
	struct fake_version *v = fake_find(f, name, vid);
	char buf[128], *save = NULL;

	assert_non_null(v);
	v->stage_count = 0;
	snprintf(buf, sizeof(buf), "%s", csv);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		assert_true(v->stage_count < FAKE_MAX_STAGES);
		snprintf(v->stages[v->stage_count++], sizeof(v->stages[0]), "%s", t);
	}
}

void
fake_put_bytes(struct fake *f, const char *arn, const char *name, const char *vid,
    const char *stages, const void *value, size_t len, bool is_binary)
{
	struct fake_version *v = fake_find(f, name, vid);

	for (size_t i = 0; v == NULL && i < FAKE_MAX_VERSIONS; i++)
		if (!f->table[i].used)
			v = &f->table[i];
	assert_non_null(v);
	free(v->value);
	memset(v, 0, sizeof(*v));
	v->used = true;
	snprintf(v->arn, sizeof(v->arn), "%s", arn);
	snprintf(v->name, sizeof(v->name), "%s", name);
	snprintf(v->vid, sizeof(v->vid), "%s", vid);
	v->value = malloc(len + 1);
	assert_non_null(v->value);
	memcpy(v->value, value, len);
	v->len = len;
	v->is_binary = is_binary;
	fake_stages(f, name, vid, stages);
}

void
fake_put(struct fake *f, const char *arn, const char *name, const char *vid, const char *stages,
    const char *value)
{
	fake_put_bytes(f, arn, name, vid, stages, value, strlen(value), false);
}

void
fake_remove_secret(struct fake *f, const char *name)
{
	for (size_t i = 0; i < FAKE_MAX_VERSIONS; i++) {
		if (f->table[i].used && strcmp(f->table[i].name, name) == 0) {
			free(f->table[i].value);
			memset(&f->table[i], 0, sizeof(f->table[i]));
		}
	}
}

void
fake_clear(struct fake *f)
{
	for (size_t i = 0; i < FAKE_MAX_VERSIONS; i++) {
		free(f->table[i].value);
		memset(&f->table[i], 0, sizeof(f->table[i]));
	}
}
