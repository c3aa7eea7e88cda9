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

#define TK_SESSION_TOKEN_LEN  67 /* "ts_" + 64 hex */
#define TK_TOKEN_HASH_LEN     32 /* a token's SHA-256 */
#define TK_TOKEN_HASH_HEX_LEN 67 /* "\\x" + 64 hex + NUL: a SHA-256 as bytea text */

/*
 * Sessions seen recently, by the token's SHA-256 (never the token): who
 * they were for, so that a signed-in request can go to the database in one
 * round trip (and travel in a batch, server.c) instead of two.  A cached
 * session is never trusted on its own: the request's transaction starts by
 * checking it against the sessions table (session_assert(), migration
 * 0012), in the same snapshot as the work, so logout, expiry, deactivation
 * and a role change end it at once exactly as before.  Thread-safe.  A
 * NULL session_cache is a cache that is off: nothing is remembered.
 */
typedef struct tk_ttl_cache session_cache;
session_cache *context_sessions_create(void);
void context_sessions_destroy(session_cache *sessions);

/* Verifies the session token in authorization (NULL: integration access)
 * in the database and remembers it in sessions.  401 invalid_session when
 * malformed, unknown, expired, revoked, or the user is inactive. */
tk_status context_resolve_user(session_cache *sessions, db_conn *conn, tk_request *req,
                               const char *authorization, tk_error *err) TK_MUST_CHECK;

/* Remembers a session that sign-in has just created for req's tenant (its
 * token's hash from context_token_hash; it has left_ms to live), so that
 * the user's first request is one round trip as well; checked by its
 * transactions like any remembered one. */
void context_remember_sign_in(session_cache *sessions, const tk_request *req,
                              const unsigned char token_hash[TK_TOKEN_HASH_LEN],
                              const char *user_id, const char *role, const char *session_id,
                              long long left_ms);
/* The signed-in user from sessions without asking the database: true (and
 * req->user set, from_cache) when authorization carries a well-formed
 * token that was verified for req's tenant before. */
bool context_cached_user(session_cache *sessions, tk_request *req, const char *authorization);

/* Whether sessions still holds req's remembered session as req has it
 * (same tenant, user and role): false once another request with the same
 * token found it ended or changed. */
bool context_cached_user_current(session_cache *sessions, const tk_request *req);

/* Drops req's session from sessions (its transaction found it ended or
 * changed, or it signed out). */
void context_forget_user(session_cache *sessions, const tk_request *req);

/* A transaction carrying the request's tenant (and user) context; for a
 * user from the cache, the session check comes first. */
db_tx *context_tx(tk_request *req, db_conn *conn);

/* "ts_" + 64 hex; SHA-256 as bytea hex; SHA-256 both raw and as bytea hex. */
bool context_token_well_formed(const char *token, size_t len);
void context_token_hash_hex(const char *token, size_t len, char out[TK_TOKEN_HASH_HEX_LEN]);
void context_token_hash(const char *token, size_t len, unsigned char raw[TK_TOKEN_HASH_LEN],
                        char hex[TK_TOKEN_HASH_HEX_LEN]);

#endif
