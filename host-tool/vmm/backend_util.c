/* SPDX-License-Identifier: Apache-2.0 */
/* What both backends and their callers use: phase timing, the snapshot
   checks' file test, the pmem root's size, vmm.pid.
   Apart from backend.c, which uses the backends, so that no circle of
   calls joins them. */
#include "vmm/backend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

#include "clock.h"
#include "image/image.h"
#include "path.h"
#include "sys/fs.h"

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

int
backend_pmem_size (const char *path, uint64_t *size, struct err **err)
{
  struct stat st;

  if (stat (path, &st) < 0)
    return err_make (err, errno, "root image %s", path);
  if (!S_ISREG (st.st_mode) || st.st_size == 0 || st.st_size % IMAGE_ROOTFS_ALIGN != 0)
    return err_make (err, 0,
                     "root image %s (%lld bytes) is not a multiple of 2 MiB, which virtio-pmem "
                     "needs (chvm run --rootfs-device pmem pads it)",
                     path, (long long) st.st_size);
  *size = (uint64_t) st.st_size;
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

int
backend_write_pid (const char *dir, pid_t pid, struct err **err)
{
  char path[PATH_MAX], line[32];
  int n;

  /* A fresh temporary name (O_EXCL) renamed over vmm.pid: nothing the
     VMM's uid put in the VM dir is followed. */
  if (path_in (path, sizeof path, dir, "vmm.pid", err) < 0)
    return -1;
  n = snprintf (line, sizeof line, "%d\n", (int) pid);
  return fs_write_atomic (path, line, (size_t) n, 0644, err);
}
