/*
 * admin.h - the /admin operator API handlers.
 *
 * Authenticated by an operator token (operator_auth.h) and run on the
 * operator pool.  Thin: parse and validate the request, call the shared
 * operation (tenants/provision.h, tenants/tenant_ops.h), return its JSON.
 */
#ifndef TK_ADMIN_ADMIN_H
#define TK_ADMIN_ADMIN_H

#include "app.h"

tk_status admin_tenant_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                              tk_error *err);
tk_status admin_tenant_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                            tk_error *err);
tk_status admin_tenant_show(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                            tk_error *err);
tk_status admin_tenant_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                              tk_error *err);
tk_status admin_key_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                         tk_error *err);
tk_status admin_key_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err);
tk_status admin_key_revoke(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err);
tk_status admin_key_rotate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err);
tk_status admin_tenant_migrate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                               tk_error *err);
tk_status admin_cleanup(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                        tk_error *err);
tk_status admin_retention(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err);
tk_status admin_outbox(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                       tk_error *err);
tk_status admin_audit(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
/* GET /healthz: 200 when PostgreSQL answers, 503 otherwise (no auth). */
tk_status admin_health(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                       tk_error *err);

#endif
