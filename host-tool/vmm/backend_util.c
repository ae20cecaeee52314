/* SPDX-License-Identifier: Apache-2.0 */
/* What both backends use: phase timing and the snapshot checks' file test.
   Apart from backend.c, which uses the backends, so that no circle of
   calls joins them. */
#include "vmm/backend.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "clock.h"

int
backend_snapshot_file (const char *dir, const char *name, struct stat *st, struct err **err)
{
  char path[VM_PATH_MAX + 32];

  if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return err_make (err, ENAMETOOLONG, "%s/%s", dir, name);
  if (stat (path, st) < 0)
    return err_make (err, errno, "snapshot %s is incomplete: no %s", dir, name);
  if (!S_ISREG (st->st_mode) || st->st_size == 0)
    return err_make (err, 0, "snapshot %s is incomplete: %s is empty", dir, name);
  return 0;
}

void
phase_add (struct phase *p, size_t *n, const char *name, double *t)
{
  double now = clock_now_ms ();

  if (p != NULL && n != NULL && *n < BACKEND_MAX_PHASES)
    p[(*n)++] = (struct phase){ name, now - *t };
  *t = now;
}
