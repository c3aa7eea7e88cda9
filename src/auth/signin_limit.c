/*
 * signin_limit.c - failed sign-ins per client address (see signin_limit.h).
 */
#include "auth/signin_limit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

#define WAYS 4 /* entries per bucket */

typedef struct entry {
	tk_ip_addr group;
	int failures;
	time_t window_start;
	uint64_t id; /* which making of the entry a ticket counted in; 0: unused */
} entry;

struct tk_signin_limit {
	entry *entries; /* nbuckets * WAYS */
	size_t nbuckets;
	int max_failures;
	int window_s;
	uint64_t last_id;
	unsigned char key[crypto_shorthash_KEYBYTES];
	pthread_mutex_t lock;
};

tk_signin_limit *tk_signin_limit_new(size_t addresses, int max_failures, int window_s)
{
	tk_signin_limit *l = tk_calloc(1, sizeof *l);
	l->nbuckets = addresses / WAYS > 0 ? addresses / WAYS : 1;
	l->entries = tk_calloc(l->nbuckets * WAYS, sizeof *l->entries);
	l->max_failures = max_failures;
	l->window_s = window_s;
	crypto_shorthash_keygen(l->key);
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void tk_signin_limit_free(tk_signin_limit *limit)
{
	if (limit == NULL)
		return;
	pthread_mutex_destroy(&limit->lock);
	free(limit->entries);
	free(limit);
}

static bool is_v4_mapped(const tk_ip_addr *a)
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a->bytes, prefix, sizeof prefix) == 0;
}

tk_ip_addr tk_signin_limit_group(const tk_ip_addr *addr)
{
	tk_ip_addr g = *addr;
	if (!is_v4_mapped(addr))
		memset(g.bytes + 8, 0, 8); /* the interface half of an IPv6 /64 */
	return g;
}

static size_t bucket_of(const tk_signin_limit *l, const tk_ip_addr *group)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, group->bytes, sizeof group->bytes, l->key);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return (size_t)(v % l->nbuckets);
}

static bool same_group(const entry *e, const tk_ip_addr *group)
{
	return e->id != 0 && memcmp(e->group.bytes, group->bytes, sizeof group->bytes) == 0;
}

static bool window_over(const tk_signin_limit *l, const entry *e, time_t now)
{
	return now - e->window_start >= l->window_s;
}

/* Called with the lock held: the entry counting group's failures, made
 * when it has none in place of a free or finished entry, or else of the
 * one with the fewest failures (the oldest on a tie), whose count and
 * window it inherits: counts can only be overestimated, so addresses that
 * take turns in a full bucket cannot push each other out to start again
 * from zero (the bucket's counts always add up to its attempts). */
static size_t entry_for(tk_signin_limit *l, const tk_ip_addr *group, time_t now)
{
	size_t first = bucket_of(l, group) * WAYS;
	size_t pick = first;
	for (size_t i = first; i < first + WAYS; i++) {
		entry *e = &l->entries[i];
		if (same_group(e, group)) {
			if (window_over(l, e, now)) /* a new window: a new count */
				*e = (entry){
				    .group = *group, .window_start = now, .id = ++l->last_id};
			return i;
		}
	}
	/* A free or finished entry, else the one with the fewest failures
	 * (the oldest on a tie). */
	for (size_t i = first; i < first + WAYS; i++) {
		entry *e = &l->entries[i], *p = &l->entries[pick];
		bool e_idle = e->id == 0 || window_over(l, e, now);
		bool p_idle = p->id == 0 || window_over(l, p, now);
		if (e_idle && !p_idle) {
			pick = i;
		} else if (e_idle == p_idle && !e_idle &&
		           (e->failures < p->failures ||
		            (e->failures == p->failures && e->window_start < p->window_start))) {
			pick = i;
		}
	}
	entry *v = &l->entries[pick];
	bool inherit = v->id != 0 && !window_over(l, v, now);
	*v = (entry){.group = *group,
	             .failures = inherit ? v->failures : 0,
	             .window_start = inherit ? v->window_start : now,
	             .id = ++l->last_id};
	return pick;
}

int tk_signin_limit_take(tk_signin_limit *limit, const tk_ip_addr *addr, time_t now,
                         tk_signin_ticket *ticket)
{
	tk_ip_addr group = tk_signin_limit_group(addr);
	int wait = 0;
	*ticket = (tk_signin_ticket){0};
	pthread_mutex_lock(&limit->lock);
	size_t i = entry_for(limit, &group, now);
	entry *e = &limit->entries[i];
	if (e->failures >= limit->max_failures) {
		wait = (int)(limit->window_s - (now - e->window_start));
		if (wait < 1)
			wait = 1;
		if (wait > limit->window_s) /* a clock that went back */
			wait = limit->window_s;
	} else {
		e->failures++;
		*ticket = (tk_signin_ticket){.taken = true, .slot = i, .id = e->id};
	}
	pthread_mutex_unlock(&limit->lock);
	return wait;
}

void tk_signin_limit_give_back(tk_signin_limit *limit, tk_signin_ticket *ticket)
{
	if (!ticket->taken)
		return;
	pthread_mutex_lock(&limit->lock);
	entry *e = &limit->entries[ticket->slot];
	if (e->id == ticket->id && e->failures > 0)
		e->failures--;
	pthread_mutex_unlock(&limit->lock);
	ticket->taken = false;
}

int tk_signin_limit_failures(tk_signin_limit *limit, const tk_ip_addr *addr, time_t now)
{
	tk_ip_addr group = tk_signin_limit_group(addr);
	size_t first = bucket_of(limit, &group) * WAYS;
	int failures = 0;
	pthread_mutex_lock(&limit->lock);
	for (size_t i = first; i < first + WAYS; i++) {
		const entry *e = &limit->entries[i];
		if (same_group(e, &group) && !window_over(limit, e, now))
			failures = e->failures;
	}
	pthread_mutex_unlock(&limit->lock);
	return failures;
}
