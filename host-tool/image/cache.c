/* SPDX-License-Identifier: Apache-2.0 */
/* The cache: entries $STATE/images/<id>/ (rootfs.<format>, image.json),
   looked up by id or unique prefix, listed, removed; and imports, each
   built in a hidden temp entry and renamed into place only when complete,
   so no reader ever sees half an entry. */
#include "image/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "num.h"
#include "sys/fs.h"

/* Writes and fsyncs a file of the temp entry: no tmp file and rename of
   its own (fs_write_atomic), the entry is renamed into place as a whole. */
static int
write_text (const char *path, const char *text, struct err **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  size_t len = strlen (text), done = 0;
  ssize_t n;

  if (fd < 0)
    return err_make (err, errno, "create %s", path);
  while (done < len)
    {
      n = TEMP_FAILURE_RETRY (write (fd, text + done, len - done));
      if (n < 0)
        return err_make (err, errno, "write %s", path);
      done += (size_t) n;
    }
  if (fsync (fd) < 0)
    return err_make (err, errno, "fsync %s", path);
  return 0;
}

static int
images_dir (const char *root, char **out, struct err **err)
{
  if (image_path_join (out, root, "images", err) < 0)
    return -1;
  if (mkdir (root, 0755) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", root);
  if (mkdir (*out, 0755) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", *out);
  return 0;
}

/* Temp dirs are ".tmp-<pid>-XXXXXX"; one whose importer is gone is the
   remains of an interrupted import. */
static void
sweep_stale (const char *images)
{
  cleanup_dir DIR *d = opendir (images);
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL)
    {
      cleanup_free char *p = NULL;
      const char *num = e->d_name + 5;
      size_t digits;
      uint64_t pid;

      if (strncmp (e->d_name, ".tmp-", 5) != 0)
        continue;
      digits = strspn (num, "0123456789");
      if (num[digits] != '-' || num_parse_u64 (num, digits, INT_MAX, &pid) < 0 || pid == 0
          || (kill ((pid_t) pid, 0) == 0 || errno == EPERM))
        continue;
      if (image_path_join (&p, images, e->d_name, NULL) == 0)
        fs_rmtree (p, NULL);
    }
}

static int
image_load_dir (const char *dir, struct image **out, struct err **err)
{
  cleanup_image struct image *img = calloc (1, sizeof *img);
  cleanup_free char *meta = NULL, *text = NULL;
  size_t len;
  char name[32];

  if (img == NULL)
    return err_make (err, ENOMEM, "image");
  if (image_path_join (&meta, dir, "image.json", err) < 0
      || image_read_bounded (meta, OCI_JSON_MAX, &text, &len, err) < 0
      || image_meta_parse (text, len, img, err) < 0)
    return -1;
  snprintf (name, sizeof name, "rootfs.%s", image_format_name (img->format));
  if ((img->dir = strdup (dir)) == NULL || image_path_join (&img->rootfs, dir, name, err) < 0)
    return err_make (err, ENOMEM, "image");
  if (access (img->rootfs, R_OK) < 0)
    return err_make (err, errno, "image %.12s: %s", img->id, img->rootfs);
  *out = steal_ptr (&img);
  return 0;
}

static bool
hex_prefix_p (const char *s)
{
  size_t n = strlen (s);

  if (n < 4 || n > IMAGE_ID_LEN)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* Finds the one cache entry whose id starts with prefix: 1 found, 0 none. */
static int
find_id (const char *images, const char *prefix, char id[IMAGE_ID_LEN + 1], struct err **err)
{
  cleanup_dir DIR *d = NULL;
  struct dirent *e;
  size_t n = strlen (prefix);
  int found = 0;

  if (strncmp (prefix, "sha256:", 7) == 0)
    return find_id (images, prefix + 7, id, err);
  if (!hex_prefix_p (prefix))
    return 0;
  d = opendir (images);
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", images);
  while ((e = readdir (d)) != NULL)
    if (strlen (e->d_name) == IMAGE_ID_LEN && strncmp (e->d_name, prefix, n) == 0)
      {
        if (found++)
          return err_make (err, 0, "image id '%s' is ambiguous", prefix);
        memcpy (id, e->d_name, IMAGE_ID_LEN + 1);
      }
  return found;
}

int
image_lookup (const char *root, const char *id, struct image **out, struct err **err)
{
  cleanup_free char *images = NULL, *dir = NULL;
  char full[IMAGE_ID_LEN + 1];
  int r;

  if (image_path_join (&images, root, "images", err) < 0)
    return -1;
  r = find_id (images, id, full, err);
  if (r < 0)
    return r;
  if (r == 0)
    return err_make (err, ENOENT, "no image '%s' in %s", id, images);
  if (image_path_join (&dir, images, full, err) < 0)
    return -1;
  return image_load_dir (dir, out, err);
}

/* The cache entry for id exists: a hit, if it has the format asked for. */
static int
cache_hit (const char *dir, enum image_format fmt, struct image **out, struct err **err)
{
  cleanup_image struct image *img = NULL;

  if (image_load_dir (dir, &img, err) < 0)
    return -1;
  if (img->format != fmt)
    return err_make (err, EEXIST,
                     "image %.12s is cached as %s; remove it (chvm image rm %.12s) "
                     "to import it as %s",
                     img->id, image_format_name (img->format), img->id, image_format_name (fmt));
  *out = steal_ptr (&img);
  return 0;
}

/* ---- import --------------------------------------------------------------- */

/* One import under way: its hidden temp entry and what it found out about
   the source. */
struct import
{
  char *images;               /* root/images */
  char *tmp;                  /* images/.tmp-<pid>-XXXXXX; removed unless renamed into place */
  char *log;                  /* tmp/tools.log */
  char *layout;               /* the OCI layout umoci unpacks: the source's, or tmp/oci */
  char *ref;                  /* its tag there */
  char *source;               /* the source as image.json records it */
  char hex[IMAGE_ID_LEN + 1]; /* the manifest digest: the image id */
};

static void
import_clear (struct import *im)
{
  if (im->tmp != NULL)
    fs_rmtree (im->tmp, NULL);
  free (im->images);
  free (im->tmp);
  free (im->log);
  free (im->layout);
  free (im->ref);
  free (im->source);
}
#define cleanup_import __attribute__ ((cleanup (import_clear)))

/* Makes the temp entry im->tmp (and im->log in it), first sweeping away
   what interrupted imports left. */
static int
import_temp_entry (const char *root, struct import *im, struct err **err)
{
  if (images_dir (root, &im->images, err) < 0)
    return -1;
  sweep_stale (im->images);
  if (asprintf (&im->tmp, "%s/.tmp-%d-XXXXXX", im->images, (int) getpid ()) < 0)
    {
      im->tmp = NULL;
      return err_make (err, ENOMEM, "path");
    }
  if (mkdtemp (im->tmp) == NULL)
    {
      int r = err_make (err, errno, "mkdtemp %s", im->tmp);

      free (steal_ptr (&im->tmp));
      return r;
    }
  /* mkdtemp makes it 0700; the entry it becomes is for every user. */
  if (chmod (im->tmp, 0755) < 0)
    return err_make (err, errno, "chmod %s", im->tmp);
  return image_path_join (&im->log, im->tmp, "tools.log", err);
}

/* The first steps of an import: parse source, make the temp entry, find
   the layout to unpack and the image id. */
static int
import_begin (const char *root, const char *source, image_progress_fn progress, void *ctx,
              struct import *im, struct err **err)
{
  struct image_source src;
  int r;

  if (image_source_parse (source, &src, err) < 0)
    return -1;
  r = import_temp_entry (root, im, err);
  if (r == 0)
    r = image_layout_prepare (&src, im->tmp, im->log, progress, ctx, &im->layout, &im->ref, im->hex,
                              err);
  if (r == 0)
    r = image_source_canonical (&src, &im->source, err);
  image_source_clear (&src);
  return r;
}

/* Unpacks the image into tmp/rootfs, makes tmp/rootfs.<fmt> of it and
   writes tmp/image.json: a complete entry, still hidden. */
static int
import_build (struct import *im, enum image_format fmt, image_progress_fn progress, void *ctx,
              struct image **out, struct err **err)
{
  cleanup_image struct image *img = calloc (1, sizeof *img);
  cleanup_free char *tree = NULL, *rootfs = NULL, *meta = NULL, *meta_path = NULL;
  char rootfs_name[32];
  size_t n_layers;
  struct stat st;

  if (img == NULL)
    return err_make (err, ENOMEM, "image");
  memcpy (img->id, im->hex, sizeof im->hex);
  img->format = fmt;
  img->source = steal_ptr (&im->source);
  if (image_layout_config (im->layout, im->hex, &img->config, &n_layers, err) < 0)
    return err_wrap (err, "image %.12s", im->hex);

  if (image_path_join (&tree, im->tmp, "rootfs", err) < 0)
    return -1;
  image_progress (progress, ctx, "unpacking %zu layer%s of %.12s (umoci)", n_layers,
                  n_layers == 1 ? "" : "s", im->hex);
  if (image_unpack (im->layout, im->ref, tree, im->log, progress, ctx, err) < 0)
    return -1;

  snprintf (rootfs_name, sizeof rootfs_name, "rootfs.%s", image_format_name (fmt));
  if (image_path_join (&rootfs, im->tmp, rootfs_name, err) < 0)
    return -1;
  image_progress (progress, ctx, "making %s (mkfs.%s)", rootfs_name, image_format_name (fmt));
  if (image_rootfs_make (fmt, tree, rootfs, im->log, err) < 0)
    return -1;
  /* The tree and any converted layout are no longer needed. */
  fs_rmtree (tree, NULL);
  if (im->layout != NULL && strncmp (im->layout, im->tmp, strlen (im->tmp)) == 0)
    fs_rmtree (im->layout, NULL);
  unlink (im->log);
  if (stat (rootfs, &st) < 0)
    return err_make (err, errno, "stat %s", rootfs);
  img->rootfs_size = (uint64_t) st.st_size;
  img->imported = (int64_t) time (NULL);
  if (image_meta_to_json (img, &meta, err) < 0
      || image_path_join (&meta_path, im->tmp, "image.json", err) < 0
      || write_text (meta_path, meta, err) < 0)
    return -1;
  *out = steal_ptr (&img);
  return 0;
}

/* Renames the complete temp entry to final: it appears in one step. */
static int
import_commit (struct import *im, const char *final, const struct image *img, double t0,
               image_progress_fn progress, void *ctx, struct image **out, bool *hit,
               struct err **err)
{
  if (rename (im->tmp, final) < 0)
    {
      if (errno != EEXIST && errno != ENOTEMPTY)
        return err_make (err, errno, "rename %s", final);
      /* Another import of the same image finished first. */
      if (cache_hit (final, img->format, out, err) < 0)
        return -1;
      *hit = true;
      return 0;
    }
  free (steal_ptr (&im->tmp));
  image_progress (progress, ctx, "imported %.12s: rootfs.%s, %llu MiB, %.1f s", img->id,
                  image_format_name (img->format), (unsigned long long) (img->rootfs_size >> 20),
                  (clock_now_ms () - t0) / 1000);
  return image_load_dir (final, out, err);
}

int
image_import (const char *root, const char *source, enum image_format fmt,
              image_progress_fn progress, void *ctx, struct image **out, bool *hit,
              struct err **err)
{
  cleanup_import struct import im = { 0 };
  cleanup_image struct image *img = NULL;
  cleanup_free char *final = NULL;
  double t0 = clock_now_ms ();
  struct stat st;

  *hit = false;
  if (import_begin (root, source, progress, ctx, &im, err) < 0)
    return -1;
  if (image_path_join (&final, im.images, im.hex, err) < 0)
    return -1;
  if (stat (final, &st) == 0)
    {
      if (cache_hit (final, fmt, out, err) < 0)
        return -1;
      *hit = true;
      image_progress (progress, ctx, "image %.12s already imported (cache hit)", im.hex);
      return 0;
    }
  if (import_build (&im, fmt, progress, ctx, &img, err) < 0)
    return -1;
  return import_commit (&im, final, img, t0, progress, ctx, out, hit, err);
}

int
image_resolve (const char *root, const char *ref, image_progress_fn progress, void *ctx,
               struct image **out, struct err **err)
{
  cleanup_free char *images = NULL;
  char id[IMAGE_ID_LEN + 1];
  bool hit;
  int r;

  if (image_path_join (&images, root, "images", err) < 0)
    return -1;
  if (strncmp (ref, "sha256:", 7) == 0)
    return image_lookup (root, ref, out, err);
  /* A path that exists is a source even if its name looks like an id. */
  if (hex_prefix_p (ref) && access (ref, F_OK) < 0)
    {
      r = find_id (images, ref, id, err);
      if (r < 0)
        return r;
      if (r == 0)
        return err_make (err, ENOENT, "no image '%s' in %s", ref, images);
      return image_lookup (root, id, out, err);
    }
  return image_import (root, ref, IMAGE_EXT4, progress, ctx, out, &hit, err);
}

static int
cmp_imported (const void *a, const void *b)
{
  const struct image *x = *(struct image *const *) a, *y = *(struct image *const *) b;

  return x->imported < y->imported ? 1 : x->imported > y->imported ? -1 : strcmp (x->id, y->id);
}

int
image_list (const char *root, struct image ***out, size_t *n, struct err **err)
{
  cleanup_free char *images = NULL;
  cleanup_dir DIR *d = NULL;
  struct image **v = NULL;
  size_t cnt = 0, cap = 0;
  struct dirent *e;

  *out = NULL;
  *n = 0;
  if (image_path_join (&images, root, "images", err) < 0)
    return -1;
  d = opendir (images);
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", images);
  while ((e = readdir (d)) != NULL)
    {
      cleanup_free char *dir = NULL;
      struct image *img = NULL;

      /* Only complete entries: temp dirs start with '.'. */
      if (strlen (e->d_name) != IMAGE_ID_LEN || !hex_prefix_p (e->d_name))
        continue;
      if (image_path_join (&dir, images, e->d_name, err) < 0)
        goto fail;
      if (image_load_dir (dir, &img, NULL) < 0)
        continue; /* damaged entries are skipped, not fatal for a listing */
      if (cnt == cap)
        {
          struct image **nv = reallocarray (v, cap ? cap * 2 : 8, sizeof *v);
          if (nv == NULL)
            {
              image_free (img);
              err_make (err, ENOMEM, "image list");
              goto fail;
            }
          v = nv;
          cap = cap ? cap * 2 : 8;
        }
      v[cnt++] = img;
    }
  if (cnt > 0)
    qsort (v, cnt, sizeof *v, cmp_imported);
  *out = v;
  *n = cnt;
  return 0;

fail:
  image_list_free (v, cnt);
  return -1;
}

void
image_list_free (struct image **imgs, size_t n)
{
  for (size_t i = 0; i < n; i++)
    image_free (imgs[i]);
  free (imgs);
}

int
image_find_id (const char *root, const char *id, char out[IMAGE_ID_LEN + 1], struct err **err)
{
  cleanup_free char *images = NULL;
  int r;

  if (image_path_join (&images, root, "images", err) < 0)
    return -1;
  r = find_id (images, id, out, err);
  if (r == 0)
    return err_make (err, ENOENT, "no image '%s'", id);
  return r < 0 ? r : 0;
}

int
image_remove (const char *root, const char *id, char removed[IMAGE_ID_LEN + 1], struct err **err)
{
  cleanup_free char *images = NULL, *dir = NULL, *doomed = NULL;
  int r;

  if (image_path_join (&images, root, "images", err) < 0)
    return -1;
  r = find_id (images, id, removed, err);
  if (r < 0)
    return r;
  if (r == 0)
    return err_make (err, ENOENT, "no image '%s'", id);
  /* Rename out of sight first, so no reader sees a half-deleted entry. */
  if (image_path_join (&dir, images, removed, err) < 0
      || asprintf (&doomed, "%s/.tmp-%d-rm-%s", images, (int) getpid (), removed) < 0)
    return err_make (err, ENOMEM, "path");
  if (rename (dir, doomed) < 0)
    return err_make (err, errno, "rename %s", dir);
  return fs_rmtree (doomed, err);
}
