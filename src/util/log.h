/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Lines are written with a single write(2) so concurrent threads never
 * interleave within a line.  tk_log_request is the access log line the
 * server emits once per request.
 *
 * A thread that serves many requests may defer its access lines: they are
 * kept (at most PIPE_BUF bytes, so one write to a pipe stays atomic) and
 * written together, which saves a write(2) per request.  Such a thread
 * calls tk_log_flush once tk_log_flush_due_ms says 0 (a line has waited
 * 5 ms) and before anything that may block, and tk_log_end_deferring
 * before it exits.  Any other line it logs first writes the deferred ones,
 * so one thread's lines stay in order; lines of different threads are in
 * the order they were written, which can differ from the order the
 * requests finished by up to 5 ms.  A thread blocked in a database call
 * with lines younger than 5 ms writes them when the call returns (at most
 * the statement timeout later).
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

/* From now on, this thread's access lines are deferred. */
void tk_log_defer_requests(void);
/* Milliseconds until this thread's deferred lines are due (0: now), or -1
 * when there are none. */
int tk_log_flush_due_ms(void);
/* Writes this thread's deferred lines. */
void tk_log_flush(void);
/* Writes them and stops deferring (a deferring thread calls it before it
 * exits). */
void tk_log_end_deferring(void);

#endif
