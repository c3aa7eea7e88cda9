/*
 * validate.h - pure validators for untrusted text (no allocation, no I/O).
 *
 * Unit-tested in tests/unit/test_validate.c.  Every function takes an
 * explicit length because request text may contain NUL bytes.
 */
#ifndef TK_VALIDATE_H
#define TK_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#define TK_UUID_LEN 36

/* Canonical 8-4-4-4-12 hex UUID, either case. */
bool tk_is_uuid(const char *s, size_t len);
/* Copies a valid UUID into out (37 bytes) in lower case. */
bool tk_uuid_normalize(const char *s, size_t len, char out[TK_UUID_LEN + 1]);
/* Well-formed UTF-8 without NUL bytes or overlong/surrogate sequences. */
bool tk_is_utf8(const char *s, size_t len);
/* The bytes (1-4) of the well-formed UTF-8 character s starts with; 0 for a
 * NUL, a malformed or cut-off sequence, an overlong form or a surrogate. */
size_t tk_utf8_char_length(const char *s, size_t len);
/* Number of Unicode code points in valid UTF-8. */
size_t tk_utf8_length(const char *s, size_t len);
/* True when s has a control character: C0 (U+0000-U+001F: line breaks,
 * tabs, ...), DEL, or C1 (U+0080-U+009F, e.g. NEL).  s must be valid UTF-8. */
bool tk_has_control(const char *s, size_t len);
/* A plausible e-mail address: local@domain.tld, no spaces or control bytes. */
bool tk_is_email(const char *s, size_t len);
/* Parses a base-10 integer in [min, max]; rejects signs, spaces, junk. */
bool tk_parse_int(const char *s, long min, long max, long *out);
/*
 * ISO 8601 / RFC 3339 timestamp accepted by the API (date, or date-time with
 * zone), and only one PostgreSQL's timestamptz also accepts: a real Gregorian
 * date in years 0001-9999, second 60 (a leap second) only with a zero
 * fraction, UTC offsets up to +/-15:59.
 */
bool tk_is_timestamp(const char *s, size_t len);

/* A random (version 4) UUID, lower case (uses libsodium's CSPRNG). */
void tk_uuid_v4(char out[TK_UUID_LEN + 1]);

#endif
