/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Error values carried up the call chain, crun style: a function that fails
 * fills a struct err through a trailing `struct err **` and returns <0 or
 * NULL.  Callers add context with err_wrap() and only main() prints.
 */
#ifndef CHVM_ERR_H
#define CHVM_ERR_H

#include <stdarg.h>

struct err
{
  int status; /* errno value, or 0 when the error is not a syscall's */
  char *msg;
};

/* Stores errno `status` and a message; returns -status-1 (always < 0). */
int err_make (struct err **err, int status, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/* Prefixes the message of an existing error with context; returns the same
   negative value err_make() returned. */
int err_wrap (struct err **err, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* Both return values above are negative by contract; these wrappers say so
   in every caller's file, so that a per-file reader (the clang static
   analyzer, which cannot look into err.c) follows `if (f () < 0) return` the
   way the program runs instead of inventing a failure that returns >= 0.  A
   macro, not an inline function: the analyzer stops inlining calls a few
   levels deep. */
#define err_negative_(call)                                                                        \
  ({                                                                                               \
    int err_r_ = (call);                                                                           \
    err_r_ < 0 ? err_r_ : -1;                                                                      \
  })
#define err_make(...) err_negative_ ((err_make) (__VA_ARGS__))
#define err_wrap(...) err_negative_ ((err_wrap) (__VA_ARGS__))

/* Frees a tolerated error and sets *err to NULL. */
void err_release (struct err **err);

/* Formats "msg: strerror(status)" into buf (bounded); returns buf. */
const char *err_str (const struct err *err, char *buf, unsigned long len);

#define cleanup_err __attribute__ ((cleanup (err_release)))

#endif
