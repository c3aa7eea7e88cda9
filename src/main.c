/*
 * main.c - the tekup binary: dispatch to a subcommand.
 */
#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

typedef struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} command;

static const command commands[] = {
    {"serve", cmd_serve, "serve the lead API over HTTP"},
    {"migrate", cmd_migrate, "apply database migrations"},
    {"tenant", cmd_tenant, "provision and manage tenants, keys, migration, cleanup"},
    {"admin", cmd_admin, "operator tokens for the /admin API"},
    {"db", cmd_db, "start, stop or inspect the embedded PostgreSQL cluster"},
    {"sql", cmd_sql, "print the SQL an endpoint sends (for EXPLAIN and benchmarks)"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: tekup <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < TK_ARRAY_LEN(commands); i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n  tekup <command> --help   options of a command\n"
	             "  tekup --version          print the version\n");
}

int main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "tekup: libsodium failed to initialise\n");
		return TK_EXIT_FAILURE;
	}
	/* libcurl's global state must exist before any thread starts (the
	 * outbox worker); atexit undoes it after main returns, on every path. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || atexit(curl_global_cleanup) != 0) {
		fprintf(stderr, "tekup: libcurl failed to initialise\n");
		return TK_EXIT_FAILURE;
	}
	if (argc < 2) {
		usage(stderr);
		return TK_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("tekup %s\n", TEKUP_VERSION);
		return TK_EXIT_OK;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return TK_EXIT_OK;
	}
	for (size_t i = 0; i < TK_ARRAY_LEN(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "tekup: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return TK_EXIT_USAGE;
}
