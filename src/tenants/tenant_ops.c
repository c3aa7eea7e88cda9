/*
 * tenant_ops.c - operator operations on tenants (see tenant_ops.h).
 */
#include "tenants/tenant_ops.h"

#include <stdio.h>
#include <string.h>

#include "auth/apikey.h"
#include "db/tx.h"
#include "tenants/provision.h"
#include "util/buf.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/*
 * The audit row is written in the operation's transaction, and only when the
 * operation found what it acted on: `guard` is an SQL condition over $4 (the
 * tenant) and $6 (guard_arg), evaluated after the operation's statement, so
 * a 404 leaves no audit row behind.  Errors roll everything back anyway.
 */
typedef struct ops_audit {
	const char *action;
	const char *tenant_id;
	const char *details;   /* JSON object text or NULL */
	const char *guard;     /* NULL: the tenant ($4) exists */
	const char *guard_arg; /* $6 */
} ops_audit;

static tk_status tenant_not_found(tk_error *err)
{
	return tk_error_set(err, 404, "tenant_not_found", NULL, "no tenant with this id");
}

static void queue_audit(db_tx *tx, tk_arena *a, const ops_actor *who, const ops_audit *au)
{
	const char **p = tk_arena_calloc(a, 6, sizeof *p);
	p[0] = who->token_id;
	p[1] = who->name;
	p[2] = au->action;
	p[3] = au->tenant_id;
	p[4] = au->details;
	p[5] = au->guard_arg ? au->guard_arg : "";
	const char *sql = tk_arena_printf(
	    a,
	    "INSERT INTO operator_audit (token_id, actor, action, tenant_id, details)"
	    " SELECT $1::uuid, $2, $3, $4::uuid, coalesce($5::jsonb, '{}') WHERE %s"
	    " AND $6::text IS NOT NULL",
	    au->guard ? au->guard : "EXISTS (SELECT 1 FROM tenants WHERE id = $4::uuid)");
	db_tx_add(tx, sql, 6, p);
}

/* Runs sql (one JSON text column), with an audit row when au is set.  No row
 * means the tenant does not exist: 404, and the audit row is not kept. */
static tk_status run_json(db_conn *c, tk_arena *a, const char *sql, int n, const char *const *p,
                          const ops_actor *who, const ops_audit *au, const char **json,
                          tk_error *err)
{
	db_tx *tx = db_tx_new(a, c);
	int q = db_tx_add(tx, sql, n, p);
	if (au && who)
		queue_audit(tx, a, who, au);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0))
			st = tenant_not_found(err);
		else
			*json =
			    tk_arena_strndup(a, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	}
	db_tx_clear(tx);
	return st;
}

tk_status tenant_ops_list(db_conn *c, tk_arena *a, const tenant_list_filter *f, const char **json,
                          tk_error *err)
{
	char limit[16], offset[24], page[16];
	snprintf(limit, sizeof limit, "%ld", f->limit);
	snprintf(offset, sizeof offset, "%ld", (f->page - 1) * f->limit);
	snprintf(page, sizeof page, "%ld", f->page);
	const char *p[] = {f->status, f->plan, limit, offset, page};
	return run_json(
	    c, a,
	    "SELECT json_build_object('data', coalesce((SELECT json_agg(x.j) FROM (SELECT"
	    " tenant_json(t) AS j FROM tenants t WHERE ($1::text IS NULL OR t.status = $1)"
	    " AND ($2::text IS NULL OR t.subscription_plan = $2) ORDER BY t.created_at, t.id"
	    " LIMIT $3::int OFFSET $4::bigint) x), '[]'), 'pagination', json_build_object("
	    "'page', $5::int, 'limit', $3::int, 'total', n.total, 'pages',"
	    " ceil(n.total / $3::numeric)::int))::text"
	    " FROM (SELECT count(*) AS total FROM tenants t WHERE ($1::text IS NULL OR t.status = "
	    "$1)"
	    " AND ($2::text IS NULL OR t.subscription_plan = $2)) n",
	    5, p, NULL, NULL, json, err);
}

tk_status tenant_ops_show(db_conn *c, tk_arena *a, const char *tenant_id, const char **json,
                          tk_error *err)
{
	const char *p[] = {tenant_id};
	return run_json(
	    c, a,
	    "SELECT (tenant_json(t) || jsonb_build_object('usage', tenant_usage(t.id),"
	    " 'settings', (SELECT jsonb_build_object('timezone', s.timezone, 'locale', s.locale,"
	    " 'dateFormat', s.date_format, 'timeFormat', s.time_format) FROM tenant_settings s"
	    " WHERE s.tenant_id = t.id)))::text FROM tenants t WHERE t.id = $1::uuid",
	    1, p, NULL, NULL, json, err);
}

tk_status tenant_ops_update(db_conn *c, tk_arena *a, const ops_actor *who, const char *tenant_id,
                            const tenant_update *u, const char **json, tk_error *err)
{
	/* A rename follows the rule provisioning does (API and CLI alike). */
	if (u->name && provision_check_name(u->name, err) != TK_OK)
		return TK_ERR;
	const char *p[9] = {tenant_id,
	                    u->name,
	                    u->billing_email,
	                    u->data_retention_days,
	                    u->compliance_requirements,
	                    u->feature_overrides,
	                    u->limit_overrides,
	                    u->plan,
	                    u->status};
	db_tx *tx = db_tx_new(a, c);
	/* Plain fields; an absent field ($n IS NULL) keeps its value.  Overrides
	 * merge like customFields: keys given replace, a key given null is removed. */
	int found = db_tx_add(
	    tx,
	    "UPDATE tenants SET name = coalesce($2, name), billing_email = coalesce($3, "
	    "billing_email),"
	    " data_retention_days = coalesce($4::int, data_retention_days),"
	    " compliance_requirements = coalesce($5::jsonb, compliance_requirements),"
	    " feature_overrides = CASE WHEN $6::jsonb IS NULL THEN feature_overrides ELSE"
	    " (feature_overrides || $6::jsonb) - ARRAY(SELECT key FROM jsonb_each($6::jsonb)"
	    " WHERE value = 'null'::jsonb) END,"
	    " limit_overrides = CASE WHEN $7::jsonb IS NULL THEN limit_overrides ELSE"
	    " (limit_overrides || $7::jsonb) - ARRAY(SELECT key FROM jsonb_each($7::jsonb)"
	    " WHERE value = 'null'::jsonb) END,"
	    " updated_at = now() WHERE id = $1::uuid RETURNING id",
	    7, p);
	/* Effective features/limits: the (new) plan's defaults + the overrides. */
	const char *plan_p[] = {tenant_id, u->plan};
	db_tx_add(tx,
	          "SELECT tenant_apply_plan(id, coalesce($2, subscription_plan)) FROM tenants"
	          " WHERE id = $1::uuid",
	          2, plan_p);
	if (u->status) {
		const char *status_p[] = {tenant_id, u->status};
		db_tx_add(tx, "SELECT tenant_set_status($1::uuid, $2)", 2, status_p);
	}
	int q =
	    db_tx_add(tx, "SELECT tenant_json(t)::text FROM tenants t WHERE t.id = $1::uuid", 1, p);
	tk_buf details = TK_BUF_INIT;
	tk_buf_puts(&details, "{");
	static const char *const names[] = {"name",
	                                    "billingEmail",
	                                    "dataRetentionDays",
	                                    "complianceRequirements",
	                                    "featureOverrides",
	                                    "limitOverrides",
	                                    "plan",
	                                    "status"};
	bool first = true;
	for (int i = 1; i < 9; i++) {
		if (p[i] == NULL)
			continue;
		tk_buf_printf(&details, "%s\"%s\":", first ? "" : ",", names[i - 1]);
		if (i == 4 || i == 5 || i == 6 || i == 3)
			tk_buf_puts(&details, p[i]); /* JSON (or a number) already */
		else
			tk_buf_json_string(&details, p[i], strlen(p[i]));
		first = false;
	}
	tk_buf_puts(&details, "}");
	ops_audit au = {"tenant.update", tenant_id, tk_arena_strdup(a, details.data), NULL, NULL};
	tk_buf_free(&details);
	queue_audit(tx, a, who, &au);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		if (PQntuples(db_tx_result(tx, found)) == 0) {
			st = tenant_not_found(err);
		} else {
			PGresult *r = db_tx_result(tx, q);
			*json =
			    tk_arena_strndup(a, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
		}
	}
	db_tx_clear(tx);
	return st;
}

#define KEY_JSON                                                                                              \
	"json_build_object('id', k.id, 'prefix', k.prefix, 'name', k.name, 'createdAt', " TS(                 \
	    "k."                                                                                              \
	    "cre"                                                                                             \
	    "ate"                                                                                             \
	    "d_"                                                                                              \
	    "at") ", 'lastUsedAt', " TS("k.last_used_at") ", 'expiresAt', " TS("k.expires_at") ","            \
	                                                                                       " "            \
	                                                                                       "'"            \
	                                                                                       "r"            \
	                                                                                       "e"            \
	                                                                                       "v"            \
	                                                                                       "o"            \
	                                                                                       "k"            \
	                                                                                       "e"            \
	                                                                                       "d"            \
	                                                                                       "A"            \
	                                                                                       "t"            \
	                                                                                       "'"            \
	                                                                                       ","            \
	                                                                                       " " TS(        \
	                                                                                           "k."       \
	                                                                                           "revoked_" \
	                                                                                           "at") ", " \
	                                                                                                 "'s" \
	                                                                                                 "ta" \
	                                                                                                 "tu" \
	                                                                                                 "s'" \
	                                                                                                 ", " \
	                                                                                                 "CA" \
	                                                                                                 "SE" \
	                                                                                                 " W" \
	                                                                                                 "HE" \
	                                                                                                 "N " \
	                                                                                                 "k." \
	                                                                                                 "re" \
	                                                                                                 "vo" \
	                                                                                                 "ke" \
	                                                                                                 "d_" \
	                                                                                                 "at" \
	                                                                                                 " I" \
	                                                                                                 "S " \
	                                                                                                 "NO" \
	                                                                                                 "T " \
	                                                                                                 "NU" \
	                                                                                                 "LL" \
	                                                                                                 " T" \
	                                                                                                 "HE" \
	                                                                                                 "N " \
	                                                                                                 "'r" \
	                                                                                                 "ev" \
	                                                                                                 "ok" \
	                                                                                                 "ed" \
	                                                                                                 "' " \
	                                                                                                 "WH" \
	                                                                                                 "EN" \
	                                                                                                 " k" \
	                                                                                                 ".e" \
	                                                                                                 "xp" \
	                                                                                                 "ir" \
	                                                                                                 "es" \
	                                                                                                 "_a" \
	                                                                                                 "t " \
	                                                                                                 "<=" \
	                                                                                                 " n" \
	                                                                                                 "ow" \
	                                                                                                 "()" \
	                                                                                                 " T" \
	                                                                                                 "HE" \
	                                                                                                 "N " \
	                                                                                                 "'e" \
	                                                                                                 "xp" \
	                                                                                                 "ir" \
	                                                                                                 "ed" \
	                                                                                                 "' " \
	                                                                                                 "EL" \
	                                                                                                 "SE" \
	                                                                                                 " "  \
	                                                                                                 "'a" \
	                                                                                                 "ct" \
	                                                                                                 "iv" \
	                                                                                                 "e'" \
	                                                                                                 " E" \
	                                                                                                 "ND" \
	                                                                                                 ")"

tk_status tenant_ops_keys(db_conn *c, tk_arena *a, const char *tenant_id, const char **json,
                          tk_error *err)
{
	const char *p[] = {tenant_id};
	return run_json(c, a,
	                "SELECT json_build_object('data', coalesce((SELECT json_agg(" KEY_JSON
	                " ORDER BY k.created_at, k.id) FROM api_keys k WHERE k.tenant_id = t.id),"
	                " '[]'))::text FROM tenants t WHERE t.id = $1::uuid",
	                1, p, NULL, NULL, json, err);
}

/* A fresh key: its text (shown once), SHA-256 as bytea hex, display prefix. */
typedef struct new_key {
	char key[TK_APIKEY_LEN + 1];
	char hash_hex[67];
	char prefix[TK_APIKEY_PREFIX_LEN + 1];
} new_key;

static void new_key_make(new_key *k)
{
	unsigned char hash[TK_APIKEY_HASH_LEN];
	tk_apikey_generate(k->key);
	tk_apikey_hash(k->key, TK_APIKEY_LEN, hash);
	tk_apikey_hash_hex(hash, k->hash_hex);
	memcpy(k->prefix, k->key, TK_APIKEY_PREFIX_LEN);
	k->prefix[TK_APIKEY_PREFIX_LEN] = '\0';
}

tk_status tenant_ops_key_create(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *name, const char *expires_at,
                                const char **json, tk_error *err)
{
	new_key k;
	new_key_make(&k);
	const char *p[] = {tenant_id, k.hash_hex, k.prefix, name, expires_at, k.key};
	ops_audit au = {
	    "key.create", tenant_id, NULL,
	    "EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $4::uuid AND prefix = $6)", k.prefix};
	au.details = tk_arena_printf(a, "{\"prefix\":\"%s\"}", k.prefix);
	return run_json(
	    c, a,
	    "WITH k AS (INSERT INTO api_keys (tenant_id, key_hash, prefix, name, expires_at)"
	    " SELECT id, $2::bytea, $3, coalesce($4, 'key'), $5::timestamptz FROM tenants"
	    " WHERE id = $1::uuid RETURNING *)"
	    " SELECT (" KEY_JSON "::jsonb || jsonb_build_object('apiKey', $6::text))::text"
	    " FROM k",
	    6, p, who, &au, json, err);
}

tk_status tenant_ops_key_revoke(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *key_id, tk_error *err)
{
	const char *p[] = {tenant_id, key_id};
	ops_audit au = {
	    "key.revoke", tenant_id, NULL,
	    "EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $4::uuid AND id = $6::uuid"
	    " AND revoked_at = now())",
	    key_id};
	au.details = tk_arena_printf(a, "{\"keyId\":\"%s\"}", key_id);
	const char *json = NULL;
	tk_status st = run_json(c, a,
	                        "UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1::uuid"
	                        " AND id = $2::uuid AND revoked_at IS NULL RETURNING id::text",
	                        2, p, who, &au, &json, err);
	if (st != TK_OK && err->http_status == 404)
		return tk_error_set(err, 404, "key_not_found", NULL,
		                    "no active key with this id for this tenant");
	return st;
}

tk_status tenant_ops_key_rotate(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *key_id, long grace_hours,
                                const char **json, tk_error *err)
{
	new_key k;
	new_key_make(&k);
	char grace[16];
	snprintf(grace, sizeof grace, "%ld", grace_hours);
	const char *p[] = {tenant_id, key_id, grace, k.hash_hex, k.prefix, k.key};
	ops_audit au = {
	    "key.rotate", tenant_id, NULL,
	    "EXISTS (SELECT 1 FROM api_keys WHERE tenant_id = $4::uuid AND prefix = $6)", k.prefix};
	au.details =
	    tk_arena_printf(a, "{\"keyId\":\"%s\",\"graceHours\":%ld,\"newPrefix\":\"%s\"}", key_id,
	                    grace_hours, k.prefix);
	/* The old key keeps working for the grace period (as Stripe's roll),
	 * or stops now with a grace of 0. */
	tk_status st = run_json(
	    c, a,
	    "WITH old AS (UPDATE api_keys SET"
	    " expires_at = CASE WHEN $3::int = 0 THEN expires_at ELSE"
	    " least(coalesce(expires_at, 'infinity'), now() + make_interval(hours => $3::int)) END,"
	    " revoked_at = CASE WHEN $3::int = 0 THEN now() ELSE revoked_at END"
	    " WHERE tenant_id = $1::uuid AND id = $2::uuid AND revoked_at IS NULL"
	    " AND (expires_at IS NULL OR expires_at > now()) RETURNING *),"
	    " k AS (INSERT INTO api_keys (tenant_id, key_hash, prefix, name)"
	    " SELECT tenant_id, $4::bytea, $5, name FROM old RETURNING *)"
	    " SELECT json_build_object('newKey', (" KEY_JSON
	    "::jsonb || jsonb_build_object('apiKey',"
	    " $6::text)), 'oldKey', (SELECT json_build_object('id', o.id, 'expiresAt', " TS(
	        "o.expires_at") ", 'revokedAt', " TS("o.revoked_at") ") FROM old o))::text FROM k",
	    6, p, who, &au, json, err);
	if (st != TK_OK && err->http_status == 404)
		return tk_error_set(err, 404, "key_not_found", NULL,
		                    "no active key with this id for this tenant");
	return st;
}

tk_status tenant_ops_migrate(db_conn *c, tk_arena *a, const ops_actor *who, const char *source,
                             const char *target, bool leads, bool users, bool archive_source,
                             const char **json, tk_error *err)
{
	const char *p[] = {source, target, leads ? "t" : "f", users ? "t" : "f",
	                   archive_source ? "t" : "f"};
	ops_audit au = {"tenant.migrate", source, NULL, NULL, NULL};
	au.details = tk_arena_printf(
	    a, "{\"target\":\"%s\",\"includeLeads\":%s,\"includeUsers\":%s,\"archiveSource\":%s}",
	    target, leads ? "true" : "false", users ? "true" : "false",
	    archive_source ? "true" : "false");
	return run_json(c, a,
	                "SELECT migrate_tenant_data($1::uuid, $2::uuid, $3::boolean, $4::boolean,"
	                " $5::boolean)::text",
	                5, p, who, &au, json, err);
}

/* Runs fn_sql ($1 tenant, $2 dry run) once per tenant listed by list_sql,
 * each in its own transaction; collects {tenantId, name, result|error}. */
static tk_status per_tenant_batch(db_conn *c, tk_arena *a, const ops_actor *who,
                                  const char *list_sql, int nlist, const char *const *list_p,
                                  const char *fn_sql, const char *action, bool dry_run,
                                  const char **json, tk_error *err)
{
	db_tx *tx = db_tx_new(a, c);
	int q = db_tx_add(tx, list_sql, nlist, list_p);
	tk_status st = db_tx_run(tx, err);
	if (st != TK_OK) {
		db_tx_clear(tx);
		return st;
	}
	PGresult *list = db_tx_result(tx, q);
	tk_buf out = TK_BUF_INIT;
	int processed = 0, failed = 0;
	tk_buf_printf(&out, "{\"dryRun\":%s,\"results\":[", dry_run ? "true" : "false");
	for (int i = 0; i < PQntuples(list); i++) {
		const char *id = PQgetvalue(list, i, 0);
		const char *name = PQgetvalue(list, i, 1);
		const char *p[] = {id, dry_run ? "t" : "f"};
		tk_error one = {0};
		db_tx *t = db_tx_new(a, c);
		int r = db_tx_add(t, fn_sql, 2, p);
		if (!dry_run) {
			/* Written before the deletion is visible: the tenant still exists. */
			ops_audit au = {action, id, NULL, "true", NULL};
			queue_audit(t, a, who, &au);
		}
		tk_status s = db_tx_run(t, &one);
		tk_buf_printf(&out, "%s{\"tenantId\":\"%s\",\"name\":", i ? "," : "", id);
		tk_buf_json_string(&out, name, strlen(name));
		if (s == TK_OK) {
			PGresult *res = db_tx_result(t, r);
			tk_buf_puts(&out, ",\"result\":");
			tk_buf_append(&out, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
			processed++;
		} else {
			tk_buf_puts(&out, ",\"error\":");
			tk_buf_json_string(&out, one.message, strlen(one.message));
			failed++;
		}
		tk_buf_putc(&out, '}');
		db_tx_clear(t);
	}
	tk_buf_printf(&out, "],\"tenantsProcessed\":%d,\"tenantsFailed\":%d}", processed, failed);
	*json = tk_arena_strdup(a, out.data);
	tk_buf_free(&out);
	db_tx_clear(tx);
	return TK_OK;
}

tk_status tenant_ops_cleanup(db_conn *c, tk_arena *a, const ops_actor *who, long older_than_days,
                             bool dry_run, const char **json, tk_error *err)
{
	char days[16];
	snprintf(days, sizeof days, "%ld", older_than_days);
	const char *p[] = {days};
	return per_tenant_batch(c, a, who,
	                        "SELECT id::text, name FROM tenants WHERE status = 'archived'"
	                        " AND archived_at < now() - make_interval(days => $1::int)"
	                        " ORDER BY archived_at",
	                        1, p, "SELECT delete_tenant($1::uuid, $2::boolean)::text",
	                        "tenant.delete", dry_run, json, err);
}

tk_status tenant_ops_retention(db_conn *c, tk_arena *a, const ops_actor *who, bool dry_run,
                               const char **json, tk_error *err)
{
	return per_tenant_batch(c, a, who, "SELECT id::text, name FROM tenants ORDER BY created_at",
	                        0, NULL,
	                        "SELECT purge_tenant_retention($1::uuid, $2::boolean)::text",
	                        "tenant.retention", dry_run, json, err);
}

tk_status tenant_ops_outbox(db_conn *c, tk_arena *a, const char *status, long limit,
                            const char **json, tk_error *err)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%ld", limit);
	const char *p[] = {status, lim};
	return run_json(
	    c, a,
	    "SELECT json_build_object('data', coalesce(json_agg(json_build_object('id', o.id,"
	    " 'eventId', o.event_id, 'tenantId', o.tenant_id, 'kind', o.kind, 'topic', o.topic,"
	    " 'status', o.status, 'attempts', o.attempts, 'lastError', o.last_error,"
	    " 'nextAttemptAt', " TS("o.next_attempt_at") ", 'createdAt', " TS(
	        "o.created_at") ", 'deliveredAt', " TS("o.delivered_at") ") ORDER BY o.id DESC), "
	                                                                 "'[]'))::text"
	                                                                 " FROM (SELECT * FROM "
	                                                                 "outbox WHERE $1::text IS "
	                                                                 "NULL OR status = $1 "
	                                                                 "ORDER BY id DESC"
	                                                                 " LIMIT $2::int) o",
	    2, p, NULL, NULL, json, err);
}

tk_status tenant_ops_audit(db_conn *c, tk_arena *a, long limit, const char **json, tk_error *err)
{
	char lim[16];
	snprintf(lim, sizeof lim, "%ld", limit);
	const char *p[] = {lim};
	return run_json(
	    c, a,
	    "SELECT json_build_object('data', coalesce(json_agg(json_build_object("
	    "'id', x.id, 'actor', x.actor, 'tokenId', x.token_id, 'action', x.action,"
	    " 'tenantId', x.tenant_id, 'details', x.details, 'createdAt', " TS(
	        "x.created_at") ") ORDER BY x.id DESC), '[]'))::text FROM (SELECT * FROM"
	                        " operator_audit ORDER BY id DESC LIMIT $1::int) x",
	    1, p, NULL, NULL, json, err);
}
