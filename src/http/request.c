/*
 * request.c - request accessors and response builders (see request.h).
 */
#include "http/request.h"

#include <microhttpd.h>
#include <string.h>

const char *tk_request_header(tk_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const tk_query_param *tk_request_param(tk_request *req, const char *name)
{
	for (int i = 0; i < req->nquery; i++)
		if (strcmp(req->query[i].name, name) == 0)
			return &req->query[i];
	return NULL;
}

tk_status tk_request_check_params(tk_request *req, const char *const *allowed, tk_error *err)
{
	if (req->query_invalid)
		return tk_error_set(err, 400, "invalid_parameter",
		                    req->query_invalid_name[0] ? req->query_invalid_name : NULL,
		                    "%s", req->query_invalid_reason);
	for (int i = 0; i < req->nquery; i++) {
		bool known = false;
		for (const char *const *a = allowed; a && *a; a++)
			if (strcmp(*a, req->query[i].name) == 0) {
				known = true;
				break;
			}
		if (!known)
			return tk_error_set(err, 400, "unknown_parameter", req->query[i].name,
			                    "unknown query parameter");
	}
	return TK_OK;
}

void tk_response_json(tk_request *req, tk_response *res, int status, const char *json, size_t len)
{
	res->status = status;
	res->body = tk_arena_strndup(req->arena, json, len);
	res->body_len = len;
}

void tk_response_header(tk_request *req, tk_response *res, const char *name, const char *value)
{
	if (res->nheaders >= TK_RESPONSE_MAX_HEADERS)
		return;
	res->headers[res->nheaders].name = tk_arena_strdup(req->arena, name);
	res->headers[res->nheaders].value = tk_arena_strdup(req->arena, value);
	res->nheaders++;
}
