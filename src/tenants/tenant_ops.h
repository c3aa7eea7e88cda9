/*
 * tenant_ops.h - the operator's operations on tenants, shared by the
 * /admin API and the CLI ("the same code").
 *
 * Each operation runs on an operator connection (tekup_operator) in one
 * transaction that also writes its operator_audit row, and returns the
 * result as JSON text built by PostgreSQL (in the arena).  The batch jobs
 * (cleanup, retention) run one transaction per tenant and report each
 * tenant's result or error without stopping.  SQL lives in
 * sql/migrations/0007_operations.sql.
 */
#ifndef TK_TENANTS_TENANT_OPS_H
#define TK_TENANTS_TENANT_OPS_H

#include <stdbool.h>

#include "db/pool.h"
#include "util/arena.h"
#include "util/error.h"

typedef struct ops_actor {
	const char *token_id; /* operator token id, NULL for the CLI */
	const char *name;     /* recorded as operator_audit.actor */
} ops_actor;

typedef struct tenant_update {
	const char *name;
	const char *billing_email;
	const char *plan;
	const char *status;
	const char *feature_overrides;       /* JSON object text: merged, null removes */
	const char *limit_overrides;         /* JSON object text: merged, null removes */
	const char *compliance_requirements; /* JSON array text: replaces */
	const char *data_retention_days;     /* decimal text */
} tenant_update;

typedef struct tenant_list_filter {
	const char *status; /* NULL: any */
	const char *plan;   /* NULL: any */
	long page, limit;
} tenant_list_filter;

/* All return TK_OK with *json set, or TK_ERR with err (404 tenant_not_found, ...).
 * tenant_ops_update checks a new name as provisioning does
 * (provision_check_name: 400 validation_error, field name). */
tk_status tenant_ops_list(db_conn *c, tk_arena *a, const tenant_list_filter *f, const char **json,
                          tk_error *err) TK_MUST_CHECK;
tk_status tenant_ops_show(db_conn *c, tk_arena *a, const char *tenant_id, const char **json,
                          tk_error *err) TK_MUST_CHECK;
tk_status tenant_ops_update(db_conn *c, tk_arena *a, const ops_actor *who, const char *tenant_id,
                            const tenant_update *u, const char **json, tk_error *err) TK_MUST_CHECK;

tk_status tenant_ops_keys(db_conn *c, tk_arena *a, const char *tenant_id, const char **json,
                          tk_error *err) TK_MUST_CHECK;
/* expires_at: ISO 8601 or NULL.  The JSON carries the key, shown once. */
tk_status tenant_ops_key_create(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *name, const char *expires_at,
                                const char **json, tk_error *err) TK_MUST_CHECK;
tk_status tenant_ops_key_revoke(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *key_id,
                                tk_error *err) TK_MUST_CHECK;
/* A new key; the old one stays valid for grace_hours (0: ends now). */
tk_status tenant_ops_key_rotate(db_conn *c, tk_arena *a, const ops_actor *who,
                                const char *tenant_id, const char *key_id, long grace_hours,
                                const char **json, tk_error *err) TK_MUST_CHECK;

tk_status tenant_ops_migrate(db_conn *c, tk_arena *a, const ops_actor *who, const char *source,
                             const char *target, bool leads, bool users, bool archive_source,
                             const char **json, tk_error *err) TK_MUST_CHECK;

/* Archived tenants older than older_than_days: deleted, one transaction each. */
tk_status tenant_ops_cleanup(db_conn *c, tk_arena *a, const ops_actor *who, long older_than_days,
                             bool dry_run, const char **json, tk_error *err) TK_MUST_CHECK;
/* Every tenant's rows older than its dataRetentionDays, one transaction each. */
tk_status tenant_ops_retention(db_conn *c, tk_arena *a, const ops_actor *who, bool dry_run,
                               const char **json, tk_error *err) TK_MUST_CHECK;

tk_status tenant_ops_outbox(db_conn *c, tk_arena *a, const char *status, long limit,
                            const char **json, tk_error *err) TK_MUST_CHECK;
tk_status tenant_ops_audit(db_conn *c, tk_arena *a, long limit, const char **json,
                           tk_error *err) TK_MUST_CHECK;

#endif
