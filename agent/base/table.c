/*
 * table: intrusive chained hash table (see table.h).
 */
#include <stdlib.h>
#include <string.h>

#include "table.h"

int
table_init(struct table *t, size_t initial_buckets)
{
	size_t n = 16;

	while (n < initial_buckets)
		n <<= 1;
	memset(t, 0, sizeof(*t));
	if ((t->buckets = calloc(n, sizeof(*t->buckets))) == NULL)
		return -1;
	t->mask = n - 1;
	crypto_shorthash_keygen(t->key);
	return 0;
}

void
table_destroy(struct table *t)
{
	free(t->buckets);
	t->buckets = NULL;
	t->count = 0;
}

uint64_t
table_hash(const struct table *t, const char *a, const char *b, const char *c)
{
	const char *parts[3] = { a, b, c };
	unsigned char buf[512], out[crypto_shorthash_BYTES], long_out[crypto_generichash_BYTES_MIN];
	crypto_generichash_state st;
	size_t used = 0, len;
	uint64_t h;

	/* Short keys (the common case) are hashed from one stack buffer. */
	for (int i = 0; i < 3; i++) {
		len = parts[i] != NULL ? strlen(parts[i]) : 0;
		if (used + 4 + len > sizeof(buf))
			goto long_key;
		buf[used++] = (unsigned char)(len >> 24);
		buf[used++] = (unsigned char)(len >> 16);
		buf[used++] = (unsigned char)(len >> 8);
		buf[used++] = (unsigned char)len;
		if (len > 0)
			memcpy(buf + used, parts[i], len);
		used += len;
	}
	crypto_shorthash(out, buf, used, t->key);
	memcpy(&h, out, sizeof(h));
	return h;
long_key:
	/* Rare long ids: a keyed BLAKE2b over the same encoding. */
	crypto_generichash_init(&st, t->key, sizeof(t->key), sizeof(long_out));
	for (int i = 0; i < 3; i++) {
		unsigned char prefix[4];

		len = parts[i] != NULL ? strlen(parts[i]) : 0;
		prefix[0] = (unsigned char)(len >> 24);
		prefix[1] = (unsigned char)(len >> 16);
		prefix[2] = (unsigned char)(len >> 8);
		prefix[3] = (unsigned char)len;
		crypto_generichash_update(&st, prefix, sizeof(prefix));
		if (len > 0)
			crypto_generichash_update(&st, (const unsigned char *)parts[i], len);
	}
	crypto_generichash_final(&st, long_out, sizeof(long_out));
	memcpy(&h, long_out, sizeof(h));
	return h;
}

uint64_t
table_hash_bytes(const struct table *t, const void *p, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	uint64_t h;

	crypto_shorthash(out, p, len, t->key);
	memcpy(&h, out, sizeof(h));
	return h;
}

static void
table_grow(struct table *t)
{
	size_t n = (t->mask + 1) * 2;
	struct table_node **nb, *node, *next;

	if ((nb = calloc(n, sizeof(*nb))) == NULL)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i <= t->mask; i++) {
		for (node = t->buckets[i]; node != NULL; node = next) {
			next = node->next;
			node->next = nb[node->hash & (n - 1)];
			nb[node->hash & (n - 1)] = node;
		}
	}
	free(t->buckets);
	t->buckets = nb;
	t->mask = n - 1;
}

void
table_insert(struct table *t, struct table_node *n, uint64_t h)
{
	if (t->count >= t->mask + 1)
		table_grow(t);
	n->hash = h;
	n->next = t->buckets[h & t->mask];
	t->buckets[h & t->mask] = n;
	t->count++;
}

void
table_remove(struct table *t, struct table_node *n)
{
	struct table_node **pp = &t->buckets[n->hash & t->mask];

	while (*pp != NULL) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			t->count--;
			return;
		}
		pp = &(*pp)->next;
	}
}

struct table_node *
table_chain(const struct table *t, uint64_t h)
{
	return t->buckets[h & t->mask];
}
