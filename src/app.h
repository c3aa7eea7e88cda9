/*
 * app.h - the process-wide state a request handler may use.
 *
 * Built once by `tekup serve` before the HTTP server starts and torn down
 * after it stops; handlers borrow it and never change it.
 */
#ifndef TK_APP_H
#define TK_APP_H

#include "auth/tenant_cache.h"
#include "db/pool.h"
#include "http/request.h"
#include "util/config.h"

typedef struct tk_app {
	const tk_config *cfg;
	db_pool *pool;          /* request role (tekup_app) */
	db_pool *operator_pool; /* operator role, for /admin and jobs */
	unsigned char master_key[32];
	tenant_cache *tenants;
} tk_app;

/*
 * A route handler.  conn is a pooled connection acquired for this request
 * (borrowed); when the route needs a tenant, req->tenant is set.  On failure
 * the handler fills err and returns TK_ERR; the server renders it.
 */
typedef tk_status (*tk_handler)(tk_app *app, tk_request *req, db_conn *conn, tk_response *res,
                                tk_error *err);

#endif
