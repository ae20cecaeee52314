/* SPDX-License-Identifier: Apache-2.0 */
#include "vm/template.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "path.h"
#include "state/vmstate.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/proc.h"
#include "sys/rand.h"

#define TEMPLATES "templates"
#define SHA256_TIMEOUT_MS 60000
/* Each clone's VMM (a uid of its own) maps memory: readable by all. */
#define TEMPLATE_FILE_MODE 0444

/* The manifest's string fields, by key. */
#define TEMPLATE_STRS(t)                                                                           \
  {                                                                                                \
    { "name", (t)->name, sizeof (t)->name }, { "backend", (t)->backend, sizeof (t)->backend },     \
        { "vmm_version", (t)->vmm_version, sizeof (t)->vmm_version },                              \
        { "kernel", (t)->kernel, sizeof (t)->kernel },                                             \
        { "kernel_sha256", (t)->kernel_sha256, sizeof (t)->kernel_sha256 },                        \
        { "initrd", (t)->initrd, sizeof (t)->initrd },                                             \
        { "initrd_sha256", (t)->initrd_sha256, sizeof (t)->initrd_sha256 },                        \
        { "image", (t)->image, sizeof (t)->image },                                                \
        { "image_id", (t)->image_id, sizeof (t)->image_id },                                       \
        { "rootfs", (t)->rootfs, sizeof (t)->rootfs },                                             \
        { "source_dir", (t)->source_dir, sizeof (t)->source_dir },                                 \
  }

struct str_field
{
  const char *key;
  char *dst;
  size_t len;
};

int
template_to_json (const struct template_info *t, char **out, struct err **err)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  const struct str_field strs[] = TEMPLATE_STRS ((struct template_info *) t);
  const char *s;

  if (o == NULL)
    return err_make (err, ENOMEM, "manifest.json");
  json_object_object_add (o, "version", json_object_new_int (1));
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    json_object_object_add (o, strs[i].key, json_object_new_string (strs[i].dst));
  json_object_object_add (o, "created", json_object_new_int64 (t->created));
  json_object_object_add (o, "cpus", json_object_new_int64 (t->cpus));
  json_object_object_add (o, "guest_ram", json_object_new_int64 ((int64_t) t->guest_ram));
  json_object_object_add (o, "memory_bytes", json_object_new_int64 ((int64_t) t->memory_bytes));
  json_object_object_add (o, "memory", json_object_new_string ("file"));
  json_object_object_add (o, "gid", json_object_new_int64 (t->gid));
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  *out = s ? strdup (s) : NULL;
  return *out ? 0 : err_make (err, ENOMEM, "manifest.json");
}

static int
get_i64 (struct json_object *o, const char *key, int64_t max, int64_t *out, struct err **err)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_int))
    return err_make (err, EINVAL, "manifest.json: \"%s\" is not an integer", key);
  errno = 0;
  *out = json_object_get_int64 (v);
  if (errno != 0 || *out < 0 || *out > max)
    return err_make (err, EINVAL, "manifest.json: \"%s\" out of range", key);
  return 0;
}

int
template_from_json (const char *text, size_t len, struct template_info *t, struct err **err)
{
  struct json_tokener *tok = len <= TEMPLATE_MANIFEST_MAX ? json_tokener_new () : NULL;
  cleanup_json struct json_object *o = NULL;
  const struct str_field strs[] = TEMPLATE_STRS (t);
  struct json_object *v;
  int64_t x;

  memset (t, 0, sizeof *t);
  if (tok == NULL)
    return err_make (err, EINVAL, "manifest.json: too large or out of memory");
  o = json_tokener_parse_ex (tok, text, (int) len);
  if (o != NULL && json_tokener_get_error (tok) != json_tokener_success)
    json_object_put (steal_ptr (&o));
  json_tokener_free (tok);
  if (o == NULL || !json_object_is_type (o, json_type_object))
    return err_make (err, EINVAL, "manifest.json: not a JSON object");
  if (get_i64 (o, "version", 1, &x, err) < 0 || x != 1)
    return err_make (err, EINVAL, "manifest.json: unknown version");
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    {
      const char *s;
      if (!json_object_object_get_ex (o, strs[i].key, &v)
          || !json_object_is_type (v, json_type_string))
        return err_make (err, EINVAL, "manifest.json: \"%s\" is not a string", strs[i].key);
      s = json_object_get_string (v);
      if ((size_t) json_object_get_string_len (v) != strlen (s) || strlen (s) >= strs[i].len)
        return err_make (err, EINVAL, "manifest.json: \"%s\" too long or holds NUL", strs[i].key);
      memcpy (strs[i].dst, s, strlen (s) + 1);
    }
  if (get_i64 (o, "created", INT64_MAX, &t->created, err) < 0
      || get_i64 (o, "cpus", 512, &x, err) < 0)
    return -1;
  t->cpus = (unsigned) x;
  if (get_i64 (o, "guest_ram", INT64_C (1) << 50, &x, err) < 0)
    return -1;
  t->guest_ram = (uint64_t) x;
  if (get_i64 (o, "memory_bytes", INT64_C (1) << 50, &x, err) < 0)
    return -1;
  t->memory_bytes = (uint64_t) x;
  if (get_i64 (o, "gid", UINT32_MAX - 1, &x, err) < 0)
    return -1;
  t->gid = (uint32_t) x;
  if (vm_name_check (t->name, err) < 0 || t->kernel[0] != '/' || t->source_dir[0] != '/')
    return err_make (err, EINVAL, "manifest.json: bad name, kernel or source_dir");
  return 0;
}

int
template_dir (const char *root, const char *name, char *out, size_t len, struct err **err)
{
  if (vm_name_check (name, err) < 0)
    return -1;
  if ((size_t) snprintf (out, len, "%s/" TEMPLATES "/%s", root, name) >= len)
    return err_make (err, ENAMETOOLONG, "template %s", name);
  return 0;
}

int
template_load (const char *root, const char *name, struct template_info *t, struct err **err)
{
  char dir[VM_PATH_MAX], path[VM_PATH_MAX + 32];
  cleanup_free char *text = NULL;
  size_t len = 0;

  if (template_dir (root, name, dir, sizeof dir, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/manifest.json", dir);
  if (access (dir, F_OK) < 0)
    return err_make (err, 0, "no template named '%s' (chvm template ls)", name);
  if (fs_read_small (path, TEMPLATE_MANIFEST_MAX, &text, &len, err) < 0
      || template_from_json (text, len, t, err) < 0)
    return err_wrap (err, "template '%s'", name);
  return 0;
}

static int
cmp_names (const void *a, const void *b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

int
template_list (const char *root, char ***names, size_t *n, struct err **err)
{
  char dir[VM_PATH_MAX];
  cleanup_dir DIR *d = NULL;
  struct dirent *de;
  char **v = NULL;
  size_t cap = 0;

  *names = NULL;
  *n = 0;
  snprintf (dir, sizeof dir, "%s/" TEMPLATES, root);
  d = opendir (dir);
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", dir);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      if (de->d_name[0] == '.' || vm_name_check (de->d_name, NULL) < 0)
        continue; /* ., .., .tmp-* (a create under way or interrupted) */
      if (*n == cap)
        {
          char **nv = realloc (v, (cap = cap ? cap * 2 : 16) * sizeof *v);
          if (nv == NULL)
            return vmstate_list_free (v, *n), err_make (err, ENOMEM, "template list");
          v = nv;
        }
      if ((v[*n] = strdup (de->d_name)) == NULL)
        return vmstate_list_free (v, *n), err_make (err, ENOMEM, "template list");
      (*n)++;
    }
  if (*n > 1)
    qsort (v, *n, sizeof *v, cmp_names);
  *names = v;
  return 0;
}

/* Appends name to the ", "-separated list in out (cut at len), counting it
   in *n. */
static void
name_list_add (char *out, size_t len, size_t *used, size_t *n, const char *name)
{
  *used += (size_t) snprintf (out + *used, *used < len ? len - *used : 0, "%s%s", *n ? ", " : "",
                              name);
  if (*used >= len)
    *used = len - 1;
  (*n)++;
}

int
template_users (const char *root, const char *name, char *out, size_t len, size_t *n,
                struct err **err)
{
  char **names;
  size_t cnt, used = 0;

  *n = 0;
  out[0] = '\0';
  if (vmstate_list (root, &names, &cnt, err) < 0)
    return -1;
  for (size_t i = 0; i < cnt; i++)
    {
      cleanup_err struct err *e = NULL;
      cleanup_free struct vm_record *r = malloc (sizeof *r);
      if (r != NULL && vmrec_load (root, names[i], r, &e) == 0
          && strcmp (r->template_name, name) != 0)
        continue;
      name_list_add (out, len, &used, n, names[i]);
    }
  vmstate_list_free (names, cnt);
  return 0;
}

int
template_sha256 (const char *path, char out[TEMPLATE_SHA256_LEN + 1], struct err **err)
{
  const char *argv[] = { "sha256sum", "--", path, NULL };
  char line[TEMPLATE_SHA256_LEN + VM_PATH_MAX + 8];

  if (proc_capture_line (argv, line, sizeof line, SHA256_TIMEOUT_MS, err) < 0)
    return err_wrap (err, "sha256 of %s", path);
  if (strspn (line, "0123456789abcdef") != TEMPLATE_SHA256_LEN)
    return err_make (err, EPROTO, "sha256sum %s: unexpected output", path);
  memcpy (out, line, TEMPLATE_SHA256_LEN);
  out[TEMPLATE_SHA256_LEN] = '\0';
  return 0;
}

int
template_check (const struct template_info *t, const char *vmm_version, struct err **err)
{
  char sum[TEMPLATE_SHA256_LEN + 1];

  if (strcmp (t->vmm_version, vmm_version) != 0)
    return err_make (err, 0,
                     "template '%s' was made by %s, this host runs %s: its snapshot "
                     "restores only under the same version (make it again)",
                     t->name, t->vmm_version, vmm_version);
  if (template_sha256 (t->kernel, sum, err) < 0)
    return err_wrap (err, "template '%s': its kernel", t->name);
  if (strcmp (sum, t->kernel_sha256) != 0)
    return err_make (err, 0,
                     "template '%s': its kernel %s changed since it was made (make it again)",
                     t->name, t->kernel);
  if (t->initrd[0] && template_sha256 (t->initrd, sum, err) < 0)
    return err_wrap (err, "template '%s': its initramfs", t->name);
  if (t->initrd[0] && strcmp (sum, t->initrd_sha256) != 0)
    return err_make (err, 0,
                     "template '%s': its initramfs %s changed since it was made (make it again)",
                     t->name, t->initrd);
  return 0;
}

/* The manifest of VM r (in vmdir) as a template. */
static int
describe (const char *name, const char *vmdir, const struct vm_record *r, const char *vmm_version,
          struct template_info *t, struct err **err)
{
  const char *slash = strrchr (r->rootfs, '/');

  memset (t, 0, sizeof *t);
  snprintf (t->name, sizeof t->name, "%s", name);
  t->created = (int64_t) time (NULL);
  snprintf (t->backend, sizeof t->backend, "%s", r->backend);
  snprintf (t->vmm_version, sizeof t->vmm_version, "%s", vmm_version);
  t->cpus = r->cpus;
  t->guest_ram = r->memory_mib << 20;
  t->gid = r->vmm_uid;
  snprintf (t->kernel, sizeof t->kernel, "%s", r->kernel);
  snprintf (t->initrd, sizeof t->initrd, "%s", r->initrd);
  snprintf (t->image, sizeof t->image, "%s", r->image);
  snprintf (t->rootfs, sizeof t->rootfs, "%s", r->rootfs);
  snprintf (t->source_dir, sizeof t->source_dir, "%s", vmdir);
  /* The image cache entry is named by its manifest's digest. */
  if (slash != NULL && slash - r->rootfs > TEMPLATE_SHA256_LEN
      && strspn (slash - TEMPLATE_SHA256_LEN, "0123456789abcdef") == TEMPLATE_SHA256_LEN
      && slash[-TEMPLATE_SHA256_LEN - 1] == '/')
    memcpy (t->image_id, slash - TEMPLATE_SHA256_LEN, TEMPLATE_SHA256_LEN);
  if (template_sha256 (t->kernel, t->kernel_sha256, err) < 0
      || (t->initrd[0] && template_sha256 (t->initrd, t->initrd_sha256, err) < 0))
    return -1;
  return 0;
}

/* Moves path (if it exists, or must) into dir as name. */
static int
move_in (const char *path, const char *dir, const char *name, bool must, struct err **err)
{
  char to[VM_PATH_MAX + 64];

  if (!must && access (path, F_OK) < 0)
    return 0;
  if ((size_t) snprintf (to, sizeof to, "%s/%s", dir, name) >= sizeof to)
    return err_make (err, ENAMETOOLONG, "%s/%s", dir, name);
  if (rename (path, to) < 0)
    return err_make (err, errno, "move %s to %s", path, to);
  return 0;
}

/* Root's and read-only, files and directories (not following links). */
static int
seal (const char *dir, uint32_t gid, struct err **err)
{
  static const char *const files[] = { "manifest.json",       "vm.json",
                                       "config.img",          "upper.img",
                                       "console.log",         "snapshot/config.json",
                                       "snapshot/state.json", "snapshot/memory-ranges" };
  char path[VM_PATH_MAX + 96];

  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    {
      snprintf (path, sizeof path, "%s/%s", dir, files[i]);
      if (fs_give (path, 0, 0, TEMPLATE_FILE_MODE, false, err) < 0)
        return -1;
    }
  /* CH opens it read-write even to map it privately: every clone's VMM
     (in group gid) can (docs/DESIGN.md, threat model). */
  snprintf (path, sizeof path, "%s/memory", dir);
  if (fs_give (path, 0, gid, gid ? 0660 : 0644, true, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/snapshot", dir);
  if (fs_give (path, 0, 0, 0555, true, err) < 0 || fs_give (dir, 0, 0, 0555, true, err) < 0)
    return -1;
  return 0;
}

/* Fills tmp from VM r (vmdir) and seals it. */
static int
fill (const char *tmp, const char *vmdir, const struct vm_record *r, struct template_info *t,
      struct err **err)
{
  char snap[VM_PATH_MAX + 16], path[VM_PATH_MAX + 64];
  cleanup_free char *json = NULL, *manifest = NULL;
  struct stat st;

  snprintf (snap, sizeof snap, "%s/snapshot", vmdir);
  if (move_in (snap, tmp, "snapshot", true, err) < 0
      || move_in (r->memory_file, tmp, "memory", true, err) < 0
      || move_in (r->config_disk, tmp, "config.img", false, err) < 0
      || (r->upper_disk[0] && move_in (r->upper_disk, tmp, "upper.img", true, err) < 0))
    return -1;
  /* What the guest printed up to the snapshot, for whoever debugs a clone. */
  snprintf (path, sizeof path, "%s/console.log", vmdir);
  if (move_in (path, tmp, "console.log", false, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/memory", tmp);
  if (stat (path, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  t->memory_bytes = (uint64_t) st.st_blocks * 512;
  if (vmrec_to_json (r, &json, err) < 0 || template_to_json (t, &manifest, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/vm.json", tmp);
  if (fs_write_atomic (path, json, strlen (json), 0400, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/manifest.json", tmp);
  if (fs_write_atomic (path, manifest, strlen (manifest), TEMPLATE_FILE_MODE, err) < 0)
    return -1;
  return seal (tmp, t->gid, err);
}

int
template_commit (const char *root, const char *name, const char *vmdir, const struct vm_record *r,
                 const char *vmm_version, struct err **err)
{
  char base[VM_PATH_MAX], final[VM_PATH_MAX], tmp[VM_PATH_MAX + 32], rnd[16];
  cleanup_err struct err *e2 = NULL;
  struct template_info t;

  if (r->memory_file[0] == '\0')
    return err_make (err, EINVAL, "VM '%s' has no memory file (run --memory-file)", r->name);
  if (template_dir (root, name, final, sizeof final, err) < 0)
    return -1;
  snprintf (base, sizeof base, "%s/" TEMPLATES, root);
  if (fs_mkdir_p (base, 0711, err) < 0)
    return -1;
  if (access (final, F_OK) == 0)
    return err_make (err, EEXIST, "a template named '%s' exists", name);
  if (rand_hex (rnd, 4, err) < 0)
    return -1;
  snprintf (tmp, sizeof tmp, "%s/.tmp-%s-%s", base, name, rnd);
  if (mkdir (tmp, 0700) < 0)
    return err_make (err, errno, "mkdir %s", tmp);
  if (describe (name, vmdir, r, vmm_version, &t, err) < 0 || fill (tmp, vmdir, r, &t, err) < 0
      || fs_fsync_tree (tmp, err) < 0 || fs_rename_durable (tmp, final, err) < 0)
    {
      fs_rmtree (tmp, &e2);
      return err_wrap (err, "template '%s'", name);
    }
  return 0;
}

int
template_remove (const char *root, const char *name, struct err **err)
{
  char dir[VM_PATH_MAX], gone[VM_PATH_MAX + 32], users[512], rnd[16];
  size_t n;

  if (template_dir (root, name, dir, sizeof dir, err) < 0)
    return -1;
  if (access (dir, F_OK) < 0)
    return err_make (err, 0, "no template named '%s'", name);
  if (template_users (root, name, users, sizeof users, &n, err) < 0)
    return -1;
  if (n > 0)
    return err_make (err, EBUSY,
                     "template '%s' is in use by %zu VM%s (%s): its clones map its memory; "
                     "remove them first (chvm rm -f)",
                     name, n, n == 1 ? "" : "s", users);
  /* Out of sight first: a removal cut short leaves no half template. */
  if (rand_hex (rnd, 4, err) < 0)
    return -1;
  snprintf (gone, sizeof gone, "%s/../.rm-%s-%s", dir, name, rnd);
  if (rename (dir, gone) < 0)
    return err_make (err, errno, "remove template %s", dir);
  return fs_rmtree (gone, err);
}

int
template_clone_record (const char *tdir, const char *name, const char *dir, struct vm_record *r,
                       struct err **err)
{
  char path[VM_PATH_MAX + 16];
  cleanup_free char *text = NULL;
  size_t len = 0;
  bool upper;

  snprintf (path, sizeof path, "%s/vm.json", tdir);
  if (fs_read_small (path, 1 << 20, &text, &len, err) < 0
      || vmrec_from_json (text, len, r, err) < 0)
    return err_wrap (err, "template %s", tdir);
  upper = r->upper_disk[0] != '\0';
  snprintf (r->name, sizeof r->name, "%s", name);
  snprintf (r->template_name, sizeof r->template_name, "%s", strrchr (tdir, '/') + 1);
  if ((size_t) snprintf (r->config_disk, sizeof r->config_disk, "%s/config.img", dir)
          >= sizeof r->config_disk
      || (size_t) snprintf (r->upper_disk, sizeof r->upper_disk, "%s/upper.img", dir)
             >= sizeof r->upper_disk)
    return err_make (err, ENAMETOOLONG, "VM dir %s", dir);
  if (!upper)
    r->upper_disk[0] = '\0';
  r->created = (int64_t) time (NULL);
  r->state = VM_STATUS_STANDBY;
  memset (&r->rt, 0, sizeof r->rt);
  r->n_publish = 0;
  r->cdp_endpoint[0] = r->cdp_token[0] = r->netns[0] = r->cgroup[0] = r->memory_file[0] = '\0';
  r->netns_owned = false;
  r->vmm_uid = 0;
  return 0;
}

int
template_gids (const char *root, uint32_t **out, size_t *n, struct err **err)
{
  char **names;
  size_t cnt;

  *out = NULL;
  *n = 0;
  if (template_list (root, &names, &cnt, err) < 0)
    return -1;
  *out = calloc (cnt + 1, sizeof **out);
  for (size_t i = 0; *out != NULL && i < cnt; i++)
    {
      cleanup_err struct err *e = NULL;
      struct template_info t;
      if (template_load (root, names[i], &t, &e) == 0 && t.gid != 0)
        (*out)[(*n)++] = t.gid;
    }
  vmstate_list_free (names, cnt);
  return *out ? 0 : err_make (err, ENOMEM, "template gids");
}

int
template_image_users (const char *root, const char *image_dir, char *out, size_t len, size_t *n,
                      struct err **err)
{
  size_t dl = strlen (image_dir), used = 0, cnt;
  char **names;

  *n = 0;
  out[0] = '\0';
  if (template_list (root, &names, &cnt, err) < 0)
    return -1;
  for (size_t i = 0; i < cnt; i++)
    {
      cleanup_err struct err *e = NULL;
      struct template_info t;
      if (template_load (root, names[i], &t, &e) == 0
          && (strncmp (t.rootfs, image_dir, dl) != 0 || t.rootfs[dl] != '/'))
        continue;
      name_list_add (out, len, &used, n, names[i]);
    }
  vmstate_list_free (names, cnt);
  return 0;
}
