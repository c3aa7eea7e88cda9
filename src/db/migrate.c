/*
 * migrate.c - versioned SQL migrations (see migrate.h).
 */
#include "db/migrate.h"

#include <dirent.h>
#include <libgen.h>
#include <libpq-fe.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/log.h"
#include "util/validate.h"

#define MIGRATE_MAX_FILES      1000
#define MIGRATE_MAX_FILE_BYTES (4 * 1024 * 1024)
/* Arbitrary but fixed: the advisory lock key for migrations. */
#define MIGRATE_LOCK_KEY 7238450123LL

typedef struct migration {
	long version;
	char *name;
	char *path;
} migration;

static char default_dir[PATH_MAX];

const char *tk_migrations_default_dir(const char *configured)
{
	if (configured)
		return configured;
	/* Installed (<prefix>/bin/tekup -> <prefix>/share/tekup/migrations) or
	 * built in a checkout (build/<kind>/tekup -> sql/migrations). */
	static const char *const relative[] = {"../share/tekup/migrations", "../sql/migrations",
	                                       "../../sql/migrations"};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	struct stat st;
	if (n > 0) {
		exe[n] = '\0';
		char *dir = dirname(exe);
		for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
			snprintf(default_dir, sizeof default_dir, "%s/%s", dir, relative[i]);
			if (stat(default_dir, &st) == 0 && S_ISDIR(st.st_mode))
				return default_dir;
		}
	}
	return "sql/migrations";
}

static int migration_cmp(const void *a, const void *b)
{
	const migration *x = a, *y = b;
	return (x->version > y->version) - (x->version < y->version);
}

static void migrations_free(migration *m, int n)
{
	for (int i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].path);
	}
	free(m);
}

static tk_status list_files(const char *dir, migration **out, int *count)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		log_error("cannot open migrations directory %s", dir);
		return TK_ERR;
	}
	migration *m = tk_calloc(MIGRATE_MAX_FILES, sizeof *m);
	int n = 0;
	tk_status st = TK_OK;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t len = strlen(name);
		if (len < 9 || strcmp(name + len - 4, ".sql") != 0)
			continue;
		char digits[5];
		memcpy(digits, name, 4);
		digits[4] = '\0';
		long v;
		if (name[4] != '_' || !tk_parse_int(digits, 1, 9999, &v)) {
			log_error("migration file %s is not named NNNN_name.sql", name);
			st = TK_ERR;
			break;
		}
		if (n >= MIGRATE_MAX_FILES) {
			st = TK_ERR;
			break;
		}
		m[n].version = v;
		m[n].name = tk_strdup(name);
		size_t plen = strlen(dir) + len + 2;
		m[n].path = tk_malloc(plen);
		snprintf(m[n].path, plen, "%s/%s", dir, name);
		n++;
	}
	closedir(d);
	qsort(m, (size_t)n, sizeof *m, migration_cmp);
	for (int i = 1; st == TK_OK && i < n; i++)
		if (m[i].version == m[i - 1].version) {
			log_error("two migrations share version %04ld", m[i].version);
			st = TK_ERR;
		}
	if (st != TK_OK) {
		migrations_free(m, n);
		return TK_ERR;
	}
	*out = m;
	*count = n;
	return TK_OK;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *buf = tk_malloc(MIGRATE_MAX_FILE_BYTES + 1);
	size_t n = fread(buf, 1, MIGRATE_MAX_FILE_BYTES + 1, f);
	fclose(f);
	if (n > MIGRATE_MAX_FILE_BYTES) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static bool exec_ok(PGconn *pg, const char *sql, const char *what)
{
	PGresult *r = PQexec(pg, sql);
	ExecStatusType st = PQresultStatus(r);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if (!ok) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
		msg[strcspn(msg, "\n")] = '\0';
		const char *hint = PQresultErrorField(r, PG_DIAG_MESSAGE_HINT);
		log_error("%s failed: %s%s%s", what, msg, hint ? " (hint: " : "", hint ? hint : "");
		if (hint)
			log_error("hint: %s", hint);
	}
	PQclear(r);
	return ok;
}

/* Applies one file and records it, in one transaction. */
static bool apply_one(PGconn *pg, const migration *m, const char *sql, const char *checksum)
{
	if (!exec_ok(pg, "BEGIN", "BEGIN"))
		return false;
	char what[300];
	snprintf(what, sizeof what, "migration %s", m->name);
	if (!exec_ok(pg, sql, what)) {
		exec_ok(pg, "ROLLBACK", "ROLLBACK");
		return false;
	}
	char version[16];
	snprintf(version, sizeof version, "%ld", m->version);
	const char *params[] = {version, m->name, checksum};
	PGresult *r = PQexecParams(pg,
	                           "INSERT INTO schema_migrations (version, name, checksum)"
	                           " VALUES ($1, $2, $3)",
	                           3, NULL, params, NULL, NULL, 0);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		log_error("recording migration %s failed: %s", m->name, PQresultErrorMessage(r));
	PQclear(r);
	if (!ok) {
		exec_ok(pg, "ROLLBACK", "ROLLBACK");
		return false;
	}
	return exec_ok(pg, "COMMIT", "COMMIT");
}

tk_status tk_migrate(const char *conninfo, const char *dir, FILE *out)
{
	migration *files = NULL;
	int nfiles = 0;
	PGconn *pg = NULL;
	PGresult *applied = NULL;
	tk_status st = TK_ERR;
	bool locked = false;

	if (list_files(dir, &files, &nfiles) != TK_OK)
		goto cleanup;
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {"5", "tekup-migrate", conninfo, NULL};
	pg = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(pg) != CONNECTION_OK) {
		char msg[512];
		snprintf(msg, sizeof msg, "%s", PQerrorMessage(pg));
		msg[strcspn(msg, "\n")] = '\0';
		log_error("cannot connect to PostgreSQL as the schema owner: %s", msg);
		goto cleanup;
	}
	PGresult *nr = PQexec(pg, "SET client_min_messages = warning");
	PQclear(nr);
	char lock_sql[64];
	snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_lock(%lld)", MIGRATE_LOCK_KEY);
	if (!exec_ok(pg, lock_sql, "taking the migration lock"))
		goto cleanup;
	locked = true;
	if (!exec_ok(pg,
	             "CREATE TABLE IF NOT EXISTS schema_migrations ("
	             " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
	             " applied_at timestamptz NOT NULL DEFAULT now())",
	             "creating schema_migrations"))
		goto cleanup;
	applied =
	    PQexec(pg, "SELECT version, name, checksum FROM schema_migrations ORDER BY version");
	if (PQresultStatus(applied) != PGRES_TUPLES_OK) {
		log_error("reading schema_migrations failed: %s", PQresultErrorMessage(applied));
		goto cleanup;
	}
	int napplied = PQntuples(applied);
	int done = 0;
	for (int i = 0; i < nfiles; i++) {
		size_t len = 0;
		char *sql = read_file(files[i].path, &len);
		if (sql == NULL) {
			log_error("cannot read %s (missing or over 4 MiB)", files[i].path);
			goto cleanup;
		}
		unsigned char hash[crypto_hash_sha256_BYTES];
		char checksum[crypto_hash_sha256_BYTES * 2 + 1];
		crypto_hash_sha256(hash, (const unsigned char *)sql, len);
		sodium_bin2hex(checksum, sizeof checksum, hash, sizeof hash);
		int found = -1;
		for (int k = 0; k < napplied; k++)
			if (atol(PQgetvalue(applied, k, 0)) == files[i].version)
				found = k;
		if (found >= 0) {
			if (strcmp(PQgetvalue(applied, found, 2), checksum) != 0) {
				log_error(
				    "migration %s was edited after it was applied (checksum %s, "
				    "recorded %s); restore it and add a new migration instead",
				    files[i].name, checksum, PQgetvalue(applied, found, 2));
				free(sql);
				goto cleanup;
			}
			free(sql);
			continue;
		}
		bool ok = apply_one(pg, &files[i], sql, checksum);
		free(sql);
		if (!ok)
			goto cleanup;
		fprintf(out, "applied %s\n", files[i].name);
		done++;
	}
	for (int k = 0; k < napplied; k++) {
		bool present = false;
		for (int i = 0; i < nfiles; i++)
			present = present || atol(PQgetvalue(applied, k, 0)) == files[i].version;
		if (!present)
			log_warn("applied migration %s has no file in %s",
			         PQgetvalue(applied, k, 1), dir);
	}
	fprintf(out, "migrations: %d applied now, %d files, schema up to date\n", done, nfiles);
	st = TK_OK;
cleanup:
	PQclear(applied);
	if (locked) {
		snprintf(lock_sql, sizeof lock_sql, "SELECT pg_advisory_unlock(%lld)",
		         MIGRATE_LOCK_KEY);
		exec_ok(pg, lock_sql, "releasing the migration lock");
	}
	PQfinish(pg);
	migrations_free(files, nfiles);
	return st;
}
