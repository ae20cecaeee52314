/* SPDX-License-Identifier: Apache-2.0 */
/* The image's metadata: struct image <-> image.json (the exec fields of its
   config, entrypoint, cmd, env, user, workdir, and the cache's own: id,
   source, format, rootfs size, import time). */
#include "image/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sys/json.h"

const char *
image_format_name (enum image_format f)
{
  return f == IMAGE_EROFS ? "erofs" : "ext4";
}

int
image_format_parse (const char *s, enum image_format *out)
{
  if (strcmp (s, "ext4") == 0)
    *out = IMAGE_EXT4;
  else if (strcmp (s, "erofs") == 0)
    *out = IMAGE_EROFS;
  else
    return -1;
  return 0;
}

static int
add_strv (struct json_object *o, const char *key, char **v, size_t n)
{
  struct json_object *a = json_object_new_array ();

  if (a == NULL)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (json_object_array_add (a, json_object_new_string (v[i])) < 0)
      {
        json_object_put (a);
        return -1;
      }
  return json_object_object_add (o, key, a);
}

int
image_meta_to_json (const struct image *img, char **out, struct err **err)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  const struct oci_config *c = img->config;
  char rootfs[32];
  const char *s;

  snprintf (rootfs, sizeof rootfs, "rootfs.%s", image_format_name (img->format));
  if (o == NULL || c == NULL || add_strv (o, "Env", c->env, c->n_env) < 0
      || add_strv (o, "Entrypoint", c->entrypoint, c->n_entrypoint) < 0
      || add_strv (o, "Cmd", c->cmd, c->n_cmd) < 0
      || json_object_object_add (o, "WorkingDir", json_object_new_string (c->workdir)) < 0
      || json_object_object_add (o, "User", json_object_new_string (c->user)) < 0
      || json_object_object_add (o, "id", json_object_new_string (img->id)) < 0
      || json_object_object_add (o, "source", json_object_new_string (img->source)) < 0
      || json_object_object_add (o, "format",
                                 json_object_new_string (image_format_name (img->format)))
             < 0
      || json_object_object_add (o, "rootfs", json_object_new_string (rootfs)) < 0
      || json_object_object_add (o, "rootfs_size",
                                 json_object_new_int64 ((int64_t) img->rootfs_size))
             < 0
      || json_object_object_add (o, "imported", json_object_new_int64 (img->imported)) < 0)
    return err_make (err, ENOMEM, "image.json");
  /* Pretty, unlike json_text: people read image.json too. */
  s = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (s == NULL || (*out = strdup (s)) == NULL)
    return err_make (err, ENOMEM, "image.json");
  return 0;
}

int
image_meta_parse (const char *json, size_t len, struct image *img, struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  struct json_object *v;
  const char *s;
  char hex[IMAGE_ID_LEN + 1], digest[IMAGE_ID_LEN + 8];

  if (oci_json_parse (json, len, "image.json", &root, err) < 0)
    return -1;
  v = oci_member (root, "id");
  if (v == NULL || oci_check_string (v, "image.json: id", &s, err) < 0)
    return v == NULL ? err_make (err, 0, "image.json: no id") : -1;
  snprintf (digest, sizeof digest, "sha256:%s", s);
  if (oci_digest_hex (digest, hex, err) < 0)
    return err_wrap (err, "image.json: id");
  memcpy (img->id, hex, sizeof hex);
  v = oci_member (root, "format");
  if (v == NULL || !json_object_is_type (v, json_type_string)
      || image_format_parse (json_object_get_string (v), &img->format) < 0)
    return err_make (err, 0, "image.json: format is not \"ext4\" or \"erofs\"");
  v = oci_member (root, "rootfs_size");
  if (v == NULL || !json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0)
    return err_make (err, 0, "image.json: rootfs_size is not a size");
  img->rootfs_size = (uint64_t) json_object_get_int64 (v);
  v = oci_member (root, "imported");
  img->imported
      = v != NULL && json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : 0;
  v = oci_member (root, "source");
  free (img->source);
  img->source = NULL;
  if (v != NULL && oci_dup_string (v, "image.json: source", &img->source, err) < 0)
    return -1;
  if (img->source == NULL && (img->source = strdup ("")) == NULL)
    return err_make (err, ENOMEM, "image.json");
  oci_config_free (img->config);
  img->config = NULL;
  if (oci_exec_fields_parse (root, &img->config, err) < 0)
    return err_wrap (err, "image.json");
  return 0;
}

void
image_free (struct image *img)
{
  if (img == NULL)
    return;
  free (img->dir);
  free (img->rootfs);
  free (img->source);
  oci_config_free (img->config);
  free (img);
}

void
image_freep (struct image **img)
{
  image_free (*img);
}
