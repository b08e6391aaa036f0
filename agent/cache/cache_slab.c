/*
 * cache_slab: the cache's long-lived records (secrets, versions) packed in
 * slabs of one object size each, away from the heap.
 *
 * Why not malloc: a fetch allocates and frees many short-lived blocks (the
 * request, the answer, its JSON, the flight) around the two records it
 * keeps, so in the heap the records end up between holes those blocks leave;
 * measured with 100k cached 1 KiB versions: 6.5 MB of free heap, 50-65 bytes
 * per version, on top of malloc's 8-byte header and 16-byte rounding per
 * record. Here records of one size (rounded to 8 bytes) share a slab: no
 * header, no holes but the ones records leave for records of their size.
 *
 * A slab is SLAB_SIZE bytes, aligned to its size, so a record's slab is its
 * address rounded down; its header is at the start. Objects come from the
 * slab's free list, else from its never-used end, so pages nobody has used
 * are not touched (under mlockall(MCL_ONFAULT) not resident either). A slab
 * with room is on its size's list; an empty slab is unmapped at once, so what
 * a size no longer used held goes back (a record is made and freed around an
 * upstream call: three system calls more at a boundary cost nothing there).
 *
 * The caller passes the size to cache_slab_free() (the records know theirs),
 * so objects carry nothing. Larger objects than SLAB_MAX_OBJECT, and every
 * object when a slab cannot be mapped (RLIMIT_MEMLOCK), come from malloc:
 * cache_slab_free() tells them apart by address (a slab is in the pool's
 * sorted table). Under AddressSanitizer everything is malloc, so it still
 * sees every record's bounds.
 *
 * Not thread-safe: the cache runs in the event loop.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cache_internal.h"
#include "secmem.h"

struct slab {
	LIST_ENTRY(slab) room;		/* in pool->room[class] while it has room */
	void *free;			/* freed objects, linked through their first word */
	uint32_t bump;			/* offset of the never-used end */
	uint32_t live;			/* objects handed out */
	uint32_t size;			/* of each object */
	bool listed;			/* on its room list */
};

#define SLAB_HEADER	((sizeof(struct slab) + 15u) & ~(size_t)15u)
_Static_assert(SLAB_SIZE > SLAB_HEADER + SLAB_MAX_OBJECT, "a slab holds one object at least");

static struct slab *
slab_of(const void *p)
{
	return (struct slab *)((uintptr_t)p & ~(uintptr_t)(SLAB_SIZE - 1));
}

static size_t
slab_class(size_t n)
{
	return (n + SLAB_ALIGN - 1) / SLAB_ALIGN;
}

/* Index in pool->slabs of the first slab at or after addr. */
static size_t
slab_pos(const struct cache_slabs *pool, uintptr_t addr)
{
	size_t lo = 0, hi = pool->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uintptr_t)pool->slabs[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool
slab_owned(const struct cache_slabs *pool, const struct slab *s)
{
	size_t i = slab_pos(pool, (uintptr_t)s);

	return i < pool->count && pool->slabs[i] == s;
}

/* A new slab for objects of size bytes, on its room list; NULL if none can be mapped. */
static struct slab *
slab_new(struct cache_slabs *pool, size_t size)
{
	struct slab **grown, *s;
	uint8_t *m, *aligned;
	size_t i, head;

	if (pool->count == pool->cap) {
		size_t cap = pool->cap != 0 ? pool->cap * 2 : 16;

		if ((grown = realloc(pool->slabs, cap * sizeof(*grown))) == NULL)
			return NULL;
		pool->slabs = grown;
		pool->cap = cap;
	}
	/* Twice the size, then the unaligned ends go back. */
	m = mmap(NULL, 2 * SLAB_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	aligned = (uint8_t *)(((uintptr_t)m + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1));
	head = (size_t)(aligned - m);
	if (head > 0)
		(void)munmap(m, head);
	(void)munmap(aligned + SLAB_SIZE, SLAB_SIZE - head);
#ifdef MADV_NOHUGEPAGE
	/* With transparent huge pages "always", neighbouring slabs merged into
	 * one mapping could be backed by 2 MiB pages, resident before used. */
	(void)madvise(aligned, SLAB_SIZE, MADV_NOHUGEPAGE);
#endif
	s = (struct slab *)(void *)aligned;
	s->free = NULL;
	s->bump = SLAB_HEADER;
	s->live = 0;
	s->size = (uint32_t)size;
	s->listed = true;
	LIST_INSERT_HEAD(&pool->room[size / SLAB_ALIGN], s, room);
	i = slab_pos(pool, (uintptr_t)s);
	memmove(&pool->slabs[i + 1], &pool->slabs[i], (pool->count - i) * sizeof(*pool->slabs));
	pool->slabs[i] = s;
	pool->count++;
	pool->mapped += SLAB_SIZE;
	return s;
}

static void
slab_unmap(struct cache_slabs *pool, struct slab *s)
{
	size_t i = slab_pos(pool, (uintptr_t)s);

	memmove(&pool->slabs[i], &pool->slabs[i + 1], (pool->count - i - 1) * sizeof(*pool->slabs));
	pool->count--;
	pool->mapped -= SLAB_SIZE;
	if (s->listed)
		LIST_REMOVE(s, room);
	(void)munmap(s, SLAB_SIZE);
}

void
cache_slab_init(struct cache_slabs *pool)
{
	memset(pool, 0, sizeof(*pool));
	for (size_t i = 0; i < SLAB_CLASSES; i++)
		LIST_INIT(&pool->room[i]);
}

void
cache_slab_destroy(struct cache_slabs *pool)
{
	while (pool->count > 0)
		slab_unmap(pool, pool->slabs[pool->count - 1]);
	free(pool->slabs);
	memset(pool, 0, sizeof(*pool));
}

void *
cache_slab_alloc(struct cache_slabs *pool, size_t n)
{
	struct slab *s;
	size_t size;
	void *p;

	if (SECMEM_UNDER_ASAN || n == 0 || n > SLAB_MAX_OBJECT)
		return malloc(n);
	size = slab_class(n) * SLAB_ALIGN;
	if ((s = LIST_FIRST(&pool->room[size / SLAB_ALIGN])) == NULL &&
	    (s = slab_new(pool, size)) == NULL)
		return malloc(n);	/* no slab to be had: the heap still works */
	if ((p = s->free) != NULL) {
		memcpy(&s->free, p, sizeof(s->free));
	} else {
		p = (uint8_t *)s + s->bump;
		s->bump += (uint32_t)size;
	}
	s->live++;
	if (s->free == NULL && s->bump + size > SLAB_SIZE) {
		LIST_REMOVE(s, room);
		s->listed = false;
	}
	return p;
}

void
cache_slab_free(struct cache_slabs *pool, void *p, size_t n)
{
	struct slab *s;

	if (p == NULL)
		return;
	s = slab_of(p);
	if (SECMEM_UNDER_ASAN || n == 0 || n > SLAB_MAX_OBJECT || !slab_owned(pool, s)) {
		free(p);
		return;
	}
	memcpy(p, &s->free, sizeof(s->free));
	s->free = p;
	s->live--;
	if (!s->listed) {
		LIST_INSERT_HEAD(&pool->room[s->size / SLAB_ALIGN], s, room);
		s->listed = true;
	}
	if (s->live == 0)
		slab_unmap(pool, s);
}
