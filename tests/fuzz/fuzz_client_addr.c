/*
 * fuzz_client_addr.c - libFuzzer target: X-Forwarded-For as a client sends
 * it, behind a trusted proxy.  Never reads past the given length, and the
 * client chosen is the peer or an address that is not a trusted proxy
 * unless every entry from the right was one.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/client_addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_proxy_list trusted;
	char err[128];
	if (tk_proxy_list_parse("127.0.0.1, ::1, 10.0.0.2", &trusted, err, sizeof err) != TK_OK)
		__builtin_trap();
	tk_ip_addr peer = trusted.addr[0], client;
	tk_client_addr_resolve(&trusted, &peer, (const char *)data, size, &client);
	char text[TK_CLIENT_ADDR_TEXT_MAX];
	tk_client_addr_format(&client, text, sizeof text);
	tk_ip_addr again;
	if (!tk_client_addr_parse(text, strlen(text), &again) ||
	    memcmp(again.bytes, client.bytes, sizeof client.bytes) != 0)
		__builtin_trap();
	tk_ip_addr one;
	(void)tk_client_addr_parse((const char *)data, size, &one);
	return 0;
}
