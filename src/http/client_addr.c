/*
 * client_addr.c - the request's client address (see client_addr.h).
 */
#include "http/client_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static bool is_v4_mapped(const tk_ip_addr *a)
{
	static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	return memcmp(a->bytes, prefix, sizeof prefix) == 0;
}

bool tk_client_addr_parse(const char *s, size_t len, tk_ip_addr *out)
{
	char text[TK_CLIENT_ADDR_TEXT_MAX];
	if (len == 0 || len >= sizeof text || memchr(s, '\0', len))
		return false;
	memcpy(text, s, len);
	text[len] = '\0';
	memset(out, 0, sizeof *out);
	struct in_addr v4;
	if (inet_pton(AF_INET, text, &v4) == 1) {
		out->bytes[10] = 0xff;
		out->bytes[11] = 0xff;
		memcpy(out->bytes + 12, &v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, text, out->bytes) == 1;
}

void tk_client_addr_format(const tk_ip_addr *addr, char *out, size_t size)
{
	const char *ok = is_v4_mapped(addr)
	                     ? inet_ntop(AF_INET, addr->bytes + 12, out, (socklen_t)size)
	                     : inet_ntop(AF_INET6, addr->bytes, out, (socklen_t)size);
	if (ok == NULL && size > 0)
		out[0] = '\0';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* [*start, *end) without the spaces and tabs around it. */
static void trim(const char **start, const char **end)
{
	while (*start < *end && is_space(**start))
		(*start)++;
	while (*end > *start && is_space((*end)[-1]))
		(*end)--;
}

tk_status tk_proxy_list_parse(const char *text, tk_proxy_list *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (text == NULL || text[0] == '\0')
		return TK_OK;
	const char *p = text;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *start = p, *end = comma ? comma : p + strlen(p);
		trim(&start, &end);
		int shown = (int)(end - start < 64 ? end - start : 64);
		if (start == end) {
			snprintf(err, errlen, "an entry is empty in '%.200s'", text);
			return TK_ERR;
		}
		if (out->n == TK_TRUSTED_PROXIES_MAX) {
			snprintf(err, errlen, "more than %d addresses", TK_TRUSTED_PROXIES_MAX);
			return TK_ERR;
		}
		if (!tk_client_addr_parse(start, (size_t)(end - start), &out->addr[out->n])) {
			snprintf(err, errlen,
			         "'%.*s' is not an IPv4 or IPv6 address (addresses only: no "
			         "ranges, ports or names)",
			         shown, start);
			return TK_ERR;
		}
		out->n++;
		if (comma == NULL)
			return TK_OK;
		p = comma + 1;
	}
}

bool tk_proxy_list_has(const tk_proxy_list *list, const tk_ip_addr *addr)
{
	for (size_t i = 0; i < list->n; i++)
		if (memcmp(list->addr[i].bytes, addr->bytes, sizeof addr->bytes) == 0)
			return true;
	return false;
}

void tk_client_addr_resolve(const tk_proxy_list *trusted, const tk_ip_addr *peer, const char *xff,
                            size_t xff_len, tk_ip_addr *client)
{
	*client = *peer;
	if (xff == NULL || trusted->n == 0 || !tk_proxy_list_has(trusted, peer))
		return;
	/* From the right: each step trusts the hop that wrote the entry. */
	const char *end = xff + xff_len;
	while (end > xff) {
		const char *start = end;
		while (start > xff && start[-1] != ',')
			start--;
		const char *s = start, *e = end;
		trim(&s, &e);
		tk_ip_addr entry;
		if (!tk_client_addr_parse(s, (size_t)(e - s), &entry))
			return; /* malformed: the last good address stands */
		*client = entry;
		if (!tk_proxy_list_has(trusted, &entry))
			return;
		if (start == xff)
			return;
		end = start - 1; /* before the comma */
	}
}
