/*
 * test_utf8: the one UTF-8 validator (proto/utf8.c) against the classic
 * malformed sequences (Markus Kuhn's UTF-8 decoder stress test): stray
 * continuation bytes, overlong forms of '/' and NUL, UTF-16 surrogates,
 * code points past U+10FFFF, impossible bytes and cut sequences, next to
 * the boundaries that are well-formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

struct row {
	const char *bytes;
	size_t len;		/* of the sequence; 0: malformed */
	const char *what;
};

#define ROW(s, n, w)	{ s, n, w }

static const struct row rows[] = {
	ROW("A", 1, "ASCII"),
	ROW("\x7f", 1, "DEL, the last 1-byte"),
	ROW("\xc2\x80", 2, "U+0080, the first 2-byte"),
	ROW("\xdf\xbf", 2, "U+07FF, the last 2-byte"),
	ROW("\xe0\xa0\x80", 3, "U+0800, the first 3-byte"),
	ROW("\xed\x9f\xbf", 3, "U+D7FF, before the surrogates"),
	ROW("\xee\x80\x80", 3, "U+E000, after the surrogates"),
	ROW("\xef\xbf\xbd", 3, "U+FFFD"),
	ROW("\xef\xbf\xbf", 3, "U+FFFF"),
	ROW("\xf0\x90\x80\x80", 4, "U+10000, the first 4-byte"),
	ROW("\xf4\x8f\xbf\xbf", 4, "U+10FFFF, the last code point"),
	ROW("\x80", 0, "a lone continuation byte"),
	ROW("\xbf", 0, "a lone continuation byte"),
	ROW("\xc0\xaf", 0, "overlong '/' in 2 bytes"),
	ROW("\xc1\xbf", 0, "overlong U+007F in 2 bytes"),
	ROW("\xe0\x80\xaf", 0, "overlong '/' in 3 bytes"),
	ROW("\xe0\x9f\xbf", 0, "overlong U+07FF in 3 bytes"),
	ROW("\xf0\x80\x80\xaf", 0, "overlong '/' in 4 bytes"),
	ROW("\xf0\x8f\xbf\xbf", 0, "overlong U+FFFF in 4 bytes"),
	ROW("\xc0\x80", 0, "overlong NUL (modified UTF-8)"),
	ROW("\xed\xa0\x80", 0, "U+D800, a high surrogate"),
	ROW("\xed\xbf\xbf", 0, "U+DFFF, a low surrogate"),
	ROW("\xed\xa0\x80\xed\xb0\x80", 0, "a surrogate pair (CESU-8)"),
	ROW("\xf4\x90\x80\x80", 0, "U+110000, past the last code point"),
	ROW("\xf5\x80\x80\x80", 0, "lead byte F5"),
	ROW("\xf7\xbf\xbf\xbf", 0, "U+1FFFFF"),
	ROW("\xf8\x88\x80\x80\x80", 0, "a 5-byte form"),
	ROW("\xfc\x84\x80\x80\x80\x80", 0, "a 6-byte form"),
	ROW("\xfe", 0, "impossible byte FE"),
	ROW("\xff", 0, "impossible byte FF"),
	ROW("\xc2", 0, "a 2-byte sequence cut"),
	ROW("\xe0\xa0", 0, "a 3-byte sequence cut"),
	ROW("\xf0\x90\x80", 0, "a 4-byte sequence cut"),
	ROW("\xc2\x41", 0, "a lead byte followed by ASCII"),
	ROW("\xe2\x82\xc2\xa2", 0, "a 3-byte sequence interrupted by a lead byte"),
};

static void
test_sequences(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const uint8_t *p = (const uint8_t *)rows[i].bytes;
		size_t len = strlen(rows[i].bytes);

		if (proto_utf8_seq_len(p, len) != rows[i].len)
			fail_msg("%s: length %zu, expected %zu", rows[i].what,
			    proto_utf8_seq_len(p, len), rows[i].len);
		if (proto_utf8_valid(p, len) != (rows[i].len == len))
			fail_msg("%s: valid() disagrees", rows[i].what);
	}
}

static void
test_strings(void **state)
{
	static const char ok[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 /x";
	char buf[64];

	(void)state;
	assert_true(proto_utf8_valid("", 0));
	assert_true(proto_utf8_valid(ok, strlen(ok)));
	/* NUL is a well-formed character; callers that forbid it check for it. */
	assert_true(proto_utf8_valid("a\0b", 3));
	/* One bad byte anywhere spoils the whole. */
	for (size_t at = 0; at <= strlen(ok); at++) {
		memcpy(buf, ok, at);
		buf[at] = (char)0xff;
		memcpy(buf + at + 1, ok + at, strlen(ok) - at);
		assert_false(proto_utf8_valid(buf, strlen(ok) + 1));
	}
	/* A well-formed sequence cut by the length given. */
	assert_false(proto_utf8_valid(ok, 4));
	assert_true(proto_utf8_valid(ok, 5));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequences),
		cmocka_unit_test(test_strings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
