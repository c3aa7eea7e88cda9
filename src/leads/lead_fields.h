/*
 * lead_fields.h - the lead's API fields and how PostgreSQL renders them.
 *
 * The response JSON is built by PostgreSQL (json_build_object), so every
 * API field maps to one SQL expression over the row alias "l".  The SQL is
 * assembled only from this fixed table, never from client text: a `fields`
 * parameter selects entries by name.
 */
#ifndef TK_LEADS_LEAD_FIELDS_H
#define TK_LEADS_LEAD_FIELDS_H

#include <stdbool.h>

#include "util/buf.h"
#include "util/error.h"

#define LEAD_FIELD_COUNT 15
#define LEAD_FIELDS_ALL  ((1u << LEAD_FIELD_COUNT) - 1)

/* UTC ISO 8601 with microseconds and "Z", the API's one timestamp format. */
#define LEAD_SQL_TIMESTAMP(col)                                                                    \
	"to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Appends json_build_object(...) for the fields in mask. */
void lead_fields_json_sql(tk_buf *sql, unsigned mask);
/* Parses a comma list of field names ("fields" parameter) into a mask. */
tk_status lead_fields_parse(const char *list, unsigned *mask, tk_error *err) TK_MUST_CHECK;

#endif
