/*
 * router.h - matching a method and path against the route table.
 *
 * Patterns are literal segments and ":name" segments, which match one
 * non-empty path segment and are handed to the handler in order as
 * req->route_params.  The first matching route wins, so literal routes go
 * before parameterised ones ("/v1/leads/stats" before "/v1/leads/:id").
 */
#ifndef TK_HTTP_ROUTER_H
#define TK_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "auth/features.h"

typedef enum tk_auth {
	TK_AUTH_NONE,            /* public (health check) */
	TK_AUTH_TENANT,          /* X-Tenant-Key; runs on the request pool as tekup_app */
	TK_AUTH_TENANT_KEY_ONLY, /* as TENANT, but a session header is ignored (sign-in) */
	TK_AUTH_OPERATOR,        /* Authorization: Bearer <operator token>; operator pool */
} tk_auth;

typedef enum tk_body {
	TK_BODY_NONE = 0,     /* a body is refused (400 body_not_allowed) */
	TK_BODY_JSON = 1,     /* application/json required (415 otherwise) */
	TK_BODY_OPTIONAL = 2, /* may be empty; when present, must be JSON */
} tk_body;

typedef struct tk_route {
	const char *method;
	const char *pattern;
	tk_handler handler;      /* NULL when tx is set */
	tk_auth auth;            /* who may call it: a tenant key, an operator token */
	tk_body body;            /* whether a JSON body is required, optional or refused */
	tk_feature feature;      /* the plan feature the tenant needs (403 otherwise) */
	const tk_tx_handler *tx; /* or: one transaction in two halves (app.h) */
} tk_route;

/*
 * Finds the route for method and path.  On no match fills err with 404
 * not_found, or 405 method_not_allowed with err->allow listing the methods
 * the path does accept (allocated in req's arena).
 */
tk_status tk_router_match(const tk_route *routes, size_t nroutes, tk_request *req,
                          const tk_route **out, tk_error *err) TK_MUST_CHECK;

/* The API's routes (api.c). */
extern const tk_route tk_api_routes[];
extern const size_t tk_api_nroutes;

#endif
