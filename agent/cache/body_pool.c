/*
 * body_pool: reusable blocks for big shared bodies (see body_pool.h).
 */
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "body_pool.h"

#define CLASS_BYTES	(16u * 1024)	/* sizes round up to this: a 64 KiB secret's
					 * body and its neighbours share a class */

static struct {
	void *blocks[BODY_POOL_BLOCKS];
	size_t caps[BODY_POOL_BLOCKS];
	unsigned n;
	bool taken;			/* a block was handed out since the timer last looked */
	struct event *idle_ev;
} pool;

static void
pool_empty(void)
{
	while (pool.n > 0) {
		pool.n--;
		free(pool.blocks[pool.n]);
		pool.blocks[pool.n] = NULL;
	}
}

static void
idle_cb(evutil_socket_t fd, short what, void *arg)
{
	const struct timeval idle = { BODY_POOL_IDLE_MS / 1000, (BODY_POOL_IDLE_MS % 1000) * 1000 };

	(void)fd;
	(void)what;
	(void)arg;
	if (pool.taken && pool.n > 0) {
		pool.taken = false;
		evtimer_add(pool.idle_ev, &idle);
		return;
	}
	pool_empty();
}

int
body_pool_attach(struct event_base *base)
{
	body_pool_detach();
	if ((pool.idle_ev = evtimer_new(base, idle_cb, NULL)) == NULL)
		return -1;
	return 0;
}

void
body_pool_detach(void)
{
	pool_empty();
	if (pool.idle_ev != NULL) {
		event_free(pool.idle_ev);
		pool.idle_ev = NULL;
	}
}

void *
body_pool_get(size_t size, size_t *cap)
{
	size_t want;

	if (size < BODY_POOL_MIN) {
		*cap = size;
		return malloc(size);
	}
	want = (size + CLASS_BYTES - 1) / CLASS_BYTES * CLASS_BYTES;
	for (unsigned i = pool.n; i-- > 0;) {
		if (pool.caps[i] == want) {
			void *b = pool.blocks[i];

			pool.n--;
			pool.blocks[i] = pool.blocks[pool.n];
			pool.caps[i] = pool.caps[pool.n];
			pool.blocks[pool.n] = NULL;
			pool.taken = true;
			*cap = want;
			return b;
		}
	}
	*cap = want;
	return malloc(want);
}

void
body_pool_put(void *block, size_t cap)
{
	const struct timeval idle = { BODY_POOL_IDLE_MS / 1000, (BODY_POOL_IDLE_MS % 1000) * 1000 };

	if (block == NULL)
		return;
	if (cap < BODY_POOL_MIN || pool.idle_ev == NULL) {
		free(block);
		return;
	}
	if (pool.n == BODY_POOL_BLOCKS) {
		free(block);
		return;
	}
	pool.blocks[pool.n] = block;
	pool.caps[pool.n++] = cap;
	if (!event_pending(pool.idle_ev, EV_TIMEOUT, NULL)) {
		pool.taken = false;
		evtimer_add(pool.idle_ev, &idle);
	}
}

unsigned
body_pool_held(void)
{
	return pool.n;
}
