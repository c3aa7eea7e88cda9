/*
 * log.c - JSON-lines logger (see log.h).
 */
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/validate.h"

/* Deferred access lines are written together, at most this many bytes per
 * write: a write to a pipe up to PIPE_BUF is atomic, so other threads'
 * lines never land inside the batch. */
#define LOG_DEFER_MAX_BYTES PIPE_BUF
#define LOG_DEFER_MAX_MS    5
_Static_assert(LOG_DEFER_MAX_BYTES >= 512, "POSIX promises PIPE_BUF >= 512");

static tk_log_level min_level = TK_LOG_INFO;

/* A thread that called tk_log_defer_requests: its access lines not written yet. */
static __thread bool deferring;
static __thread tk_buf deferred;
static __thread struct timespec deferred_since;
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

/* A log write that fails (stderr closed, disk full) is dropped: there is
 * nowhere left to report it. */
static void write_all(const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

void tk_log_flush(void)
{
	if (deferred.len == 0)
		return;
	write_all(deferred.data, deferred.len);
	tk_buf_reset(&deferred);
}

/* Ends the line in b and writes it, after this thread's deferred lines so
 * that the order holds; one write for both when they fit. */
static void log_write(tk_buf *b)
{
	tk_buf_puts(b, "}\n");
	if (deferred.len > 0 && deferred.len + b->len <= LOG_DEFER_MAX_BYTES) {
		tk_buf_append(&deferred, b->data, b->len);
		tk_log_flush();
	} else {
		tk_log_flush();
		write_all(b->data, b->len);
	}
	tk_buf_free(b);
}

void tk_log_defer_requests(void)
{
	deferring = true;
}

void tk_log_end_deferring(void)
{
	tk_log_flush();
	tk_buf_free(&deferred);
	deferring = false;
}

int tk_log_flush_due_ms(void)
{
	if (deferred.len == 0)
		return -1;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long long waited = (long long)(now.tv_sec - deferred_since.tv_sec) * 1000 +
	                   (now.tv_nsec - deferred_since.tv_nsec) / 1000000;
	return waited >= LOG_DEFER_MAX_MS ? 0 : (int)(LOG_DEFER_MAX_MS - waited);
}

/* An access line: written now, or kept with this thread's deferred ones. */
static void log_write_request(tk_buf *b)
{
	if (!deferring) {
		log_write(b);
		return;
	}
	tk_buf_puts(b, "}\n");
	if (deferred.len + b->len > LOG_DEFER_MAX_BYTES)
		tk_log_flush();
	if (b->len > LOG_DEFER_MAX_BYTES) {
		/* Escaping made it too long to share an atomic write. */
		write_all(b->data, b->len);
		tk_buf_free(b);
		return;
	}
	if (deferred.len == 0)
		clock_gettime(CLOCK_MONOTONIC, &deferred_since);
	tk_buf_append(&deferred, b->data, b->len);
	tk_buf_free(b);
}

/* A log field's value is cut to this many bytes. */
#define LOG_FIELD_MAX_BYTES 512

/*
 * A JSON string of text that may not be UTF-8 (a request path as the client
 * sent it, a peer's error message): every malformed byte becomes U+FFFD, so
 * that each log line stays valid JSON for whatever reads it.
 */
static bool all_ascii(const char *s, size_t len)
{
	uint64_t high = 0, word;
	size_t i = 0;
	for (; i + sizeof word <= len; i += sizeof word) {
		memcpy(&word, s + i, sizeof word);
		high |= word;
	}
	for (; i < len; i++)
		high |= (unsigned char)s[i];
	return (high & 0x8080808080808080ULL) == 0;
}

static void log_json_text(tk_buf *b, const char *s, size_t len)
{
	/* Plain ASCII, as nearly every value is, needs no check per character
	 * (a value here is a C string: it holds no NUL). */
	if (all_ascii(s, len) || tk_is_utf8(s, len)) {
		tk_buf_json_string(b, s, len);
		return;
	}
	tk_buf clean = TK_BUF_INIT;
	for (size_t i = 0; i < len;) {
		size_t n = tk_utf8_char_length(s + i, len - i);
		if (n == 0) {
			tk_buf_append(&clean, "\xEF\xBF\xBD", 3);
			i++;
		} else {
			tk_buf_append(&clean, s + i, n);
			i += n;
		}
	}
	tk_buf_json_string(b, clean.data, clean.len);
	tk_buf_free(&clean);
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
	log_json_text(&b, msg, len); /* a character cut at the end becomes U+FFFD */
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
	while (len < LOG_FIELD_MAX_BYTES && value[len])
		len++;
	if (value[len]) /* cut: not inside a character */
		while (len > 0 && ((unsigned char)value[len] & 0xC0) == 0x80)
			len--;
	log_json_text(b, value, len);
}

void tk_log_request(const tk_request_log *e)
{
	tk_buf b = TK_BUF_INIT;
	log_timestamp(&b);
	tk_buf_puts(&b, ",\"level\":\"info\",\"msg\":\"request\"");
	log_field(&b, "requestId", e->request_id);
	log_field(&b, "tenantId", e->tenant_id);
	log_field(&b, "userId", e->user_id);
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
	log_write_request(&b);
}
