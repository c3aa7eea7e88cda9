/*
 * fuzz_cursor.c - libFuzzer target: any cursor text decodes or is refused;
 * whatever decodes re-encodes to a cursor that decodes to the same thing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "leads/cursor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lead_cursor c, again;
	if (lead_cursor_decode((const char *)data, size, &c) != TK_OK)
		return 0;
	tk_arena *arena = tk_arena_create();
	const char *text = lead_cursor_encode(arena, c.sort, c.key, c.id);
	if (lead_cursor_decode(text, strlen(text), &again) != TK_OK || again.sort != c.sort ||
	    strcmp(again.key, c.key) != 0 || strcmp(again.id, c.id) != 0)
		__builtin_trap();
	tk_arena_destroy(arena);
	return 0;
}
