/*
 * transport.h - the libcurl set-up both outbox transports share.
 *
 * One easy handle per attempt (no connection reuse: attempts are seconds
 * apart, and a fresh handle carries no state from a failed one).  Every
 * handle is restricted to the transport's own protocols, never follows
 * redirects, never raises signals (we are in a thread), discards response
 * bodies, has a connect and a total timeout, and aborts as soon as the
 * worker's cancel flag is set.
 */
#ifndef TK_OUTBOX_TRANSPORT_H
#define TK_OUTBOX_TRANSPORT_H

#include <curl/curl.h>
#include <stdatomic.h>

#include "outbox/outbox.h"

#define OUTBOX_CONNECT_TIMEOUT_MS 5000L

/* Where to deliver and how long to try; all borrowed. */
typedef struct outbox_target {
	const char *url;
	long timeout_ms;           /* whole attempt, connect included */
	const atomic_bool *cancel; /* set by outbox_worker_stop */
} outbox_target;

/*
 * A new easy handle for t, limited to protocols (libcurl's list syntax,
 * e.g. "http,https").  On failure fills f and returns TK_ERR; *out is then
 * NULL.  The caller owns the handle (curl_easy_cleanup).
 */
tk_status outbox_curl_open(const outbox_target *t, const char *protocols, CURL **out,
                           outbox_failure *f) TK_MUST_CHECK;

/*
 * Turns a failed curl_easy_perform into f: aborted when the cancel flag
 * stopped it, else a retryable failure "<what>: <libcurl's generic text>"
 * (never the URL, which may carry credentials).  Returns TK_ERR.
 */
tk_status outbox_curl_failure(CURLcode rc, const char *what, outbox_failure *f);

#endif
