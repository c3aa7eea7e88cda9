/*
 * request.h - one HTTP request as handlers see it, and its response.
 *
 * A tk_request and everything hanging off it live in the request's arena,
 * created when the first bytes of the request arrive and destroyed when
 * libmicrohttpd reports the request complete.  Handlers fill a tk_response
 * (status, body, extra headers); the server turns it into bytes.
 */
#ifndef TK_HTTP_REQUEST_H
#define TK_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "util/arena.h"
#include "util/buf.h"
#include "util/error.h"

/* Named limits on untrusted input (each has its own error). */
#define TK_BODY_MAX_BYTES (1024 * 1024) /* 413 payload_too_large */
/* The values in a JSON body: TK_JSON_MAX_VALUES (util/json_span.h). */
#define TK_HEADERS_MAX_BYTES     (16 * 1024) /* 431 headers_too_large */
#define TK_QUERY_MAX_PARAMS      32          /* 400 invalid_parameter */
#define TK_QUERY_VALUE_MAX_BYTES 2048        /* 400 on the parameter */
#define TK_ROUTE_MAX_PARAMS      2
#define TK_RESPONSE_MAX_HEADERS  8
#define TK_REQUEST_ID_MAX        64

typedef struct tk_query_param {
	const char *name;
	const char *value; /* "" when given without '=' */
	size_t value_len;
} tk_query_param;

typedef struct tk_tenant {
	unsigned features; /* tk_feature bits enabled for this tenant */
	char id[40];       /* validated lower-case UUID */
	char name[1024];   /* up to 255 characters of UTF-8 */
} tk_tenant;

typedef struct tk_user {
	char id[40];  /* validated lower-case UUID */
	char role[8]; /* "admin" or "user" */
	char session_id[40];
	/* Taken from the session cache, not verified yet: the request's own
	 * transaction checks it first (context_tx). */
	bool from_cache;
	unsigned char token_hash[32]; /* SHA-256 of the session token (the cache key) */
} tk_user;

typedef struct tk_operator {
	char id[40];    /* operator_tokens.id */
	char name[101]; /* the token's name, recorded as the actor in the audit */
} tk_operator;

typedef struct tk_request {
	tk_arena *arena;
	struct MHD_Connection *connection;
	const char *method;
	const char *path;
	tk_buf body;
	bool body_too_large;
	size_t body_received; /* bytes of body seen, kept or not */
	bool headers_too_large;
	bool path_refused; /* the raw path encodes a NUL or a slash (server.c) */
	char request_id[TK_REQUEST_ID_MAX + 1];
	/* The client's address, canonical text, for per-address limits: the TCP
	 * peer, or the client a trusted proxy names (http/client_addr.h). */
	char client_ip[48];
	struct timespec started;

	tk_query_param query[TK_QUERY_MAX_PARAMS];
	int nquery;
	bool query_invalid; /* too many, too long, NUL, or duplicated */
	char query_invalid_name[64];
	const char *query_invalid_reason;

	const char *route_params[TK_ROUTE_MAX_PARAMS];
	int nroute_params;

	bool has_tenant;
	tk_tenant tenant;
	bool has_user;          /* signed in; otherwise the tenant's integration */
	bool session_rechecked; /* its cached session failed; verify in full */
	tk_user user;
	bool has_operator;
	tk_operator op;

	void *coalesced; /* server.c: the request's transaction while it waits in a batch */

	const char *error_code; /* for the access log */
	int status;             /* for the access log */
} tk_request;

typedef struct tk_header {
	const char *name;
	const char *value;
} tk_header;

typedef struct tk_response {
	int status;
	const char *body; /* borrowed from the arena or static */
	size_t body_len;
	tk_header headers[TK_RESPONSE_MAX_HEADERS];
	int nheaders;
} tk_response;

/* A request header's value, or NULL (borrowed from the connection). */
const char *tk_request_header(tk_request *req, const char *name);
/* A query parameter's value, or NULL when absent (borrowed). */
const tk_query_param *tk_request_param(tk_request *req, const char *name);
/* 400 unknown_parameter naming the first parameter not in allowed (NULL-terminated). */
tk_status tk_request_check_params(tk_request *req, const char *const *allowed,
                                  tk_error *err) TK_MUST_CHECK;

/* Sets a JSON body (copied into the arena) and status. */
void tk_response_json(tk_request *req, tk_response *res, int status, const char *json, size_t len);
/* Adds a header; name and value are copied into the arena. */
void tk_response_header(tk_request *req, tk_response *res, const char *name, const char *value);

#endif
