/*
 * wire: bounded readers and writers over byte buffers, big-endian integers.
 * Every read checks the remaining length first; every write checks capacity
 * and latches an overflow flag instead of writing past the end. No I/O and
 * no allocation: agent and client both build messages in buffers they own
 * (the agent in locked memory when a secret value is involved).
 */
#ifndef PROTO_WIRE_H
#define PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct proto_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
};

struct proto_writer {
	uint8_t *data;
	size_t cap;
	size_t len;
	int overflow;		/* set once a write did not fit; later writes are no-ops */
	size_t frame_start;	/* offset of the frame being built (proto_message_begin) */
};

/*
 * The readers and loads are static inline: the decoders call them a dozen
 * times per message, and as out-of-line functions in a -fPIC library they
 * cannot be inlined (they could be interposed), so each was a real call.
 */
static inline void
proto_reader_init(struct proto_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
}

static inline size_t
proto_reader_remaining(const struct proto_reader *r)
{
	return r->len - r->off;
}

static inline uint16_t
proto_load_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
proto_load_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint64_t
proto_load_u64(const uint8_t *p)
{
	return ((uint64_t)proto_load_u32(p) << 32) | proto_load_u32(p + 4);
}

static inline void
proto_store_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Each read returns 0, or -1 (reader unchanged) when too few bytes remain. */

/* Points *p into the reader's buffer (no copy). */
static inline int
proto_read_bytes(struct proto_reader *r, size_t n, const uint8_t **p)
{
	if (n > proto_reader_remaining(r))
		return -1;
	*p = r->data + r->off;
	r->off += n;
	return 0;
}

static inline int
proto_read_u8(struct proto_reader *r, uint8_t *v)
{
	const uint8_t *p;

	if (proto_read_bytes(r, 1, &p) != 0)
		return -1;
	*v = p[0];
	return 0;
}

static inline int
proto_read_u16(struct proto_reader *r, uint16_t *v)
{
	const uint8_t *p;

	if (proto_read_bytes(r, 2, &p) != 0)
		return -1;
	*v = proto_load_u16(p);
	return 0;
}

static inline int
proto_read_u32(struct proto_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (proto_read_bytes(r, 4, &p) != 0)
		return -1;
	*v = proto_load_u32(p);
	return 0;
}

static inline int
proto_read_u64(struct proto_reader *r, uint64_t *v)
{
	const uint8_t *p;

	if (proto_read_bytes(r, 8, &p) != 0)
		return -1;
	*v = proto_load_u64(p);
	return 0;
}

void proto_writer_init(struct proto_writer *w, void *buf, size_t cap);
void proto_write_u8(struct proto_writer *w, uint8_t v);
void proto_write_u16(struct proto_writer *w, uint16_t v);
void proto_write_u32(struct proto_writer *w, uint32_t v);
void proto_write_u64(struct proto_writer *w, uint64_t v);
void proto_write_bytes(struct proto_writer *w, const void *p, size_t n);

#endif
