/*
 * context.c - request identity and database context (see context.h).
 */
#include "auth/context.h"

#include <sodium.h>
#include <string.h>

#include "util/validate.h"

bool context_token_well_formed(const char *t, size_t len)
{
	if (len != TK_SESSION_TOKEN_LEN || memcmp(t, "ts_", 3) != 0)
		return false;
	for (size_t i = 3; i < len; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

void context_token_hash_hex(const char *token, size_t len, char out[67])
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(hash, (const unsigned char *)token, len);
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, 65, hash, sizeof hash);
}

static tk_status invalid_session(tk_error *err)
{
	return tk_error_set(err, 401, "invalid_session", NULL,
	                    "the session is not valid; sign in again");
}

tk_status context_resolve_user(db_conn *conn, tk_request *req, const char *authorization,
                               tk_error *err)
{
	if (authorization == NULL || authorization[0] == '\0')
		return TK_OK;
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return invalid_session(err);
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	size_t len = strlen(token);
	if (!context_token_well_formed(token, len))
		return invalid_session(err);
	char hash_hex[67];
	context_token_hash_hex(token, len, hash_hex);
	const char *p[] = {req->tenant.id, hash_hex};
	db_tx *tx = db_tx_new(req->arena, conn);
	db_tx_set_tenant(tx, req->tenant.id);
	int q = db_tx_add(
	    tx,
	    "SELECT s.user_id::text, tu.role, s.id::text FROM sessions s"
	    " JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id"
	    " JOIN tenant_users tu ON tu.tenant_id = s.tenant_id AND tu.user_id = s.user_id"
	    " WHERE s.tenant_id = $1 AND s.token_hash = $2::bytea"
	    " AND s.revoked_at IS NULL AND s.expires_at > now() AND u.is_active",
	    2, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) != 1 ||
		    !tk_uuid_normalize(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0),
		                       req->user.id)) {
			st = invalid_session(err);
		} else {
			snprintf(req->user.role, sizeof req->user.role, "%s",
			         strcmp(PQgetvalue(r, 0, 1), "admin") == 0 ? "admin" : "user");
			snprintf(req->user.session_id, sizeof req->user.session_id, "%s",
			         PQgetvalue(r, 0, 2));
			req->has_user = true;
		}
	}
	db_tx_clear(tx);
	return st;
}

db_tx *context_tx(tk_request *req, db_conn *conn)
{
	db_tx *tx = db_tx_new(req->arena, conn);
	db_tx_set_tenant(tx, req->tenant.id);
	if (req->has_user)
		db_tx_set_user(tx, req->user.id, req->user.role);
	return tx;
}
