/*
 * wire: bounded big-endian writers (see wire.h; the readers are inline there).
 */
#include <string.h>

#include "wire.h"

void
smc_writer_init(struct smc_writer *w, void *buf, size_t cap)
{
	w->data = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
	w->frame_start = 0;
}

void
smc_write_bytes(struct smc_writer *w, const void *p, size_t n)
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
smc_write_u8(struct smc_writer *w, uint8_t v)
{
	smc_write_bytes(w, &v, 1);
}

void
smc_write_u16(struct smc_writer *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	smc_write_bytes(w, b, sizeof(b));
}

void
smc_write_u32(struct smc_writer *w, uint32_t v)
{
	uint8_t b[4];

	smc_store_u32(b, v);
	smc_write_bytes(w, b, sizeof(b));
}

void
smc_write_u64(struct smc_writer *w, uint64_t v)
{
	smc_write_u32(w, (uint32_t)(v >> 32));
	smc_write_u32(w, (uint32_t)v);
}
