/*
 * lead.h - the /v1/leads handlers.
 *
 * Every statement filters on tenant_id = $1 explicitly (for the planner and
 * for Citus) on top of the RLS policies (the wall), and runs inside the
 * request transaction that set app.current_tenant (db/tx.h).
 */
#ifndef TK_LEADS_LEAD_H
#define TK_LEADS_LEAD_H

#include "app.h"

tk_status lead_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status lead_get(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status lead_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status lead_delete(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status lead_stats(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status lead_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);

#endif
