/*
 * admin_api.c - /admin request handlers (see admin.h).
 */
#include "admin/admin.h"

#include <jansson.h>
#include <string.h>

#include "db/tx.h"
#include "http/json_body.h"
#include "tenants/provision.h"
#include "tenants/tenant_ops.h"
#include "util/buf.h"
#include "util/validate.h"

static const char *const no_params[] = {NULL};

static ops_actor actor_of(tk_request *req)
{
	ops_actor a = {req->op.id, req->op.name};
	return a;
}

/* The :id (or :keyId) path segment as a normalised UUID, or 400 invalid_id. */
static tk_status path_uuid(tk_request *req, int index, const char *field, const char **out,
                           tk_error *err)
{
	char *id = tk_arena_alloc(req->arena, TK_UUID_LEN + 1);
	const char *raw = index < req->nroute_params ? req->route_params[index] : "";
	if (!tk_uuid_normalize(raw, strlen(raw), id))
		return tk_error_set(err, 400, "invalid_id", field, "%s must be a UUID", field);
	*out = id;
	return TK_OK;
}

static tk_status respond_json(tk_request *req, tk_response *res, int status, const char *json)
{
	tk_response_json(req, res, status, json, strlen(json));
	return TK_OK;
}

tk_status admin_tenant_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                              tk_error *err)
{
	static const char *const fields[] = {
	    "name",          "plan",     "billingEmail", "adminEmail",        "adminName",
	    "adminPassword", "timezone", "locale",       "includeSampleData", NULL};
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	provision_request in = {0};
	bool sample = false;
	tk_status st = TK_ERR;
	if (tk_json_string(req, body, "name", true, 255, &in.name, err) != TK_OK ||
	    tk_json_string(req, body, "plan", false, 50, &in.plan, err) != TK_OK ||
	    tk_json_string(req, body, "billingEmail", true, 255, &in.billing_email, err) != TK_OK ||
	    tk_json_string(req, body, "adminEmail", true, 255, &in.admin_email, err) != TK_OK ||
	    tk_json_string(req, body, "adminName", true, 255, &in.admin_name, err) != TK_OK ||
	    tk_json_string(req, body, "adminPassword", true, TK_JSON_UNBOUNDED, &in.admin_password,
	                   err) != TK_OK ||
	    tk_json_string(req, body, "timezone", false, 64, &in.timezone, err) != TK_OK ||
	    tk_json_string(req, body, "locale", false, 16, &in.locale, err) != TK_OK ||
	    tk_json_bool(body, "includeSampleData", false, &sample, err) != TK_OK)
		goto done;
	in.sample_leads = sample ? PROVISION_SAMPLE_API : 0;
	provision_actor who = {req->op.id, req->op.name};
	provision_result out;
	if (provision_run(conn, req->arena, &in, app->master_key, app->cfg->dashboard_url, &who,
	                  &out, err) != TK_OK)
		goto done;
	tk_buf b = TK_BUF_INIT;
	tk_buf_printf(&b, "{\"tenantId\":\"%s\",\"apiKey\":\"%s\",\"adminUserId\":\"%s\",\"slug\":",
	              out.tenant_id, out.api_key, out.admin_user_id);
	tk_buf_json_string(&b, out.slug, strlen(out.slug));
	tk_buf_puts(&b, ",\"dashboardUrl\":");
	tk_buf_json_string(&b, out.dashboard_url, strlen(out.dashboard_url));
	tk_buf_puts(&b, "}");
	tk_response_header(req, res, "Location",
	                   tk_arena_printf(req->arena, "/admin/tenants/%s", out.tenant_id));
	tk_response_json(req, res, 201, b.data, b.len);
	tk_buf_free(&b);
	st = TK_OK;
done:
	json_decref(body);
	return st;
}

tk_status admin_tenant_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                            tk_error *err)
{
	(void)app;
	static const char *const params[] = {"status", "plan", "page", "limit", NULL};
	if (tk_request_check_params(req, params, err) != TK_OK)
		return TK_ERR;
	tenant_list_filter f = {NULL, NULL, 1, 20};
	const tk_query_param *p;
	if ((p = tk_request_param(req, "status"))) {
		if (strcmp(p->value, "active") && strcmp(p->value, "suspended") &&
		    strcmp(p->value, "archived"))
			return tk_error_set(err, 400, "invalid_parameter", "status",
			                    "status must be active, suspended or archived");
		f.status = p->value;
	}
	if ((p = tk_request_param(req, "plan"))) {
		if (p->value_len == 0 || p->value_len > 50)
			return tk_error_set(err, 400, "invalid_parameter", "plan",
			                    "plan must be 1 to 50 characters");
		f.plan = p->value;
	}
	if ((p = tk_request_param(req, "page")) && !tk_parse_int(p->value, 1, 100000, &f.page))
		return tk_error_set(err, 400, "invalid_parameter", "page",
		                    "page must be an integer from 1 to 100000");
	if ((p = tk_request_param(req, "limit")) && !tk_parse_int(p->value, 1, 100, &f.limit))
		return tk_error_set(err, 400, "invalid_parameter", "limit",
		                    "limit must be an integer from 1 to 100");
	const char *json;
	if (tenant_ops_list(conn, req->arena, &f, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_tenant_show(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                            tk_error *err)
{
	(void)app;
	const char *id, *json;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK ||
	    tenant_ops_show(conn, req->arena, id, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

/* Overrides: features map to booleans, limits to non-negative integers;
 * null removes an override. */
static tk_status check_overrides(json_t *body, const char *key, bool booleans, tk_error *err)
{
	json_t *o = json_object_get(body, key);
	if (o == NULL)
		return TK_OK;
	if (!json_is_object(o))
		return tk_error_invalid(err, key, "%s must be a JSON object", key);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		bool ok = json_is_null(v) ||
		          (booleans ? json_is_boolean(v)
		                    : json_is_integer(v) && json_integer_value(v) >= 0);
		if (!ok || strlen(k) == 0 || strlen(k) > 64)
			return tk_error_invalid(
			    err, key, "%s values must be %s (or null to remove)", key,
			    booleans ? "true or false" : "non-negative integers");
	}
	return TK_OK;
}

tk_status admin_tenant_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                              tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"name",
	                                     "billingEmail",
	                                     "plan",
	                                     "status",
	                                     "featureOverrides",
	                                     "limitOverrides",
	                                     "dataRetentionDays",
	                                     "complianceRequirements",
	                                     NULL};
	const char *id;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	tenant_update u = {0};
	long days = 0;
	bool has_days = false;
	tk_status st = TK_ERR;
	if (json_object_size(body) == 0) {
		tk_error_set(err, 400, "validation_error", NULL,
		             "the body must contain at least one field to change");
		goto done;
	}
	if (tk_json_string(req, body, "name", false, 255, &u.name, err) != TK_OK ||
	    tk_json_string(req, body, "billingEmail", false, 255, &u.billing_email, err) != TK_OK ||
	    tk_json_string(req, body, "plan", false, 50, &u.plan, err) != TK_OK ||
	    tk_json_string(req, body, "status", false, 20, &u.status, err) != TK_OK ||
	    check_overrides(body, "featureOverrides", true, err) != TK_OK ||
	    check_overrides(body, "limitOverrides", false, err) != TK_OK ||
	    tk_json_raw(req, body, "featureOverrides", JSON_OBJECT, &u.feature_overrides, err) !=
	        TK_OK ||
	    tk_json_raw(req, body, "limitOverrides", JSON_OBJECT, &u.limit_overrides, err) !=
	        TK_OK ||
	    tk_json_raw(req, body, "complianceRequirements", JSON_ARRAY, &u.compliance_requirements,
	                err) != TK_OK ||
	    tk_json_int(body, "dataRetentionDays", 1, 36500, &days, &has_days, err) != TK_OK)
		goto done;
	if (u.billing_email && !tk_is_email(u.billing_email, strlen(u.billing_email))) {
		tk_error_invalid(err, "billingEmail", "billingEmail is not a valid e-mail address");
		goto done;
	}
	if (u.status && strcmp(u.status, "active") && strcmp(u.status, "suspended") &&
	    strcmp(u.status, "archived")) {
		tk_error_invalid(err, "status", "status must be active, suspended or archived");
		goto done;
	}
	if (has_days)
		u.data_retention_days = tk_arena_printf(req->arena, "%ld", days);
	const char *json;
	if (tenant_ops_update(conn, req->arena, &(ops_actor){req->op.id, req->op.name}, id, &u,
	                      &json, err) != TK_OK)
		goto done;
	st = respond_json(req, res, 200, json);
done:
	json_decref(body);
	return st;
}

tk_status admin_key_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                         tk_error *err)
{
	(void)app;
	const char *id, *json;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK ||
	    tenant_ops_keys(conn, req->arena, id, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_key_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"name", "expiresAt", NULL};
	const char *id;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK)
		return TK_ERR;
	/* An empty body is fine here: every field is optional. */
	json_t *body = req->body.len ? tk_json_body(req, fields, err) : json_object();
	if (body == NULL)
		return TK_ERR;
	const char *name = NULL, *expires = NULL, *json;
	tk_status st = TK_ERR;
	ops_actor who = actor_of(req);
	if (tk_json_string(req, body, "name", false, 100, &name, err) != TK_OK ||
	    tk_json_string(req, body, "expiresAt", false, 40, &expires, err) != TK_OK)
		goto done;
	if (expires && !tk_is_timestamp(expires, strlen(expires))) {
		tk_error_invalid(err, "expiresAt", "expiresAt must be an ISO 8601 date-time");
		goto done;
	}
	if (tenant_ops_key_create(conn, req->arena, &who, id, name, expires, &json, err) != TK_OK)
		goto done;
	st = respond_json(req, res, 201, json);
done:
	json_decref(body);
	return st;
}

tk_status admin_key_revoke(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err)
{
	(void)app;
	const char *id, *key_id;
	ops_actor who = actor_of(req);
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK ||
	    path_uuid(req, 1, "keyId", &key_id, err) != TK_OK ||
	    tenant_ops_key_revoke(conn, req->arena, &who, id, key_id, err) != TK_OK)
		return TK_ERR;
	res->status = 204;
	return TK_OK;
}

tk_status admin_key_rotate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                           tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"graceHours", NULL};
	const char *id, *key_id, *json;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &id, err) != TK_OK ||
	    path_uuid(req, 1, "keyId", &key_id, err) != TK_OK)
		return TK_ERR;
	json_t *body = req->body.len ? tk_json_body(req, fields, err) : json_object();
	if (body == NULL)
		return TK_ERR;
	long grace = 24;
	bool has_grace;
	tk_status st = TK_ERR;
	ops_actor who = actor_of(req);
	if (tk_json_int(body, "graceHours", 0, 24 * 90, &grace, &has_grace, err) == TK_OK &&
	    tenant_ops_key_rotate(conn, req->arena, &who, id, key_id, has_grace ? grace : 24, &json,
	                          err) == TK_OK)
		st = respond_json(req, res, 201, json);
	json_decref(body);
	return st;
}

tk_status admin_tenant_migrate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                               tk_error *err)
{
	(void)app;
	static const char *const fields[] = {"targetTenantId", "includeLeads", "includeUsers",
	                                     "archiveSource", NULL};
	const char *source, *target_raw = NULL, *json;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    path_uuid(req, 0, "id", &source, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	bool leads, users, archive;
	tk_status st = TK_ERR;
	char target[TK_UUID_LEN + 1];
	ops_actor who = actor_of(req);
	if (tk_json_string(req, body, "targetTenantId", true, 64, &target_raw, err) != TK_OK ||
	    tk_json_bool(body, "includeLeads", true, &leads, err) != TK_OK ||
	    tk_json_bool(body, "includeUsers", false, &users, err) != TK_OK ||
	    tk_json_bool(body, "archiveSource", false, &archive, err) != TK_OK)
		goto done;
	if (!tk_uuid_normalize(target_raw, strlen(target_raw), target)) {
		tk_error_invalid(err, "targetTenantId", "targetTenantId must be a UUID");
		goto done;
	}
	if (!leads && !users) {
		tk_error_invalid(err, "includeLeads", "include leads, users, or both");
		goto done;
	}
	if (tenant_ops_migrate(conn, req->arena, &who, source, target, leads, users, archive, &json,
	                       err) != TK_OK)
		goto done;
	st = respond_json(req, res, 200, json);
done:
	json_decref(body);
	return st;
}

/* Body {dryRun, olderThanDays?} for the maintenance endpoints. */
static tk_status maintenance_body(tk_request *req, bool *dry_run, long *days, tk_error *err)
{
	static const char *const fields[] = {"dryRun", "olderThanDays", NULL};
	json_t *body = req->body.len ? tk_json_body(req, fields, err) : json_object();
	if (body == NULL)
		return TK_ERR;
	bool has_days;
	tk_status st = TK_OK;
	if (tk_json_bool(body, "dryRun", false, dry_run, err) != TK_OK ||
	    tk_json_int(body, "olderThanDays", 0, 36500, days, &has_days, err) != TK_OK)
		st = TK_ERR;
	json_decref(body);
	return st;
}

tk_status admin_cleanup(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                        tk_error *err)
{
	bool dry_run;
	long days = app->cfg->archive_retention_days;
	const char *json;
	ops_actor who = actor_of(req);
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    maintenance_body(req, &dry_run, &days, err) != TK_OK ||
	    tenant_ops_cleanup(conn, req->arena, &who, days, dry_run, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_retention(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err)
{
	(void)app;
	bool dry_run;
	long unused = 0;
	const char *json;
	ops_actor who = actor_of(req);
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    maintenance_body(req, &dry_run, &unused, err) != TK_OK ||
	    tenant_ops_retention(conn, req->arena, &who, dry_run, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_outbox(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	static const char *const params[] = {"status", "limit", NULL};
	const char *status = NULL, *json;
	long limit = 50;
	const tk_query_param *p;
	if (tk_request_check_params(req, params, err) != TK_OK)
		return TK_ERR;
	if ((p = tk_request_param(req, "status"))) {
		if (strcmp(p->value, "pending") && strcmp(p->value, "delivered") &&
		    strcmp(p->value, "dead"))
			return tk_error_set(err, 400, "invalid_parameter", "status",
			                    "status must be pending, delivered or dead");
		status = p->value;
	}
	if ((p = tk_request_param(req, "limit")) && !tk_parse_int(p->value, 1, 500, &limit))
		return tk_error_set(err, 400, "invalid_parameter", "limit",
		                    "limit must be an integer from 1 to 500");
	if (tenant_ops_outbox(conn, req->arena, status, limit, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_audit(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	static const char *const params[] = {"limit", NULL};
	long limit = 100;
	const tk_query_param *p;
	const char *json;
	if (tk_request_check_params(req, params, err) != TK_OK)
		return TK_ERR;
	if ((p = tk_request_param(req, "limit")) && !tk_parse_int(p->value, 1, 1000, &limit))
		return tk_error_set(err, 400, "invalid_parameter", "limit",
		                    "limit must be an integer from 1 to 1000");
	if (tenant_ops_audit(conn, req->arena, limit, &json, err) != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, json);
}

tk_status admin_health(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	db_tx *tx = db_tx_new(req->arena, conn);
	db_tx_add(tx, "SELECT 1", 0, NULL);
	tk_status st = db_tx_run(tx, err);
	db_tx_clear(tx);
	if (st != TK_OK)
		return TK_ERR;
	return respond_json(req, res, 200, "{\"status\":\"ok\"}");
}
