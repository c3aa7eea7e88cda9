/*
 * cluster.h - the embedded default database: a private PostgreSQL 15
 * cluster under the data directory (./var by default).
 *
 * Layout:  <data>/pgdata        the cluster (initdb on first use)
 *          <data>/run           its Unix socket (no TCP port at all)
 *          <data>/postgres.log  the server's log
 *
 * The cluster is started when not running and left running when tekup
 * exits (like any database server), so restarts are fast; `tekup db stop`
 * stops it.  PostgreSQL refuses to run as root, so as root it runs as the
 * unprivileged "postgres" user, which then owns <data>.  Local connections
 * are trusted, which is safe only because the socket directory is private
 * (0700) to that user (and root).
 *
 * Roles made on first use: tekup_owner (owns the schema, runs migrations,
 * BYPASSRLS so its SECURITY DEFINER functions can read api_keys) and
 * tekup_app (the request role: LOGIN, NOSUPERUSER, NOBYPASSRLS) and
 * tekup_operator (operator work across tenants: the admin API, jobs and the
 * outbox; BYPASSRLS but not the owner: DML only, no DDL).
 */
#ifndef TK_DB_CLUSTER_H
#define TK_DB_CLUSTER_H

#include <limits.h>

#include "util/status.h"

typedef struct tk_cluster {
	char data_dir[PATH_MAX];
	char socket_dir[PATH_MAX + 16];
	char request_url[PATH_MAX + 128];
	char admin_url[PATH_MAX + 128];
	char operator_url[PATH_MAX + 128];
	char superuser_url[PATH_MAX + 128];
} tk_cluster;

/* Initialises (first use), starts (when stopped) and bootstraps the cluster. */
tk_status tk_cluster_ensure(const char *data_dir, tk_cluster *out) TK_MUST_CHECK;
/* Stops the cluster if it runs. */
tk_status tk_cluster_stop(const char *data_dir) TK_MUST_CHECK;
/* TK_OK when running; prints where. */
tk_status tk_cluster_status(const char *data_dir) TK_MUST_CHECK;

#endif
