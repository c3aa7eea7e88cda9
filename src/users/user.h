/*
 * user.h - people inside a tenant: signing in (sessions) and managing users.
 *
 * Sign-in: POST /v1/auth/login with the tenant key and {email, password}
 * returns an opaque session token ("ts_" + 64 hex, stored as SHA-256,
 * expiring after TK_SESSION_TTL_HOURS, revocable).  A wrong password and an
 * unknown e-mail get the same 401 after the same work (an unknown e-mail is
 * checked against a dummy Argon2id hash), and after TK_LOGIN_MAX_FAILURES
 * failures in TK_LOGIN_WINDOW_MIN minutes an account (after
 * TK_LOGIN_MAX_IP_FAILURES a client address: an IPv4 address, an IPv6 /64)
 * gets 429 too_many_attempts until the window passes.  Hashes made with
 * weaker parameters are upgraded on a successful sign-in.
 *
 * A user created without a password is invited: the response carries an
 * invitation token (shown once, stored as SHA-256, 7 days, single use).
 *
 * Users API (/v1/users): admins and the integration only (403 otherwise);
 * the last active admin cannot be demoted or deactivated; deactivating a
 * user ends their sessions at once; the plan's maxUsers holds exactly, also
 * under concurrent creation (a trigger serialises creation per tenant).
 */
#ifndef TK_USERS_USER_H
#define TK_USERS_USER_H

#include "app.h"

#define TK_SESSION_TTL_HOURS  12
#define TK_LOGIN_MAX_FAILURES 5
/* Per client address (an IPv4 address, an IPv6 /64), in this process:
 * high enough for an office behind one NAT, low enough to stop spraying
 * one password over many accounts (auth/signin_limit.h). */
#define TK_LOGIN_MAX_IP_FAILURES 20
#define TK_LOGIN_WINDOW_MIN      15
#define TK_INVITATION_TOKEN_LEN  67 /* "ti_" + 64 hex */

tk_status auth_login(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status auth_logout(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
/* POST /v1/auth/accept-invitation {token, password}: sets the password of an
 * invited user (once, within 7 days) and signs them in (201 as login). */
tk_status auth_accept_invitation(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                                 tk_error *err);
tk_status auth_me(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);

tk_status user_list(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status user_create(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status user_get(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status user_update(tk_app *app, tk_request *req, db_conn *conn, tk_response *res, tk_error *err);
tk_status user_deactivate(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                          tk_error *err);

#endif
