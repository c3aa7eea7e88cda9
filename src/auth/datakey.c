/*
 * datakey.c - master key file and wrapped data keys (see datakey.h).
 */
#include "auth/datakey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/log.h"

tk_status tk_master_key_load(const char *path, unsigned char key[TK_MASTER_KEY_LEN])
{
	char hex[TK_MASTER_KEY_LEN * 2 + 2];
	int fd = open(path, O_RDONLY);
	if (fd < 0 && errno == ENOENT) {
		unsigned char fresh[TK_MASTER_KEY_LEN];
		randombytes_buf(fresh, sizeof fresh);
		sodium_bin2hex(hex, sizeof hex, fresh, sizeof fresh);
		sodium_memzero(fresh, sizeof fresh);
		/* O_EXCL: if another process created it meanwhile, use theirs. */
		int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (wfd >= 0) {
			size_t n = strlen(hex);
			bool ok = write(wfd, hex, n) == (ssize_t)n && fsync(wfd) == 0;
			close(wfd);
			if (!ok) {
				log_error("cannot write the master key file %s", path);
				unlink(path);
				return TK_ERR;
			}
			log_info("created a new master key in %s (keep it, and share it between "
			         "servers)",
			         path);
		}
		fd = open(path, O_RDONLY);
	}
	if (fd < 0) {
		log_error("cannot read the master key file %s: %s", path, strerror(errno));
		return TK_ERR;
	}
	ssize_t n = read(fd, hex, sizeof hex - 1);
	close(fd);
	if (n < (ssize_t)(TK_MASTER_KEY_LEN * 2)) {
		log_error("the master key file %s is too short (64 hex characters expected)", path);
		return TK_ERR;
	}
	hex[TK_MASTER_KEY_LEN * 2] = '\0';
	size_t len = 0;
	if (sodium_hex2bin(key, TK_MASTER_KEY_LEN, hex, TK_MASTER_KEY_LEN * 2, NULL, &len, NULL) !=
	        0 ||
	    len != TK_MASTER_KEY_LEN) {
		log_error("the master key file %s is not 64 hex characters", path);
		return TK_ERR;
	}
	sodium_memzero(hex, sizeof hex);
	return TK_OK;
}

void tk_datakey_generate(const unsigned char master[TK_MASTER_KEY_LEN], tk_datakey *out)
{
	unsigned char key[32], idraw[16];
	randombytes_buf(key, sizeof key);
	randombytes_buf(idraw, sizeof idraw);
	memcpy(out->id, "dk_", 3);
	sodium_bin2hex(out->id + 3, sizeof out->id - 3, idraw, sizeof idraw);
	unsigned char *nonce = out->wrapped;
	randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out->wrapped + crypto_secretbox_NONCEBYTES, key, sizeof key, nonce,
	                      master);
	sodium_memzero(key, sizeof key);
}

tk_status tk_datakey_unwrap(const unsigned char master[TK_MASTER_KEY_LEN],
                            const unsigned char wrapped[TK_DATAKEY_WRAPPED_LEN],
                            unsigned char key[32])
{
	if (crypto_secretbox_open_easy(key, wrapped + crypto_secretbox_NONCEBYTES,
	                               TK_DATAKEY_WRAPPED_LEN - crypto_secretbox_NONCEBYTES,
	                               wrapped, master) != 0)
		return TK_ERR;
	return TK_OK;
}
