/*
 * frame: length-prefix checks (see frame.h).
 */
#include "frame.h"
#include "message.h"
#include "wire.h"

enum smc_frame_state
smc_frame_check(const uint8_t *data, size_t avail, size_t max_body, size_t *body_len)
{
	uint32_t declared;

	*body_len = 0;
	if (avail < SMC_FRAME_PREFIX_LEN)
		return SMC_FRAME_NEED_MORE;
	declared = smc_load_u32(data);
	*body_len = declared;
	if (declared > max_body)
		return SMC_FRAME_TOO_LARGE;
	if (declared < SMC_HEADER_LEN)
		return SMC_FRAME_TOO_SMALL;
	if (avail - SMC_FRAME_PREFIX_LEN < declared)
		return SMC_FRAME_NEED_MORE;
	return SMC_FRAME_READY;
}
