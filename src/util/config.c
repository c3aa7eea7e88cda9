/*
 * config.c - the settings table and its loader (see config.h).
 */
#include "util/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"
#include "util/validate.h"

typedef enum { CFG_INT, CFG_STR, CFG_BOOL } cfg_type;

typedef struct cfg_option {
	const char *flag; /* without the leading "--" */
	const char *env;
	cfg_type type;
	int scope;
	long min, max;
	const char *def;
	size_t offset;
	const char *help;
} cfg_option;

#define OFF(field) offsetof(tk_config, field)
#define S          TK_CFG_SERVE
#define D          TK_CFG_DB

static const cfg_option options[] = {
    {"bind", "TEKUP_BIND", CFG_STR, S, 0, 0, "127.0.0.1", OFF(bind_address),
     "address to listen on"},
    {"port", "TEKUP_PORT", CFG_INT, S, 1, 65535, "8080", OFF(port), "TCP port to listen on"},
    {"threads", "TEKUP_THREADS", CFG_INT, S, 1, 256, "8", OFF(threads), "HTTP worker threads"},
    {"pool-size", "TEKUP_POOL_SIZE", CFG_INT, S, 1, 512, "8", OFF(pool_size),
     "PostgreSQL connections in the request pool"},
    {"pool-timeout-ms", "TEKUP_POOL_TIMEOUT_MS", CFG_INT, S, 1, 600000, "5000",
     OFF(pool_acquire_timeout_ms), "wait for a free connection before 503 pool_timeout"},
    {"pool-recheck-ms", "TEKUP_POOL_RECHECK_MS", CFG_INT, S, 0, 60000, "50",
     OFF(pool_recheck_after_ms),
     "check a pooled connection is alive unless used this recently (0: always)"},
    {"statement-timeout-ms", "TEKUP_STATEMENT_TIMEOUT_MS", CFG_INT, S, 1, 3600000, "5000",
     OFF(statement_timeout_ms), "per-request statement_timeout"},
    {"key-cache-ttl-ms", "TEKUP_KEY_CACHE_TTL_MS", CFG_INT, S, 0, 5000, "2000",
     OFF(key_cache_ttl_ms), "how long a resolved API key is trusted (<= 5000)"},
    {"session-cache", "TEKUP_SESSION_CACHE", CFG_BOOL, S, 0, 0, "true", OFF(session_cache),
     "remember verified sessions: a signed-in lead request is one round trip, its\n"
     "transaction re-checking the session first (--no-session-cache: two)"},
    {"shared-flush", "TEKUP_SHARED_FLUSH", CFG_BOOL, S, 0, 0, "true", OFF(shared_flush),
     "writes sent together wait for one WAL flush, not one each; none is answered\n"
     "before it is durable (off by itself on Citus, where each node has its own WAL)"},
    {"max-connections", "TEKUP_MAX_CONNECTIONS", CFG_INT, S, 1, 100000, "1024",
     OFF(max_connections), "concurrent HTTP connections"},
    {"max-connections-per-ip", "TEKUP_MAX_CONNECTIONS_PER_IP", CFG_INT, S, 0, 100000, "256",
     OFF(max_connections_per_ip), "concurrent HTTP connections per client IP (0: no limit)"},
    {"trusted-proxies", "TEKUP_TRUSTED_PROXIES", CFG_STR, S, 0, 0, NULL, OFF(trusted_proxies_text),
     "comma-separated IP addresses of reverse proxies (e.g. 127.0.0.1 for the nginx in\n"
     "deploy/): from them, the client is the rightmost X-Forwarded-For entry that is not\n"
     "a proxy; from anyone else the header is ignored (default: none)"},
    {"connection-timeout-s", "TEKUP_CONNECTION_TIMEOUT_S", CFG_INT, S, 1, 3600, "30",
     OFF(connection_timeout_s), "close an idle HTTP connection after this long"},
    {"request-timeout-s", "TEKUP_REQUEST_TIMEOUT_S", CFG_INT, S, 0, 3600, "60",
     OFF(request_timeout_s),
     "close a connection that has not sent a whole request (head and body) this long\n"
     "after it opened or got its previous answer, however busy it keeps (0: no limit)"},
    {"shutdown-timeout-s", "TEKUP_SHUTDOWN_TIMEOUT_S", CFG_INT, S, 0, 600, "10",
     OFF(shutdown_timeout_s), "bound on finishing in-flight requests at shutdown"},
    {"database-url", "DATABASE_URL", CFG_STR, S | D, 0, 0, NULL, OFF(database_url),
     "libpq URL for requests (default: embedded cluster)"},
    {"database-admin-url", "DATABASE_ADMIN_URL", CFG_STR, S | D, 0, 0, NULL,
     OFF(database_admin_url), "libpq URL of the schema owner, for migrations"},
    {"data-dir", "TEKUP_DATA_DIR", CFG_STR, S | D, 0, 0, "./var", OFF(data_dir),
     "where the embedded PostgreSQL cluster lives"},
    {"migrations-dir", "TEKUP_MIGRATIONS_DIR", CFG_STR, S | D, 0, 0, NULL, OFF(migrations_dir),
     "where the NNNN_*.sql migrations are (default: found next to the binary)"},
    {"migrate", "TEKUP_MIGRATE", CFG_BOOL, S, 0, 0, "true", OFF(migrate),
     "apply migrations on start (--no-migrate to skip)"},
    {"pgbouncer", "TEKUP_PGBOUNCER", CFG_BOOL, S, 0, 0, "false", OFF(pgbouncer),
     "unnamed statements, for PgBouncer transaction pooling (a pooler is also found by itself)"},
    {"demo", "TEKUP_DEMO", CFG_BOOL, S, 0, 0, "true", OFF(demo),
     "create a demo tenant on first run"},
    {"database-operator-url", "DATABASE_OPERATOR_URL", CFG_STR, S | D, 0, 0, NULL,
     OFF(database_operator_url), "libpq URL of the operator role (admin API, jobs)"},
    {"dashboard-url", "TEKUP_DASHBOARD_URL", CFG_STR, S | D, 0, 0, "https://app.tekup.org",
     OFF(dashboard_url), "base of the dashboardUrl returned at provisioning"},
    {"master-key-file", "TEKUP_MASTER_KEY_FILE", CFG_STR, S | D, 0, 0, NULL, OFF(master_key_file),
     "file with the 32-byte master key (hex) wrapping tenant data keys; created if missing "
     "(default <data-dir>/master.key; share it between servers)"},
    {"smtp-url", "TEKUP_SMTP_URL", CFG_STR, S, 0, 0, NULL, OFF(smtp_url),
     "SMTP server for welcome e-mail, e.g. smtp://127.0.0.1:25 (unset: e-mail waits)"},
    {"mail-from", "TEKUP_MAIL_FROM", CFG_STR, S, 0, 0, "no-reply@tekup.local", OFF(mail_from),
     "sender address of e-mail"},
    {"billing-webhook-url", "TEKUP_BILLING_WEBHOOK_URL", CFG_STR, S, 0, 0, NULL,
     OFF(billing_webhook_url), "where billing events are POSTed (unset: they wait)"},
    {"billing-webhook-secret", "TEKUP_BILLING_WEBHOOK_SECRET", CFG_STR, S, 0, 0, NULL,
     OFF(billing_webhook_secret), "HMAC-SHA256 key signing billing webhooks"},
    {"outbox-max-attempts", "TEKUP_OUTBOX_MAX_ATTEMPTS", CFG_INT, S, 1, 100, "8",
     OFF(outbox_max_attempts), "delivery attempts before a message is dead-lettered"},
    {"outbox-poll-ms", "TEKUP_OUTBOX_POLL_MS", CFG_INT, S, 10, 60000, "500", OFF(outbox_poll_ms),
     "how often the outbox worker looks for due messages"},
    {"outbox-backoff-ms", "TEKUP_OUTBOX_BACKOFF_MS", CFG_INT, S, 10, 3600000, "1000",
     OFF(outbox_backoff_ms), "first retry delay; doubles per failed attempt (max 1 h)"},
    {"archive-retention-days", "TEKUP_ARCHIVE_RETENTION_DAYS", CFG_INT, S | D, 0, 36500, "90",
     OFF(archive_retention_days), "archived tenants older than this are deleted"},
    {"maintenance", "TEKUP_MAINTENANCE", CFG_BOOL, S, 0, 0, "true", OFF(maintenance),
     "run the daily cleanup and retention job (one server at a time)"},
    {"maintenance-interval-s", "TEKUP_MAINTENANCE_INTERVAL_S", CFG_INT, S, 1, 31536000, "86400",
     OFF(maintenance_interval_s), "how often the maintenance job runs across all servers"},
    {"log-level", "TEKUP_LOG_LEVEL", CFG_STR, S | D, 0, 0, "info", OFF(log_level),
     "debug, info, warn or error"},
};

static bool parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
		*out = false;
	else
		return false;
	return true;
}

static tk_status cfg_set(tk_config *cfg, const cfg_option *o, const char *value, char *err,
                         size_t errlen)
{
	char *base = (char *)cfg;
	switch (o->type) {
	case CFG_INT: {
		long v;
		if (!tk_parse_int(value, o->min, o->max, &v)) {
			snprintf(err, errlen,
			         "--%s (%s): expected an integer from %ld to %ld, got '%s'",
			         o->flag, o->env, o->min, o->max, value);
			return TK_ERR;
		}
		*(long *)(base + o->offset) = v;
		return TK_OK;
	}
	case CFG_BOOL: {
		bool v;
		if (!parse_bool(value, &v)) {
			snprintf(err, errlen, "--%s (%s): expected true or false, got '%s'",
			         o->flag, o->env, value);
			return TK_ERR;
		}
		*(bool *)(base + o->offset) = v;
		return TK_OK;
	}
	case CFG_STR: {
		char **slot = (char **)(base + o->offset);
		free(*slot);
		*slot = value[0] ? tk_strdup(value) : NULL;
		return TK_OK;
	}
	}
	return TK_ERR;
}

static const cfg_option *cfg_find(const char *flag, size_t len)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(options); i++)
		if (strlen(options[i].flag) == len && !strncmp(options[i].flag, flag, len))
			return &options[i];
	return NULL;
}

static bool conninfo_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*
 * One "key = value" of a libpq key=value string, at p (not at a space),
 * read as libpq reads it: a value is single-quoted (with \' and \\ inside)
 * or runs to the next space (a backslash escaping the next character).
 * Gives the key, and the value decoded into value (cut to size - 1); returns
 * the end of the pair, or NULL when it is malformed (libpq will say so).
 */
static const char *conninfo_pair(const char *p, const char **key, size_t *key_len, char *value,
                                 size_t size)
{
	*key = p;
	while (*p && *p != '=' && !conninfo_space(*p))
		p++;
	*key_len = (size_t)(p - *key);
	while (conninfo_space(*p))
		p++;
	if (*p != '=' || *key_len == 0)
		return NULL;
	for (p++; conninfo_space(*p);)
		p++;
	size_t n = 0;
	bool quoted = *p == '\'';
	for (p += quoted; *p && (quoted ? *p != '\'' : !conninfo_space(*p)); p++) {
		if (*p == '\\' && p[1])
			p++;
		if (n + 1 < size)
			value[n++] = *p;
	}
	value[n] = '\0';
	if (quoted && *p != '\'')
		return NULL;
	return p + quoted;
}

static tk_status set_pgbouncer(tk_config *cfg, const char *value, char *err, size_t errlen)
{
	if (parse_bool(value, &cfg->pgbouncer))
		return TK_OK;
	snprintf(err, errlen, "DATABASE_URL: pgbouncer must be true or false");
	return TK_ERR;
}

/*
 * Removes every "pgbouncer" parameter from DATABASE_URL (libpq would refuse
 * it) and applies its value.  URLs carry it in the query string
 * ("postgresql://h/db?pgbouncer=true"); key=value strings as a pair
 * ("host=h pgbouncer=true"), read with libpq's quoting rules so that a
 * quoted value is never split or changed.  Nothing else is touched.
 */
static tk_status take_pgbouncer_param(tk_config *cfg, char *err, size_t errlen)
{
	char *url = cfg->database_url;
	bool is_uri = !strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11);
	char *start = url;
	if (is_uri) {
		char *q = strchr(url, '?');
		if (q == NULL)
			return TK_OK;
		start = q + 1;
	}
	tk_buf kept = TK_BUF_INIT;
	tk_status st = TK_OK;
	bool changed = false;
	const char *p = start;
	while (st == TK_OK && *p) {
		const char *pair = p, *end;
		char value[16];
		bool ours = false;
		if (is_uri) {
			end = strchr(p, '&');
			end = end ? end : p + strlen(p);
			size_t len = (size_t)(end - p);
			if (len > 10 && !strncmp(p, "pgbouncer=", 10)) {
				size_t vlen =
				    len - 10 < sizeof value - 1 ? len - 10 : sizeof value - 1;
				memcpy(value, p + 10, vlen);
				value[vlen] = '\0';
				ours = true;
			}
		} else {
			const char *key;
			size_t key_len;
			while (conninfo_space(*p))
				p++;
			if (*p == '\0')
				break;
			pair = p;
			end = conninfo_pair(p, &key, &key_len, value, sizeof value);
			if (end == NULL) /* malformed: left for libpq to report */
				break;
			ours = key_len == 9 && !strncmp(key, "pgbouncer", 9);
		}
		if (ours) {
			st = set_pgbouncer(cfg, value, err, errlen);
			changed = true;
		} else if (end > pair) {
			if (kept.len)
				tk_buf_putc(&kept, is_uri ? '&' : ' ');
			tk_buf_append(&kept, pair, (size_t)(end - pair));
		}
		p = end;
		if (is_uri && *p)
			p++;
	}
	if (st == TK_OK && changed) {
		/* Rewrite in place: the result is never longer than the input. */
		size_t prefix = (size_t)(start - url);
		if (is_uri && kept.len == 0)
			prefix--; /* drop the '?' too */
		memcpy(url + prefix, kept.data ? kept.data : "", kept.len);
		url[prefix + kept.len] = '\0';
	}
	tk_buf_free(&kept);
	return st;
}

static tk_status cfg_validate(tk_config *cfg, char *err, size_t errlen)
{
	const char *lv = cfg->log_level ? cfg->log_level : "";
	if (strcmp(lv, "debug") && strcmp(lv, "info") && strcmp(lv, "warn") &&
	    strcmp(lv, "error")) {
		snprintf(err, errlen, "--log-level: expected debug, info, warn or error, got '%s'",
		         lv);
		return TK_ERR;
	}
	unsigned char addr[sizeof(struct in6_addr)];
	if (cfg->bind_address == NULL || (inet_pton(AF_INET, cfg->bind_address, addr) != 1 &&
	                                  inet_pton(AF_INET6, cfg->bind_address, addr) != 1)) {
		snprintf(err, errlen, "--bind: '%s' is not an IPv4 or IPv6 address",
		         cfg->bind_address ? cfg->bind_address : "");
		return TK_ERR;
	}
	char why[200];
	if (tk_proxy_list_parse(cfg->trusted_proxies_text, &cfg->trusted_proxies, why,
	                        sizeof why) != TK_OK) {
		snprintf(err, errlen, "--trusted-proxies (TEKUP_TRUSTED_PROXIES): %s", why);
		return TK_ERR;
	}
	if (cfg->data_dir == NULL) {
		snprintf(err, errlen, "--data-dir: a directory is required");
		return TK_ERR;
	}
	if (cfg->billing_webhook_url && !cfg->billing_webhook_secret) {
		snprintf(err, errlen,
		         "--billing-webhook-secret: required with --billing-webhook-url");
		return TK_ERR;
	}
	/* The seed's "?pgbouncer=true" on DATABASE_URL switches the mode too. */
	if (cfg->database_url && take_pgbouncer_param(cfg, err, errlen) != TK_OK)
		return TK_ERR;
	return TK_OK;
}

tk_status tk_config_load(tk_config *cfg, int scope, int argc, char **argv, char **rest, int *nrest,
                         char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < TK_ARRAY_LEN(options); i++)
		if (options[i].def &&
		    cfg_set(cfg, &options[i], options[i].def, err, errlen) != TK_OK)
			return TK_ERR;
	for (size_t i = 0; i < TK_ARRAY_LEN(options); i++) {
		const char *v = getenv(options[i].env);
		if (v && cfg_set(cfg, &options[i], v, err, errlen) != TK_OK)
			return TK_ERR;
	}
	*nrest = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--", 2) != 0 || !strcmp(a, "--")) {
			rest[(*nrest)++] = argv[i];
			continue;
		}
		const char *name = a + 2;
		const char *eq = strchr(name, '=');
		size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
		const cfg_option *o = cfg_find(name, nlen);
		bool negated = false;
		if (o == NULL && nlen > 3 && !strncmp(name, "no-", 3)) {
			o = cfg_find(name + 3, nlen - 3);
			negated = o && o->type == CFG_BOOL;
			if (!negated)
				o = NULL;
		}
		if (o == NULL || !(o->scope & scope)) {
			/* Unknown to config: leave it to the subcommand's own parser. */
			rest[(*nrest)++] = argv[i];
			continue;
		}
		const char *value;
		if (negated) {
			if (eq) {
				snprintf(err, errlen, "--no-%s takes no value", o->flag);
				return TK_ERR;
			}
			value = "false";
		} else if (eq) {
			value = eq + 1;
		} else if (o->type == CFG_BOOL) {
			value = "true";
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			snprintf(err, errlen, "--%s needs a value", o->flag);
			return TK_ERR;
		}
		if (cfg_set(cfg, o, value, err, errlen) != TK_OK)
			return TK_ERR;
	}
	return cfg_validate(cfg, err, errlen);
}

void tk_config_usage(FILE *out, int scope)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(options); i++) {
		const cfg_option *o = &options[i];
		if (!(o->scope & scope))
			continue;
		char flag[64];
		snprintf(flag, sizeof flag, "--%s%s", o->flag,
		         o->type == CFG_BOOL ? "" : (o->type == CFG_INT ? " N" : " VALUE"));
		fprintf(out, "  %-30s %s\n  %-30s env %s", flag, o->help, "", o->env);
		if (o->def)
			fprintf(out, ", default %s", o->def);
		fputc('\n', out);
	}
}

void tk_config_free(tk_config *cfg)
{
	free(cfg->bind_address);
	free(cfg->trusted_proxies_text);
	free(cfg->database_url);
	free(cfg->database_admin_url);
	free(cfg->data_dir);
	free(cfg->migrations_dir);
	free(cfg->log_level);
	free(cfg->database_operator_url);
	free(cfg->dashboard_url);
	free(cfg->master_key_file);
	free(cfg->smtp_url);
	free(cfg->mail_from);
	free(cfg->billing_webhook_url);
	free(cfg->billing_webhook_secret);
	memset(cfg, 0, sizeof *cfg);
}
