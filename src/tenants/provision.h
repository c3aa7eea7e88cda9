/*
 * provision.h - creating a tenant: the one code path behind
 * POST /admin/tenants, `tekup tenant create` and the first-run demo.
 *
 * Validates the input, hashes the admin password (Argon2id), makes the API
 * key (shown once) and the tenant's data key, then runs provision_tenant()
 * (sql/migrations/0005) and the operator audit row in ONE transaction: the
 * tenant, key, admin user, membership, settings, data key, sample data and
 * the outbox rows for the welcome e-mail and billing all exist, or none do.
 */
#ifndef TK_TENANTS_PROVISION_H
#define TK_TENANTS_PROVISION_H

#include <stdbool.h>

#include "auth/apikey.h"
#include "db/pool.h"
#include "util/arena.h"
#include "util/error.h"

#define PROVISION_NAME_MAX   255
#define PROVISION_SAMPLE_MAX 100000
#define PROVISION_SAMPLE_API 10 /* includeSampleData: true */

typedef struct provision_request {
	const char *name;
	const char *plan;          /* default "basic", as the seed */
	const char *billing_email; /* optional for the CLI */
	const char *admin_email;   /* NULL: no admin user (CLI only) */
	const char *admin_name;
	const char *admin_password;
	const char *timezone; /* IANA; default UTC */
	const char *locale;   /* default "en" */
	int sample_leads;
} provision_request;

typedef struct provision_actor {
	const char *token_id; /* operator token, or NULL for the CLI */
	const char *name;     /* recorded in operator_audit */
} provision_actor;

typedef struct provision_result {
	char tenant_id[40];
	char admin_user_id[40]; /* "" when no admin was created */
	char slug[128];
	char dashboard_url[640];
	char api_key[TK_APIKEY_LEN + 1]; /* shown once */
} provision_result;

/* A tenant's name, at provisioning and on every rename: 1 to
 * PROVISION_NAME_MAX characters of UTF-8 without control characters (a
 * line break would end the welcome e-mail's Subject header; it cannot be
 * sent).  400 validation_error, field "name". */
tk_status provision_check_name(const char *name, tk_error *err) TK_MUST_CHECK;

/* Field checks shared by API and CLI (400 naming the field).  The admin
 * e-mail must also be one the outbox can send the welcome e-mail to: a
 * plain ASCII address (outbox_address_ok), as no SMTPUTF8 is spoken. */
tk_status provision_validate(const provision_request *in, tk_error *err) TK_MUST_CHECK;

tk_status provision_run(db_conn *conn, tk_arena *arena, const provision_request *in,
                        const unsigned char master_key[32], const char *dashboard_base,
                        const provision_actor *actor, provision_result *out,
                        tk_error *err) TK_MUST_CHECK;

#endif
