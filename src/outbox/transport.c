/*
 * transport.c - shared libcurl set-up and failure reporting (see
 * transport.h), and outbox_fail (see outbox.h).
 */
#include "outbox/transport.h"

#include <stdarg.h>
#include <stdio.h>

tk_status outbox_fail(outbox_failure *f, bool permanent, const char *fmt, ...)
{
	va_list ap;
	f->permanent = permanent;
	f->aborted = false;
	va_start(ap, fmt);
	vsnprintf(f->message, sizeof f->message, fmt, ap);
	va_end(ap);
	return TK_ERR;
}

/* Response bodies are not needed (the status says it all) and could be
 * large; without this callback libcurl would write them to stdout. */
static size_t discard_body(char *data, size_t size, size_t nmemb, void *user)
{
	(void)data;
	(void)user;
	return size * nmemb;
}

/* Called by libcurl at least once a second during a transfer, connecting
 * included: a non-zero return aborts it with CURLE_ABORTED_BY_CALLBACK. */
static int check_cancel(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                        curl_off_t ulnow)
{
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	const atomic_bool *cancel = user;
	return atomic_load(cancel) ? 1 : 0;
}

/* Bails out to the caller's setup_failed label on the first refused option. */
#define SETOPT(h, opt, val)                                                                        \
	do {                                                                                       \
		if ((rc = curl_easy_setopt((h), (opt), (val))) != CURLE_OK)                        \
			goto setup_failed;                                                         \
	} while (0)

tk_status outbox_curl_open(const outbox_target *t, const char *protocols, CURL **out,
                           outbox_failure *f)
{
	CURLcode rc = CURLE_OK;
	*out = NULL;
	CURL *h = curl_easy_init();
	if (h == NULL)
		return outbox_fail(f, false, "cannot create a transfer handle");
	SETOPT(h, CURLOPT_URL, t->url);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, protocols);
	SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, OUTBOX_CONNECT_TIMEOUT_MS);
	SETOPT(h, CURLOPT_TIMEOUT_MS, t->timeout_ms);
	SETOPT(h, CURLOPT_WRITEFUNCTION, discard_body);
	SETOPT(h, CURLOPT_NOPROGRESS, 0L);
	SETOPT(h, CURLOPT_XFERINFOFUNCTION, check_cancel);
	/* libcurl only reads through this pointer (check_cancel). */
	SETOPT(h, CURLOPT_XFERINFODATA, (void *)t->cancel);
	*out = h;
	return TK_OK;
setup_failed:
	curl_easy_cleanup(h);
	/* A rejected option means this libcurl lacks a feature or the URL is
	 * unusable (it comes from the configuration, not the row): retrying
	 * later, after the operator fixes it, is right. */
	return outbox_fail(f, false, "transport set-up failed: %s", curl_easy_strerror(rc));
}

tk_status outbox_curl_failure(CURLcode rc, const char *what, outbox_failure *f)
{
	if (rc == CURLE_ABORTED_BY_CALLBACK) {
		outbox_fail(f, false, "%s: interrupted by shutdown", what);
		f->aborted = true;
		return TK_ERR;
	}
	return outbox_fail(f, false, "%s: %s", what, curl_easy_strerror(rc));
}
