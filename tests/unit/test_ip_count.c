/*
 * test_ip_count.c - unit tests for http/ip_count.h, the per-address
 * connection counts behind --max-connections-per-ip: address conversion
 * (IPv4 as v4-mapped IPv6), the limit, release, and a long random run
 * against a plain array model on a table small enough that probe chains
 * collide and wrap, which is what backward-shift deletion must survive.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <sodium.h>
#include <sys/un.h>

#include "http/ip_count.h"

/* The table's key for an IPv4 or IPv6 literal, through a socket address as
 * the listener sees it. */
static tk_ip_addr ip(const char *text)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *sa4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sa6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, text, &sa4->sin_addr) == 1) {
		sa4->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, text, &sa6->sin6_addr), 1);
		sa6->sin6_family = AF_INET6;
	}
	tk_ip_addr a;
	assert_int_equal(tk_ip_addr_from_sockaddr((struct sockaddr *)&ss, &a), TK_OK);
	return a;
}

static void test_ipv4_is_stored_v4_mapped(void **state)
{
	(void)state;
	tk_ip_addr a = ip("192.0.2.7");
	tk_ip_addr b = ip("::ffff:192.0.2.7");
	assert_memory_equal(a.bytes, b.bytes, sizeof a.bytes);
	tk_ip_addr c = ip("2001:db8::7");
	assert_memory_not_equal(a.bytes, c.bytes, sizeof a.bytes);

	struct sockaddr_un un;
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	tk_ip_addr d;
	assert_int_equal(tk_ip_addr_from_sockaddr((struct sockaddr *)&un, &d), TK_ERR);
}

static void test_limit_refuses_and_release_frees(void **state)
{
	(void)state;
	tk_ip_count *t = tk_ip_count_new(8);
	tk_ip_addr a = ip("198.51.100.1");
	tk_ip_addr b = ip("2001:db8::1");
	for (int i = 0; i < 3; i++)
		assert_int_equal(tk_ip_count_acquire(t, &a, 3), TK_OK);
	assert_int_equal(tk_ip_count_acquire(t, &a, 3), TK_ERR);
	assert_int_equal(tk_ip_count_get(t, &a), 3);
	/* Another address is not affected by a's count. */
	assert_int_equal(tk_ip_count_acquire(t, &b, 3), TK_OK);
	assert_int_equal(tk_ip_count_addresses(t), 2);

	tk_ip_count_release(t, &a);
	assert_int_equal(tk_ip_count_get(t, &a), 2);
	assert_int_equal(tk_ip_count_acquire(t, &a, 3), TK_OK);
	for (int i = 0; i < 3; i++)
		tk_ip_count_release(t, &a);
	assert_int_equal(tk_ip_count_get(t, &a), 0);
	assert_int_equal(tk_ip_count_addresses(t), 1);
	/* Releasing an address with nothing open changes nothing. */
	tk_ip_count_release(t, &a);
	assert_int_equal(tk_ip_count_addresses(t), 1);
	assert_int_equal(tk_ip_count_get(t, &b), 1);
	/* A limit of 0 admits nobody. */
	assert_int_equal(tk_ip_count_acquire(t, &a, 0), TK_ERR);
	tk_ip_count_free(t);
}

static void test_table_refuses_more_addresses_than_sized_for(void **state)
{
	(void)state;
	tk_ip_count *t = tk_ip_count_new(2);
	tk_ip_addr a = ip("203.0.113.1"), b = ip("203.0.113.2"), c = ip("203.0.113.3");
	assert_int_equal(tk_ip_count_acquire(t, &a, 5), TK_OK);
	assert_int_equal(tk_ip_count_acquire(t, &b, 5), TK_OK);
	assert_int_equal(tk_ip_count_acquire(t, &c, 5), TK_ERR);
	/* An address already present may still add connections. */
	assert_int_equal(tk_ip_count_acquire(t, &a, 5), TK_OK);
	tk_ip_count_release(t, &b);
	assert_int_equal(tk_ip_count_acquire(t, &c, 5), TK_OK);
	tk_ip_count_free(t);
}

/* 8 addresses in a 16-slot table: chains collide and wrap around the end. */
#define MODEL_ADDRESSES 8
#define MODEL_LIMIT     3

static void test_random_run_matches_a_model(void **state)
{
	(void)state;
	tk_ip_count *t = tk_ip_count_new(MODEL_ADDRESSES);
	tk_ip_addr addrs[MODEL_ADDRESSES];
	unsigned model[MODEL_ADDRESSES] = {0};
	for (int i = 0; i < MODEL_ADDRESSES; i++) {
		char text[32];
		snprintf(text, sizeof text, "2001:db8::%x", i + 1);
		addrs[i] = ip(text);
	}
	srand(42);
	for (int step = 0; step < 200000; step++) {
		int i = rand() % MODEL_ADDRESSES;
		if (rand() % 2) {
			tk_status want = model[i] < MODEL_LIMIT ? TK_OK : TK_ERR;
			assert_int_equal(tk_ip_count_acquire(t, &addrs[i], MODEL_LIMIT), want);
			if (want == TK_OK)
				model[i]++;
		} else {
			tk_ip_count_release(t, &addrs[i]);
			if (model[i] > 0)
				model[i]--;
		}
		if (step % 97 == 0) {
			size_t present = 0;
			for (int k = 0; k < MODEL_ADDRESSES; k++) {
				assert_int_equal(tk_ip_count_get(t, &addrs[k]), model[k]);
				present += model[k] > 0;
			}
			assert_int_equal(tk_ip_count_addresses(t), present);
		}
	}
	tk_ip_count_free(t);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4_is_stored_v4_mapped),
	    cmocka_unit_test(test_limit_refuses_and_release_frees),
	    cmocka_unit_test(test_table_refuses_more_addresses_than_sized_for),
	    cmocka_unit_test(test_random_run_matches_a_model),
	};
	return cmocka_run_group_tests_name("ip_count", tests, NULL, NULL);
}
