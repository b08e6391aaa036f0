/*
 * wire: bounded big-endian readers and writers (see wire.h).
 */
#include <string.h>

#include "wire.h"

uint16_t
smc_load_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

uint32_t
smc_load_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

uint64_t
smc_load_u64(const uint8_t *p)
{
	return ((uint64_t)smc_load_u32(p) << 32) | smc_load_u32(p + 4);
}

void
smc_store_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void
smc_reader_init(struct smc_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->off = 0;
}

size_t
smc_reader_remaining(const struct smc_reader *r)
{
	return r->len - r->off;
}

int
smc_read_bytes(struct smc_reader *r, size_t n, const uint8_t **p)
{
	if (n > smc_reader_remaining(r))
		return -1;
	*p = r->data + r->off;
	r->off += n;
	return 0;
}

int
smc_read_u8(struct smc_reader *r, uint8_t *v)
{
	const uint8_t *p;

	if (smc_read_bytes(r, 1, &p) != 0)
		return -1;
	*v = p[0];
	return 0;
}

int
smc_read_u16(struct smc_reader *r, uint16_t *v)
{
	const uint8_t *p;

	if (smc_read_bytes(r, 2, &p) != 0)
		return -1;
	*v = smc_load_u16(p);
	return 0;
}

int
smc_read_u32(struct smc_reader *r, uint32_t *v)
{
	const uint8_t *p;

	if (smc_read_bytes(r, 4, &p) != 0)
		return -1;
	*v = smc_load_u32(p);
	return 0;
}

int
smc_read_u64(struct smc_reader *r, uint64_t *v)
{
	const uint8_t *p;

	if (smc_read_bytes(r, 8, &p) != 0)
		return -1;
	*v = smc_load_u64(p);
	return 0;
}

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
