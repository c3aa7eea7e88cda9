/*
 * json_body.h - strict JSON request bodies for the smaller endpoints.
 *
 * The lead body has its own validator (leads/lead_input.c); operator
 * endpoints use these helpers: the body must be a JSON object (jansson
 * rejects duplicate keys, invalid UTF-8, "\u0000", deep nesting), every key
 * must be one the endpoint knows, and each getter checks type and size and
 * names the field in its 400.  Strings returned are copied into the arena.
 */
#ifndef TK_HTTP_JSON_BODY_H
#define TK_HTTP_JSON_BODY_H

#include <jansson.h>
#include <stdbool.h>

#include "http/request.h"

/* For strings whose own validator names a better error (passwords): the
 * body limit (1 MiB) is the only bound here. */
#define TK_JSON_UNBOUNDED ((size_t)TK_BODY_MAX_BYTES)

/* Parses req->body; NULL with 400 invalid_json / unknown_field on failure.
 * allowed is NULL-terminated.  The caller json_decref()s the result. */
json_t *tk_json_body(tk_request *req, const char *const *allowed, tk_error *err);

/* A string member: absent -> *out = NULL (400 when required); wrong type,
 * empty, or more than max_chars characters -> 400 naming key. */
tk_status tk_json_string(tk_request *req, json_t *obj, const char *key, bool required,
                         size_t max_chars, const char **out, tk_error *err) TK_MUST_CHECK;
/* A boolean member; absent -> def. */
tk_status tk_json_bool(json_t *obj, const char *key, bool def, bool *out,
                       tk_error *err) TK_MUST_CHECK;
/* An integer member in [min, max]; absent -> *present = false. */
tk_status tk_json_int(json_t *obj, const char *key, long min, long max, long *out, bool *present,
                      tk_error *err) TK_MUST_CHECK;
/* A member re-encoded as compact JSON text in the arena (NULL when absent);
 * type is JSON_OBJECT or JSON_ARRAY. */
tk_status tk_json_raw(tk_request *req, json_t *obj, const char *key, json_type type,
                      const char **out, tk_error *err) TK_MUST_CHECK;

#endif
