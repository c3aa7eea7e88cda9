/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Each line is written with one write(2); a line of up to PIPE_BUF bytes
 * (all but those that escaping control bytes made very long) is never
 * split by another thread's.  tk_log_request is the access log line the server emits
 * once per request; its "time" is when the request finished, whenever the
 * line is written.
 *
 * A thread that serves many requests may defer its access lines: they are
 * kept (at most PIPE_BUF bytes, so one write to a pipe stays atomic) and
 * written together, which saves a write(2) per request.  Such a thread
 * calls tk_log_flush once tk_log_flush_due_ms says 0 (a line has waited
 * 5 ms), checks that before each database call, and calls
 * tk_log_end_deferring before it exits.  A line can wait longer than 5 ms
 * only while its thread is inside a database call (until the call returns:
 * a slow statement, a full pool, a reconnect).  Any other line the thread
 * logs first writes the deferred ones, so one thread's lines stay in
 * order; lines of different threads are in the order they were written.
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
	const char *user_id;   /* NULL unless a user signed in */
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
