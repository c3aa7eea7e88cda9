/*
 * signin_limit.h - failed sign-ins per client address, in a fixed window.
 *
 * The per-address half of the sign-in limits (the per-account half is in
 * the database and holds across servers; this one is per process, best
 * effort).  An attempt is taken before its password is checked and given
 * back when it turns out not to be a failure: checking first and counting
 * after would let every attempt that arrived together through.
 *
 * Addresses are grouped as a client holds them: an IPv4 address alone, an
 * IPv6 address by its /64 (one host or site is routinely given a whole /64,
 * 2^64 addresses, so one per address would be no limit).  The table is a
 * fixed number of 4-way buckets, hashed with SipHash under a random key, so
 * a client cannot choose addresses that share a bucket.  When a bucket is
 * full, a newcomer takes the place of the entry with the fewest failures
 * (the oldest window on a tie) and inherits its count and window: a
 * blocked address is the last to be forgotten, and addresses that take
 * turns cannot reset each other's counts (a count is only overestimated).
 * Times are the caller's, in seconds; a monotonic clock suits best.
 *
 * Thread-safe (one lock; a sign-in costs a password hash, so it is never
 * contended).  The caller owns the table.
 */
#ifndef TK_AUTH_SIGNIN_LIMIT_H
#define TK_AUTH_SIGNIN_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "http/ip_count.h"

typedef struct tk_signin_limit tk_signin_limit;

/* An attempt taken from an address's allowance, to be kept or given back. */
typedef struct tk_signin_ticket {
	bool taken;
	size_t slot;
	uint64_t id; /* the entry's making it counted in */
} tk_signin_ticket;

/* Room for about `addresses` groups; max_failures per window_s seconds. */
tk_signin_limit *tk_signin_limit_new(size_t addresses, int max_failures, int window_s);
void tk_signin_limit_free(tk_signin_limit *limit);

/* The group addr is counted under: itself for IPv4 (v4-mapped), its /64
 * for IPv6. */
tk_ip_addr tk_signin_limit_group(const tk_ip_addr *addr);

/* Counts an attempt for addr's group at time now and returns 0, or, when
 * the group is at its limit, counts nothing and returns the seconds (>= 1)
 * until its window ends.  *ticket records what was counted. */
int tk_signin_limit_take(tk_signin_limit *limit, const tk_ip_addr *addr, time_t now,
                         tk_signin_ticket *ticket);
/* Undoes a take: the attempt was not a failure.  Nothing when the ticket
 * took nothing, or the count it was part of is gone (window over, entry
 * replaced, even by the same group again).  Clears the ticket. */
void tk_signin_limit_give_back(tk_signin_limit *limit, tk_signin_ticket *ticket);
/* Failures counted now for addr's group (0 when not in the table). */
int tk_signin_limit_failures(tk_signin_limit *limit, const tk_ip_addr *addr, time_t now);

#endif
