/*
 * utf8: the one UTF-8 validator of the project (codec, AWS JSON shapes, the
 * file backend). Well-formed means RFC 3629: no stray continuation bytes,
 * no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing past
 * U+10FFFF, no sequence cut by the end of the buffer.
 */
#ifndef PROTO_UTF8_H
#define PROTO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed sequence at p (1 to 4 bytes; left >= 1 bytes
 * readable there), or 0 when the bytes there are not one. */
size_t proto_utf8_seq_len(const uint8_t *p, size_t left);

/* Whether s[0..len) is well-formed UTF-8 (NUL bytes are; callers that
 * forbid them check for them). */
bool proto_utf8_valid(const void *s, size_t len);

#endif
