/* SPDX-License-Identifier: Apache-2.0 */
/* OCI images -> cached read-only root filesystems.  See image.h. */
#include "image/image.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "sys/json.h"
#include "clock.h"
#include "num.h"
#include "sys/proc.h"

/* Nesting deeper than this is no OCI document; it only costs stack. */
#define JSON_DEPTH_MAX 16
/* An import of a large image on a slow disk takes minutes; this only
   bounds a tool that hangs. */
#define TOOL_TIMEOUT_MS (30 * 60 * 1000)

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REF_NAME "org.opencontainers.image.ref.name"

/* ---- JSON ------------------------------------------------------------ */

static int
json_parse_object (const char *json, size_t len, const char *what, struct json_object **out,
                   struct err **err)
{
  struct json_tokener *tok;
  struct json_object *obj;
  enum json_tokener_error jerr;
  size_t end;

  if (len > OCI_JSON_MAX)
    return err_make (err, EFBIG, "%s: %zu bytes, more than the %u allowed", what, len,
                     OCI_JSON_MAX);
  tok = json_tokener_new_ex (JSON_DEPTH_MAX);
  if (tok == NULL)
    return err_make (err, ENOMEM, "%s: json_tokener_new", what);
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  obj = json_tokener_parse_ex (tok, json, (int) len);
  jerr = json_tokener_get_error (tok);
  end = json_tokener_get_parse_end (tok);
  json_tokener_free (tok);
  if (obj == NULL || jerr != json_tokener_success)
    {
      json_object_put (obj);
      if (jerr == json_tokener_continue || jerr == json_tokener_success)
        return err_make (err, 0, "%s: truncated JSON", what);
      return err_make (err, 0, "%s: invalid JSON near byte %zu: %s", what, end,
                       json_tokener_error_desc (jerr));
    }
  for (; end < len; end++)
    if (!isspace ((unsigned char) json[end]))
      {
        json_object_put (obj);
        return err_make (err, 0, "%s: trailing data at byte %zu", what, end);
      }
  if (!json_object_is_type (obj, json_type_object))
    {
      json_object_put (obj);
      return err_make (err, 0, "%s: not a JSON object", what);
    }
  *out = obj;
  return 0;
}

/* Optional member: absent and null both give NULL. */
static struct json_object *
member (struct json_object *o, const char *key)
{
  struct json_object *v = NULL;

  if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
    return NULL;
  return v;
}

/* A string we can hand on as a C string and a config disk line: bounded,
   no NUL, no newline. */
static int
check_string (struct json_object *v, const char *what, const char **s, struct err **err)
{
  size_t n;

  if (!json_object_is_type (v, json_type_string))
    return err_make (err, 0, "%s: not a string", what);
  *s = json_object_get_string (v);
  n = (size_t) json_object_get_string_len (v);
  if (n > OCI_STR_MAX)
    return err_make (err, 0, "%s: %zu bytes, more than the %u allowed", what, n, OCI_STR_MAX);
  if (memchr (*s, '\0', n) != NULL)
    return err_make (err, 0, "%s: contains a NUL byte", what);
  if (memchr (*s, '\n', n) != NULL)
    return err_make (err, 0, "%s: contains a newline, which the VM config cannot carry", what);
  return 0;
}

static int
dup_string (struct json_object *v, const char *what, char **out, struct err **err)
{
  const char *s;

  if (check_string (v, what, &s, err) < 0)
    return -1;
  *out = strdup (s);
  if (*out == NULL)
    return err_make (err, ENOMEM, "%s", what);
  return 0;
}

static void
strv_free (char **v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (v[i]);
  free (v);
}

/* A list of strings (absent or null: empty).  is_env: each "NAME=value". */
static int
dup_string_list (struct json_object *parent, const char *key, bool is_env, char ***out,
                 size_t *n_out, struct err **err)
{
  struct json_object *a = member (parent, key);
  char what[64];
  char **v;
  size_t n;

  *out = NULL;
  *n_out = 0;
  if (a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_array))
    return err_make (err, 0, "%s: not a list", key);
  n = json_object_array_length (a);
  if (n > OCI_LIST_MAX)
    return err_make (err, 0, "%s: %zu entries, more than the %u allowed", key, n, OCI_LIST_MAX);
  v = calloc (n + 1, sizeof *v);
  if (v == NULL)
    return err_make (err, ENOMEM, "%s", key);
  for (size_t i = 0; i < n; i++)
    {
      snprintf (what, sizeof what, "%s[%zu]", key, i);
      if (dup_string (json_object_array_get_idx (a, i), what, &v[i], err) < 0)
        {
          strv_free (v, i);
          return -1;
        }
      if (is_env && (v[i][0] == '=' || strchr (v[i], '=') == NULL))
        {
          strv_free (v, i + 1);
          return err_make (err, 0, "%s: not NAME=value", what);
        }
    }
  *out = v;
  *n_out = n;
  return 0;
}

static int
dup_optional_string (struct json_object *parent, const char *key, char **out, struct err **err)
{
  struct json_object *v = member (parent, key);

  if (v == NULL)
    {
      *out = strdup ("");
      return *out == NULL ? err_make (err, ENOMEM, "%s", key) : 0;
    }
  return dup_string (v, key, out, err);
}

/* The exec fields of an OCI config object (the image config's "config", or
   image.json's top level). */
static int
parse_exec_fields (struct json_object *o, struct oci_config **out, struct err **err)
{
  struct oci_config *c = calloc (1, sizeof *c);

  if (c == NULL)
    return err_make (err, ENOMEM, "oci config");
  if (dup_string_list (o, "Env", true, &c->env, &c->n_env, err) < 0
      || dup_string_list (o, "Entrypoint", false, &c->entrypoint, &c->n_entrypoint, err) < 0
      || dup_string_list (o, "Cmd", false, &c->cmd, &c->n_cmd, err) < 0
      || dup_optional_string (o, "WorkingDir", &c->workdir, err) < 0
      || dup_optional_string (o, "User", &c->user, err) < 0)
    {
      oci_config_free (c);
      return -1;
    }
  *out = c;
  return 0;
}

int
oci_config_parse (const char *json, size_t len, struct oci_config **out, struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  struct json_object *cfg;
  int r;

  if (json_parse_object (json, len, "image config", &root, err) < 0)
    return -1;
  cfg = member (root, "config");
  if (cfg == NULL)
    {
      /* An image with no exec settings at all is valid OCI. */
      cleanup_json struct json_object *empty = json_object_new_object ();
      if (empty == NULL)
        return err_make (err, ENOMEM, "image config");
      return parse_exec_fields (empty, out, err);
    }
  if (!json_object_is_type (cfg, json_type_object))
    return err_make (err, 0, "image config: \"config\" is not an object");
  r = parse_exec_fields (cfg, out, err);
  if (r < 0)
    return err_wrap (err, "image config");
  return 0;
}

void
oci_config_free (struct oci_config *c)
{
  if (c == NULL)
    return;
  strv_free (c->env, c->n_env);
  strv_free (c->entrypoint, c->n_entrypoint);
  strv_free (c->cmd, c->n_cmd);
  free (c->workdir);
  free (c->user);
  free (c);
}

int
oci_digest_hex (const char *digest, char hex[IMAGE_ID_LEN + 1], struct err **err)
{
  static const char prefix[] = "sha256:";
  const char *h;

  if (strncmp (digest, prefix, sizeof prefix - 1) != 0)
    return err_make (err, 0, "digest \"%.80s\": only sha256 digests are supported", digest);
  h = digest + sizeof prefix - 1;
  for (size_t i = 0; i < IMAGE_ID_LEN; i++)
    if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
      return err_make (err, 0, "digest \"%.80s\": not 64 lowercase hex digits", digest);
  if (h[IMAGE_ID_LEN] != '\0')
    return err_make (err, 0, "digest \"%.80s\": not 64 lowercase hex digits", digest);
  memcpy (hex, h, IMAGE_ID_LEN + 1);
  return 0;
}

/* A descriptor's digest hex and whether it names an index (as opposed to a
   manifest).  No mediaType: OCI allows omitting it; take it as a manifest. */
static int
descriptor_parse (struct json_object *d, const char *what, char hex[IMAGE_ID_LEN + 1],
                  bool *is_index, struct err **err)
{
  struct json_object *mt, *dg;
  const char *s;

  if (!json_object_is_type (d, json_type_object))
    return err_make (err, 0, "%s: not an object", what);
  dg = member (d, "digest");
  if (dg == NULL)
    return err_make (err, 0, "%s: no digest", what);
  if (check_string (dg, what, &s, err) < 0 || oci_digest_hex (s, hex, err) < 0)
    return err_wrap (err, "%s", what);
  *is_index = false;
  mt = member (d, "mediaType");
  if (mt == NULL)
    return 0;
  if (check_string (mt, what, &s, err) < 0)
    return -1;
  if (strcmp (s, MT_OCI_INDEX) == 0 || strcmp (s, MT_DOCKER_LIST) == 0)
    *is_index = true;
  else if (strcmp (s, MT_OCI_MANIFEST) != 0 && strcmp (s, MT_DOCKER_MANIFEST) != 0)
    return err_make (err, 0, "%s: unsupported media type \"%.100s\"", what, s);
  return 0;
}

static const char *
descriptor_ref_name (struct json_object *d)
{
  struct json_object *ann = member (d, "annotations"), *ref;

  if (ann == NULL || !json_object_is_type (ann, json_type_object))
    return NULL;
  ref = member (ann, REF_NAME);
  if (ref == NULL || !json_object_is_type (ref, json_type_string))
    return NULL;
  return json_object_get_string (ref);
}

int
oci_index_pick (const char *json, size_t len, const char *tag, char hex[IMAGE_ID_LEN + 1],
                bool *is_index, struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  struct json_object *m, *pick = NULL;
  char what[48];
  size_t n;

  if (json_parse_object (json, len, "index.json", &root, err) < 0)
    return -1;
  m = member (root, "manifests");
  if (m == NULL || !json_object_is_type (m, json_type_array))
    return err_make (err, 0, "index.json: no \"manifests\" list");
  n = json_object_array_length (m);
  if (n == 0)
    return err_make (err, 0, "index.json: no images in the layout");
  if (n > OCI_LIST_MAX)
    return err_make (err, 0, "index.json: %zu manifests, more than the %u allowed", n,
                     OCI_LIST_MAX);
  if (tag == NULL)
    {
      if (n > 1)
        return err_make (err, 0, "index.json: %zu images in the layout; name one as oci:DIR:TAG",
                         n);
      pick = json_object_array_get_idx (m, 0);
    }
  else
    for (size_t i = 0; i < n && pick == NULL; i++)
      {
        struct json_object *d = json_object_array_get_idx (m, i);
        const char *ref = descriptor_ref_name (d);

        if (ref != NULL && strcmp (ref, tag) == 0)
          pick = d;
      }
  if (pick == NULL)
    return err_make (err, ENOENT, "index.json: no image tagged \"%s\"", tag);
  snprintf (what, sizeof what, "index.json: manifest");
  return descriptor_parse (pick, what, hex, is_index, err);
}

int
oci_manifest_parse (const char *json, size_t len, char config_hex[IMAGE_ID_LEN + 1],
                    size_t *n_layers, struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  struct json_object *cfg, *layers, *mt, *dg;
  const char *s;

  if (json_parse_object (json, len, "manifest", &root, err) < 0)
    return -1;
  mt = member (root, "mediaType");
  if (mt != NULL)
    {
      if (check_string (mt, "manifest: mediaType", &s, err) < 0)
        return -1;
      if (strcmp (s, MT_OCI_MANIFEST) != 0 && strcmp (s, MT_DOCKER_MANIFEST) != 0)
        return err_make (err, 0, "manifest: unsupported media type \"%.100s\"", s);
    }
  cfg = member (root, "config");
  if (cfg == NULL || !json_object_is_type (cfg, json_type_object))
    return err_make (err, 0, "manifest: no \"config\" descriptor");
  dg = member (cfg, "digest");
  if (dg == NULL)
    return err_make (err, 0, "manifest: config has no digest");
  if (check_string (dg, "manifest: config digest", &s, err) < 0
      || oci_digest_hex (s, config_hex, err) < 0)
    return err_wrap (err, "manifest: config");
  layers = member (root, "layers");
  if (layers == NULL || !json_object_is_type (layers, json_type_array))
    return err_make (err, 0, "manifest: no \"layers\" list");
  *n_layers = json_object_array_length (layers);
  if (*n_layers > OCI_LIST_MAX)
    return err_make (err, 0, "manifest: %zu layers, more than the %u allowed", *n_layers,
                     OCI_LIST_MAX);
  return 0;
}

/* ---- sources ------------------------------------------------------------ */

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

/* ---- image.json ------------------------------------------------------------ */

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

  if (json_parse_object (json, len, "image.json", &root, err) < 0)
    return -1;
  v = member (root, "id");
  if (v == NULL || check_string (v, "image.json: id", &s, err) < 0)
    return v == NULL ? err_make (err, 0, "image.json: no id") : -1;
  snprintf (digest, sizeof digest, "sha256:%s", s);
  if (oci_digest_hex (digest, hex, err) < 0)
    return err_wrap (err, "image.json: id");
  memcpy (img->id, hex, sizeof hex);
  v = member (root, "format");
  if (v == NULL || !json_object_is_type (v, json_type_string)
      || image_format_parse (json_object_get_string (v), &img->format) < 0)
    return err_make (err, 0, "image.json: format is not \"ext4\" or \"erofs\"");
  v = member (root, "rootfs_size");
  if (v == NULL || !json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < 0)
    return err_make (err, 0, "image.json: rootfs_size is not a size");
  img->rootfs_size = (uint64_t) json_object_get_int64 (v);
  v = member (root, "imported");
  img->imported
      = v != NULL && json_object_is_type (v, json_type_int) ? json_object_get_int64 (v) : 0;
  v = member (root, "source");
  free (img->source);
  img->source = NULL;
  if (v != NULL && dup_string (v, "image.json: source", &img->source, err) < 0)
    return -1;
  if (img->source == NULL && (img->source = strdup ("")) == NULL)
    return err_make (err, ENOMEM, "image.json");
  oci_config_free (img->config);
  img->config = NULL;
  if (parse_exec_fields (root, &img->config, err) < 0)
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

/* ---- files and tools --------------------------------------------------- */

/* Reads a whole file of at most max bytes, NUL-terminated. */
static int
read_bounded (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  size_t used = 0;
  ssize_t n;

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  buf = malloc (max + 1);
  if (buf == NULL)
    return err_make (err, ENOMEM, "read %s", path);
  while ((n = TEMP_FAILURE_RETRY (read (fd, buf + used, max + 1 - used))) > 0)
    if ((used += (size_t) n) > max)
      return err_make (err, EFBIG, "%s: more than %zu bytes", path, max);
  if (n < 0)
    return err_make (err, errno, "read %s", path);
  buf[used] = '\0';
  *out = steal_ptr (&buf);
  *len = used;
  return 0;
}

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
rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  return (flag == FTW_DP ? rmdir (path) : unlink (path)) < 0 && errno != ENOENT ? -1 : 0;
}

static int
rm_tree (const char *path)
{
  if (nftw (path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    return -1;
  return 0;
}

/* The last non-empty line of a tool's log, for a one-line error. */
static void
log_last_line (const char *log, char *buf, size_t len)
{
  cleanup_free char *text = NULL;
  size_t n = 0;
  char *end, *start;

  buf[0] = '\0';
  if (read_bounded (log, 1u << 20, &text, &n, NULL) < 0)
    return;
  while (n > 0 && isspace ((unsigned char) text[n - 1]))
    text[--n] = '\0';
  end = text + n;
  start = end;
  while (start > text && start[-1] != '\n')
    start--;
  snprintf (buf, len, "%s", start);
}

/* Runs a tool to completion with its output in log. */
static int
run_tool (const char *const argv[], const char *log, struct err **err)
{
  char last[512];
  pid_t pid;
  int st = 0, r;

  if (proc_spawn (argv, log, &pid, err) < 0)
    {
      if (*err != NULL && (*err)->status == ENOENT)
        return err_wrap (err, "%s is not installed (make deps)", argv[0]);
      return -1;
    }
  r = proc_wait_exit (pid, TOOL_TIMEOUT_MS, &st, err);
  if (r == 0)
    {
      proc_terminate (pid, 2000, NULL);
      return err_make (err, ETIMEDOUT, "%s did not finish within %d min", argv[0],
                       TOOL_TIMEOUT_MS / 60000);
    }
  if (r < 0)
    return r;
  if (st != -1 && WIFEXITED (st) && WEXITSTATUS (st) == 0)
    return 0;
  log_last_line (log, last, sizeof last);
  if (st != -1 && WIFSIGNALED (st))
    return err_make (err, 0, "%s was killed by signal %d: %s", argv[0], WTERMSIG (st), last);
  return err_make (err, 0, "%s failed (exit %d): %s", argv[0],
                   st != -1 && WIFEXITED (st) ? WEXITSTATUS (st) : -1, last);
}

static void progress_msg (image_progress_fn fn, void *ctx, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
progress_msg (image_progress_fn fn, void *ctx, const char *fmt, ...)
{
  char buf[512];
  va_list ap;

  if (fn == NULL)
    return;
  va_start (ap, fmt);
  vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  fn (ctx, buf);
}

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
      if (run_tool (argv, log, err) == 0)
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

/* ---- the cache ---------------------------------------------------------- */

static int
path_join (char **out, const char *a, const char *b, struct err **err)
{
  if (asprintf (out, "%s/%s", a, b) < 0)
    return err_make (err, ENOMEM, "path");
  return 0;
}

static int
images_dir (const char *root, char **out, struct err **err)
{
  if (path_join (out, root, "images", err) < 0)
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
      if (path_join (&p, images, e->d_name, NULL) == 0)
        rm_tree (p);
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
  if (path_join (&meta, dir, "image.json", err) < 0
      || read_bounded (meta, OCI_JSON_MAX, &text, &len, err) < 0
      || image_meta_parse (text, len, img, err) < 0)
    return -1;
  snprintf (name, sizeof name, "rootfs.%s", image_format_name (img->format));
  if ((img->dir = strdup (dir)) == NULL || path_join (&img->rootfs, dir, name, err) < 0)
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

  if (path_join (&images, root, "images", err) < 0)
    return -1;
  r = find_id (images, id, full, err);
  if (r < 0)
    return r;
  if (r == 0)
    return err_make (err, ENOENT, "no image '%s' in %s", id, images);
  if (path_join (&dir, images, full, err) < 0)
    return -1;
  return image_load_dir (dir, out, err);
}

static void
rm_tree_fn (char **path)
{
  if (*path != NULL)
    {
      rm_tree (*path);
      free (*path);
    }
}
#define cleanup_tree __attribute__ ((cleanup (rm_tree_fn)))

/* The layout dir and ref umoci should unpack, after converting what umoci
   cannot read (docker archives, multi-platform indexes) with skopeo into
   tmp/oci:latest.  Sets hex to the manifest digest. */
static int
prepare_layout (const struct image_source *src, const char *tmp, const char *log,
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
      if (path_join (&index_path, src->path, "index.json", err) < 0)
        return -1;
      if (stat (src->path, &st) < 0)
        return err_make (err, errno, "OCI layout %s", src->path);
      if (read_bounded (index_path, OCI_JSON_MAX, &index, &len, err) < 0)
        return err_wrap (err, "%s is not an OCI image layout", src->path);
      if (oci_index_pick (index, len, tag, hex, &is_index, err) < 0)
        return err_wrap (err, "%s", src->path);
      if (!is_index)
        {
          /* umoci selects by tag; a layout's only image may be untagged in
             which case skopeo below gives it one. */
          cleanup_json struct json_object *root = NULL;
          const char *name = NULL;

          if (tag == NULL && json_parse_object (index, len, "index.json", &root, NULL) == 0)
            name = descriptor_ref_name (json_object_array_get_idx (member (root, "manifests"), 0));
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
  progress_msg (progress, ctx, "converting %s to an OCI layout (skopeo)", from);
  {
    const char *argv[]
        = { "skopeo", "copy", "--quiet", "--override-os", "linux", "--override-arch", "amd64",
            from,     to,     NULL };

    if (run_tool (argv, log, err) < 0)
      return -1;
  }
  free (index_path);
  free (index);
  index_path = index = NULL;
  if (asprintf (layout, "%s/oci", tmp) < 0 || (*ref = strdup ("latest")) == NULL)
    return err_make (err, ENOMEM, "path");
  if (path_join (&index_path, *layout, "index.json", err) < 0
      || read_bounded (index_path, OCI_JSON_MAX, &index, &len, err) < 0
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
  return read_bounded (path, OCI_JSON_MAX, out, len, err);
}

/* The source as image.json records it: kind prefix, absolute path, tag. */
static int
source_canonical (const struct image_source *src, char **out, struct err **err)
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

int
image_import (const char *root, const char *source, enum image_format fmt,
              image_progress_fn progress, void *ctx, struct image **out, bool *hit,
              struct err **err)
{
  struct image_source src;
  cleanup_free char *images = NULL, *final = NULL, *log = NULL, *layout = NULL, *ref = NULL;
  cleanup_free char *manifest = NULL, *config = NULL, *tree = NULL, *rootfs = NULL;
  cleanup_free char *meta_path = NULL, *meta = NULL, *canonical = NULL;
  cleanup_tree char *tmp = NULL;
  cleanup_image struct image *img = NULL;
  char hex[IMAGE_ID_LEN + 1], config_hex[IMAGE_ID_LEN + 1], rootfs_name[32];
  size_t len, n_layers;
  struct stat st;
  double t0 = clock_now_ms ();
  int r;

  *hit = false;
  if (image_source_parse (source, &src, err) < 0)
    return -1;
  r = images_dir (root, &images, err);
  if (r == 0)
    {
      sweep_stale (images);
      if (asprintf (&tmp, "%s/.tmp-%d-XXXXXX", images, (int) getpid ()) < 0)
        r = err_make (err, ENOMEM, "path");
      else if (mkdtemp (tmp) == NULL)
        {
          r = err_make (err, errno, "mkdtemp %s", tmp);
          free (steal_ptr (&tmp));
        }
      /* mkdtemp makes it 0700; the entry it becomes is for every user. */
      else if (chmod (tmp, 0755) < 0)
        r = err_make (err, errno, "chmod %s", tmp);
    }
  if (r == 0 && path_join (&log, tmp, "tools.log", err) < 0)
    r = -1;
  if (r == 0)
    r = prepare_layout (&src, tmp, log, progress, ctx, &layout, &ref, hex, err);
  if (r == 0)
    r = source_canonical (&src, &canonical, err);
  image_source_clear (&src);
  if (r < 0)
    return r;

  if (path_join (&final, images, hex, err) < 0)
    return -1;
  if (stat (final, &st) == 0)
    {
      if (cache_hit (final, fmt, out, err) < 0)
        return -1;
      *hit = true;
      progress_msg (progress, ctx, "image %.12s already imported (cache hit)", hex);
      return 0;
    }

  img = calloc (1, sizeof *img);
  if (img == NULL)
    return err_make (err, ENOMEM, "image");
  memcpy (img->id, hex, sizeof hex);
  img->format = fmt;
  img->source = steal_ptr (&canonical);
  if (read_blob (layout, hex, &manifest, &len, err) < 0
      || oci_manifest_parse (manifest, len, config_hex, &n_layers, err) < 0
      || read_blob (layout, config_hex, &config, &len, err) < 0
      || oci_config_parse (config, len, &img->config, err) < 0)
    return err_wrap (err, "image %.12s", hex);

  if (path_join (&tree, tmp, "rootfs", err) < 0)
    return -1;
  progress_msg (progress, ctx, "unpacking %zu layer%s of %.12s (umoci)", n_layers,
                n_layers == 1 ? "" : "s", hex);
  {
    cleanup_free char *image_ref = NULL;
    bool rootless = geteuid () != 0;

    if (asprintf (&image_ref, "%s:%s", layout, ref) < 0)
      return err_make (err, ENOMEM, "path");
    if (rootless)
      progress_msg (progress, ctx, "not root: file owners in the image are not kept");
    const char *argv[] = { "umoci",
                           "raw",
                           "unpack",
                           "--image",
                           image_ref,
                           rootless ? "--rootless" : tree,
                           rootless ? tree : NULL,
                           NULL };
    if (run_tool (argv, log, err) < 0)
      return -1;
  }

  snprintf (rootfs_name, sizeof rootfs_name, "rootfs.%s", image_format_name (fmt));
  if (path_join (&rootfs, tmp, rootfs_name, err) < 0)
    return -1;
  progress_msg (progress, ctx, "making %s (mkfs.%s)", rootfs_name, image_format_name (fmt));
  if (fmt == IMAGE_EXT4)
    r = make_ext4 (tree, rootfs, log, err);
  else
    {
      /* erofs-utils 1.5 (Debian 12) cannot set a volume label (-L came in
         1.6), so an erofs root is found by its disk serial only. */
      const char *argv[] = { "mkfs.erofs", "--quiet", rootfs, tree, NULL };
      r = run_tool (argv, log, err);
    }
  if (r < 0)
    return -1;
  /* The tree and any converted layout are no longer needed. */
  rm_tree (tree);
  if (layout != NULL && strncmp (layout, tmp, strlen (tmp)) == 0)
    rm_tree (layout);
  unlink (log);
  if (stat (rootfs, &st) < 0)
    return err_make (err, errno, "stat %s", rootfs);
  img->rootfs_size = (uint64_t) st.st_size;
  img->imported = (int64_t) time (NULL);
  if (image_meta_to_json (img, &meta, err) < 0 || path_join (&meta_path, tmp, "image.json", err) < 0
      || write_text (meta_path, meta, err) < 0)
    return -1;

  /* Complete: make it visible in one step. */
  if (rename (tmp, final) < 0)
    {
      if (errno != EEXIST && errno != ENOTEMPTY)
        return err_make (err, errno, "rename %s", final);
      /* Another import of the same image finished first. */
      if (cache_hit (final, fmt, out, err) < 0)
        return -1;
      *hit = true;
      return 0;
    }
  free (steal_ptr (&tmp));
  progress_msg (progress, ctx, "imported %.12s: %s, %llu MiB, %.1f s", hex, rootfs_name,
                (unsigned long long) (img->rootfs_size >> 20), (clock_now_ms () - t0) / 1000);
  return image_load_dir (final, out, err);
}

int
image_resolve (const char *root, const char *ref, image_progress_fn progress, void *ctx,
               struct image **out, struct err **err)
{
  cleanup_free char *images = NULL;
  char id[IMAGE_ID_LEN + 1];
  bool hit;
  int r;

  if (path_join (&images, root, "images", err) < 0)
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
  if (path_join (&images, root, "images", err) < 0)
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
      if (path_join (&dir, images, e->d_name, err) < 0)
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

  if (path_join (&images, root, "images", err) < 0)
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

  if (path_join (&images, root, "images", err) < 0)
    return -1;
  r = find_id (images, id, removed, err);
  if (r < 0)
    return r;
  if (r == 0)
    return err_make (err, ENOENT, "no image '%s'", id);
  /* Rename out of sight first, so no reader sees a half-deleted entry. */
  if (path_join (&dir, images, removed, err) < 0
      || asprintf (&doomed, "%s/.tmp-%d-rm-%s", images, (int) getpid (), removed) < 0)
    return err_make (err, ENOMEM, "path");
  if (rename (dir, doomed) < 0)
    return err_make (err, errno, "rename %s", dir);
  if (rm_tree (doomed) < 0)
    return err_make (err, errno, "remove %s", doomed);
  return 0;
}
