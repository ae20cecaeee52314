/* SPDX-License-Identifier: Apache-2.0 */
#include "state/vmstate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "num.h"

#define VM_JSON_MAX (1 << 20)

static const char *const status_names[] = {
  [VM_STATUS_CREATED] = "created", [VM_STATUS_RUNNING] = "running", [VM_STATUS_PAUSED] = "paused",
  [VM_STATUS_STANDBY] = "standby", [VM_STATUS_STOPPED] = "stopped", [VM_STATUS_DEAD] = "dead",
};

const char *
vm_status_name (enum vm_status s)
{
  if ((size_t) s >= sizeof status_names / sizeof status_names[0])
    return "unknown";
  return status_names[s];
}

int
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

enum vm_status
vm_status_derive (const struct vm_facts *f)
{
  /* standby is recorded once the snapshot is complete, before the VMM is
     stopped: a chvm killed in between leaves that VMM paused.  The snapshot
     is the VM; the next locked command stops the leftover VMM
     (vmctl_open). */
  if (f->vmm_alive && f->recorded == VM_STATUS_STANDBY && f->snapshot)
    return VM_STATUS_STANDBY;
  /* A run that has not recorded its VMM yet (or was killed before it
     could; vmctl_stop_leftover). */
  if (f->vmm_alive && f->recorded == VM_STATUS_CREATED)
    return VM_STATUS_CREATED;
  if (f->vmm_alive)
    {
      /* The API is the truth when it answers; a VMM still starting or busy
         keeps the recorded state. */
      if (f->api_paused == 1)
        return VM_STATUS_PAUSED;
      if (f->api_paused == 0)
        return VM_STATUS_RUNNING;
      return f->recorded == VM_STATUS_PAUSED ? VM_STATUS_PAUSED : VM_STATUS_RUNNING;
    }
  switch (f->recorded)
    {
    case VM_STATUS_STANDBY:
      /* Standby without its snapshot cannot be restored: it is lost. */
      return f->snapshot ? VM_STATUS_STANDBY : VM_STATUS_DEAD;
    case VM_STATUS_STOPPED:
    case VM_STATUS_CREATED:
      return f->recorded;
    case VM_STATUS_RUNNING:
    case VM_STATUS_PAUSED:
    case VM_STATUS_DEAD:
    default:
      return VM_STATUS_DEAD;
    }
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

static int
mkdir_p (const char *path, mode_t mode, struct err **err)
{
  char buf[VM_PATH_MAX];
  size_t n = strlen (path);

  if (n == 0 || n >= sizeof buf)
    return err_make (err, ENAMETOOLONG, "mkdir %s", path);
  memcpy (buf, path, n + 1);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/')
      {
        *p = '\0';
        if (mkdir (buf, mode) < 0 && errno != EEXIST)
          return err_make (err, errno, "mkdir %s", buf);
        *p = '/';
      }
  if (mkdir (buf, mode) < 0 && errno != EEXIST)
    return err_make (err, errno, "mkdir %s", buf);
  return 0;
}

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
  return mkdir_p (vms, 0700, err);
}

static void
on_alarm (int sig)
{
  (void) sig; /* only there to interrupt flock() */
}

int
vmstate_lock (const char *root, int timeout_ms, struct err **err)
{
  cleanup_close int fd = -1;
  char path[VM_PATH_MAX];
  struct sigaction sa = { .sa_handler = on_alarm }, old;
  struct itimerval it = { 0 }, oldit;
  int r, saved;

  if ((size_t) snprintf (path, sizeof path, "%s/lock", root) >= sizeof path)
    return err_make (err, ENAMETOOLONG, "lock path");
  fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  if (flock (fd, LOCK_EX | LOCK_NB) == 0)
    return steal_fd (&fd);
  if (errno != EWOULDBLOCK)
    return err_make (err, errno, "flock %s", path);
  /* Someone holds it: block, with a timer (no SA_RESTART) bounding the wait. */
  sigemptyset (&sa.sa_mask);
  sigaction (SIGALRM, &sa, &old);
  it.it_value.tv_sec = timeout_ms / 1000;
  it.it_value.tv_usec = (timeout_ms % 1000) * 1000;
  setitimer (ITIMER_REAL, &it, &oldit);
  r = flock (fd, LOCK_EX);
  saved = errno;
  memset (&it, 0, sizeof it);
  setitimer (ITIMER_REAL, &it, NULL);
  sigaction (SIGALRM, &old, NULL);
  if (r < 0)
    {
      if (saved == EINTR)
        return err_make (err, 0, "another chvm command holds %s (waited %d ms)", path, timeout_ms);
      return err_make (err, saved, "flock %s", path);
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

/* ---- JSON ---------------------------------------------------------------- */

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
  add_str (spec, "netns", r->netns);
  add_str (spec, "tap", r->tap);
  add_str (spec, "mac", r->mac);
  add_str (spec, "address", r->address);
  add_int (spec, "agent_vsock_port", r->agent_vsock_port);
  add_int (spec, "agent_tcp_port", r->agent_tcp_port);
  add_int (spec, "cdp_port", r->cdp_port);
  add_str (spec, "agent_token", r->agent_token);
  if (r->vmm_uid != 0)
    add_int (spec, "vmm_uid", r->vmm_uid);
  if (r->cdp_endpoint[0])
    {
      add_str (spec, "cdp_endpoint", r->cdp_endpoint);
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
      if (vm_publish_ports (&r->publish[i]) > 1)
        add_int (p, "count", vm_publish_ports (&r->publish[i]));
      json_object_array_add (pub, p);
    }
  json_object_object_add (spec, "publish", pub);
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
    F (kernel, true),        F (initrd, false),     F (cmdline, false), F (rootfs, false),
    F (config_disk, false),  F (upper_disk, false), F (overlay, false), F (netns, false),
    F (tap, false),          F (mac, false),        F (address, false), F (agent_token, false),
    F (cdp_endpoint, false),
#undef F
  };

  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (get_str (spec, strs[i].key, strs[i].dst, strs[i].len, strs[i].required, err) < 0)
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
      struct vm_publish *d = &r->publish[i];
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
  if (get_obj (root, "spec", &spec, err) < 0 || parse_spec (spec, r, err) < 0)
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

static int
read_small (const char *path, size_t max, char **out, size_t *len, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  cleanup_free char *buf = NULL;
  struct stat st;
  size_t got = 0;

  if (fd < 0)
    return err_make (err, errno, "open %s", path);
  if (fstat (fd, &st) < 0)
    return err_make (err, errno, "stat %s", path);
  if ((size_t) st.st_size > max)
    return err_make (err, 0, "%s: larger than %zu bytes", path, max);
  buf = malloc ((size_t) st.st_size + 1);
  if (buf == NULL)
    return err_make (err, ENOMEM, "read %s", path);
  while (got < (size_t) st.st_size)
    {
      ssize_t n = TEMP_FAILURE_RETRY (read (fd, buf + got, (size_t) st.st_size - got));
      if (n < 0)
        return err_make (err, errno, "read %s", path);
      if (n == 0)
        break;
      got += (size_t) n;
    }
  buf[got] = '\0';
  *out = steal_ptr (&buf);
  *len = got;
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
  if (read_small (path, VM_JSON_MAX, &buf, &got, err) < 0)
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

static int fsync_fd (int fd, const char *path, struct err **err);

int
write_file_atomic (const char *path, const void *data, size_t len, mode_t mode, struct err **err)
{
  char tmp[VM_PATH_MAX + 16];
  cleanup_close int fd = -1;
  const char *p = data;
  size_t off = 0;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= sizeof tmp)
    return err_make (err, ENAMETOOLONG, "%s", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "create %s", tmp);
  while (off < len)
    {
      ssize_t n = TEMP_FAILURE_RETRY (write (fd, p + off, len - off));
      if (n < 0)
        {
          int saved = errno;
          unlink (tmp);
          return err_make (err, saved, "write %s", tmp);
        }
      off += (size_t) n;
    }
  if (fchmod (fd, mode) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return err_make (err, saved, "write %s", path);
    }
  if (fsync_fd (fd, tmp, err) < 0)
    {
      unlink (tmp);
      return err_wrap (err, "write %s", path);
    }
  if (vm_rename_durable (tmp, path, err) < 0)
    {
      unlink (tmp);
      return err_wrap (err, "write %s", path);
    }
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
  return write_file_atomic (path, text, strlen (text), 0600, err);
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

bool
vm_cmdline_names_dir (const char *buf, size_t len, const char *dir)
{
  size_t dl = strlen (dir);

  while (dl > 1 && dir[dl - 1] == '/')
    dl--;
  if (dl == 0)
    return false;
  /* Every occurrence of dir in each NUL-separated argument counts only at
     path component boundaries: the argument or a "path=", "unix:" or ","
     value starts there, and the path ends there or goes on below dir.  So
     VM "a"'s dir never matches ".../vms/ab/api.sock". */
  for (size_t i = 0; i < len;)
    {
      const char *arg = buf + i;
      size_t al = strnlen (arg, len - i);

      for (size_t off = 0; off + dl <= al; off++)
        {
          char before = off ? arg[off - 1] : '\0';
          char after = off + dl < al ? arg[off + dl] : '\0';

          if (memcmp (arg + off, dir, dl) != 0)
            continue;
          if (off != 0 && before != '=' && before != ':' && before != ',')
            continue;
          if (after == '\0' || after == '/' || after == ',')
            return true;
        }
      i += al + 1;
    }
  return false;
}

int
vm_cdp_upstream (const struct vm_record *r, char *host, size_t len, unsigned *port)
{
  size_t n;

  if (r->address[0])
    {
      n = strcspn (r->address, "/");
      if (n >= len)
        return -1;
      memcpy (host, r->address, n);
      host[n] = '\0';
      *port = r->cdp_port;
      return 0;
    }
  for (size_t i = 0; i < r->n_publish; i++)
    if (vm_publish_covers (&r->publish[i], false, r->cdp_port))
      {
        const char *a = r->publish[i].host_addr;
        if ((size_t) snprintf (host, len, "%s", strcmp (a, "0.0.0.0") == 0 ? "127.0.0.1" : a)
            >= len)
          return -1;
        *port = (unsigned) (r->publish[i].host_port + r->cdp_port - r->publish[i].guest_port);
        return 0;
      }
  return -1;
}

pid_t
vm_read_pid_file (const char *path)
{
  char s[24];
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  ssize_t n;
  uint64_t v;

  if (fd < 0)
    return 0;
  n = TEMP_FAILURE_RETRY (read (fd, s, sizeof s - 1));
  if (n <= 0)
    return 0;
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
    n--;
  if (num_parse_u64 (s, (size_t) n, INT32_MAX, &v) < 0 || v == 0)
    return 0;
  return (pid_t) v;
}

bool
vm_pid_is_ours (pid_t pid, const char *needle)
{
  char path[64], buf[8192];
  cleanup_close int fd = -1;
  size_t got = 0;
  ssize_t n;

  if (pid <= 0 || needle == NULL || *needle == '\0')
    return false;
  snprintf (path, sizeof path, "/proc/%d/cmdline", (int) pid);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  while (got < sizeof buf - 1
         && (n = TEMP_FAILURE_RETRY (read (fd, buf + got, sizeof buf - 1 - got))) > 0)
    got += (size_t) n;
  /* A zombie has an empty cmdline: it is not running anything. */
  if (got == 0)
    return false;
  buf[got] = '\0';
  return vm_cmdline_names_dir (buf, got, needle);
}

enum vm_status
vm_probe (const char *dir, const struct vm_record *r, vm_api_probe_fn api)
{
  struct vm_facts f = { .recorded = r->state, .api_paused = -1 };
  char snap[VM_PATH_MAX + 16];
  struct stat st;

  f.vmm_alive = vm_pid_is_ours (r->rt.vmm_pid, dir);
  if (f.vmm_alive && api != NULL)
    f.api_paused = api (r);
  snprintf (snap, sizeof snap, "%s/snapshot", dir);
  f.snapshot = stat (snap, &st) == 0 && S_ISDIR (st.st_mode);
  return vm_status_derive (&f);
}

void
vmrec_spec (const struct vm_record *r, const char *dir, struct publish *pub, struct vm_spec *spec)
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
  spec->config_disk = OPT (r->config_disk);
  spec->upper_disk = OPT (r->upper_disk);
  spec->tap = OPT (r->tap);
  spec->mac = OPT (r->mac);
#undef OPT
  spec->agent_vsock_port = r->agent_vsock_port;
  spec->agent_tcp_port = r->agent_tcp_port;
  for (size_t i = 0; i < r->n_publish && i < VM_MAX_PUBLISH; i++)
    {
      pub[i].host_addr = r->publish[i].host_addr;
      pub[i].host_port = r->publish[i].host_port;
      pub[i].guest_port = r->publish[i].guest_port;
      pub[i].count = (uint16_t) vm_publish_ports (&r->publish[i]);
      pub[i].udp = r->publish[i].udp;
    }
  spec->publish = pub;
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

/* ---- durability ---------------------------------------------------------- */

void (*vm_fsync_hook) (const char *path);

static int
fsync_fd (int fd, const char *path, struct err **err)
{
  if (fsync (fd) < 0)
    return err_make (err, errno, "fsync %s", path);
  if (vm_fsync_hook != NULL)
    vm_fsync_hook (path);
  return 0;
}

int
vm_fsync_path (const char *path, struct err **err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if (fd < 0)
    return err_make (err, errno, "open %s to fsync it", path);
  return fsync_fd (fd, path, err);
}

static int
parent_of (const char *path, char *out, size_t len, struct err **err)
{
  const char *slash = strrchr (path, '/');

  if (slash == NULL)
    return snprintf (out, len, ".") < 0 ? -1 : 0;
  if ((size_t) (slash - path) + 1 >= len)
    return err_make (err, ENAMETOOLONG, "%s", path);
  if (slash == path)
    slash++; /* the root */
  memcpy (out, path, (size_t) (slash - path));
  out[slash - path] = '\0';
  return 0;
}

int
vm_rename_durable (const char *from, const char *to, struct err **err)
{
  char pf[VM_PATH_MAX], pt[VM_PATH_MAX];

  if (parent_of (from, pf, sizeof pf, err) < 0 || parent_of (to, pt, sizeof pt, err) < 0)
    return -1;
  if (rename (from, to) < 0)
    return err_make (err, errno, "rename %s to %s", from, to);
  /* The rename is only on disk once the directory holding the new name is. */
  if (vm_fsync_path (pt, err) < 0)
    return err_wrap (err, "renamed %s to %s", from, to);
  if (strcmp (pf, pt) != 0 && vm_fsync_path (pf, err) < 0)
    return err_wrap (err, "renamed %s to %s", from, to);
  return 0;
}

/* nftw passes no context; these commands are single-threaded. */
static struct err **tree_err;

static int
fsync_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  if (flag != FTW_F && flag != FTW_DP)
    return 0; /* symlinks and the like hold no data of ours */
  return vm_fsync_path (path, tree_err) < 0 ? -1 : 0;
}

int
vm_fsync_tree (const char *dir, struct err **err)
{
  int r;

  /* FTW_DEPTH: files before the directory naming them. */
  tree_err = err;
  r = nftw (dir, fsync_one, 16, FTW_DEPTH | FTW_PHYS);
  tree_err = NULL;
  if (r < 0)
    return err_make (err, errno, "fsync %s", dir);
  if (r > 0)
    return err_wrap (err, "fsync %s", dir);
  return 0;
}

static int
rm_one (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void) st;
  (void) ftw;
  if (flag == FTW_DP)
    return rmdir (path) < 0 && errno != ENOENT ? -1 : 0;
  return unlink (path) < 0 && errno != ENOENT ? -1 : 0;
}

int
vm_rmtree (const char *path, struct err **err)
{
  if (nftw (path, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
    return err_make (err, errno, "remove %s", path);
  return 0;
}

int
vm_snapshot_commit (const char *tmp, const char *snap, struct err **err)
{
  if (vm_fsync_tree (tmp, err) < 0)
    return err_wrap (err, "snapshot %s", tmp);
  return vm_rename_durable (tmp, snap, err);
}

int
vm_snapshot_tmp (const char *dir, char *out, size_t len, struct err **err)
{
  if ((size_t) snprintf (out, len, "%s/snapshot.tmp-%d-XXXXXX", dir, (int) getpid ()) >= len)
    return err_make (err, ENAMETOOLONG, "%s/snapshot.tmp-*", dir);
  if (mkdtemp (out) == NULL)
    return err_make (err, errno, "mkdtemp %s", out);
  return 0;
}

int
vm_sweep_snapshot_tmp (const char *dir, unsigned *removed, struct err **err)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;
  unsigned n = 0;

  if (removed != NULL)
    *removed = 0;
  if (d == NULL)
    return errno == ENOENT ? 0 : err_make (err, errno, "open %s", dir);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      const char *p = de->d_name + strlen ("snapshot.tmp-");
      char path[VM_PATH_MAX + 64], *end = NULL;
      long pid;

      if (strncmp (de->d_name, "snapshot.tmp-", strlen ("snapshot.tmp-")) != 0)
        continue;
      /* snapshot.tmp-PID-XXXXXX: the standby of a live chvm is still
         writing it.  Older names carry no pid; the caller holds the state
         lock, so no standby of this chvm version runs. */
      errno = 0;
      pid = strtol (p, &end, 10);
      if (errno == 0 && end != p && *end == '-' && pid > 0 && pid <= INT32_MAX
          && (kill ((pid_t) pid, 0) == 0 || errno == EPERM))
        continue;
      if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path)
        continue;
      if (vm_rmtree (path, err) < 0)
        return err_wrap (err, "sweep an interrupted standby's snapshot");
      n++;
    }
  if (removed != NULL)
    *removed = n;
  return 0;
}

int
vm_snapshot_size (const char *dir, uint64_t *logical, uint64_t *allocated, struct err **err)
{
  cleanup_dir DIR *d = opendir (dir);
  struct dirent *de;

  *logical = *allocated = 0;
  if (d == NULL)
    return err_make (err, errno, "open %s", dir);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;

      if (fstatat (dirfd (d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return err_make (err, errno, "stat %s/%s", dir, de->d_name);
      if (!S_ISREG (st.st_mode))
        continue;
      *logical += (uint64_t) st.st_size;
      *allocated += (uint64_t) st.st_blocks * 512;
    }
  return 0;
}

/* The guest RAM a CH config.json says is all in memory-ranges: memory.size
   when nothing else holds RAM (hotplug, zones, a shared backing file CH does
   not copy).  0: unknown, only non-empty is checked. */
static int64_t
ch_dense_memory (const char *text, size_t len)
{
  struct json_tokener *tok = json_tokener_new ();
  struct json_object *root, *mem, *v;
  int64_t size = 0;

  if (tok == NULL)
    return 0;
  root = json_tokener_parse_ex (tok, text, (int) len);
  json_tokener_free (tok);
  if (root == NULL || !json_object_object_get_ex (root, "memory", &mem)
      || !json_object_is_type (mem, json_type_object))
    goto out;
  if ((json_object_object_get_ex (mem, "shared", &v) && json_object_get_boolean (v))
      || (json_object_object_get_ex (mem, "hotplug_size", &v) && json_object_get_int64 (v) != 0)
      || (json_object_object_get_ex (mem, "zones", &v) && json_object_is_type (v, json_type_array)
          && json_object_array_length (v) > 0))
    goto out;
  if (json_object_object_get_ex (mem, "size", &v) && json_object_is_type (v, json_type_int))
    size = json_object_get_int64 (v);
out:
  json_object_put (root);
  return size > 0 ? size : 0;
}

static int
snap_file (const char *dir, const char *name, struct stat *st, struct err **err)
{
  char path[VM_PATH_MAX + 32];

  if ((size_t) snprintf (path, sizeof path, "%s/%s", dir, name) >= sizeof path)
    return err_make (err, ENAMETOOLONG, "%s/%s", dir, name);
  if (stat (path, st) < 0)
    return err_make (err, errno, "snapshot %s is incomplete: no %s", dir, name);
  if (!S_ISREG (st->st_mode) || st->st_size == 0)
    return err_make (err, 0, "snapshot %s is incomplete: %s is empty", dir, name);
  return 0;
}

int
vm_snapshot_check (const char *dir, const char *backend, struct err **err)
{
  char path[VM_PATH_MAX + 32], magic[4];
  cleanup_free char *config = NULL;
  struct stat st;
  size_t len = 0;
  int64_t want;

  if (strcmp (backend, "qemu") == 0)
    {
      cleanup_close int fd = -1;

      /* The migration stream: written as memory.part and renamed once the
         writer has it all; it starts with QEMU_VM_FILE_MAGIC. */
      if (snap_file (dir, "memory", &st, err) < 0)
        return -1;
      snprintf (path, sizeof path, "%s/memory", dir);
      fd = open (path, O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        return err_make (err, errno, "open %s", path);
      if (TEMP_FAILURE_RETRY (read (fd, magic, sizeof magic)) != (ssize_t) sizeof magic
          || memcmp (magic, "QEVM", 4) != 0)
        return err_make (err, 0, "snapshot %s is damaged: memory is no QEMU migration stream", dir);
      return 0;
    }
  if (snap_file (dir, "config.json", &st, err) < 0 || snap_file (dir, "state.json", &st, err) < 0
      || snap_file (dir, "memory-ranges", &st, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/config.json", dir);
  if (read_small (path, VM_JSON_MAX, &config, &len, err) < 0)
    return err_wrap (err, "snapshot %s", dir);
  want = ch_dense_memory (config, len);
  if (want > 0 && st.st_size < want)
    return err_make (err, 0,
                     "snapshot %s is incomplete: memory-ranges has %lld bytes, less than "
                     "config.json's memory size %lld",
                     dir, (long long) st.st_size, (long long) want);
  return 0;
}

int
vm_snapshot_writer_cmd (const char *dir, const char *file, char *out, size_t len, struct err **err)
{
  if (strchr (dir, '\'') != NULL || strchr (file, '\'') != NULL)
    return err_make (err, 0, "snapshot path '%s' contains a quote", dir);
  if ((size_t) snprintf (out, len,
                         "cat > '%1$s/%2$s.part' && mv -f '%1$s/%2$s.part' '%1$s/%2$s' "
                         "|| : > '%1$s/%2$s.failed'",
                         dir, file)
      >= len)
    return err_make (err, ENAMETOOLONG, "snapshot path %s", dir);
  return 0;
}

static int
snap_state (const char *dir, const char *file)
{
  char path[VM_PATH_MAX + 64];
  struct stat st;

  snprintf (path, sizeof path, "%s/%s", dir, file);
  if (stat (path, &st) == 0)
    return 1;
  snprintf (path, sizeof path, "%s/%s.failed", dir, file);
  return stat (path, &st) == 0 ? -1 : 0;
}

int
vm_snapshot_writer_wait (const char *dir, const char *file, int timeout_ms, struct err **err)
{
  cleanup_close int ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
  struct timespec now;
  int64_t deadline;

  if (ino < 0 || inotify_add_watch (ino, dir, IN_MOVED_TO | IN_CREATE) < 0)
    return err_make (err, errno, "watch %s", dir);
  clock_gettime (CLOCK_MONOTONIC, &now);
  deadline = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
  for (;;)
    {
      struct pollfd p = { .fd = ino, .events = POLLIN };
      char evbuf[4096];
      int64_t left;
      int s = snap_state (dir, file);

      if (s > 0)
        return 0;
      if (s < 0)
        return err_make (err, EIO, "the writer of %s/%s failed (see vmm.log)", dir, file);
      clock_gettime (CLOCK_MONOTONIC, &now);
      left = deadline - ((int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000);
      if (left <= 0)
        return err_make (err, ETIMEDOUT, "the writer of %s/%s did not finish in %d ms", dir, file,
                         timeout_ms);
      if (TEMP_FAILURE_RETRY (poll (&p, 1, (int) left)) < 0)
        return err_make (err, errno, "watch %s", dir);
      while (read (ino, evbuf, sizeof evbuf) > 0)
        ;
    }
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
