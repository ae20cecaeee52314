/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm/ch_clone.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sys/fs.h"
#include "sys/json.h"

#define CLONE_PATH_MAX 4096
#define CLONE_DEPTH_MAX 16 /* CH's config nests 4 deep */

static struct json_object *
parse_config (const char *text, size_t len, struct err **err)
{
  struct json_tokener *tok;
  struct json_object *o;

  if (len > CH_CLONE_CONFIG_MAX)
    return err_make (err, EFBIG, "config.json: larger than %d bytes", CH_CLONE_CONFIG_MAX), NULL;
  tok = json_tokener_new ();
  if (tok == NULL)
    return err_make (err, ENOMEM, "config.json"), NULL;
  o = json_tokener_parse_ex (tok, text, (int) len);
  if (o != NULL && json_tokener_get_error (tok) != json_tokener_success)
    {
      json_object_put (o);
      o = NULL;
    }
  json_tokener_free (tok);
  if (o == NULL || !json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      return err_make (err, EINVAL, "config.json: not a JSON object"), NULL;
    }
  return o;
}

static long long
get_size (struct json_object *o)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, "size", &v) || !json_object_is_type (v, json_type_int))
    return -1;
  return (long long) json_object_get_int64 (v);
}

/* memory.zones, or NULL. */
static struct json_object *
zones_of (struct json_object *mem)
{
  struct json_object *z;

  if (json_object_object_get_ex (mem, "zones", &z) && json_object_is_type (z, json_type_array))
    return z;
  return NULL;
}

static int
read_memory (struct json_object *root, struct ch_config_memory *m, struct err **err)
{
  struct json_object *mem, *zones, *v;
  long long size;

  memset (m, 0, sizeof *m);
  if (!json_object_object_get_ex (root, "memory", &mem)
      || !json_object_is_type (mem, json_type_object) || (size = get_size (mem)) < 0)
    return err_make (err, EINVAL, "config.json: no \"memory\" object with a size");
  m->ram = size;
  zones = zones_of (mem);
  m->n_zones = zones ? (unsigned) json_object_array_length (zones) : 0;
  m->zones_only = size == 0 && m->n_zones > 0;
  m->files_only = m->shared = m->zones_only;
  for (unsigned i = 0; i < m->n_zones; i++)
    {
      struct json_object *z = json_object_array_get_idx (zones, i);
      long long zs = json_object_is_type (z, json_type_object) ? get_size (z) : -1;
      if (zs < 0 || m->ram > INT64_MAX - zs)
        return err_make (err, EINVAL, "config.json: memory zone %u has no size", i);
      m->ram += zs;
      if (!json_object_object_get_ex (z, "file", &v) || !json_object_is_type (v, json_type_string))
        m->files_only = m->shared = false;
      else if (!json_object_object_get_ex (z, "shared", &v) || !json_object_get_boolean (v))
        m->shared = false;
    }
  return 0;
}

int
ch_config_memory (const char *text, size_t len, struct ch_config_memory *m, struct err **err)
{
  cleanup_json struct json_object *root = parse_config (text, len, err);

  if (root == NULL)
    return -1;
  return read_memory (root, m, err);
}

/* s moved below e->new_dir when it is old_dir or below it: a new string
   into *out (NULL when s stays). */
static int
moved (const char *s, const struct ch_clone_edit *e, struct json_object **out, struct err **err)
{
  size_t n = strlen (e->old_dir);
  char path[CLONE_PATH_MAX];

  *out = NULL;
  if (strncmp (s, e->old_dir, n) != 0 || (s[n] != '\0' && s[n] != '/'))
    return 0;
  if ((size_t) snprintf (path, sizeof path, "%s%s", e->new_dir, s + n) >= sizeof path)
    return err_make (err, ENAMETOOLONG, "config.json: %s below %s", s + n, e->new_dir);
  *out = json_object_new_string (path);
  return *out ? 0 : err_make (err, ENOMEM, "config.json");
}

/* Moves every string below old_dir, depth first. */
static int
move_paths (struct json_object *o, const struct ch_clone_edit *e, int depth, struct err **err)
{
  struct json_object *v;

  if (depth > CLONE_DEPTH_MAX)
    return err_make (err, EINVAL, "config.json: nested deeper than %d", CLONE_DEPTH_MAX);
  if (json_object_is_type (o, json_type_object))
    {
      json_object_object_foreach (o, key, child)
      {
        if (json_object_is_type (child, json_type_string))
          {
            if (moved (json_object_get_string (child), e, &v, err) < 0)
              return -1;
            if (v != NULL && json_object_object_add (o, key, v) < 0)
              return json_object_put (v), err_make (err, ENOMEM, "config.json");
          }
        else if (child != NULL && move_paths (child, e, depth + 1, err) < 0)
          return -1;
      }
    }
  else if (json_object_is_type (o, json_type_array))
    for (size_t i = 0; i < json_object_array_length (o); i++)
      {
        struct json_object *child = json_object_array_get_idx (o, i);
        if (json_object_is_type (child, json_type_string))
          {
            if (moved (json_object_get_string (child), e, &v, err) < 0)
              return -1;
            if (v != NULL && json_object_array_put_idx (o, i, v) < 0)
              return json_object_put (v), err_make (err, ENOMEM, "config.json");
          }
        else if (child != NULL && move_paths (child, e, depth + 1, err) < 0)
          return -1;
      }
  return 0;
}

/* A clone's tap is a new one: CH would set the template tap's MAC on it
   (host_mac), which its unprivileged VMM may not; the kernel's own MAC
   does.  The guest's MAC (mac) stays. */
static void
drop_host_macs (struct json_object *root)
{
  struct json_object *nets;

  if (!json_object_object_get_ex (root, "net", &nets)
      || !json_object_is_type (nets, json_type_array))
    return;
  for (size_t i = 0; i < json_object_array_length (nets); i++)
    {
      struct json_object *n = json_object_array_get_idx (nets, i);
      if (json_object_is_type (n, json_type_object))
        json_object_object_del (n, "host_mac");
    }
}

/* The one zone's file and shared flag. */
static int
set_zone (struct json_object *root, const struct ch_clone_edit *e, struct err **err)
{
  struct ch_config_memory m;
  struct json_object *mem, *zone;

  if (read_memory (root, &m, err) < 0)
    return -1;
  if (!m.files_only || m.n_zones != 1)
    return err_make (err, ENOTSUP,
                     "config.json: guest RAM is not one file-backed memory zone (%u zones, "
                     "memory.size %s)",
                     m.n_zones, m.zones_only ? "0" : "not 0");
  json_object_object_get_ex (root, "memory", &mem);
  zone = json_object_array_get_idx (zones_of (mem), 0);
  if (strlen (e->memory_file) >= CLONE_PATH_MAX
      || json_object_object_add (zone, "file", json_object_new_string (e->memory_file)) < 0
      || json_object_object_add (zone, "shared", json_object_new_boolean (!e->cow)) < 0)
    return err_make (err, ENOMEM, "config.json: memory zone");
  return 0;
}

int
ch_clone_config (const char *text, size_t len, const struct ch_clone_edit *e, char **out,
                 size_t *out_len, struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  const char *s;

  *out = NULL;
  if (e->old_dir[0] != '/' || e->new_dir[0] != '/' || e->memory_file[0] != '/')
    return err_make (err, EINVAL, "clone config: paths must be absolute");
  root = parse_config (text, len, err);
  if (root == NULL || move_paths (root, e, 0, err) < 0 || set_zone (root, e, err) < 0)
    return -1;
  drop_host_macs (root);
  s = json_text (root);
  if (s == NULL || (*out = strdup (s)) == NULL)
    return err_make (err, ENOMEM, "config.json");
  *out_len = strlen (*out);
  return 0;
}

/* --- I/O: the clone's snapshot directory ---------------------------------- */

int
ch_clone_snapshot (const char *tmpl, const char *old_dir, const char *new_dir,
                   const char *memory_file, bool cow, const char *out, struct err **err)
{
  struct ch_clone_edit e = { old_dir, new_dir, memory_file, cow };
  char src[CLONE_PATH_MAX], dst[CLONE_PATH_MAX];
  cleanup_free char *text = NULL, *edited = NULL;
  size_t len = 0, out_len = 0;

  if ((size_t) snprintf (src, sizeof src, "%s/config.json", tmpl) >= sizeof src
      || (size_t) snprintf (dst, sizeof dst, "%s/config.json", out) >= sizeof dst)
    return err_make (err, ENAMETOOLONG, "clone snapshot %s", out);
  if (fs_read_small (src, CH_CLONE_CONFIG_MAX, &text, &len, err) < 0
      || ch_clone_config (text, len, &e, &edited, &out_len, err) < 0)
    return err_wrap (err, "template snapshot %s", tmpl);
  if (fs_write_atomic (dst, edited, out_len, 0640, err) < 0)
    return -1;
  snprintf (src, sizeof src, "%s/state.json", tmpl);
  snprintf (dst, sizeof dst, "%s/state.json", out);
  return fs_copy_file (src, dst, 0640, err);
}
