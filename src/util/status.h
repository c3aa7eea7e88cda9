/*
 * status.h - the one status convention used across tekup.
 *
 * Every fallible function returns tk_status and is marked TK_MUST_CHECK so
 * the compiler refuses a silently ignored failure.  Details of a failure that
 * must reach the HTTP client travel in a tk_error (see util/error.h); this
 * header only says "it worked" or "it did not".
 */
#ifndef TK_STATUS_H
#define TK_STATUS_H

typedef enum tk_status {
	TK_OK = 0,
	TK_ERR = -1,
} tk_status;

#define TK_MUST_CHECK        __attribute__((warn_unused_result))
#define TK_UNUSED            __attribute__((unused))
#define TK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define TK_NORETURN          __attribute__((noreturn))

#define TK_STR_(x) #x
#define TK_STR(x)  TK_STR_(x)

#define TK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
