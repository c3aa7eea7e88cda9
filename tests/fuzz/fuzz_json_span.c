/*
 * fuzz_json_span.c - libFuzzer target: finding a member's text and measuring
 * a compact length never read outside the input, whatever it holds, and a
 * span found lies inside the input.
 */
#include <stddef.h>
#include <stdint.h>

#include "util/json_span.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	const char *v = NULL;
	size_t n = 0;
	if (tk_json_member_span(s, size, "customFields", &v, &n) &&
	    (v < s || n == 0 || v + n > s + size))
		__builtin_trap();
	if (tk_json_compact_length(s, size) > size)
		__builtin_trap();
	if (tk_json_value_count(s, size) > size + 1)
		__builtin_trap();
	return 0;
}
