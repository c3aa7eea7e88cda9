/*
 * api.c - the route table: every endpoint of the API in one place.
 *
 * Literal paths come before parameterised ones on the same prefix
 * (router.h).  Adding an endpoint means adding a line here.
 */
#include "http/router.h"
#include "leads/lead.h"

const tk_route tk_api_routes[] = {
    {"GET", "/v1/leads", lead_list, true, false},
    {"POST", "/v1/leads", lead_create, true, true},
    {"GET", "/v1/leads/stats", lead_stats, true, false},
    {"GET", "/v1/leads/:id", lead_get, true, false},
    {"PATCH", "/v1/leads/:id", lead_update, true, true},
    {"DELETE", "/v1/leads/:id", lead_delete, true, false},
};

const size_t tk_api_nroutes = sizeof tk_api_routes / sizeof tk_api_routes[0];
