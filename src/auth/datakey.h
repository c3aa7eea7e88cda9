/*
 * datakey.h - per-tenant data keys, wrapped with the server's master key.
 *
 * Each tenant gets a random 256-bit data key at provisioning; only its
 * wrapped form (XSalsa20-Poly1305 under the master key, nonce prepended) is
 * stored, in tenant_data_keys, and tenants.encryption_key_id names it.
 * The master key is 32 bytes read from a file (hex), created with mode 0600
 * on first use.  Every server of one deployment must share that file.
 */
#ifndef TK_AUTH_DATAKEY_H
#define TK_AUTH_DATAKEY_H

#include <sodium.h>
#include <stddef.h>

#include "util/status.h"

#define TK_MASTER_KEY_LEN      crypto_secretbox_KEYBYTES
#define TK_DATAKEY_ID_LEN      35 /* "dk_" + 32 hex */
#define TK_DATAKEY_WRAPPED_LEN (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + 32)

typedef struct tk_datakey {
	char id[TK_DATAKEY_ID_LEN + 1];
	unsigned char wrapped[TK_DATAKEY_WRAPPED_LEN];
} tk_datakey;

/* Loads (or creates) the master key file. */
tk_status tk_master_key_load(const char *path, unsigned char key[TK_MASTER_KEY_LEN]) TK_MUST_CHECK;
/* A fresh data key, wrapped under master. */
void tk_datakey_generate(const unsigned char master[TK_MASTER_KEY_LEN], tk_datakey *out);
/* Unwraps; TK_ERR if tampered or under another master key. */
tk_status tk_datakey_unwrap(const unsigned char master[TK_MASTER_KEY_LEN],
                            const unsigned char wrapped[TK_DATAKEY_WRAPPED_LEN],
                            unsigned char key[32]) TK_MUST_CHECK;

#endif
