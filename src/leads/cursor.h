/*
 * cursor.h - the keyset pagination cursor codec (pure; unit-tested).
 *
 * A cursor names a position in one sort order: the sort it belongs to, the
 * last row's sort key and the last row's id.  It is opaque to clients
 * (base64url of "v1\n<sort>\n<id>\n<key>"; the key goes last because a
 * name may contain newlines), and every part is validated on
 * the way back in, so a forged cursor is just a position, never SQL.  The
 * tenant is not in the cursor: queries always filter by the caller's tenant,
 * so another tenant's cursor can only position within the caller's rows.
 */
#ifndef TK_LEADS_CURSOR_H
#define TK_LEADS_CURSOR_H

#include <stddef.h>

#include "util/arena.h"
#include "util/status.h"

/* A key is at most 255 characters of up to 4 bytes each. */
#define CURSOR_KEY_MAX 1024
/* "v1\n" + the longest sort name and "\n" + a UUID and "\n" + the longest key */
#define CURSOR_MAX_RAW     (3 + 11 + 37 + CURSOR_KEY_MAX)
#define CURSOR_MAX_ENCODED ((CURSOR_MAX_RAW * 4 + 2) / 3)

typedef enum lead_sort {
	LEAD_SORT_CREATED_ASC,
	LEAD_SORT_CREATED_DESC,
	LEAD_SORT_UPDATED_ASC,
	LEAD_SORT_UPDATED_DESC,
	LEAD_SORT_NAME_ASC,
} lead_sort;

typedef struct lead_cursor {
	lead_sort sort;
	char key[CURSOR_KEY_MAX + 1];
	char id[37];
} lead_cursor;

/* The API name of a sort ("-createdAt", ...); and back (TK_ERR if unknown). */
const char *lead_sort_name(lead_sort sort);
tk_status lead_sort_parse(const char *name, lead_sort *out) TK_MUST_CHECK;

/* Encodes into the arena. */
char *lead_cursor_encode(tk_arena *arena, lead_sort sort, const char *key, const char *id);
/* TK_ERR for anything malformed (bad base64, version, sort, key or id). */
tk_status lead_cursor_decode(const char *text, size_t len, lead_cursor *out) TK_MUST_CHECK;

#endif
