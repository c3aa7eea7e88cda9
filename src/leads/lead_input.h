/*
 * lead_input.h - validating a lead's JSON body (POST and PATCH).
 *
 * The body is parsed with jansson, which rejects duplicate keys, invalid
 * UTF-8, "\u0000" and over-deep nesting.  Only the writable fields are
 * accepted; any other key - including tenantId, id, version, createdAt - is
 * a 400, because the tenant comes from the key alone and the server owns
 * the rest.  Values are checked against the limits below and turned into
 * SQL parameter text (allocated in the request arena); customFields is the
 * client's own text of it (util/json_span.h), so PostgreSQL stores its
 * numbers exactly as sent, and its 16 KiB limit is on its compact form.
 */
#ifndef TK_LEADS_LEAD_INPUT_H
#define TK_LEADS_LEAD_INPUT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/arena.h"
#include "util/error.h"

#define LEAD_NAME_MAX                255
#define LEAD_EMAIL_MAX               255
#define LEAD_PHONE_MAX               50
#define LEAD_COMPANY_MAX             255
#define LEAD_SOURCE_MAX              100
#define LEAD_CUSTOM_FIELDS_MAX_BYTES (16 * 1024)

typedef enum lead_input_field {
	LEAD_IN_NAME,
	LEAD_IN_EMAIL,
	LEAD_IN_PHONE,
	LEAD_IN_COMPANY,
	LEAD_IN_STATUS,
	LEAD_IN_SOURCE,
	LEAD_IN_CUSTOM_FIELDS,
	LEAD_IN_ASSIGNED_TO,
	LEAD_IN_COUNT,
} lead_input_field;

typedef struct lead_input {
	bool present[LEAD_IN_COUNT];
	/* Parameter text; NULL with present[i] means "set to NULL". */
	const char *value[LEAD_IN_COUNT];
} lead_input;

/* The column each input field writes. */
extern const char *const lead_input_columns[LEAD_IN_COUNT];

/*
 * Parses and validates body.  for_update: PATCH semantics (every field
 * optional, at least one required, null clears optional fields).
 */
tk_status lead_input_parse(tk_arena *arena, const char *body, size_t len, bool for_update,
                           lead_input *out, tk_error *err) TK_MUST_CHECK;

/* Whether s is one of NEW, CONTACTED, QUALIFIED, PROPOSAL, WON, LOST. */
bool lead_status_is_valid(const char *s);

#endif
