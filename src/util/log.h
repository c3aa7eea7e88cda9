/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Lines are written with a single write(2) so concurrent threads never
 * interleave within a line.  tk_log_request is the access log line the
 * server emits once per request.
 */
#ifndef TK_LOG_H
#define TK_LOG_H

#include "util/status.h"

typedef enum tk_log_level {
	TK_LOG_DEBUG,
	TK_LOG_INFO,
	TK_LOG_WARN,
	TK_LOG_ERROR,
} tk_log_level;

void tk_log_set_level(tk_log_level level);
void tk_log(tk_log_level level, const char *fmt, ...) TK_PRINTF(2, 3);

#define log_debug(...) tk_log(TK_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  tk_log(TK_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  tk_log(TK_LOG_WARN, __VA_ARGS__)
#define log_error(...) tk_log(TK_LOG_ERROR, __VA_ARGS__)

typedef struct tk_request_log {
	const char *request_id;
	const char *tenant_id; /* NULL when no tenant was resolved */
	const char *method;
	const char *path;
	int status;
	double duration_ms;
	const char *error_code; /* NULL on success */
	int batch;              /* > 0: transactions in the pipeline this one went in */
} tk_request_log;

void tk_log_request(const tk_request_log *entry);

#endif
