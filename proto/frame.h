/*
 * frame: the length prefix. Every frame is a 4-byte big-endian body length
 * followed by the body. This module decides, from the bytes received so far,
 * whether a whole frame is available; it does no I/O.
 */
#ifndef PROTO_FRAME_H
#define PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_FRAME_PREFIX_LEN	4
/* Largest body either side may send: a 64 KiB value plus metadata fits many times over. */
#define PROTO_FRAME_MAX_BODY	(256u * 1024u)

enum proto_frame_state {
	PROTO_FRAME_NEED_MORE = 0,	/* not enough bytes yet */
	PROTO_FRAME_READY = 1,		/* *body_len bytes of body follow the prefix */
	PROTO_FRAME_TOO_LARGE = -1,	/* declared length over max_body: boundary unusable */
	PROTO_FRAME_TOO_SMALL = -2,	/* declared length below a message header */
};

/*
 * Looks at the first `avail` bytes of a stream. READY means the prefix and
 * the whole body are present. TOO_LARGE/TOO_SMALL can be reported as soon
 * as the prefix is in, so a peer cannot make us wait for a bogus body.
 */
enum proto_frame_state proto_frame_check(const uint8_t *data, size_t avail, size_t max_body,
    size_t *body_len);

#endif
