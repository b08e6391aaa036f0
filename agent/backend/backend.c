/*
 * backend: helpers shared by every backend implementation, and the timing
 * of every call (a small record per call in flight, linked into the
 * backend so that backend_free can release those whose callback never
 * runs). Backend calls are upstream requests or file reads: a malloc and
 * two clock reads each cost nothing beside them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "backend.h"
#include "sys_clock.h"

/* Seconds; chosen around Secrets Manager's usual 10-100 ms and its retries and timeouts. */
const double backend_latency_bounds[BACKEND_LATENCY_BUCKETS] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct backend_timer {
	struct backend_timer *next, **prevp;
	struct backend *b;
	uint64_t start_ns;
	backend_value_cb value_cb;
	backend_describe_cb describe_cb;
	void *arg;
};

static struct backend_timer *
timer_start(struct backend *b, void *arg)
{
	struct backend_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->b = b;
	t->arg = arg;
	t->start_ns = sys_clock_ns();
	if ((t->next = b->timers) != NULL)
		t->next->prevp = &t->next;
	t->prevp = &b->timers;
	b->timers = t;
	b->counters.in_flight++;
	return t;
}

static void
timer_unlink(struct backend_timer *t)
{
	if (t->b->counters.in_flight > 0)
		t->b->counters.in_flight--;
	if (t->next != NULL)
		t->next->prevp = t->prevp;
	*t->prevp = t->next;
}

static void
timer_record(struct backend_timer *t, struct backend_latency *lat)
{
	const uint64_t ns = sys_clock_ns() - t->start_ns;
	const double s = (double)ns / 1e9;
	size_t i;

	for (i = 0; i < BACKEND_LATENCY_BUCKETS && s > backend_latency_bounds[i]; i++)
		;
	lat->buckets[i]++;
	lat->count++;
	lat->sum_ns += ns;
	timer_unlink(t);
}

static void
timed_value(void *arg, const struct backend_value *value, const struct backend_error *error)
{
	struct backend_timer *t = arg;
	backend_value_cb cb = t->value_cb;
	void *cb_arg = t->arg;

	timer_record(t, &t->b->counters.get_latency);
	free(t);
	cb(cb_arg, value, error);
}

static void
timed_describe(void *arg, const struct backend_description *d, const struct backend_error *error)
{
	struct backend_timer *t = arg;
	backend_describe_cb cb = t->describe_cb;
	void *cb_arg = t->arg;

	timer_record(t, &t->b->counters.describe_latency);
	free(t);
	cb(cb_arg, d, error);
}

int
backend_get_value(struct backend *b, const struct backend_query *q, backend_value_cb cb, void *arg)
{
	struct backend_timer *t;

	/* Untimed when there is nothing to time (the backend refuses a NULL callback). */
	if (cb == NULL || (t = timer_start(b, arg)) == NULL)
		return b->ops->get_value(b, q, cb, arg);
	t->value_cb = cb;
	if (b->ops->get_value(b, q, timed_value, t) != 0) {
		timer_unlink(t);
		free(t);
		return -1;
	}
	return 0;
}

int
backend_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg)
{
	struct backend_timer *t;

	if (cb == NULL || (t = timer_start(b, arg)) == NULL)
		return b->ops->describe(b, secret_id, cb, arg);
	t->describe_cb = cb;
	if (b->ops->describe(b, secret_id, timed_describe, t) != 0) {
		timer_unlink(t);
		free(t);
		return -1;
	}
	return 0;
}

void
backend_free(struct backend *b)
{
	struct backend_timer *left, *next;

	if (b == NULL)
		return;
	/* The list moves out of b (freed below); callbacks that still run during the
	 * backend's free unlink their timers from it, those left never run. */
	if ((left = b->timers) != NULL)
		left->prevp = &left;
	b->timers = NULL;
	b->ops->free(b);
	for (; left != NULL; left = next) {
		next = left->next;
		free(left);
	}
}

void
backend_error_set(struct backend_error *error, enum proto_status status, const char *fmt, ...)
{
	va_list ap;

	/* An error is never OK: a caller bug must not turn into a success reply. */
	error->status = status == PROTO_STATUS_OK ? PROTO_STATUS_INTERNAL : status;
	error->about_secret = false;
	va_start(ap, fmt);
	if (vsnprintf(error->message, sizeof(error->message), fmt, ap) < 0)
		error->message[0] = '\0';
	va_end(ap);
}

void
backend_note(struct backend *b, const struct backend_error *error)
{
	struct backend_health *h = &b->health;
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (error == NULL || (error->status != PROTO_STATUS_UPSTREAM_UNAVAILABLE &&
	    error->status != PROTO_STATUS_UPSTREAM_AUTH && error->status != PROTO_STATUS_INTERNAL)) {
		h->last_success_ms = now;
		if (h->credentials != PROTO_CRED_NOT_NEEDED)
			h->credentials = PROTO_CRED_OK;
		return;
	}
	h->last_failure_ms = now;
	h->last_failure_status = error->status;
	/* "None could be had" (set by the backend) stays until some are had. */
	if (error->status == PROTO_STATUS_UPSTREAM_AUTH &&
	    h->credentials != PROTO_CRED_NOT_NEEDED &&
	    h->credentials != PROTO_CRED_UNAVAILABLE)
		h->credentials = PROTO_CRED_REJECTED;
}
