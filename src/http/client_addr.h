/*
 * client_addr.h - which address a request comes from, for per-address limits.
 *
 * Normally the TCP peer.  Behind a reverse proxy every request's peer is the
 * proxy, so a per-address limit keyed on it would be one limit for everyone.
 * When the peer is one of the operator's trusted proxies
 * (--trusted-proxies), the client is read from X-Forwarded-For instead:
 * walking the list from the right (each proxy appends the address it was
 * reached from), the first entry that is not itself a trusted proxy.  The
 * entries to its left were written by the client and are never believed.
 * A malformed entry ends the walk and the last good address stands.  From
 * a peer that is not trusted the header is ignored: a client talking to
 * tekup directly cannot choose its own address.
 *
 * Pure functions over caller-owned memory; no allocation, no locks.
 * Addresses are tk_ip_addr (http/ip_count.h): IPv4 as v4-mapped IPv6, so
 * "1.2.3.4" and "::ffff:1.2.3.4" are one address, and text is always
 * written in one canonical form (an IPv6 address has many spellings).
 */
#ifndef TK_HTTP_CLIENT_ADDR_H
#define TK_HTTP_CLIENT_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "http/ip_count.h"
#include "util/status.h"

#define TK_TRUSTED_PROXIES_MAX  32 /* entries in --trusted-proxies */
#define TK_CLIENT_ADDR_TEXT_MAX 46 /* INET6_ADDRSTRLEN, NUL included */

typedef struct tk_proxy_list {
	size_t n;
	tk_ip_addr addr[TK_TRUSTED_PROXIES_MAX];
} tk_proxy_list;

/* Parses exactly len bytes of IPv4 dotted-quad or IPv6 text (no spaces,
 * port, brackets, zone or prefix length).  False when it is anything else. */
bool tk_client_addr_parse(const char *s, size_t len, tk_ip_addr *out);

/* Writes addr in canonical text (dotted quad for IPv4) into out (size >=
 * TK_CLIENT_ADDR_TEXT_MAX). */
void tk_client_addr_format(const tk_ip_addr *addr, char *out, size_t size);

/*
 * Parses a comma-separated list of addresses (spaces around entries
 * allowed; NULL or "" is the empty list) into *out.  On a bad or empty
 * entry, or more than TK_TRUSTED_PROXIES_MAX, writes a message naming the
 * entry to err (size errlen) and returns TK_ERR.
 */
tk_status tk_proxy_list_parse(const char *text, tk_proxy_list *out, char *err,
                              size_t errlen) TK_MUST_CHECK;

bool tk_proxy_list_has(const tk_proxy_list *list, const tk_ip_addr *addr);

/*
 * The request's client: *peer unless it is in trusted, else the rightmost
 * entry of xff (xff_len bytes, the X-Forwarded-For values joined with
 * commas; NULL when absent) that is not in trusted, as described above.
 */
void tk_client_addr_resolve(const tk_proxy_list *trusted, const tk_ip_addr *peer, const char *xff,
                            size_t xff_len, tk_ip_addr *client);

#endif
