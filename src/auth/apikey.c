/*
 * apikey.c - API key format and hashing (see apikey.h).
 */
#include "auth/apikey.h"

#include <sodium.h>
#include <string.h>

bool tk_apikey_is_well_formed(const char *key, size_t len)
{
	if (key == NULL || len != TK_APIKEY_LEN || memcmp(key, "tk_", 3) != 0)
		return false;
	for (size_t i = 3; i < len; i++) {
		char c = key[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return true;
}

void tk_apikey_generate(char out[TK_APIKEY_LEN + 1])
{
	unsigned char raw[32];
	randombytes_buf(raw, sizeof raw);
	memcpy(out, "tk_", 3);
	sodium_bin2hex(out + 3, 65, raw, sizeof raw);
	sodium_memzero(raw, sizeof raw);
}

void tk_apikey_hash(const char *key, size_t len, unsigned char out[TK_APIKEY_HASH_LEN])
{
	crypto_hash_sha256(out, (const unsigned char *)key, len);
}

void tk_apikey_hash_hex(const unsigned char hash[TK_APIKEY_HASH_LEN], char out[67])
{
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, 65, hash, TK_APIKEY_HASH_LEN);
}
