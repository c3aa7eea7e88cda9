/*
 * cursor.c - keyset cursor codec (see cursor.h).
 */
#include "leads/cursor.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "util/validate.h"

static const char *const sort_names[] = {
    [LEAD_SORT_CREATED_ASC] = "createdAt", [LEAD_SORT_CREATED_DESC] = "-createdAt",
    [LEAD_SORT_UPDATED_ASC] = "updatedAt", [LEAD_SORT_UPDATED_DESC] = "-updatedAt",
    [LEAD_SORT_NAME_ASC] = "name",
};

const char *lead_sort_name(lead_sort sort)
{
	return sort_names[sort];
}

tk_status lead_sort_parse(const char *name, lead_sort *out)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(sort_names); i++)
		if (strcmp(sort_names[i], name) == 0) {
			*out = (lead_sort)i;
			return TK_OK;
		}
	return TK_ERR;
}

char *lead_cursor_encode(tk_arena *arena, lead_sort sort, const char *key, const char *id)
{
	/* The key goes last: it may contain anything, newlines included, while
	 * every part before it is fixed-form and newline-free. */
	char *raw = tk_arena_printf(arena, "v1\n%s\n%s\n%s", sort_names[sort], id, key);
	size_t rawlen = strlen(raw);
	size_t outlen = sodium_base64_encoded_len(rawlen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = tk_arena_alloc(arena, outlen);
	sodium_bin2base64(out, outlen, (const unsigned char *)raw, rawlen,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

tk_status lead_cursor_decode(const char *text, size_t len, lead_cursor *out)
{
	unsigned char raw[CURSOR_MAX_RAW + 1];
	size_t rawlen = 0;
	if (len == 0 || len > CURSOR_MAX_ENCODED ||
	    sodium_base642bin(raw, sizeof raw - 1, text, len, NULL, &rawlen, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return TK_ERR;
	raw[rawlen] = '\0';
	if (memchr(raw, '\0', rawlen) || !tk_is_utf8((const char *)raw, rawlen))
		return TK_ERR;
	/* version \n sort \n id \n key-to-the-end */
	char *parts[4];
	char *p = (char *)raw;
	for (int i = 0; i < 3; i++) {
		char *nl = strchr(p, '\n');
		if (nl == NULL)
			return TK_ERR;
		*nl = '\0';
		parts[i] = p;
		p = nl + 1;
	}
	parts[3] = p;
	if (strcmp(parts[0], "v1") != 0 || lead_sort_parse(parts[1], &out->sort) != TK_OK)
		return TK_ERR;
	if (!tk_uuid_normalize(parts[2], strlen(parts[2]), out->id))
		return TK_ERR;
	size_t keylen = strlen(parts[3]);
	if (keylen > CURSOR_KEY_MAX)
		return TK_ERR;
	if (out->sort == LEAD_SORT_NAME_ASC) {
		if (keylen == 0 || tk_utf8_length(parts[3], keylen) > 255)
			return TK_ERR;
	} else if (!tk_is_timestamp(parts[3], keylen)) {
		return TK_ERR;
	}
	memcpy(out->key, parts[3], keylen + 1);
	return TK_OK;
}
