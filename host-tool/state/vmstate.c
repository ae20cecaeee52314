/* SPDX-License-Identifier: Apache-2.0 */
/* The state store: the root, its lock, each VM's directory and vm.json,
   the list of VMs, and which of them use an image. */
#include "state/vmstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "sys/fs.h"

#define VM_JSON_MAX (1 << 20)

int
vmstate_root (const char *opt, char *out, size_t len, struct err **err)
{
  const char *env = getenv ("CHVM_STATE_DIR");
  const char *xdg = getenv ("XDG_STATE_HOME"), *home = getenv ("HOME");
  char vms[VM_PATH_MAX];
  int n;

  if (opt != NULL && *opt)
    n = snprintf (out, len, "%s", opt);
  else if (env != NULL && *env)
    n = snprintf (out, len, "%s", env);
  else if (geteuid () == 0)
    n = snprintf (out, len, "/var/lib/chvm");
  else if (xdg != NULL && *xdg)
    n = snprintf (out, len, "%s/chvm", xdg);
  else if (home != NULL)
    n = snprintf (out, len, "%s/.local/state/chvm", home);
  else
    return err_make (err, 0, "no state directory: set CHVM_STATE_DIR");
  if (n < 0 || (size_t) n >= len)
    return err_make (err, ENAMETOOLONG, "state directory path");
  if (out[0] != '/')
    return err_make (err, 0, "state directory '%s' must be an absolute path", out);
  n = snprintf (vms, sizeof vms, "%s/vms", out);
  if (n < 0 || (size_t) n >= sizeof vms)
    return err_make (err, ENAMETOOLONG, "state directory path");
  return fs_mkdir_p (vms, 0700, err);
}

int
vmstate_lock (const char *root, int timeout_ms, struct err **err)
{
  cleanup_close int fd = -1;
  char path[VM_PATH_MAX];

  if ((size_t) snprintf (path, sizeof path, "%s/lock", root) >= sizeof path)
    return err_make (err, ENAMETOOLONG, "lock path");
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  if (fs_flock_wait (fd, timeout_ms) < 0)
    {
      if (errno == ETIMEDOUT)
        return err_make (err, 0, "another chvm command holds %s (waited %d ms)", path, timeout_ms);
      return err_make (err, errno, "flock %s", path);
    }
  return steal_fd (&fd);
}

int
vmstate_dir (const char *root, const char *name, char *out, size_t len, struct err **err)
{
  int n;

  if (vm_name_check (name, err) < 0)
    return -1;
  n = snprintf (out, len, "%s/vms/%s", root, name);
  if (n < 0 || (size_t) n >= len)
    return err_make (err, ENAMETOOLONG, "VM directory path");
  return 0;
}

int
vmrec_load (const char *root, const char *name, struct vm_record *r, struct err **err)
{
  char dir[VM_PATH_MAX], path[VM_PATH_MAX + 16];
  cleanup_free char *buf = NULL;
  size_t got = 0;

  if (vmstate_dir (root, name, dir, sizeof dir, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/vm.json", dir);
  if (fs_read_small_regular (path, VM_JSON_MAX, &buf, &got, err) < 0)
    {
      if (err != NULL && *err != NULL && (*err)->status == ENOENT)
        {
          err_release (err);
          return err_make (err, ENOENT, "no such VM '%s'", name);
        }
      return -1;
    }
  if (vmrec_from_json (buf, got, r, err) < 0)
    return err_wrap (err, "%s", path);
  if (strcmp (r->name, name) != 0)
    return err_make (err, 0, "%s: names VM '%s'", path, r->name);
  return 0;
}

int
vmrec_save (const char *root, const struct vm_record *r, struct err **err)
{
  char dir[VM_PATH_MAX], path[VM_PATH_MAX + 16];
  cleanup_free char *text = NULL;

  if (vmstate_dir (root, r->name, dir, sizeof dir, err) < 0 || vmrec_to_json (r, &text, err) < 0
      || text == NULL)
    return -1;
  snprintf (path, sizeof path, "%s/vm.json", dir);
  return fs_write_atomic (path, text, strlen (text), 0600, err);
}

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

void
vmstate_list_free (char **names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (names[i]);
  free (names);
}

int
vmstate_list (const char *root, char ***names, size_t *n, struct err **err)
{
  char path[VM_PATH_MAX];
  cleanup_dir DIR *d = NULL;
  struct dirent *de;
  char **v = NULL;
  size_t cnt = 0, cap = 0;

  *names = NULL;
  *n = 0;
  snprintf (path, sizeof path, "%s/vms", root);
  d = opendir (path);
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", path);
  /* readdir_r is deprecated; a DIR* of our own is not shared by threads. */
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      if (vm_name_check (de->d_name, NULL) < 0)
        continue;
      if (cnt == cap)
        {
          char **nv = realloc (v, (cap = cap ? cap * 2 : 16) * sizeof *v);
          if (nv == NULL)
            {
              vmstate_list_free (v, cnt);
              return err_make (err, ENOMEM, "list VMs");
            }
          v = nv;
        }
      if ((v[cnt] = strdup (de->d_name)) == NULL)
        {
          vmstate_list_free (v, cnt);
          return err_make (err, ENOMEM, "list VMs");
        }
      cnt++;
    }
  if (cnt > 1)
    qsort (v, cnt, sizeof *v, cmp_str);
  *names = v;
  *n = cnt;
  return 0;
}

static bool
path_below (const char *path, const char *dir, size_t dl)
{
  return strncmp (path, dir, dl) == 0 && path[dl] == '/';
}

int
vmstate_image_users (const char *root, const char *image_dir, char *out, size_t len, size_t *n,
                     struct err **err)
{
  size_t dl = strlen (image_dir), used = 0;
  char real[PATH_MAX], rootfs[PATH_MAX];
  char **names;
  size_t cnt;

  *n = 0;
  if (len > 0)
    out[0] = '\0';
  while (dl > 1 && image_dir[dl - 1] == '/')
    dl--;
  /* The same entry by another path (a symlinked state dir) counts too. */
  if (realpath (image_dir, real) == NULL)
    real[0] = '\0';
  if (vmstate_list (root, &names, &cnt, err) < 0)
    return -1;
  for (size_t i = 0; i < cnt; i++)
    {
      cleanup_free struct vm_record *r = malloc (sizeof *r);
      cleanup_err struct err *e = NULL;
      bool uses;
      int w;

      if (r == NULL)
        {
          vmstate_list_free (names, cnt);
          return err_make (err, ENOMEM, "list VMs");
        }
      /* A vm.json that cannot be read may name the image: count it. */
      uses = vmrec_load (root, names[i], r, &e) < 0 || path_below (r->rootfs, image_dir, dl)
             || (real[0] && realpath (r->rootfs, rootfs) != NULL
                 && path_below (rootfs, real, strlen (real)));
      if (!uses)
        continue;
      w = snprintf (out + used, len > used ? len - used : 0, "%s%s", *n ? ", " : "", names[i]);
      if (w > 0)
        used += (size_t) w;
      if (used >= len && len > 4)
        memcpy (out + len - 4, "...", 4); /* truncated list */
      (*n)++;
    }
  vmstate_list_free (names, cnt);
  return 0;
}
