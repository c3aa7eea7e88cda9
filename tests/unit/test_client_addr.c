/*
 * test_client_addr.c - unit tests for http/client_addr.h: parsing one
 * address and the --trusted-proxies list (IPv4, IPv6, v4-mapped, canonical
 * text, every kind of bad entry), and choosing the client from
 * X-Forwarded-For: only behind a trusted peer, the rightmost entry that is
 * not a trusted proxy, entries a client prepends never believed, a
 * malformed entry ending the walk with the last good address.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/client_addr.h"

static tk_ip_addr addr(const char *text)
{
	tk_ip_addr a;
	if (!tk_client_addr_parse(text, strlen(text), &a))
		fail_msg("'%s' does not parse", text);
	return a;
}

static const char *text_of(const tk_ip_addr *a)
{
	static char buf[TK_CLIENT_ADDR_TEXT_MAX];
	tk_client_addr_format(a, buf, sizeof buf);
	return buf;
}

static void test_parse_and_format(void **state)
{
	(void)state;
	static const char *const same[][2] = {
	    {"127.0.0.1", "127.0.0.1"},
	    {"::ffff:127.0.0.1", "127.0.0.1"},
	    {"2001:db8::1", "2001:db8::1"},
	    {"2001:0DB8:0:0:0:0:0:0001", "2001:db8::1"},
	    {"::1", "::1"},
	    {"255.255.255.255", "255.255.255.255"},
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
		tk_ip_addr a = addr(same[i][0]);
		assert_string_equal(text_of(&a), same[i][1]);
	}
	static const char *const bad[] = {
	    "",
	    " 1.2.3.4",
	    "1.2.3.4 ",
	    "1.2.3",
	    "1.2.3.4.5",
	    "256.1.1.1",
	    "1.2.3.4:80",
	    "[::1]",
	    "::1%lo",
	    "10.0.0.0/8",
	    "localhost",
	    "unknown",
	    "1.2.3.04",
	    "_hidden",
	    "::g",
	    "1.2.3.4,5.6.7.8",
	    "1111:2222:3333:4444:5555:6666:7777:8888:9999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		tk_ip_addr a;
		if (tk_client_addr_parse(bad[i], strlen(bad[i]), &a))
			fail_msg("'%s' parsed", bad[i]);
	}
	/* Exactly len bytes: a NUL inside, or text past len, is not read. */
	tk_ip_addr a;
	assert_false(tk_client_addr_parse("1.2.3.4\0", 8, &a));
	assert_true(tk_client_addr_parse("1.2.3.4, 5.6.7.8", 7, &a));
	assert_string_equal(text_of(&a), "1.2.3.4");
}

static void test_proxy_list(void **state)
{
	(void)state;
	tk_proxy_list l;
	char err[256];
	assert_int_equal(tk_proxy_list_parse(NULL, &l, err, sizeof err), TK_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(tk_proxy_list_parse("", &l, err, sizeof err), TK_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(tk_proxy_list_parse("127.0.0.1", &l, err, sizeof err), TK_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(tk_proxy_list_parse(" 10.0.0.1 ,\t::1,2001:db8::7", &l, err, sizeof err),
	                 TK_OK);
	assert_int_equal(l.n, 3);
	tk_ip_addr a = addr("::1"), b = addr("0:0:0:0:0:0:0:1"), c = addr("10.0.0.2"),
	           d = addr("::ffff:10.0.0.1");
	assert_true(tk_proxy_list_has(&l, &a));
	assert_true(tk_proxy_list_has(&l, &b));
	assert_false(tk_proxy_list_has(&l, &c));
	assert_true(tk_proxy_list_has(&l, &d));

	static const char *const bad[][2] = {
	    {"127.0.0.1,", "empty"},
	    {",127.0.0.1", "empty"},
	    {"1.2.3.4,,5.6.7.8", "empty"},
	    {" ", "empty"},
	    {"10.0.0.0/8", "'10.0.0.0/8'"},
	    {"proxy.local", "'proxy.local'"},
	    {"127.0.0.1:80", "'127.0.0.1:80'"},
	    {"1.2.3.4 5.6.7.8", "'1.2.3.4 5.6.7.8'"},
	    {"127.0.0.1;::1", "'127.0.0.1;::1'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (tk_proxy_list_parse(bad[i][0], &l, err, sizeof err) != TK_ERR)
			fail_msg("'%s' accepted", bad[i][0]);
		if (strstr(err, bad[i][1]) == NULL)
			fail_msg("message for '%s' lacks %s: %s", bad[i][0], bad[i][1], err);
	}
	/* At most TK_TRUSTED_PROXIES_MAX. */
	char many[TK_TRUSTED_PROXIES_MAX * 16 + 16] = "";
	for (int i = 0; i <= TK_TRUSTED_PROXIES_MAX; i++) {
		char one[16];
		snprintf(one, sizeof one, "%s10.0.0.%d", i ? "," : "", i + 1);
		strcat(many, one);
	}
	assert_int_equal(tk_proxy_list_parse(many, &l, err, sizeof err), TK_ERR);
	assert_non_null(strstr(err, "more than"));
	*strrchr(many, ',') = '\0';
	assert_int_equal(tk_proxy_list_parse(many, &l, err, sizeof err), TK_OK);
	assert_int_equal(l.n, TK_TRUSTED_PROXIES_MAX);
}

/* The client for a peer and an X-Forwarded-For value (NULL: none) behind
 * the proxies in list. */
static const char *client(const char *list, const char *peer, const char *xff)
{
	tk_proxy_list l;
	char err[256];
	if (tk_proxy_list_parse(list, &l, err, sizeof err) != TK_OK)
		fail_msg("%s", err);
	tk_ip_addr p = addr(peer), c;
	tk_client_addr_resolve(&l, &p, xff, xff ? strlen(xff) : 0, &c);
	return text_of(&c);
}

static void test_resolve(void **state)
{
	(void)state;
	const char *nginx = "127.0.0.1";
	/* No proxies, or a peer that is not one: the header is ignored. */
	assert_string_equal(client("", "127.0.0.1", "9.9.9.9"), "127.0.0.1");
	assert_string_equal(client(nginx, "10.1.1.1", "9.9.9.9"), "10.1.1.1");
	assert_string_equal(client(nginx, "10.1.1.1", NULL), "10.1.1.1");
	/* From the proxy: the address it appended. */
	assert_string_equal(client(nginx, "127.0.0.1", "9.9.9.9"), "9.9.9.9");
	assert_string_equal(client(nginx, "::ffff:127.0.0.1", "9.9.9.9"), "9.9.9.9");
	assert_string_equal(client(nginx, "127.0.0.1", "  9.9.9.9\t"), "9.9.9.9");
	assert_string_equal(client(nginx, "127.0.0.1", "2001:DB8:0::5"), "2001:db8::5");
	/* Whatever the client put in front is not believed. */
	assert_string_equal(client(nginx, "127.0.0.1", "1.2.3.4, 9.9.9.9"), "9.9.9.9");
	assert_string_equal(client(nginx, "127.0.0.1", "127.0.0.1, 9.9.9.9"), "9.9.9.9");
	assert_string_equal(client(nginx, "127.0.0.1", "garbage, 9.9.9.9"), "9.9.9.9");
	/* A chain of trusted proxies is walked through. */
	assert_string_equal(client("127.0.0.1,10.0.0.2", "127.0.0.1", "1.2.3.4, 9.9.9.9, 10.0.0.2"),
	                    "9.9.9.9");
	assert_string_equal(client("127.0.0.1,10.0.0.2", "127.0.0.1", "10.0.0.2"), "10.0.0.2");
	/* Malformed: the last good address stands (the peer when it is the first). */
	assert_string_equal(client(nginx, "127.0.0.1", "unknown"), "127.0.0.1");
	assert_string_equal(client(nginx, "127.0.0.1", "9.9.9.9:443"), "127.0.0.1");
	assert_string_equal(client(nginx, "127.0.0.1", ""), "127.0.0.1");
	assert_string_equal(client(nginx, "127.0.0.1", "9.9.9.9,"), "127.0.0.1");
	assert_string_equal(client("127.0.0.1,10.0.0.2", "127.0.0.1", "bad, 10.0.0.2"), "10.0.0.2");
	assert_string_equal(client("127.0.0.1,10.0.0.2", "127.0.0.1", ",10.0.0.2"), "10.0.0.2");
	assert_string_equal(client(nginx, "127.0.0.1", "9.9.9.9,,"), "127.0.0.1");
	/* Exactly xff_len bytes are read. */
	tk_proxy_list l;
	char err[64];
	assert_int_equal(tk_proxy_list_parse(nginx, &l, err, sizeof err), TK_OK);
	tk_ip_addr p = addr("127.0.0.1"), c;
	tk_client_addr_resolve(&l, &p, "9.9.9.9, 8.8.8.8", 7, &c);
	assert_string_equal(text_of(&c), "9.9.9.9");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_format),
	    cmocka_unit_test(test_proxy_list),
	    cmocka_unit_test(test_resolve),
	};
	return cmocka_run_group_tests_name("client_addr", tests, NULL, NULL);
}
