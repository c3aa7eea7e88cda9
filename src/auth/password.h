/*
 * password.h - password hashing with Argon2id (libsodium crypto_pwhash).
 *
 * Hashing is deliberately expensive (64 MiB, several passes), so at most
 * TK_PASSWORD_MAX_CONCURRENT hashes run at once process-wide; further
 * callers wait.  This bounds the memory and CPU a burst of sign-ups or
 * logins can take.
 */
#ifndef TK_AUTH_PASSWORD_H
#define TK_AUTH_PASSWORD_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

#define TK_PASSWORD_MIN_CHARS      10
#define TK_PASSWORD_MAX_BYTES      128
#define TK_PASSWORD_MAX_CONCURRENT 2
#define TK_PASSWORD_HASH_MAX       crypto_pwhash_STRBYTES

/* 400 weak_password / password_too_long naming field; TK_OK when acceptable. */
tk_status tk_password_check(const char *password, size_t len, const char *field,
                            tk_error *err) TK_MUST_CHECK;
/* Argon2id hash into out (TK_PASSWORD_HASH_MAX bytes). */
tk_status tk_password_hash(const char *password, size_t len, char out[TK_PASSWORD_HASH_MAX],
                           tk_error *err) TK_MUST_CHECK;
/* Constant-time verification against a stored hash. */
bool tk_password_verify(const char *hash, const char *password, size_t len);

#endif
