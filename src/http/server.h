/*
 * server.h - the HTTP server: libmicrohttpd workers fed by our listener.
 *
 * The listener (listener.h) accepts each connection and gives it to one of
 * `threads` workers, each a thread running its own libmicrohttpd daemon on
 * epoll.  A worker runs a request to completion, holding a pooled
 * database connection while it does, so a request's transaction needs no
 * locking.  The lead endpoints are the exception that makes the server
 * fast: their transactions (one per request, each with its own tenant
 * context) wait until the worker's libmicrohttpd run has read every request
 * that was ready, and then go to PostgreSQL together: the reads in one
 * pipeline on one connection, each write on a connection of its own when
 * the pool has one free (server.c, flush_batch).
 * The server enforces its own limits on connections (total and per IP, in
 * the listener), inactivity, header bytes, body bytes and query parameters,
 * answers every rejection with the JSON error shape, and writes one
 * access-log line per request.
 */
#ifndef TK_HTTP_SERVER_H
#define TK_HTTP_SERVER_H

#include "app.h"
#include "util/status.h"

typedef struct tk_server tk_server;

/* Starts listening and serving; NULL (with a logged reason) on failure. */
tk_server *tk_server_start(tk_app *app);
/* Stops accepting, waits up to timeout_s for in-flight requests, then stops. */
void tk_server_stop(tk_server *server, int timeout_s);

#endif
