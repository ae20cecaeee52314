/* SPDX-License-Identifier: Apache-2.0 */
/* The root filesystem: unpack the image's layers with umoci, then make a
   read-only ext4 (sized from the unpacked tree) or erofs of the tree. */
#include "image/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

/* Space and inodes the unpacked tree needs in ext4 (4 KiB blocks); nftw
   has no context argument, hence the file-scope counters. */
static uint64_t tree_bytes, tree_inodes;
static double tree_inodes_linked;

static int
measure_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) path;
  (void) flag;
  (void) ftw;
  uint64_t blocks = ((uint64_t) st->st_size + 4095) / 4096 * 4096;

  /* Hard links share their blocks (Debian's mesa drivers are one 25 MB
     file under a dozen names): each link counts its share. */
  if (S_ISREG (st->st_mode) && st->st_nlink > 1)
    {
      tree_inodes_linked += 1.0 / (double) st->st_nlink;
      tree_bytes += blocks / st->st_nlink;
      return 0;
    }
  tree_inodes++;
  if (S_ISREG (st->st_mode) || S_ISDIR (st->st_mode)
      || (S_ISLNK (st->st_mode) && st->st_size >= 60))
    tree_bytes += blocks;
  return 0;
}

static int
measure_tree (const char *dir, uint64_t *bytes, uint64_t *inodes, struct err **err)
{
  tree_bytes = tree_inodes = 0;
  tree_inodes_linked = 0;
  if (nftw (dir, measure_entry, 64, FTW_PHYS) < 0)
    return err_make (err, errno, "measure %s", dir);
  *bytes = tree_bytes;
  *inodes = tree_inodes + (uint64_t) tree_inodes_linked + 1;
  return 0;
}

static int
make_ext4 (const char *tree, const char *out, const char *log, struct err **err)
{
  uint64_t bytes = 0, inodes = 0, size;
  char size_k[32], n_inodes[32];

  if (measure_tree (tree, &bytes, &inodes, err) < 0)
    return -1;
  /* Headroom for ext4 metadata (inode tables at 256 bytes an inode, bitmaps,
     directory index blocks) and for the root that writes nothing: the VM
     mounts it read-only, so a margin only has to make mkfs succeed. */
  inodes += inodes / 8 + 1024;
  size = bytes + bytes / 10 + inodes * 256 + (32ull << 20);
  for (int attempt = 0; attempt < 2; attempt++)
    {
      const char *argv[] = { "mkfs.ext4", "-q",           "-F", "-t", "ext4", "-L",   "chvm-root",
                             "-O",        "^has_journal", "-m", "0",  "-b",   "4096", "-N",
                             n_inodes,    "-d",           tree, out,  size_k, NULL };

      snprintf (n_inodes, sizeof n_inodes, "%llu", (unsigned long long) inodes);
      snprintf (size_k, sizeof size_k, "%lluk", (unsigned long long) (size >> 10));
      unlink (out);
      if (image_run_tool (argv, log, err) == 0)
        return 0;
      if (attempt == 1)
        return -1;
      /* Our estimate was short (e.g. many large directories): retry once
         with half as much again before giving up. */
      err_release (err);
      size += size / 2;
    }
  return -1;
}

int
image_unpack (const char *layout, const char *ref, const char *tree, const char *log,
              image_progress_fn progress, void *ctx, struct err **err)
{
  cleanup_free char *image_ref = NULL;
  bool rootless = geteuid () != 0;

  if (asprintf (&image_ref, "%s:%s", layout, ref) < 0)
    return err_make (err, ENOMEM, "path");
  if (rootless)
    image_progress (progress, ctx, "not root: file owners in the image are not kept");
  const char *argv[] = { "umoci",
                         "raw",
                         "unpack",
                         "--image",
                         image_ref,
                         rootless ? "--rootless" : tree,
                         rootless ? tree : NULL,
                         NULL };
  return image_run_tool (argv, log, err);
}

int
image_rootfs_pad (const char *path, struct err **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  off_t want;

  if (fd < 0 || fstat (fd, &st) < 0)
    return err_make (err, errno, "root image %s", path);
  if (!S_ISREG (st.st_mode))
    return err_make (err, 0, "root image %s is not a regular file", path);
  if (st.st_size % IMAGE_ROOTFS_ALIGN == 0)
    return 0;
  /* A hole past the filesystem's end: neither ext4 nor erofs reads it. */
  want = (st.st_size / IMAGE_ROOTFS_ALIGN + 1) * IMAGE_ROOTFS_ALIGN;
  if (ftruncate (fd, want) < 0 || fsync (fd) < 0)
    return err_make (err, errno, "padding root image %s to a multiple of 2 MiB", path);
  return 0;
}

int
image_rootfs_make (enum image_format fmt, const char *tree, const char *out, const char *log,
                   struct err **err)
{
  if (fmt == IMAGE_EXT4)
    {
      if (make_ext4 (tree, out, log, err) < 0)
        return -1;
    }
  else
    {
      /* erofs-utils 1.5 (Debian 12) cannot set a volume label (-L came in
         1.6), so an erofs root is found by its disk serial only. */
      const char *argv[] = { "mkfs.erofs", "--quiet", out, tree, NULL };
      if (image_run_tool (argv, log, err) < 0)
        return -1;
    }
  return image_rootfs_pad (out, err);
}
