/*
 * table: an intrusive hash table with chaining, keyed by SipHash
 * (libsodium crypto_shorthash) under a random per-table key, so local
 * clients cannot choose ids that collide on purpose. Entries embed a
 * struct table_node; callers compare their own keys along a chain.
 */
#ifndef SMC_AGENT_TABLE_H
#define SMC_AGENT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

struct table_node {
	struct table_node *next;
	uint64_t hash;
};

struct table {
	struct table_node **buckets;
	size_t mask;			/* bucket count - 1 (a power of two) */
	size_t count;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

#define table_entry(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

int table_init(struct table *t, size_t initial_buckets);
void table_destroy(struct table *t);	/* frees buckets only; entries are the caller's */

/* Hash of up to three strings (NULL allowed), unambiguous: each is length-prefixed. */
uint64_t table_hash(const struct table *t, const char *a, const char *b, const char *c);
/* Hash of one byte string, for tables keyed by a single string (no copy, no prefix);
 * not comparable with table_hash(): use one or the other for a given table. */
uint64_t table_hash_bytes(const struct table *t, const void *p, size_t len);

/* Inserts n with hash h; grows the table (best effort) to keep chains short. */
void table_insert(struct table *t, struct table_node *n, uint64_t h);
void table_remove(struct table *t, struct table_node *n);

/* The chain to search for h: walk with ->next, compare ->hash then the key. */
struct table_node *table_chain(const struct table *t, uint64_t h);

#endif
