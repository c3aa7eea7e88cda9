/*
 * apikey.h - tenant API keys: format, generation and hashing.
 *
 * A key is "tk_" followed by 64 lower-case hex digits (32 bytes from the
 * OS CSPRNG via libsodium).  Only its SHA-256 is stored; the first
 * TK_APIKEY_PREFIX_LEN characters are kept in clear as a display prefix so
 * an operator can tell keys apart without seeing a secret.
 */
#ifndef TK_AUTH_APIKEY_H
#define TK_AUTH_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#define TK_APIKEY_LEN        67 /* "tk_" + 64 hex */
#define TK_APIKEY_PREFIX_LEN 11 /* "tk_" + 8 hex */
#define TK_APIKEY_HASH_LEN   32

bool tk_apikey_is_well_formed(const char *key, size_t len);
/* Writes a fresh key (TK_APIKEY_LEN chars + NUL). */
void tk_apikey_generate(char out[TK_APIKEY_LEN + 1]);
void tk_apikey_hash(const char *key, size_t len, unsigned char out[TK_APIKEY_HASH_LEN]);
/* The hash as PostgreSQL bytea hex input: "\\x" + 64 hex + NUL. */
void tk_apikey_hash_hex(const unsigned char hash[TK_APIKEY_HASH_LEN], char out[67]);

#endif
