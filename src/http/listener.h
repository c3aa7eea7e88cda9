/*
 * listener.h - the listening socket, and the thread that accepts on it and
 * hands each connection to the HTTP worker with the fewest.
 *
 * Why tekup accepts for itself: in libmicrohttpd's thread pool every worker
 * polls the listening socket, and the one that wakes first accepts up to ten
 * connections in a row.  Sixteen keep-alive clients that connect together
 * landed 7/5/3/1 on four workers (strace, bench W2).  A worker runs one
 * request at a time, so the seven clients of the crowded worker queue behind
 * each other while another worker serves a single client: the server's tail
 * latency becomes that worker's.  The listener instead admits a connection
 * under the total and per-IP limits and gives it to the least-loaded worker.
 *
 * A connection counts against the limits from its hand-off until the owner
 * calls tk_listener_release: on libmicrohttpd's close notification, or when
 * the worker could not take it.  The workers call MHD_add_connection on
 * their own thread (server.c), where libmicrohttpd starts the connection
 * before it returns, so a connection it fails to start (no memory for its
 * 32 KiB pool) is reported and released, not left counted.
 *
 * At the total limit the listener stops accepting and lets the kernel's
 * backlog hold new clients until a connection closes; a client over the
 * per-IP limit is accepted and closed at once.
 */
#ifndef TK_HTTP_LISTENER_H
#define TK_HTTP_LISTENER_H

#include <sys/socket.h>

#include "util/status.h"

typedef struct tk_listener tk_listener;

typedef struct tk_listener_config {
	const char *bind_address; /* an IPv4 or IPv6 literal */
	long port;
	int backlog;
	long max_connections;
	long max_connections_per_ip; /* 0: no per-IP limit */
	unsigned workers;            /* hand-off targets, numbered 0..workers-1 */
} tk_listener_config;

/* Gives fd (owned by the callee from now on, closed by it even on failure)
 * to worker `worker`.  Called on the listener's thread; the callee may
 * queue it for the worker's thread and release it there on failure. */
typedef tk_status (*tk_listener_handoff)(void *cls, unsigned worker, int fd,
                                         const struct sockaddr *addr, socklen_t addrlen);

/* Binds and listens; NULL (with a logged reason) on failure.  Nothing is
 * accepted until tk_listener_start. */
tk_listener *tk_listener_open(const tk_listener_config *cfg);
/* Starts the accept thread; handoff(cls, ...) receives each admitted connection. */
tk_status tk_listener_start(tk_listener *listener, tk_listener_handoff handoff,
                            void *cls) TK_MUST_CHECK;
/* A connection handed to `worker` from `addr` has closed.  Any thread. */
void tk_listener_release(tk_listener *listener, unsigned worker, const struct sockaddr *addr);
/* Stops accepting and closes the listening socket; open connections stay
 * counted until released.  Idempotent. */
void tk_listener_stop(tk_listener *listener);
/* Frees the listener; call after every connection has been released or its
 * owner is gone.  Stops it first if needed. */
void tk_listener_free(tk_listener *listener);

#endif
