/*
 * body_pool: reusable blocks for big shared bodies (cache.h), so a hit on a
 * large secret does not cost a fresh mapping per loop pass.
 *
 * Why: main.c gives every block of 32 KiB and more its own mapping
 * (M_MMAP_THRESHOLD), so that memory of replies queued to clients that left
 * goes back to the system under mlockall. A 64 KiB secret's body was then an
 * mmap, 17 page faults (each zeroing a page) and an munmap per loop pass that
 * served it: measured at about a quarter of the agent's time for one client
 * reading a 64 KiB secret in a loop.
 *
 * The pool keeps at most BODY_POOL_BLOCKS released blocks (wiped: the caller
 * wipes what it wrote, the pool only holds memory), hands them out again by
 * size class, and frees them all once no block was taken for BODY_POOL_IDLE_MS,
 * so an idle agent holds none and the memory bound test_output_bounds.py checks
 * holds (at most BODY_POOL_BLOCKS blocks stay, and only while in use).
 * Blocks smaller than BODY_POOL_MIN are plain malloc/free.
 *
 * Single-threaded (the event loop), like the cache.
 */
#ifndef SMC_AGENT_BODY_POOL_H
#define SMC_AGENT_BODY_POOL_H

#include <stddef.h>

struct event_base;

#define BODY_POOL_MIN		(32u * 1024)	/* main.c's M_MMAP_THRESHOLD */
#define BODY_POOL_BLOCKS	8
#define BODY_POOL_IDLE_MS	1000

/* Lets the pool free idle blocks from base's loop; without it (unit tests,
 * before start-up) released blocks are freed at once. 0/-1. */
int body_pool_attach(struct event_base *base);
/* Frees every pooled block and detaches from the loop (the cache's end). */
void body_pool_detach(void);

/* A block of at least size bytes (NULL: out of memory); *cap gets its size,
 * to give back with body_pool_put(). */
void *body_pool_get(size_t size, size_t *cap);
/* Gives a block back; its contents must already be wiped. NULL is a no-op. */
void body_pool_put(void *block, size_t cap);

/* Blocks held for reuse now (for tests). */
unsigned body_pool_held(void);

#endif
