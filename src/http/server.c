/*
 * server.c - libmicrohttpd glue, request lifecycle and error rendering.
 *
 * Lifecycle of a request (see server.h):
 *   first callback    create tk_request + arena, check header bytes and
 *                     Content-Length, collect query parameters
 *   upload callbacks  append the body, up to TK_BODY_MAX_BYTES
 *   final callback    route -> limits -> pooled connection -> tenant ->
 *                     handler -> response
 *                     or, for a lead request whose tenant key is cached (a
 *                     tk_tx_handler route): route -> limits -> prepare, and
 *                     the transaction waits in the worker's batch
 *   again, batched    after flush_batch: the rendered response
 *   completed         access log line, arena destroyed
 *
 * Each worker is one thread running its own libmicrohttpd daemon
 * (worker_main); the listener hands it connections (listener.h).
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin/operator_auth.h"
#include "auth/context.h"
#include "http/client_addr.h"
#include "http/listener.h"
#include "http/router.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/validate.h"

/* libmicrohttpd's own per-connection memory: above TK_HEADERS_MAX_BYTES so
 * that our check (with a JSON answer) fires first for heads up to ~28 KiB;
 * past that the library answers 431 itself.  Not larger: libmicrohttpd
 * zeroes the whole area after every request, and at 64 KiB that memset was
 * 8% of the CPU of a single-lead GET (perf, bench W1). */
#define SERVER_CONNECTION_MEMORY (32 * 1024)
#define SERVER_LISTEN_BACKLOG    1024
/* Bodies over the limit but under this are read and thrown away, so the
 * client sees the 413 instead of a reset connection. */
#define SERVER_DISCARD_MAX_BYTES (8 * 1024 * 1024)

/* At most this many requests' transactions go in one pipeline. */
#define SERVER_BATCH_MAX 32

/* A connection the listener handed over, waiting for its worker's thread. */
typedef struct incoming_conn {
	int fd;
	struct sockaddr_storage addr;
	socklen_t addrlen;
} incoming_conn;

/*
 * A connection's clock for the request deadline (--request-timeout-s):
 * libmicrohttpd's own timeout counts only inactivity, so a client sending a
 * byte a second would hold its connection for ever.  From the connection's
 * start, or its previous answer, the next request must have arrived whole
 * within the deadline; while it is being answered the clock stops.  A
 * worker checks its connections' clocks once a second (sweep_clocks) and
 * shuts down the socket of any that is late, which libmicrohttpd then
 * closes as a client gone.  Owned by the worker's thread: made and linked
 * when libmicrohttpd starts the connection, freed when it closes it.
 */
typedef struct conn_clock {
	struct conn_clock *prev, *next;
	struct MHD_Connection *connection;
	long long since_ms; /* CLOCK_MONOTONIC: opened, or last answered */
	bool answering;     /* the request is whole: being answered */
	bool cut;           /* shut down for being late */
} conn_clock;

#define SERVER_SWEEP_INTERVAL_MS 1000

/* A request whose transaction waits in its worker's batch. */
typedef struct coalesced {
	db_tx *tx;
	const tk_tx_handler *handler;
	void *state; /* prepare's, for render */
	bool done;
	int batch; /* transactions in the pipeline that answered it */
	tk_status st;
	tk_response res;
	tk_error err;
	bool session_ended;  /* the cached session failed its check */
	bool awaiting_flush; /* committed deferred: answered once flushed */
} coalesced;

typedef struct server_worker {
	struct MHD_Daemon *daemon;
	tk_server *server;
	unsigned index;
	pthread_t thread;
	bool thread_started;
	int epoll_fd; /* the daemon's epoll fd and wake_fd */
	int wake_fd;  /* eventfd: a connection was handed over, or stop */
	atomic_bool stopping;

	pthread_mutex_t lock; /* guards incoming */
	incoming_conn *incoming;
	size_t nincoming, incoming_cap;
	atomic_bool has_incoming; /* set with incoming, for a look without the lock */

	/* The worker thread's own. */
	bool adding_started; /* MHD_add_connection got as far as STARTED */
	conn_clock *clocks;  /* its open connections */
	long long next_sweep_ms;
	tk_request *batch[SERVER_BATCH_MAX];
	int nbatch;
} server_worker;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The worker whose thread this is (NULL on other threads). */
static __thread server_worker *current_worker;

struct tk_server {
	tk_app *app;
	tk_listener *listener;
	server_worker *workers;
	unsigned n_workers;
	atomic_int in_flight;
	atomic_bool shared_flush; /* app's, until wal_flush_point() is found gone */
};

static void mhd_log(void *cls, const char *fmt, va_list ap) TK_PRINTF(2, 0);

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("http: %s", msg);
}

static bool request_id_acceptable(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > TK_REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static enum MHD_Result count_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key,
                                          size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	(void)key;
	(void)value;
	*(size_t *)cls += key_size + value_size + 4;
	return MHD_YES;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	tk_request *req = cls;
	if (req->query_invalid)
		return MHD_YES;
	const char *reason = NULL;
	if (req->nquery >= TK_QUERY_MAX_PARAMS)
		reason = "too many query parameters";
	else if (key_size == 0 || key_size > 63 || memchr(key, '\0', key_size) ||
	         !tk_is_utf8(key, key_size))
		reason = "a query parameter name is not valid";
	else if (value_size > TK_QUERY_VALUE_MAX_BYTES)
		reason = "a query parameter value is too long";
	else if (value && !tk_is_utf8(value, value_size))
		reason = "a query parameter value is not valid UTF-8 text";
	else
		for (int i = 0; i < req->nquery; i++)
			if (strlen(req->query[i].name) == key_size &&
			    !memcmp(req->query[i].name, key, key_size)) {
				reason = "a query parameter is given more than once";
				break;
			}
	if (reason) {
		req->query_invalid = true;
		req->query_invalid_reason = reason;
		size_t n = key_size < sizeof req->query_invalid_name - 1
		               ? key_size
		               : sizeof req->query_invalid_name - 1;
		if (tk_is_utf8(key, n))
			memcpy(req->query_invalid_name, key, n);
		req->query_invalid_name[n] = '\0';
		return MHD_YES;
	}
	tk_query_param *q = &req->query[req->nquery++];
	q->name = tk_arena_strndup(req->arena, key, key_size);
	q->value = value ? tk_arena_strndup(req->arena, value, value_size) : "";
	q->value_len = value ? value_size : 0;
	return MHD_YES;
}

/*
 * A request id only has to be unique, not secret: a per-thread random prefix
 * (drawn once) and a per-thread counter, instead of a getrandom() syscall per
 * request.  The counter goes through a bijection of 64-bit integers (an odd
 * multiplier and a random offset) so ids do not reveal request volume.
 */
static void new_request_id(char *out, size_t size)
{
	static __thread unsigned char raw[16];
	static __thread bool seeded;
	static __thread uint64_t counter, offset;
	if (!seeded) {
		randombytes_buf(raw, 8);
		randombytes_buf(&offset, sizeof offset);
		seeded = true;
	}
	uint64_t n = ++counter * 0x9E3779B97F4A7C15ULL + offset;
	for (int i = 0; i < 8; i++)
		raw[8 + i] = (unsigned char)(n >> (56 - 8 * i));
	sodium_bin2hex(out, size, raw, sizeof raw);
}

/* Every X-Forwarded-For field, in order, joined with commas: several fields
 * are one list (RFC 9110 5.3), and a proxy may add its own as a new field. */
static enum MHD_Result collect_forwarded_for(void *cls, enum MHD_ValueKind kind, const char *key,
                                             size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	tk_buf *xff = cls;
	if (key_size != 15 || strncasecmp(key, "X-Forwarded-For", 15) != 0 || value == NULL)
		return MHD_YES;
	if (xff->len > 0)
		tk_buf_putc(xff, ',');
	tk_buf_append(xff, value, value_size);
	return MHD_YES;
}

/* req->client_ip is the TCP peer, or the client a trusted proxy names
 * (http/client_addr.h). */
static tk_request *request_new(struct MHD_Connection *connection, const char *url,
                               const char *method, const tk_proxy_list *trusted)
{
	tk_arena *arena = tk_arena_create();
	tk_request *req = tk_arena_calloc(arena, 1, sizeof *req);
	req->arena = arena;
	req->connection = connection;
	req->method = tk_arena_strdup(arena, method);
	req->path = tk_arena_strdup(arena, url);
	clock_gettime(CLOCK_MONOTONIC, &req->started);

	const char *rid = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-Request-ID");
	if (rid && request_id_acceptable(rid)) {
		snprintf(req->request_id, sizeof req->request_id, "%s", rid);
	} else {
		new_request_id(req->request_id, sizeof req->request_id);
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	tk_ip_addr peer, client;
	if (ci && ci->client_addr && tk_ip_addr_from_sockaddr(ci->client_addr, &peer) == TK_OK) {
		client = peer;
		if (trusted->n > 0 && tk_proxy_list_has(trusted, &peer)) {
			tk_buf xff = TK_BUF_INIT;
			MHD_get_connection_values_n(connection, MHD_HEADER_KIND,
			                            collect_forwarded_for, &xff);
			tk_client_addr_resolve(trusted, &peer, xff.data, xff.len, &client);
			tk_buf_free(&xff);
		}
		tk_client_addr_format(&client, req->client_ip, sizeof req->client_ip);
	}
	size_t header_bytes = 0;
	MHD_get_connection_values_n(connection, MHD_HEADER_KIND, count_header_bytes, &header_bytes);
	req->headers_too_large = header_bytes > TK_HEADERS_MAX_BYTES;
	MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, collect_query, req);
	return req;
}

/*
 * The body size a request declares: its Content-Length as a number (leading
 * zeros allowed; LLONG_MAX past 12 digits, more than any limit), or 0 when it
 * has none, or has a Transfer-Encoding, which overrides it (RFC 9112 6.3)
 * and whose body is measured as it arrives.  libmicrohttpd has already
 * refused a Content-Length that is not a number.
 */
static long long declared_body_size(tk_request *req)
{
	const char *cl = tk_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl == NULL || tk_request_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return 0;
	while (*cl == '0' && cl[1] != '\0')
		cl++;
	return strlen(cl) > 12 ? LLONG_MAX : atoll(cl);
}

static bool request_has_body(tk_request *req)
{
	if (req->body.len > 0 || req->body_too_large)
		return true;
	return declared_body_size(req) > 0 ||
	       tk_request_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static bool content_type_is_json(const char *ct)
{
	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	size_t n = strlen("application/json");
	if (strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* X-Tenant-Name carries a name a tenant chose: percent-encode anything that
 * is not printable ASCII (and '%') so it can never break the header. */
static const char *header_safe(tk_arena *arena, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = tk_arena_alloc(arena, n * 3 + 1);
	char *o = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7E || c == '%') {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		} else {
			*o++ = (char)c;
		}
	}
	*o = '\0';
	return out;
}

static void render_error(tk_request *req, tk_response *res, const tk_error *err)
{
	tk_buf b = TK_BUF_INIT;
	tk_buf_puts(&b, "{\"error\":{\"code\":");
	tk_buf_json_string(&b, err->code, strlen(err->code));
	tk_buf_puts(&b, ",\"message\":");
	tk_buf_json_string(&b, err->message, strlen(err->message));
	if (err->has_field && tk_is_utf8(err->field, strlen(err->field))) {
		tk_buf_puts(&b, ",\"field\":");
		tk_buf_json_string(&b, err->field, strlen(err->field));
	}
	tk_buf_puts(&b, "}}");
	tk_response_json(req, res, err->http_status, b.data, b.len);
	tk_buf_free(&b);
	if (err->http_status == 401 && strstr(err->code, "operator_token"))
		tk_response_header(req, res, "WWW-Authenticate", "Bearer realm=\"tekup-admin\"");
	if (err->retry_after > 0) {
		char ra[16];
		snprintf(ra, sizeof ra, "%d", err->retry_after);
		tk_response_header(req, res, "Retry-After", ra);
	}
	if (err->allow)
		tk_response_header(req, res, "Allow", err->allow);
	req->error_code = err->code;
}

static tk_status check_feature(const tk_request *req, const tk_route *route, tk_error *err)
{
	if (route->feature != TK_FEATURE_NONE && !(req->tenant.features & route->feature))
		return tk_error_set(err, 403, "feature_disabled", NULL,
		                    "the tenant's plan does not include %s",
		                    tk_feature_name(route->feature));
	return TK_OK;
}

/* Runs a tk_tx_handler on its own, on conn (see coalesce for the other way). */
static tk_status run_tx_handler(const tk_tx_handler *h, tk_request *req, db_conn *conn,
                                tk_response *res, tk_error *err)
{
	void *state = NULL;
	db_tx *tx = context_tx(req, conn);
	tk_status st = h->prepare(req, tx, &state, err);
	if (st == TK_OK)
		st = db_tx_run(tx, err);
	if (st == TK_OK)
		st = h->render(req, tx, state, res, err);
	db_tx_clear(tx);
	return st;
}

/* Undoes context_cached_user: the request goes on as if no session had
 * been remembered (it is verified in the database). */
static void forget_unverified_user(tk_request *req)
{
	req->has_user = false;
	memset(&req->user, 0, sizeof req->user);
	req->session_rechecked = true;
}

/*
 * Puts the request's transaction in its worker's batch instead of running
 * it now, when it needs no round trip of its own first: the route is a
 * tk_tx_handler, the tenant key is cached, and the session, if any, is one
 * verified before (its transaction checks it again first).  True when the
 * request was taken; *st is TK_ERR if it already failed (403, 400).
 */
static bool coalesce(tk_server *srv, tk_request *req, const tk_route *route, const char *tenant_key,
                     const char *authorization, tk_status *st, tk_error *err)
{
	server_worker *w = current_worker;
	if (w == NULL || w->nbatch >= SERVER_BATCH_MAX || route->auth != TK_AUTH_TENANT)
		return false;
	if (route->tx == NULL || !tenant_cache_lookup(srv->app->tenants, tenant_key, &req->tenant))
		return false;
	bool signed_in = authorization != NULL && authorization[0] != '\0';
	if (signed_in && (req->session_rechecked ||
	                  !context_cached_user(srv->app->sessions, req, authorization)))
		return false;
	req->has_tenant = true;
	*st = check_feature(req, route, err);
	coalesced *c = NULL;
	if (*st == TK_OK) {
		c = tk_arena_calloc(req->arena, 1, sizeof *c);
		c->tx = context_tx(req, NULL);
		c->handler = route->tx;
		*st = route->tx->prepare(req, c->tx, &c->state, err);
	}
	if (*st != TK_OK && signed_in) {
		/* Refused before any database work, so the remembered session
		 * was never checked: a session that has ended must get its 401,
		 * not this answer.  Verify it first, on the ordinary path. */
		forget_unverified_user(req);
		memset(err, 0, sizeof *err);
		return false;
	}
	if (*st != TK_OK)
		return true;
	req->coalesced = c;
	w->batch[w->nbatch++] = req;
	return true;
}

static tk_status dispatch(tk_server *srv, tk_request *req, tk_response *res, tk_error *err)
{
	const tk_route *route = NULL;
	if (req->headers_too_large)
		return tk_error_set(err, 431, "headers_too_large", NULL,
		                    "request headers exceed %d bytes", TK_HEADERS_MAX_BYTES);
	if (req->path_refused)
		return tk_error_set(err, 400, "invalid_path", NULL,
		                    "the path must not encode a NUL (%%00) or a slash (%%2F)");
	if (tk_router_match(tk_api_routes, tk_api_nroutes, req, &route, err) != TK_OK)
		return TK_ERR;
	if (req->body_too_large)
		return tk_error_set(err, 413, "payload_too_large", NULL,
		                    "the request body exceeds %d bytes", TK_BODY_MAX_BYTES);
	if (route->body == TK_BODY_JSON ||
	    (route->body == TK_BODY_OPTIONAL && request_has_body(req))) {
		if (!content_type_is_json(tk_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE)))
			return tk_error_set(err, 415, "unsupported_media_type", NULL,
			                    "send the body as application/json");
	} else if (request_has_body(req)) {
		return tk_error_set(err, 400, "body_not_allowed", NULL,
		                    "this endpoint does not accept a request body");
	}

	/* A read that finds its pooled connection dead (PostgreSQL restarted
	 * since it was last used) is retried once on a fresh connection; a
	 * write is not, because whether it committed is unknown. */
	bool retry_allowed = strcmp(req->method, "GET") == 0;
	/* Missing credentials are answered without touching the database. */
	const char *tenant_key = tk_request_header(req, "X-Tenant-Key");
	const char *authorization = tk_request_header(req, "Authorization");
	bool tenant_route = route->auth == TK_AUTH_TENANT || route->auth == TK_AUTH_TENANT_KEY_ONLY;
	if (tenant_route && (tenant_key == NULL || tenant_key[0] == '\0'))
		return tenant_cache_resolve(srv->app->tenants, NULL, req->arena, NULL, &req->tenant,
		                            err);
	if (route->auth == TK_AUTH_OPERATOR && (authorization == NULL || authorization[0] == '\0'))
		return operator_authenticate(NULL, req->arena, NULL, &req->op, err);
	tk_status queued;
	if (coalesce(srv, req, route, tenant_key, authorization, &queued, err))
		return queued;
	db_pool *pool = route->auth == TK_AUTH_OPERATOR ? srv->app->operator_pool : srv->app->pool;
	for (;;) {
		/* Requests answered earlier in this turn may have left access
		 * lines: write them if due, as this transaction may block. */
		if (tk_log_flush_due_ms() == 0)
			tk_log_flush();
		db_conn *conn = NULL;
		if (db_pool_acquire(pool, &conn, err) != TK_OK)
			return TK_ERR;
		tk_status st = TK_OK;
		if (route->auth == TK_AUTH_OPERATOR) {
			st = operator_authenticate(conn, req->arena,
			                           tk_request_header(req, "Authorization"),
			                           &req->op, err);
			req->has_operator = st == TK_OK;
		} else if (tenant_route) {
			st = tenant_cache_resolve(srv->app->tenants, conn, req->arena, tenant_key,
			                          &req->tenant, err);
			req->has_tenant = st == TK_OK;
			if (st == TK_OK && route->auth == TK_AUTH_TENANT)
				st = context_resolve_user(srv->app->sessions, conn, req,
				                          authorization, err);
		}
		if (st == TK_OK)
			st = check_feature(req, route, err);
		if (st == TK_OK)
			st = route->tx != NULL ? run_tx_handler(route->tx, req, conn, res, err)
			                       : route->handler(srv->app, req, conn, res, err);
		bool lost = st != TK_OK && PQstatus(db_conn_pg(conn)) != CONNECTION_OK;
		db_pool_release(pool, conn);
		if (!lost || !retry_allowed)
			return st;
		retry_allowed = false;
		memset(err, 0, sizeof *err);
		memset(res, 0, sizeof *res);
		log_info("retrying a read on a fresh database connection");
	}
}

static conn_clock *clock_of(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

static enum MHD_Result respond(tk_server *srv, struct MHD_Connection *connection, tk_request *req,
                               const tk_error *preset)
{
	conn_clock *clock = clock_of(connection);
	if (clock)
		clock->answering = true;
	tk_error err = {0};
	tk_response res = {0};
	tk_status st;
	coalesced *c = req->coalesced;
	if (preset) {
		err = *preset;
		st = TK_ERR;
	} else if (c != NULL && !c->done) {
		/* Batched: libmicrohttpd asks again on its next run, after the
		 * worker has sent the batch (worker_main), so no suspend/resume
		 * (each costs two epoll_ctl calls). */
		return MHD_YES;
	} else if (c != NULL && !c->session_ended) {
		st = c->st;
		res = c->res;
		err = c->err;
	} else {
		if (c != NULL) {
			/* The remembered session has ended or changed (its check
			 * failed, so nothing ran; batch_finish forgot it): answer as
			 * for a session never seen, verifying it in the database. */
			req->coalesced = NULL;
			forget_unverified_user(req);
		}
		st = dispatch(srv, req, &res, &err);
		if (st == TK_OK && req->coalesced != NULL)
			return MHD_YES; /* answered after the batch is sent */
	}
	if (st != TK_OK) {
		if (err.http_status == 0)
			tk_error_set(&err, 500, "internal_error", NULL,
			             "an internal error occurred");
		res.nheaders = 0;
		render_error(req, &res, &err);
	}
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(res.body_len, (void *)res.body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (res.body_len > 0)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        "application/json; charset=utf-8");
	MHD_add_response_header(r, "X-Request-ID", req->request_id);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (req->has_tenant) {
		MHD_add_response_header(r, "X-Tenant-ID", req->tenant.id);
		MHD_add_response_header(r, "X-Tenant-Name",
		                        header_safe(req->arena, req->tenant.name));
	}
	for (int i = 0; i < res.nheaders; i++)
		MHD_add_response_header(r, res.headers[i].name, res.headers[i].value);
	req->status = res.status ? res.status : 200;
	enum MHD_Result ret = MHD_queue_response(connection, (unsigned int)req->status, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * The request target as the client sent it, before libmicrohttpd decodes
 * the path: a path that encodes a NUL (%00, which would cut the decoded path
 * short) or a slash (%2F, which would route as one) names a different
 * resource to tekup than to a proxy or firewall that reads the raw path, so
 * it is refused (400 invalid_path) rather than guessed at.  The query string
 * is decoded and checked per parameter (collect_query).  Returns the mark
 * on_request finds in *con_cls; NULL for an ordinary path.
 */
static char path_refused_mark;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *connection)
{
	(void)cls;
	(void)connection;
	const char *query = strchr(uri, '?');
	for (const char *p = strchr(uri, '%'); p && (query == NULL || p < query);
	     p = strchr(p + 1, '%'))
		if ((p[1] == '0' && p[2] == '0') || (p[1] == '2' && (p[2] == 'f' || p[2] == 'F')))
			return &path_refused_mark;
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	tk_server *srv = cls;
	tk_request *req = *con_cls;
	bool path_refused = *con_cls == &path_refused_mark;
	if (req == NULL || path_refused) {
		req = request_new(connection, url, method, &srv->app->cfg->trusted_proxies);
		req->path_refused = path_refused;
		*con_cls = req;
		atomic_fetch_add(&srv->in_flight, 1);
		long long declared = declared_body_size(req);
		if (declared > TK_BODY_MAX_BYTES) {
			req->body_too_large = true;
			/* A modest excess is read and discarded so that any client can
			 * read the 413; a client waiting for 100-continue, or a huge
			 * body, is answered at once and the connection closed. */
			if (tk_request_header(req, "Expect") ||
			    declared > SERVER_DISCARD_MAX_BYTES) {
				tk_error err = {0};
				tk_error_set(&err, 413, "payload_too_large", NULL,
				             "the request body exceeds %d bytes",
				             TK_BODY_MAX_BYTES);
				return respond(srv, connection, req, &err);
			}
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		req->body_received += *upload_data_size;
		if (req->body_received > SERVER_DISCARD_MAX_BYTES && req->status == 0)
			return MHD_NO; /* an endless (chunked) body: drop the connection */
		if (!req->body_too_large) {
			if (req->body.len + *upload_data_size > TK_BODY_MAX_BYTES) {
				req->body_too_large = true;
				tk_buf_free(&req->body);
			} else {
				tk_buf_append(&req->body, upload_data, *upload_data_size);
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->status != 0) /* already answered (early 413) */
		return MHD_YES;
	return respond(srv, connection, req, NULL);
}

/* A request that ends before its batch was sent leaves the batch: its
 * arena is about to go.  libmicrohttpd 0.9.75 did not end a request between
 * our handler's return and the flush in any test (clients that reset or
 * half-close, test_coalescing.py); this keeps a later version that does
 * from leaving a freed request in the batch. */
static void leave_batch(tk_request *req)
{
	server_worker *w = current_worker;
	coalesced *c = req->coalesced;
	if (w == NULL || c == NULL || c->done)
		return;
	for (int i = 0; i < w->nbatch; i++)
		if (w->batch[i] == req) {
			memmove(&w->batch[i], &w->batch[i + 1],
			        (size_t)(w->nbatch - i - 1) * sizeof w->batch[0]);
			w->nbatch--;
			return;
		}
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	tk_server *srv = cls;
	tk_request *req = *con_cls;
	*con_cls = NULL;
	conn_clock *clock = clock_of(connection);
	if (clock) { /* the next request's time starts now */
		clock->since_ms = now_ms();
		clock->answering = false;
	}
	if (req == NULL || (void *)req == &path_refused_mark) /* on_request never saw it */
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	tk_request_log entry = {
	    .request_id = req->request_id,
	    .tenant_id = req->has_tenant ? req->tenant.id : NULL,
	    /* A remembered session is named only once its check has passed. */
	    .user_id = req->has_user && !req->user.from_cache ? req->user.id : NULL,
	    .method = req->method,
	    .path = req->path,
	    .status = req->status,
	    .duration_ms = (double)(now.tv_sec - req->started.tv_sec) * 1e3 +
	                   (double)(now.tv_nsec - req->started.tv_nsec) / 1e6,
	    .error_code = req->error_code,
	    .batch = req->coalesced ? ((coalesced *)req->coalesced)->batch : 0,
	};
	tk_log_request(&entry);
	leave_batch(req);
	tk_buf_free(&req->body);
	tk_arena_destroy(req->arena);
	atomic_fetch_sub(&srv->in_flight, 1);
}

/* libmicrohttpd's close notification: the listener stops counting the
 * connection against the limits and against its worker's load. */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	server_worker *worker = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		worker->adding_started = true;
		conn_clock *clock = tk_calloc(1, sizeof *clock);
		clock->connection = connection;
		clock->since_ms = now_ms();
		clock->next = worker->clocks;
		if (worker->clocks)
			worker->clocks->prev = clock;
		worker->clocks = clock;
		*socket_context = clock;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	conn_clock *clock = *socket_context;
	if (clock) {
		if (clock->prev)
			clock->prev->next = clock->next;
		else
			worker->clocks = clock->next;
		if (clock->next)
			clock->next->prev = clock->prev;
		free(clock);
		*socket_context = NULL;
	}
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	tk_listener_release(worker->server->listener, worker->index,
	                    ci != NULL ? ci->client_addr : NULL);
}

/* Records a batched request's outcome (the response or the error). */
static void batch_finish(tk_request *req, int batch, tk_status st, const tk_error *err)
{
	coalesced *c = req->coalesced;
	c->batch = batch;
	c->session_ended = st != TK_OK && db_tx_session_ended(c->tx);
	if (c->session_ended) /* at once: the batch's other requests with it */
		context_forget_user(current_worker->server->app->sessions, req);
	else if (st == TK_OK || (err->http_status >= 400 && err->http_status < 500))
		req->user.from_cache = false; /* its check ran and passed */
	if (st == TK_OK)
		st = c->handler->render(req, c->tx, c->state, &c->res, &c->err);
	else
		c->err = *err;
	c->st = st;
	c->done = true;
	db_tx_clear(c->tx);
}

static bool batch_writes(const tk_request *req)
{
	return ((const coalesced *)req->coalesced)->handler->writes;
}

/* One pooled connection's share of a batch: one pipeline, one Sync. */
typedef struct batch_pipeline {
	db_conn *conn;
	tk_request *reqs[SERVER_BATCH_MAX];
	int n;
	int anchor; /* the write whose COMMIT flushes the others', or -1 */
} batch_pipeline;

/*
 * Shares todo out among connections: the reads all go on the first, one
 * connection waited for like any request's; each write goes on a
 * connection of its own when the pool has more than keep_free free at
 * once, and after the reads on the first otherwise.  False (err set) when
 * not even the first connection could be had.
 */
static bool batch_plan(db_pool *pool, int keep_free, tk_request **todo, int ntodo,
                       batch_pipeline *pipes, int *npipes, tk_error *err)
{
	*npipes = 0;
	if (db_pool_acquire(pool, &pipes[0].conn, err) != TK_OK)
		return false;
	pipes[0].n = 0;
	*npipes = 1;
	for (int i = 0; i < ntodo; i++)
		if (!batch_writes(todo[i]))
			pipes[0].reqs[pipes[0].n++] = todo[i];
	for (int i = 0; i < ntodo; i++) {
		if (!batch_writes(todo[i]))
			continue;
		batch_pipeline *own = &pipes[*npipes];
		if (pipes[0].n > 0 && db_pool_try_acquire(pool, keep_free, &own->conn)) {
			own->reqs[0] = todo[i];
			own->n = 1;
			(*npipes)++;
		} else {
			pipes[0].reqs[pipes[0].n++] = todo[i];
		}
	}
	return true;
}

/*
 * With shared_flush, the pipeline's writes share one WAL flush when it has
 * two or more: each but the last commits deferred, and the last is their
 * anchor (db/tx.h, db_tx_flush).  A backend runs a pipeline's transactions
 * in order, so the anchor's commit record follows theirs in the WAL, and
 * its flush makes them all durable: one fsync where there were k.
 */
static void pipeline_plan_flush(batch_pipeline *p, bool shared_flush)
{
	int nwrites = 0;
	p->anchor = -1;
	for (int i = 0; shared_flush && i < p->n; i++)
		if (batch_writes(p->reqs[i])) {
			p->anchor = i;
			nwrites++;
		}
	if (nwrites < 2)
		p->anchor = -1;
	else
		log_debug("batch: %d writes share one WAL flush; the last, %s %s, flushes it",
		          nwrites, p->reqs[p->anchor]->method, p->reqs[p->anchor]->path);
	for (int i = 0; i < p->n; i++) {
		db_tx_flush f = DB_TX_FLUSH_OWN;
		if (p->anchor >= 0 && batch_writes(p->reqs[i]))
			f = i == p->anchor ? DB_TX_FLUSH_ANCHOR : DB_TX_FLUSH_DEFERRED;
		db_tx_set_flush(((coalesced *)p->reqs[i]->coalesced)->tx, f);
	}
}

/* Sends a pipeline; the number of transactions sent, or 0 if the
 * connection failed.  Then no Sync went out, but libpq may have passed on
 * earlier transactions, and PostgreSQL runs a BEGIN ... COMMIT without
 * waiting for a Sync: a write there may have committed, and is treated as
 * lost with the connection. */
static int pipeline_send(batch_pipeline *p, bool shared_flush)
{
	int nsent = 0;
	pipeline_plan_flush(p, shared_flush);
	for (; nsent < p->n; nsent++) {
		coalesced *c = p->reqs[nsent]->coalesced;
		db_tx_forget_results(c->tx);
		db_tx_bind(c->tx, p->conn);
		db_tx_set_batched(c->tx, true);
		if (db_tx_send(c->tx, nsent == p->n - 1) != TK_OK)
			break;
	}
	if (nsent < p->n) {
		db_conn_mark_broken(p->conn);
		return 0;
	}
	return nsent;
}

/* Answers the deferred writes of p before index upto that await the flush. */
static void finish_deferred(batch_pipeline *p, int upto, tk_status st, const tk_error *err)
{
	for (int k = 0; k < upto; k++) {
		coalesced *c = p->reqs[k]->coalesced;
		if (c->awaiting_flush) {
			c->awaiting_flush = false;
			batch_finish(p->reqs[k], p->n, st, err);
		}
	}
}

/*
 * The pipeline's anchor did not commit (it failed, was skipped, or the
 * connection was lost), so the deferred writes before it that did commit
 * are not known to be on disk.  One flush of their own, on the same
 * backend (db_tx_flush_wal), makes them durable before they are answered;
 * if it cannot run there they get 503, as a write whose COMMIT went
 * unanswered does: committed, maybe lost, and the client cannot know.
 */
static void settle_deferred(batch_pipeline *p, int upto, bool lost)
{
	tk_error err = {0};
	tk_status st = lost ? TK_ERR : db_tx_flush_wal(p->conn, &err);
	if (st != TK_OK) {
		log_error("committed writes could not be made durable (%s): answered 503",
		          lost ? "the connection was lost" : err.message);
		tk_error_database_unavailable(&err);
	} else {
		log_debug("batch: flushed the WAL for writes whose anchor did not commit");
	}
	finish_deferred(p, upto, st, st == TK_OK ? NULL : &err);
}

/*
 * Reads a sent pipeline's results in order and answers its requests, then
 * releases its connection.  Transactions that must go again are added to
 * again: those skipped after an earlier failure (they never ran), and,
 * while *may_retry_lost, the reads not answered on a lost connection.
 * A write not answered on a lost connection may have committed: it gets
 * 503, as a write on its own does, and is never sent again.  A deferred
 * write that committed is answered once its anchor has committed, or, if
 * the anchor did not, once settle_deferred has flushed.
 */
static void pipeline_receive(db_pool *pool, batch_pipeline *p, int nsent, bool *may_retry_lost,
                             tk_request **again, int *nagain)
{
	bool lost = nsent < p->n, failed = false;
	int nheld = 0; /* deferred writes that committed, awaiting the flush */
	/* Deadlines run from now, not from the send: this worker may have
	 * spent a while reading the pipelines before this one.  Every tx waits
	 * for them all, as the first answer comes after the Sync. */
	long long budget_ms = 0;
	for (int k = 0; k < nsent; k++)
		budget_ms += db_tx_budget_ms(((coalesced *)p->reqs[k]->coalesced)->tx);
	for (int k = 0; k < nsent; k++)
		db_tx_allow_batch(((coalesced *)p->reqs[k]->coalesced)->tx, budget_ms);
	int i = 0;
	for (; i < nsent && !lost; i++) {
		coalesced *c = p->reqs[i]->coalesced;
		tk_error e = {0};
		tk_status st = db_tx_receive(c->tx, &e);
		if (st == TK_OK && p->anchor >= 0 && i < p->anchor && batch_writes(p->reqs[i])) {
			c->awaiting_flush = true; /* not durable yet */
			nheld++;
		} else if (st == TK_OK) {
			if (i == p->anchor && nheld > 0) { /* its flush covered them */
				finish_deferred(p, i, TK_OK, NULL);
				nheld = 0;
			}
			batch_finish(p->reqs[i], nsent, st, NULL);
		} else if (db_tx_flush_failed(c->tx)) {
			/* wal_flush_point() is gone (a schema rolled back under the
			 * server): the tx rolled back whole; it goes again with the
			 * shared flush off. */
			if (atomic_exchange(&current_worker->server->shared_flush, false))
				log_error(
				    "the flush statement failed (is wal_flush_point() gone? run "
				    "tekup migrate): writes sent together now each wait for "
				    "their own WAL flush");
			failed = true;
			again[(*nagain)++] = p->reqs[i];
		} else if (db_tx_connection_lost(c->tx)) {
			lost = true;
			break;
		} else if (db_tx_skipped(c->tx) && failed) {
			again[(*nagain)++] = p->reqs[i]; /* never ran: send again */
			log_debug("batch: a transaction skipped after an earlier one failed "
			          "goes again");
		} else {
			failed = true;
			batch_finish(p->reqs[i], nsent, st, &e);
		}
	}
	if (nheld > 0)
		settle_deferred(p, i, lost);
	/* Whatever was not answered on a lost connection. */
	tk_request *lost_reads[SERVER_BATCH_MAX];
	int nlost_reads = 0;
	tk_error unavailable = {0};
	if (i < p->n) /* built only when needed: this runs for every batch */
		tk_error_database_unavailable(&unavailable);
	for (; i < p->n; i++) {
		db_tx_abandon(((coalesced *)p->reqs[i]->coalesced)->tx);
		if (batch_writes(p->reqs[i]))
			batch_finish(p->reqs[i], 0, TK_ERR, &unavailable);
		else
			lost_reads[nlost_reads++] = p->reqs[i];
	}
	db_pool_release(pool, p->conn); /* rolls back an aborted transaction */
	p->conn = NULL;

	if (nlost_reads == 0)
		return;
	if (*may_retry_lost) {
		*may_retry_lost = false;
		log_info("retrying %d reads on a fresh database connection", nlost_reads);
		for (int k = 0; k < nlost_reads; k++)
			again[(*nagain)++] = lost_reads[k];
	} else {
		for (int k = 0; k < nlost_reads; k++)
			batch_finish(lost_reads[k], 0, TK_ERR, &unavailable);
	}
}

/*
 * Of the transactions to send again, answers at once those whose
 * remembered session another one's check has just found ended or changed
 * (batch_finish forgot it): sent again, each would fail the same way and
 * hold up the rest of its pipeline once more.  Returns how many remain.
 */
static int drop_ended_sessions(session_cache *sessions, tk_request **todo, int ntodo)
{
	int kept = 0;
	for (int i = 0; i < ntodo; i++) {
		tk_request *req = todo[i];
		if (req->has_user && req->user.from_cache &&
		    !context_cached_user_current(sessions, req)) {
			coalesced *c = req->coalesced;
			c->session_ended = true; /* respond() verifies it afresh */
			c->st = TK_ERR;
			c->done = true;
			db_tx_clear(c->tx);
		} else {
			todo[kept++] = req;
		}
	}
	return kept;
}

/*
 * Sends the transactions of the worker's batched requests, each its own
 * BEGIN ... COMMIT with its own tenant context, and reads their results.
 * The reads go in one pipeline on one pooled connection, with one Sync at
 * the end: one write and one round trip for the lot, and PostgreSQL runs
 * them back to back without waiting on the network.  Each write goes on a
 * connection of its own when the pool has one free, in a pipeline sent
 * before any answer is awaited, so that their COMMITs can share a WAL
 * flush (PostgreSQL's group commit), and otherwise after the reads; the
 * writes of one pipeline share one flush (pipeline_plan_flush).  Each
 * request's answer is rendered here and sent by libmicrohttpd on the
 * worker's next run, after every flush it depends on.
 *
 * A transaction that fails makes PostgreSQL skip everything after it up to
 * its pipeline's Sync; the skipped ones never ran and are sent again once
 * the failed one is rolled back.  If a connection is lost, the reads not
 * yet answered are retried once on a fresh connection, as a read on its
 * own is; the writes are answered 503.
 */
static void flush_batch(server_worker *w)
{
	db_pool *pool = w->server->app->pool;
	tk_request *todo[SERVER_BATCH_MAX];
	int ntodo = w->nbatch;
	memcpy(todo, w->batch, (size_t)ntodo * sizeof *todo);
	w->nbatch = 0;
	bool may_retry_lost = true;
	/* One connection for each other worker stays free: extra connections
	 * for writes come out of a pool larger than the worker count, so no
	 * worker waits for a connection because another took several. */
	int keep_free = (int)w->server->n_workers - 1;
	bool shared_flush = atomic_load(&w->server->shared_flush);

	while (ntodo > 0) {
		batch_pipeline pipes[SERVER_BATCH_MAX];
		int npipes = 0;
		tk_error perr = {0};
		if (!batch_plan(pool, keep_free, todo, ntodo, pipes, &npipes, &perr)) {
			for (int i = 0; i < ntodo; i++)
				batch_finish(todo[i], 0, TK_ERR, &perr);
			return;
		}
		int nsent[SERVER_BATCH_MAX];
		for (int k = 0; k < npipes; k++)
			nsent[k] = pipeline_send(&pipes[k], shared_flush);
		/* The pipelines hold the requests now: todo collects what goes again. */
		ntodo = 0;
		for (int k = 0; k < npipes; k++)
			pipeline_receive(pool, &pipes[k], nsent[k], &may_retry_lost, todo, &ntodo);
		ntodo = drop_ended_sessions(w->server->app->sessions, todo, ntodo);
	}
}

/* Called on the worker's thread: gives libmicrohttpd what the listener
 * handed over. */
static void take_incoming(server_worker *w)
{
	uint64_t v;
	ssize_t n = read(w->wake_fd, &v, sizeof v);
	(void)n;
	pthread_mutex_lock(&w->lock);
	incoming_conn *list = w->incoming;
	size_t count = w->nincoming;
	w->incoming = NULL;
	w->nincoming = w->incoming_cap = 0;
	atomic_store(&w->has_incoming, false);
	pthread_mutex_unlock(&w->lock);
	for (size_t i = 0; i < count; i++) {
		incoming_conn *ic = &list[i];
		w->adding_started = false;
		if (MHD_add_connection(w->daemon, ic->fd, (struct sockaddr *)&ic->addr,
		                       ic->addrlen) != MHD_YES) {
			/* libmicrohttpd has closed the socket.  If it had started
			 * the connection, its close notification released it. */
			log_warn("http: worker %u could not take a new connection", w->index);
			if (!w->adding_started)
				tk_listener_release(w->server->listener, w->index,
				                    (struct sockaddr *)&ic->addr);
		}
	}
	free(list);
}

/* Shuts down the sockets of connections past the request deadline (see
 * conn_clock); libmicrohttpd closes them in its next run. */
static void sweep_clocks(server_worker *w, long long now)
{
	long long limit_ms = w->server->app->cfg->request_timeout_s * 1000LL;
	w->next_sweep_ms = now + SERVER_SWEEP_INTERVAL_MS;
	if (limit_ms <= 0)
		return;
	int cut = 0;
	for (conn_clock *c = w->clocks; c; c = c->next) {
		if (c->answering || c->cut || now - c->since_ms <= limit_ms)
			continue;
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (ci && shutdown(ci->connect_fd, SHUT_RDWR) == 0) {
			c->cut = true;
			cut++;
		}
	}
	if (cut > 0)
		log_warn("http: closed %d connection%s that sent no whole request within %lds", cut,
		         cut == 1 ? "" : "s", w->server->app->cfg->request_timeout_s);
}

/* How long the worker may sleep: until libmicrohttpd's next timeout, its
 * deferred access lines are due, or its connections' clocks are checked,
 * whichever comes first. */
static int worker_timeout_ms(server_worker *w, long long now)
{
	MHD_UNSIGNED_LONG_LONG t;
	int ms = MHD_get_timeout(w->daemon, &t) != MHD_YES ? -1 : t > 60000 ? 60000 : (int)t;
	int log_due = tk_log_flush_due_ms();
	if (log_due >= 0 && (ms < 0 || log_due < ms))
		ms = log_due;
	if (w->clocks) {
		long long sweep_due = w->next_sweep_ms > now ? w->next_sweep_ms - now : 0;
		if (ms < 0 || sweep_due < ms)
			ms = (int)sweep_due;
	}
	return ms;
}

/*
 * A worker's thread.  Each turn: wait for a connection's bytes or a
 * hand-over (not at all while a batch is waiting); send the batch that the
 * previous turn's requests queued (flush_batch); then let libmicrohttpd
 * answer those requests and read new ones, which queue the next batch.
 * Requests that arrive together go to the database together, and while the
 * server is busy every turn has a batch, so nobody waits for one to fill.
 */
static void *worker_main(void *arg)
{
	server_worker *w = arg;
	current_worker = w;
	tk_log_defer_requests();
	time_t last_error_log = 0;
	while (!atomic_load(&w->stopping)) {
		if (tk_log_flush_due_ms() == 0)
			tk_log_flush();
		long long now = now_ms();
		if (now >= w->next_sweep_ms)
			sweep_clocks(w, now);
		if (w->nbatch > 0) {
			/* A batch is ready: no wait, and no epoll_wait either (its
			 * only news would be a hand-over, which the flag tells). */
			if (atomic_load(&w->has_incoming))
				take_incoming(w);
			flush_batch(w);
			MHD_run(w->daemon);
			continue;
		}
		struct epoll_event ev[2];
		int n = epoll_wait(w->epoll_fd, ev, 2, worker_timeout_ms(w, now));
		if (n < 0 && errno != EINTR) {
			time_t second = time(NULL);
			if (second != last_error_log) {
				last_error_log = second;
				log_error("http: worker %u: epoll_wait: %s", w->index,
				          strerror(errno));
			}
			struct timespec pause = {0, 100 * 1000000L};
			nanosleep(&pause, NULL);
		}
		for (int i = 0; i < n; i++)
			if (ev[i].data.fd == w->wake_fd)
				take_incoming(w);
		MHD_run(w->daemon);
	}
	/* Stopping: requests read in the last run are not answered;
	 * MHD_stop_daemon closes their connections. */
	w->nbatch = 0;
	tk_log_end_deferring();
	return NULL;
}

/* The listener's thread: queue fd for worker and wake it. */
static tk_status handoff(void *cls, unsigned worker, int fd, const struct sockaddr *addr,
                         socklen_t addrlen)
{
	tk_server *srv = cls;
	server_worker *w = &srv->workers[worker];
	pthread_mutex_lock(&w->lock);
	if (w->nincoming == w->incoming_cap) {
		w->incoming_cap = w->incoming_cap ? 2 * w->incoming_cap : 16;
		w->incoming = tk_realloc(w->incoming, w->incoming_cap * sizeof *w->incoming);
	}
	incoming_conn *ic = &w->incoming[w->nincoming++];
	ic->fd = fd;
	memset(&ic->addr, 0, sizeof ic->addr);
	memcpy(&ic->addr, addr, addrlen < sizeof ic->addr ? addrlen : sizeof ic->addr);
	ic->addrlen = addrlen;
	atomic_store(&w->has_incoming, true);
	pthread_mutex_unlock(&w->lock);
	uint64_t one = 1;
	ssize_t n = write(w->wake_fd, &one, sizeof one);
	(void)n;
	return TK_OK;
}

static void stop_workers(tk_server *srv)
{
	for (unsigned i = 0; i < srv->n_workers; i++) {
		server_worker *w = &srv->workers[i];
		if (w->thread_started) {
			atomic_store(&w->stopping, true);
			uint64_t one = 1;
			ssize_t n = write(w->wake_fd, &one, sizeof one);
			(void)n;
			pthread_join(w->thread, NULL);
			w->thread_started = false;
		}
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		server_worker *w = &srv->workers[i];
		if (w->daemon != NULL)
			MHD_stop_daemon(w->daemon);
		w->daemon = NULL;
		for (size_t k = 0; k < w->nincoming; k++) {
			close(w->incoming[k].fd);
			tk_listener_release(srv->listener, w->index,
			                    (struct sockaddr *)&w->incoming[k].addr);
		}
		free(w->incoming);
		w->incoming = NULL;
		w->nincoming = 0;
		if (w->epoll_fd >= 0)
			close(w->epoll_fd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		w->epoll_fd = w->wake_fd = -1;
		pthread_mutex_destroy(&w->lock);
	}
}

static tk_status worker_start(server_worker *w)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (info == NULL || w->epoll_fd < 0 || w->wake_fd < 0) {
		log_error("cannot start HTTP worker %u: %s", w->index, strerror(errno));
		return TK_ERR;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = info->epoll_fd};
	struct epoll_event wake = {.events = EPOLLIN, .data.fd = w->wake_fd};
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, info->epoll_fd, &ev) != 0 ||
	    epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->wake_fd, &wake) != 0) {
		log_error("cannot start HTTP worker %u: epoll_ctl: %s", w->index, strerror(errno));
		return TK_ERR;
	}
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		log_error("cannot start HTTP worker %u: %s", w->index, strerror(rc));
		return TK_ERR;
	}
	pthread_setname_np(w->thread, "tekup-http");
	w->thread_started = true;
	return TK_OK;
}

tk_server *tk_server_start(tk_app *app)
{
	const tk_config *cfg = app->cfg;
	tk_listener_config lcfg = {
	    .bind_address = cfg->bind_address,
	    .port = cfg->port,
	    .backlog = SERVER_LISTEN_BACKLOG,
	    .max_connections = cfg->max_connections,
	    .max_connections_per_ip = cfg->max_connections_per_ip,
	    .workers = (unsigned)cfg->threads,
	};
	tk_listener *listener = tk_listener_open(&lcfg);
	if (listener == NULL)
		return NULL;
	tk_server *srv = tk_calloc(1, sizeof *srv);
	srv->app = app;
	srv->listener = listener;
	atomic_init(&srv->in_flight, 0);
	atomic_init(&srv->shared_flush, app->shared_flush);
	srv->n_workers = (unsigned)cfg->threads;
	srv->workers = tk_calloc(srv->n_workers, sizeof *srv->workers);
	/* One single-threaded daemon per worker, without a listening socket of
	 * its own: the listener chooses which one serves a connection.  The
	 * limits on connections are the listener's; the daemon's own limit must
	 * never bind.  With it equal to --max-connections, the connection
	 * queued in total_connection_limit_holds was reset on hand-off, and a
	 * refusal on the worker's own thread deadlocks a 0.9.75 worker (found in
	 * review with a small limit).  So never lower it to max / threads as
	 * libmicrohttpd's own pool splits it. */
	const unsigned int flags = MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		server_worker *w = &srv->workers[i];
		w->server = srv;
		w->index = i;
		w->epoll_fd = w->wake_fd = -1;
		atomic_init(&w->stopping, false);
		pthread_mutex_init(&w->lock, NULL);
	}
	for (unsigned i = 0; i < srv->n_workers; i++) {
		server_worker *w = &srv->workers[i];
		w->daemon = MHD_start_daemon(
		    flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
		    NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(2 * cfg->max_connections),
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_CONNECTION_MEMORY,
		    MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED,
		    on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection, w,
		    MHD_OPTION_END);
		if (w->daemon == NULL) {
			log_error("cannot start HTTP worker %u of %u", i + 1, srv->n_workers);
			goto fail;
		}
		if (worker_start(w) != TK_OK)
			goto fail;
	}
	if (tk_listener_start(listener, handoff, srv) != TK_OK)
		goto fail;
	return srv;
fail:
	tk_listener_stop(listener);
	stop_workers(srv);
	tk_listener_free(listener);
	free(srv->workers);
	free(srv);
	return NULL;
}

void tk_server_stop(tk_server *srv, int timeout_s)
{
	if (srv == NULL)
		return;
	/* New connections are refused from here; in-flight requests finish. */
	tk_listener_stop(srv->listener);
	for (int waited_ms = 0; atomic_load(&srv->in_flight) > 0 && waited_ms < timeout_s * 1000;
	     waited_ms += 20)
		usleep(20 * 1000);
	if (atomic_load(&srv->in_flight) > 0)
		log_warn("shutting down with %d requests still in flight",
		         atomic_load(&srv->in_flight));
	stop_workers(srv);
	tk_listener_free(srv->listener);
	free(srv->workers);
	free(srv);
}
