/*
 * app.h - the process-wide state a request handler may use.
 *
 * Built once by `tekup serve` before the HTTP server starts and torn down
 * after it stops; handlers borrow it and never change it.
 */
#ifndef TK_APP_H
#define TK_APP_H

#include "auth/context.h"
#include "auth/signin_limit.h"
#include "auth/tenant_cache.h"
#include "db/pool.h"
#include "db/tx.h"
#include "http/request.h"
#include "util/config.h"

typedef struct tk_app {
	const tk_config *cfg;
	db_pool *pool;          /* request role (tekup_app) */
	db_pool *operator_pool; /* operator role, for /admin and jobs */
	unsigned char master_key[32];
	tenant_cache *tenants;
	session_cache *sessions;       /* verified sessions (auth/context.h) */
	tk_signin_limit *signin_limit; /* failed sign-ins per address */
	bool shared_flush;             /* a pipeline's writes share a WAL flush (db/tx.h) */
} tk_app;

/*
 * A route handler.  conn is a pooled connection acquired for this request
 * (borrowed); when the route needs a tenant, req->tenant is set.  On failure
 * the handler fills err and returns TK_ERR; the server renders it.
 */
typedef tk_status (*tk_handler)(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                                tk_error *err);

/*
 * A handler whose work is one transaction, in two halves, so that the
 * server can send the transactions of many requests together (server.c):
 * prepare validates the request and queues its statements on tx (the
 * tenant context is already set), keeping anything render needs in *state
 * (request arena); render builds the response from the results.  The
 * server may also run the halves alone, on a connection, like any handler.
 * A transaction that writes says so: the server never sends it a second
 * time once it may have run (whether it committed is unknown), and gives it
 * a connection of its own when the pool has one to spare (beyond one for
 * each other worker), so that the COMMITs of a batch can share a WAL flush
 * rather than wait for one each.
 */
typedef struct tk_tx_handler {
	tk_status (*prepare)(tk_request *req, db_tx *tx, void **state, tk_error *err);
	tk_status (*render)(tk_request *req, db_tx *tx, void *state, tk_response *res,
	                    tk_error *err);
	bool writes;
} tk_tx_handler;

#endif
