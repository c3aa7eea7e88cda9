/*
 * maintenance.h - the daily background job of `tekup serve`: delete
 * archived tenants past the archive retention, then purge each tenant's rows
 * past its dataRetentionDays (tenants/tenant_ops.h does the work).
 *
 * Several servers may run; PostgreSQL decides which one works: a server
 * runs the job only while holding a session advisory lock, and only when
 * maintenance_runs says the last run started more than one interval ago.
 * So the job runs once per interval across the fleet, never twice at once.
 */
#ifndef TK_TENANTS_MAINTENANCE_H
#define TK_TENANTS_MAINTENANCE_H

#include "app.h"

typedef struct maintenance maintenance;

/* Starts the job's thread (it sleeps most of the time); NULL when disabled. */
maintenance *maintenance_start(tk_app *app);
/* Wakes the thread, waits for the current step to finish, frees it. */
void maintenance_stop(maintenance *m);

#endif
