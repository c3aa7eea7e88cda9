/*
 * activity.h - a lead's activity history (the seed's activities table).
 *
 * An activity is visible exactly when its lead is (RLS: activities_via_lead
 * in sql/migrations/0008).  Adding one bumps the lead's lastActivityAt; a
 * lead's status change adds a status_change activity by itself (a trigger),
 * which clients cannot create.  Lists are newest first with a keyset cursor.
 */
#ifndef TK_ACTIVITIES_ACTIVITY_H
#define TK_ACTIVITIES_ACTIVITY_H

#include "app.h"

#define ACTIVITY_BODY_MAX_CHARS 10000

tk_status activity_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                        tk_error *err);
tk_status activity_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err);
tk_status activity_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err);
tk_status activity_delete(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err);

#endif
