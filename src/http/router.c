/*
 * router.c - path matching (see router.h).
 */
#include "http/router.h"

#include <string.h>

#include "util/buf.h"

/* Matches path against pattern; on success stores ":param" segments in req. */
static bool route_matches(const char *pattern, const char *path, tk_request *req, bool capture)
{
	const char *p = pattern;
	const char *s = path;
	int nparams = 0;
	while (*p && *s) {
		if (*p != '/' || *s != '/')
			return false;
		p++;
		s++;
		const char *pend = strchr(p, '/');
		size_t plen = pend ? (size_t)(pend - p) : strlen(p);
		const char *send = strchr(s, '/');
		size_t slen = send ? (size_t)(send - s) : strlen(s);
		if (plen > 0 && p[0] == ':') {
			if (slen == 0 || nparams >= TK_ROUTE_MAX_PARAMS)
				return false;
			if (capture)
				req->route_params[nparams] = tk_arena_strndup(req->arena, s, slen);
			nparams++;
		} else if (plen != slen || strncmp(p, s, plen) != 0) {
			return false;
		}
		p += plen;
		s += slen;
	}
	if (*p != '\0' || *s != '\0')
		return false;
	if (capture)
		req->nroute_params = nparams;
	return true;
}

tk_status tk_router_match(const tk_route *routes, size_t n, tk_request *req, const tk_route **out,
                          tk_error *err)
{
	const char *path = req->path;
	/* The first pattern that matches the path owns it, whatever the method:
	 * a literal route ("/v1/leads/stats") shadows the parameterised ones
	 * listed after it ("/v1/leads/:id"), so PATCH /v1/leads/stats is a 405,
	 * not a lead id that fails to parse. */
	const char *owner = NULL;
	for (size_t i = 0; i < n && owner == NULL; i++)
		if (route_matches(routes[i].pattern, path, req, false))
			owner = routes[i].pattern;
	if (owner == NULL)
		return tk_error_set(err, 404, "not_found", NULL, "no such endpoint");
	tk_buf allow = TK_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(owner, routes[i].pattern) != 0)
			continue;
		if (strcmp(routes[i].method, req->method) == 0) {
			bool TK_UNUSED ok = route_matches(routes[i].pattern, path, req, true);
			tk_buf_free(&allow);
			*out = &routes[i];
			return TK_OK;
		}
		if (allow.len)
			tk_buf_puts(&allow, ", ");
		tk_buf_puts(&allow, routes[i].method);
	}
	err->allow = tk_arena_strdup(req->arena, allow.data);
	tk_buf_free(&allow);
	return tk_error_set(err, 405, "method_not_allowed", NULL,
	                    "this endpoint does not accept that method");
}
