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
#include "db/tx.h"
#include "leads/cursor.h"

/* The statement GET /v1/leads runs, built from the request alone. */
typedef struct lead_list_plan {
	const char *sql; /* in the request arena */
	const char *params[DB_TX_MAX_PARAMS];
	int nparams;
	bool by_cursor;
	lead_sort sort;
} lead_list_plan;

/* Validates the list parameters and builds the statement ($1 = tenant). */
tk_status lead_list_plan_build(tk_request *req, lead_list_plan *plan, tk_error *err) TK_MUST_CHECK;

/*
 * The SQL of the single-lead endpoints (built once, static; arena unused): GET by
 * ($1 tenant, $2 id); POST with ($1 tenant, $2..$9 name, email, phone, company,
 * status, source, customFields, assignedTo); DELETE; stats ($1 tenant).
 */
const char *lead_sql_get(tk_arena *arena);
const char *lead_sql_create(tk_arena *arena);
extern const char lead_sql_delete[];
extern const char lead_sql_stats[];

/* The reads: GET /v1/leads/:id, /v1/leads/stats and /v1/leads (app.h)... */
extern const tk_tx_handler lead_get_tx;
extern const tk_tx_handler lead_stats_tx;
extern const tk_tx_handler lead_list_tx;
/* ... and the writes: POST /v1/leads, PATCH and DELETE /v1/leads/:id. */
extern const tk_tx_handler lead_create_tx;
extern const tk_tx_handler lead_update_tx;
extern const tk_tx_handler lead_delete_tx;

#endif
