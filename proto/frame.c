/*
 * frame: length-prefix checks (see frame.h).
 */
#include "frame.h"
#include "message.h"
#include "wire.h"

enum proto_frame_state
proto_frame_check(const uint8_t *data, size_t avail, size_t max_body, size_t *body_len)
{
	uint32_t declared;

	*body_len = 0;
	if (avail < PROTO_FRAME_PREFIX_LEN)
		return PROTO_FRAME_NEED_MORE;
	declared = proto_load_u32(data);
	*body_len = declared;
	if (declared > max_body)
		return PROTO_FRAME_TOO_LARGE;
	if (declared < PROTO_HEADER_LEN)
		return PROTO_FRAME_TOO_SMALL;
	if (avail - PROTO_FRAME_PREFIX_LEN < declared)
		return PROTO_FRAME_NEED_MORE;
	return PROTO_FRAME_READY;
}
