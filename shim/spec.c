/* SPDX-License-Identifier: Apache-2.0 */
/* config.json -> struct shim_spec -> image.json's exec fields (spec.h). */
#include "spec.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "sys/json.h"

#define SPEC_DEPTH 32

static struct json_object *
member (struct json_object *o, const char *key)
{
  struct json_object *v;

  if (o == NULL || !json_object_is_type (o, json_type_object)
      || !json_object_object_get_ex (o, key, &v))
    return NULL;
  return v; /* null gives NULL too */
}

/* A string fit for a config disk line, copied into *out. */
static int
dup_checked (struct json_object *v, const char *what, char **out, struct err **err)
{
  const char *s;
  size_t n;

  if (!json_object_is_type (v, json_type_string))
    return err_make (err, EINVAL, "config.json: %s is not a string", what);
  s = json_object_get_string (v);
  n = (size_t) json_object_get_string_len (v);
  if (n > OCI_STR_MAX || strlen (s) != n || strchr (s, '\n') != NULL)
    return err_make (err, EINVAL, "config.json: %s is longer than %u bytes or holds NUL or newline",
                     what, OCI_STR_MAX);
  if ((*out = strdup (s)) == NULL)
    return err_make (err, ENOMEM, "config.json");
  return 0;
}

static int
dup_list (struct json_object *a, const char *what, char ***out, size_t *n, struct err **err)
{
  size_t len;

  *n = 0;
  if (a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_array))
    return err_make (err, EINVAL, "config.json: %s is not a list", what);
  len = json_object_array_length (a);
  if (len > OCI_LIST_MAX)
    return err_make (err, E2BIG, "config.json: %s has more than %u entries", what, OCI_LIST_MAX);
  if ((*out = calloc (len + 1, sizeof **out)) == NULL)
    return err_make (err, ENOMEM, "config.json");
  for (size_t i = 0; i < len; i++, (*n)++)
    if (dup_checked (json_object_array_get_idx (a, i), what, &(*out)[i], err) < 0)
      return -1;
  return 0;
}

static int
parse_user (struct json_object *user, struct shim_spec *s, struct err **err)
{
  struct json_object *v;
  int64_t id;

  for (int i = 0; i < 2; i++)
    {
      v = member (user, i == 0 ? "uid" : "gid");
      if (v == NULL)
        continue;
      id = json_object_get_int64 (v);
      if (!json_object_is_type (v, json_type_int) || id < 0 || id > UINT32_MAX - 1)
        return err_make (err, EINVAL, "config.json: process.user.%s", i == 0 ? "uid" : "gid");
      *(i == 0 ? &s->uid : &s->gid) = (uint32_t) id;
    }
  return 0;
}

static int
parse_annotations (struct json_object *a, struct shim_spec *s, struct err **err)
{
  size_t n;

  if (a == NULL)
    return 0;
  if (!json_object_is_type (a, json_type_object))
    return err_make (err, EINVAL, "config.json: annotations is not an object");
  n = (size_t) json_object_object_length (a);
  if (n > SPEC_ANNOTATIONS_MAX)
    return err_make (err, E2BIG, "config.json: more than %d annotations", SPEC_ANNOTATIONS_MAX);
  s->ann_keys = calloc (n + 1, sizeof *s->ann_keys);
  s->ann_values = calloc (n + 1, sizeof *s->ann_values);
  if (s->ann_keys == NULL || s->ann_values == NULL)
    return err_make (err, ENOMEM, "config.json");
  json_object_object_foreach (a, key, val)
  {
    if (strlen (key) > OCI_STR_MAX || (s->ann_keys[s->n_ann] = strdup (key)) == NULL)
      return err_make (err, ENOMEM, "config.json: annotation key");
    if (dup_checked (val, "an annotation", &s->ann_values[s->n_ann++], err) < 0)
      return -1;
  }
  return 0;
}

/* linux.namespaces' network path: /run/netns/NAME or /var/run/netns/NAME
   (containerd's CRI pins CNI's namespace there: the sandbox's spec names
   it), NAME into s->netns; another path (a pod container's spec names
   /proc/SANDBOX_PID/ns/net) is left out. */
static int
parse_netns (struct json_object *namespaces, struct shim_spec *s, struct err **err)
{
  static const char *const dirs[] = { "/run/netns/", "/var/run/netns/" };
  size_t n;

  if (namespaces == NULL)
    return 0;
  if (!json_object_is_type (namespaces, json_type_array))
    return err_make (err, EINVAL, "config.json: linux.namespaces is not a list");
  n = json_object_array_length (namespaces);
  for (size_t i = 0; i < n; i++)
    {
      struct json_object *ns = json_object_array_get_idx (namespaces, i), *type, *path;
      const char *p, *name = NULL;

      type = member (ns, "type");
      path = member (ns, "path");
      if (type == NULL || !json_object_is_type (type, json_type_string)
          || strcmp (json_object_get_string (type), "network") != 0 || path == NULL)
        continue;
      if (!json_object_is_type (path, json_type_string))
        return err_make (err, EINVAL, "config.json: the network namespace's path");
      p = json_object_get_string (path);
      for (size_t d = 0; d < 2 && name == NULL; d++)
        if (strncmp (p, dirs[d], strlen (dirs[d])) == 0)
          name = p + strlen (dirs[d]);
      if (name == NULL)
        continue; /* another process's (/proc/PID/ns/net): not a name */
      if (name[0] == '\0' || strchr (name, '/') != NULL || name[0] == '.'
          || strlen (name) > SPEC_NETNS_MAX
          || strlen (p) != (size_t) json_object_get_string_len (path))
        return err_make (err, EINVAL,
                         "config.json: network namespace %.80s is not one of /run/netns", p);
      snprintf (s->netns, sizeof s->netns, "%s", name);
    }
  return 0;
}

/* Member key of object o (named what) as an object into *v: NULL when it
   is absent or null. */
static int
get_object (struct json_object *o, const char *key, const char *what, struct json_object **v,
            struct err **err)
{
  *v = member (o, key);
  if (*v != NULL && !json_object_is_type (*v, json_type_object))
    return err_make (err, EINVAL, "config.json: %s is not an object", what);
  return 0;
}

/* Member key of object o (named what) as an integer into *v: 0 when it is
   absent or null. */
static int
get_int (struct json_object *o, const char *key, const char *what, int64_t *v, struct err **err)
{
  struct json_object *m = member (o, key);

  *v = 0;
  if (m == NULL)
    return 0;
  if (!json_object_is_type (m, json_type_int))
    return err_make (err, EINVAL, "config.json: %s is not an integer", what);
  *v = json_object_get_int64 (m); /* a uint64 past INT64_MAX reads INT64_MAX */
  return 0;
}

/* lx (the linux object)'s resources: the VM's vCPUs from cpu.quota /
   cpu.period (what `ctr run --cpus` and CRI's cpu_quota and cpu_period
   set), rounded up, at most SPEC_CPUS_MAX (a VM of 64 vCPUs stays within
   any larger quota); its guest RAM from memory.limit (`ctr run
   --memory-limit`, CRI's memory_limit_in_bytes), rounded down to MiB, at
   most SPEC_MEMORY_MAX_MIB and refused below SPEC_MEMORY_MIN_MIB.  No
   quota, or no limit (absent, 0, or negative: cgroup v1's "unlimited"),
   leaves chvm's default. */
static int
parse_resources (struct json_object *lx, struct shim_spec *s, struct err **err)
{
  struct json_object *res, *cpu, *mem;
  int64_t quota, period, limit;

  if (get_object (lx, "resources", "linux.resources", &res, err) < 0
      || get_object (res, "cpu", "linux.resources.cpu", &cpu, err) < 0
      || get_object (res, "memory", "linux.resources.memory", &mem, err) < 0
      || get_int (cpu, "quota", "linux.resources.cpu.quota", &quota, err) < 0
      || get_int (cpu, "period", "linux.resources.cpu.period", &period, err) < 0
      || get_int (mem, "limit", "linux.resources.memory.limit", &limit, err) < 0)
    return -1;
  if (period < 0)
    return err_make (err, EINVAL, "config.json: linux.resources.cpu.period %" PRId64 " is negative",
                     period);
  if (quota > 0 && period > 0)
    {
      uint64_t n = (uint64_t) (quota / period + (quota % period != 0));

      s->cpus = n > SPEC_CPUS_MAX ? SPEC_CPUS_MAX : (unsigned) n;
    }
  if (limit > 0)
    {
      uint64_t mib = (uint64_t) limit >> 20;

      if (mib < SPEC_MEMORY_MIN_MIB)
        return err_make (err, EINVAL,
                         "config.json: linux.resources.memory.limit: memory limit %" PRId64
                         " bytes is below chvm's %d MiB minimum",
                         limit, SPEC_MEMORY_MIN_MIB);
      s->memory_mib = mib > SPEC_MEMORY_MAX_MIB ? SPEC_MEMORY_MAX_MIB : mib;
    }
  return 0;
}

/* chvm's annotations (spec.h), refused at Create with the value and what
   is accepted.  A pod's sandbox boots nothing: its (the pod's) values are
   checked but used by none. */
static int
parse_chvm_annotations (struct shim_spec *s, struct err **err)
{
  const char *tmpl = shim_spec_annotation (s, SPEC_ANN_TEMPLATE);
  const char *pause = shim_spec_annotation (s, SPEC_ANN_PAUSE);
  const char *agent = shim_spec_annotation (s, SPEC_ANN_AGENT);

  if (tmpl != NULL && vm_name_check (tmpl, NULL) < 0)
    return err_make (err, EINVAL,
                     "config.json: annotation " SPEC_ANN_TEMPLATE ": '%.80s' is not a template "
                     "name (1-%d letters, digits, '_', '.' and '-', starting with a letter or "
                     "digit)",
                     tmpl, VM_NAME_MAX);
  if (tmpl != NULL && shim_spec_role (s) == SHIM_ROLE_CONTAINER)
    return err_make (err, EINVAL,
                     "config.json: annotation " SPEC_ANN_TEMPLATE ": a clone of template '%s' "
                     "keeps its own network namespace, so it cannot be a pod's container",
                     tmpl);
  if (pause != NULL && strcmp (pause, "pause") != 0 && strcmp (pause, "standby") != 0)
    return err_make (err, EINVAL,
                     "config.json: annotation " SPEC_ANN_PAUSE ": '%.80s' is neither 'pause' "
                     "nor 'standby'",
                     pause);
  if (agent != NULL && strcmp (agent, "true") != 0 && strcmp (agent, "false") != 0)
    return err_make (err, EINVAL,
                     "config.json: annotation " SPEC_ANN_AGENT ": '%.80s' is neither 'true' "
                     "nor 'false'",
                     agent);
  if (tmpl != NULL)
    snprintf (s->template_name, sizeof s->template_name, "%s", tmpl);
  s->standby = pause != NULL && strcmp (pause, "standby") == 0;
  s->no_agent = agent != NULL && strcmp (agent, "false") == 0;
  return 0;
}

/* process.args, env, user and cwd ("/" when absent). */
static int
process_fill (struct json_object *proc, struct shim_spec *s, struct err **err)
{
  struct json_object *v;

  if (proc == NULL || !json_object_is_type (proc, json_type_object))
    return err_make (err, EINVAL, "config.json: no process object");
  if (dup_list (member (proc, "args"), "process.args", &s->args, &s->n_args, err) < 0
      || dup_list (member (proc, "env"), "process.env", &s->env, &s->n_env, err) < 0
      || parse_user (member (proc, "user"), s, err) < 0)
    return -1;
  if (s->n_args == 0)
    return err_make (err, EINVAL, "config.json: process.args is empty");
  v = member (proc, "cwd");
  if (v != NULL && dup_checked (v, "process.cwd", &s->cwd, err) < 0)
    return -1;
  if (s->cwd == NULL && (s->cwd = strdup ("/")) == NULL)
    return err_make (err, ENOMEM, "config.json");
  return 0;
}

static int
spec_fill (struct json_object *root, struct shim_spec *s, struct err **err)
{
  struct json_object *v;

  if (process_fill (member (root, "process"), s, err) < 0
      || parse_annotations (member (root, "annotations"), s, err) < 0
      || parse_netns (member (member (root, "linux"), "namespaces"), s, err) < 0
      || parse_chvm_annotations (s, err) < 0)
    return -1;
  /* A pod's sandbox has no VM: the pod's limits (kubelet's sum of its
     containers') size nothing here, the container's own do. */
  if (shim_spec_role (s) != SHIM_ROLE_SANDBOX
      && parse_resources (member (root, "linux"), s, err) < 0)
    return -1;
  v = member (root, "hostname");
  if (v != NULL && dup_checked (v, "hostname", &s->hostname, err) < 0)
    return -1;
  if (s->hostname == NULL && (s->hostname = strdup ("")) == NULL)
    return err_make (err, ENOMEM, "config.json");
  return 0;
}

/* json as one object (strict, UTF-8, at most OCI_JSON_MAX bytes) into a new
   struct shim_spec: a whole config.json, or (process_only) its process. */
static int
parse_with (const char *json, size_t len, bool process_only, struct shim_spec **out,
            struct err **err)
{
  cleanup_json struct json_object *root = NULL;
  cleanup_spec struct shim_spec *s = NULL;
  struct json_tokener *tok;
  bool whole;

  if (len > OCI_JSON_MAX)
    return err_make (err, E2BIG, "config.json is larger than %u bytes", OCI_JSON_MAX);
  if ((tok = json_tokener_new_ex (SPEC_DEPTH)) == NULL)
    return err_make (err, ENOMEM, "config.json");
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
  root = json_tokener_parse_ex (tok, json, (int) len);
  whole = json_tokener_get_error (tok) == json_tokener_success
          && json_tokener_get_parse_end (tok) == len;
  json_tokener_free (tok);
  if (root == NULL || !whole || !json_object_is_type (root, json_type_object))
    return err_make (err, EINVAL, "config.json is not one JSON object");
  if ((s = calloc (1, sizeof *s)) == NULL)
    return err_make (err, ENOMEM, "config.json");
  if (process_only)
    {
      if (process_fill (root, s, err) < 0)
        return -1;
      if ((s->hostname = strdup ("")) == NULL)
        return err_make (err, ENOMEM, "config.json");
    }
  else if (spec_fill (root, s, err) < 0)
    return -1;
  *out = steal_ptr (&s);
  return 0;
}

int
shim_spec_parse (const char *json, size_t len, struct shim_spec **out, struct err **err)
{
  return parse_with (json, len, false, out, err);
}

int
shim_spec_parse_process (const char *json, size_t len, struct shim_spec **out, struct err **err)
{
  return parse_with (json, len, true, out, err);
}

static void
free_list (char **l, size_t n)
{
  for (size_t i = 0; l != NULL && i < n; i++)
    free (l[i]);
  free (l);
}

void
shim_spec_free (struct shim_spec *s)
{
  if (s == NULL)
    return;
  free_list (s->args, s->n_args);
  free_list (s->env, s->n_env);
  free_list (s->ann_keys, s->n_ann);
  free_list (s->ann_values, s->n_ann);
  free (s->cwd);
  free (s->hostname);
  free (s);
}

void
shim_spec_freep (struct shim_spec **s)
{
  shim_spec_free (*s);
}

const char *
shim_spec_annotation (const struct shim_spec *s, const char *key)
{
  for (size_t i = 0; i < s->n_ann; i++)
    if (strcmp (s->ann_keys[i], key) == 0)
      return s->ann_values[i];
  return NULL;
}

enum shim_role
shim_spec_role (const struct shim_spec *s)
{
  const char *type = shim_spec_annotation (s, SPEC_ANN_TYPE);

  if (type != NULL && strcmp (type, "sandbox") == 0)
    return SHIM_ROLE_SANDBOX;
  if (type != NULL && strcmp (type, "container") == 0)
    return SHIM_ROLE_CONTAINER;
  return SHIM_ROLE_PLAIN;
}

const char *
shim_spec_group (const struct shim_spec *s, const char *id)
{
  const char *sandbox = shim_spec_annotation (s, SPEC_ANN_SANDBOX);

  return sandbox != NULL && sandbox[0] != '\0' ? sandbox : id;
}

static int
copy_list (char *const *from, size_t n, char ***to, size_t *to_n)
{
  if ((*to = calloc (n + 1, sizeof **to)) == NULL)
    return -1;
  for (*to_n = 0; *to_n < n; (*to_n)++)
    if (((*to)[*to_n] = strdup (from[*to_n])) == NULL)
      return -1;
  return 0;
}

int
shim_spec_to_oci (const struct shim_spec *s, struct oci_config **out, struct err **err)
{
  struct oci_config *c = calloc (1, sizeof *c);
  char user[32];

  if (c == NULL)
    return err_make (err, ENOMEM, "image config");
  snprintf (user, sizeof user, "%u:%u", s->uid, s->gid);
  if (copy_list (s->args, s->n_args, &c->entrypoint, &c->n_entrypoint) < 0
      || copy_list (s->env, s->n_env, &c->env, &c->n_env) < 0
      || copy_list (NULL, 0, &c->cmd, &c->n_cmd) < 0 || (c->workdir = strdup (s->cwd)) == NULL
      || (c->user = strdup (user)) == NULL)
    {
      oci_config_free (c);
      return err_make (err, ENOMEM, "image config");
    }
  *out = c;
  return 0;
}
