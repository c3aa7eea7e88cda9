/*
 * context.h - who a /v1 request acts as, and the database context for it.
 *
 * A request with the tenant key alone acts as the tenant's integration
 * (full access within the tenant, still bound by plan features).  With
 * "Authorization: Bearer ts_..." as well, it acts as that signed-in user:
 * the session is verified in the database (so logout and deactivation end
 * it at once) and the request transaction sets app.current_user and
 * app.current_user_role with SET LOCAL, which the RLS policies read.
 */
#ifndef TK_AUTH_CONTEXT_H
#define TK_AUTH_CONTEXT_H

#include "db/tx.h"
#include "http/request.h"

#define TK_SESSION_TOKEN_LEN 67 /* "ts_" + 64 hex */

/* Verifies the session token in authorization (NULL: integration access).
 * 401 invalid_session when malformed, unknown, expired, revoked, or the
 * user is inactive. */
tk_status context_resolve_user(db_conn *conn, tk_request *req, const char *authorization,
                               tk_error *err) TK_MUST_CHECK;

/* A transaction carrying the request's tenant (and user) context. */
db_tx *context_tx(tk_request *req, db_conn *conn);

/* "ts_" + 64 hex; SHA-256 as bytea hex. */
bool context_token_well_formed(const char *token, size_t len);
void context_token_hash_hex(const char *token, size_t len, char out[67]);

#endif
