/*
 * password.c - Argon2id hashing with bounded concurrency (see password.h).
 */
#include "auth/password.h"

#include <pthread.h>
#include <string.h>

#include "util/validate.h"

static pthread_mutex_t hash_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hash_slot = PTHREAD_COND_INITIALIZER;
static int hashes_running;

tk_status tk_password_check(const char *password, size_t len, const char *field, tk_error *err)
{
	if (len > TK_PASSWORD_MAX_BYTES)
		return tk_error_set(err, 400, "password_too_long", field,
		                    "the password must be at most %d bytes", TK_PASSWORD_MAX_BYTES);
	if (!tk_is_utf8(password, len) || tk_utf8_length(password, len) < TK_PASSWORD_MIN_CHARS)
		return tk_error_set(err, 400, "weak_password", field,
		                    "the password must be at least %d characters",
		                    TK_PASSWORD_MIN_CHARS);
	/* A password of one repeated character, or only digits, is guessed at once. */
	bool all_same = true, all_digits = true;
	for (size_t i = 0; i < len; i++) {
		all_same = all_same && password[i] == password[0];
		all_digits = all_digits && password[i] >= '0' && password[i] <= '9';
	}
	if (all_same || all_digits)
		return tk_error_set(err, 400, "weak_password", field,
		                    "the password is too easy to guess; mix letters and digits");
	return TK_OK;
}

static void slot_acquire(void)
{
	pthread_mutex_lock(&hash_lock);
	while (hashes_running >= TK_PASSWORD_MAX_CONCURRENT)
		pthread_cond_wait(&hash_slot, &hash_lock);
	hashes_running++;
	pthread_mutex_unlock(&hash_lock);
}

static void slot_release(void)
{
	pthread_mutex_lock(&hash_lock);
	hashes_running--;
	pthread_cond_signal(&hash_slot);
	pthread_mutex_unlock(&hash_lock);
}

tk_status tk_password_hash(const char *password, size_t len, char out[TK_PASSWORD_HASH_MAX],
                           tk_error *err)
{
	slot_acquire();
	int rc = crypto_pwhash_str(out, password, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                           crypto_pwhash_MEMLIMIT_INTERACTIVE);
	slot_release();
	if (rc != 0)
		return tk_error_set(err, 503, "server_busy", NULL,
		                    "the server could not hash the password now; retry");
	return TK_OK;
}

bool tk_password_verify(const char *hash, const char *password, size_t len)
{
	slot_acquire();
	bool ok = crypto_pwhash_str_verify(hash, password, len) == 0;
	slot_release();
	return ok;
}
