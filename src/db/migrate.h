/*
 * migrate.h - applying the numbered SQL files in sql/migrations/.
 *
 * Files are named NNNN_description.sql and applied in numeric order, each
 * in its own transaction together with its row in schema_migrations
 * (version, name, SHA-256 checksum).  A session advisory lock serialises
 * concurrent runs, so two processes cannot both apply a file; the second
 * waits, then finds the work done.  If an applied file's checksum no longer
 * matches, nothing further is applied and the run fails: history is never
 * rewritten silently.
 */
#ifndef TK_DB_MIGRATE_H
#define TK_DB_MIGRATE_H

#include <stdio.h>

#include "util/status.h"

/* configured when set; else found next to the binary (installed:
 * ../share/tekup/migrations; a checkout's build/<kind>/: ../../sql/migrations);
 * else ./sql/migrations. */
const char *tk_migrations_default_dir(const char *configured);

/* Applies pending migrations as the owner; progress lines go to out. */
tk_status tk_migrate(const char *admin_conninfo, const char *dir, FILE *out) TK_MUST_CHECK;

#endif
