/*
 * auth.c - sign-in, sign-out and "who am I" (see user.h).
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "auth/context.h"
#include "auth/password.h"
#include "auth/signin_limit.h"
#include "http/client_addr.h"
#include "http/json_body.h"
#include "users/user.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/validate.h"

static const char *const no_params[] = {NULL};

/* Unknown e-mails are checked against this, so they cost what a real check
 * costs and the response time does not reveal whether an account exists. */
static char dummy_hash[TK_PASSWORD_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_hash_init(void)
{
	unsigned char pw[24];
	tk_error err = {0};
	randombytes_buf(pw, sizeof pw);
	if (tk_password_hash((const char *)pw, sizeof pw, dummy_hash, &err) != TK_OK)
		dummy_hash[0] = '\0';
}

/* The client's address for the per-address limit (auth/signin_limit.h);
 * one shared group for a request whose address is unknown. */
static tk_ip_addr client_address(const tk_request *req)
{
	tk_ip_addr a;
	if (!tk_client_addr_parse(req->client_ip, strlen(req->client_ip), &a))
		memset(&a, 0, sizeof a);
	return a;
}

static tk_status too_many(tk_error *err, int seconds)
{
	err->retry_after = seconds > 0 ? seconds : 1;
	return tk_error_set(err, 429, "too_many_attempts", NULL,
	                    "too many failed sign-ins; wait and try again");
}

static tk_status bad_credentials(tk_error *err)
{
	return tk_error_set(err, 401, "invalid_credentials", NULL,
	                    "the e-mail address or password is wrong");
}

/*
 * Starts a session for user_id: clears the account's failures, records the
 * sign-in, stores new_hash when given, and answers 201 {token, expiresAt,
 * user}.  With invite_hash, everything is conditional on accepting that
 * invitation in this same transaction (so a token is used once, even by two
 * racing requests): no accepted invitation, no session.
 */
/* "ok": no invitation involved, or this transaction accepted it. */
#define SIGN_IN_OK                                                                                 \
	"($3::bytea IS NULL OR EXISTS (SELECT 1 FROM user_invitations WHERE tenant_id = $1"        \
	" AND token_hash = $3::bytea AND accepted_at = now()))"

static tk_status sign_in(session_cache *sessions, tk_request *req, db_conn *conn,
                         const char *user_id, const char *email, const char *new_hash,
                         const char *invite_hash, tk_response *res, tk_error *err)
{
	unsigned char raw[32];
	char token[TK_SESSION_TOKEN_LEN + 1], hash_hex[TK_TOKEN_HASH_HEX_LEN];
	unsigned char hash[TK_TOKEN_HASH_LEN];
	randombytes_buf(raw, sizeof raw);
	memcpy(token, "ts_", 3);
	sodium_bin2hex(token + 3, 65, raw, sizeof raw);
	context_token_hash(token, TK_SESSION_TOKEN_LEN, hash, hash_hex);
	db_tx *tx = context_tx(req, conn);
	const char *ip[] = {req->tenant.id, user_id, invite_hash ? invite_hash : NULL};
	/* Re-checks what accept-invitation looked up in its first transaction:
	 * the user may have been deactivated, or given a password, since. */
	db_tx_add(tx,
	          "UPDATE user_invitations SET accepted_at = now() WHERE tenant_id = $1"
	          " AND user_id = $2::uuid AND token_hash = $3::bytea AND accepted_at IS NULL"
	          " AND expires_at > now() AND EXISTS (SELECT 1 FROM users u WHERE"
	          " u.tenant_id = $1 AND u.id = $2::uuid AND u.is_active"
	          " AND u.password_hash IS NULL)",
	          3, ip);
	const char *sp[] = {req->tenant.id, user_id, invite_hash, hash_hex};
	int qs = db_tx_add(
	    tx,
	    "INSERT INTO sessions (tenant_id, user_id, token_hash, expires_at)"
	    " SELECT $1, $2::uuid, $4::bytea, now() + make_interval(hours => " TK_STR(
	        TK_SESSION_TTL_HOURS) ") WHERE " SIGN_IN_OK
	                              " RETURNING to_char(expires_at AT TIME ZONE 'UTC',"
	                              " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), id::text,"
	                              " (SELECT tu.role FROM tenant_users tu"
	                              " WHERE tu.tenant_id = $1 AND tu.user_id = $2::uuid),"
	                              " (extract(epoch FROM expires_at - now()) * 1000)"
	                              "::bigint",
	    4, sp);
	const char *fp[] = {req->tenant.id, email};
	db_tx_add(
	    tx, "DELETE FROM login_failures WHERE tenant_id = $1 AND email_lower = lower($2::text)",
	    2, fp);
	const char *up[] = {req->tenant.id, user_id, invite_hash, new_hash};
	db_tx_add(
	    tx,
	    "UPDATE users SET last_login_at = now(), password_hash = coalesce($4, password_hash)"
	    " WHERE tenant_id = $1 AND id = $2::uuid AND " SIGN_IN_OK,
	    4, up);
	int qj = db_tx_add(tx, "SELECT user_json($1, $2::uuid)::text", 2, sp);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK && PQntuples(db_tx_result(tx, qs)) == 0) {
		st = tk_error_set(err, 401, "invalid_invitation", NULL,
		                  "the invitation is not valid (used, expired or unknown)");
	} else if (st == TK_OK) {
		tk_buf b = TK_BUF_INIT;
		tk_buf_printf(&b, "{\"token\":\"%s\",\"expiresAt\":\"%s\",\"user\":", token,
		              PQgetvalue(db_tx_result(tx, qs), 0, 0));
		tk_buf_append(&b, PQgetvalue(db_tx_result(tx, qj), 0, 0),
		              (size_t)PQgetlength(db_tx_result(tx, qj), 0, 0));
		tk_buf_putc(&b, '}');
		tk_response_json(req, res, 201, b.data, b.len);
		tk_buf_free(&b);
		PGresult *rs = db_tx_result(tx, qs);
		if (!PQgetisnull(rs, 0, 2))
			context_remember_sign_in(sessions, req, hash, user_id, PQgetvalue(rs, 0, 2),
			                         PQgetvalue(rs, 0, 1), atoll(PQgetvalue(rs, 0, 3)));
	}
	sodium_memzero(token, sizeof token);
	db_tx_clear(tx);
	return st;
}

tk_status auth_accept_invitation(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                                 tk_error *err)
{
	static const char *const fields[] = {"token", "password", NULL};
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	const char *token = NULL, *password = NULL;
	char hash[TK_PASSWORD_HASH_MAX], invite_hash[67], user_id[40], email[256];
	tk_status st = TK_ERR;
	if (tk_json_string(req, body, "token", true, 100, &token, err) != TK_OK ||
	    tk_json_string(req, body, "password", true, TK_JSON_UNBOUNDED, &password, err) !=
	        TK_OK ||
	    tk_password_check(password, strlen(password), "password", err) != TK_OK)
		goto done;
	if (strlen(token) != TK_INVITATION_TOKEN_LEN || strncmp(token, "ti_", 3) != 0) {
		st = tk_error_set(err, 401, "invalid_invitation", NULL,
		                  "the invitation is not valid (used, expired or unknown)");
		goto done;
	}
	context_token_hash_hex(token, strlen(token), invite_hash);
	const char *p[] = {req->tenant.id, invite_hash};
	db_tx *tx = context_tx(req, conn);
	int q =
	    db_tx_add(tx,
	              "SELECT i.user_id::text, u.email FROM user_invitations i JOIN users u"
	              " ON u.tenant_id = i.tenant_id AND u.id = i.user_id WHERE i.tenant_id = $1"
	              " AND i.token_hash = $2::bytea AND i.accepted_at IS NULL"
	              " AND i.expires_at > now() AND u.is_active AND u.password_hash IS NULL",
	              2, p);
	st = db_tx_run(tx, err);
	bool found = st == TK_OK && PQntuples(db_tx_result(tx, q)) == 1;
	if (found) {
		snprintf(user_id, sizeof user_id, "%s", PQgetvalue(db_tx_result(tx, q), 0, 0));
		snprintf(email, sizeof email, "%s", PQgetvalue(db_tx_result(tx, q), 0, 1));
	}
	db_tx_clear(tx);
	if (st != TK_OK)
		goto done;
	if (!found) {
		st = tk_error_set(err, 401, "invalid_invitation", NULL,
		                  "the invitation is not valid (used, expired or unknown)");
		goto done;
	}
	if (tk_password_hash(password, strlen(password), hash, err) != TK_OK) {
		st = TK_ERR;
		goto done;
	}
	st = sign_in(app->sessions, req, conn, user_id, email, hash, invite_hash, res, err);
	sodium_memzero(hash, sizeof hash);
done:
	json_decref(body);
	return st;
}

/* "this row is not at the limit": within the window, fewer failures than
 * the limit; or the window has passed. */
#define LOGIN_WINDOW "make_interval(mins => " TK_STR(TK_LOGIN_WINDOW_MIN) ")"
#define LOGIN_NOT_LOCKED                                                                           \
	"(f.failures < " TK_STR(                                                                   \
	    TK_LOGIN_MAX_FAILURES) " OR f.last_failure_at <= now() - " LOGIN_WINDOW ")"

/*
 * Sign-in counts the attempt as a failure before it checks the password, in
 * a transaction of its own: an upsert on the account's login_failures row
 * that changes nothing and returns no row when the account is at its limit
 * (then 429, and the lock is not extended).  Concurrent attempts on one
 * account queue on that row, so exactly TK_LOGIN_MAX_FAILURES of them get
 * through to a password check per window however many arrive together
 * (checking first and counting after let a burst of parallel guesses
 * through).  A successful sign-in deletes the row (sign_in).  Unknown
 * e-mails are counted the same way and checked against the dummy hash.
 */
tk_status auth_login(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	static const char *const fields[] = {"email", "password", NULL};
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	json_t *body = tk_json_body(req, fields, err);
	if (body == NULL)
		return TK_ERR;
	const char *email = NULL, *password = NULL;
	tk_status st = TK_ERR;
	db_tx *tx = NULL;
	tk_signin_ticket ticket = {0};
	tk_ip_addr client = client_address(req);
	if (tk_json_string(req, body, "email", true, 255, &email, err) != TK_OK ||
	    tk_json_string(req, body, "password", true, TK_JSON_UNBOUNDED, &password, err) != TK_OK)
		goto done;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now); /* windows a clock change cannot stretch */
	int wait = tk_signin_limit_take(app->signin_limit, &client, now.tv_sec, &ticket);
	if (wait > 0) {
		st = too_many(err, wait);
		goto done;
	}
	pthread_once(&dummy_once, dummy_hash_init);

	const char *p[] = {req->tenant.id, email};
	tx = context_tx(req, conn);
	int qf = db_tx_add(
	    tx,
	    "INSERT INTO login_failures AS f (tenant_id, email_lower, failures, last_failure_at)"
	    " VALUES ($1, lower($2::text), 1, now()) ON CONFLICT (tenant_id, email_lower)"
	    " DO UPDATE SET failures = CASE WHEN f.last_failure_at <= now() - " LOGIN_WINDOW
	    " THEN 1 ELSE f.failures + 1 END, last_failure_at = now() WHERE " LOGIN_NOT_LOCKED
	    " RETURNING failures",
	    2, p);
	/* clock_timestamp(), not now(): an attempt that waited on the row began
	 * before the failure that locked it, and now() would put the end of the
	 * lock more than a window away. */
	int qw = db_tx_add(tx,
	                   "SELECT ceil(extract(epoch FROM f.last_failure_at + " LOGIN_WINDOW
	                   " - clock_timestamp()))::int FROM login_failures f WHERE"
	                   " f.tenant_id = $1 AND f.email_lower = lower($2::text)",
	                   2, p);
	int qu = db_tx_add(tx,
	                   "SELECT u.id::text, u.password_hash, u.is_active FROM users u"
	                   " WHERE u.tenant_id = $1 AND lower(u.email) = lower($2::text)",
	                   2, p);
	if (db_tx_run(tx, err) != TK_OK)
		goto done;
	PGresult *rf = db_tx_result(tx, qf), *rw = db_tx_result(tx, qw), *ru = db_tx_result(tx, qu);
	if (PQntuples(rf) == 0) {
		st = too_many(err, PQntuples(rw) == 1 ? atoi(PQgetvalue(rw, 0, 0)) : 1);
		goto done;
	}
	bool found =
	    PQntuples(ru) == 1 && !PQgetisnull(ru, 0, 1) && strcmp(PQgetvalue(ru, 0, 2), "t") == 0;
	const char *hash = found ? PQgetvalue(ru, 0, 1) : dummy_hash;
	bool ok = tk_password_verify(hash, password, strlen(password)) && found;
	char user_id[40] = "";
	if (found)
		snprintf(user_id, sizeof user_id, "%s", PQgetvalue(ru, 0, 0));
	bool rehash = ok && crypto_pwhash_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                                                   crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
	db_tx_clear(tx);
	tx = NULL;
	if (!ok) {
		/* Counted already, on both sides. */
		ticket.taken = false;
		bad_credentials(err);
		goto done;
	}
	tk_signin_limit_give_back(app->signin_limit, &ticket);
	/* Signed in: the hash upgraded when its parameters are older than today's. */
	char new_hash[TK_PASSWORD_HASH_MAX] = "";
	if (rehash && tk_password_hash(password, strlen(password), new_hash, err) != TK_OK)
		new_hash[0] = '\0';
	st = sign_in(app->sessions, req, conn, user_id, email, new_hash[0] ? new_hash : NULL, NULL,
	             res, err);
	sodium_memzero(new_hash, sizeof new_hash);
done:
	/* An attempt refused before its password was checked is no failure. */
	tk_signin_limit_give_back(app->signin_limit, &ticket);
	if (tx)
		db_tx_clear(tx);
	json_decref(body);
	return st;
}

tk_status auth_logout(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	if (!req->has_user)
		return tk_error_set(err, 400, "not_signed_in", NULL,
		                    "sign out needs a session (Authorization: Bearer ts_...)");
	const char *p[] = {req->tenant.id, req->user.session_id};
	db_tx *tx = context_tx(req, conn);
	db_tx_add(tx,
	          "UPDATE sessions SET revoked_at = now() WHERE tenant_id = $1 AND id = $2::uuid"
	          " AND revoked_at IS NULL",
	          2, p);
	tk_status st = db_tx_run(tx, err);
	db_tx_clear(tx);
	if (st == TK_OK) {
		/* Other servers find out in the next request's session check. */
		context_forget_user(app->sessions, req);
		res->status = 204;
	}
	return st;
}

tk_status auth_me(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err)
{
	(void)app;
	if (tk_request_check_params(req, no_params, err) != TK_OK)
		return TK_ERR;
	if (!req->has_user) {
		tk_buf b = TK_BUF_INIT;
		tk_buf_printf(&b, "{\"integration\":true,\"tenantId\":\"%s\",\"tenantName\":",
		              req->tenant.id);
		tk_buf_json_string(&b, req->tenant.name, strlen(req->tenant.name));
		tk_buf_putc(&b, '}');
		tk_response_json(req, res, 200, b.data, b.len);
		tk_buf_free(&b);
		return TK_OK;
	}
	const char *p[] = {req->tenant.id, req->user.id};
	db_tx *tx = context_tx(req, conn);
	int q = db_tx_add(tx, "SELECT user_json($1, $2::uuid)::text", 2, p);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		tk_response_json(req, res, 200, PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	}
	db_tx_clear(tx);
	return st;
}
