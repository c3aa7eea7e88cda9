/*
 * test_signin_limit.c - unit tests for auth/signin_limit.h, the per-address
 * half of the sign-in limits: how addresses are grouped (IPv4 alone, IPv6
 * by /64), the limit and its window, giving attempts back, and that a
 * blocked address stays blocked however many other addresses come by (the
 * table it replaced reset an address's count whenever another address
 * hashed to its slot).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/signin_limit.h"
#include "http/client_addr.h"

#define MAX    20
#define WINDOW 900
#define T0     ((time_t)1000000)

static tk_ip_addr ip(const char *text)
{
	tk_ip_addr a;
	assert_true(tk_client_addr_parse(text, strlen(text), &a));
	return a;
}

/* Takes one attempt for text at now; returns the wait (0: counted). */
static int take(tk_signin_limit *l, const char *text, time_t now)
{
	tk_ip_addr a = ip(text);
	tk_signin_ticket t;
	int wait = tk_signin_limit_take(l, &a, now, &t);
	assert_int_equal(t.taken, wait == 0);
	return wait;
}

static int failures(tk_signin_limit *l, const char *text, time_t now)
{
	tk_ip_addr a = ip(text);
	return tk_signin_limit_failures(l, &a, now);
}

static void test_ipv4_alone_and_ipv6_by_its_64(void **state)
{
	(void)state;
	tk_ip_addr a = ip("192.0.2.7"), b = ip("192.0.2.8");
	tk_ip_addr ga = tk_signin_limit_group(&a), gb = tk_signin_limit_group(&b);
	assert_memory_equal(ga.bytes, a.bytes, 16);
	assert_memory_not_equal(ga.bytes, gb.bytes, 16);

	tk_ip_addr c = ip("2001:db8:1:2:aaaa::1"), d = ip("2001:db8:1:2:bbbb::9");
	tk_ip_addr e = ip("2001:db8:1:3::1");
	tk_ip_addr gc = tk_signin_limit_group(&c), gd = tk_signin_limit_group(&d);
	tk_ip_addr ge = tk_signin_limit_group(&e);
	assert_memory_equal(gc.bytes, gd.bytes, 16);
	assert_memory_not_equal(gc.bytes, ge.bytes, 16);
	tk_ip_addr net = ip("2001:db8:1:2::");
	assert_memory_equal(gc.bytes, net.bytes, 16);
}

static void test_limit_holds_for_the_window_then_resets(void **state)
{
	(void)state;
	tk_signin_limit *l = tk_signin_limit_new(64, MAX, WINDOW);
	for (int i = 0; i < MAX; i++)
		assert_int_equal(take(l, "198.51.100.1", T0 + i), 0);
	assert_int_equal(failures(l, "198.51.100.1", T0 + MAX), MAX);
	/* Refused, counting nothing, with the seconds left in the window. */
	assert_int_equal(take(l, "198.51.100.1", T0 + 100), WINDOW - 100);
	assert_int_equal(take(l, "198.51.100.1", T0 + WINDOW - 1), 1);
	assert_int_equal(failures(l, "198.51.100.1", T0 + WINDOW - 1), MAX);
	/* Another address is not affected. */
	assert_int_equal(take(l, "198.51.100.2", T0 + 100), 0);
	/* A new window starts afresh. */
	assert_int_equal(failures(l, "198.51.100.1", T0 + WINDOW), 0);
	assert_int_equal(take(l, "198.51.100.1", T0 + WINDOW), 0);
	assert_int_equal(failures(l, "198.51.100.1", T0 + WINDOW), 1);
	tk_signin_limit_free(l);
}

static void test_one_ipv6_64_shares_one_allowance(void **state)
{
	(void)state;
	tk_signin_limit *l = tk_signin_limit_new(64, MAX, WINDOW);
	char text[64];
	for (int i = 0; i < MAX; i++) {
		snprintf(text, sizeof text, "2001:db8:7:7::%x", i + 1);
		assert_int_equal(take(l, text, T0), 0);
	}
	assert_true(take(l, "2001:db8:7:7:ffff:ffff:ffff:ffff", T0) > 0);
	assert_int_equal(take(l, "2001:db8:7:8::1", T0), 0);
	tk_signin_limit_free(l);
}

static void test_given_back_attempts_are_no_failures(void **state)
{
	(void)state;
	tk_signin_limit *l = tk_signin_limit_new(64, MAX, WINDOW);
	tk_ip_addr a = ip("203.0.113.5");
	for (int i = 0; i < 3 * MAX; i++) {
		tk_signin_ticket t;
		assert_int_equal(tk_signin_limit_take(l, &a, T0, &t), 0);
		tk_signin_limit_give_back(l, &t);
		assert_false(t.taken);
		tk_signin_limit_give_back(l, &t); /* twice: nothing more */
	}
	assert_int_equal(failures(l, "203.0.113.5", T0), 0);

	/* A ticket from a window that has ended gives back nothing. */
	tk_signin_ticket old;
	assert_int_equal(tk_signin_limit_take(l, &a, T0, &old), 0);
	assert_int_equal(take(l, "203.0.113.5", T0 + WINDOW), 0);
	tk_signin_limit_give_back(l, &old);
	assert_int_equal(failures(l, "203.0.113.5", T0 + WINDOW), 1);

	/* A refused attempt took nothing: giving it back changes nothing. */
	for (int i = 1; i < MAX; i++)
		assert_int_equal(take(l, "203.0.113.5", T0 + WINDOW), 0);
	tk_signin_ticket refused;
	assert_true(tk_signin_limit_take(l, &a, T0 + WINDOW, &refused) > 0);
	tk_signin_limit_give_back(l, &refused);
	assert_int_equal(failures(l, "203.0.113.5", T0 + WINDOW), MAX);
	tk_signin_limit_free(l);
}

static void test_a_blocked_address_stays_blocked_whoever_comes_by(void **state)
{
	(void)state;
	/* A small table (4 buckets of 4), so every bucket overflows. */
	tk_signin_limit *l = tk_signin_limit_new(16, MAX, WINDOW);
	for (int i = 0; i < MAX; i++)
		assert_int_equal(take(l, "192.0.2.1", T0), 0);
	char text[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(text, sizeof text, "10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255,
		         i & 255);
		(void)take(l, text, T0 + 1);
	}
	assert_true(take(l, "192.0.2.1", T0 + 2) > 0);
	assert_int_equal(failures(l, "192.0.2.1", T0 + 2), MAX);

	/* Two addresses counted side by side keep their own counts. */
	tk_signin_limit *m = tk_signin_limit_new(4, MAX, WINDOW); /* one bucket */
	for (int i = 0; i < MAX; i++) {
		assert_int_equal(take(m, "192.0.2.10", T0), 0);
		assert_int_equal(take(m, "192.0.2.11", T0), 0);
	}
	assert_true(take(m, "192.0.2.10", T0) > 0);
	assert_true(take(m, "192.0.2.11", T0) > 0);
	tk_signin_limit_free(m);
	tk_signin_limit_free(l);
}

static void test_addresses_taking_turns_in_a_full_bucket_gain_nothing(void **state)
{
	(void)state;
	/* One bucket of four, five addresses taking turns: each newcomer
	 * pushes one out, but inherits its count, so the bucket never counts
	 * more than its four entries' allowance. */
	tk_signin_limit *l = tk_signin_limit_new(4, MAX, WINDOW);
	int counted = 0, refused = 0;
	char text[32];
	for (int round = 0; round < 10 * MAX; round++)
		for (int k = 0; k < 5; k++) {
			snprintf(text, sizeof text, "192.0.2.%d", 100 + k);
			if (take(l, text, T0 + 1) == 0)
				counted++;
			else
				refused++;
		}
	assert_true(counted <= 4 * MAX);
	assert_int_equal(counted + refused, 50 * MAX);
	tk_signin_limit_free(l);
}

static void test_a_ticket_gives_back_only_to_the_entry_it_counted_in(void **state)
{
	(void)state;
	tk_signin_limit *l = tk_signin_limit_new(4, MAX, WINDOW); /* one bucket */
	tk_ip_addr a = ip("198.51.100.50");
	tk_signin_ticket t;
	assert_int_equal(tk_signin_limit_take(l, &a, T0, &t), 0);
	/* The window ends, a made again in the same slot within one second of
	 * its new window, then counted once more: the old ticket is stale. */
	assert_int_equal(take(l, "198.51.100.50", T0 + WINDOW), 0);
	assert_int_equal(take(l, "198.51.100.50", T0 + WINDOW), 0);
	tk_signin_limit_give_back(l, &t);
	assert_int_equal(failures(l, "198.51.100.50", T0 + WINDOW), 2);
	tk_signin_limit_free(l);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_alone_and_ipv6_by_its_64),
	    cmocka_unit_test(test_limit_holds_for_the_window_then_resets),
	    cmocka_unit_test(test_one_ipv6_64_shares_one_allowance),
	    cmocka_unit_test(test_given_back_attempts_are_no_failures),
	    cmocka_unit_test(test_a_blocked_address_stays_blocked_whoever_comes_by),
	    cmocka_unit_test(test_addresses_taking_turns_in_a_full_bucket_gain_nothing),
	    cmocka_unit_test(test_a_ticket_gives_back_only_to_the_entry_it_counted_in),
	};
	return cmocka_run_group_tests_name("signin_limit", tests, NULL, NULL);
}
