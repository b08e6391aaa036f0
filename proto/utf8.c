/*
 * utf8: well-formed UTF-8 (see utf8.h). The table of RFC 3629 section 4:
 * the lead byte says the length, and only the second byte's range differs
 * from 0x80..0xbf (E0: A0..BF, ED: 80..9F, F0: 90..BF, F4: 80..8F).
 */
#include "utf8.h"

size_t
proto_utf8_seq_len(const uint8_t *p, size_t left)
{
	uint8_t c = p[0];
	size_t n, i;

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;	/* a continuation byte, or an overlong 2-byte lead */
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
	if (n == 0 || left < n)
		return 0;
	for (i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) ||	/* overlong 3-byte */
	    (c == 0xed && p[1] >= 0xa0) ||	/* surrogates */
	    (c == 0xf0 && p[1] < 0x90) ||	/* overlong 4-byte */
	    (c == 0xf4 && p[1] >= 0x90))	/* past U+10FFFF */
		return 0;
	return n;
}

bool
proto_utf8_valid(const void *s, size_t len)
{
	const uint8_t *p = s;
	size_t n;

	while (len > 0) {
		if ((n = proto_utf8_seq_len(p, len)) == 0)
			return false;
		p += n;
		len -= n;
	}
	return true;
}
