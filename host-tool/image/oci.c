/* SPDX-License-Identifier: Apache-2.0 */
/* The OCI documents: index.json, manifests and image configs, parsed with
   limits on size, nesting, list lengths and strings.  No I/O: these are
   the parsers the unit tests and fuzz_oci_config/fuzz_oci_index drive. */
#include "image/internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sys/json.h"

/* Nesting deeper than this is no OCI document; it only costs stack. */
#define JSON_DEPTH_MAX 16

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define REF_NAME "org.opencontainers.image.ref.name"

/* ---- JSON ---------------------------------------------------------------- */

int
oci_json_parse (const char *json, size_t len, const char *what, struct json_object **out,
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

struct json_object *
oci_member (struct json_object *o, const char *key)
{
  struct json_object *v = NULL;

  if (!json_object_object_get_ex (o, key, &v) || json_object_is_type (v, json_type_null))
    return NULL;
  return v;
}

int
oci_check_string (struct json_object *v, const char *what, const char **s, struct err **err)
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

int
oci_dup_string (struct json_object *v, const char *what, char **out, struct err **err)
{
  const char *s;

  if (oci_check_string (v, what, &s, err) < 0)
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
  struct json_object *a = oci_member (parent, key);
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
      if (oci_dup_string (json_object_array_get_idx (a, i), what, &v[i], err) < 0)
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
  struct json_object *v = oci_member (parent, key);

  if (v == NULL)
    {
      *out = strdup ("");
      return *out == NULL ? err_make (err, ENOMEM, "%s", key) : 0;
    }
  return oci_dup_string (v, key, out, err);
}

int
oci_exec_fields_parse (struct json_object *o, struct oci_config **out, struct err **err)
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

  if (oci_json_parse (json, len, "image config", &root, err) < 0)
    return -1;
  cfg = oci_member (root, "config");
  if (cfg == NULL)
    {
      /* An image with no exec settings at all is valid OCI. */
      cleanup_json struct json_object *empty = json_object_new_object ();
      if (empty == NULL)
        return err_make (err, ENOMEM, "image config");
      return oci_exec_fields_parse (empty, out, err);
    }
  if (!json_object_is_type (cfg, json_type_object))
    return err_make (err, 0, "image config: \"config\" is not an object");
  r = oci_exec_fields_parse (cfg, out, err);
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
  dg = oci_member (d, "digest");
  if (dg == NULL)
    return err_make (err, 0, "%s: no digest", what);
  if (oci_check_string (dg, what, &s, err) < 0 || oci_digest_hex (s, hex, err) < 0)
    return err_wrap (err, "%s", what);
  *is_index = false;
  mt = oci_member (d, "mediaType");
  if (mt == NULL)
    return 0;
  if (oci_check_string (mt, what, &s, err) < 0)
    return -1;
  if (strcmp (s, MT_OCI_INDEX) == 0 || strcmp (s, MT_DOCKER_LIST) == 0)
    *is_index = true;
  else if (strcmp (s, MT_OCI_MANIFEST) != 0 && strcmp (s, MT_DOCKER_MANIFEST) != 0)
    return err_make (err, 0, "%s: unsupported media type \"%.100s\"", what, s);
  return 0;
}

const char *
oci_ref_name (struct json_object *d)
{
  struct json_object *ann = oci_member (d, "annotations"), *ref;

  if (ann == NULL || !json_object_is_type (ann, json_type_object))
    return NULL;
  ref = oci_member (ann, REF_NAME);
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

  if (oci_json_parse (json, len, "index.json", &root, err) < 0)
    return -1;
  m = oci_member (root, "manifests");
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
        const char *ref = oci_ref_name (d);

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

  if (oci_json_parse (json, len, "manifest", &root, err) < 0)
    return -1;
  mt = oci_member (root, "mediaType");
  if (mt != NULL)
    {
      if (oci_check_string (mt, "manifest: mediaType", &s, err) < 0)
        return -1;
      if (strcmp (s, MT_OCI_MANIFEST) != 0 && strcmp (s, MT_DOCKER_MANIFEST) != 0)
        return err_make (err, 0, "manifest: unsupported media type \"%.100s\"", s);
    }
  cfg = oci_member (root, "config");
  if (cfg == NULL || !json_object_is_type (cfg, json_type_object))
    return err_make (err, 0, "manifest: no \"config\" descriptor");
  dg = oci_member (cfg, "digest");
  if (dg == NULL)
    return err_make (err, 0, "manifest: config has no digest");
  if (oci_check_string (dg, "manifest: config digest", &s, err) < 0
      || oci_digest_hex (s, config_hex, err) < 0)
    return err_wrap (err, "manifest: config");
  layers = oci_member (root, "layers");
  if (layers == NULL || !json_object_is_type (layers, json_type_array))
    return err_make (err, 0, "manifest: no \"layers\" list");
  *n_layers = json_object_array_length (layers);
  if (*n_layers > OCI_LIST_MAX)
    return err_make (err, 0, "manifest: %zu layers, more than the %u allowed", *n_layers,
                     OCI_LIST_MAX);
  return 0;
}
