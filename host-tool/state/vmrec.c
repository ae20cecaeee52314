/* SPDX-License-Identifier: Apache-2.0 */
/* The VM record and its vm.json form: no I/O here. */
#include "state/vmrec.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"
#include "num.h"

#define VM_JSON_MAX (1 << 20)

static const char *const status_names[] = {
  [VM_STATUS_CREATED] = "created", [VM_STATUS_RUNNING] = "running", [VM_STATUS_PAUSED] = "paused",
  [VM_STATUS_STANDBY] = "standby", [VM_STATUS_STOPPED] = "stopped", [VM_STATUS_DEAD] = "dead",
};

const char *const vm_env_names[VM_ENV_N] = {
  "CLOUD_HYPERVISOR", "CHVM_QEMU", "CHVM_CH_SECCOMP", "CHVM_CH_LANDLOCK", "CHVM_CONSOLE_MAX",
};

const char *
vm_status_name (enum vm_status s)
{
  if ((size_t) s >= sizeof status_names / sizeof status_names[0])
    return "unknown";
  return status_names[s];
}

void
vmrec_endpoint_url (const struct vm_record *r, char *out, size_t len)
{
  if (r->cdp_endpoint[0] == '\0')
    snprintf (out, len, "%s", "");
  else
    snprintf (out, len, "http://%s/%s", r->cdp_endpoint, r->cdp_token);
}

static int
vm_status_parse (const char *s, enum vm_status *out)
{
  for (size_t i = 0; i < sizeof status_names / sizeof status_names[0]; i++)
    if (strcmp (s, status_names[i]) == 0)
      {
        *out = (enum vm_status) i;
        return 0;
      }
  return -1;
}

int
vm_name_check (const char *name, struct err **err)
{
  size_t n = strlen (name);

  if (n == 0 || n > VM_NAME_MAX)
    return err_make (err, 0, "invalid VM name '%s': must be 1-%d characters", name, VM_NAME_MAX);
  for (size_t i = 0; i < n; i++)
    {
      char c = name[i];
      bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
        return err_make (err, 0,
                         "invalid VM name '%s': use letters, digits, '_', '.', '-', "
                         "starting with a letter or digit",
                         name);
    }
  return 0;
}

static void
add_str (struct json_object *o, const char *k, const char *v)
{
  json_object_object_add (o, k, json_object_new_string (v));
}

static void
add_int (struct json_object *o, const char *k, int64_t v)
{
  json_object_object_add (o, k, json_object_new_int64 (v));
}

static void
add_bool (struct json_object *o, const char *k, bool v)
{
  json_object_object_add (o, k, json_object_new_boolean (v));
}

/* spec.vmm_env: {NAME: value} of the settings run saw set. */
static void
add_vmm_env (struct json_object *spec, const struct vm_record *r)
{
  struct json_object *env = NULL;

  for (size_t i = 0; i < VM_ENV_N; i++)
    if (r->vmm_env[i][0] != '\0')
      {
        if (env == NULL)
          env = json_object_new_object ();
        add_str (env, vm_env_names[i], r->vmm_env[i]);
      }
  if (env != NULL)
    json_object_object_add (spec, "vmm_env", env);
}

int
vmrec_to_json (const struct vm_record *r, char **out, struct err **err)
{
  struct json_object *root = json_object_new_object ();
  struct json_object *spec = json_object_new_object ();
  struct json_object *rt = json_object_new_object ();
  struct json_object *pub = json_object_new_array ();
  const char *s;

  if (root == NULL || spec == NULL || rt == NULL || pub == NULL)
    {
      json_object_put (root);
      json_object_put (spec);
      json_object_put (rt);
      json_object_put (pub);
      return err_make (err, ENOMEM, "vm.json");
    }
  add_int (root, "version", 1);
  add_str (root, "name", r->name);
  add_str (root, "backend", r->backend);
  add_str (root, "image", r->image);
  add_int (root, "created", r->created);
  add_str (root, "state", vm_status_name (r->state));

  add_int (spec, "cpus", r->cpus);
  add_int (spec, "memory_mib", (int64_t) r->memory_mib);
  add_str (spec, "kernel", r->kernel);
  add_str (spec, "initrd", r->initrd);
  add_str (spec, "cmdline", r->cmdline);
  add_str (spec, "rootfs", r->rootfs);
  add_str (spec, "config_disk", r->config_disk);
  add_str (spec, "upper_disk", r->upper_disk);
  add_str (spec, "overlay", r->overlay);
  if (r->rootfs_pmem)
    add_str (spec, "rootfs_device", "pmem");
  add_str (spec, "netns", r->netns);
  if (r->netns_owned)
    add_bool (spec, "netns_owned", true);
  if (r->template_name[0])
    add_str (spec, "template", r->template_name);
  if (r->memory_file[0])
    add_str (spec, "memory_file", r->memory_file);
  add_str (spec, "tap", r->tap);
  add_str (spec, "mac", r->mac);
  add_str (spec, "address", r->address);
  add_int (spec, "agent_vsock_port", r->agent_vsock_port);
  add_int (spec, "agent_tcp_port", r->agent_tcp_port);
  add_int (spec, "cdp_port", r->cdp_port);
  add_str (spec, "agent_token", r->agent_token);
  if (r->vmm_uid != 0)
    add_int (spec, "vmm_uid", r->vmm_uid);
  /* Written whenever any is set, as parsed: a record that reads back
     the same (fuzz_vmstate found a token without an endpoint dropped). */
  if (r->cdp_endpoint[0] || r->cdp_token[0] || r->idle_standby_s != 0 || r->cdp_max_clients != 0)
    {
      add_str (spec, "cdp_endpoint", r->cdp_endpoint);
      add_str (spec, "cdp_token", r->cdp_token);
      add_int (spec, "idle_standby", r->idle_standby_s);
      add_int (spec, "cdp_max_clients", r->cdp_max_clients);
    }
  for (size_t i = 0; i < r->n_publish; i++)
    {
      struct json_object *p = json_object_new_object ();
      add_str (p, "host_addr", r->publish[i].host_addr);
      add_int (p, "host_port", r->publish[i].host_port);
      add_int (p, "guest_port", r->publish[i].guest_port);
      add_str (p, "proto", r->publish[i].udp ? "udp" : "tcp");
      /* A range is one entry; single ports keep the old shape. */
      if (publish_ports (&r->publish[i]) > 1)
        add_int (p, "count", publish_ports (&r->publish[i]));
      if (r->publish[i].root_only)
        json_object_object_add (p, "root_only", json_object_new_boolean (1));
      json_object_array_add (pub, p);
    }
  json_object_object_add (spec, "publish", pub);
  add_vmm_env (spec, r);
  json_object_object_add (root, "spec", spec);

  add_int (rt, "vmm_pid", r->rt.vmm_pid);
  add_str (rt, "api_socket", r->rt.api_socket);
  add_str (rt, "vsock_socket", r->rt.vsock_socket);
  add_int (rt, "agent_host_port", r->rt.agent_host_port);
  add_str (rt, "version", r->rt.version);
  add_bool (rt, "shared_memory", r->rt.shared_memory);
  add_bool (rt, "free_page_reporting", r->rt.free_page_reporting);
  json_object_object_add (root, "runtime", rt);

  s = json_object_to_json_string_ext (root,
                                      JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
  *out = s ? strdup (s) : NULL;
  json_object_put (root);
  if (*out == NULL)
    return err_make (err, ENOMEM, "vm.json");
  return 0;
}

static int
get_str (struct json_object *o, const char *k, char *dst, size_t len, bool required,
         struct err **err)
{
  struct json_object *v;
  const char *s;
  int n;

  if (!json_object_object_get_ex (o, k, &v) || v == NULL)
    {
      if (required)
        return err_make (err, 0, "vm.json: missing \"%s\"", k);
      dst[0] = '\0';
      return 0;
    }
  if (!json_object_is_type (v, json_type_string))
    return err_make (err, 0, "vm.json: \"%s\" is not a string", k);
  s = json_object_get_string (v);
  n = json_object_get_string_len (v);
  if (n < 0 || (size_t) n >= len || strlen (s) != (size_t) n)
    return err_make (err, 0, "vm.json: \"%s\" is too long or has a NUL", k);
  memcpy (dst, s, (size_t) n + 1);
  return 0;
}

static int
get_int (struct json_object *o, const char *k, int64_t min, int64_t max, int64_t *dst,
         struct err **err)
{
  struct json_object *v;
  int64_t x = 0;

  if (!json_object_object_get_ex (o, k, &v) || v == NULL)
    {
      *dst = 0;
      if (min > 0)
        return err_make (err, 0, "vm.json: missing \"%s\"", k);
      return 0;
    }
  if (!json_object_is_type (v, json_type_int))
    return err_make (err, 0, "vm.json: \"%s\" is not an integer", k);
  errno = 0;
  x = json_object_get_int64 (v);
  if (errno != 0 || x < min || x > max)
    return err_make (err, 0, "vm.json: \"%s\" out of range", k);
  *dst = x;
  return 0;
}

/* Optional: a missing key is false (vm.json from before it). */
static int
get_bool (struct json_object *o, const char *k, bool *dst, struct err **err)
{
  struct json_object *v;

  *dst = false;
  if (!json_object_object_get_ex (o, k, &v) || v == NULL)
    return 0;
  if (!json_object_is_type (v, json_type_boolean))
    return err_make (err, 0, "vm.json: \"%s\" is not a boolean", k);
  *dst = json_object_get_boolean (v);
  return 0;
}

static int
get_obj (struct json_object *o, const char *k, struct json_object **dst, struct err **err)
{
  if (!json_object_object_get_ex (o, k, dst) || !json_object_is_type (*dst, json_type_object))
    return err_make (err, 0, "vm.json: \"%s\" missing or not an object", k);
  return 0;
}

/* spec.vmm_env (optional: none before it): only the known names. */
static int
parse_vmm_env (struct json_object *spec, struct vm_record *r, struct err **err)
{
  struct json_object *env;

  if (!json_object_object_get_ex (spec, "vmm_env", &env) || env == NULL)
    return 0;
  if (!json_object_is_type (env, json_type_object))
    return err_make (err, 0, "vm.json: \"vmm_env\" is not an object");
  json_object_object_foreach (env, k, v)
  {
    size_t i = 0;
    (void) v;
    while (i < VM_ENV_N && strcmp (k, vm_env_names[i]) != 0)
      i++;
    if (i == VM_ENV_N)
      return err_make (err, 0, "vm.json: \"vmm_env\" names an unknown setting \"%s\"", k);
    if (get_str (env, k, r->vmm_env[i], sizeof r->vmm_env[i], false, err) < 0)
      return -1;
  }
  return 0;
}

/* spec.rootfs_device: "blk" (also when absent: records before it) or
   "pmem". */
static int
parse_rootfs_device (struct json_object *spec, struct vm_record *r, struct err **err)
{
  char dev[8];

  if (get_str (spec, "rootfs_device", dev, sizeof dev, false, err) < 0)
    return -1;
  if (dev[0] != '\0' && strcmp (dev, "blk") != 0 && strcmp (dev, "pmem") != 0)
    return err_make (err, 0, "vm.json: \"rootfs_device\" must be blk or pmem");
  r->rootfs_pmem = strcmp (dev, "pmem") == 0;
  return 0;
}

static int
parse_spec (struct json_object *spec, struct vm_record *r, struct err **err)
{
  struct json_object *pub;
  int64_t x = 0;

  const struct
  {
    const char *key;
    char *dst;
    size_t len;
    bool required;
  } strs[] = {
#define F(k, req) { #k, r->k, sizeof r->k, req }
    F (kernel, true),        F (initrd, false),     F (cmdline, false),     F (rootfs, false),
    F (config_disk, false),  F (upper_disk, false), F (overlay, false),     F (netns, false),
    F (tap, false),          F (mac, false),        F (address, false),     F (agent_token, false),
    F (cdp_endpoint, false), F (cdp_token, false),  F (memory_file, false),
#undef F
  };

  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (get_str (spec, strs[i].key, strs[i].dst, strs[i].len, strs[i].required, err) < 0)
      return -1;
  if (get_bool (spec, "netns_owned", &r->netns_owned, err) < 0
      || get_str (spec, "template", r->template_name, sizeof r->template_name, false, err) < 0
      || parse_rootfs_device (spec, r, err) < 0)
    return -1;
  if (get_int (spec, "cpus", 1, 512, &x, err) < 0)
    return -1;
  r->cpus = (unsigned) x;
  if (get_int (spec, "memory_mib", 1, INT64_C (1) << 30, &x, err) < 0)
    return -1;
  r->memory_mib = (uint64_t) x;
  if (get_int (spec, "agent_vsock_port", 0, UINT32_MAX, &x, err) < 0)
    return -1;
  r->agent_vsock_port = (unsigned) x;
  if (get_int (spec, "agent_tcp_port", 0, 65535, &x, err) < 0)
    return -1;
  r->agent_tcp_port = (uint16_t) x;
  if (get_int (spec, "cdp_port", 0, 65535, &x, err) < 0)
    return -1;
  r->cdp_port = (uint16_t) x;
  if (get_int (spec, "vmm_uid", 0, UINT32_MAX - 1, &x, err) < 0)
    return -1;
  r->vmm_uid = (uint32_t) x;
  if (get_int (spec, "idle_standby", 0, 86400 * 365, &x, err) < 0)
    return -1;
  r->idle_standby_s = (unsigned) x;
  if (get_int (spec, "cdp_max_clients", 0, 4096, &x, err) < 0)
    return -1;
  r->cdp_max_clients = (unsigned) x;
  if (r->cdp_token[0] != '\0'
      && strspn (r->cdp_token, "0123456789abcdef") != 2 * VM_CDP_TOKEN_BYTES)
    return err_make (err, 0, "vm.json: \"cdp_token\" is not %d hex digits", 2 * VM_CDP_TOKEN_BYTES);

  r->n_publish = 0;
  if (!json_object_object_get_ex (spec, "publish", &pub) || pub == NULL)
    return 0;
  if (!json_object_is_type (pub, json_type_array))
    return err_make (err, 0, "vm.json: \"publish\" is not an array");
  if (json_object_array_length (pub) > VM_MAX_PUBLISH)
    return err_make (err, 0, "vm.json: too many \"publish\" entries");
  for (size_t i = 0; i < json_object_array_length (pub); i++)
    {
      struct json_object *p = json_object_array_get_idx (pub, i);
      struct publish *d = &r->publish[i];
      char proto[8];

      if (!json_object_is_type (p, json_type_object))
        return err_make (err, 0, "vm.json: publish entry is not an object");
      if (get_str (p, "host_addr", d->host_addr, sizeof d->host_addr, true, err) < 0
          || get_str (p, "proto", proto, sizeof proto, true, err) < 0
          || get_int (p, "host_port", 1, 65535, &x, err) < 0)
        return -1;
      d->host_port = (uint16_t) x;
      if (get_int (p, "guest_port", 1, 65535, &x, err) < 0)
        return -1;
      d->guest_port = (uint16_t) x;
      /* Absent in records written before ranges, and for single ports. */
      if (json_object_object_get_ex (p, "count", NULL))
        {
          if (get_int (p, "count", 1, 65535, &x, err) < 0)
            return -1;
        }
      else
        x = 1;
      if (d->host_port + x - 1 > 65535 || d->guest_port + x - 1 > 65535)
        return err_make (err, 0, "vm.json: publish range ends past port 65535");
      d->count = (uint16_t) x;
      if (strcmp (proto, "tcp") != 0 && strcmp (proto, "udp") != 0)
        return err_make (err, 0, "vm.json: publish proto must be tcp or udp");
      d->udp = proto[0] == 'u';
      if (get_bool (p, "root_only", &d->root_only, err) < 0)
        return -1;
      if (d->root_only && (d->udp || strchr (d->host_addr, ':') != NULL))
        return err_make (err, 0, "vm.json: a root_only publish is TCP on an IPv4 address");
      r->n_publish = i + 1;
    }
  return 0;
}

int
vmrec_from_json (const char *text, size_t len, struct vm_record *r, struct err **err)
{
  struct json_tokener *tok;
  struct json_object *root, *spec, *rt;
  char state[16];
  int64_t x = 0;
  int ret = -1;

  memset (r, 0, sizeof *r);
  if (len > VM_JSON_MAX)
    return err_make (err, 0, "vm.json: larger than %d bytes", VM_JSON_MAX);
  tok = json_tokener_new ();
  if (tok == NULL)
    return err_make (err, ENOMEM, "vm.json");
  root = json_tokener_parse_ex (tok, text, (int) len);
  if (root == NULL || json_tokener_get_error (tok) != json_tokener_success)
    {
      json_tokener_free (tok);
      json_object_put (root);
      return err_make (err, 0, "vm.json: not valid JSON");
    }
  /* Only whitespace may follow the object. */
  for (size_t i = json_tokener_get_parse_end (tok); i < len; i++)
    if (text[i] != ' ' && text[i] != '\n' && text[i] != '\t' && text[i] != '\r')
      {
        json_tokener_free (tok);
        json_object_put (root);
        return err_make (err, 0, "vm.json: data after the JSON object");
      }
  json_tokener_free (tok);
  if (!json_object_is_type (root, json_type_object))
    {
      err_make (err, 0, "vm.json: not a JSON object");
      goto out;
    }
  if (get_int (root, "version", 1, 1, &x, err) < 0
      || get_str (root, "name", r->name, sizeof r->name, true, err) < 0
      || get_str (root, "backend", r->backend, sizeof r->backend, true, err) < 0
      || get_str (root, "image", r->image, sizeof r->image, false, err) < 0
      || get_str (root, "state", state, sizeof state, true, err) < 0)
    goto out;
  if (vm_name_check (r->name, err) < 0)
    {
      err_wrap (err, "vm.json");
      goto out;
    }
  if (vm_status_parse (state, &r->state) < 0)
    {
      err_make (err, 0, "vm.json: unknown state \"%s\"", state);
      goto out;
    }
  if (get_int (root, "created", 0, INT64_MAX, &x, err) < 0)
    goto out;
  r->created = x;
  if (get_obj (root, "spec", &spec, err) < 0 || parse_spec (spec, r, err) < 0
      || parse_vmm_env (spec, r, err) < 0)
    goto out;
  if (get_obj (root, "runtime", &rt, err) < 0 || get_int (rt, "vmm_pid", 0, INT32_MAX, &x, err) < 0)
    goto out;
  r->rt.vmm_pid = (pid_t) x;
  if (get_int (rt, "agent_host_port", 0, 65535, &x, err) < 0)
    goto out;
  r->rt.agent_host_port = (uint16_t) x;
  if (get_str (rt, "api_socket", r->rt.api_socket, sizeof r->rt.api_socket, false, err) < 0
      || get_str (rt, "vsock_socket", r->rt.vsock_socket, sizeof r->rt.vsock_socket, false, err) < 0
      || get_str (rt, "version", r->rt.version, sizeof r->rt.version, false, err) < 0
      || get_bool (rt, "shared_memory", &r->rt.shared_memory, err) < 0
      || get_bool (rt, "free_page_reporting", &r->rt.free_page_reporting, err) < 0)
    goto out;
  ret = 0;
out:
  json_object_put (root);
  return ret;
}

void
vmrec_spec (const struct vm_record *r, const char *dir, struct vm_spec *spec)
{
#define OPT(s) ((s)[0] ? (s) : NULL)
  memset (spec, 0, sizeof *spec);
  spec->name = r->name;
  spec->dir = dir;
  spec->cpus = r->cpus;
  spec->memory_mib = r->memory_mib;
  spec->kernel = r->kernel;
  spec->initrd = OPT (r->initrd);
  spec->cmdline = r->cmdline;
  spec->rootfs = OPT (r->rootfs);
  spec->rootfs_pmem = r->rootfs_pmem && spec->rootfs != NULL;
  spec->config_disk = OPT (r->config_disk);
  spec->upper_disk = OPT (r->upper_disk);
  spec->tap = OPT (r->tap);
  spec->mac = OPT (r->mac);
  spec->cgroup = OPT (r->cgroup);
  spec->memory_file = OPT (r->memory_file);
#undef OPT
  spec->agent_vsock_port = r->agent_vsock_port;
  spec->agent_tcp_port = r->agent_tcp_port;
  spec->publish = r->publish;
  spec->n_publish = r->n_publish;
}

int
vm_parse_memory (const char *s, uint64_t *mib, struct err **err)
{
  size_t digits = strspn (s, "0123456789");
  const char *p = s + digits;
  uint64_t v, mul = 1; /* in MiB */

  if (digits == 0)
    return err_make (err, 0, "bad memory size '%s' (e.g. 2G, 512M)", s);
  /* Past 2^40 the count is no size in any unit; the bound also keeps
     v * mul below from overflowing. */
  if (num_parse_u64 (s, digits, UINT64_C (1) << 40, &v) < 0)
    return err_make (err, 0, "bad memory size '%s': too large", s);
  if (strcasecmp (p, "") == 0 || strcasecmp (p, "m") == 0 || strcasecmp (p, "mb") == 0
      || strcasecmp (p, "mib") == 0)
    mul = 1;
  else if (strcasecmp (p, "g") == 0 || strcasecmp (p, "gb") == 0 || strcasecmp (p, "gib") == 0)
    mul = 1024;
  else if (strcasecmp (p, "t") == 0 || strcasecmp (p, "tb") == 0 || strcasecmp (p, "tib") == 0)
    mul = 1024 * 1024;
  else
    return err_make (err, 0, "bad memory size '%s' (e.g. 2G, 512M)", s);
  if (v == 0 || v * mul > (UINT64_C (1) << 20))
    return err_make (err, 0, "bad memory size '%s': must be 1M..1T", s);
  *mib = v * mul;
  return 0;
}
