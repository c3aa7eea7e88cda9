/*
 * operator_auth.h - operator tokens: format, creation, and authenticating
 * /admin requests.
 *
 * A token is "to_" + 64 lower-case hex (32 bytes from the CSPRNG), shown
 * once at creation and stored only as SHA-256 with a display prefix.  It is
 * checked on the operator connection (tekup_operator), never on the request
 * pool, so a tenant key can never reach operator data and an operator token
 * is not a tenant key (different prefix, different table).
 */
#ifndef TK_ADMIN_OPERATOR_AUTH_H
#define TK_ADMIN_OPERATOR_AUTH_H

#include <libpq-fe.h>
#include <stdio.h>

#include "db/pool.h"
#include "http/request.h"

#define TK_OPERATOR_TOKEN_LEN 67 /* "to_" + 64 hex */

/*
 * Checks "Authorization: Bearer <token>".  401 missing_operator_token when
 * absent; 401 invalid_operator_token when malformed, unknown or revoked.
 * Records last_used_at at most once a minute.
 */
tk_status operator_authenticate(db_conn *conn, tk_arena *arena, const char *authorization,
                                tk_operator *out, tk_error *err) TK_MUST_CHECK;

/* CLI: create (prints the token once), list, revoke.  pg is an owner or
 * operator connection. */
tk_status operator_token_create(PGconn *pg, const char *name, const char *actor,
                                FILE *out) TK_MUST_CHECK;
tk_status operator_token_list(PGconn *pg, FILE *out) TK_MUST_CHECK;
tk_status operator_token_revoke(PGconn *pg, const char *id, const char *actor,
                                FILE *out) TK_MUST_CHECK;

#endif
