/*
 * json_span.h - finding a value's own text inside a JSON document.
 *
 * jansson holds every number as a double or a long long, so a value it
 * parsed and wrote back can differ from what the client sent (0.1 comes back
 * as 0.10000000000000001, 1e2 as 100.0).  Where the client's JSON is stored
 * as it is (a lead's customFields, as jsonb), the text handed to PostgreSQL
 * is the client's own: these functions find it and measure it.
 *
 * They expect a document that a strict parser has already accepted (valid
 * JSON, no duplicate keys); given anything else they return false or a
 * meaningless length, but never read outside [doc, doc + len).
 */
#ifndef TK_UTIL_JSON_SPAN_H
#define TK_UTIL_JSON_SPAN_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"
#include "util/status.h"

/* The most values a request's JSON body may hold, counted before it is
 * parsed: jansson allocates ~100 bytes per value (a 1 MiB body of "{}" took
 * 40 MB), and a lead's 16 KiB of customFields holds at most ~8,200. */
#define TK_JSON_MAX_VALUES 16384

/*
 * The text of member `name` (ASCII; keys are compared after decoding their
 * escapes) of the top-level object in doc: *value points into doc, *value_len
 * bytes long.  False when doc is not an object or has no such member.
 */
bool tk_json_member_span(const char *doc, size_t len, const char *name, const char **value,
                         size_t *value_len);

/* How many values text holds, at most: its objects, arrays and the commas
 * between members or elements, outside strings, plus one.  What a parser
 * allocates grows with it (a jansson value is ~100 bytes), not with the
 * length of a string. */
size_t tk_json_value_count(const char *text, size_t len);

/* For a body about to be parsed: TK_OK, or 413 payload_too_large when it
 * holds more than TK_JSON_MAX_VALUES values. */
tk_status tk_json_check_values(const char *text, size_t len, tk_error *err) TK_MUST_CHECK;

/* The size of text's compact form as PostgreSQL and jansson write it:
 * without whitespace between tokens, with escapes of characters that need
 * none decoded (\u00f8 is 2 bytes of UTF-8, \/ is 1), numbers as written. */
size_t tk_json_compact_length(const char *text, size_t len);

#endif
