/*
 * tenant.c - tenant provisioning (see tenant.h).
 */
#include "tenants/tenant.h"

#include <sodium.h>
#include <string.h>

#include "util/log.h"
#include "util/validate.h"

static const char create_sql[] =
    "WITH p AS (SELECT name, features, limits FROM plans WHERE name = $2),"
    " t AS (INSERT INTO tenants (name, slug, subscription_plan, enabled_features,"
    " resource_limits, encryption_key_id)"
    " SELECT $1::text, make_tenant_slug($1::text), p.name, p.features, p.limits,"
    " 'tdk_' || replace(gen_random_uuid()::text, '-', '') FROM p RETURNING id, slug),"
    " k AS (INSERT INTO api_keys (tenant_id, key_hash, prefix, name)"
    " SELECT id, $3::bytea, $4, 'default' FROM t),"
    " s AS (INSERT INTO tenant_settings (tenant_id) SELECT id FROM t)"
    " SELECT id, slug FROM t";

/* Realistic demo leads: the n-th gets a name, company, status and source. */
static const char sample_sql[] =
    "INSERT INTO leads (tenant_id, name, email, phone, company, status, source, custom_fields,"
    " created_at, updated_at, status_changed_at)"
    " SELECT $1::uuid, f.first || ' ' || f.last,"
    " lower(f.first || '.' || f.last || '@' || f.domain), '+45 ' || (20000000 + g * 7919)::text,"
    " f.company, (ARRAY['NEW','CONTACTED','QUALIFIED','PROPOSAL','WON','LOST'])[1 + g % 6],"
    " (ARRAY['website','referral','linkedin','event'])[1 + g % 4],"
    " jsonb_build_object('priority', (ARRAY['high','medium','low'])[1 + g % 3]),"
    " now() - (g || ' days')::interval, now() - (g || ' days')::interval,"
    " now() - (g || ' days')::interval"
    " FROM generate_series(1, $2::int) g"
    " CROSS JOIN LATERAL (SELECT (ARRAY['Anna','Lars','Mette','Jonas','Sofie','Emil'])[1 + g % 6] "
    "AS first,"
    " (ARRAY['Hansen','Nielsen','Jensen','Pedersen','Larsen'])[1 + g % 5] AS last,"
    " (ARRAY['Nordic Logistics','Fjord Foods','Aarhus Analytics','Copenhagen Cloud'])[1 + g % 4]"
    " AS company, (ARRAY['example.com','example.org','example.net'])[1 + g % 3] AS domain) f";

static bool exec_command(PGconn *pg, const char *sql)
{
	PGresult *r = PQexec(pg, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		log_error("%s failed: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return ok;
}

tk_status tenant_create(PGconn *pg, const char *name, const char *plan, int sample_leads,
                        tenant_created *out)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || !tk_is_utf8(name, nlen) || tk_utf8_length(name, nlen) > 255) {
		log_error("--name must be 1 to 255 characters of UTF-8 text");
		return TK_ERR;
	}
	unsigned char hash[TK_APIKEY_HASH_LEN];
	char hash_hex[67];
	char prefix[TK_APIKEY_PREFIX_LEN + 1];
	tk_apikey_generate(out->api_key);
	tk_apikey_hash(out->api_key, TK_APIKEY_LEN, hash);
	tk_apikey_hash_hex(hash, hash_hex);
	memcpy(prefix, out->api_key, TK_APIKEY_PREFIX_LEN);
	prefix[TK_APIKEY_PREFIX_LEN] = '\0';

	if (!exec_command(pg, "BEGIN"))
		return TK_ERR;
	const char *params[] = {name, plan, hash_hex, prefix};
	PGresult *r = PQexecParams(pg, create_sql, 4, NULL, params, NULL, NULL, 0);
	tk_status st = TK_ERR;
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("creating the tenant failed: %s", PQresultErrorMessage(r));
	} else if (PQntuples(r) != 1) {
		log_error("unknown plan '%s' (expected trial, basic, professional or enterprise)",
		          plan);
	} else {
		snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
		snprintf(out->slug, sizeof out->slug, "%s", PQgetvalue(r, 0, 1));
		st = TK_OK;
	}
	PQclear(r);
	if (st == TK_OK && sample_leads > 0) {
		char count[16];
		snprintf(count, sizeof count, "%d", sample_leads);
		const char *sp[] = {out->id, count};
		r = PQexecParams(pg, sample_sql, 2, NULL, sp, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_error("creating sample leads failed: %s", PQresultErrorMessage(r));
			st = TK_ERR;
		}
		PQclear(r);
	}
	if (st == TK_OK && !exec_command(pg, "COMMIT"))
		st = TK_ERR;
	if (st != TK_OK) {
		PGresult *rb = PQexec(pg, "ROLLBACK");
		PQclear(rb);
		sodium_memzero(out->api_key, sizeof out->api_key);
	}
	return st;
}

tk_status tenant_list(PGconn *pg, FILE *out)
{
	PGresult *r = PQexec(
	    pg, "SELECT t.id, t.slug, t.status, t.subscription_plan,"
	        " to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	        " t.name, (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id"
	        " AND k.revoked_at IS NULL)"
	        " FROM tenants t ORDER BY t.created_at, t.id");
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

tk_status tenant_any(PGconn *pg, int *exists)
{
	PGresult *r = PQexec(pg, "SELECT EXISTS (SELECT 1 FROM tenants)");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("checking for tenants failed: %s", PQresultErrorMessage(r));
		PQclear(r);
		return TK_ERR;
	}
	*exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return TK_OK;
}
