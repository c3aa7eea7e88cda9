/*
 * config.h - all runtime settings, from one table (Redis config.c style).
 *
 * Each setting has a name, an environment variable, a command-line flag, a
 * type, bounds and a default.  tk_config_load fills a tk_config from the
 * defaults, then the environment, then the flags (flags win), validates
 * every value, and reports the first bad one by name.  Nothing else in
 * tekup calls getenv().
 */
#ifndef TK_CONFIG_H
#define TK_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

#include "http/client_addr.h"
#include "util/status.h"

typedef struct tk_config {
	char *bind_address;
	long port;
	long threads;
	long pool_size;
	long pool_acquire_timeout_ms;
	long pool_recheck_after_ms;
	long statement_timeout_ms;
	long key_cache_ttl_ms;
	bool session_cache; /* remember verified sessions (auth/context.h) */
	bool shared_flush;  /* a pipeline's writes share one WAL flush (db/tx.h) */
	long max_connections;
	long max_connections_per_ip;
	char *trusted_proxies_text;    /* --trusted-proxies as given */
	tk_proxy_list trusted_proxies; /* parsed: peers whose X-Forwarded-For is believed */
	long connection_timeout_s;
	long request_timeout_s;
	long shutdown_timeout_s;
	char *database_url;          /* NULL: use the embedded cluster */
	char *database_admin_url;    /* NULL: same as database_url, or embedded */
	char *database_operator_url; /* operator work (admin API, jobs, outbox) */
	char *data_dir;
	char *migrations_dir; /* NULL: found next to the binary */
	bool migrate;
	bool pgbouncer;
	bool demo;
	char *log_level;

	/* Operator side (issue: tenant lifecycle). */
	char *dashboard_url;   /* base of dashboardUrl; + "/" + slug */
	char *master_key_file; /* wraps per-tenant data keys; NULL: <data_dir>/master.key */
	char *smtp_url;        /* NULL: welcome e-mails wait in the outbox */
	char *mail_from;
	char *billing_webhook_url;    /* NULL: billing events wait in the outbox */
	char *billing_webhook_secret; /* HMAC-SHA256 key for the signature header */
	long outbox_max_attempts;     /* then the message is dead-lettered */
	long outbox_poll_ms;
	long outbox_backoff_ms;      /* first retry delay; doubles per attempt */
	long archive_retention_days; /* archived tenants older than this are deleted */
	bool maintenance;            /* run the daily cleanup/retention job */
	long maintenance_interval_s; /* how often the job runs across all servers */
} tk_config;

/* Which settings a subcommand accepts as flags (all read env vars). */
enum {
	TK_CFG_SERVE = 1 << 0,
	TK_CFG_DB = 1 << 1,
};

/*
 * Loads settings for a subcommand.  argv[0] is the subcommand name; flags
 * not in `scope` are rejected.  Positional arguments are left in
 * rest and nrest (borrowed from argv).  On error writes a message to err
 * (size errlen) and returns TK_ERR.
 */
tk_status tk_config_load(tk_config *cfg, int scope, int argc, char **argv, char **rest, int *nrest,
                         char *err, size_t errlen) TK_MUST_CHECK;
void tk_config_usage(FILE *out, int scope);
void tk_config_free(tk_config *cfg);

#endif
