/*
 * api.c - the route table: every endpoint of the API in one place.
 *
 * Literal paths come before parameterised ones on the same prefix
 * (router.h).  The lead endpoints are tk_tx_handlers (app.h): the server
 * may send their transactions together with other requests'.  Adding an
 * endpoint means adding a line here, naming the plan feature it needs (the
 * seed's @TenantSecure('lead:read') etc.).
 */
#include "activities/activity.h"
#include "admin/admin.h"
#include "http/router.h"
#include "leads/lead.h"
#include "users/user.h"

const tk_route tk_api_routes[] = {
    {"GET", "/v1/leads", NULL, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_LEAD_READ, &lead_list_tx},
    {"POST", "/v1/leads", NULL, TK_AUTH_TENANT, TK_BODY_JSON, TK_FEATURE_LEAD_CREATE,
     &lead_create_tx},
    {"GET", "/v1/leads/stats", NULL, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_LEAD_READ,
     &lead_stats_tx},
    {"GET", "/v1/leads/:id", NULL, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_LEAD_READ,
     &lead_get_tx},
    {"PATCH", "/v1/leads/:id", NULL, TK_AUTH_TENANT, TK_BODY_JSON, TK_FEATURE_LEAD_UPDATE,
     &lead_update_tx},
    {"DELETE", "/v1/leads/:id", NULL, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_LEAD_DELETE,
     &lead_delete_tx},

    /* Activities of a lead (visible exactly when the lead is). */
    {"GET", "/v1/leads/:id/activities", activity_list, TK_AUTH_TENANT, TK_BODY_NONE,
     TK_FEATURE_LEAD_READ, NULL},
    {"POST", "/v1/leads/:id/activities", activity_create, TK_AUTH_TENANT, TK_BODY_JSON,
     TK_FEATURE_LEAD_UPDATE, NULL},
    {"PATCH", "/v1/activities/:id", activity_update, TK_AUTH_TENANT, TK_BODY_JSON,
     TK_FEATURE_LEAD_UPDATE, NULL},
    {"DELETE", "/v1/activities/:id", activity_delete, TK_AUTH_TENANT, TK_BODY_NONE,
     TK_FEATURE_LEAD_UPDATE, NULL},

    /* People: sign-in with the tenant key, then Authorization: Bearer ts_... */
    {"POST", "/v1/auth/login", auth_login, TK_AUTH_TENANT_KEY_ONLY, TK_BODY_JSON, TK_FEATURE_NONE,
     NULL},
    {"POST", "/v1/auth/accept-invitation", auth_accept_invitation, TK_AUTH_TENANT_KEY_ONLY,
     TK_BODY_JSON, TK_FEATURE_NONE, NULL},
    {"POST", "/v1/auth/logout", auth_logout, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
    {"GET", "/v1/me", auth_me, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
    {"GET", "/v1/users", user_list, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
    {"POST", "/v1/users", user_create, TK_AUTH_TENANT, TK_BODY_JSON, TK_FEATURE_NONE, NULL},
    {"GET", "/v1/users/:id", user_get, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
    {"PATCH", "/v1/users/:id", user_update, TK_AUTH_TENANT, TK_BODY_JSON, TK_FEATURE_NONE, NULL},
    {"DELETE", "/v1/users/:id", user_deactivate, TK_AUTH_TENANT, TK_BODY_NONE, TK_FEATURE_NONE,
     NULL},

    /* Operator API: Authorization: Bearer <operator token>. */
    {"POST", "/admin/tenants", admin_tenant_create, TK_AUTH_OPERATOR, TK_BODY_JSON, TK_FEATURE_NONE,
     NULL},
    {"GET", "/admin/tenants", admin_tenant_list, TK_AUTH_OPERATOR, TK_BODY_NONE, TK_FEATURE_NONE,
     NULL},
    {"GET", "/admin/tenants/:id", admin_tenant_show, TK_AUTH_OPERATOR, TK_BODY_NONE,
     TK_FEATURE_NONE, NULL},
    {"PATCH", "/admin/tenants/:id", admin_tenant_update, TK_AUTH_OPERATOR, TK_BODY_JSON,
     TK_FEATURE_NONE, NULL},
    {"GET", "/admin/tenants/:id/keys", admin_key_list, TK_AUTH_OPERATOR, TK_BODY_NONE,
     TK_FEATURE_NONE, NULL},
    {"POST", "/admin/tenants/:id/keys", admin_key_create, TK_AUTH_OPERATOR, TK_BODY_OPTIONAL,
     TK_FEATURE_NONE, NULL},
    {"DELETE", "/admin/tenants/:id/keys/:keyId", admin_key_revoke, TK_AUTH_OPERATOR, TK_BODY_NONE,
     TK_FEATURE_NONE, NULL},
    {"POST", "/admin/tenants/:id/keys/:keyId/rotate", admin_key_rotate, TK_AUTH_OPERATOR,
     TK_BODY_OPTIONAL, TK_FEATURE_NONE, NULL},
    {"POST", "/admin/tenants/:id/migrate", admin_tenant_migrate, TK_AUTH_OPERATOR, TK_BODY_JSON,
     TK_FEATURE_NONE, NULL},
    {"POST", "/admin/maintenance/cleanup", admin_cleanup, TK_AUTH_OPERATOR, TK_BODY_OPTIONAL,
     TK_FEATURE_NONE, NULL},
    {"POST", "/admin/maintenance/retention", admin_retention, TK_AUTH_OPERATOR, TK_BODY_OPTIONAL,
     TK_FEATURE_NONE, NULL},
    {"GET", "/admin/outbox", admin_outbox, TK_AUTH_OPERATOR, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
    {"GET", "/admin/audit", admin_audit, TK_AUTH_OPERATOR, TK_BODY_NONE, TK_FEATURE_NONE, NULL},

    /* Liveness and database reachability for load balancers; no auth. */
    {"GET", "/healthz", admin_health, TK_AUTH_NONE, TK_BODY_NONE, TK_FEATURE_NONE, NULL},
};

const size_t tk_api_nroutes = sizeof tk_api_routes / sizeof tk_api_routes[0];
