/*
 * lead_input.c - lead body validation with jansson (see lead_input.h).
 */
#include "leads/lead_input.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_span.h"
#include "util/validate.h"

typedef struct input_rule {
	const char *name; /* JSON key */
	size_t max_chars; /* for strings; 0: not a plain string */
	bool nullable;    /* may be null (clears the column on PATCH) */
} input_rule;

static const input_rule rules[LEAD_IN_COUNT] = {
    [LEAD_IN_NAME] = {"name", LEAD_NAME_MAX, false},
    [LEAD_IN_EMAIL] = {"email", LEAD_EMAIL_MAX, true},
    [LEAD_IN_PHONE] = {"phone", LEAD_PHONE_MAX, true},
    [LEAD_IN_COMPANY] = {"company", LEAD_COMPANY_MAX, true},
    [LEAD_IN_STATUS] = {"status", 0, false},
    [LEAD_IN_SOURCE] = {"source", LEAD_SOURCE_MAX, true},
    [LEAD_IN_CUSTOM_FIELDS] = {"customFields", 0, false},
    [LEAD_IN_ASSIGNED_TO] = {"assignedTo", 0, true},
};

const char *const lead_input_columns[LEAD_IN_COUNT] = {
    "name", "email", "phone", "company", "status", "source", "custom_fields", "assigned_to",
};

static const char *const statuses[] = {"NEW", "CONTACTED", "QUALIFIED", "PROPOSAL", "WON", "LOST"};

bool lead_status_is_valid(const char *s)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(statuses); i++)
		if (strcmp(statuses[i], s) == 0)
			return true;
	return false;
}

static int rule_index(const char *key)
{
	for (int i = 0; i < LEAD_IN_COUNT; i++)
		if (strcmp(rules[i].name, key) == 0)
			return i;
	return -1;
}

/* The body being checked: customFields is passed on as the client wrote
 * it (json_span.h says why). */
typedef struct body_text {
	const char *data;
	size_t len;
} body_text;

static tk_status check_value(tk_arena *arena, const body_text *body, int idx, json_t *v,
                             lead_input *out, tk_error *err)
{
	const input_rule *r = &rules[idx];
	out->present[idx] = true;
	if (json_is_null(v)) {
		if (!r->nullable)
			return tk_error_invalid(err, r->name, "%s cannot be null", r->name);
		out->value[idx] = NULL;
		return TK_OK;
	}
	if (idx == LEAD_IN_CUSTOM_FIELDS) {
		if (!json_is_object(v))
			return tk_error_invalid(err, r->name, "customFields must be a JSON object");
		const char *text;
		size_t n;
		if (!tk_json_member_span(body->data, body->len, r->name, &text, &n))
			return tk_error_invalid(err, r->name, "customFields cannot be read");
		if (tk_json_compact_length(text, n) > LEAD_CUSTOM_FIELDS_MAX_BYTES)
			return tk_error_invalid(err, r->name,
			                        "customFields must be at most %d bytes",
			                        LEAD_CUSTOM_FIELDS_MAX_BYTES);
		out->value[idx] = tk_arena_strndup(arena, text, n);
		return TK_OK;
	}
	if (!json_is_string(v))
		return tk_error_invalid(err, r->name, "%s must be a string", r->name);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	switch (idx) {
	case LEAD_IN_STATUS:
		if (!lead_status_is_valid(s))
			return tk_error_invalid(
			    err, r->name,
			    "status must be one of NEW, CONTACTED, QUALIFIED, PROPOSAL, WON, LOST");
		break;
	case LEAD_IN_ASSIGNED_TO: {
		char uuid[TK_UUID_LEN + 1];
		if (!tk_uuid_normalize(s, len, uuid))
			return tk_error_invalid(err, r->name, "assignedTo must be a UUID");
		out->value[idx] = tk_arena_strdup(arena, uuid);
		return TK_OK;
	}
	default: {
		size_t chars = tk_utf8_length(s, len);
		if (idx == LEAD_IN_NAME && chars == 0)
			return tk_error_invalid(err, r->name, "name must not be empty");
		if (chars > r->max_chars)
			return tk_error_invalid(err, r->name, "%s must be at most %zu characters",
			                        r->name, r->max_chars);
		if (idx == LEAD_IN_EMAIL && !tk_is_email(s, len))
			return tk_error_invalid(err, r->name, "email is not a valid address");
	}
	}
	out->value[idx] = tk_arena_strndup(arena, s, len);
	return TK_OK;
}

tk_status lead_input_parse(tk_arena *arena, const char *body, size_t len, bool for_update,
                           lead_input *out, tk_error *err)
{
	memset(out, 0, sizeof *out);
	if (len == 0)
		return tk_error_set(err, 400, "invalid_json", NULL, "the request body is empty");
	if (tk_json_check_values(body, len, err) != TK_OK)
		return TK_ERR;
	json_error_t jerr;
	/* Numbers as doubles: jansson refuses an integer beyond 64 bits, which
	 * customFields may hold (PostgreSQL stores it exactly, from the text). */
	json_t *root = json_loadb(
	    body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL | JSON_DECODE_ANY, &jerr);
	if (root == NULL && strstr(jerr.text, "overflow"))
		return tk_error_set(err, 400, "invalid_json", NULL,
		                    "a number in the body is too large (line %d, column %d)",
		                    jerr.line, jerr.column);
	if (root == NULL)
		return tk_error_set(err, 400, "invalid_json", NULL,
		                    "the body is not valid JSON (line %d, column %d)", jerr.line,
		                    jerr.column);
	body_text text = {body, len};
	tk_status st = TK_OK;
	if (!json_is_object(root)) {
		st = tk_error_set(err, 400, "invalid_json", NULL, "the body must be a JSON object");
		goto cleanup;
	}
	const char *key;
	json_t *value;
	json_object_foreach(root, key, value)
	{
		int idx = rule_index(key);
		if (idx < 0) {
			st = tk_error_set(err, 400, "unknown_field", key,
			                  "this field cannot be set");
			goto cleanup;
		}
		st = check_value(arena, &text, idx, value, out, err);
		if (st != TK_OK)
			goto cleanup;
	}
	if (!for_update && !out->present[LEAD_IN_NAME]) {
		st = tk_error_invalid(err, "name", "name is required");
		goto cleanup;
	}
	if (for_update) {
		bool any = false;
		for (int i = 0; i < LEAD_IN_COUNT; i++)
			any = any || out->present[i];
		if (!any)
			st = tk_error_set(err, 400, "validation_error", NULL,
			                  "the body must contain at least one field to change");
	}
cleanup:
	json_decref(root);
	return st;
}
