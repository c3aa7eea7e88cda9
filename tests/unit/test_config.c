/*
 * test_config.c - unit tests for util/config.h: defaults, environment and
 * flag precedence, value validation with messages that name the setting,
 * boolean negation, pass-through of arguments config does not own, and the
 * DATABASE_URL "pgbouncer=true" switch that is stripped before libpq sees it.
 *
 * Every test starts from an environment with all tekup variables unset, so
 * the machine's own settings cannot leak in; tk_config_free runs after every
 * load, successful or not (it is what the CLI does on both paths).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/config.h"

#define SCOPE    (TK_CFG_SERVE | TK_CFG_DB)
#define MAX_ARGS 16

static const char *const env_vars[] = {
    "TEKUP_BIND",
    "TEKUP_PORT",
    "TEKUP_THREADS",
    "TEKUP_POOL_SIZE",
    "TEKUP_POOL_TIMEOUT_MS",
    "TEKUP_POOL_RECHECK_MS",
    "TEKUP_STATEMENT_TIMEOUT_MS",
    "TEKUP_KEY_CACHE_TTL_MS",
    "TEKUP_SESSION_CACHE",
    "TEKUP_MAX_CONNECTIONS",
    "TEKUP_MAX_CONNECTIONS_PER_IP",
    "TEKUP_CONNECTION_TIMEOUT_S",
    "TEKUP_SHUTDOWN_TIMEOUT_S",
    "DATABASE_URL",
    "DATABASE_ADMIN_URL",
    "TEKUP_DATA_DIR",
    "TEKUP_MIGRATE",
    "TEKUP_PGBOUNCER",
    "TEKUP_DEMO",
    "TEKUP_LOG_LEVEL",
    "TEKUP_TRUSTED_PROXIES",
};

typedef struct loaded {
	tk_config cfg;
	tk_status st;
	char *rest[MAX_ARGS];
	int nrest;
	char err[512];
} loaded;

static void clear_env(void)
{
	for (size_t i = 0; i < sizeof env_vars / sizeof env_vars[0]; i++)
		assert_int_equal(unsetenv(env_vars[i]), 0);
}

static int env_setup(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

static int env_teardown(void **state)
{
	(void)state;
	clear_env();
	return 0;
}

/* Loads with a NULL-terminated argument list after the subcommand name. */
static void load_scope(loaded *l, int scope, const char *const *args)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	argv[argc++] = (char *)"serve";
	for (; args && *args; args++) {
		assert_true(argc < MAX_ARGS);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	memset(l, 0, sizeof *l);
	l->nrest = -1;
	l->st =
	    tk_config_load(&l->cfg, scope, argc, argv, l->rest, &l->nrest, l->err, sizeof l->err);
}

static void load(loaded *l, const char *const *args)
{
	load_scope(l, SCOPE, args);
}

static void expect_ok(loaded *l, const char *const *args)
{
	load(l, args);
	if (l->st != TK_OK)
		fail_msg("load failed: %s", l->err);
}

/* Asserts the arguments are refused with a message containing each needle. */
static void expect_err(const char *const *args, const char *needle, const char *needle2)
{
	loaded l;
	load(&l, args);
	if (l.st != TK_ERR)
		fail_msg("accepted %s", args && args[0] ? args[0] : "the environment");
	if (strstr(l.err, needle) == NULL || (needle2 && strstr(l.err, needle2) == NULL))
		fail_msg("message \"%s\" lacks \"%s\"", l.err, needle);
	tk_config_free(&l.cfg);
}

static void test_defaults(void **state)
{
	(void)state;
	loaded l;
	expect_ok(&l, NULL);
	assert_int_equal(l.cfg.port, 8080);
	assert_string_equal(l.cfg.bind_address, "127.0.0.1");
	assert_int_equal(l.cfg.threads, 8);
	assert_int_equal(l.cfg.pool_size, 8);
	assert_int_equal(l.cfg.pool_acquire_timeout_ms, 5000);
	assert_int_equal(l.cfg.pool_recheck_after_ms, 50);
	assert_int_equal(l.cfg.statement_timeout_ms, 5000);
	assert_int_equal(l.cfg.key_cache_ttl_ms, 2000);
	assert_int_equal(l.cfg.max_connections, 1024);
	assert_int_equal(l.cfg.max_connections_per_ip, 256);
	assert_int_equal(l.cfg.connection_timeout_s, 30);
	assert_int_equal(l.cfg.shutdown_timeout_s, 10);
	assert_null(l.cfg.database_url);
	assert_null(l.cfg.database_admin_url);
	assert_string_equal(l.cfg.data_dir, "./var");
	assert_true(l.cfg.migrate);
	assert_false(l.cfg.pgbouncer);
	assert_true(l.cfg.demo);
	assert_string_equal(l.cfg.log_level, "info");
	assert_int_equal(l.nrest, 0);
	tk_config_free(&l.cfg);
	assert_null(l.cfg.bind_address);
}

static void test_port_flag_both_spellings(void **state)
{
	(void)state;
	loaded l;
	const char *spaced[] = {"--port", "9000", NULL};
	expect_ok(&l, spaced);
	assert_int_equal(l.cfg.port, 9000);
	assert_int_equal(l.nrest, 0);
	tk_config_free(&l.cfg);

	const char *joined[] = {"--port=9000", NULL};
	expect_ok(&l, joined);
	assert_int_equal(l.cfg.port, 9000);
	assert_int_equal(l.nrest, 0);
	tk_config_free(&l.cfg);

	/* Bounds are inclusive. */
	const char *low[] = {"--port=1", NULL};
	expect_ok(&l, low);
	assert_int_equal(l.cfg.port, 1);
	tk_config_free(&l.cfg);
	const char *high[] = {"--port", "65535", NULL};
	expect_ok(&l, high);
	assert_int_equal(l.cfg.port, 65535);
	tk_config_free(&l.cfg);
}

static void test_string_flags(void **state)
{
	(void)state;
	loaded l;
	const char *args[] = {"--bind",
	                      "0.0.0.0",
	                      "--data-dir=/srv/tekup",
	                      "--log-level",
	                      "debug",
	                      "--bind=::1",
	                      "--database-admin-url=postgresql://owner@h/db",
	                      NULL};
	expect_ok(&l, args);
	assert_string_equal(l.cfg.bind_address, "::1"); /* the last one wins */
	assert_string_equal(l.cfg.data_dir, "/srv/tekup");
	assert_string_equal(l.cfg.log_level, "debug");
	assert_string_equal(l.cfg.database_admin_url, "postgresql://owner@h/db");
	tk_config_free(&l.cfg);
}

static void test_environment_then_flags(void **state)
{
	(void)state;
	loaded l;
	assert_int_equal(setenv("TEKUP_PORT", "7000", 1), 0);
	assert_int_equal(setenv("TEKUP_THREADS", "4", 1), 0);
	assert_int_equal(setenv("TEKUP_BIND", "10.0.0.1", 1), 0);
	assert_int_equal(setenv("TEKUP_MIGRATE", "off", 1), 0);
	assert_int_equal(setenv("TEKUP_POOL_RECHECK_MS", "0", 1), 0);
	expect_ok(&l, NULL);
	assert_int_equal(l.cfg.pool_recheck_after_ms, 0);
	assert_int_equal(l.cfg.port, 7000);
	assert_int_equal(l.cfg.threads, 4);
	assert_string_equal(l.cfg.bind_address, "10.0.0.1");
	assert_false(l.cfg.migrate);
	tk_config_free(&l.cfg);

	/* Flags win over the environment. */
	const char *args[] = {"--port", "9000", "--migrate", NULL};
	expect_ok(&l, args);
	assert_int_equal(l.cfg.port, 9000);
	assert_int_equal(l.cfg.threads, 4);
	assert_true(l.cfg.migrate);
	tk_config_free(&l.cfg);
}

static void test_bad_values_name_the_flag(void **state)
{
	(void)state;
	const char *port0[] = {"--port", "0", NULL};
	expect_err(port0, "--port", "'0'");
	const char *port_abc[] = {"--port", "abc", NULL};
	expect_err(port_abc, "--port", "'abc'");
	const char *port_eq[] = {"--port=abc", NULL};
	expect_err(port_eq, "--port", "abc");
	const char *port_big[] = {"--port", "65536", NULL};
	expect_err(port_big, "--port", "65535");
	const char *port_neg[] = {"--port", "-1", NULL};
	expect_err(port_neg, "--port", NULL);
	const char *port_empty[] = {"--port=", NULL};
	expect_err(port_empty, "--port", NULL);
	const char *port_space[] = {"--port", " 80", NULL};
	expect_err(port_space, "--port", NULL);
	const char *threads[] = {"--threads", "100000", NULL};
	expect_err(threads, "--threads", "100000");
	const char *ttl[] = {"--key-cache-ttl-ms=5001", NULL};
	expect_err(ttl, "--key-cache-ttl-ms", NULL);
	const char *pool[] = {"--pool-size", "0", NULL};
	expect_err(pool, "--pool-size", NULL);
	const char *recheck[] = {"--pool-recheck-ms", "60001", NULL};
	expect_err(recheck, "--pool-recheck-ms", "60001");
	const char *recheck_neg[] = {"--pool-recheck-ms=-1", NULL};
	expect_err(recheck_neg, "--pool-recheck-ms", NULL);
	const char *level[] = {"--log-level", "verbose", NULL};
	expect_err(level, "--log-level", "verbose");
	const char *bind[] = {"--bind=", NULL};
	expect_err(bind, "--bind", NULL);
	const char *data_dir[] = {"--data-dir", "", NULL};
	expect_err(data_dir, "--data-dir", NULL);
	const char *flag_bool[] = {"--migrate=maybe", NULL};
	expect_err(flag_bool, "--migrate", "maybe");
}

static void test_missing_value(void **state)
{
	(void)state;
	const char *port[] = {"--port", NULL};
	expect_err(port, "--port", NULL);
	const char *url[] = {"--log-level", NULL};
	expect_err(url, "--log-level", NULL);
	/* The next flag is not taken for a number. */
	const char *next[] = {"--port", "--threads", "4", NULL};
	expect_err(next, "--port", NULL);
}

static void test_bad_environment_names_the_variable(void **state)
{
	(void)state;
	assert_int_equal(setenv("TEKUP_PORT", "http", 1), 0);
	expect_err(NULL, "TEKUP_PORT", "--port");
	assert_int_equal(unsetenv("TEKUP_PORT"), 0);

	assert_int_equal(setenv("TEKUP_DEMO", "sometimes", 1), 0);
	expect_err(NULL, "TEKUP_DEMO", "--demo");
	assert_int_equal(unsetenv("TEKUP_DEMO"), 0);

	/* An environment error is not masked by a correct flag. */
	assert_int_equal(setenv("TEKUP_THREADS", "0", 1), 0);
	const char *args[] = {"--threads", "4", NULL};
	expect_err(args, "TEKUP_THREADS", NULL);
}

static void test_booleans(void **state)
{
	(void)state;
	loaded l;
	const char *no_migrate[] = {"--no-migrate", NULL};
	expect_ok(&l, no_migrate);
	assert_false(l.cfg.migrate);
	assert_int_equal(l.nrest, 0);
	tk_config_free(&l.cfg);

	const char *values[][2] = {{"--demo=false", "0"}, {"--demo=0", "0"},    {"--demo=no", "0"},
	                           {"--demo=off", "0"},   {"--demo=true", "1"}, {"--demo=1", "1"},
	                           {"--demo=yes", "1"},   {"--demo=on", "1"},   {"--demo", "1"},
	                           {"--no-demo", "0"}};
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		const char *args[] = {values[i][0], NULL};
		expect_ok(&l, args);
		if (l.cfg.demo != (values[i][1][0] == '1'))
			fail_msg("%s gave demo=%d", values[i][0], l.cfg.demo);
		tk_config_free(&l.cfg);
	}

	/* The last word wins. */
	const char *flip[] = {"--no-pgbouncer", "--pgbouncer", NULL};
	expect_ok(&l, flip);
	assert_true(l.cfg.pgbouncer);
	tk_config_free(&l.cfg);

	const char *negated_value[] = {"--no-migrate=true", NULL};
	expect_err(negated_value, "--no-migrate", NULL);
}

static void test_unknown_arguments_are_left_in_rest(void **state)
{
	(void)state;
	loaded l;
	const char *args[] = {"--frobnicate",    "positional", "--port", "9000",
	                      "--x=1",           "--no-port",  "--",     "-v",
	                      "--no-such-thing", NULL};
	expect_ok(&l, args);
	assert_int_equal(l.cfg.port, 9000);
	assert_int_equal(l.nrest, 7);
	assert_string_equal(l.rest[0], "--frobnicate");
	assert_string_equal(l.rest[1], "positional");
	assert_string_equal(l.rest[2], "--x=1");
	assert_string_equal(l.rest[3], "--no-port"); /* only booleans negate */
	assert_string_equal(l.rest[4], "--");
	assert_string_equal(l.rest[5], "-v");
	assert_string_equal(l.rest[6], "--no-such-thing");
	/* rest borrows argv, it does not copy. */
	assert_ptr_equal(l.rest[1], args[1]);
	tk_config_free(&l.cfg);
}

static void test_flags_outside_scope_are_not_applied(void **state)
{
	(void)state;
	loaded l;
	/* "db" subcommands take --database-url but not the server's --port. */
	const char *args[] = {"--port", "9000", "--database-url=postgresql://h/db", NULL};
	load_scope(&l, TK_CFG_DB, args);
	if (l.st != TK_OK)
		fail_msg("load failed: %s", l.err);
	assert_int_equal(l.cfg.port, 8080);
	assert_string_equal(l.cfg.database_url, "postgresql://h/db");
	assert_int_equal(l.nrest, 2);
	assert_string_equal(l.rest[0], "--port");
	assert_string_equal(l.rest[1], "9000");
	tk_config_free(&l.cfg);
}

static void test_pgbouncer_is_stripped_from_database_url(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"postgresql://u@h/db?pgbouncer=true", "postgresql://u@h/db"},
	    {"postgresql://h/db?sslmode=disable&pgbouncer=true",
	     "postgresql://h/db?sslmode=disable"},
	    {"postgresql://h/db?pgbouncer=true&sslmode=disable",
	     "postgresql://h/db?sslmode=disable"},
	    {"postgresql://h/db?a=1&pgbouncer=true&b=2", "postgresql://h/db?a=1&b=2"},
	    {"postgresql://u:pw@h:6432/db?connect_timeout=5&pgbouncer=true&sslmode=require",
	     "postgresql://u:pw@h:6432/db?connect_timeout=5&sslmode=require"},
	};
	loaded l;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		/* From the environment... */
		assert_int_equal(setenv("DATABASE_URL", cases[i].in, 1), 0);
		expect_ok(&l, NULL);
		assert_true(l.cfg.pgbouncer);
		assert_string_equal(l.cfg.database_url, cases[i].out);
		tk_config_free(&l.cfg);
		assert_int_equal(unsetenv("DATABASE_URL"), 0);

		/* ...and from the flag. */
		const char *args[] = {"--database-url", cases[i].in, NULL};
		expect_ok(&l, args);
		assert_true(l.cfg.pgbouncer);
		assert_string_equal(l.cfg.database_url, cases[i].out);
		tk_config_free(&l.cfg);
	}
}

static void test_database_url_without_pgbouncer_is_untouched(void **state)
{
	(void)state;
	loaded l;
	const char *url = "postgresql://u@h/db?sslmode=disable&application_name=tekup";
	assert_int_equal(setenv("DATABASE_URL", url, 1), 0);
	expect_ok(&l, NULL);
	assert_false(l.cfg.pgbouncer);
	assert_string_equal(l.cfg.database_url, url);
	tk_config_free(&l.cfg);

	/* An empty value means "not set": the embedded cluster. */
	assert_int_equal(setenv("DATABASE_URL", "", 1), 0);
	expect_ok(&l, NULL);
	assert_null(l.cfg.database_url);
	tk_config_free(&l.cfg);

	/* --pgbouncer alone switches the mode without touching the URL. */
	const char *args[] = {"--pgbouncer", "--database-url=postgresql://h/db", NULL};
	expect_ok(&l, args);
	assert_true(l.cfg.pgbouncer);
	assert_string_equal(l.cfg.database_url, "postgresql://h/db");
	tk_config_free(&l.cfg);
}

/* DATABASE_URL in, as the server will use it out, and the mode it sets. */
typedef struct url_case {
	const char *in, *out;
	bool pgbouncer;
} url_case;

static void expect_urls(const url_case *cases, size_t n)
{
	loaded l;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(setenv("DATABASE_URL", cases[i].in, 1), 0);
		expect_ok(&l, NULL);
		assert_string_equal(l.cfg.database_url, cases[i].out);
		assert_int_equal(l.cfg.pgbouncer, cases[i].pgbouncer);
		tk_config_free(&l.cfg);
	}
}

/*
 * Regression: "pgbouncer" is handled as a query parameter, not a substring:
 * "pgbouncer=false" is removed too (libpq refuses unknown parameters), a
 * password containing "&&" is untouched, and look-alike parameters stay.
 */
static void test_pgbouncer_is_a_query_parameter(void **state)
{
	(void)state;

	static const url_case cases[] = {
	    {"postgresql://h/db?pgbouncer=false", "postgresql://h/db", false},
	    {"postgresql://h/db?sslmode=disable&pgbouncer=false",
	     "postgresql://h/db?sslmode=disable", false},
	    {"postgresql://u:a&&b@h/db?pgbouncer=true", "postgresql://u:a&&b@h/db", true},
	    {"postgresql://h/db?application_name=xpgbouncer=true",
	     "postgresql://h/db?application_name=xpgbouncer=true", false},
	};
	expect_urls(cases, sizeof cases / sizeof cases[0]);
}

static void test_trusted_proxies(void **state)
{
	(void)state;
	loaded l;
	expect_ok(&l, NULL);
	assert_int_equal(l.cfg.trusted_proxies.n, 0); /* default: none */
	tk_config_free(&l.cfg);
	const char *args[] = {"--trusted-proxies", "127.0.0.1, ::1", NULL};
	expect_ok(&l, args);
	assert_int_equal(l.cfg.trusted_proxies.n, 2);
	tk_config_free(&l.cfg);
	assert_int_equal(setenv("TEKUP_TRUSTED_PROXIES", "10.0.0.1", 1), 0);
	expect_ok(&l, NULL);
	assert_int_equal(l.cfg.trusted_proxies.n, 1);
	tk_config_free(&l.cfg);
	const char *bad[] = {"--trusted-proxies=127.0.0.1,10.0.0.0/8", NULL};
	expect_err(bad, "--trusted-proxies (TEKUP_TRUSTED_PROXIES)", "'10.0.0.0/8'");
	assert_int_equal(setenv("TEKUP_TRUSTED_PROXIES", "nginx", 1), 0);
	expect_err(NULL, "TEKUP_TRUSTED_PROXIES", "'nginx'");
	const char *empty[] = {"--trusted-proxies=127.0.0.1,", NULL};
	expect_err(empty, "--trusted-proxies", "empty");
}

/*
 * key=value strings are read with libpq's quoting rules: a quoted value is
 * never split or changed (not even its spaces), a pgbouncer inside one is
 * not ours, and "pgbouncer = 'true'" with spaces and quotes is.
 */
static void test_pgbouncer_in_a_keyword_string(void **state)
{
	(void)state;
	static const url_case cases[] = {
	    {"host=h pgbouncer=true dbname=d", "host=h dbname=d", true},
	    {"host=h dbname=d pgbouncer=false", "host=h dbname=d", false},
	    {"pgbouncer = 'true'  host=h", "host=h", true},
	    {"host=h password='a  pgbouncer=true b' dbname=d",
	     "host=h password='a  pgbouncer=true b' dbname=d", false},
	    {"host=h password='it\\'s  pgbouncer=true' pgbouncer=1",
	     "host=h password='it\\'s  pgbouncer=true'", true},
	    {"host=h password=a\\ pgbouncer=true dbname=d",
	     "host=h password=a\\ pgbouncer=true dbname=d", false},
	    {"host=h\tapplication_name=xpgbouncer=true", "host=h\tapplication_name=xpgbouncer=true",
	     false},
	    /* Malformed: left as it is, for libpq to refuse with its own message. */
	    {"host=h password='unterminated pgbouncer=true",
	     "host=h password='unterminated pgbouncer=true", false},
	};
	expect_urls(cases, sizeof cases / sizeof cases[0]);
}

static void test_reload_after_free(void **state)
{
	(void)state;
	/* Loading twice into the same struct, freeing in between, leaks nothing. */
	loaded l;
	const char *args[] = {"--bind", "10.0.0.1", "--bind", "::1", "--log-level=warn", NULL};
	for (int i = 0; i < 3; i++) {
		expect_ok(&l, args);
		assert_string_equal(l.cfg.bind_address, "::1");
		assert_string_equal(l.cfg.log_level, "warn");
		tk_config_free(&l.cfg);
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_defaults),
	    T(test_port_flag_both_spellings),
	    T(test_string_flags),
	    T(test_environment_then_flags),
	    T(test_bad_values_name_the_flag),
	    T(test_missing_value),
	    T(test_bad_environment_names_the_variable),
	    T(test_booleans),
	    T(test_unknown_arguments_are_left_in_rest),
	    T(test_flags_outside_scope_are_not_applied),
	    T(test_pgbouncer_is_stripped_from_database_url),
	    T(test_database_url_without_pgbouncer_is_untouched),
	    T(test_pgbouncer_is_a_query_parameter),
	    T(test_pgbouncer_in_a_keyword_string),
	    T(test_trusted_proxies),
	    T(test_reload_after_free),
	};
#undef T
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
