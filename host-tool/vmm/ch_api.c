/* SPDX-License-Identifier: Apache-2.0 */
#include "vmm/ch_api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "sys/json.h"
#include "sys/proc.h"

#define CH_DEFAULT_TIMEOUT_MS 5000L
#define CH_SLOW_TIMEOUT_MS (10 * 60 * 1000L)
#define CH_VERSION_TIMEOUT_MS 5000
#define UFFD_DEV "/dev/userfaultfd"

const char *
ch_binary (void)
{
  const char *b = getenv ("CLOUD_HYPERVISOR");

  return b != NULL && *b != '\0' ? b : "cloud-hypervisor";
}

int
ch_parse_version (const char *s, int *major, int *minor)
{
  const char *p = s;
  char *end;
  long ma, mi = 0;

  if (s == NULL)
    return -1;
  /* The number follows the last space ("cloud-hypervisor v53.0"), if any. */
  if (strrchr (s, ' ') != NULL)
    p = strrchr (s, ' ') + 1;
  if (*p == 'v' || *p == 'V')
    p++;
  if (!isdigit ((unsigned char) *p))
    return -1;
  errno = 0;
  ma = strtol (p, &end, 10);
  if (errno != 0 || ma < 0 || ma > 100000)
    return -1;
  if (*end == '.' && isdigit ((unsigned char) end[1]))
    {
      mi = strtol (end + 1, &end, 10);
      if (errno != 0 || mi < 0 || mi > 100000)
        return -1;
    }
  *major = (int) ma;
  *minor = (int) mi;
  return 0;
}

int
ch_binary_version (const char *binary, char *out, size_t len, struct err **err)
{
  const char *argv[] = { binary ? binary : ch_binary (), "--version", NULL };
  int r = proc_capture_line (argv, out, len, CH_VERSION_TIMEOUT_MS, err);

  if (r < 0)
    return err_wrap (err, "%s --version", argv[0]);
  return 0;
}

/* --- JSON ------------------------------------------------------------------ */

static int
add_str (struct json_object *o, const char *key, const char *val)
{
  struct json_object *s = json_object_new_string (val);

  if (s == NULL || json_object_object_add (o, key, s) < 0)
    {
      json_object_put (s);
      return -1;
    }
  return 0;
}

static int
add_obj (struct json_object *o, const char *key, struct json_object *v)
{
  if (v == NULL || json_object_object_add (o, key, v) < 0)
    {
      json_object_put (v);
      return -1;
    }
  return 0;
}

static int
add_disk (struct json_object *disks, const char *path, bool readonly, const char *serial)
{
  struct json_object *d = json_object_new_object ();

  if (d == NULL || add_str (d, "path", path) < 0
      || add_obj (d, "readonly", json_object_new_boolean (readonly)) < 0
      || add_str (d, "serial", serial) < 0 || json_object_array_add (disks, d) < 0)
    {
      json_object_put (d);
      return -1;
    }
  return 0;
}

/* {"mode":"File","file":"<dir>/<name>"} */
/* mode "File" (key "file") or "Socket" (key "socket"): DIR/name. */
static struct json_object *
path_output (const char *dir, const char *name, bool socket)
{
  struct json_object *o = json_object_new_object ();
  char path[4096];
  int n = snprintf (path, sizeof path, "%s/%s", dir, name);

  if (o == NULL || n < 0 || (size_t) n >= sizeof path
      || add_str (o, "mode", socket ? "Socket" : "File") < 0
      || add_str (o, socket ? "socket" : "file", path) < 0)
    {
      json_object_put (o);
      return NULL;
    }
  return o;
}

/* memory.size 0 and one zone, all of guest RAM, shared, in the file
   spec->memory_file (a template's: vmm/ch_clone.h); no balloon. */
static int
config_memory_zone (struct json_object *mem, const struct vm_spec *spec)
{
  struct json_object *zones = json_object_new_array (), *zone = json_object_new_object ();

  if (add_obj (mem, "size", json_object_new_int64 (0)) < 0 || add_obj (mem, "zones", zones) < 0
      || zone == NULL || json_object_array_add (zones, zone) < 0)
    {
      json_object_put (zone);
      return -1;
    }
  if (add_str (zone, "id", "mem0") < 0
      || add_obj (zone, "size", json_object_new_int64 ((int64_t) (spec->memory_mib << 20))) < 0
      || add_str (zone, "file", spec->memory_file) < 0
      || add_obj (zone, "shared", json_object_new_boolean (true)) < 0)
    return -1;
  return 0;
}

/* cpus, memory (private anonymous unless the spec says shared: CH v52+
   writes a memfd's holes as holes (SEEK_DATA), private memory densely;
   nothing else maps the memfd) and, for free page reporting only, a
   balloon of size 0: the guest's virtio_balloon reports freed 2 MiB blocks
   (page_reporting) and CH punches them out of guest RAM (MADV_DONTNEED,
   and PUNCH_HOLE on a memfd); deflate_on_oom is moot at size 0. */
static int
config_cpu_memory (struct json_object *cfg, const struct vm_spec *spec)
{
  struct json_object *cpus = json_object_new_object (), *mem;

  if (add_obj (cfg, "cpus", cpus) < 0
      || add_obj (cpus, "boot_vcpus", json_object_new_int ((int) spec->cpus)) < 0
      || add_obj (cpus, "max_vcpus", json_object_new_int ((int) spec->cpus)) < 0)
    return -1;
  mem = json_object_new_object ();
  if (spec->memory_file != NULL)
    return add_obj (cfg, "memory", mem) < 0 || config_memory_zone (mem, spec) < 0 ? -1 : 0;
  if (add_obj (cfg, "memory", mem) < 0
      || add_obj (mem, "size", json_object_new_int64 ((int64_t) (spec->memory_mib << 20))) < 0
      || add_obj (mem, "shared", json_object_new_boolean (spec->shared_memory == VM_ON)) < 0)
    return -1;
  if (spec->free_page_reporting == VM_ON)
    {
      struct json_object *balloon = json_object_new_object ();
      if (add_obj (cfg, "balloon", balloon) < 0
          || add_obj (balloon, "size", json_object_new_int64 (0)) < 0
          || add_obj (balloon, "free_page_reporting", json_object_new_boolean (true)) < 0)
        return -1;
    }
  return 0;
}

/* The root image also as virtio-pmem (/dev/pmem0 in the guest, mounted
   with DAX): CH opens it read-only and maps it privately
   (discard_writes), so the guest never writes the shared image and its
   pages stay the host's page cache.  It is in the config, so a restore
   maps it again; the snapshot holds none of it. */
static int
add_pmem (struct json_object *cfg, const char *path)
{
  struct json_object *arr = json_object_new_array (), *p = json_object_new_object ();

  if (add_obj (cfg, "pmem", arr) < 0 || p == NULL || json_object_array_add (arr, p) < 0)
    {
      json_object_put (p);
      return -1;
    }
  if (add_str (p, "file", path) < 0
      || add_obj (p, "discard_writes", json_object_new_boolean (1)) < 0)
    return -1;
  return 0;
}

/* The payload, the disks by serial, the root's pmem, the tap. */
static int
config_payload_devices (struct json_object *cfg, const struct vm_spec *spec)
{
  struct json_object *payload = json_object_new_object (), *disks;

  if (add_obj (cfg, "payload", payload) < 0 || add_str (payload, "kernel", spec->kernel) < 0
      || (spec->initrd && add_str (payload, "initramfs", spec->initrd) < 0)
      || (spec->cmdline && add_str (payload, "cmdline", spec->cmdline) < 0))
    return -1;
  if (spec->rootfs || spec->config_disk || spec->upper_disk)
    {
      disks = json_object_new_array ();
      if (add_obj (cfg, "disks", disks) < 0
          || (spec->rootfs && add_disk (disks, spec->rootfs, true, "chvm-root") < 0)
          || (spec->config_disk && add_disk (disks, spec->config_disk, true, "chvm-config") < 0)
          || (spec->upper_disk && add_disk (disks, spec->upper_disk, false, "chvm-upper") < 0))
        return -1;
    }
  if (spec->rootfs_pmem && add_pmem (cfg, spec->rootfs) < 0)
    return -1;
  if (spec->tap)
    {
      struct json_object *nets = json_object_new_array (), *net = json_object_new_object ();
      if (add_obj (cfg, "net", nets) < 0 || net == NULL || json_object_array_add (nets, net) < 0)
        {
          json_object_put (net);
          return -1;
        }
      if (add_str (net, "tap", spec->tap) < 0 || (spec->mac && add_str (net, "mac", spec->mac) < 0))
        return -1;
    }
  return 0;
}

/* Landlock from vm.create on: CH allows its payload, disks, serial file,
   vsock socket, rng and /dev/net/tun itself; the VM dir is for snapshots
   (standby writes snapshot.tmp-* there) and CH's own files. */
static int
config_landlock (struct json_object *cfg, const struct vm_spec *spec)
{
  struct json_object *rules = json_object_new_array (), *rule = json_object_new_object ();

  if (add_obj (cfg, "landlock_enable", json_object_new_boolean (true)) < 0
      || add_obj (cfg, "landlock_rules", rules) < 0 || rule == NULL
      || add_str (rule, "path", spec->dir) < 0 || add_str (rule, "access", "rw") < 0
      || json_object_array_add (rules, rule) < 0)
    return -1;
  /* Opening a tap, CH reads /sys/class/net/TAP/tun_flags (a link into
     /sys/devices/virtual/net). */
  if (spec->tap)
    {
      rule = json_object_new_object ();
      if (rule == NULL || add_str (rule, "path", "/sys/devices/virtual/net") < 0
          || add_str (rule, "access", "r") < 0 || json_object_array_add (rules, rule) < 0)
        return -1;
    }
  /* An ondemand restore (v52+) opens /dev/userfaultfd to serve the
     guest's faults; a rule for a path that is not there would fail
     vm.create. */
  if (access (UFFD_DEV, F_OK) == 0)
    {
      rule = json_object_new_object ();
      if (rule == NULL || add_str (rule, "path", UFFD_DEV) < 0 || add_str (rule, "access", "rw") < 0
          || json_object_array_add (rules, rule) < 0)
        return -1;
    }
  return 0;
}

struct json_object *
ch_vm_config (const struct vm_spec *spec, struct err **err)
{
  cleanup_json struct json_object *cfg = json_object_new_object ();
  struct json_object *rng, *console;

  if (spec->dir == NULL || spec->dir[0] != '/')
    return err_make (err, EINVAL, "VM directory must be an absolute path"), NULL;
  if (spec->kernel == NULL)
    return err_make (err, EINVAL, "VM config needs a kernel"), NULL;
  if (spec->cpus == 0 || spec->memory_mib == 0 || spec->memory_mib > (UINT64_MAX >> 20))
    return err_make (err, EINVAL, "VM config needs cpus >= 1 and a memory size"), NULL;
  if (cfg == NULL || config_cpu_memory (cfg, spec) < 0 || config_payload_devices (cfg, spec) < 0)
    goto oom;

  if (spec->agent_vsock_port != 0)
    {
      struct json_object *vsock = json_object_new_object ();
      char path[4096];
      int n = snprintf (path, sizeof path, "%s/vsock.sock", spec->dir);

      if (n < 0 || (size_t) n >= sizeof path)
        return err_make (err, ENAMETOOLONG, "vsock socket path in %s", spec->dir), NULL;
      if (add_obj (cfg, "vsock", vsock) < 0 || add_obj (vsock, "cid", json_object_new_int64 (3)) < 0
          || add_str (vsock, "socket", path) < 0)
        goto oom;
    }

  /* One console, the serial port, into console.log: init opens /dev/console
     before the modules phase, when virtio_console (hvc0) does not exist yet,
     so its phase lines can only go to ttyS0 (the kernel's cmdline says so).
     With serial_attach, CH listens on console.sock and chvm's console
     logger writes console.log with a size cap; else CH appends to it. */
  console = json_object_new_object ();
  if (add_obj (cfg, "console", console) < 0 || add_str (console, "mode", "Off") < 0
      || add_obj (cfg, "serial",
                  spec->serial_attach ? path_output (spec->dir, "console.sock", true)
                                      : path_output (spec->dir, "console.log", false))
             < 0)
    goto oom;

  rng = json_object_new_object ();
  if (add_obj (cfg, "rng", rng) < 0 || add_str (rng, "src", "/dev/urandom") < 0)
    goto oom;
  if (spec->landlock && config_landlock (cfg, spec) < 0)
    goto oom;
  return steal_ptr (&cfg);

oom:
  return err_make (err, ENOMEM, "building the VM config"), NULL;
}

struct json_object *
ch_restore_config (const char *dir, const struct ch_restore_opts *o, int version_major,
                   struct err **err)
{
  cleanup_json struct json_object *cfg = json_object_new_object ();
  char url[4096];
  int n;

  if (dir == NULL || dir[0] != '/')
    return err_make (err, EINVAL, "snapshot directory must be an absolute path"), NULL;
  n = snprintf (url, sizeof url, "file://%s", dir);
  if (n < 0 || (size_t) n >= sizeof url)
    return err_make (err, ENAMETOOLONG, "snapshot directory %s", dir), NULL;
  if (cfg == NULL || add_str (cfg, "source_url", url) < 0
      || add_obj (cfg, "prefault", json_object_new_boolean (o->prefault)) < 0)
    goto oom;
  /* Older versions ignore or reject fields they do not know; only send
     what the running version understands. */
  if (version_major >= CH_VERSION_RESTORE_MODES)
    {
      if (add_str (cfg, "memory_restore_mode", o->mode == CH_RESTORE_ONDEMAND ? "OnDemand" : "Copy")
              < 0
          || add_obj (cfg, "resume", json_object_new_boolean (o->resume)) < 0)
        goto oom;
    }
  else if (o->mode == CH_RESTORE_ONDEMAND)
    return err_make (err, ENOTSUP,
                     "on-demand memory restore needs cloud-hypervisor v%d or newer (this is v%d)",
                     CH_VERSION_RESTORE_MODES, version_major),
           NULL;
  return steal_ptr (&cfg);

oom:
  return err_make (err, ENOMEM, "building the restore config"), NULL;
}

int
ch_restore_pick (int version_major, bool uffd, const char *uffd_why, struct vm_restore_opts *ro,
                 struct err **err)
{
  ro->mode = VM_RESTORE_COPY;
  if (ro->want == VM_RESTORE_COPY)
    return snprintf (ro->reason, sizeof ro->reason, "asked for"), 0;
  if (version_major < CH_VERSION_RESTORE_MODES)
    snprintf (ro->reason, sizeof ro->reason, "cloud-hypervisor v%d has no ondemand restore (v%d+)",
              version_major, CH_VERSION_RESTORE_MODES);
  else if (ro->prefault)
    snprintf (ro->reason, sizeof ro->reason, "prefault reads all memory before the guest runs");
  else if (ro->file_private)
    snprintf (ro->reason, sizeof ro->reason, CH_RESTORE_COW_WHY);
  else if (ro->shared_memory && ro->want == VM_RESTORE_AUTO
           && version_major >= CH_VERSION_UFFD_FILL)
    /* Measured (docs/FINDINGS.md): 30 s after an ondemand restore of a
       700 MiB snapshot of 2 GiB the VMM held all 2 GiB (the background fill
       writes the holes too), against 700 MiB after a copy restore; and the
       guest does not report pages it already reported once. */
    snprintf (ro->reason, sizeof ro->reason,
              "a sparse snapshot: copy reads only its data, an ondemand restore fills all of "
              "guest RAM behind");
  else if (!uffd)
    snprintf (ro->reason, sizeof ro->reason, "no userfaultfd: %s", uffd_why);
  else
    {
      ro->mode = VM_RESTORE_ONDEMAND;
      snprintf (ro->reason, sizeof ro->reason, "%s: %s",
                ro->want == VM_RESTORE_ONDEMAND ? "asked for" : "cloud-hypervisor v52+", uffd_why);
      return 0;
    }
  if (ro->want == VM_RESTORE_ONDEMAND)
    return err_make (err, ENOTSUP, "ondemand memory restore: %s", ro->reason);
  return 0;
}

/* Parses body as one JSON object; NULL with an error otherwise. */
static struct json_object *
parse_object (const char *body, size_t len, const char *what, struct err **err)
{
  struct json_tokener *tok;
  struct json_object *o;
  enum json_tokener_error je;

  if (len > CH_RESPONSE_MAX || len > (size_t) INT32_MAX)
    return err_make (err, EPROTO, "%s: answer too large (%zu bytes)", what, len), NULL;
  tok = json_tokener_new ();
  if (tok == NULL)
    return err_make (err, ENOMEM, "%s: json tokener", what), NULL;
  o = json_tokener_parse_ex (tok, body, (int) len);
  je = json_tokener_get_error (tok);
  /* A complete value must end the body (trailing whitespace aside). */
  if (o != NULL && je == json_tokener_success)
    {
      size_t off = json_tokener_get_parse_end (tok);
      while (off < len && isspace ((unsigned char) body[off]))
        off++;
      if (off != len)
        je = json_tokener_error_parse_unexpected;
    }
  json_tokener_free (tok);
  if (o == NULL || je != json_tokener_success)
    {
      json_object_put (o);
      return err_make (err, EPROTO, "%s: malformed JSON in answer (%s)", what,
                       o == NULL && je == json_tokener_success ? "empty"
                       : je == json_tokener_continue           ? "truncated"
                                                               : json_tokener_error_desc (je)),
             NULL;
    }
  if (!json_object_is_type (o, json_type_object))
    {
      json_object_put (o);
      return err_make (err, EPROTO, "%s: answer is not a JSON object", what), NULL;
    }
  return o;
}

static int
get_u64 (struct json_object *o, const char *key, uint64_t *out)
{
  struct json_object *v;

  if (!json_object_object_get_ex (o, key, &v) || !json_object_is_type (v, json_type_int))
    return -1;
  errno = 0;
  int64_t i = json_object_get_int64 (v);
  if (i < 0 || errno != 0)
    return -1;
  *out = (uint64_t) i;
  return 0;
}

int
ch_parse_info (const char *body, size_t len, struct ch_vm_info *info, struct err **err)
{
  cleanup_json struct json_object *o = parse_object (body, len, "vm.info", err);
  struct json_object *state, *cfg, *cpus, *mem;
  const char *s;
  uint64_t vcpus = 0;

  if (o == NULL)
    return -1 - EPROTO;
  memset (info, 0, sizeof *info);
  if (!json_object_object_get_ex (o, "state", &state)
      || !json_object_is_type (state, json_type_string))
    return err_make (err, EPROTO, "vm.info: answer has no \"state\" string");
  s = json_object_get_string (state);
  if (strcmp (s, "Created") && strcmp (s, "Running") && strcmp (s, "Shutdown")
      && strcmp (s, "Paused"))
    return err_make (err, EPROTO, "vm.info: unknown VM state \"%.32s\"", s);
  snprintf (info->state, sizeof info->state, "%s", s);
  if (!json_object_object_get_ex (o, "config", &cfg)
      || !json_object_is_type (cfg, json_type_object))
    return err_make (err, EPROTO, "vm.info: answer has no \"config\" object");
  if (json_object_object_get_ex (cfg, "cpus", &cpus) && json_object_is_type (cpus, json_type_object)
      && get_u64 (cpus, "boot_vcpus", &vcpus) == 0 && vcpus <= 4096)
    info->boot_vcpus = (unsigned) vcpus;
  if (json_object_object_get_ex (cfg, "memory", &mem)
      && json_object_is_type (mem, json_type_object))
    get_u64 (mem, "size", &info->memory_size);
  get_u64 (o, "memory_actual_size", &info->memory_actual_size);
  return 0;
}

int
ch_parse_ping (const char *body, size_t len, char *version, size_t vlen, struct err **err)
{
  cleanup_json struct json_object *o = parse_object (body, len, "vmm.ping", err);
  struct json_object *v;

  if (o == NULL)
    return -1 - EPROTO;
  if (!json_object_object_get_ex (o, "version", &v) || !json_object_is_type (v, json_type_string))
    return err_make (err, EPROTO, "vmm.ping: answer has no \"version\" string");
  snprintf (version, vlen, "%s", json_object_get_string (v));
  return 0;
}

static void
append_text (char *out, size_t outlen, size_t *used, const char *s, size_t n)
{
  for (size_t i = 0; i < n && *used + 1 < outlen; i++)
    out[(*used)++] = iscntrl ((unsigned char) s[i]) ? ' ' : s[i];
  out[*used] = '\0';
}

void
ch_error_text (const char *body, size_t len, char *out, size_t outlen)
{
  struct json_tokener *tok;
  struct json_object *o = NULL;
  size_t used = 0;

  if (outlen == 0)
    return;
  out[0] = '\0';
  if (body == NULL || len == 0)
    {
      snprintf (out, outlen, "(no message)");
      return;
    }
  tok = len <= CH_RESPONSE_MAX ? json_tokener_new () : NULL;
  if (tok != NULL)
    {
      o = json_tokener_parse_ex (tok, body, (int) len);
      json_tokener_free (tok);
    }
  if (o != NULL && json_object_is_type (o, json_type_array) && json_object_array_length (o) > 0)
    {
      size_t n = json_object_array_length (o);
      for (size_t i = 0; i < n; i++)
        {
          struct json_object *e = json_object_array_get_idx (o, i);
          const char *s;
          if (!json_object_is_type (e, json_type_string))
            continue;
          s = json_object_get_string (e);
          if (used > 0)
            append_text (out, outlen, &used, ": ", 2);
          append_text (out, outlen, &used, s, strlen (s));
        }
    }
  else if (o != NULL && json_object_is_type (o, json_type_string))
    {
      const char *s = json_object_get_string (o);
      append_text (out, outlen, &used, s, strlen (s));
    }
  if (used == 0)
    {
      /* Not the JSON we know: the text itself, trimmed of trailing space. */
      while (len > 0 && isspace ((unsigned char) body[len - 1]))
        len--;
      append_text (out, outlen, &used, body, len);
    }
  json_object_put (o);
}

/* --- HTTP -------------------------------------------------------------------- */

struct buf
{
  char *data;
  size_t len;
  bool overflow;
};

static size_t
on_body (char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct buf *b = userdata;
  size_t n = size * nmemb;
  char *p;

  if (n > CH_RESPONSE_MAX - b->len)
    {
      b->overflow = true;
      return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
  p = realloc (b->data, b->len + n + 1);
  if (p == NULL)
    return 0;
  memcpy (p + b->len, ptr, n);
  b->data = p;
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

static inline void
cleanup_curl_fn (CURL **c)
{
  if (*c != NULL)
    curl_easy_cleanup (*c);
}

static inline void
cleanup_slist_fn (struct curl_slist **l)
{
  curl_slist_free_all (*l);
}

static inline void
cleanup_buf_fn (struct buf *b)
{
  free (b->data);
}

int
ch_client_init (struct ch_client *c, const char *socket, struct err **err)
{
  static bool curl_ready;

  memset (c, 0, sizeof *c);
  if (strlen (socket) >= sizeof c->socket)
    return err_make (err, ENAMETOOLONG, "API socket path %s", socket);
  snprintf (c->socket, sizeof c->socket, "%s", socket);
  c->timeout_ms = CH_DEFAULT_TIMEOUT_MS;
  c->slow_timeout_ms = CH_SLOW_TIMEOUT_MS;
  if (!curl_ready)
    {
      if (curl_global_init (CURL_GLOBAL_NOTHING) != CURLE_OK)
        return err_make (err, 0, "curl_global_init failed");
      curl_ready = true;
    }
  return 0;
}

/* One request.  Fills *body (NUL-terminated, caller frees; may be NULL)
   for a 2xx answer; any other outcome is an error naming `call`. */
static int
request (struct ch_client *c, const char *method, const char *call, const char *json,
         long timeout_ms, char **body, size_t *body_len, struct err **err)
{
  __attribute__ ((cleanup (cleanup_curl_fn))) CURL *h = curl_easy_init ();
  __attribute__ ((cleanup (cleanup_slist_fn))) struct curl_slist *hdr = NULL;
  __attribute__ ((cleanup (cleanup_buf_fn))) struct buf resp = { 0 };
  char url[128], curl_msg[CURL_ERROR_SIZE] = "";
  long status = 0, os_errno = 0;
  CURLcode rc;

  if (h == NULL)
    return err_make (err, ENOMEM, "%s: curl_easy_init", call);
  snprintf (url, sizeof url, "http://localhost/api/v1/%s", call);
  /* Expect: 100-continue would add a round trip micro-http does not do. */
  hdr = curl_slist_append (NULL, "Expect:");
  if (json != NULL && hdr != NULL)
    hdr = curl_slist_append (hdr, "Content-Type: application/json");
  if (hdr == NULL)
    return err_make (err, ENOMEM, "%s: headers", call);
  curl_easy_setopt (h, CURLOPT_UNIX_SOCKET_PATH, c->socket);
  curl_easy_setopt (h, CURLOPT_URL, url);
  curl_easy_setopt (h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt (h, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp (method, "PUT") == 0)
    {
      curl_easy_setopt (h, CURLOPT_POSTFIELDS, json ? json : "");
      curl_easy_setopt (h, CURLOPT_POSTFIELDSIZE, json ? (long) strlen (json) : 0L);
    }
  curl_easy_setopt (h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt (h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt (h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt (h, CURLOPT_ERRORBUFFER, curl_msg);
  curl_easy_setopt (h, CURLOPT_PROTOCOLS_STR, "http");

  rc = curl_easy_perform (h);
  if (rc == CURLE_WRITE_ERROR && resp.overflow)
    return err_make (err, EPROTO, "%s: cloud-hypervisor's answer exceeds %d bytes", call,
                     CH_RESPONSE_MAX);
  if (rc == CURLE_OPERATION_TIMEDOUT)
    return err_make (err, ETIMEDOUT, "%s: no answer from cloud-hypervisor within %ld ms", call,
                     timeout_ms);
  if (rc == CURLE_COULDNT_CONNECT)
    {
      curl_easy_getinfo (h, CURLINFO_OS_ERRNO, &os_errno);
      return err_make (err, os_errno ? (int) os_errno : ECONNREFUSED,
                       "%s: cannot reach cloud-hypervisor at %s", call, c->socket);
    }
  if (rc != CURLE_OK)
    return err_make (err, EPROTO, "%s: talking to cloud-hypervisor at %s: %s", call, c->socket,
                     curl_msg[0] ? curl_msg : curl_easy_strerror (rc));
  curl_easy_getinfo (h, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299)
    {
      char text[1024];
      ch_error_text (resp.data, resp.len, text, sizeof text);
      return err_make (err, 0, "%s: cloud-hypervisor answered HTTP %ld: %s", call, status, text);
    }
  if (body != NULL)
    {
      *body = steal_ptr (&resp.data);
      *body_len = resp.len;
    }
  return 0;
}

static int
put (struct ch_client *c, const char *call, struct json_object *cfg, long timeout_ms,
     struct err **err)
{
  const char *json = NULL;

  if (cfg != NULL)
    {
      json = json_object_to_json_string_ext (cfg, JSON_C_TO_STRING_PLAIN
                                                      | JSON_C_TO_STRING_NOSLASHESCAPE);
      if (json == NULL)
        return err_make (err, ENOMEM, "%s: serialising the request", call);
    }
  return request (c, "PUT", call, json, timeout_ms, NULL, NULL, err);
}

static int
get (struct ch_client *c, const char *call, char **body, size_t *len, struct err **err)
{
  int r = request (c, "GET", call, NULL, c->timeout_ms, body, len, err);

  if (r == 0 && *body == NULL)
    return err_make (err, EPROTO, "%s: empty answer from cloud-hypervisor", call);
  return r;
}

int
ch_ping (struct ch_client *c, char *version, size_t vlen, struct err **err)
{
  cleanup_free char *body = NULL;
  size_t len = 0;
  int r = get (c, "vmm.ping", &body, &len, err);

  if (r < 0)
    return r;
  r = ch_parse_ping (body, len, version, vlen, err);
  if (r < 0)
    return r;
  if (ch_parse_version (version, &c->version_major, &c->version_minor) < 0)
    return err_make (err, EPROTO, "vmm.ping: cannot read version \"%s\"", version);
  return 0;
}

int
ch_create (struct ch_client *c, const struct vm_spec *spec, struct err **err)
{
  cleanup_json struct json_object *cfg = ch_vm_config (spec, err);

  if (cfg == NULL)
    return err_wrap (err, "vm.create");
  return put (c, "vm.create", cfg, c->timeout_ms, err);
}

int
ch_boot (struct ch_client *c, struct err **err)
{
  return put (c, "vm.boot", NULL, c->timeout_ms, err);
}

int
ch_pause (struct ch_client *c, struct err **err)
{
  return put (c, "vm.pause", NULL, c->timeout_ms, err);
}

int
ch_resume (struct ch_client *c, struct err **err)
{
  return put (c, "vm.resume", NULL, c->timeout_ms, err);
}

int
ch_snapshot (struct ch_client *c, const char *dir, struct err **err)
{
  cleanup_json struct json_object *cfg = json_object_new_object ();
  char url[4096];
  int n;

  if (dir[0] != '/')
    return err_make (err, EINVAL, "vm.snapshot: %s is not an absolute path", dir);
  n = snprintf (url, sizeof url, "file://%s", dir);
  if (n < 0 || (size_t) n >= sizeof url)
    return err_make (err, ENAMETOOLONG, "vm.snapshot: %s", dir);
  if (cfg == NULL || add_str (cfg, "destination_url", url) < 0)
    return err_make (err, ENOMEM, "vm.snapshot: request");
  return put (c, "vm.snapshot", cfg, c->slow_timeout_ms, err);
}

int
ch_restore (struct ch_client *c, const char *dir, const struct ch_restore_opts *o, bool *resumed,
            struct err **err)
{
  cleanup_json struct json_object *cfg = ch_restore_config (dir, o, c->version_major, err);
  int r;

  if (cfg == NULL)
    return err_wrap (err, "vm.restore");
  r = put (c, "vm.restore", cfg, c->slow_timeout_ms, err);
  if (r == 0 && resumed != NULL)
    *resumed = o->resume && c->version_major >= CH_VERSION_RESTORE_MODES;
  return r;
}

int
ch_info (struct ch_client *c, struct ch_vm_info *info, struct err **err)
{
  cleanup_free char *body = NULL;
  size_t len = 0;
  int r = get (c, "vm.info", &body, &len, err);

  return r < 0 ? r : ch_parse_info (body, len, info, err);
}

int
ch_shutdown (struct ch_client *c, struct err **err)
{
  return put (c, "vm.shutdown", NULL, c->timeout_ms, err);
}

int
ch_power_button (struct ch_client *c, struct err **err)
{
  return put (c, "vm.power-button", NULL, c->timeout_ms, err);
}

int
ch_vmm_shutdown (struct ch_client *c, struct err **err)
{
  /* 200 (older) and 204 (newer) are both success: request() takes any 2xx. */
  return put (c, "vmm.shutdown", NULL, c->timeout_ms, err);
}

int
ch_counters (struct ch_client *c, struct json_object **out, struct err **err)
{
  cleanup_free char *body = NULL;
  size_t len = 0;
  int r = get (c, "vm.counters", &body, &len, err);

  if (r < 0)
    return r;
  *out = parse_object (body, len, "vm.counters", err);
  return *out ? 0 : -1 - EPROTO;
}
