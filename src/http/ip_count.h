/*
 * ip_count.h - open connections per client address, for the per-IP limit.
 *
 * A fixed-size open-addressing table keyed by the client's 16-byte address
 * (IPv4 stored as v4-mapped IPv6).  Slots are hashed with SipHash under a
 * random per-table key, so a client that chooses its addresses (an IPv6 /64
 * holds 2^64 of them) cannot pile them into one probe chain.  An address
 * whose count drops to zero leaves the table at once (backward-shift
 * deletion, no tombstones), so the table holds exactly the addresses with an
 * open connection.  The caller sizes it for its connection limit and holds
 * the lock: nothing here is thread-safe.
 */
#ifndef TK_HTTP_IP_COUNT_H
#define TK_HTTP_IP_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/status.h"

typedef struct tk_ip_addr {
	uint8_t bytes[16];
} tk_ip_addr;

typedef struct tk_ip_count tk_ip_count;

/* Fills *out from an AF_INET or AF_INET6 address; TK_ERR for any other family. */
tk_status tk_ip_addr_from_sockaddr(const struct sockaddr *sa, tk_ip_addr *out) TK_MUST_CHECK;

/* A table with room for max_addresses distinct addresses; owned by the caller. */
tk_ip_count *tk_ip_count_new(size_t max_addresses);
void tk_ip_count_free(tk_ip_count *table);

/* Counts one more connection for addr when it has fewer than limit open;
 * TK_ERR (nothing counted) when it is at the limit or the table is full. */
tk_status tk_ip_count_acquire(tk_ip_count *table, const tk_ip_addr *addr,
                              unsigned limit) TK_MUST_CHECK;
/* Counts one connection fewer for addr; an address with none is ignored. */
void tk_ip_count_release(tk_ip_count *table, const tk_ip_addr *addr);
/* Open connections counted for addr. */
unsigned tk_ip_count_get(const tk_ip_count *table, const tk_ip_addr *addr);
/* Distinct addresses with at least one open connection. */
size_t tk_ip_count_addresses(const tk_ip_count *table);

#endif
