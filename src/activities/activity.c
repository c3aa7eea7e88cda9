/*
 * activity.c - activities API (see activity.h).
 */
#include "activities/activity.h"

#include <stdio.h>
#include <string.h>

#include "auth/context.h"
#include "http/json_body.h"
#include "leads/cursor.h"
#include "leads/lead_fields.h"
#include "util/buf.h"
#include "util/validate.h"

#define ACTIVITY_JSON                                                                              \
	"json_build_object('id', a.id, 'tenantId', a.tenant_id, 'leadId', a.lead_id, 'userId', "   \
	"a.user_id, 'type', a.type, 'body', a.body, 'occurredAt', " LEAD_SQL_TIMESTAMP(            \
	    "a.occurred_at") ", 'createdAt', " LEAD_SQL_TIMESTAMP("a.created_at") ")"

static const char *const no_params[] = {NULL};

static tk_status path_id(tk_request *req, const char *what, char id[TK_UUID_LEN + 1], tk_error *err)
{
	const char *raw = req->nroute_params > 0 ? req->route_params[0] : "";
	if (!tk_uuid_normalize(raw, strlen(raw), id))
		return tk_error_set(err, 400, "invalid_id", "id", "the %s id must be a UUID", what);
	return TK_OK;
}

static tk_status check_type(const char *type, tk_error *err)
{
	static const char *const types[] = {"note", "call", "email", "meeting"};
	for (size_t i = 0; type && i < TK_ARRAY_LEN(types); i++)
		if (!strcmp(types[i], type))
			return TK_OK;
	return type ? tk_error_invalid(err, "type", "type must be note, call, email or meeting")
	            : TK_OK;
}

tk_status activity_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                        tk_error *err)
{
	(void)app;
	static const char *const params[] = {"cursor", "limit", NULL};
	char lead[TK_UUID_LEN + 1];
	long limit = 20;
	const tk_query_param *p;
	lead_cursor c = {0};
	bool has_cursor = false;
	if (tk_request_check_params(req, params, err) != TK_OK ||
	    path_id(req, "lead", lead, err) != TK_OK)
		return TK_ERR;
	if ((p = tk_request_param(req, "limit")) && !tk_parse_int(p->value, 1, 100, &limit))
		return tk_error_set(err, 400, "invalid_parameter", "limit",
		                    "limit must be an integer from 1 to 100");
	if ((p = tk_request_param(req, "cursor")) && p->value_len > 0) {
		if (lead_cursor_decode(p->value, p->value_len, &c) != TK_OK ||
		    c.sort != LEAD_SORT_CREATED_DESC)
			return tk_error_set(err, 400, "invalid_cursor", "cursor",
			                    "cursor is not a cursor this API returned");
		has_cursor = true;
	}
	char lim[16];
	snprintf(lim, sizeof lim, "%ld", limit);
	const char *params_sql[] = {req->tenant.id, lead, lim, has_cursor ? c.key : NULL,
	                            has_cursor ? c.id : NULL};
	db_tx *tx = context_tx(req, conn);
	int ql = db_tx_add(tx, "SELECT 1 FROM leads WHERE tenant_id = $1 AND id = $2::uuid", 2,
	                   params_sql);
	int qa = db_tx_add(
	    tx,
	    "SELECT coalesce(json_agg(p.j ORDER BY p.rn) FILTER (WHERE p.rn <= $3::int), "
	    "'[]')::text,"
	    " max(p.k) FILTER (WHERE p.rn = $3::int), max(p.id::text) FILTER (WHERE p.rn = "
	    "$3::int),"
	    " count(*) > $3::int FROM (SELECT " ACTIVITY_JSON " AS j, " LEAD_SQL_TIMESTAMP(
	        "a.created_at") " AS k, a.id,"
	                        " row_number() OVER (ORDER BY a.created_at DESC, a.id DESC) AS rn"
	                        " FROM activities a WHERE a.tenant_id = $1 AND a.lead_id = $2::uuid"
	                        " AND ($4::timestamptz IS NULL OR (a.created_at, a.id) <"
	                        " ($4::timestamptz, $5::uuid))"
	                        " ORDER BY a.created_at DESC, a.id DESC LIMIT $3::int + 1) p",
	    5, params_sql);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK && PQntuples(db_tx_result(tx, ql)) == 0)
		st = tk_error_set(err, 404, "lead_not_found", NULL, "no lead with this id");
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, qa);
		tk_buf b = TK_BUF_INIT;
		tk_buf_puts(&b, "{\"data\":");
		tk_buf_append(&b, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		tk_buf_puts(&b, ",\"nextCursor\":");
		if (strcmp(PQgetvalue(r, 0, 3), "t") == 0 && !PQgetisnull(r, 0, 1)) {
			const char *next =
			    lead_cursor_encode(req->arena, LEAD_SORT_CREATED_DESC,
			                       PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
			tk_buf_json_string(&b, next, strlen(next));
		} else {
			tk_buf_puts(&b, "null");
		}
		tk_buf_putc(&b, '}');
		tk_response_json(req, res, 200, b.data, b.len);
		tk_buf_free(&b);
	}
	db_tx_clear(tx);
	return st;
}

/* Validated activity fields from a JSON body (all optional for PATCH). */
typedef struct activity_input {
	const char *type, *body, *occurred_at;
} activity_input;

static json_t *activity_body(tk_request *req, bool create, activity_input *in, tk_error *err)
{
	static const char *const fields[] = {"type", "body", "occurredAt", NULL};
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return NULL;
	memset(in, 0, sizeof *in);
	tk_status st = TK_OK;
	if (tk_json_string(req, body, "type", create, 20, &in->type, err) != TK_OK ||
	    tk_json_string(req, body, "body", false, ACTIVITY_BODY_MAX_CHARS, &in->body, err) !=
	        TK_OK ||
	    tk_json_string(req, body, "occurredAt", false, 40, &in->occurred_at, err) != TK_OK ||
	    check_type(in->type, err) != TK_OK)
		st = TK_ERR;
	else if (in->occurred_at && !tk_is_timestamp(in->occurred_at, strlen(in->occurred_at)))
		st =
		    tk_error_invalid(err, "occurredAt", "occurredAt must be an ISO 8601 date-time");
	else if (!create && json_object_size(body) == 0)
		st = tk_error_set(err, 400, "validation_error", NULL,
		                  "the body must contain at least one field to change");
	if (st != TK_OK) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static tk_status respond_activity(tk_request *req, db_conn *conn, const char *sql, int n,
                                  const char *const *p, int status, const char *missing,
                                  tk_response *res, tk_error *err)
{
	db_tx *tx = context_tx(req, conn);
	int q = db_tx_add(tx, sql, n, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) == 0)
			st = tk_error_set(err, 404, missing, NULL, "no %s with this id",
			                  strcmp(missing, "lead_not_found") ? "activity" : "lead");
		else if (status == 204)
			res->status = 204;
		else
			tk_response_json(req, res, status, PQgetvalue(r, 0, 0),
			                 (size_t)PQgetlength(r, 0, 0));
	}
	db_tx_clear(tx);
	return st;
}

tk_status activity_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err)
{
	(void)app;
	char lead[TK_UUID_LEN + 1];
	activity_input in;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_id(req, "lead", lead, err) != TK_OK)
		return TK_ERR;
	json_t *body = activity_body(req, true, &in, err);
	if (body == NULL)
		return TK_ERR;
	const char *p[] = {req->tenant.id, lead, in.type, in.body, in.occurred_at};
	/* Inserting only when the lead is visible to the caller gives a clean 404
	 * instead of an RLS violation. */
	tk_status st = respond_activity(
	    req, conn,
	    "WITH a AS (INSERT INTO activities (tenant_id, lead_id, user_id, type, body, "
	    "occurred_at)"
	    " SELECT l.tenant_id, l.id, current_app_user_id(), $3, $4,"
	    " coalesce($5::timestamptz, now()) FROM leads l WHERE l.tenant_id = $1"
	    " AND l.id = $2::uuid RETURNING *) SELECT " ACTIVITY_JSON "::text FROM a",
	    5, p, 201, "lead_not_found", res, err);
	json_decref(body);
	return st;
}

tk_status activity_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err)
{
	(void)app;
	char id[TK_UUID_LEN + 1];
	activity_input in;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_id(req, "activity", id, err) != TK_OK)
		return TK_ERR;
	json_t *body = activity_body(req, false, &in, err);
	if (body == NULL)
		return TK_ERR;
	const char *p[] = {req->tenant.id, id, in.type, in.body, in.occurred_at};
	tk_status st = respond_activity(
	    req, conn,
	    "UPDATE activities a SET type = coalesce($3, a.type), body = coalesce($4, a.body),"
	    " occurred_at = coalesce($5::timestamptz, a.occurred_at)"
	    " WHERE a.tenant_id = $1 AND a.id = $2::uuid AND a.type <> 'status_change'"
	    " RETURNING " ACTIVITY_JSON "::text",
	    5, p, 200, "activity_not_found", res, err);
	json_decref(body);
	return st;
}

tk_status activity_delete(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err)
{
	(void)app;
	char id[TK_UUID_LEN + 1];
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_id(req, "activity", id, err) != TK_OK)
		return TK_ERR;
	const char *p[] = {req->tenant.id, id};
	return respond_activity(req, conn,
	                        "DELETE FROM activities WHERE tenant_id = $1 AND id = $2::uuid"
	                        " RETURNING 1",
	                        2, p, 204, "activity_not_found", res, err);
}
