/*
 * lead_fields.c - API field table (see lead_fields.h).
 */
#include "leads/lead_fields.h"

#include <string.h>

typedef struct lead_field {
	const char *name;
	const char *sql;
} lead_field;

static const lead_field lead_fields[LEAD_FIELD_COUNT] = {
    {"id", "l.id"},
    {"tenantId", "l.tenant_id"},
    {"name", "l.name"},
    {"email", "l.email"},
    {"phone", "l.phone"},
    {"company", "l.company"},
    {"status", "l.status"},
    {"source", "l.source"},
    {"createdAt", LEAD_SQL_TIMESTAMP("l.created_at")},
    {"updatedAt", LEAD_SQL_TIMESTAMP("l.updated_at")},
    {"createdBy", "l.created_by"},
    {"assignedTo", "l.assigned_to"},
    {"customFields", "l.custom_fields"},
    {"version", "l.version"},
    {"lastActivityAt", LEAD_SQL_TIMESTAMP("l.last_activity_at")},
};

void lead_fields_json_sql(tk_buf *sql, unsigned mask)
{
	bool first = true;
	tk_buf_puts(sql, "json_build_object(");
	for (int i = 0; i < LEAD_FIELD_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		tk_buf_printf(sql, "%s'%s', %s", first ? "" : ", ", lead_fields[i].name,
		              lead_fields[i].sql);
		first = false;
	}
	tk_buf_putc(sql, ')');
}

tk_status lead_fields_parse(const char *list, unsigned *mask, tk_error *err)
{
	*mask = 0;
	const char *p = list;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		int found = -1;
		for (int i = 0; i < LEAD_FIELD_COUNT; i++)
			if (strlen(lead_fields[i].name) == len &&
			    !strncmp(lead_fields[i].name, p, len))
				found = i;
		if (found < 0)
			return tk_error_set(err, 400, "invalid_parameter", "fields",
			                    "fields must be a comma list of lead field names");
		*mask |= 1u << found;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return TK_OK;
}
