/*
 * cluster.c - the embedded PostgreSQL cluster (see cluster.h).
 */
#include "db/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/log.h"

#define PG_BIN_DIR      "/usr/lib/postgresql/15/bin"
#define SOCKET_PATH_MAX 100 /* sun_path is 108 bytes, minus "/.s.PGSQL.5432" headroom */

typedef struct run_as {
	bool switch_user;
	uid_t uid;
	gid_t gid;
	const char *name;
} run_as;

static tk_status pick_user(run_as *who)
{
	memset(who, 0, sizeof *who);
	if (geteuid() != 0)
		return TK_OK;
	struct passwd *pw = getpwnam("postgres");
	if (pw == NULL) {
		log_error("running as root, but there is no 'postgres' user to run PostgreSQL as "
		          "(install postgresql-15, or run tekup as an ordinary user)");
		return TK_ERR;
	}
	who->switch_user = true;
	who->uid = pw->pw_uid;
	who->gid = pw->pw_gid;
	who->name = "postgres";
	return TK_OK;
}

/* Runs argv as `who`, in cwd, with stdout/stderr sent to log_path (or inherited). */
static int run_program(const run_as *who, const char *cwd, char *const argv[], const char *log_path)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (who->switch_user &&
		    (setgroups(0, NULL) != 0 || setgid(who->gid) != 0 || setuid(who->uid) != 0))
			_exit(126);
		if (cwd && chdir(cwd) != 0)
			_exit(126);
		if (log_path) {
			int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
				close(fd);
			}
		}
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			close(devnull);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Makes path a private directory of the user PostgreSQL runs as.  It may
 * already exist, but then only as a real directory (not a symbolic link)
 * that is ours or that user's: the socket directory can fall back to /tmp,
 * where anyone could have made it first, and chown/chmod must not be turned
 * on someone else's file.  Hence the changes go through a descriptor
 * opened without following links.
 */
static tk_status make_dir(const char *path, const run_as *who)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", path, strerror(errno));
		return TK_ERR;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		log_error("%s is not a directory of its own (a symbolic link?): %s; remove it",
		          path, strerror(errno));
		return TK_ERR;
	}
	struct stat st;
	tk_status result = TK_ERR;
	if (fstat(fd, &st) != 0) {
		log_error("cannot inspect %s: %s", path, strerror(errno));
	} else if (st.st_uid != geteuid() && !(who->switch_user && st.st_uid == who->uid)) {
		log_error("%s belongs to another user (uid %u); remove it or choose another "
		          "--data-dir",
		          path, (unsigned)st.st_uid);
	} else if (who->switch_user && fchown(fd, who->uid, who->gid) != 0) {
		log_error("cannot hand %s to the postgres user: %s", path, strerror(errno));
	} else if (fchmod(fd, 0700) != 0) {
		log_error("cannot restrict %s to its owner: %s", path, strerror(errno));
	} else {
		result = TK_OK;
	}
	close(fd);
	return result;
}

static tk_status resolve_paths(const char *data_dir, tk_cluster *c)
{
	char abs[PATH_MAX];
	if (realpath(data_dir, abs) == NULL) {
		log_error("cannot resolve data directory %s: %s", data_dir, strerror(errno));
		return TK_ERR;
	}
	snprintf(c->data_dir, sizeof c->data_dir, "%s", abs);
	snprintf(c->socket_dir, sizeof c->socket_dir, "%s/run", abs);
	if (strlen(c->socket_dir) > SOCKET_PATH_MAX) {
		/* Unix socket paths are short; fall back to a private dir in /tmp
		 * named after the data directory. */
		unsigned char h[8];
		char hex[17];
		crypto_generichash(h, sizeof h, (const unsigned char *)abs, strlen(abs), NULL, 0);
		sodium_bin2hex(hex, sizeof hex, h, sizeof h);
		snprintf(c->socket_dir, sizeof c->socket_dir, "/tmp/tekup-%s", hex);
	}
	snprintf(c->request_url, sizeof c->request_url, "host=%s dbname=tekup user=tekup_app",
	         c->socket_dir);
	snprintf(c->admin_url, sizeof c->admin_url, "host=%s dbname=tekup user=tekup_owner",
	         c->socket_dir);
	snprintf(c->operator_url, sizeof c->operator_url,
	         "host=%s dbname=tekup user=tekup_operator", c->socket_dir);
	snprintf(c->superuser_url, sizeof c->superuser_url, "host=%s dbname=postgres user=postgres",
	         c->socket_dir);
	return TK_OK;
}

static bool file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static tk_status write_settings(const char *pgdata, const tk_cluster *c, const run_as *who)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof path, "%s/postgresql.conf", pgdata);
	FILE *f = fopen(path, "a");
	if (f == NULL) {
		log_error("cannot write %s: %s", path, strerror(errno));
		return TK_ERR;
	}
	fprintf(f,
	        "\n# tekup embedded cluster\n"
	        "listen_addresses = ''\n"
	        "unix_socket_directories = '%s'\n"
	        "unix_socket_permissions = 0700\n"
	        "max_connections = 300\n"
	        "shared_buffers = 256MB\n"
	        "work_mem = 8MB\n"
	        "timezone = 'UTC'\n"
	        "log_timezone = 'UTC'\n",
	        c->socket_dir);
	fclose(f);
	(void)who;
	return TK_OK;
}

static tk_status superuser_exec(const tk_cluster *c, const char *dbname, const char *sql)
{
	char url[PATH_MAX + 128];
	snprintf(url, sizeof url, "host=%s dbname=%s user=postgres", c->socket_dir, dbname);
	PGconn *pg = PQconnectdb(url);
	tk_status st = TK_ERR;
	if (PQstatus(pg) != CONNECTION_OK) {
		log_error("cannot connect to the embedded cluster: %s", PQerrorMessage(pg));
	} else {
		PGresult *r = PQexec(pg, sql);
		if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
			st = TK_OK;
		else
			log_error("bootstrapping the embedded cluster failed: %s",
			          PQresultErrorMessage(r));
		PQclear(r);
	}
	PQfinish(pg);
	return st;
}

static tk_status bootstrap(const tk_cluster *c)
{
	static const char roles[] =
	    "SET client_min_messages = warning;"
	    "DO $$ BEGIN"
	    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tekup_owner') THEN"
	    "  CREATE ROLE tekup_owner LOGIN NOSUPERUSER BYPASSRLS;"
	    " END IF;"
	    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tekup_app') THEN"
	    "  CREATE ROLE tekup_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;"
	    " END IF;"
	    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tekup_operator') THEN"
	    "  CREATE ROLE tekup_operator LOGIN NOSUPERUSER BYPASSRLS NOCREATEDB NOCREATEROLE;"
	    " END IF;"
	    /* Signed-in users who are not admins (migration 0016). */
	    " IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tekup_app_user') THEN"
	    "  CREATE ROLE tekup_app_user NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;"
	    " END IF;"
	    " IF NOT pg_has_role('tekup_app', 'tekup_app_user', 'MEMBER') THEN"
	    "  GRANT tekup_app_user TO tekup_app;"
	    " END IF;"
	    /* Only when needed: a write here races another tekup starting at
	     * the same time ("tuple concurrently updated"). */
	    " IF (SELECT rolinherit FROM pg_roles WHERE rolname = 'tekup_app') THEN"
	    "  ALTER ROLE tekup_app NOINHERIT;"
	    " END IF;"
	    " END $$";
	if (superuser_exec(c, "postgres", roles) != TK_OK)
		return TK_ERR;
	char url[PATH_MAX + 128];
	snprintf(url, sizeof url, "host=%s dbname=postgres user=postgres", c->socket_dir);
	PGconn *pg = PQconnectdb(url);
	PGresult *r = PQexec(pg, "SELECT 1 FROM pg_database WHERE datname = 'tekup'");
	bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	PQfinish(pg);
	if (!exists &&
	    superuser_exec(
	        c, "postgres",
	        "CREATE DATABASE tekup OWNER tekup_owner ENCODING 'UTF8' TEMPLATE template0") !=
	        TK_OK)
		return TK_ERR;
	return TK_OK;
}

static tk_status cluster_paths(const char *data_dir, run_as *who, tk_cluster *c, char *pgdata,
                               size_t pgdata_len)
{
	if (pick_user(who) != TK_OK || make_dir(data_dir, who) != TK_OK ||
	    resolve_paths(data_dir, c) != TK_OK)
		return TK_ERR;
	snprintf(pgdata, pgdata_len, "%s/pgdata", c->data_dir);
	return TK_OK;
}

static int pg_ctl_status(const run_as *who, const tk_cluster *c, const char *pgdata)
{
	char prog[] = PG_BIN_DIR "/pg_ctl";
	char *argv[] = {prog, "status", "-s", "-D", (char *)pgdata, NULL};
	return run_program(who, c->data_dir, argv, "/dev/null");
}

tk_status tk_cluster_ensure(const char *data_dir, tk_cluster *c)
{
	run_as who;
	char pgdata[PATH_MAX + 16];
	if (cluster_paths(data_dir, &who, c, pgdata, sizeof pgdata) != TK_OK)
		return TK_ERR;
	if (!file_exists(PG_BIN_DIR "/initdb")) {
		log_error("PostgreSQL 15 server binaries are missing (%s); install postgresql-15",
		          PG_BIN_DIR);
		return TK_ERR;
	}
	if (who.switch_user) {
		/* The postgres user must be able to reach the data directory. */
		char *argv[] = {"/usr/bin/test", "-w", c->data_dir, NULL};
		if (run_program(&who, "/", argv, NULL) != 0) {
			log_error(
			    "the postgres user cannot reach %s (a parent directory is private); "
			    "choose another --data-dir",
			    c->data_dir);
			return TK_ERR;
		}
	}
	if (make_dir(c->socket_dir, &who) != TK_OK)
		return TK_ERR;
	char log_path[PATH_MAX + 32];
	snprintf(log_path, sizeof log_path, "%s/postgres.log", c->data_dir);

	char version_file[PATH_MAX + 32];
	snprintf(version_file, sizeof version_file, "%s/PG_VERSION", pgdata);
	if (!file_exists(version_file)) {
		log_info("creating the embedded PostgreSQL cluster in %s", pgdata);
		char prog[] = PG_BIN_DIR "/initdb";
		char *argv[] = {prog,
		                "-D",
		                pgdata,
		                "-U",
		                "postgres",
		                "-A",
		                "trust",
		                "-E",
		                "UTF8",
		                "--locale=C.UTF-8",
		                "--no-instructions",
		                NULL};
		if (run_program(&who, c->data_dir, argv, log_path) != 0) {
			log_error("initdb failed; see %s", log_path);
			return TK_ERR;
		}
		if (write_settings(pgdata, c, &who) != TK_OK)
			return TK_ERR;
	}
	if (pg_ctl_status(&who, c, pgdata) != 0) {
		log_info("starting the embedded PostgreSQL cluster (log: %s)", log_path);
		char prog[] = PG_BIN_DIR "/pg_ctl";
		char sock_opt[PATH_MAX + 128];
		snprintf(sock_opt, sizeof sock_opt, "-c unix_socket_directories='%s'",
		         c->socket_dir);
		char *argv[] = {prog,   "start", "-w",     "-t", "60",     "-s", "-D",
		                pgdata, "-l",    log_path, "-o", sock_opt, NULL};
		if (run_program(&who, c->data_dir, argv, NULL) != 0) {
			log_error("the embedded PostgreSQL cluster did not start; see %s",
			          log_path);
			return TK_ERR;
		}
	}
	return bootstrap(c);
}

tk_status tk_cluster_stop(const char *data_dir)
{
	run_as who;
	tk_cluster c;
	char pgdata[PATH_MAX + 16];
	if (cluster_paths(data_dir, &who, &c, pgdata, sizeof pgdata) != TK_OK)
		return TK_ERR;
	if (pg_ctl_status(&who, &c, pgdata) != 0) {
		printf("the embedded cluster in %s is not running\n", pgdata);
		return TK_OK;
	}
	char prog[] = PG_BIN_DIR "/pg_ctl";
	char *argv[] = {prog, "stop", "-w", "-s", "-m", "fast", "-D", pgdata, NULL};
	if (run_program(&who, c.data_dir, argv, NULL) != 0) {
		log_error("stopping the embedded cluster failed");
		return TK_ERR;
	}
	printf("stopped the embedded cluster in %s\n", pgdata);
	return TK_OK;
}

tk_status tk_cluster_status(const char *data_dir)
{
	run_as who;
	tk_cluster c;
	char pgdata[PATH_MAX + 16];
	if (cluster_paths(data_dir, &who, &c, pgdata, sizeof pgdata) != TK_OK)
		return TK_ERR;
	if (pg_ctl_status(&who, &c, pgdata) != 0) {
		printf("not running (%s)\n", pgdata);
		return TK_ERR;
	}
	printf("running: %s, socket in %s\n", pgdata, c.socket_dir);
	return TK_OK;
}
