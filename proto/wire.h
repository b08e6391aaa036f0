/*
 * wire: bounded readers and writers over byte buffers, big-endian integers.
 * Every read checks the remaining length first; every write checks capacity
 * and latches an overflow flag instead of writing past the end. No I/O and
 * no allocation: agent and client both build messages in buffers they own
 * (the agent in locked memory when a secret value is involved).
 */
#ifndef SMC_PROTO_WIRE_H
#define SMC_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

struct smc_reader {
	const uint8_t *data;
	size_t len;
	size_t off;
};

struct smc_writer {
	uint8_t *data;
	size_t cap;
	size_t len;
	int overflow;		/* set once a write did not fit; later writes are no-ops */
	size_t frame_start;	/* offset of the frame being built (smc_message_begin) */
};

void smc_reader_init(struct smc_reader *r, const void *data, size_t len);
size_t smc_reader_remaining(const struct smc_reader *r);

/* Each returns 0, or -1 (reader unchanged) when too few bytes remain. */
int smc_read_u8(struct smc_reader *r, uint8_t *v);
int smc_read_u16(struct smc_reader *r, uint16_t *v);
int smc_read_u32(struct smc_reader *r, uint32_t *v);
int smc_read_u64(struct smc_reader *r, uint64_t *v);
/* Points *p into the reader's buffer (no copy). */
int smc_read_bytes(struct smc_reader *r, size_t n, const uint8_t **p);

void smc_writer_init(struct smc_writer *w, void *buf, size_t cap);
void smc_write_u8(struct smc_writer *w, uint8_t v);
void smc_write_u16(struct smc_writer *w, uint16_t v);
void smc_write_u32(struct smc_writer *w, uint32_t v);
void smc_write_u64(struct smc_writer *w, uint64_t v);
void smc_write_bytes(struct smc_writer *w, const void *p, size_t n);

uint16_t smc_load_u16(const uint8_t *p);
uint32_t smc_load_u32(const uint8_t *p);
uint64_t smc_load_u64(const uint8_t *p);
void smc_store_u32(uint8_t *p, uint32_t v);

#endif
