/*
 * api.c - the route table: every endpoint of the API in one place.
 *
 * Literal paths come before parameterised ones on the same prefix
 * (router.h).  Adding an endpoint means adding a line here, naming the
 * plan feature it needs (the seed's @TenantSecure('lead:read') etc.).
 */
#include "http/router.h"
#include "leads/lead.h"

const tk_route tk_api_routes[] = {
    {"GET", "/v1/leads", lead_list, TK_AUTH_TENANT, false, TK_FEATURE_LEAD_READ},
    {"POST", "/v1/leads", lead_create, TK_AUTH_TENANT, true, TK_FEATURE_LEAD_CREATE},
    {"GET", "/v1/leads/stats", lead_stats, TK_AUTH_TENANT, false, TK_FEATURE_LEAD_READ},
    {"GET", "/v1/leads/:id", lead_get, TK_AUTH_TENANT, false, TK_FEATURE_LEAD_READ},
    {"PATCH", "/v1/leads/:id", lead_update, TK_AUTH_TENANT, true, TK_FEATURE_LEAD_UPDATE},
    {"DELETE", "/v1/leads/:id", lead_delete, TK_AUTH_TENANT, false, TK_FEATURE_LEAD_DELETE},
};

const size_t tk_api_nroutes = sizeof tk_api_routes / sizeof tk_api_routes[0];
