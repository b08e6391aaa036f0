/*
 * fake_backend: the backend the cache's unit tests run against (test_cache,
 * test_cache_shared). It answers from an in-test table of versions, on the
 * event loop and never before get_value/describe returned, in one of two ways:
 *   - timed (the default): each request after f->delay (zero: the next loop
 *     pass), by a timer of its own;
 *   - batch (f->batch): every request made before the loop next runs, in one
 *     callback, with before_answer and after_answer run in that same loop pass
 *     around the answers, to look at the cache from inside the pass in which
 *     it hears.
 * With fake_enable_batch_read() it also has a batch read. It counts its calls, can fail with any status, finds a secret by name, full
 * ARN or partial ARN (the ARN without "-XXXXXX"; with f->exact_ids, by name
 * or full ARN only, so that what the cache resolves itself is proved to be
 * resolved there), and lends each value in a buffer of its own that it wipes
 * once the callback returned, as real backends do: a cache that kept the
 * pointer instead of sealing a copy would read zeros.
 *
 * Functions fail the running test (cmocka) rather than return errors.
 * backend_free(&f->b) frees it; pending requests are dropped unanswered.
 */
#ifndef SMC_TESTS_FAKE_BACKEND_H
#define SMC_TESTS_FAKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "backend.h"

#define FAKE_MAX_VERSIONS	32
#define FAKE_MAX_STAGES		4

/* One version in the fake upstream. */
struct fake_version {
	bool used;
	char arn[256];
	char name[64];
	char vid[72];
	char stages[FAKE_MAX_STAGES][32];
	size_t stage_count;
	bool is_binary;
	uint8_t *value;
	size_t len;
};

struct fake_req;
TAILQ_HEAD(fake_req_list, fake_req);

struct fake {
	struct backend b;		/* first: ops receive &fake->b */
	struct fake_version table[FAKE_MAX_VERSIONS];
	/* how it answers */
	bool batch;			/* all pending requests in one pass, hooks around */
	struct timeval delay;		/* timed: after this long */
	enum proto_status fail;		/* PROTO_STATUS_OK: answer from the table */
	bool fail_about_secret;		/* the failure is about the secret asked for */
	bool exact_ids;			/* no partial-ARN matching */
	void (*before_answer)(void);	/* batch: run in the answering pass, before the cache hears */
	void (*after_answer)(void);	/* and after: both in the same loop pass */
	/* what it was asked */
	unsigned calls;			/* get_value calls */
	unsigned describes;		/* DescribeSecret calls (not in calls) */
	unsigned batches;		/* batch reads, BatchGetSecretValue (not in calls);
					 * nothing to do with the answering mode f->batch */
	size_t batch_ids;		/* ids they named */
	enum proto_status batch_fail;	/* PROTO_STATUS_OK: answer each id; else the whole
					 * batch read fails with it */
	unsigned answered;
	char last_id[160], last_stage[32];
	bool last_had_stage;
	struct fake_req_list pending;	/* asked, not answered yet */
	struct event *batch_ev;
};

/* A fake on base with an empty table, answering timed with no delay. */
struct fake *fake_new(struct event_base *base);

/* Gives the fake a batch read (BatchGetSecretValue of ids: AWSCURRENT of each,
 * or an error about that id), which backends without one lack. */
void fake_enable_batch_read(struct fake *f);

/* Adds a version, or replaces the one with that name and VersionId. stages: comma-separated. */
void fake_put(struct fake *f, const char *arn, const char *name, const char *vid,
    const char *stages, const char *value);
void fake_put_bytes(struct fake *f, const char *arn, const char *name, const char *vid,
    const char *stages, const void *value, size_t len, bool is_binary);
/* Sets a version's labels from a comma-separated list ("" for none). */
void fake_stages(struct fake *f, const char *name, const char *vid, const char *csv);
/* Removes every version of the secret named name. */
void fake_remove_secret(struct fake *f, const char *name);
/* Empties the table. */
void fake_clear(struct fake *f);

#endif
