/*
 * json_body.c - strict JSON body helpers (see json_body.h).
 */
#include "http/json_body.h"

#include <stdlib.h>
#include <string.h>

#include "util/json_span.h"
#include "util/validate.h"

json_t *tk_json_body(tk_request *req, const char *const *allowed, tk_error *err)
{
	if (req->body.len == 0) {
		tk_error_set(err, 400, "invalid_json", NULL, "the request body is empty");
		return NULL;
	}
	if (tk_json_check_values(req->body.data, req->body.len, err) != TK_OK)
		return NULL;
	json_error_t jerr;
	json_t *root = json_loadb(req->body.data, req->body.len,
	                          JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (root == NULL) {
		tk_error_set(err, 400, "invalid_json", NULL,
		             "the body is not valid JSON (line %d, column %d)", jerr.line,
		             jerr.column);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		tk_error_set(err, 400, "invalid_json", NULL, "the body must be a JSON object");
		return NULL;
	}
	const char *key;
	json_t *value;
	json_object_foreach(root, key, value)
	{
		bool known = false;
		for (const char *const *a = allowed; *a; a++)
			known = known || strcmp(*a, key) == 0;
		if (!known) {
			tk_error_set(err, 400, "unknown_field", key, "this field cannot be set");
			json_decref(root);
			return NULL;
		}
	}
	return root;
}

tk_status tk_json_string(tk_request *req, json_t *obj, const char *key, bool required,
                         size_t max_chars, const char **out, tk_error *err)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return tk_error_invalid(err, key, "%s is required", key);
		return TK_OK;
	}
	if (!json_is_string(v))
		return tk_error_invalid(err, key, "%s must be a string", key);
	const char *s = json_string_value(v);
	size_t len = json_string_length(v);
	size_t chars = tk_utf8_length(s, len);
	if (chars == 0 || chars > max_chars)
		return tk_error_invalid(err, key, "%s must be 1 to %zu characters", key, max_chars);
	*out = tk_arena_strndup(req->arena, s, len);
	return TK_OK;
}

tk_status tk_json_bool(json_t *obj, const char *key, bool def, bool *out, tk_error *err)
{
	json_t *v = json_object_get(obj, key);
	*out = def;
	if (v == NULL)
		return TK_OK;
	if (!json_is_boolean(v))
		return tk_error_invalid(err, key, "%s must be true or false", key);
	*out = json_is_true(v);
	return TK_OK;
}

tk_status tk_json_int(json_t *obj, const char *key, long min, long max, long *out, bool *present,
                      tk_error *err)
{
	json_t *v = json_object_get(obj, key);
	*present = v != NULL;
	if (v == NULL)
		return TK_OK;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return tk_error_invalid(err, key, "%s must be an integer from %ld to %ld", key, min,
		                        max);
	*out = (long)json_integer_value(v);
	return TK_OK;
}

tk_status tk_json_raw(tk_request *req, json_t *obj, const char *key, json_type type,
                      const char **out, tk_error *err)
{
	json_t *v = json_object_get(obj, key);
	*out = NULL;
	if (v == NULL)
		return TK_OK;
	if (json_typeof(v) != type)
		return tk_error_invalid(err, key, "%s must be a JSON %s", key,
		                        type == JSON_OBJECT ? "object" : "array");
	char *text = json_dumps(v, JSON_COMPACT);
	if (text == NULL)
		return tk_error_invalid(err, key, "%s cannot be encoded", key);
	*out = tk_arena_strdup(req->arena, text);
	free(text);
	return TK_OK;
}
