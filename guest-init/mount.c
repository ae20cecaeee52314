/* SPDX-License-Identifier: Apache-2.0 */
#include "mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "disks.h"
#include "io.h"
#include "log.h"

/* From linux/fs.h, which clashes with musl's limits.h (NGROUPS_MAX). */
#ifndef FITHAW
#define FITHAW _IOWR ('X', 120, int)
#endif
/* Where the upper layer is after the switch (mnt_overlay_root mounts it
   under the initramfs /run, which moves to the new root). */
#define UPPER_FS RUN_CHVM "/upper-fs"

struct mnt_entry
{
  const char *src, *target, *type;
  unsigned long flags;
  const char *data;
};

#define NOSUID_NODEV_EXEC (MS_NOSUID | MS_NODEV | MS_NOEXEC)

/* Docker's defaults: /dev/shm 64 MiB is too small for Chromium, so /dev/shm
   gets half of RAM like a plain tmpfs. */
static const struct mnt_entry early_mounts[] = {
  { "proc", "/proc", "proc", NOSUID_NODEV_EXEC, NULL },
  { "sysfs", "/sys", "sysfs", NOSUID_NODEV_EXEC, NULL },
  { "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
  { "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666" },
  { "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
  { "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
  { "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
  { "cgroup2", "/sys/fs/cgroup", "cgroup2", NOSUID_NODEV_EXEC, "nsdelegate" },
};

/* The filesystems that follow the root across switch_root.  Moving /dev and
   /sys carries /dev/pts, /dev/shm and /sys/fs/cgroup with them. */
static const char *const moved_mounts[] = { "/dev", "/proc", "/sys", "/run", "/tmp" };

int
mnt_early (struct err **err)
{
  for (size_t i = 0; i < sizeof early_mounts / sizeof early_mounts[0]; i++)
    {
      const struct mnt_entry *m = &early_mounts[i];
      int r = mkdir_p (m->target, 0755, err);
      if (r < 0)
        return r;
      /* EBUSY: the kernel (CONFIG_DEVTMPFS_MOUNT) or an earlier run mounted
         it already. */
      if (mount (m->src, m->target, m->type, m->flags, m->data) < 0 && errno != EBUSY)
        return err_make (err, errno, "mount %s on %s", m->type, m->target);
    }
  return 0;
}

/* Whether /proc/self/mounts shows target mounted with DAX (ext4 "dax" or
   "dax=always", erofs "dax=always"; erofs drops the option when the device
   cannot do it). */
static bool
mounted_with_dax (const char *target)
{
  cleanup_free char *mounts = read_file ("/proc/self/mounts", 1 << 20, NULL, NULL);

  for (char *line = mounts, *save = NULL; mounts && (line = strtok_r (line, "\n", &save)) != NULL;
       line = NULL)
    {
      char *fields[4], *f, *fsave = NULL;
      size_t n = 0;

      for (f = strtok_r (line, " ", &fsave); f != NULL && n < 4; f = strtok_r (NULL, " ", &fsave))
        fields[n++] = f;
      if (n < 4 || strcmp (fields[1], target) != 0)
        continue;
      for (char *o = fields[3], *osave = NULL; (o = strtok_r (o, ",", &osave)) != NULL; o = NULL)
        if (strcmp (o, "dax") == 0 || strcmp (o, "dax=always") == 0)
          return true;
    }
  return false;
}

/* A pmem root with DAX: its pages are the host's (page cache of the image
   file), not guest RAM.  Returns 0 when mounted (with DAX, or without it
   after one console line saying why), 1 when it should be mounted the
   plain way, -1 on an error. */
static int
mount_lower_dax (const char *dev, const char *target, struct err **err)
{
  const char *type = disk_fs_type (dev);

  if (type == NULL)
    return 1;
  if (mount (dev, target, type, MS_RDONLY | MS_NODEV, "dax=always") < 0)
    {
      /* EINVAL: ext4 refuses dax on a device or block size without it;
         EOPNOTSUPP: a kernel without FS_DAX. */
      if (errno != EINVAL && errno != EOPNOTSUPP)
        return err_make (err, errno, "mount %s (%s, dax) on %s", dev, type, target);
      log_warn ("root: mounting %s (%s) with DAX failed: %m; mounting it without DAX", dev, type);
      return 1;
    }
  if (!mounted_with_dax (target))
    log_warn ("root: %s (%s) is mounted without DAX: the kernel turned it off", dev, type);
  return 0;
}

static int
mount_lower (const char *dev, bool dax, const char *target, struct err **err)
{
  static const char *const types[] = { "ext4", "erofs" };
  int saved = 0, r;

  if (dax && (r = mount_lower_dax (dev, target, err)) <= 0)
    return r;
  for (size_t i = 0; i < 2; i++)
    {
      if (mount (dev, target, types[i], MS_RDONLY | MS_NODEV, NULL) == 0)
        return 0;
      /* EINVAL: not this filesystem; ENODEV: type not in this kernel. */
      if (errno != EINVAL && errno != ENODEV)
        return err_make (err, errno, "mount %s (%s) on %s", dev, types[i], target);
      if (saved == 0 || errno == EINVAL)
        saved = errno;
    }
  return err_make (err, saved, "mount %s read-only: neither ext4 nor erofs", dev);
}

int
mnt_overlay_root (const char *root_dev, bool dax, const char *upper_dev, uint64_t tmpfs_size,
                  struct err **err)
{
  const char *lower = RUN_CHVM "/lower", *upper_fs = UPPER_FS;
  char data[256];
  int r, n;

  if ((r = mkdir_p (lower, 0755, err)) < 0 || (r = mkdir_p (upper_fs, 0755, err)) < 0
      || (r = mkdir_p (NEWROOT, 0755, err)) < 0)
    return r;
  if ((r = mount_lower (root_dev, dax, lower, err)) < 0)
    return r;

  if (upper_dev != NULL)
    {
      if (mount (upper_dev, upper_fs, "ext4", MS_NODEV, NULL) < 0)
        return err_make (err, errno, "mount upper disk %s", upper_dev);
    }
  else
    {
      if (tmpfs_size != 0)
        n = snprintf (data, sizeof data, "mode=0755,size=%llu", (unsigned long long) tmpfs_size);
      else
        n = snprintf (data, sizeof data, "mode=0755,size=50%%");
      if (n < 0 || (size_t) n >= sizeof data)
        return err_make (err, EOVERFLOW, "tmpfs options");
      if (mount ("tmpfs", upper_fs, "tmpfs", MS_NODEV, data) < 0)
        return err_make (err, errno, "mount tmpfs upper (%s)", data);
    }
  if ((r = mkdir_p (UPPER_FS "/upper", 0755, err)) < 0
      || (r = mkdir_p (UPPER_FS "/work", 0755, err)) < 0)
    return r;

  n = snprintf (data, sizeof data, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, upper_fs,
                upper_fs);
  if (n < 0 || (size_t) n >= sizeof data)
    return err_make (err, EOVERFLOW, "overlay options");
  if (mount ("overlay", NEWROOT, "overlay", 0, data) < 0)
    return err_make (err, errno, "mount overlay on " NEWROOT " (%s)", data);
  return 0;
}

/* Deletes everything in the directory fd on device dev, not crossing into
   other filesystems (the new root and moved mounts), as util-linux's
   switch_root does to free the initramfs memory. */
static void
delete_tree (int dfd, dev_t dev)
{
  cleanup_dir DIR *dir = fdopendir (dfd);
  struct dirent *de;

  if (dir == NULL)
    {
      close (dfd);
      return;
    }
  while ((de = readdir (dir)) != NULL)
    {
      struct stat st;
      int isdir;

      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      if (fstatat (dirfd (dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != dev)
        continue;
      isdir = S_ISDIR (st.st_mode);
      if (isdir)
        {
          int sub
              = openat (dirfd (dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (sub >= 0)
            delete_tree (sub, dev);
        }
      if (unlinkat (dirfd (dir), de->d_name, isdir ? AT_REMOVEDIR : 0) < 0 && errno != EBUSY)
        log_debug ("switch_root: unlink /%s: %m", de->d_name);
    }
}

int
mnt_switch_root (struct err **err)
{
  struct stat root_st;
  char target[64];
  int rootfd;

  for (size_t i = 0; i < sizeof moved_mounts / sizeof moved_mounts[0]; i++)
    {
      int r;
      snprintf (target, sizeof target, NEWROOT "%s", moved_mounts[i]);
      if ((r = mkdir_p (target, 0755, err)) < 0)
        return r;
      if (mount (moved_mounts[i], target, NULL, MS_MOVE, NULL) < 0)
        return err_make (err, errno, "move %s to %s", moved_mounts[i], target);
    }

  if (chdir (NEWROOT) < 0)
    return err_make (err, errno, "chdir " NEWROOT);
  rootfd = open ("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0 || fstat (rootfd, &root_st) < 0)
    return err_make (err, errno, "open initramfs root");
  /* delete_tree takes ownership of rootfd. */
  delete_tree (rootfd, root_st.st_dev);

  if (mount (".", "/", NULL, MS_MOVE, NULL) < 0)
    return err_make (err, errno, "move " NEWROOT " to /");
  if (chroot (".") < 0)
    return err_make (err, errno, "chroot " NEWROOT);
  if (chdir ("/") < 0)
    return err_make (err, errno, "chdir /");
  return 0;
}

void
mnt_thaw (void)
{
  static const char *const paths[] = { UPPER_FS, "/" };
  unsigned count = 0;

  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
    {
      /* Opening a directory does not write, so it works while frozen. */
      cleanup_close int fd = open (paths[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        continue;
      for (int k = 0; k < 64 && ioctl (fd, FITHAW, 0) == 0; k++)
        count++;
    }
  if (count > 0)
    log_warn ("thawed %u frozen filesystems before stopping", count);
}

void
mnt_teardown (void)
{
  /* Unmount in reverse mount order; what is busy is detached, and the root
     is remounted read-only so a disk upper layer is clean. */
  cleanup_free char *mounts = read_file ("/proc/self/mounts", 1 << 20, NULL, NULL);
  char *targets[256];
  size_t n = 0;

  sync ();
  for (char *line = mounts, *save = NULL;
       mounts && (line = strtok_r (line, "\n", &save)) && n < 256; line = NULL)
    {
      char *sp1 = strchr (line, ' '), *sp2;
      if (sp1 == NULL || (sp2 = strchr (sp1 + 1, ' ')) == NULL)
        continue;
      *sp2 = '\0';
      targets[n++] = sp1 + 1;
    }
  while (n-- > 0)
    if (strcmp (targets[n], "/") != 0)
      umount2 (targets[n], MNT_DETACH);
  mount (NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
  sync ();
}
