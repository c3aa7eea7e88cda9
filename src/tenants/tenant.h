/*
 * tenant.h - listing tenants for the CLI's human-readable table.
 *
 * Runs on an operator connection, never on the request pool.  Creating
 * tenants is tenants/provision.h; changing them, tenants/tenant_ops.h.
 */
#ifndef TK_TENANTS_TENANT_H
#define TK_TENANTS_TENANT_H

#include <libpq-fe.h>
#include <stdio.h>

#include "util/status.h"

/* Prints every tenant, one per line, to out. */
tk_status tenant_list(PGconn *owner, FILE *out) TK_MUST_CHECK;
/* Whether any tenant exists (for the first-run demo). */
tk_status tenant_any(PGconn *owner, int *exists) TK_MUST_CHECK;

#endif
