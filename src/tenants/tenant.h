/*
 * tenant.h - provisioning and listing tenants (operator side, as the owner).
 *
 * These run on an owner connection (DATABASE_ADMIN_URL or the embedded
 * cluster's tekup_owner), never on the request pool: the request role can
 * neither create tenants nor read api_keys.
 */
#ifndef TK_TENANTS_TENANT_H
#define TK_TENANTS_TENANT_H

#include <libpq-fe.h>
#include <stdio.h>

#include "auth/apikey.h"
#include "util/status.h"

typedef struct tenant_created {
	char id[40];
	char slug[128];
	char api_key[TK_APIKEY_LEN + 1]; /* shown once, never stored */
} tenant_created;

/*
 * Creates a tenant on plan (basic, trial, professional, enterprise) with its
 * settings row and one API key, in one transaction.  sample_leads > 0 adds
 * that many demo leads.  Errors are logged with a clear reason.
 */
tk_status tenant_create(PGconn *owner, const char *name, const char *plan, int sample_leads,
                        tenant_created *out) TK_MUST_CHECK;
/* Prints every tenant, one per line, to out. */
tk_status tenant_list(PGconn *owner, FILE *out) TK_MUST_CHECK;
/* Whether any tenant exists (for the first-run demo). */
tk_status tenant_any(PGconn *owner, int *exists) TK_MUST_CHECK;

#endif
