/*
 * user.c - the /v1/users API (see user.h).
 */
#include "users/user.h"

#include <sodium.h>
#include <string.h>

#include "auth/context.h"
#include "auth/password.h"
#include "http/json_body.h"
#include "util/validate.h"

static const char *const no_params[] = {NULL};

/* Admins and the integration manage users; a signed-in "user" may not. */
static tk_status require_admin(tk_request *req, tk_error *err)
{
	if (req->has_user && strcmp(req->user.role, "admin") != 0)
		return tk_error_set(err, 403, "forbidden", NULL, "only admins can manage users");
	return TK_OK;
}

static tk_status path_user_id(tk_request *req, char id[TK_UUID_LEN + 1], tk_error *err)
{
	const char *raw = req->nroute_params > 0 ? req->route_params[0] : "";
	if (!tk_uuid_normalize(raw, strlen(raw), id))
		return tk_error_set(err, 400, "invalid_id", "id", "the user id must be a UUID");
	return TK_OK;
}

static tk_status user_not_found(tk_error *err)
{
	return tk_error_set(err, 404, "user_not_found", NULL, "no user with this id");
}

static tk_status check_role(const char *role, tk_error *err)
{
	if (role && strcmp(role, "admin") && strcmp(role, "user"))
		return tk_error_invalid(err, "role", "role must be admin or user");
	return TK_OK;
}

/* Runs one statement returning one JSON text column into the response. */
static tk_status respond_one(tk_request *req, db_conn *conn, const char *sql, int n,
                             const char *const *p, int status, tk_response *res, tk_error *err)
{
	db_tx *tx = context_tx(req, conn);
	int q = db_tx_add(tx, sql, n, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
			st = user_not_found(err);
		else
			tk_response_json(req, res, status, PQgetvalue(r, 0, 0),
			                 (size_t)PQgetlength(r, 0, 0));
	}
	db_tx_clear(tx);
	return st;
}

tk_status user_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	const char *p[] = {req->tenant.id};
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    require_admin(req, err) != TK_OK)
		return TK_ERR;
	return respond_one(
	    req, conn,
	    "SELECT json_build_object('data', coalesce(json_agg(user_json(u.tenant_id,"
	    " u.id) ORDER BY u.created_at, u.id), '[]'))::text FROM users u"
	    " WHERE u.tenant_id = $1",
	    1, p, 200, res, err);
}

tk_status user_get(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	char id[TK_UUID_LEN + 1];
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    require_admin(req, err) != TK_OK || path_user_id(req, id, err) != TK_OK)
		return TK_ERR;
	const char *p[] = {req->tenant.id, id};
	return respond_one(req, conn, "SELECT user_json($1, $2::uuid)::text", 2, p, 200, res, err);
}

tk_status user_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"email", "name", "role", "password", NULL};
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    require_admin(req, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	const char *email = NULL, *name = NULL, *role = NULL, *password = NULL;
	char hash[TK_PASSWORD_HASH_MAX];
	tk_status st = TK_ERR;
	if (tk_json_string(req, body, "email", true, 255, &email, err) != TK_OK ||
	    tk_json_string(req, body, "name", true, 255, &name, err) != TK_OK ||
	    tk_json_string(req, body, "role", false, 10, &role, err) != TK_OK ||
	    tk_json_string(req, body, "password", false, TK_JSON_UNBOUNDED, &password, err) !=
	        TK_OK ||
	    check_role(role, err) != TK_OK)
		goto done;
	if (!tk_is_email(email, strlen(email))) {
		tk_error_invalid(err, "email", "email is not a valid address");
		goto done;
	}
	/* Without a password the user is invited: no password until they accept
	 * the invitation token returned here (once). */
	char invite[TK_INVITATION_TOKEN_LEN + 1] = "", invite_hash[67] = "";
	if (password && (tk_password_check(password, strlen(password), "password", err) != TK_OK ||
	                 tk_password_hash(password, strlen(password), hash, err) != TK_OK))
		goto done;
	if (!password) {
		unsigned char raw[32];
		randombytes_buf(raw, sizeof raw);
		memcpy(invite, "ti_", 3);
		sodium_bin2hex(invite + 3, 65, raw, sizeof raw);
		context_token_hash_hex(invite, TK_INVITATION_TOKEN_LEN, invite_hash);
	}
	const char *p[] = {req->tenant.id,
	                   email,
	                   name,
	                   password ? hash : NULL,
	                   role ? role : "user",
	                   password ? NULL : invite_hash,
	                   password ? NULL : invite};
	st = respond_one(
	    req, conn,
	    "WITH u AS (INSERT INTO users (tenant_id, email, name, password_hash)"
	    " VALUES ($1, $2, $3, $4) RETURNING tenant_id, id),"
	    " m AS (INSERT INTO tenant_users (tenant_id, user_id, role)"
	    " SELECT tenant_id, id, $5 FROM u RETURNING user_id),"
	    " i AS (INSERT INTO user_invitations (tenant_id, user_id, token_hash)"
	    " SELECT tenant_id, id, $6::bytea FROM u WHERE $6::text IS NOT NULL"
	    " RETURNING expires_at)"
	    " SELECT (jsonb_build_object('id', u.id, 'tenantId', u.tenant_id, 'email', $2::text,"
	    " 'name', $3::text, 'role', $5::text, 'isActive', true) || coalesce((SELECT"
	    " jsonb_build_object('invitationToken', $7::text, 'invitationExpiresAt',"
	    " to_char(i.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))"
	    " FROM i), '{}'))::text FROM u",
	    7, p, 201, res, err);
	sodium_memzero(invite, sizeof invite);
	if (st != TK_OK && err->http_status == 409 && strcmp(err->code, "conflict") == 0)
		tk_error_set(err, 409, "conflict", "email",
		             "a user with this e-mail already exists");
	sodium_memzero(hash, sizeof hash);
done:
	json_decref(body);
	return st;
}

/* PATCH semantics shared with DELETE (deactivate). */
static tk_status change_user(tk_request *req, db_conn *conn, const char *id, const char *name,
                             const char *role, const char *active, const char *hash,
                             tk_response *res, tk_error *err)
{
	const char *p[] = {req->tenant.id, id, name, role, active, hash};
	db_tx *tx = context_tx(req, conn);
	int qc = db_tx_add(tx, "SELECT user_change($1, $2::uuid, $3, $4, $5::boolean, $6)", 6, p);
	int qj = db_tx_add(tx, "SELECT user_json($1, $2::uuid)::text", 2, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		if (strcmp(PQgetvalue(db_tx_result(tx, qc), 0, 0), "t") != 0) {
			st = user_not_found(err);
		} else if (res) {
			PGresult *r = db_tx_result(tx, qj);
			tk_response_json(req, res, 200, PQgetvalue(r, 0, 0),
			                 (size_t)PQgetlength(r, 0, 0));
		}
	}
	db_tx_clear(tx);
	return st;
}

tk_status user_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"name", "role", "isActive", "password", NULL};
	char id[TK_UUID_LEN + 1];
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    require_admin(req, err) != TK_OK || path_user_id(req, id, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	const char *name = NULL, *role = NULL, *password = NULL, *active = NULL;
	char hash[TK_PASSWORD_HASH_MAX];
	json_t *a = json_object_get(body, "isActive");
	tk_status st = TK_ERR;
	if (json_object_size(body) == 0) {
		tk_error_set(err, 400, "validation_error", NULL,
		             "the body must contain at least one field to change");
		goto done;
	}
	if (tk_json_string(req, body, "name", false, 255, &name, err) != TK_OK ||
	    tk_json_string(req, body, "role", false, 10, &role, err) != TK_OK ||
	    tk_json_string(req, body, "password", false, TK_JSON_UNBOUNDED, &password, err) !=
	        TK_OK ||
	    check_role(role, err) != TK_OK)
		goto done;
	if (a && !json_is_boolean(a)) {
		tk_error_invalid(err, "isActive", "isActive must be true or false");
		goto done;
	}
	if (a)
		active = json_is_true(a) ? "t" : "f";
	if (password && (tk_password_check(password, strlen(password), "password", err) != TK_OK ||
	                 tk_password_hash(password, strlen(password), hash, err) != TK_OK))
		goto done;
	st = change_user(req, conn, id, name, role, active, password ? hash : NULL, res, err);
done:
	json_decref(body);
	return st;
}

tk_status user_deactivate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err)
{
	(void)app;
	char id[TK_UUID_LEN + 1];
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    require_admin(req, err) != TK_OK || path_user_id(req, id, err) != TK_OK ||
	    change_user(req, conn, id, NULL, NULL, "f", NULL, NULL, err) != TK_OK)
		return TK_ERR;
	res->status = 204;
	return TK_OK;
}
