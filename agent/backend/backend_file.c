/*
 * backend_file: secrets from a local JSON file that models AWS Secrets
 * Manager, served: when the file is read again, lookups in the sealed index
 * of the file's last state, and the deferred request queue. The file format,
 * its validation and the index it is parsed into are in backend_file_index.c.
 * Keeps no plaintext value between requests.
 *
 * Lookups: SecretId is the Name, the full ARN, or the ARN without its
 * "-XXXXXX" suffix. No stage and no version id means AWSCURRENT; with a
 * version id and a stage, the stage must be on that version. A secret with a
 * DeletedDate cannot be read but can be described.
 *
 * The file is parsed once per change, not per request: each request
 * stat()s it (about a microsecond) and only a new identity (device, inode,
 * size, mtime, ctime) makes it read and validate the file again (about
 * 30 ms for a 15 MB file, on the event loop, once). A change inside the
 * file system's timestamp granularity (a same-size rewrite in place within
 * one clock tick of the last read) is caught by reading once more on the
 * first request 200 ms after such a "racy" read (hashing the bytes, and
 * parsing only when they differ), so every change is seen within a second.
 * What a parse keeps is an index (backend_file_index.h): names, ARNs,
 * versions, labels, dates, and each value sealed; the file's bytes and the
 * JSON copies of values are wiped as soon as the index is built. A request
 * opens one value into guarded memory, hands it to the callback and wipes
 * it. An invalid edit fails requests with UPSTREAM_UNAVAILABLE until fixed
 * (that state is kept too, so a broken file is not parsed again per request
 * either). The file must pass sys_file's trust rule (not writable by group
 * or others, owned by root or the agent's user, on a safe path).
 */
#define LOG_COMPONENT "file"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "backend_file.h"
#include "backend_file_index.h"
#include "json_secure.h"
#include "log.h"
#include "secmem.h"
#include "sys_file.h"
#include "table.h"

#define SF_SHOWN_ID		64	/* client-given ids are shortened to this in messages */
#define SF_SHOWN_PATH		72
/*
 * File times come from the kernel's coarse clock (one tick: 1 to 10 ms), so
 * a read within a tick of the file's last change could miss a same-size
 * rewrite in that tick. A read this close (with room for clock skew) is
 * "racy" and looked at again this long after it.
 */
#define SF_RACY_MS		100
#define SF_RECHECK_MS		200

/* ---- the backend ------------------------------------------------------------------------ */

struct sf_request {
	TAILQ_ENTRY(sf_request) entry;
	struct backend_file *bf;
	struct event *ev;
	bool is_describe;
	backend_value_cb value_cb;
	backend_describe_cb describe_cb;
	void *arg;
	char *secret_id;
	char *version_stage;		/* NULL when not given */
	char *version_id;		/* NULL when not given */
};

TAILQ_HEAD(sf_request_list, sf_request);

struct backend_file {
	struct backend b;		/* first: ops receive &bf->b */
	char *path;
	char path_shown[SF_SHOWN_PATH];	/* sanitized, for messages */
	struct sf_request_list pending;
	uint8_t *key;			/* sealing key of the index, in guarded memory */
	/* The state of the file last read: its index, or why it failed (logged once). */
	struct sys_file_ident ident;
	struct sf_store *index;		/* NULL while failing */
	bool failing;
	struct backend_error fail_error;
	int64_t recheck_at;		/* 0, or when a racy read is looked at again (CLOCK_REALTIME ms) */
	bool have_digest;
	uint8_t digest[crypto_generichash_BYTES];	/* of the bytes of a racy read */
	uint8_t *plain;			/* one opened value at a time, in guarded memory */
	int in_callback;		/* a callback is running: free only after it */
	bool free_pending;
};
/* ---- text helpers ------------------------------------------------------------------------ */


/* Like sf_shown but keeps the end of a path, its most telling part. */
static void
sf_shown_tail(char *dst, size_t dstlen, const char *src)
{
	size_t n = strlen(src);

	if (n + 1 <= dstlen || dstlen < 8) {
		sf_shown(dst, dstlen, src);
		return;
	}
	memcpy(dst, "...", 3);
	sf_shown(dst + 3, dstlen - 3, src + n - (dstlen - 4));
}

/* ---- reading the file -------------------------------------------------------------------- */

static int64_t
sf_ms(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000;
}

/* What one read of the file gave, besides the index. */
struct sf_read {
	struct sys_file_ident ident;	/* of what was read (or of the path, unreadable) */
	bool racy;			/* read within SF_RACY_MS of its last change */
	bool have_digest;
	uint8_t digest[crypto_generichash_BYTES];	/* of the bytes, when racy */
	bool unchanged;			/* the bytes hash to the digest given: not parsed */
};

/*
 * Reads (sys_file: trusted, bounded, read(2) only), validates and seals the
 * file into a new index. On failure the error is UPSTREAM_UNAVAILABLE (the
 * file is this backend's upstream). A racy read (the file changed within
 * SF_RACY_MS before now_ms) keeps a digest of the bytes; when same_as is
 * given and the bytes hash to it, nothing is parsed: rd->unchanged, NULL,
 * no error.
 */
static struct sf_store *
sf_parse_file(struct backend_file *bf, int64_t now_ms, const uint8_t *same_as,
    struct sf_read *rd, struct backend_error *error)
{
	const struct sys_file_opts opts = { .max_size = BACKEND_FILE_MAX_SIZE, .trust = true };
	struct sys_file f;
	struct sf_store *s = NULL;
	char reason[512];
	int64_t changed_ms;

	memset(rd, 0, sizeof(*rd));
	sys_file_ident_path(bf->path, &rd->ident);
	if (sys_file_read(bf->path, &opts, &f, reason, sizeof(reason)) != 1) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "cannot read secrets file %s: %s", bf->path_shown, reason);
		return NULL;
	}
	sys_file_ident_of(&f.st, &rd->ident);
	changed_ms = sf_ms(&f.st.st_ctim) > sf_ms(&f.st.st_mtim) ? sf_ms(&f.st.st_ctim) :
	    sf_ms(&f.st.st_mtim);
	rd->racy = now_ms < changed_ms + SF_RACY_MS;
	if (rd->racy || same_as != NULL) {
		/* BLAKE2b, about 20 ms for 15 MB: only for racy reads and their second look. */
		crypto_generichash(rd->digest, sizeof(rd->digest), (const unsigned char *)f.data,
		    f.len, NULL, 0);
		rd->have_digest = true;
		if (same_as != NULL && sodium_memcmp(rd->digest, same_as, sizeof(rd->digest)) == 0) {
			rd->unchanged = true;
			sys_file_free(&f);
			return NULL;
		}
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		sys_file_free(&f);
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE, "out of memory");
		return NULL;
	}
	/* The store takes the buffer: it wipes it (sf_store_seal or sf_store_free). */
	s->buf = f.data;
	s->len = f.len;
	s->buf_size = f.size;
	if (sf_store_parse(s, reason, sizeof(reason)) != 0) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "secrets file %s is invalid: %s", bf->path_shown, reason);
		goto fail;
	}
	if (sf_store_seal(s, bf->key, reason, sizeof(reason)) != 0) {
		backend_error_set(error, PROTO_STATUS_UPSTREAM_UNAVAILABLE,
		    "secrets file %s: %s", bf->path_shown, reason);
		goto fail;
	}
	return s;
fail:
	sf_store_free(s);
	free(s);
	return NULL;
}

static void
sf_index_drop(struct backend_file *bf)
{
	if (bf->index != NULL) {
		sf_store_free(bf->index);
		free(bf->index);
		bf->index = NULL;
	}
}

/*
 * The index of the file as it is now: read again only when the file's
 * identity changed, or for the second look a racy read is due (which parses
 * only if the bytes differ). NULL with *error when the file is unreadable or
 * invalid; that is logged once per state.
 */
static struct sf_store *
sf_current(struct backend_file *bf, struct backend_error *error, bool log)
{
	struct sys_file_ident now;
	struct sf_read rd;
	struct timespec ts, done;
	struct sf_store *s;
	bool known, second_look;

	clock_gettime(CLOCK_REALTIME, &ts);
	sys_file_ident_path(bf->path, &now);
	known = (bf->index != NULL || bf->failing) && sys_file_ident_same(&now, &bf->ident);
	second_look = known && bf->recheck_at != 0 && sf_ms(&ts) >= bf->recheck_at;
	if (known && !second_look)
		goto same;
	s = sf_parse_file(bf, sf_ms(&ts), second_look && bf->have_digest ? bf->digest : NULL,
	    &rd, error);
	clock_gettime(CLOCK_REALTIME, &done);
	log_debug("file backend: %s %s in %ld ms: %s", second_look ? "looked again at" : "read",
	    bf->path_shown, (long)((done.tv_sec - ts.tv_sec) * 1000 +
	    (done.tv_nsec - ts.tv_nsec) / 1000000), rd.unchanged ? "unchanged" :
	    s != NULL ? "new index" : "failed");
	bf->recheck_at = rd.racy ? sf_ms(&ts) + SF_RECHECK_MS : 0;
	bf->have_digest = rd.have_digest;
	memcpy(bf->digest, rd.digest, sizeof(bf->digest));
	if (rd.unchanged) {
		bf->ident = rd.ident;
		goto same;
	}
	if (s != NULL) {
		sf_index_drop(bf);
		bf->index = s;
		bf->ident = rd.ident;
		if (bf->failing && log)
			log_info("file backend: secrets file %s is valid again", bf->path_shown);
		bf->failing = false;
		return s;
	}
	sf_index_drop(bf);
	/* The same failure on a second look at the same state is not news. */
	if (log && !(bf->failing && strcmp(error->message, bf->fail_error.message) == 0 &&
	    sys_file_ident_same(&bf->ident, &rd.ident)))
		log_error("file backend: %s", error->message);
	bf->ident = rd.ident;
	bf->failing = true;
	bf->fail_error = *error;
	return NULL;
same:
	if (bf->index != NULL)
		return bf->index;
	*error = bf->fail_error;
	return NULL;
}

/* ---- lookups ----------------------------------------------------------------------------- */

/*
 * A full ARN or name wins over a partial ARN: secret "a" with ARN
 * "...:secret:a-Abc123" and a secret named "a-Abc123" share that string.
 */
static struct sf_secret *
sf_find_secret(const struct sf_store *s, const char *id)
{
	uint64_t h = table_hash(&s->ids, id, NULL, NULL);
	struct sf_secret *full = NULL, *partial = NULL;

	/* The first in file order of each kind, as a scan would find it. */
	for (struct table_node *n = table_chain(&s->ids, h); n != NULL; n = n->next) {
		const struct sf_id_node *in = table_entry(n, struct sf_id_node, node);
		struct sf_secret *sec = in->secret;

		if (n->hash != h)
			continue;
		if (in->kind == SF_ID_PARTIAL) {
			if (strcmp(id, sec->partial) == 0 && (partial == NULL || sec < partial))
				partial = sec;
		} else if (strcmp(id, in->kind == SF_ID_NAME ? sec->name : sec->arn) == 0 &&
		    (full == NULL || sec < full)) {
			full = sec;
		}
	}
	return full != NULL ? full : partial;
}

static bool
sf_has_stage(const struct sf_version *v, const char *stage)
{
	for (size_t i = 0; i < v->stage_count; i++)
		if (strcmp(v->stages[i], stage) == 0)
			return true;
	return false;
}

/*
 * Finds the version a query means and fills *value, its bytes opened into
 * plain (PROTO_MAX_VALUE bytes of guarded memory; the caller wipes them).
 */
static int
sf_lookup_value(const struct sf_store *s, const uint8_t *key, const struct sf_request *req,
    struct backend_value *value, uint8_t *plain, struct backend_error *error)
{
	const char *stage = req->version_stage;
	const struct sf_secret *sec;
	const struct sf_version *v = NULL;
	char id[SF_SHOWN_ID + 1], name[SF_SHOWN_ID + 1], what[SF_SHOWN_ID + 1];

	sf_shown(id, sizeof(id), req->secret_id);
	if ((sec = sf_find_secret(s, req->secret_id)) == NULL) {
		backend_error_set(error, PROTO_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		return -1;
	}
	sf_shown(name, sizeof(name), sec->name);
	if (sec->deleted_ms != 0) {
		backend_error_set(error, PROTO_STATUS_NOT_FOUND,
		    "secret \"%s\" is scheduled for deletion", name);
		return -1;
	}
	if (req->version_id == NULL && stage == NULL)
		stage = "AWSCURRENT";
	if (req->version_id != NULL) {
		for (size_t i = 0; i < sec->version_count && v == NULL; i++)
			if (strcmp(sec->versions[i].version_id, req->version_id) == 0)
				v = &sec->versions[i];
		if (v == NULL) {
			sf_shown(what, sizeof(what), req->version_id);
			backend_error_set(error, PROTO_STATUS_NOT_FOUND,
			    "secret \"%s\" has no version \"%s\"", name, what);
			return -1;
		}
		if (stage != NULL && !sf_has_stage(v, stage)) {
			char st[SF_SHOWN_ID + 1];

			sf_shown(what, sizeof(what), req->version_id);
			sf_shown(st, sizeof(st), stage);
			backend_error_set(error, PROTO_STATUS_NOT_FOUND, "version id \"%s\" and "
			    "staging label \"%s\" do not match (secret \"%s\")", what, st, name);
			return -1;
		}
	} else {
		for (size_t i = 0; i < sec->version_count && v == NULL; i++)
			if (sf_has_stage(&sec->versions[i], stage))
				v = &sec->versions[i];
		if (v == NULL) {
			sf_shown(what, sizeof(what), stage);
			backend_error_set(error, PROTO_STATUS_NOT_FOUND,
			    "secret \"%s\" has no version labelled \"%s\"", name, what);
			return -1;
		}
	}

	memset(value, 0, sizeof(*value));
	value->arn = sec->arn;
	value->name = sec->name;
	value->version_id = v->version_id;
	value->stages = v->stages;
	value->stage_count = v->stage_count;
	value->created_ms = v->created_ms;
	value->is_binary = v->is_binary;
	/* plain_len <= PROTO_MAX_VALUE: the parse checked every value. */
	if (crypto_secretbox_open_easy(plain, v->sealed + SF_NONCE, v->plain_len + SF_MAC,
	    v->sealed, key) != 0) {
		sodium_memzero(plain, v->plain_len);
		backend_error_set(error, PROTO_STATUS_INTERNAL, "sealed value failed to open");
		return -1;
	}
	value->data = plain;
	value->len = v->plain_len;
	return 0;
}

/* ---- requests ---------------------------------------------------------------------------- */

static void
sf_request_free(struct sf_request *req)
{
	if (req->ev != NULL)
		event_free(req->ev);
	free(req);
}

static void sf_destroy(struct backend_file *bf);

static void
sf_do_get(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store *s;
	struct backend_error error;
	struct backend_value value;
	bool ok;

	ok = (s = sf_current(bf, &error, true)) != NULL;
	if (ok && sf_lookup_value(s, bf->key, req, &value, bf->plain, &error) != 0) {
		/* The file was read: the answer is about this secret, not the backend. */
		error.about_secret = true;
		ok = false;
	}
	if (ok)
		bf->b.counters.get_ok++;
	else
		bf->b.counters.get_error++;
	backend_note(&bf->b, ok ? NULL : &error);
	/* The callback may free bf: sf_free then leaves the end to us. */
	bf->in_callback++;
	if (ok)
		req->value_cb(req->arg, &value, NULL);
	else
		req->value_cb(req->arg, NULL, &error);
	bf->in_callback--;
	if (ok)
		sodium_memzero(bf->plain, value.len);
	if (bf->free_pending && bf->in_callback == 0)
		sf_destroy(bf);
}

static void
sf_do_describe(struct backend_file *bf, struct sf_request *req)
{
	struct sf_store *s;
	struct backend_error error;
	struct backend_description d;
	struct backend_version_stages *vs = NULL;
	const struct sf_secret *sec = NULL;
	char id[SF_SHOWN_ID + 1];
	bool ok = false;

	if ((s = sf_current(bf, &error, true)) == NULL)
		goto done;
	if ((sec = sf_find_secret(s, req->secret_id)) == NULL) {
		sf_shown(id, sizeof(id), req->secret_id);
		backend_error_set(&error, PROTO_STATUS_NOT_FOUND, "secret \"%s\" not found", id);
		error.about_secret = true;
		goto done;
	}
	if (sec->version_count > 0 &&
	    (vs = calloc(sec->version_count, sizeof(*vs))) == NULL) {
		backend_error_set(&error, PROTO_STATUS_INTERNAL, "out of memory");
		goto done;
	}
	memset(&d, 0, sizeof(d));
	d.arn = sec->arn;
	d.name = sec->name;
	d.description = sec->description;
	d.created_ms = sec->created_ms;
	d.last_changed_ms = sec->last_changed_ms;
	d.deleted_ms = sec->deleted_ms;
	d.versions = vs;
	/* As DescribeSecret's VersionIdsToStages: only versions with a label. */
	for (size_t i = 0; i < sec->version_count; i++) {
		const struct sf_version *v = &sec->versions[i];

		if (v->stage_count == 0)
			continue;
		vs[d.version_count].version_id = v->version_id;
		vs[d.version_count].stages = v->stages;
		vs[d.version_count].stage_count = v->stage_count;
		vs[d.version_count].created_ms = v->created_ms;
		d.version_count++;
	}
	ok = true;
done:
	if (ok)
		bf->b.counters.describe_ok++;
	else
		bf->b.counters.describe_error++;
	backend_note(&bf->b, ok ? NULL : &error);
	/* From here on the callback may have freed bf. */
	if (ok)
		req->describe_cb(req->arg, &d, NULL);
	else
		req->describe_cb(req->arg, NULL, &error);
	free(vs);
}

static void
sf_request_run(evutil_socket_t fd, short what, void *arg)
{
	struct sf_request *req = arg;
	struct backend_file *bf = req->bf;

	(void)fd;
	(void)what;
	TAILQ_REMOVE(&bf->pending, req, entry);
	if (req->is_describe)
		sf_do_describe(bf, req);
	else
		sf_do_get(bf, req);
	sf_request_free(req);
}

/* Queues a request; its strings are copied into the same allocation. */
static struct sf_request *
sf_request_new(struct backend_file *bf, const char *secret_id, const char *stage,
    const char *version_id)
{
	size_t lid = strlen(secret_id) + 1;
	size_t lst = stage != NULL ? strlen(stage) + 1 : 0;
	size_t lvi = version_id != NULL ? strlen(version_id) + 1 : 0;
	struct sf_request *req;
	char *p;

	if ((req = calloc(1, sizeof(*req) + lid + lst + lvi)) == NULL)
		return NULL;
	p = (char *)(req + 1);
	req->secret_id = memcpy(p, secret_id, lid);
	p += lid;
	if (stage != NULL) {
		req->version_stage = memcpy(p, stage, lst);
		p += lst;
	}
	if (version_id != NULL)
		req->version_id = memcpy(p, version_id, lvi);
	req->bf = bf;
	/* An event made active by hand runs on the next loop pass, FIFO, never now. */
	if ((req->ev = event_new(bf->b.base, -1, 0, sf_request_run, req)) == NULL) {
		free(req);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&bf->pending, req, entry);
	event_active(req->ev, EV_TIMEOUT, 0);
	return req;
}

static int
sf_get_value(struct backend *b, const struct backend_query *query, backend_value_cb cb, void *arg)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	if (query == NULL || query->secret_id == NULL || cb == NULL)
		return -1;
	req = sf_request_new(bf, query->secret_id, query->version_stage, query->version_id);
	if (req == NULL)
		return -1;
	req->value_cb = cb;
	req->arg = arg;
	return 0;
}

static int
sf_describe(struct backend *b, const char *secret_id, backend_describe_cb cb, void *arg)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	if (secret_id == NULL || cb == NULL)
		return -1;
	if ((req = sf_request_new(bf, secret_id, NULL, NULL)) == NULL)
		return -1;
	req->is_describe = true;
	req->describe_cb = cb;
	req->arg = arg;
	return 0;
}

static void
sf_destroy(struct backend_file *bf)
{
	sf_index_drop(bf);
	if (bf->key != NULL)
		sodium_free(bf->key);
	if (bf->plain != NULL)
		sodium_free(bf->plain);		/* wipes it */
	free(bf->path);
	free(bf);
}

/* Pending requests are dropped: their callbacks are never called. From a
 * value callback, the rest waits until that callback returned. */
static void
sf_free(struct backend *b)
{
	struct backend_file *bf = (struct backend_file *)b;
	struct sf_request *req;

	while ((req = TAILQ_FIRST(&bf->pending)) != NULL) {
		TAILQ_REMOVE(&bf->pending, req, entry);
		sf_request_free(req);
	}
	if (bf->in_callback > 0) {
		bf->free_pending = true;
		return;
	}
	sf_destroy(bf);
}

static const struct backend_ops sf_ops = {
	.name = "file",
	.get_value = sf_get_value,
	.describe = sf_describe,
	.free = sf_free,
};

/* ---- public ------------------------------------------------------------------------------ */

static char *
sf_absolute_path(const char *path)
{
	char *cwd, *abs;

	if (path[0] == '/')
		return strdup(path);
	if ((cwd = getcwd(NULL, 0)) == NULL)
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

struct backend *
backend_file_new(struct event_base *base, const char *path, char *err, size_t errlen)
{
	struct backend_file *bf = NULL;
	struct backend_error error;
	struct sf_store *s;
	char shown[SF_SHOWN_PATH];

	if (base == NULL || path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "file backend: no event base or no path");
		return NULL;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "file backend: libsodium failed to initialize");
		return NULL;
	}
	json_secure_init();
	if ((bf = calloc(1, sizeof(*bf))) == NULL)
		goto nomem;
	bf->b.ops = &sf_ops;
	bf->b.base = base;
	TAILQ_INIT(&bf->pending);
	if ((bf->path = sf_absolute_path(path)) == NULL ||
	    (bf->key = sodium_malloc(crypto_secretbox_KEYBYTES)) == NULL ||
	    (bf->plain = sodium_malloc(PROTO_MAX_VALUE)) == NULL)
		goto nomem;
	crypto_secretbox_keygen(bf->key);
	secmem_drop_fresh_pages(bf->plain, PROTO_MAX_VALUE);	/* used mostly in part */
	/* Messages show the path as given: shorter, and what the operator typed. */
	sf_shown_tail(shown, sizeof(shown), path);
	memcpy(bf->path_shown, shown, sizeof(shown));
	/* The first parse: its index answers the first requests. */
	if ((s = sf_current(bf, &error, false)) == NULL) {
		snprintf(err, errlen, "%s", error.message);
		sf_free(&bf->b);
		return NULL;
	}
	log_debug("file backend: %zu secrets in %s", s->secret_count, bf->path_shown);
	return &bf->b;
nomem:
	snprintf(err, errlen, "file backend: out of memory");
	if (bf != NULL)
		sf_free(&bf->b);
	return NULL;
}
