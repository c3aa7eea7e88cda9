/*
 * lead.c - create, read, update, delete and stats for leads (see lead.h).
 */
#include "leads/lead.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "db/tx.h"
#include "leads/lead_fields.h"
#include "leads/lead_input.h"
#include "util/alloc.h"
#include "util/validate.h"

static const char *const no_params[] = {NULL};

/* The lead id from the path, or 400 invalid_id. */
static tk_status path_lead_id(tk_request *req, char id[TK_UUID_LEN + 1], tk_error *err)
{
	const char *raw = req->nroute_params > 0 ? req->route_params[0] : "";
	if (!tk_uuid_normalize(raw, strlen(raw), id))
		return tk_error_set(err, 400, "invalid_id", "id", "the lead id must be a UUID");
	return TK_OK;
}

static tk_status lead_not_found(tk_error *err)
{
	return tk_error_set(err, 404, "lead_not_found", NULL, "no lead with this id");
}

/* Returns "SELECT|RETURNING l.id, l.version, <full json>::text" tail in the arena. */
static const char *lead_returning_sql(tk_arena *arena)
{
	tk_buf b = TK_BUF_INIT;
	tk_buf_puts(&b, "l.id, l.version, ");
	lead_fields_json_sql(&b, LEAD_FIELDS_ALL);
	tk_buf_puts(&b, "::text");
	const char *s = tk_arena_strdup(arena, b.data);
	tk_buf_free(&b);
	return s;
}

/* The single-lead statements never change: built once, shared read-only by
 * every thread (rebuilding them per request was ~8% of a GET's CPU). */
static char *sql_create, *sql_get;
static pthread_once_t sql_once = PTHREAD_ONCE_INIT;

static void lead_sql_build(void)
{
	tk_arena *a = tk_arena_create();
	const char *ret = lead_returning_sql(a);
	sql_create = tk_strdup(tk_arena_printf(
	    a,
	    "INSERT INTO leads AS l (tenant_id, name, email, phone, company, status, source,"
	    " custom_fields, assigned_to, created_by)"
	    " VALUES ($1, $2, $3, $4, $5, COALESCE($6, 'NEW'), $7,"
	    " lead_custom_fields_checked($8::jsonb),"
	    " $9::uuid, current_app_user_id())"
	    " RETURNING %s",
	    ret));
	sql_get = tk_strdup(
	    tk_arena_printf(a, "SELECT %s FROM leads l WHERE l.tenant_id = $1 AND l.id = $2", ret));
	tk_arena_destroy(a);
}

const char *lead_sql_create(tk_arena *arena)
{
	(void)arena;
	pthread_once(&sql_once, lead_sql_build);
	return sql_create;
}

const char *lead_sql_get(tk_arena *arena)
{
	(void)arena;
	pthread_once(&sql_once, lead_sql_build);
	return sql_get;
}

const char lead_sql_delete[] = "DELETE FROM leads WHERE tenant_id = $1 AND id = $2";

static void respond_lead(tk_request *req, tk_response *res, int status, PGresult *r)
{
	char etag[32];
	snprintf(etag, sizeof etag, "\"%s\"", PQgetvalue(r, 0, 1));
	tk_response_header(req, res, "ETag", etag);
	tk_response_json(req, res, status, PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
}

/* Queues a statement whose parameters live in the request arena. */
static tk_status add_stmt(db_tx *tx, const char *sql, int nparams, const char *const *params,
                          tk_error *err)
{
	if (db_tx_add(tx, sql, nparams, params) < 0)
		return tk_error_set(err, 500, "internal_error", NULL, "an internal error occurred");
	return TK_OK;
}

static tk_status create_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	(void)state;
	lead_input in;
	if (tk_request_check_params(req, no_params, err) != TK_OK ||
	    lead_input_parse(req->arena, req->body.data, req->body.len, false, &in, err) != TK_OK)
		return TK_ERR;
	const char **params = tk_arena_alloc(req->arena, (1 + LEAD_IN_COUNT) * sizeof *params);
	params[0] = req->tenant.id;
	for (int i = 0; i < LEAD_IN_COUNT; i++)
		params[i + 1] = in.value[i];
	return add_stmt(tx, lead_sql_create(req->arena), 1 + LEAD_IN_COUNT, params, err);
}

static tk_status create_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                               tk_error *err)
{
	(void)state;
	(void)err;
	PGresult *r = db_tx_result(tx, 0);
	char *location = tk_arena_printf(req->arena, "/v1/leads/%s", PQgetvalue(r, 0, 0));
	tk_response_header(req, res, "Location", location);
	respond_lead(req, res, 201, r);
	return TK_OK;
}

const tk_tx_handler lead_create_tx = {create_prepare, create_render, .writes = true};

static tk_status get_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	(void)state;
	char *id = tk_arena_alloc(req->arena, TK_UUID_LEN + 1);
	if (path_lead_id(req, id, err) != TK_OK ||
	    tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	const char **params = tk_arena_alloc(req->arena, 2 * sizeof *params);
	params[0] = req->tenant.id;
	params[1] = id;
	return add_stmt(tx, lead_sql_get(req->arena), 2, params, err);
}

static tk_status get_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                            tk_error *err)
{
	(void)state;
	PGresult *r = db_tx_result(tx, 0);
	if (PQntuples(r) != 1)
		return lead_not_found(err);
	respond_lead(req, res, 200, r);
	return TK_OK;
}

const tk_tx_handler lead_get_tx = {get_prepare, get_render, .writes = false};

/* If-Match: "*", "<n>", "\"<n>\"" or W/"<n>".  Sets *version to -1 for "*"/absent. */
static tk_status parse_if_match(const char *h, long *version, tk_error *err)
{
	*version = -1;
	if (h == NULL || strcmp(h, "*") == 0)
		return TK_OK;
	char digits[24];
	size_t n = strlen(h);
	if (n >= 2 && h[0] == 'W' && h[1] == '/') {
		h += 2;
		n -= 2;
	}
	if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof digits)
		goto bad;
	memcpy(digits, h, n);
	digits[n] = '\0';
	if (!tk_parse_int(digits, 1, 2147483647L, version))
		goto bad;
	return TK_OK;
bad:
	return tk_error_set(err, 400, "invalid_if_match", "If-Match",
	                    "If-Match must be the lead's ETag, e.g. \"3\"");
}

/* PATCH's render needs to know whether the version probe was queued. */
typedef struct update_state {
	bool probed;
} update_state;

static tk_status update_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	char *id = tk_arena_alloc(req->arena, TK_UUID_LEN + 1);
	lead_input in;
	long expected_version;
	if (path_lead_id(req, id, err) != TK_OK ||
	    tk_request_check_params(req, no_params, err) != TK_OK ||
	    parse_if_match(tk_request_header(req, "If-Match"), &expected_version, err) != TK_OK ||
	    lead_input_parse(req->arena, req->body.data, req->body.len, true, &in, err) != TK_OK)
		return TK_ERR;

	/* Borrowed by tx until its results are read: in the request arena. */
	const char **params = tk_arena_alloc(req->arena, (LEAD_IN_COUNT + 3) * sizeof *params);
	params[0] = req->tenant.id;
	params[1] = id;
	int np = 2;
	tk_buf sql = TK_BUF_INIT;
	tk_buf_puts(&sql, "UPDATE leads AS l SET ");
	for (int i = 0; i < LEAD_IN_COUNT; i++) {
		if (!in.present[i])
			continue;
		params[np++] = in.value[i];
		if (i == LEAD_IN_CUSTOM_FIELDS)
			/* Shallow merge: given keys replace, null removes a key. */
			tk_buf_printf(&sql,
			              "custom_fields = lead_custom_fields_merge(l.custom_fields, "
			              "$%d::jsonb), ",
			              np);
		else if (i == LEAD_IN_ASSIGNED_TO)
			tk_buf_printf(&sql, "assigned_to = $%d::uuid, ", np);
		else
			tk_buf_printf(&sql, "%s = $%d, ", lead_input_columns[i], np);
	}
	tk_buf_puts(&sql, "version = l.version + 1, updated_at = now()"
	                  " WHERE l.tenant_id = $1 AND l.id = $2");
	if (expected_version > 0) {
		params[np++] = tk_arena_printf(req->arena, "%ld", expected_version);
		tk_buf_printf(&sql, " AND l.version = $%d", np);
	}
	tk_buf_printf(&sql, " RETURNING %s", lead_returning_sql(req->arena));

	update_state *us = tk_arena_calloc(req->arena, 1, sizeof *us);
	us->probed = expected_version > 0;
	*state = us;
	tk_status st = add_stmt(tx, tk_arena_strdup(req->arena, sql.data), np, params, err);
	tk_buf_free(&sql);
	/* Tells a lead that is not there from one at another version (412). */
	if (st == TK_OK && us->probed)
		st = add_stmt(tx, "SELECT 1 FROM leads WHERE tenant_id = $1 AND id = $2", 2, params,
		              err);
	return st;
}

static tk_status update_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                               tk_error *err)
{
	const update_state *us = state;
	PGresult *r = db_tx_result(tx, 0);
	if (PQntuples(r) == 1) {
		respond_lead(req, res, 200, r);
		return TK_OK;
	}
	if (us->probed && PQntuples(db_tx_result(tx, 1)) == 1)
		return tk_error_set(err, 412, "version_conflict", NULL,
		                    "the lead was changed since that version; fetch it again");
	return lead_not_found(err);
}

const tk_tx_handler lead_update_tx = {update_prepare, update_render, .writes = true};

static tk_status delete_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	(void)state;
	char *id = tk_arena_alloc(req->arena, TK_UUID_LEN + 1);
	if (path_lead_id(req, id, err) != TK_OK ||
	    tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	const char **params = tk_arena_alloc(req->arena, 2 * sizeof *params);
	params[0] = req->tenant.id;
	params[1] = id;
	return add_stmt(tx, lead_sql_delete, 2, params, err);
}

static tk_status delete_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                               tk_error *err)
{
	(void)req;
	(void)state;
	if (strcmp(PQcmdTuples(db_tx_result(tx, 0)), "1") != 0)
		return lead_not_found(err);
	res->status = 204;
	return TK_OK;
}

const tk_tx_handler lead_delete_tx = {delete_prepare, delete_render, .writes = true};

/*
 * avgDaysInStatus: for the leads now in a status, the mean number of days
 * since each entered it (status_changed_at, kept by a trigger), to one
 * decimal.  Every status is listed, with zeros when it has no leads.
 */
const char lead_sql_stats[] =
    "SELECT json_build_object('totalLeads', coalesce(sum(s.cnt), 0)::bigint,"
    " 'byStatus', json_object_agg(v.status, json_build_object("
    "'count', coalesce(s.cnt, 0), 'avgDaysInStatus', coalesce(s.avg_days, 0))"
    " ORDER BY v.ord))::text"
    " FROM (VALUES ('NEW', 1), ('CONTACTED', 2), ('QUALIFIED', 3), ('PROPOSAL', 4),"
    " ('WON', 5), ('LOST', 6)) AS v(status, ord)"
    " LEFT JOIN (SELECT status, count(*) AS cnt,"
    " round((avg(extract(epoch FROM now() - status_changed_at)) / 86400)::numeric, 1)"
    " AS avg_days FROM leads WHERE tenant_id = $1 GROUP BY status) s ON s.status = v.status";

static tk_status stats_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	(void)state;
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	const char **params = tk_arena_alloc(req->arena, sizeof *params);
	params[0] = req->tenant.id;
	return add_stmt(tx, lead_sql_stats, 1, params, err);
}

static tk_status stats_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                              tk_error *err)
{
	(void)state;
	(void)err;
	PGresult *r = db_tx_result(tx, 0);
	tk_response_json(req, res, 200, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	return TK_OK;
}

const tk_tx_handler lead_stats_tx = {stats_prepare, stats_render, .writes = false};
