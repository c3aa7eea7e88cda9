/*
 * lead_list.c - GET /v1/leads: filters, sorting, field selection, and the
 * two paginations.
 *
 * page + limit: the seed's {data, pagination: {page, limit, total, pages}}.
 *   The total is counted in the same statement as the page (one round trip)
 *   but only up to LIST_TOTAL_CAP rows: an exact count of a huge result on
 *   every page is the cost the seed pays and we do not.  Above the cap,
 *   pagination.totalExact is false and total is the cap; deep scrolling
 *   belongs to the cursor.
 * cursor + limit: keyset pagination, {data, nextCursor}.  The next page
 *   starts strictly after the last row's (sort key, id), which an index on
 *   (tenant_id, key, id) serves without OFFSET at any depth.  An empty
 *   cursor ("cursor=") asks for the first page.
 *
 * The WHERE clause is assembled from fixed fragments with bound parameters;
 * client text only ever travels as a parameter.
 */
#include <stdio.h>
#include <string.h>

#include "auth/context.h"
#include "db/tx.h"
#include "leads/cursor.h"
#include "leads/lead.h"
#include "leads/lead_fields.h"
#include "leads/lead_input.h"
#include "util/validate.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX     100
#define LIST_PAGE_MAX      100000
#define LIST_TOTAL_CAP     10000
#define LIST_Q_MAX_CHARS   255

static const char *const list_params[] = {
    "status",   "source", "assignedTo", "email", "q",     "createdAfter", "createdBefore",
    "priority", "sort",   "fields",     "page",  "limit", "cursor",       NULL,
};

typedef struct sort_sql {
	const char *key_expr; /* the cursor key as text */
	const char *order;
	const char *after; /* keyset predicate; %d = key param, %d = id param */
} sort_sql;

static const sort_sql sorts[] = {
    [LEAD_SORT_CREATED_ASC] = {LEAD_SQL_TIMESTAMP("l.created_at"), "l.created_at, l.id",
                               "(l.created_at, l.id) > ($%d::timestamptz, $%d::uuid)"},
    [LEAD_SORT_CREATED_DESC] = {LEAD_SQL_TIMESTAMP("l.created_at"), "l.created_at DESC, l.id DESC",
                                "(l.created_at, l.id) < ($%d::timestamptz, $%d::uuid)"},
    [LEAD_SORT_UPDATED_ASC] = {LEAD_SQL_TIMESTAMP("l.updated_at"), "l.updated_at, l.id",
                               "(l.updated_at, l.id) > ($%d::timestamptz, $%d::uuid)"},
    [LEAD_SORT_UPDATED_DESC] = {LEAD_SQL_TIMESTAMP("l.updated_at"), "l.updated_at DESC, l.id DESC",
                                "(l.updated_at, l.id) < ($%d::timestamptz, $%d::uuid)"},
    [LEAD_SORT_NAME_ASC] = {"l.name", "l.name, l.id", "(l.name, l.id) > ($%d, $%d::uuid)"},
};

typedef struct list_query {
	tk_buf where;
	const char *params[DB_TX_MAX_PARAMS];
	int nparams;
} list_query;

static int add_param(list_query *lq, const char *value)
{
	lq->params[lq->nparams++] = value;
	return lq->nparams;
}

static tk_status bad_param(tk_error *err, const char *name, const char *message)
{
	return tk_error_set(err, 400, "invalid_parameter", name, "%s", message);
}

/* status=NEW -> l.status = $n; status=NEW,WON -> l.status = ANY($n::text[]) with
 * a validated array literal. */
static tk_status filter_status(tk_request *req, list_query *lq, const char *v, tk_error *err)
{
	tk_buf arr = TK_BUF_INIT;
	tk_buf_putc(&arr, '{');
	const char *p = v;
	tk_status st = TK_OK;
	for (int n = 0;; n++) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char one[16];
		if (len == 0 || len >= sizeof one || n >= 6) {
			st = TK_ERR;
			break;
		}
		memcpy(one, p, len);
		one[len] = '\0';
		if (!lead_status_is_valid(one)) {
			st = TK_ERR;
			break;
		}
		if (n)
			tk_buf_putc(&arr, ',');
		tk_buf_puts(&arr, one);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	tk_buf_putc(&arr, '}');
	if (st == TK_OK && strchr(v, ',') == NULL) {
		/* One status (the common case) as an equality: a generic plan
		 * cannot tell how many values an array parameter holds, so for
		 * ANY($n) it assumes most of the tenant matches and reads every
		 * entry of the narrowest tenant index; for = $n it expects one
		 * status's share and reads only those entries of
		 * idx_leads_tenant_status_created. */
		int n = add_param(lq, tk_arena_strdup(req->arena, v));
		tk_buf_printf(&lq->where, " AND l.status = $%d", n);
	} else if (st == TK_OK) {
		int n = add_param(lq, tk_arena_strdup(req->arena, arr.data));
		tk_buf_printf(&lq->where, " AND l.status = ANY($%d::text[])", n);
	} else {
		bad_param(err, "status",
		          "status must be one or more of NEW, CONTACTED, QUALIFIED, PROPOSAL, WON, "
		          "LOST, separated by commas");
	}
	tk_buf_free(&arr);
	return st;
}

/* q: case-insensitive substring; LIKE's metacharacters are escaped. */
static const char *like_pattern(tk_arena *arena, const char *q)
{
	size_t n = strlen(q);
	char *out = tk_arena_alloc(arena, n * 2 + 3);
	char *o = out;
	*o++ = '%';
	for (size_t i = 0; i < n; i++) {
		if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
			*o++ = '\\';
		*o++ = q[i];
	}
	*o++ = '%';
	*o = '\0';
	return out;
}

static tk_status build_filters(tk_request *req, list_query *lq, tk_error *err)
{
	const tk_query_param *p;
	if ((p = tk_request_param(req, "status")) && filter_status(req, lq, p->value, err) != TK_OK)
		return TK_ERR;
	if ((p = tk_request_param(req, "source"))) {
		if (p->value_len == 0 || tk_utf8_length(p->value, p->value_len) > LEAD_SOURCE_MAX)
			return bad_param(err, "source", "source must be 1 to 100 characters");
		tk_buf_printf(&lq->where, " AND l.source = $%d", add_param(lq, p->value));
	}
	if ((p = tk_request_param(req, "assignedTo"))) {
		char *uuid = tk_arena_alloc(req->arena, TK_UUID_LEN + 1);
		if (!tk_uuid_normalize(p->value, p->value_len, uuid))
			return bad_param(err, "assignedTo", "assignedTo must be a UUID");
		tk_buf_printf(&lq->where, " AND l.assigned_to = $%d::uuid", add_param(lq, uuid));
	}
	if ((p = tk_request_param(req, "email"))) {
		if (p->value_len == 0 || p->value_len > LEAD_EMAIL_MAX)
			return bad_param(err, "email", "email must be 1 to 255 characters");
		tk_buf_printf(&lq->where, " AND l.email = $%d", add_param(lq, p->value));
	}
	if ((p = tk_request_param(req, "q"))) {
		if (p->value_len == 0 || tk_utf8_length(p->value, p->value_len) > LIST_Q_MAX_CHARS)
			return bad_param(err, "q", "q must be 1 to 255 characters");
		int n = add_param(lq, like_pattern(req->arena, p->value));
		tk_buf_printf(&lq->where,
		              " AND (l.name ILIKE $%d OR l.email ILIKE $%d OR l.company ILIKE $%d)",
		              n, n, n);
	}
	if ((p = tk_request_param(req, "createdAfter"))) {
		if (!tk_is_timestamp(p->value, p->value_len))
			return bad_param(err, "createdAfter",
			                 "createdAfter must be an ISO 8601 date or date-time");
		tk_buf_printf(&lq->where, " AND l.created_at >= $%d::timestamptz",
		              add_param(lq, p->value));
	}
	if ((p = tk_request_param(req, "createdBefore"))) {
		if (!tk_is_timestamp(p->value, p->value_len))
			return bad_param(err, "createdBefore",
			                 "createdBefore must be an ISO 8601 date or date-time");
		tk_buf_printf(&lq->where, " AND l.created_at < $%d::timestamptz",
		              add_param(lq, p->value));
	}
	if ((p = tk_request_param(req, "priority"))) {
		if (p->value_len == 0 || tk_utf8_length(p->value, p->value_len) > 100)
			return bad_param(err, "priority", "priority must be 1 to 100 characters");
		tk_buf_printf(&lq->where, " AND l.custom_fields ->> 'priority' = $%d",
		              add_param(lq, p->value));
	}
	return TK_OK;
}

static tk_status parse_int_param(tk_request *req, const char *name, long min, long max, long def,
                                 long *out, tk_error *err)
{
	const tk_query_param *p = tk_request_param(req, name);
	*out = def;
	if (p == NULL)
		return TK_OK;
	if (!tk_parse_int(p->value, min, max, out))
		return tk_error_set(err, 400, "invalid_parameter", name,
		                    "%s must be an integer from %ld to %ld", name, min, max);
	return TK_OK;
}

static void plan_page(tk_request *req, list_query *lq, const char *json, lead_sort sort, long page,
                      long limit, lead_list_plan *plan)
{
	char *limit_text = tk_arena_printf(req->arena, "%ld", limit);
	char *offset_text = tk_arena_printf(req->arena, "%ld", (page - 1) * limit);
	char *page_text = tk_arena_printf(req->arena, "%ld", page);
	int pl = add_param(lq, limit_text);
	int po = add_param(lq, offset_text);
	int pp = add_param(lq, page_text);
	plan->sql = tk_arena_printf(
	    req->arena,
	    "SELECT json_build_object("
	    "'data', (SELECT coalesce(json_agg(p.j), '[]') FROM (SELECT %s AS j FROM leads l"
	    " WHERE l.tenant_id = $1%s ORDER BY %s LIMIT $%d::int OFFSET $%d::bigint) p),"
	    " 'pagination', json_build_object('page', $%d::int, 'limit', $%d::int,"
	    " 'total', least(c.n, %d), 'pages', ceil(least(c.n, %d) / $%d::numeric)::int,"
	    " 'totalExact', c.n <= %d))::text"
	    " FROM (SELECT count(*) AS n FROM (SELECT 1 FROM leads l WHERE l.tenant_id = $1%s"
	    " LIMIT %d) capped) c",
	    json, lq->where.data, sorts[sort].order, pl, po, pp, pl, LIST_TOTAL_CAP, LIST_TOTAL_CAP,
	    pl, LIST_TOTAL_CAP, lq->where.data, LIST_TOTAL_CAP + 1);
}

static tk_status plan_cursor(tk_request *req, list_query *lq, const char *json, lead_sort sort,
                             const tk_query_param *cursor, long limit, lead_list_plan *plan,
                             tk_error *err)
{
	if (cursor->value_len > 0) {
		lead_cursor c;
		if (lead_cursor_decode(cursor->value, cursor->value_len, &c) != TK_OK)
			return tk_error_set(err, 400, "invalid_cursor", "cursor",
			                    "cursor is not a cursor this API returned");
		if (c.sort != sort)
			return tk_error_set(err, 400, "invalid_cursor", "cursor",
			                    "cursor belongs to sort=%s; pass the same sort",
			                    lead_sort_name(c.sort));
		int pk = add_param(lq, tk_arena_strdup(req->arena, c.key));
		int pi = add_param(lq, tk_arena_strdup(req->arena, c.id));
		tk_buf_puts(&lq->where, " AND ");
		tk_buf_printf(&lq->where, sorts[sort].after, pk, pi);
	}
	int pl = add_param(lq, tk_arena_printf(req->arena, "%ld", limit));
	plan->sql = tk_arena_printf(
	    req->arena,
	    "SELECT coalesce(json_agg(p.j ORDER BY p.rn) FILTER (WHERE p.rn <= $%d::int), "
	    "'[]')::text,"
	    " max(p.k) FILTER (WHERE p.rn = $%d::int),"
	    " max(p.id::text) FILTER (WHERE p.rn = $%d::int),"
	    " count(*) > $%d::int"
	    " FROM (SELECT %s AS j, %s AS k, l.id, row_number() OVER (ORDER BY %s) AS rn"
	    " FROM leads l WHERE l.tenant_id = $1%s ORDER BY %s LIMIT $%d::int + 1) p",
	    pl, pl, pl, pl, json, sorts[sort].key_expr, sorts[sort].order, lq->where.data,
	    sorts[sort].order, pl);
	return TK_OK;
}

tk_status lead_list_plan_build(tk_request *req, lead_list_plan *plan, tk_error *err)
{
	list_query lq = {.where = TK_BUF_INIT};
	tk_status st = TK_ERR;
	long limit, page;
	unsigned mask = LEAD_FIELDS_ALL;
	tk_buf json = TK_BUF_INIT;
	const tk_query_param *p;
	const tk_query_param *cursor = tk_request_param(req, "cursor");

	memset(plan, 0, sizeof *plan);
	plan->sort = LEAD_SORT_CREATED_DESC;
	tk_buf_puts(&lq.where, "");
	add_param(&lq, req->tenant.id);
	if (tk_request_check_params(req, list_params, err) != TK_OK ||
	    build_filters(req, &lq, err) != TK_OK ||
	    parse_int_param(req, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &limit, err) !=
	        TK_OK ||
	    parse_int_param(req, "page", 1, LIST_PAGE_MAX, 1, &page, err) != TK_OK)
		goto cleanup;
	if ((p = tk_request_param(req, "sort")) &&
	    lead_sort_parse(p->value, &plan->sort) != TK_OK) {
		bad_param(err, "sort",
		          "sort must be createdAt, -createdAt, updatedAt, -updatedAt or name");
		goto cleanup;
	}
	if ((p = tk_request_param(req, "fields")) &&
	    lead_fields_parse(p->value, &mask, err) != TK_OK)
		goto cleanup;
	if (cursor && tk_request_param(req, "page")) {
		bad_param(err, "page", "use either page or cursor, not both");
		goto cleanup;
	}
	lead_fields_json_sql(&json, mask);
	plan->by_cursor = cursor != NULL;
	if (cursor) {
		if (plan_cursor(req, &lq, json.data, plan->sort, cursor, limit, plan, err) != TK_OK)
			goto cleanup;
	} else {
		plan_page(req, &lq, json.data, plan->sort, page, limit, plan);
	}
	memcpy(plan->params, lq.params, sizeof lq.params);
	plan->nparams = lq.nparams;
	st = TK_OK;
cleanup:
	tk_buf_free(&lq.where);
	tk_buf_free(&json);
	return st;
}

/* Cursor mode: the statement returns the page's JSON array, the last row's
 * sort key and id, and whether more rows follow; the cursor is encoded here. */
static void respond_cursor_page(tk_request *req, const lead_list_plan *plan, PGresult *r,
                                tk_response *res)
{
	tk_buf body = TK_BUF_INIT;
	tk_buf_puts(&body, "{\"data\":");
	tk_buf_append(&body, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	tk_buf_puts(&body, ",\"nextCursor\":");
	if (strcmp(PQgetvalue(r, 0, 3), "t") == 0 && !PQgetisnull(r, 0, 1)) {
		const char *next = lead_cursor_encode(req->arena, plan->sort, PQgetvalue(r, 0, 1),
		                                      PQgetvalue(r, 0, 2));
		tk_buf_json_string(&body, next, strlen(next));
	} else {
		tk_buf_puts(&body, "null");
	}
	tk_buf_putc(&body, '}');
	tk_response_json(req, res, 200, body.data, body.len);
	tk_buf_free(&body);
}

static tk_status list_prepare(tk_request *req, db_tx *tx, void **state, tk_error *err)
{
	lead_list_plan *plan = tk_arena_calloc(req->arena, 1, sizeof *plan);
	if (lead_list_plan_build(req, plan, err) != TK_OK)
		return TK_ERR;
	*state = plan;
	if (db_tx_add(tx, plan->sql, plan->nparams, plan->params) < 0)
		return tk_error_set(err, 500, "internal_error", NULL, "an internal error occurred");
	return TK_OK;
}

static tk_status list_render(tk_request *req, db_tx *tx, void *state, tk_response *res,
                             tk_error *err)
{
	(void)err;
	const lead_list_plan *plan = state;
	PGresult *r = db_tx_result(tx, 0);
	if (plan->by_cursor)
		respond_cursor_page(req, plan, r, res);
	else
		tk_response_json(req, res, 200, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	return TK_OK;
}

const tk_tx_handler lead_list_tx = {list_prepare, list_render, .writes = false};
