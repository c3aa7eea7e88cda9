/*
 * ip_count.c - open connections per client address (see ip_count.h).
 *
 * Linear probing over a power-of-two array kept at most half full, so a
 * probe ends within a few slots.  Deletion shifts later members of the
 * chain back into the hole instead of leaving a tombstone: lookups stay
 * correct and the table never silts up on a busy server whose clients come
 * and go.
 */
#include "http/ip_count.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

typedef struct slot {
	tk_ip_addr addr;
	unsigned count; /* 0: the slot is empty */
} slot;

struct tk_ip_count {
	slot *slots;
	size_t mask; /* slot count - 1 */
	size_t used;
	size_t max_addresses;
	unsigned char key[crypto_shorthash_KEYBYTES];
};

tk_status tk_ip_addr_from_sockaddr(const struct sockaddr *sa, tk_ip_addr *out)
{
	memset(out, 0, sizeof *out);
	if (sa->sa_family == AF_INET6) {
		memcpy(out->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return TK_OK;
	}
	if (sa->sa_family == AF_INET) {
		out->bytes[10] = 0xff;
		out->bytes[11] = 0xff;
		memcpy(out->bytes + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return TK_OK;
	}
	return TK_ERR;
}

tk_ip_count *tk_ip_count_new(size_t max_addresses)
{
	size_t slots = 16;
	while (slots < 2 * max_addresses)
		slots *= 2;
	tk_ip_count *t = tk_calloc(1, sizeof *t);
	t->slots = tk_calloc(slots, sizeof *t->slots);
	t->mask = slots - 1;
	t->max_addresses = max_addresses;
	crypto_shorthash_keygen(t->key);
	return t;
}

void tk_ip_count_free(tk_ip_count *table)
{
	if (table == NULL)
		return;
	free(table->slots);
	free(table);
}

static size_t home_slot(const tk_ip_count *t, const tk_ip_addr *addr)
{
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, addr->bytes, sizeof addr->bytes, t->key);
	uint64_t v;
	memcpy(&v, h, sizeof v);
	return (size_t)v & t->mask;
}

/* The slot holding addr, or the empty slot that ends its probe chain. */
static size_t find(const tk_ip_count *t, const tk_ip_addr *addr)
{
	size_t i = home_slot(t, addr);
	while (t->slots[i].count != 0 && memcmp(&t->slots[i].addr, addr, sizeof *addr) != 0)
		i = (i + 1) & t->mask;
	return i;
}

tk_status tk_ip_count_acquire(tk_ip_count *table, const tk_ip_addr *addr, unsigned limit)
{
	size_t i = find(table, addr);
	slot *s = &table->slots[i];
	if (s->count == 0) {
		if (limit == 0 || table->used >= table->max_addresses)
			return TK_ERR;
		s->addr = *addr;
		table->used++;
	} else if (s->count >= limit) {
		return TK_ERR;
	}
	s->count++;
	return TK_OK;
}

/* Empties slot `hole` and moves back every later member of the probe chain
 * whose home slot does not lie cyclically in (hole, j]. */
static void remove_slot(tk_ip_count *t, size_t hole)
{
	size_t j = hole;
	for (;;) {
		j = (j + 1) & t->mask;
		if (t->slots[j].count == 0)
			break;
		size_t home = home_slot(t, &t->slots[j].addr);
		bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
		if (stays)
			continue;
		t->slots[hole] = t->slots[j];
		hole = j;
	}
	memset(&t->slots[hole], 0, sizeof t->slots[hole]);
}

void tk_ip_count_release(tk_ip_count *table, const tk_ip_addr *addr)
{
	size_t i = find(table, addr);
	if (table->slots[i].count == 0)
		return;
	if (--table->slots[i].count == 0) {
		remove_slot(table, i);
		table->used--;
	}
}

unsigned tk_ip_count_get(const tk_ip_count *table, const tk_ip_addr *addr)
{
	return table->slots[find(table, addr)].count;
}

size_t tk_ip_count_addresses(const tk_ip_count *table)
{
	return table->used;
}
