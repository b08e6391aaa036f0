/*
 * backend_file_index.h: the sealed index a secrets file is parsed into, shared
 * by the file backend's two halves (private to agent/backend/backend_file*.c):
 *   backend_file_index.c  the file format: validation, parsing, sealing the values
 *   backend_file.c        serving: when to read the file again, lookups, requests
 */
#ifndef SMC_AGENT_BACKEND_FILE_INDEX_H
#define SMC_AGENT_BACKEND_FILE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "backend.h"
#include "table.h"

/* The index's sealing: libsodium's secretbox, directly (cache/seal.c is the cache's, with
 * size classes this backend does not need, and the backend wing may not include cache/). */
#define SF_NONCE		crypto_secretbox_NONCEBYTES
#define SF_MAC			crypto_secretbox_MACBYTES

/* ---- the parsed file: the index of its last valid state ---------------------------------- */

struct sf_version {
	const char *version_id;
	const char *stages[PROTO_MAX_STAGES];
	size_t stage_count;
	int64_t created_ms;
	bool is_binary;
	const char *value;		/* SecretString, or SecretBinary's base64, in the cJSON
					 * tree; NULL once sealed */
	size_t value_len;
	cJSON *value_item;		/* its tree node, to drop the string once sealed */
	uint8_t *sealed;		/* nonce, then secretbox of the (decoded) value */
	size_t plain_len;		/* bytes of the (decoded) value */
};

/* One way to name a secret, in the index's hash table. */
enum sf_id_kind { SF_ID_NAME, SF_ID_ARN, SF_ID_PARTIAL, SF_ID_KINDS };

struct sf_id_node {
	struct table_node node;
	struct sf_secret *secret;
	enum sf_id_kind kind;
};

struct sf_secret {
	const char *name;
	const char *arn;		/* in the tree, or arn_owned */
	char *arn_owned;
	char *partial;			/* the ARN without its "-XXXXXX", for the index */
	struct sf_id_node ids[SF_ID_KINDS];
	const char *description;
	int64_t created_ms;
	int64_t last_changed_ms;
	int64_t deleted_ms;
	struct sf_version *versions;
	size_t version_count;
};

struct sf_store {
	char *buf;			/* the file's bytes, NUL-terminated; wiped on free */
	size_t len;
	size_t buf_size;
	cJSON *root;			/* strings wiped on free by json_secure's hooks */
	uint8_t *scratch;		/* decoded SecretBinary; wiped on free */
	const char *region;
	const char *account;
	struct sf_secret *secrets;
	size_t secret_count;
	struct table ids;		/* names, ARNs and partial ARNs (the index only) */
	bool indexed;
};

/* Copies printable ASCII (others become '?') for a message; "..." marks a cut. */
void sf_shown(char *dst, size_t dstlen, const char *src);

/*
 * Parses and validates s->buf (s->len bytes, NUL-terminated; the store owns
 * the buffer and wipes it). Returns 0, or -1 with the reason in err, which
 * names the secret, version and field.
 */
int sf_store_parse(struct sf_store *s, char *err, size_t errlen);
/*
 * Seals every value under key and drops every plaintext copy the parse made:
 * the JSON strings of values, the decoded-binary scratch and the file's bytes.
 */
int sf_store_seal(struct sf_store *s, const uint8_t *key, char *err, size_t errlen);
/* Frees what the store holds (wiping it); the struct itself is the caller's. */
void sf_store_free(struct sf_store *s);

#endif
