/*
 * wire: bounded big-endian writers (see wire.h; the readers are inline there).
 */
#include <string.h>

#include "wire.h"

void
proto_writer_init(struct proto_writer *w, void *buf, size_t cap)
{
	w->data = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
	w->frame_start = 0;
}

void
proto_write_bytes(struct proto_writer *w, const void *p, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = 1;
		return;
	}
	if (n > 0)
		memcpy(w->data + w->len, p, n);
	w->len += n;
}

void
proto_write_u8(struct proto_writer *w, uint8_t v)
{
	proto_write_bytes(w, &v, 1);
}

void
proto_write_u16(struct proto_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	proto_write_bytes(w, b, sizeof(b));
}

void
proto_write_u32(struct proto_writer *w, uint32_t v)
{
	uint8_t b[4];

	proto_store_u32(b, v);
	proto_write_bytes(w, b, sizeof(b));
}

void
proto_write_u64(struct proto_writer *w, uint64_t v)
{
	proto_write_u32(w, (uint32_t)(v >> 32));
	proto_write_u32(w, (uint32_t)v);
}
