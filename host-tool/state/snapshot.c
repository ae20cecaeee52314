/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's snapshot directory: made under a temporary name, committed
   durably once complete, measured, and swept after an interrupted standby. */
#include "state/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "state/vmrec.h"
#include "sys/fs.h"
#include "sys/proc.h"

int
vm_snapshot_commit (const char *tmp, const char *snap, struct err **err)
{
  if (fs_fsync_tree (tmp, err) < 0)
    return err_wrap (err, "snapshot %s", tmp);
  return fs_rename_durable (tmp, snap, err);
}

int
vm_snapshot_tmp (const char *dir, char *out, size_t len, struct err **err)
{
  if ((size_t) snprintf (out, len, "%s/snapshot.tmp-%d-XXXXXX", dir, (int) getpid ()) >= len)
    return err_make (err, ENAMETOOLONG, "%s/snapshot.tmp-*", dir);
  if (mkdtemp (out) == NULL)
    return err_make (err, errno, "mkdtemp %s", out);
  return 0;
}

int
vm_sweep_snapshot_tmp (const char *dir, unsigned *removed, struct err **err)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  unsigned n = 0;

  if (removed != NULL)
    *removed = 0;
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", dir);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      const char *p = de->d_name + strlen ("snapshot.tmp-");
      char path[VM_PATH_MAX + 64], *end = NULL;
      long pid;

      if (strncmp (de->d_name, "snapshot.tmp-", strlen ("snapshot.tmp-")) != 0)
        continue;
      /* snapshot.tmp-PID-XXXXXX: the standby of a live chvm is still
         writing it.  Older names carry no pid; the caller holds the state
         lock, so no standby of this chvm version runs. */
      errno = 0;
      pid = strtol (p, &end, 10);
      if (errno == 0 && end != p && *end == '-' && pid > 0 && pid <= INT32_MAX
          && (kill ((pid_t) pid, 0) == 0 || errno == EPERM))
        continue;
      if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
        continue;
      if (fs_rmtree (path, err) < 0)
        return err_wrap (err, "sweep an interrupted standby's snapshot");
      n++;
    }
  if (removed != NULL)
    *removed = n;
  return 0;
}

int
vm_snapshot_size (const char *dir, uint64_t *logical, uint64_t *allocated, struct err **err)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;

  *logical = *allocated = 0;
  if (d == NULL)
    return err_make (err, errno, "open %s", dir);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;

      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return err_make (err, errno, "stat %s/%s", dir, de->d_name);
      if (!S_ISREG (st.st_mode))
        continue;
      *logical += (uint64_t) st.st_size;
      *allocated += (uint64_t) st.st_blocks * 512;
    }
  return 0;
}
