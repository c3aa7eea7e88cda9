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

/* Prints the tenants (status, plan: filters, NULL for any), one per line. */
tk_status tenant_list(PGconn *pg, const char *status, const char *plan, FILE *out) TK_MUST_CHECK;

#endif
