/* SPDX-License-Identifier: Apache-2.0 */
/* Cache entries made from a directory tree rather than an OCI image: a
   container's root filesystem as containerd's snapshotter lays it out
   (image_import_tree), and an entry sharing another's root disk with
   other exec fields (image_alias).  Both are built in a hidden temp entry
   and renamed into place whole, as image_import's are. */
#include "image/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "sys/fs.h"

/* root/images/.tmp-<pid>-XXXXXX (the name sweep_stale in cache.c knows)
   and root/images/<id>. */
static int
tree_entry_paths (const char *root, const char *id, char **tmp, char **final, struct err **err)
{
  cleanup_free char *images = NULL;

  if (strlen (id) != IMAGE_ID_LEN || strspn (id, "0123456789abcdef") != IMAGE_ID_LEN)
    return err_make (err, EINVAL, "image id '%s' is not 64 hex digits", id);
  if (image_path_join (&images, root, "images", err) < 0 || fs_mkdir_p (images, 0755, err) < 0
      || image_path_join (final, images, id, err) < 0)
    return -1;
  if (asprintf (tmp, "%s/.tmp-%d-XXXXXX", images, (int) getpid ()) < 0)
    {
      *tmp = NULL;
      return err_make (err, ENOMEM, "path");
    }
  if (mkdtemp (*tmp) == NULL || chmod (*tmp, 0755) < 0)
    {
      int r = err_make (err, errno, "mkdtemp %s", *tmp);

      free (steal_ptr (tmp));
      return r;
    }
  return 0;
}

/* Writes tmp/image.json for img and renames tmp to final; an entry that
   appeared meanwhile (another shim of the same image) wins. */
static int
tree_commit (const char *root, char **tmp, const char *final, struct image *img, struct image **out,
             struct err **err)
{
  cleanup_free char *meta = NULL, *path = NULL;

  if (image_meta_to_json (img, &meta, err) < 0
      || image_path_join (&path, *tmp, "image.json", err) < 0
      || fs_write_atomic (path, meta, strlen (meta), 0644, err) < 0)
    return -1;
  if (rename (*tmp, final) < 0 && errno != EEXIST && errno != ENOTEMPTY)
    return err_make (err, errno, "rename %s", final);
  if (access (*tmp, F_OK) < 0)
    free (steal_ptr (tmp));
  return image_lookup (root, img->id, out, err);
}

static void
tmp_clear (char **tmp)
{
  if (*tmp != NULL)
    fs_rmtree (*tmp, NULL);
  free (*tmp);
}
#define cleanup_tmp __attribute__ ((cleanup (tmp_clear)))

int
image_import_tree (const char *root, const char *id, const char *tree, const char *source,
                   const struct oci_config *config, image_progress_fn progress, void *ctx,
                   struct image **out, bool *hit, struct err **err)
{
  cleanup_tmp char *tmp = NULL;
  cleanup_free char *final = NULL, *rootfs = NULL, *log = NULL;
  struct image img
      = { .format = IMAGE_EXT4, .source = (char *) source, .config = (struct oci_config *) config };
  double t0 = clock_now_ms ();
  struct stat st;

  *hit = false;
  if (tree_entry_paths (root, id, &tmp, &final, err) < 0)
    return -1;
  if (stat (final, &st) == 0 && image_lookup (root, id, out, NULL) == 0)
    {
      *hit = true;
      return 0;
    }
  fs_rmtree (final, NULL); /* an entry without its files */
  if (image_path_join (&rootfs, tmp, "rootfs.ext4", err) < 0
      || image_path_join (&log, tmp, "tools.log", err) < 0)
    return -1;
  image_progress (progress, ctx, "making rootfs.ext4 of %s (mkfs.ext4)", tree);
  if (image_rootfs_make (IMAGE_EXT4, tree, rootfs, log, err) < 0)
    return -1;
  unlink (log);
  if (stat (rootfs, &st) < 0)
    return err_make (err, errno, "stat %s", rootfs);
  memcpy (img.id, id, IMAGE_ID_LEN + 1);
  img.rootfs_size = (uint64_t) st.st_size;
  img.imported = (int64_t) time (NULL);
  if (tree_commit (root, &tmp, final, &img, out, err) < 0)
    return -1;
  image_progress (progress, ctx, "made %.12s: %llu MiB in %.1f s", id,
                  (unsigned long long) (img.rootfs_size >> 20), (clock_now_ms () - t0) / 1000);
  return 0;
}

int
image_alias (const char *root, const struct image *base, const char *id, const char *source,
             const struct oci_config *config, struct image **out, struct err **err)
{
  cleanup_tmp char *tmp = NULL;
  cleanup_free char *final = NULL, *rootfs = NULL;
  struct image img = { .format = base->format,
                       .source = (char *) source,
                       .config = (struct oci_config *) config,
                       .rootfs_size = base->rootfs_size,
                       .imported = (int64_t) time (NULL) };
  char name[32];

  if (tree_entry_paths (root, id, &tmp, &final, err) < 0)
    return -1;
  memcpy (img.id, id, IMAGE_ID_LEN + 1);
  snprintf (name, sizeof name, "rootfs.%s", image_format_name (base->format));
  if (image_path_join (&rootfs, tmp, name, err) < 0)
    return -1;
  /* The root disk is read-only for every VM: one file, two names. */
  if (link (base->rootfs, rootfs) < 0)
    return err_make (err, errno, "link %s to %s", base->rootfs, rootfs);
  fs_rmtree (final, NULL); /* a leftover of the same container id */
  return tree_commit (root, &tmp, final, &img, out, err);
}
