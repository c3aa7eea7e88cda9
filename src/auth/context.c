/*
 * context.c - request identity and database context (see context.h).
 */
#include "auth/context.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/ttl_cache.h"
#include "util/validate.h"

_Static_assert(crypto_hash_sha256_BYTES == TK_TTL_CACHE_KEY_LEN, "tokens are keyed by SHA-256");
_Static_assert(TK_TOKEN_HASH_LEN == TK_TTL_CACHE_KEY_LEN, "a token hash is a cache key");

/* Enough for every session signed in at once on a busy server; beyond
 * that, entries closest to expiry make room (a miss costs one more round
 * trip, nothing else). */
#define SESSION_CACHE_SLOTS 8192
/* How long a session is remembered at most (never past its expiry). */
#define SESSION_CACHE_MAX_MS (15LL * 60 * 1000)

/* "\x" + 64 hex: a SHA-256 as a bytea literal. */
static void hash_to_hex(const unsigned char hash[TK_TTL_CACHE_KEY_LEN],
                        char out[TK_TOKEN_HASH_HEX_LEN])
{
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, TK_TOKEN_HASH_HEX_LEN - 2, hash, TK_TTL_CACHE_KEY_LEN);
}

bool context_token_well_formed(const char *t, size_t len)
{
	if (len != TK_SESSION_TOKEN_LEN || memcmp(t, "ts_", 3) != 0)
		return false;
	for (size_t i = 3; i < len; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

void context_token_hash(const char *token, size_t len, unsigned char raw[TK_TOKEN_HASH_LEN],
                        char hex[TK_TOKEN_HASH_HEX_LEN])
{
	crypto_hash_sha256(raw, (const unsigned char *)token, len);
	hash_to_hex(raw, hex);
}

void context_token_hash_hex(const char *token, size_t len, char out[TK_TOKEN_HASH_HEX_LEN])
{
	unsigned char hash[TK_TOKEN_HASH_LEN];
	context_token_hash(token, len, hash, out);
}

/* What a verified session is remembered as. */
typedef struct cached_session {
	char tenant[40]; /* the tenant it was verified for */
	tk_user user;    /* id, role, session id */
} cached_session;

session_cache *context_sessions_create(void)
{
	return tk_ttl_cache_create(SESSION_CACHE_SLOTS, sizeof(cached_session));
}

void context_sessions_destroy(session_cache *sessions)
{
	tk_ttl_cache_destroy(sessions);
}

static tk_status invalid_session(tk_error *err)
{
	return tk_error_set(err, 401, "invalid_session", NULL,
	                    "the session is not valid; sign in again");
}

/* The token of "Bearer <token>", hashed; false when malformed. */
static bool bearer_token_hash(const char *authorization, unsigned char hash[TK_TTL_CACHE_KEY_LEN])
{
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	size_t len = strlen(token);
	if (!context_token_well_formed(token, len))
		return false;
	crypto_hash_sha256(hash, (const unsigned char *)token, len);
	return true;
}

/* Remembers a session the database has just vouched for, for at most
 * left_ms (its time to expiry) and SESSION_CACHE_MAX_MS. */
static void remember(session_cache *sessions, const unsigned char hash[TK_TTL_CACHE_KEY_LEN],
                     const char *tenant, const tk_user *user, long long left_ms)
{
	if (sessions == NULL)
		return;
	cached_session cs = {.user = *user};
	cs.user.from_cache = false;
	memcpy(cs.user.token_hash, hash, sizeof cs.user.token_hash);
	snprintf(cs.tenant, sizeof cs.tenant, "%s", tenant);
	tk_ttl_cache_put(sessions, hash, &cs,
	                 left_ms < SESSION_CACHE_MAX_MS ? left_ms : SESSION_CACHE_MAX_MS);
}

void context_remember_sign_in(session_cache *sessions, const tk_request *req,
                              const unsigned char token_hash[TK_TOKEN_HASH_LEN],
                              const char *user_id, const char *role, const char *session_id,
                              long long left_ms)
{
	tk_user u = {0};
	if (!tk_uuid_normalize(user_id, strlen(user_id), u.id))
		return;
	snprintf(u.role, sizeof u.role, "%s", strcmp(role, "admin") == 0 ? "admin" : "user");
	snprintf(u.session_id, sizeof u.session_id, "%s", session_id);
	remember(sessions, token_hash, req->tenant.id, &u, left_ms);
}

tk_status context_resolve_user(session_cache *sessions, db_conn *conn, tk_request *req,
                               const char *authorization, tk_error *err)
{
	if (authorization == NULL || authorization[0] == '\0')
		return TK_OK;
	unsigned char hash[TK_TTL_CACHE_KEY_LEN];
	if (!bearer_token_hash(authorization, hash))
		return invalid_session(err);
	char hash_hex[TK_TOKEN_HASH_HEX_LEN];
	hash_to_hex(hash, hash_hex);
	const char *p[] = {req->tenant.id, hash_hex};
	db_tx *tx = db_tx_new(req->arena, conn);
	db_tx_set_tenant(tx, req->tenant.id);
	int q = db_tx_add(
	    tx,
	    "SELECT s.user_id::text, tu.role, s.id::text,"
	    " (extract(epoch FROM s.expires_at - now()) * 1000)::bigint FROM sessions s"
	    " JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id"
	    " JOIN tenant_users tu ON tu.tenant_id = s.tenant_id AND tu.user_id = s.user_id"
	    " WHERE s.tenant_id = $1 AND s.token_hash = $2::bytea"
	    " AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active",
	    2, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		tk_user *u = &req->user;
		if (PQntuples(r) != 1 ||
		    !tk_uuid_normalize(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), u->id)) {
			st = invalid_session(err);
		} else {
			snprintf(u->role, sizeof u->role, "%s",
			         strcmp(PQgetvalue(r, 0, 1), "admin") == 0 ? "admin" : "user");
			snprintf(u->session_id, sizeof u->session_id, "%s", PQgetvalue(r, 0, 2));
			memcpy(u->token_hash, hash, sizeof u->token_hash);
			u->from_cache = false;
			req->has_user = true;
			remember(sessions, hash, req->tenant.id, u, atoll(PQgetvalue(r, 0, 3)));
		}
	}
	db_tx_clear(tx);
	return st;
}

/* The session remembered under hash for req's tenant, if any. */
static bool remembered(session_cache *sessions, const unsigned char *hash, const tk_request *req,
                       cached_session *out)
{
	return sessions != NULL && tk_ttl_cache_get(sessions, hash, out) &&
	       strcmp(out->tenant, req->tenant.id) == 0;
}

bool context_cached_user(session_cache *sessions, tk_request *req, const char *authorization)
{
	unsigned char hash[TK_TTL_CACHE_KEY_LEN];
	cached_session cs;
	if (sessions == NULL || authorization == NULL || !bearer_token_hash(authorization, hash) ||
	    !remembered(sessions, hash, req, &cs))
		return false;
	req->user = cs.user;
	req->user.from_cache = true;
	req->has_user = true;
	return true;
}

bool context_cached_user_current(session_cache *sessions, const tk_request *req)
{
	cached_session cs;
	return req->has_user && remembered(sessions, req->user.token_hash, req, &cs) &&
	       strcmp(cs.user.id, req->user.id) == 0 && strcmp(cs.user.role, req->user.role) == 0;
}

void context_forget_user(session_cache *sessions, const tk_request *req)
{
	if (sessions != NULL && req->has_user)
		tk_ttl_cache_remove(sessions, req->user.token_hash);
}

db_tx *context_tx(tk_request *req, db_conn *conn)
{
	db_tx *tx = db_tx_new(req->arena, conn);
	db_tx_set_tenant(tx, req->tenant.id);
	if (req->has_user) {
		db_tx_set_user(tx, req->user.id, req->user.role);
		if (req->user.from_cache) {
			char *hex = tk_arena_alloc(req->arena, TK_TOKEN_HASH_HEX_LEN);
			hash_to_hex(req->user.token_hash, hex);
			db_tx_check_session(tx, hex);
		}
	}
	return tx;
}
