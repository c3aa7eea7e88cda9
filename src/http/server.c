/*
 * server.c - libmicrohttpd glue, request lifecycle and error rendering.
 *
 * Lifecycle of a request (see server.h):
 *   first callback    create tk_request + arena, check header bytes and
 *                     Content-Length, collect query parameters
 *   upload callbacks  append the body, up to TK_BODY_MAX_BYTES
 *   final callback    route -> limits -> pooled connection -> tenant ->
 *                     handler -> response
 *   completed         access log line, arena destroyed
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/operator_auth.h"
#include "auth/context.h"
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

typedef struct server_worker {
	struct MHD_Daemon *daemon;
	tk_server *server;
	unsigned index;
} server_worker;

struct tk_server {
	tk_app *app;
	tk_listener *listener;
	server_worker *workers;
	unsigned n_workers;
	atomic_int in_flight;
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

static tk_request *request_new(struct MHD_Connection *connection, const char *url,
                               const char *method)
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
	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
			          req->client_ip, sizeof req->client_ip);
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
			          req->client_ip, sizeof req->client_ip);
	}
	size_t header_bytes = 0;
	MHD_get_connection_values_n(connection, MHD_HEADER_KIND, count_header_bytes, &header_bytes);
	req->headers_too_large = header_bytes > TK_HEADERS_MAX_BYTES;
	MHD_get_connection_values_n(connection, MHD_GET_ARGUMENT_KIND, collect_query, req);
	return req;
}

static bool request_has_body(tk_request *req)
{
	if (req->body.len > 0 || req->body_too_large)
		return true;
	const char *cl = tk_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strcmp(cl, "0") != 0)
		return true;
	return tk_request_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
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

static tk_status dispatch(tk_server *srv, tk_request *req, tk_response *res, tk_error *err)
{
	const tk_route *route = NULL;
	if (req->headers_too_large)
		return tk_error_set(err, 431, "headers_too_large", NULL,
		                    "request headers exceed %d bytes", TK_HEADERS_MAX_BYTES);
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
	db_pool *pool = route->auth == TK_AUTH_OPERATOR ? srv->app->operator_pool : srv->app->pool;
	for (;;) {
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
				st = context_resolve_user(conn, req, authorization, err);
		}
		if (st == TK_OK && route->feature != TK_FEATURE_NONE &&
		    !(req->tenant.features & route->feature))
			st = tk_error_set(err, 403, "feature_disabled", NULL,
			                  "the tenant's plan does not include %s",
			                  tk_feature_name(route->feature));
		if (st == TK_OK)
			st = route->handler(srv->app, req, conn, res, err);
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

static enum MHD_Result respond(tk_server *srv, struct MHD_Connection *connection, tk_request *req,
                               const tk_error *preset)
{
	tk_error err = {0};
	tk_response res = {0};
	tk_status st;
	if (preset) {
		err = *preset;
		st = TK_ERR;
	} else {
		st = dispatch(srv, req, &res, &err);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	tk_server *srv = cls;
	tk_request *req = *con_cls;
	if (req == NULL) {
		req = request_new(connection, url, method);
		*con_cls = req;
		atomic_fetch_add(&srv->in_flight, 1);
		const char *cl = tk_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
		long long declared = 0;
		if (cl)
			declared = strlen(cl) > 12 ? LLONG_MAX : atoll(cl);
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

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)connection;
	(void)toe;
	tk_server *srv = cls;
	tk_request *req = *con_cls;
	if (req == NULL)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	tk_request_log entry = {
	    .request_id = req->request_id,
	    .tenant_id = req->has_tenant ? req->tenant.id : NULL,
	    .method = req->method,
	    .path = req->path,
	    .status = req->status,
	    .duration_ms = (double)(now.tv_sec - req->started.tv_sec) * 1e3 +
	                   (double)(now.tv_nsec - req->started.tv_nsec) / 1e6,
	    .error_code = req->error_code,
	};
	tk_log_request(&entry);
	tk_buf_free(&req->body);
	tk_arena_destroy(req->arena);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

/* libmicrohttpd's close notification: the listener stops counting the
 * connection against the limits and against its worker's load. */
static void on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED)
		return;
	server_worker *worker = cls;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	tk_listener_release(worker->server->listener, worker->index,
	                    ci != NULL ? ci->client_addr : NULL);
}

static tk_status handoff(void *cls, unsigned worker, int fd, const struct sockaddr *addr,
                         socklen_t addrlen)
{
	tk_server *srv = cls;
	if (MHD_add_connection(srv->workers[worker].daemon, fd, addr, addrlen) != MHD_YES) {
		/* libmicrohttpd has closed fd. */
		log_warn("http: worker %u could not take a new connection", worker);
		return TK_ERR;
	}
	return TK_OK;
}

static void stop_workers(tk_server *srv)
{
	for (unsigned i = 0; i < srv->n_workers; i++)
		if (srv->workers[i].daemon != NULL)
			MHD_stop_daemon(srv->workers[i].daemon);
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
	const unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC |
	                           MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
	for (unsigned i = 0; i < srv->n_workers; i++) {
		server_worker *w = &srv->workers[i];
		w->server = srv;
		w->index = i;
		w->daemon = MHD_start_daemon(
		    flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
		    NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(2 * cfg->max_connections),
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SERVER_CONNECTION_MEMORY,
		    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
		    on_connection, w, MHD_OPTION_END);
		if (w->daemon == NULL) {
			log_error("cannot start HTTP worker %u of %u", i + 1, srv->n_workers);
			goto fail;
		}
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
