/*
 * listener.c - accept, admit, hand off (see listener.h).
 *
 * One thread blocks in poll(2) on the listening socket and on an eventfd.
 * The eventfd wakes it to stop, or when a connection closes while the
 * server is at its total limit (the listening socket is then left out of
 * the poll, so the kernel's backlog holds new clients).  Counts live under
 * one mutex: they change once per connection, not per request, so the lock
 * is never contended on the request path.
 */
#include "http/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "http/ip_count.h"
#include "util/alloc.h"
#include "util/log.h"

/* Connections accepted per wake-up before the thread polls again, so a
 * burst cannot starve the stop signal. */
#define LISTENER_ACCEPT_BURST 64
/* Pause after accept or poll fails (the process is out of descriptors or
 * memory), instead of spinning on a listening socket that stays readable. */
#define LISTENER_ERROR_PAUSE_MS 100

struct tk_listener {
	tk_listener_config cfg;
	int listen_fd;
	int wake_fd;
	pthread_t thread;
	bool thread_started;
	atomic_bool stopping;
	tk_listener_handoff handoff;
	void *handoff_cls;
	time_t last_accept_error_log; /* the accept thread's own */

	pthread_mutex_t lock; /* guards everything below */
	long total;
	unsigned *worker_load; /* open connections per worker */
	unsigned next_worker;  /* where the least-loaded search starts: ties rotate */
	tk_ip_count *per_ip;   /* NULL when there is no per-IP limit */
	time_t last_refusal_log;
};

static void wake(tk_listener *l)
{
	uint64_t one = 1;
	/* Can only fail when the counter would overflow, and then it is
	 * already non-zero: the thread wakes either way. */
	ssize_t n = write(l->wake_fd, &one, sizeof one);
	(void)n;
}

static void drain_wake(tk_listener *l)
{
	uint64_t v;
	ssize_t n = read(l->wake_fd, &v, sizeof v);
	(void)n;
}

tk_listener *tk_listener_open(const tk_listener_config *cfg)
{
	struct sockaddr_storage addr;
	socklen_t addrlen;
	memset(&addr, 0, sizeof addr);
	struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
	if (inet_pton(AF_INET, cfg->bind_address, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)cfg->port);
		addrlen = sizeof *v4;
	} else if (inet_pton(AF_INET6, cfg->bind_address, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)cfg->port);
		addrlen = sizeof *v6;
	} else {
		log_error("--bind: '%s' is not an IPv4 or IPv6 address", cfg->bind_address);
		return NULL;
	}

	int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("cannot listen on %s:%ld: socket: %s", cfg->bind_address, cfg->port,
		          strerror(errno));
		return NULL;
	}
	int on = 1;
	/* Reuse a port whose old connections linger in TIME_WAIT after a restart. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
	    (addr.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0) ||
	    bind(fd, (struct sockaddr *)&addr, addrlen) != 0 || listen(fd, cfg->backlog) != 0) {
		log_error("cannot listen on %s:%ld (%s)", cfg->bind_address, cfg->port,
		          strerror(errno));
		close(fd);
		return NULL;
	}
	int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0) {
		log_error("cannot listen on %s:%ld: eventfd: %s", cfg->bind_address, cfg->port,
		          strerror(errno));
		close(fd);
		return NULL;
	}

	tk_listener *l = tk_calloc(1, sizeof *l);
	l->cfg = *cfg;
	l->cfg.bind_address = NULL; /* borrowed; not needed after bind */
	l->listen_fd = fd;
	l->wake_fd = wake_fd;
	atomic_init(&l->stopping, false);
	pthread_mutex_init(&l->lock, NULL);
	l->worker_load = tk_calloc(cfg->workers, sizeof *l->worker_load);
	if (cfg->max_connections_per_ip > 0)
		l->per_ip = tk_ip_count_new((size_t)cfg->max_connections);
	return l;
}

/* Counts the connection and picks its worker; false when refused. */
static bool admit(tk_listener *l, const tk_ip_addr *ip, unsigned *worker)
{
	bool ok = false;
	pthread_mutex_lock(&l->lock);
	if (l->total >= l->cfg.max_connections)
		goto done;
	if (l->per_ip != NULL &&
	    tk_ip_count_acquire(l->per_ip, ip, (unsigned)l->cfg.max_connections_per_ip) != TK_OK) {
		time_t now = time(NULL);
		if (now != l->last_refusal_log) {
			l->last_refusal_log = now;
			log_warn("refused a connection: the client already has %ld open "
			         "(--max-connections-per-ip)",
			         l->cfg.max_connections_per_ip);
		}
		goto done;
	}
	unsigned best = l->next_worker;
	for (unsigned k = 1; k < l->cfg.workers; k++) {
		unsigned w = (l->next_worker + k) % l->cfg.workers;
		if (l->worker_load[w] < l->worker_load[best])
			best = w;
	}
	l->next_worker = (best + 1) % l->cfg.workers;
	l->worker_load[best]++;
	l->total++;
	*worker = best;
	ok = true;
done:
	pthread_mutex_unlock(&l->lock);
	return ok;
}

static bool at_limit(tk_listener *l)
{
	pthread_mutex_lock(&l->lock);
	bool full = l->total >= l->cfg.max_connections;
	pthread_mutex_unlock(&l->lock);
	return full;
}

void tk_listener_release(tk_listener *listener, unsigned worker, const struct sockaddr *addr)
{
	tk_ip_addr ip;
	bool have_ip = addr != NULL && tk_ip_addr_from_sockaddr(addr, &ip) == TK_OK;
	pthread_mutex_lock(&listener->lock);
	bool was_full = listener->total >= listener->cfg.max_connections;
	if (worker < listener->cfg.workers && listener->worker_load[worker] > 0)
		listener->worker_load[worker]--;
	if (listener->total > 0)
		listener->total--;
	if (listener->per_ip != NULL && have_ip)
		tk_ip_count_release(listener->per_ip, &ip);
	pthread_mutex_unlock(&listener->lock);
	if (was_full)
		wake(listener);
}

/* After a failed accept or poll (out of descriptors, out of memory): log at
 * most once a second and pause, instead of spinning on a socket that stays
 * readable. */
static void pause_after_error(tk_listener *l, const char *what)
{
	int err = errno;
	time_t now = time(NULL);
	if (now != l->last_accept_error_log) {
		l->last_accept_error_log = now;
		log_warn("http: %s failed: %s; pausing %d ms", what, strerror(err),
		         LISTENER_ERROR_PAUSE_MS);
	}
	struct timespec pause = {0, LISTENER_ERROR_PAUSE_MS * 1000000L};
	nanosleep(&pause, NULL);
}

/* Accepts what is waiting, up to a burst; returns after EAGAIN. */
static void accept_burst(tk_listener *l)
{
	for (int n = 0; n < LISTENER_ACCEPT_BURST && !atomic_load(&l->stopping); n++) {
		if (at_limit(l))
			return;
		struct sockaddr_storage addr;
		socklen_t addrlen = sizeof addr;
		int fd = accept4(l->listen_fd, (struct sockaddr *)&addr, &addrlen,
		                 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			pause_after_error(l, "accept");
			return;
		}
		tk_ip_addr ip;
		unsigned worker;
		if (tk_ip_addr_from_sockaddr((struct sockaddr *)&addr, &ip) != TK_OK ||
		    !admit(l, &ip, &worker)) {
			close(fd);
			continue;
		}
		if (l->handoff(l->handoff_cls, worker, fd, (struct sockaddr *)&addr, addrlen) !=
		    TK_OK)
			tk_listener_release(l, worker, (struct sockaddr *)&addr);
	}
}

static void *accept_loop(void *arg)
{
	tk_listener *l = arg;
	while (!atomic_load(&l->stopping)) {
		struct pollfd fds[2] = {
		    {.fd = l->wake_fd, .events = POLLIN},
		    {.fd = l->listen_fd, .events = at_limit(l) ? 0 : POLLIN},
		};
		if (poll(fds, 2, -1) < 0) {
			if (errno != EINTR)
				pause_after_error(l, "poll on the listening socket");
			continue;
		}
		if (fds[0].revents & POLLIN)
			drain_wake(l);
		if (fds[1].revents & POLLIN)
			accept_burst(l);
	}
	return NULL;
}

tk_status tk_listener_start(tk_listener *listener, tk_listener_handoff handoff, void *cls)
{
	listener->handoff = handoff;
	listener->handoff_cls = cls;
	int rc = pthread_create(&listener->thread, NULL, accept_loop, listener);
	if (rc != 0) {
		log_error("cannot start the accept thread: %s", strerror(rc));
		return TK_ERR;
	}
	pthread_setname_np(listener->thread, "tekup-accept");
	listener->thread_started = true;
	return TK_OK;
}

void tk_listener_stop(tk_listener *listener)
{
	if (listener == NULL || listener->listen_fd < 0)
		return;
	atomic_store(&listener->stopping, true);
	if (listener->thread_started) {
		wake(listener);
		pthread_join(listener->thread, NULL);
		listener->thread_started = false;
	}
	close(listener->listen_fd);
	listener->listen_fd = -1;
}

void tk_listener_free(tk_listener *listener)
{
	if (listener == NULL)
		return;
	tk_listener_stop(listener);
	close(listener->wake_fd);
	pthread_mutex_destroy(&listener->lock);
	tk_ip_count_free(listener->per_ip);
	free(listener->worker_load);
	free(listener);
}
