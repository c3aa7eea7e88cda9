/*
 * fuzz_lead_input.c - libFuzzer target: a lead body (POST and PATCH) must be
 * accepted or rejected with a 400, never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>

#include "leads/lead_input.h"
#include "util/arena.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int for_update = 0; for_update < 2; for_update++) {
		tk_arena *arena = tk_arena_create();
		lead_input in;
		tk_error err = {0};
		if (lead_input_parse(arena, (const char *)data, size, for_update, &in, &err) !=
		        TK_OK &&
		    err.http_status != 400)
			__builtin_trap();
		tk_arena_destroy(arena);
	}
	return 0;
}
