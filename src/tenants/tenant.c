/*
 * tenant.c - listing tenants for the CLI (see tenant.h).
 */
#include "tenants/tenant.h"

#include <sodium.h>
#include <string.h>

#include "util/log.h"
#include "util/validate.h"

tk_status tenant_list(PGconn *pg, const char *status, const char *plan, FILE *out)
{
	const char *params[] = {status, plan};
	PGresult *r = PQexecParams(
	    pg,
	    "SELECT t.id, t.slug, t.status, t.subscription_plan,"
	    " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " t.name, (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id"
	    " AND k.revoked_at IS NULL)"
	    " FROM tenants t WHERE ($1::text IS NULL OR t.status = $1)"
	    " AND ($2::text IS NULL OR t.subscription_plan = $2)"
	    " ORDER BY t.created_at, t.id",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("listing tenants failed: %s", PQresultErrorMessage(r));
		PQclear(r);
		return TK_ERR;
	}
	fprintf(out, "%-36s  %-24s  %-9s  %-12s  %-20s  %4s  %s\n", "ID", "SLUG", "STATUS", "PLAN",
	        "CREATED", "KEYS", "NAME");
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(out, "%-36s  %-24s  %-9s  %-12s  %-20s  %4s  %s\n", PQgetvalue(r, i, 0),
		        PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
		        PQgetvalue(r, i, 4), PQgetvalue(r, i, 6), PQgetvalue(r, i, 5));
	fprintf(out, "%d tenant(s)\n", PQntuples(r));
	PQclear(r);
	return TK_OK;
}
