/* SPDX-License-Identifier: Apache-2.0 */
/* Snapshotter mounts -> a cached ext4 root disk (rootfs.h). */
#include "rootfs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "names.h"

void
rootfs_layers_free (char **dirs, size_t n)
{
  for (size_t i = 0; dirs != NULL && i < n; i++)
    free (dirs[i]);
  free (dirs);
}

/* Splits an overlay lowerdir value (':'-separated, top first). */
static int
split_lower (const char *v, char ***dirs, size_t *n, struct err **err)
{
  const char *p = v;

  while (*p != '\0')
    {
      size_t len = strcspn (p, ":");

      if (len == 0 || *n >= ROOTFS_LAYERS_MAX)
        return err_make (err, EINVAL, "overlay lowerdir '%s': an empty entry or over %d layers", v,
                         ROOTFS_LAYERS_MAX);
      if (((*dirs)[(*n)++] = strndup (p, len)) == NULL)
        return err_make (err, ENOMEM, "lowerdir");
      p += len + (p[len] == ':');
    }
  return 0;
}

int
rootfs_layers (Containerd__Types__Mount *const *mounts, size_t n, char ***dirs, size_t *n_dirs,
               struct err **err)
{
  const Containerd__Types__Mount *m;
  int r = 0;

  *n_dirs = 0;
  *dirs = NULL;
  if (n == 0)
    return 0;
  m = mounts[0];
  if (n > 1)
    return err_make (err, EINVAL, "%zu rootfs mounts (one overlay or bind is supported)", n);
  if ((*dirs = calloc (ROOTFS_LAYERS_MAX + 1, sizeof **dirs)) == NULL)
    return err_make (err, ENOMEM, "layers");
  if (strcmp (m->type, "bind") == 0)
    {
      if (m->source[0] != '/' || ((*dirs)[(*n_dirs)++] = strdup (m->source)) == NULL)
        r = err_make (err, EINVAL, "bind rootfs source '%s'", m->source);
    }
  else if (strcmp (m->type, "overlay") == 0)
    {
      for (size_t i = 0; i < m->n_options && r == 0; i++)
        if (strncmp (m->options[i], "lowerdir=", 9) == 0)
          r = split_lower (m->options[i] + 9, dirs, n_dirs, err);
      if (r == 0 && *n_dirs == 0)
        r = err_make (err, EINVAL, "overlay rootfs without lowerdir");
      for (size_t i = 0; i < *n_dirs && r == 0; i++)
        if ((*dirs)[i][0] != '/')
          r = err_make (err, EINVAL, "overlay lowerdir '%s' is not absolute", (*dirs)[i]);
    }
  else
    r = err_make (err, EINVAL, "rootfs mount type '%s' (overlay or bind are supported)", m->type);
  if (r < 0)
    {
      rootfs_layers_free (*dirs, *n_dirs);
      *dirs = NULL;
      *n_dirs = 0;
    }
  return r;
}

/* The cache key of a layer chain: each directory's path, device, inode and
   ctime (a snapshot id reused after containerd's root was wiped is another
   directory). */
static int
chain_key (char *const *dirs, size_t n, char out[65], struct err **err)
{
  cleanup_free char *text = NULL;
  size_t cap = 0;
  FILE *f = open_memstream (&text, &cap);

  if (f == NULL)
    return err_make (err, ENOMEM, "key");
  for (size_t i = 0; i < n; i++)
    {
      struct stat st;

      if (stat (dirs[i], &st) < 0)
        {
          fclose (f);
          return err_make (err, errno, "layer %s", dirs[i]);
        }
      fprintf (f, "%s %llu %llu %lld.%ld\n", dirs[i], (unsigned long long) st.st_dev,
               (unsigned long long) st.st_ino, (long long) st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    }
  fclose (f);
  const char *parts[] = { "chvm-shim-rootfs-v1", text };
  names_hash_hex (parts, 2, out);
  return 0;
}

/* Merges the layers read-only at dir (one layer is the tree itself). */
static int
merge_layers (char *const *dirs, size_t n, const char *dir, struct err **err)
{
  cleanup_free char *opts = NULL;
  size_t cap = 0;
  FILE *f = open_memstream (&opts, &cap);

  if (f == NULL)
    return err_make (err, ENOMEM, "overlay options");
  fputs ("lowerdir=", f);
  for (size_t i = 0; i < n; i++)
    fprintf (f, "%s%s", i ? ":" : "", dirs[i]);
  fclose (f);
  /* Mount data is one page. */
  if (strlen (opts) > 4000)
    return err_make (err, E2BIG, "overlay options of %zu bytes (%zu layers)", strlen (opts), n);
  if (mkdir (dir, 0700) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", dir);
  if (mount ("overlay", dir, "overlay", MS_RDONLY, opts) < 0)
    return err_make (err, errno, "mount the %zu layers at %s", n, dir);
  return 0;
}

static void
progress_log (void *ctx, const char *msg)
{
  (void) ctx;
  log_info ("rootfs: %s", msg);
}

int
rootfs_prepare (const char *state_root, const char *bundle, Containerd__Types__Mount *const *mounts,
                size_t n, struct image **out, bool *built, struct err **err)
{
  cleanup_free char *merged = NULL, *own = NULL, *source = NULL;
  struct oci_config none = { .workdir = (char *) "", .user = (char *) "" };
  char **dirs = NULL, key[65];
  const char *tree;
  size_t n_dirs;
  bool hit = false;
  int r;

  if (rootfs_layers (mounts, n, &dirs, &n_dirs, err) < 0)
    return -1;
  if (n_dirs == 0 && asprintf (&own, "%s/rootfs", bundle) < 0)
    own = NULL;
  r = n_dirs == 0 ? (own == NULL ? err_make (err, ENOMEM, "path") : chain_key (&own, 1, key, err))
                  : chain_key (dirs, n_dirs, key, err);
  if (r == 0 && image_lookup (state_root, key, out, NULL) == 0)
    {
      *built = false;
      rootfs_layers_free (dirs, n_dirs);
      return 0;
    }
  if (r == 0
      && (asprintf (&merged, "%s/chvm-layers", bundle) < 0
          || asprintf (&source, "containerd:%s", n_dirs ? dirs[0] : own) < 0))
    r = err_make (err, ENOMEM, "path");
  tree = n_dirs == 0 ? own : n_dirs == 1 ? dirs[0] : merged;
  if (r == 0 && n_dirs > 1)
    r = merge_layers (dirs, n_dirs, merged, err);
  if (r == 0)
    r = image_import_tree (state_root, key, tree, source, &none, progress_log, NULL, out, &hit,
                           err);
  if (n_dirs > 1 && merged != NULL)
    {
      umount2 (merged, MNT_DETACH);
      rmdir (merged);
    }
  rootfs_layers_free (dirs, n_dirs);
  *built = !hit;
  return r;
}
