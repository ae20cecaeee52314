/* SPDX-License-Identifier: Apache-2.0 */
/* "DIR/NAME" into a bounded buffer: the files of a VM directory (console,
   backend, supervisor). */
#ifndef CHVM_PATH_H
#define CHVM_PATH_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Returns 0, or ENAMETOOLONG (err may be NULL) when it does not fit. */
static inline int
path_in (char *out, size_t len, const char *dir, const char *name, struct err **err)
{
  int n = snprintf (out, len, "%s/%s", dir, name);

  if (n < 0 || (size_t) n >= len)
    return err_make (err, ENAMETOOLONG, "%s/%s", dir, name);
  return 0;
}

#endif
