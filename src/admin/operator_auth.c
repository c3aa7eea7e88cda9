/*
 * operator_auth.c - operator tokens (see operator_auth.h).
 */
#include "admin/operator_auth.h"

#include <sodium.h>
#include <string.h>

#include "db/tx.h"
#include "util/log.h"
#include "util/validate.h"

static tk_status invalid_token(tk_error *err)
{
	return tk_error_set(err, 401, "invalid_operator_token", NULL,
	                    "the operator token is not valid");
}

static bool token_well_formed(const char *t, size_t len)
{
	if (len != TK_OPERATOR_TOKEN_LEN || memcmp(t, "to_", 3) != 0)
		return false;
	for (size_t i = 3; i < len; i++)
		if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
			return false;
	return true;
}

static void token_hash_hex(const char *token, size_t len, char out[67])
{
	unsigned char hash[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(hash, (const unsigned char *)token, len);
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, 65, hash, sizeof hash);
}

tk_status operator_authenticate(db_conn *conn, tk_arena *arena, const char *authorization,
                                tk_operator *out, tk_error *err)
{
	if (authorization == NULL || authorization[0] == '\0')
		return tk_error_set(err, 401, "missing_operator_token", NULL,
		                    "send an operator token as Authorization: Bearer <token>");
	if (strncasecmp(authorization, "Bearer ", 7) != 0)
		return invalid_token(err);
	const char *token = authorization + 7;
	while (*token == ' ')
		token++;
	size_t len = strlen(token);
	if (!token_well_formed(token, len))
		return invalid_token(err);
	char hash_hex[67];
	token_hash_hex(token, len, hash_hex);
	const char *params[] = {hash_hex};
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx,
	                  "SELECT id::text, name FROM operator_tokens"
	                  " WHERE token_hash = $1::bytea AND revoked_at IS NULL",
	                  1, params);
	db_tx_add(tx,
	          "UPDATE operator_tokens SET last_used_at = now()"
	          " WHERE token_hash = $1::bytea AND revoked_at IS NULL"
	          " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
	          1, params);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		if (PQntuples(r) != 1) {
			st = invalid_token(err);
		} else {
			snprintf(out->id, sizeof out->id, "%s", PQgetvalue(r, 0, 0));
			snprintf(out->name, sizeof out->name, "%s", PQgetvalue(r, 0, 1));
		}
	}
	db_tx_clear(tx);
	return st;
}

static bool exec_params(PGconn *pg, const char *sql, int n, const char *const *params,
                        PGresult **out)
{
	PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		log_error("%s", PQresultErrorMessage(r));
		PQclear(r);
		return false;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return true;
}

tk_status operator_token_create(PGconn *pg, const char *name, const char *actor, FILE *out)
{
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > 100 || !tk_is_utf8(name, nlen)) {
		log_error("--name must be 1 to 100 characters");
		return TK_ERR;
	}
	unsigned char raw[32];
	char token[TK_OPERATOR_TOKEN_LEN + 1], hash_hex[67], prefix[12];
	randombytes_buf(raw, sizeof raw);
	memcpy(token, "to_", 3);
	sodium_bin2hex(token + 3, 65, raw, sizeof raw);
	sodium_memzero(raw, sizeof raw);
	token_hash_hex(token, TK_OPERATOR_TOKEN_LEN, hash_hex);
	memcpy(prefix, token, 11);
	prefix[11] = '\0';
	const char *params[] = {name, hash_hex, prefix, actor};
	PGresult *r = NULL;
	bool ok = exec_params(pg,
	                      "WITH t AS (INSERT INTO operator_tokens (name, token_hash, prefix)"
	                      " VALUES ($1, $2::bytea, $3) RETURNING id, name, prefix),"
	                      " a AS (INSERT INTO operator_audit (token_id, actor, action, details)"
	                      " SELECT id, $4, 'token.create', jsonb_build_object('name', name,"
	                      " 'prefix', prefix) FROM t)"
	                      " SELECT id::text FROM t",
	                      4, params, &r);
	if (!ok)
		return TK_ERR;
	fprintf(out,
	        "token_id: %s\nname: %s\ntoken: %s\n(the token is shown once; only its hash "
	        "is stored)\n",
	        PQgetvalue(r, 0, 0), name, token);
	sodium_memzero(token, sizeof token);
	PQclear(r);
	return TK_OK;
}

tk_status operator_token_list(PGconn *pg, FILE *out)
{
	PGresult *r = NULL;
	if (!exec_params(
	        pg,
	        "SELECT id::text, prefix, name,"
	        " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	        " coalesce(to_char(last_used_at AT TIME ZONE 'UTC',"
	        " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'),"
	        " CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END"
	        " FROM operator_tokens ORDER BY created_at",
	        0, NULL, &r))
		return TK_ERR;
	fprintf(out, "%-36s  %-11s  %-8s  %-20s  %-20s  %s\n", "ID", "PREFIX", "STATUS", "CREATED",
	        "LAST USED", "NAME");
	for (int i = 0; i < PQntuples(r); i++)
		fprintf(out, "%-36s  %-11s  %-8s  %-20s  %-20s  %s\n", PQgetvalue(r, i, 0),
		        PQgetvalue(r, i, 1), PQgetvalue(r, i, 5), PQgetvalue(r, i, 3),
		        PQgetvalue(r, i, 4), PQgetvalue(r, i, 2));
	PQclear(r);
	return TK_OK;
}

tk_status operator_token_revoke(PGconn *pg, const char *id, const char *actor, FILE *out)
{
	if (!tk_is_uuid(id, strlen(id))) {
		log_error("the token id must be a UUID (see tekup admin token list)");
		return TK_ERR;
	}
	const char *params[] = {id, actor};
	PGresult *r = NULL;
	if (!exec_params(pg,
	                 "WITH t AS (UPDATE operator_tokens SET revoked_at = now()"
	                 " WHERE id = $1::uuid AND revoked_at IS NULL RETURNING id, name),"
	                 " a AS (INSERT INTO operator_audit (token_id, actor, action, details)"
	                 " SELECT id, $2, 'token.revoke', jsonb_build_object('name', name) FROM t)"
	                 " SELECT count(*) FROM t",
	                 2, params, &r))
		return TK_ERR;
	bool revoked = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
	PQclear(r);
	if (!revoked) {
		log_error("no active operator token with id %s", id);
		return TK_ERR;
	}
	fprintf(out, "revoked %s\n", id);
	return TK_OK;
}
