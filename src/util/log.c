/*
 * log.c - JSON-lines logger (see log.h).
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"

static tk_log_level min_level = TK_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tk_log_set_level(tk_log_level level)
{
	min_level = level;
}

/* The access log's hot path avoids printf: these append digits directly. */
static void put_uint(tk_buf *b, unsigned long long n)
{
	char digits[24];
	int i = (int)sizeof digits;
	do {
		digits[--i] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	tk_buf_append(b, digits + i, sizeof digits - (size_t)i);
}

/* ".ddd" for the last three decimal digits of n. */
static void put_fraction3(tk_buf *b, unsigned long long n)
{
	char frac[4] = {'.', (char)('0' + n / 100 % 10), (char)('0' + n / 10 % 10),
	                (char)('0' + n % 10)};
	tk_buf_append(b, frac, sizeof frac);
}

static void log_timestamp(tk_buf *b)
{
	/* One access-log line per request: the date part changes once a second,
	 * so each thread formats it once a second rather than per line. */
	static __thread time_t cached_second = -1;
	static __thread char cached[32];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_second) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
		cached_second = tv.tv_sec;
	}
	tk_buf_puts(b, "{\"time\":\"");
	tk_buf_puts(b, cached);
	put_fraction3(b, (unsigned)(tv.tv_usec / 1000));
	tk_buf_puts(b, "Z\"");
}

static void log_write(tk_buf *b)
{
	tk_buf_puts(b, "}\n");
	ssize_t TK_UNUSED n = write(STDERR_FILENO, b->data, b->len);
	tk_buf_free(b);
}

void tk_log(tk_log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
	tk_buf b = TK_BUF_INIT;
	log_timestamp(&b);
	tk_buf_printf(&b, ",\"level\":\"%s\",\"msg\":", level_names[level]);
	tk_buf_json_string(&b, msg, len);
	log_write(&b);
}

static void log_field(tk_buf *b, const char *name, const char *value)
{
	tk_buf_puts(b, ",\"");
	tk_buf_puts(b, name);
	tk_buf_puts(b, "\":");
	if (value == NULL) {
		tk_buf_puts(b, "null");
		return;
	}
	size_t len = 0;
	while (len < 512 && value[len])
		len++;
	tk_buf_json_string(b, value, len);
}

void tk_log_request(const tk_request_log *e)
{
	tk_buf b = TK_BUF_INIT;
	log_timestamp(&b);
	tk_buf_puts(&b, ",\"level\":\"info\",\"msg\":\"request\"");
	log_field(&b, "requestId", e->request_id);
	log_field(&b, "tenantId", e->tenant_id);
	log_field(&b, "method", e->method);
	log_field(&b, "path", e->path);
	tk_buf_puts(&b, ",\"status\":");
	put_uint(&b, e->status > 0 ? (unsigned long long)e->status : 0);
	/* durationMs with 3 decimals (microseconds), as printf's %.3f would. */
	unsigned long long us =
	    e->duration_ms > 0 ? (unsigned long long)(e->duration_ms * 1000.0 + 0.5) : 0;
	tk_buf_puts(&b, ",\"durationMs\":");
	put_uint(&b, us / 1000);
	put_fraction3(&b, us);
	if (e->error_code)
		log_field(&b, "error", e->error_code);
	if (e->batch > 0) {
		tk_buf_puts(&b, ",\"batch\":");
		put_uint(&b, (unsigned long long)e->batch);
	}
	log_write(&b);
}
