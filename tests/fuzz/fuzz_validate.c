/*
 * fuzz_validate.c - libFuzzer target: the text validators never read past
 * the length they are given and agree with each other (an accepted e-mail
 * is valid UTF-8; a normalised UUID is a UUID).
 */
#include <stddef.h>
#include <stdint.h>

#include "util/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char uuid[TK_UUID_LEN + 1];
	if (tk_is_email(s, size) && !tk_is_utf8(s, size))
		__builtin_trap();
	if (tk_uuid_normalize(s, size, uuid) && !tk_is_uuid(uuid, TK_UUID_LEN))
		__builtin_trap();
	(void)tk_is_timestamp(s, size);
	if (tk_is_utf8(s, size) && tk_utf8_length(s, size) > size)
		__builtin_trap();
	return 0;
}
