/* SPDX-License-Identifier: Apache-2.0 */
/* Finding the image: a SOURCE spec (OCI layout dir, docker archive, plain
   path), the OCI layout and tag umoci unpacks (after skopeo converts what
   umoci cannot read), the manifest and config blobs in that layout, and the
   source as image.json records it. */
#include "image/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "sys/json.h"

/* umoci's tag grammar, a subset of OCI's ref.name. */
static bool
tag_valid_p (const char *t)
{
  size_t n = strlen (t);

  if (n == 0 || n > 128 || !(isalnum ((unsigned char) t[0]) || t[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum ((unsigned char) t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
      return false;
  return true;
}

int
image_source_parse (const char *spec, struct image_source *out, struct err **err)
{
  static const char oci[] = "oci:", da[] = "docker-archive:";
  const char *colon;
  struct stat st;

  memset (out, 0, sizeof *out);
  if (strncmp (spec, oci, sizeof oci - 1) == 0)
    {
      const char *rest = spec + sizeof oci - 1;

      out->kind = IMAGE_SRC_OCI;
      colon = strrchr (rest, ':');
      /* DIR may hold ':' itself only if no TAG follows; a tag has no '/'. */
      if (colon != NULL && strchr (colon, '/') == NULL)
        {
          out->path = strndup (rest, (size_t) (colon - rest));
          out->tag = strdup (colon + 1);
          if (out->path == NULL || out->tag == NULL)
            goto nomem;
          if (!tag_valid_p (out->tag))
            {
              image_source_clear (out);
              return err_make (err, 0, "image source '%s': invalid tag", spec);
            }
        }
      else if ((out->path = strdup (rest)) == NULL)
        goto nomem;
    }
  else if (strncmp (spec, da, sizeof da - 1) == 0)
    {
      out->kind = IMAGE_SRC_DOCKER_ARCHIVE;
      if ((out->path = strdup (spec + sizeof da - 1)) == NULL)
        goto nomem;
    }
  else
    {
      if (stat (spec, &st) < 0)
        return err_make (err, errno, "image source '%s'", spec);
      if (S_ISDIR (st.st_mode))
        out->kind = IMAGE_SRC_OCI;
      else if (S_ISREG (st.st_mode))
        out->kind = IMAGE_SRC_DOCKER_ARCHIVE;
      else
        return err_make (err, 0, "image source '%s': neither a directory nor a file", spec);
      if ((out->path = strdup (spec)) == NULL)
        goto nomem;
    }
  if (out->path[0] == '\0')
    {
      image_source_clear (out);
      return err_make (err, 0, "image source '%s': empty path", spec);
    }
  return 0;

nomem:
  image_source_clear (out);
  return err_make (err, ENOMEM, "image source");
}

void
image_source_clear (struct image_source *s)
{
  free (s->path);
  free (s->tag);
  s->path = s->tag = NULL;
}

int
image_layout_prepare (const struct image_source *src, const char *tmp, const char *log,
                      image_progress_fn progress, void *ctx, char **layout, char **ref,
                      char hex[IMAGE_ID_LEN + 1], struct err **err)
{
  cleanup_free char *index_path = NULL, *index = NULL, *from = NULL, *to = NULL;
  const char *tag = src->tag;
  bool is_index = false;
  size_t len;
  struct stat st;

  if (src->kind == IMAGE_SRC_DOCKER_ARCHIVE)
    {
      if (stat (src->path, &st) < 0)
        return err_make (err, errno, "docker archive %s", src->path);
      if (asprintf (&from, "docker-archive:%s", src->path) < 0)
        return err_make (err, ENOMEM, "path");
    }
  else
    {
      if (image_path_join (&index_path, src->path, "index.json", err) < 0)
        return -1;
      if (stat (src->path, &st) < 0)
        return err_make (err, errno, "OCI layout %s", src->path);
      if (image_read_bounded (index_path, OCI_JSON_MAX, &index, &len, err) < 0)
        return err_wrap (err, "%s is not an OCI image layout", src->path);
      if (oci_index_pick (index, len, tag, hex, &is_index, err) < 0)
        return err_wrap (err, "%s", src->path);
      if (!is_index)
        {
          /* umoci selects by tag; a layout's only image may be untagged in
             which case skopeo below gives it one. */
          cleanup_json struct json_object *root = NULL;
          const char *name = NULL;

          if (tag == NULL && oci_json_parse (index, len, "index.json", &root, NULL) == 0)
            name = oci_ref_name (json_object_array_get_idx (oci_member (root, "manifests"), 0));
          if (tag != NULL || (name != NULL && tag_valid_p (name)))
            {
              *layout = strdup (src->path);
              *ref = strdup (tag != NULL ? tag : name);
              if (*layout == NULL || *ref == NULL)
                return err_make (err, ENOMEM, "path");
              return 0;
            }
        }
      if (asprintf (&from, "oci:%s%s%s", src->path, tag ? ":" : "", tag ? tag : "") < 0)
        return err_make (err, ENOMEM, "path");
    }

  if (asprintf (&to, "oci:%s/oci:latest", tmp) < 0)
    return err_make (err, ENOMEM, "path");
  image_progress (progress, ctx, "converting %s to an OCI layout (skopeo)", from);
  {
    const char *argv[]
        = { "skopeo", "copy", "--quiet", "--override-os", "linux", "--override-arch", "amd64",
            from,     to,     NULL };

    if (image_run_tool (argv, log, err) < 0)
      return -1;
  }
  free (index_path);
  free (index);
  index_path = index = NULL;
  if (asprintf (layout, "%s/oci", tmp) < 0 || (*ref = strdup ("latest")) == NULL)
    return err_make (err, ENOMEM, "path");
  if (image_path_join (&index_path, *layout, "index.json", err) < 0
      || image_read_bounded (index_path, OCI_JSON_MAX, &index, &len, err) < 0
      || oci_index_pick (index, len, "latest", hex, &is_index, err) < 0)
    return err_wrap (err, "converted layout");
  if (is_index)
    return err_make (err, 0, "skopeo left an image index in %s", *layout);
  return 0;
}

static int
read_blob (const char *layout, const char *hex, char **out, size_t *len, struct err **err)
{
  cleanup_free char *path = NULL;

  if (asprintf (&path, "%s/blobs/sha256/%s", layout, hex) < 0)
    return err_make (err, ENOMEM, "path");
  return image_read_bounded (path, OCI_JSON_MAX, out, len, err);
}

int
image_source_canonical (const struct image_source *src, char **out, struct err **err)
{
  cleanup_free char *abs = realpath (src->path, NULL);

  if (abs == NULL)
    return err_make (err, errno, "realpath %s", src->path);
  if (asprintf (out, "%s:%s%s%s", src->kind == IMAGE_SRC_OCI ? "oci" : "docker-archive", abs,
                src->tag != NULL ? ":" : "", src->tag != NULL ? src->tag : "")
      < 0)
    return err_make (err, ENOMEM, "image source");
  return 0;
}

int
image_layout_config (const char *layout, const char *hex, struct oci_config **config,
                     size_t *n_layers, struct err **err)
{
  cleanup_free char *manifest = NULL, *blob = NULL;
  char config_hex[IMAGE_ID_LEN + 1];
  size_t len;

  if (read_blob (layout, hex, &manifest, &len, err) < 0
      || oci_manifest_parse (manifest, len, config_hex, n_layers, err) < 0
      || read_blob (layout, config_hex, &blob, &len, err) < 0
      || oci_config_parse (blob, len, config, err) < 0)
    return -1;
  return 0;
}
