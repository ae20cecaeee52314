/* SPDX-License-Identifier: Apache-2.0 */
/* Scope-bound cleanup, as in crun's utils.h.  fds start at -1 and are handed
   off with steal_fd(); pointers with steal_ptr(). */
#ifndef CHVM_CLEANUP_H
#define CHVM_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
cleanup_free_fn (void *p)
{
  free (*(void **) p);
}

static inline void
cleanup_close_fn (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}

static inline void
cleanup_file_fn (FILE **f)
{
  if (*f != NULL)
    fclose (*f);
}

static inline void
cleanup_dir_fn (DIR **d)
{
  if (*d != NULL)
    closedir (*d);
}

#define cleanup_free __attribute__ ((cleanup (cleanup_free_fn)))
#define cleanup_close __attribute__ ((cleanup (cleanup_close_fn)))
#define cleanup_file __attribute__ ((cleanup (cleanup_file_fn)))
#define cleanup_dir __attribute__ ((cleanup (cleanup_dir_fn)))

static inline int
steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define steal_ptr(p)                                                                               \
  ({                                                                                               \
    __typeof__ (*(p)) _r = *(p);                                                                   \
    *(p) = NULL;                                                                                   \
    _r;                                                                                            \
  })

#ifndef TEMP_FAILURE_RETRY
#define TEMP_FAILURE_RETRY(expr)                                                                   \
  ({                                                                                               \
    long _r;                                                                                       \
    do                                                                                             \
      _r = (long) (expr);                                                                          \
    while (_r == -1L && errno == EINTR);                                                           \
    _r;                                                                                            \
  })
#endif

#endif
