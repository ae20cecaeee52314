/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QEMU backend, for hosts whose KVM cannot run a Linux guest: QEMU
 * under TCG, driven over QMP on <dir>/api.sock.
 *
 * Snapshot is QEMU's migration to a file with the VM stopped (zero pages are
 * skipped), restore is a new QEMU with the same arguments plus
 * `-incoming defer` and migrate-incoming from that file.  The agent is reached
 * over TCP through a user-net hostfwd on 127.0.0.1 (no vsock here).
 *
 * User-net connections belong to the QEMU process: every forwarded
 * connection (the agent's, a CDP client's) ends when QEMU exits, so CDP
 * clients must reconnect after a restore with user-net.  With a tap (QEMU
 * --net tap, or cloud-hypervisor) the guest's TCP connections survive a
 * restore: the tap outlives the VMM and the guest's sockets are in the
 * snapshot.
 */
#include "vmm/backend_qemu.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "sys/dial.h"
#include "sys/port.h"
#include "sys/proc.h"
#include "vmm/qmp.h"

#define QMP_START_MS 30000
#define QMP_CMD_MS 10000
#define MIGRATE_MS 300000
#define QUIT_MS 10000
#define WRITER_MS 60000 /* migration "completed" to the writer's rename */
#define MAX_ARGS 96
/* ",hostfwd=udp:" + a 63-byte address + ":65535-:65535", rounded up. */
#define HOSTFWD_MAX 96

static const char *
qemu_binary (void)
{
  const char *b = getenv ("CHVM_QEMU");
  return b != NULL && *b ? b : "qemu-system-x86_64";
}

static bool
qemu_available (char *why, size_t why_len)
{
  const char *bin = qemu_binary ();
  const char *path = getenv ("PATH");
  char buf[VM_PATH_MAX];

  if (strchr (bin, '/') != NULL)
    {
      if (access (bin, X_OK) == 0)
        return true;
      snprintf (why, why_len, "%s is not executable", bin);
      return false;
    }
  while (path != NULL && *path)
    {
      size_t n = strcspn (path, ":");
      if ((size_t) snprintf (buf, sizeof buf, "%.*s/%s", (int) n, path, bin) < sizeof buf
          && access (buf, X_OK) == 0)
        return true;
      path += n + (path[n] == ':');
    }
  snprintf (why, why_len, "%s not found on PATH (apt-get install qemu-system-x86)", bin);
  return false;
}

struct argv
{
  char *v[MAX_ARGS + 1];
  size_t n;
  bool oom;
};

static void
argv_free (struct argv *a)
{
  for (size_t i = 0; i < a->n; i++)
    free (a->v[i]);
  a->n = 0;
}

static void add (struct argv *a, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
add (struct argv *a, const char *fmt, ...)
{
  va_list ap;
  char *s;

  if (a->n >= MAX_ARGS)
    {
      a->oom = true;
      return;
    }
  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    {
      a->oom = true;
      s = NULL;
    }
  va_end (ap);
  if (s != NULL)
    a->v[a->n++] = s;
  a->v[a->n] = NULL;
}

/* QEMU option values are comma-separated key=value lists; a comma in a
   path would split it, and QEMU's escape (",,") is easy to get wrong. */
static int
check_opt_path (const char *what, const char *p, struct err **err)
{
  if (strchr (p, ',') != NULL)
    return err_make (err, 0, "%s path '%s' contains a comma, which QEMU cannot take", what, p);
  return 0;
}

static int
add_disk (struct argv *a, int idx, const char *path, const char *serial, bool ro, struct err **err)
{
  if (path == NULL)
    return 0;
  if (check_opt_path (serial, path, err) < 0)
    return -1;
  add (a, "-drive");
  add (a, "file=%s,if=none,id=d%d,format=raw%s", path, idx, ro ? ",readonly=on" : "");
  add (a, "-device");
  add (a, "virtio-blk-pci,drive=d%d,serial=%s", idx, serial);
  return 0;
}

/* -netdev: the tap, or user-net with one hostfwd per forwarded port. */
static int
netdev_arg (const struct vm_spec *spec, const struct vm_runtime *rt, char **net, struct err **err)
{
  size_t off;

  if (spec->tap != NULL)
    {
      /* A persistent tap made by net.c (it outlives this QEMU, so TCP
         connections through it survive standby/restore); --publish is
         DNAT there, not hostfwd. */
      if (check_opt_path ("tap", spec->tap, err) < 0)
        return -1;
      if (asprintf (net, "tap,id=n0,ifname=%s,script=no,downscript=no", spec->tap) < 0)
        return err_make (err, ENOMEM, "QEMU -netdev");
    }
  else
    {
      /* User-net with one hostfwd per forwarded port (QEMU has no port
         ranges), capped by BACKEND_QEMU_MAX_FWD.  Guest side: QEMU's
         default guest address 10.0.2.15. */
      size_t ports = 0, cap;
      int w;

      for (size_t i = 0; i < spec->n_publish; i++)
        ports += spec->publish[i].count ? spec->publish[i].count : 1;
      if (ports > BACKEND_QEMU_MAX_FWD)
        return err_make (err, 0, "QEMU user-net: %zu published ports, at most %d", ports,
                         BACKEND_QEMU_MAX_FWD);
      cap = (ports + 2) * HOSTFWD_MAX;
      *net = malloc (cap);
      if (*net == NULL)
        return err_make (err, ENOMEM, "QEMU -netdev");
      off = (size_t) snprintf (*net, cap, "user,id=n0");
      if (spec->agent_tcp_port != 0)
        off += (size_t) snprintf (*net + off, cap - off, ",hostfwd=tcp:127.0.0.1:%u-:%u",
                                  rt->agent_host_port, spec->agent_tcp_port);
      for (size_t i = 0; i < spec->n_publish; i++)
        {
          const struct publish *p = &spec->publish[i];
          const char *addr = p->host_addr[0] ? p->host_addr : "127.0.0.1";
          if (strchr (addr, ':') != NULL || strchr (addr, ',') != NULL)
            return err_make (err, 0, "QEMU user-net cannot publish on '%s' (IPv4 only)", addr);
          for (unsigned k = 0; k < (p->count ? p->count : 1u); k++)
            {
              w = snprintf (*net + off, cap - off, ",hostfwd=%s:%s:%u-:%u", p->udp ? "udp" : "tcp",
                            addr, p->host_port + k, p->guest_port + k);
              if (w < 0 || (size_t) w >= cap - off)
                return err_make (err, 0, "QEMU -netdev: hostfwd list too long");
              off += (size_t) w;
            }
        }
    }
  return 0;
}

/* Guest RAM, and with spec->rootfs_pmem the root image as a read-only
   virtio-pmem device: mapped shared from the file, so its pages are the
   host's page cache (one copy for every VM of the image), never written
   (readonly=on: a guest's write goes nowhere), and out of the migration
   stream (x-ignore-shared, migrate()).  A memory device needs maxmem to
   hold it beside guest RAM. */
static int
add_memory (struct argv *a, const struct vm_spec *spec, struct err **err)
{
  uint64_t size;

  add (a, "-m");
  if (!spec->rootfs_pmem)
    {
      add (a, "%llu", (unsigned long long) spec->memory_mib);
      return 0;
    }
  if (check_opt_path ("chvm-root", spec->rootfs, err) < 0
      || backend_pmem_size (spec->rootfs, &size, err) < 0)
    return -1;
  add (a, "%llu,maxmem=%lluM", (unsigned long long) spec->memory_mib,
       (unsigned long long) (spec->memory_mib + (size >> 20)));
  add (a, "-object");
  add (a, "memory-backend-file,id=rootmem,mem-path=%s,size=%llu,share=on,readonly=on", spec->rootfs,
       (unsigned long long) size);
  add (a, "-device");
  add (a, "virtio-pmem-pci,memdev=rootmem,id=rootpmem");
  return 0;
}

static int
build_argv (const struct vm_spec *spec, const struct vm_runtime *rt, bool incoming, struct argv *a,
            struct err **err)
{
  cleanup_free char *net = NULL;

  if (check_opt_path ("VM directory", spec->dir, err) < 0)
    return -1;
  add (a, "%s", qemu_binary ());
  add (a, "-name");
  add (a, "chvm-%s", spec->name);
  add (a, "-nodefaults");
  add (a, "-no-user-config");
  add (a, "-display");
  add (a, "none");
  add (a, "-no-reboot"); /* a guest reboot or poweroff ends QEMU */
  add (a, "-machine");
  add (a, "q35");
  add (a, "-accel");
  add (a, "tcg,thread=multi");
  add (a, "-cpu");
  add (a, "max");
  add (a, "-smp");
  add (a, "%u", spec->cpus);
  if (add_memory (a, spec, err) < 0)
    return -1;
  add (a, "-kernel");
  add (a, "%s", spec->kernel);
  if (spec->initrd != NULL)
    {
      add (a, "-initrd");
      add (a, "%s", spec->initrd);
    }
  add (a, "-append");
  add (a, "%s", spec->cmdline);
  if (add_disk (a, 0, spec->rootfs, "chvm-root", true, err) < 0
      || add_disk (a, 1, spec->config_disk, "chvm-config", true, err) < 0
      || add_disk (a, 2, spec->upper_disk, "chvm-upper", false, err) < 0)
    return -1;

  if (netdev_arg (spec, rt, &net, err) < 0)
    return -1;
  add (a, "-netdev");
  add (a, "%s", net);
  add (a, "-device");
  if (spec->mac != NULL)
    add (a, "virtio-net-pci,netdev=n0,mac=%s", spec->mac);
  else
    add (a, "virtio-net-pci,netdev=n0");
  add (a, "-device");
  add (a, "virtio-rng-pci");
  /* With serial_attach, a listening socket for chvm's console logger (QEMU
     drops the output while nobody is connected, and gives up on a byte a
     slow client does not take after a few retries, so the guest never
     waits on the host's disk); the guest is started (-S, then cont) only
     once the logger is attached.  Else appending keeps the boot's console
     lines across a restore. */
  add (a, "-chardev");
  if (spec->serial_attach != NULL)
    add (a, "socket,id=con0,path=%s/console.sock,server=on,wait=off", spec->dir);
  else
    add (a, "file,id=con0,path=%s/console.log,append=on", spec->dir);
  if (spec->serial_attach != NULL && !incoming)
    add (a, "-S");
  add (a, "-serial");
  add (a, "chardev:con0");
  add (a, "-qmp");
  add (a, "unix:%s,server=on,wait=off", rt->api_socket);
  if (incoming)
    {
      add (a, "-incoming");
      add (a, "defer");
    }
  if (a->oom)
    return err_make (err, ENOMEM, "QEMU command line");
  return 0;
}

static struct qmp *
connect_qmp (const struct vm_runtime *rt, int timeout_ms, struct err **err)
{
  struct qmp *q = qmp_open (rt->api_socket, timeout_ms, NULL, 0, err);
  if (q == NULL)
    err_wrap (err, "QEMU of pid %d", (int) rt->vmm_pid);
  return q;
}

/* QEMU exited or never answered: stop it and say what its log says (a
   hostfwd it could not bind, a disk it could not open). */
static int
start_failed (struct vm_runtime *rt, const char *log, const char *what, struct err **err)
{
  char last[256];

  proc_terminate (rt->vmm_pid, 2000, NULL);
  proc_log_last_line (log, last, sizeof last);
  if (last[0])
    return err_wrap (err, "%s (vmm.log: %s)", what, last);
  return err_wrap (err, "%s (see %s)", what, log);
}

/* The nft table of a VM's root-only forwards, named after its directory's
   inode: unique on the host while the VM exists (VM names repeat across
   state dirs) and the same however a command spells the path. */
static int
guard_table (const char *dir, char *out, size_t len, struct err **err)
{
  struct stat st;

  if (stat (dir, &st) < 0)
    return err_make (err, errno, "VM directory %s", dir);
  snprintf (out, len, "chvm_fwd_%llx_%llx", (unsigned long long) st.st_dev,
            (unsigned long long) st.st_ino);
  return 0;
}

/* Writes "ADDR . PORT" for each forward chvm made for itself (the agent's,
   the root_only publishes), comma-separated; returns how many (f NULL:
   only counts). */
static size_t
guard_elements (FILE *f, const struct publish *pub, size_t n, uint16_t agent_port)
{
  size_t k = 0;

  if (agent_port != 0 && f != NULL)
    fprintf (f, "127.0.0.1 . %u", (unsigned) agent_port);
  k += agent_port != 0;
  for (size_t i = 0; i < n; i++)
    if (pub[i].root_only && !pub[i].udp)
      for (unsigned j = 0; j < publish_ports (&pub[i]); j++, k++)
        if (f != NULL)
          fprintf (f, "%s%s . %u", k ? ", " : "",
                   pub[i].host_addr[0] ? pub[i].host_addr : "127.0.0.1", pub[i].host_port + j);
  return k;
}

int
backend_qemu_guard (const char *dir, const struct publish *pub, size_t n, uint16_t agent_port,
                    bool on, struct err **err)
{
  static const char *const argv[] = { "nft", "-f", "-", NULL };
  cleanup_free char *cmd = NULL;
  char table[64];
  size_t len = 0;
  FILE *f;
  int bad;

  /* Nothing of chvm's own is forwarded (a tap, CH): nft is not needed. */
  if (guard_elements (NULL, pub, n, agent_port) == 0)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (pub[i].root_only && strchr (pub[i].host_addr, ':') != NULL)
      return err_make (err, EINVAL, "root-only forward %s:%u: IPv4 only", pub[i].host_addr,
                       pub[i].host_port);
  if (guard_table (dir, table, sizeof table, err) < 0)
    return -1;
  f = open_memstream (&cmd, &len);
  if (f == NULL)
    return err_make (err, errno, "nft command");
  /* One transaction: the table made anew, or gone (adding it first makes
     the delete succeed where there is none); never half of it. */
  fprintf (f, "add table ip %s\ndelete table ip %s\n", table, table);
  if (on)
    {
      fprintf (f,
               "table ip %s {\n  chain output {\n"
               "    type filter hook output priority filter; policy accept;\n"
               "    meta skuid != 0 ip daddr . tcp dport { ",
               table);
      guard_elements (f, pub, n, agent_port);
      fputs (" } reject with tcp reset\n  }\n}\n", f);
    }
  bad = ferror (f);
  if (fclose (f) != 0 || bad)
    return err_make (err, ENOMEM, "nft command");
  if (proc_run (argv, cmd, false, err) < 0)
    return err_wrap (err, "%s the root-only forwards (nft table ip %s)", on ? "add" : "remove",
                     table);
  return 0;
}

/* Spawns QEMU and waits for QMP; fills rt. */
static int
spawn_vmm (const struct vm_spec *spec, struct vm_runtime *rt, bool incoming, struct err **err)
{
  struct argv a = { .n = 0 };
  char log[VM_PATH_MAX + 16];
  struct qmp *q;
  int r;

  memset (rt->vsock_socket, 0, sizeof rt->vsock_socket);
  if ((size_t) snprintf (rt->api_socket, sizeof rt->api_socket, "%s/api.sock", spec->dir)
      >= sizeof rt->api_socket)
    return err_make (err, ENAMETOOLONG, "QMP socket path in %s", spec->dir);
  if (unlink (rt->api_socket) < 0 && errno != ENOENT)
    return err_make (err, errno, "remove stale %s", rt->api_socket);
  if (spec->serial_attach != NULL)
    {
      char con[VM_PATH_MAX + 16];
      snprintf (con, sizeof con, "%s/console.sock", spec->dir);
      if (unlink (con) < 0 && errno != ENOENT)
        return err_make (err, errno, "remove stale %s", con);
    }
  snprintf (log, sizeof log, "%s/vmm.log", spec->dir);
  r = build_argv (spec, rt, incoming, &a, err);
  if (r == 0)
    r = proc_spawn_vmm ((const char *const *) a.v, log, spec->jail, spec->cgroup, &rt->vmm_pid,
                        err);
  argv_free (&a);
  if (r < 0)
    return r;
  if (proc_wait_socket (rt->vmm_pid, rt->api_socket, QMP_START_MS, err) < 0)
    return start_failed (rt, log, "QEMU did not start", err);
  q = qmp_open (rt->api_socket, QMP_START_MS, rt->version, sizeof rt->version, err);
  if (q == NULL)
    return start_failed (rt, log, "QEMU monitor", err);
  qmp_close (q);
  if (spec->serial_attach != NULL && spec->serial_attach (spec->dir, rt->vmm_pid, err) < 0)
    {
      proc_terminate (rt->vmm_pid, 2000, NULL);
      return err_wrap (err, "QEMU console");
    }
  return 0;
}

/* The forwards chvm made for itself, guarded before QEMU listens on them
   and unguarded again if it fails to start (vmctl_vmm_gone does it once a
   started QEMU is gone). */
static void
unguard (const struct vm_spec *spec, const struct vm_runtime *rt)
{
  cleanup_err struct err *e = NULL;

  if (spec->tap == NULL)
    backend_qemu_guard (spec->dir, spec->publish, spec->n_publish, rt->agent_host_port, false, &e);
}

/* spawn_vmm with the forwards guarded. */
static int
spawn (const struct vm_spec *spec, struct vm_runtime *rt, bool incoming, struct err **err)
{
  /* Keep the agent's host port across a restore; pick one on first start.
     With a tap the agent is reached at the guest's own address. */
  if (spec->agent_tcp_port != 0 && spec->tap == NULL && rt->agent_host_port == 0
      && port_pick ("127.0.0.1", &rt->agent_host_port, err) < 0)
    return -1;
  if (spec->tap == NULL
      && backend_qemu_guard (spec->dir, spec->publish, spec->n_publish, rt->agent_host_port, true,
                             err)
             < 0)
    return -1;
  if (spawn_vmm (spec, rt, incoming, err) < 0)
    {
      unguard (spec, rt);
      return -1;
    }
  return 0;
}

static int simple (struct vm_runtime *rt, const char *cmd, struct err **err);

static int
qemu_start (const struct vm_spec *spec, struct vm_runtime *rt, struct err **err)
{
  if (spawn (spec, rt, false, err) < 0)
    return -1;
  /* Started with -S for the console logger to attach first. */
  if (spec->serial_attach != NULL && simple (rt, "cont", err) < 0)
    {
      proc_terminate (rt->vmm_pid, 2000, NULL);
      unguard (spec, rt);
      return err_wrap (err, "start QEMU's guest");
    }
  return 0;
}

static int
simple (struct vm_runtime *rt, const char *cmd, struct err **err)
{
  struct qmp *q = connect_qmp (rt, QMP_CMD_MS, err);
  int r;

  if (q == NULL)
    return -1;
  r = qmp_execute (q, cmd, NULL, NULL, QMP_CMD_MS, err);
  qmp_close (q);
  return r;
}

static int
qemu_pause (struct vm_runtime *rt, struct err **err)
{
  return simple (rt, "stop", err);
}

static int
qemu_resume (struct vm_runtime *rt, struct err **err)
{
  return simple (rt, "cont", err);
}

static int
qemu_powerdown (struct vm_runtime *rt, struct err **err)
{
  return simple (rt, "system_powerdown", err);
}

/* The exec: migration URI runs through /bin/sh; the path is single-quoted,
   so only a quote in it could break out. */
static int
migration_uri (const char *fmt, const char *dir, char *out, size_t len, struct err **err)
{
  if (strchr (dir, '\'') != NULL)
    return err_make (err, 0, "snapshot path '%s' contains a quote", dir);
  if ((size_t) snprintf (out, len, fmt, dir) >= len)
    return err_make (err, ENAMETOOLONG, "snapshot path %s", dir);
  return 0;
}

static int
migration_done (struct json_object *data, void *opaque)
{
  struct json_object *st;
  const char *s;

  (void) opaque;
  if (data == NULL || !json_object_object_get_ex (data, "status", &st))
    return 0;
  s = json_object_get_string (st);
  return strcmp (s, "completed") == 0 || strcmp (s, "failed") == 0 || strcmp (s, "cancelled") == 0;
}

static void
add_capability (struct json_object *caps, const char *name)
{
  struct json_object *cap = json_object_new_object ();

  json_object_object_add (cap, "capability", json_object_new_string (name));
  json_object_object_add (cap, "state", json_object_new_boolean (1));
  json_object_array_add (caps, cap);
}

/* Enables MIGRATION events (and with ignore_shared, x-ignore-shared: the
   pmem root's shared file mapping stays out of the stream, and the
   restore maps the same file again), starts cmd with uri and waits for
   the end.  Both sides of one stream must agree on ignore_shared. */
static int
migrate (struct qmp *q, const char *cmd, const char *uri, bool ignore_shared, struct err **err)
{
  struct json_object *caps = json_object_new_array ();
  struct json_object *args = json_object_new_object ();
  struct json_object *data = NULL, *st;
  int r;

  add_capability (caps, "events");
  if (ignore_shared)
    add_capability (caps, "x-ignore-shared");
  json_object_object_add (args, "capabilities", caps);
  if (qmp_execute (q, "migrate-set-capabilities", args, NULL, QMP_CMD_MS, err) < 0)
    return -1;
  args = json_object_new_object ();
  json_object_object_add (args, "uri", json_object_new_string (uri));
  if (qmp_execute (q, cmd, args, NULL, QMP_CMD_MS, err) < 0
      || qmp_wait_event (q, "MIGRATION", migration_done, NULL, &data, MIGRATE_MS, err) < 0)
    return -1;
  json_object_object_get_ex (data, "status", &st);
  r = strcmp (json_object_get_string (st), "completed") == 0
          ? 0
          : err_make (err, EIO, "%s: migration %s", cmd, json_object_get_string (st));
  json_object_put (data);
  return r;
}

int
qemu_writer_cmd (const char *dir, const char *file, char *out, size_t len, struct err **err)
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
qemu_writer_wait (const char *dir, const char *file, int timeout_ms, struct err **err)
{
  cleanup_close int ino = inotify_init1 (IN_CLOEXEC | IN_NONBLOCK);
  double deadline;

  if (ino < 0 || inotify_add_watch (ino, dir, IN_MOVED_TO | IN_CREATE) < 0)
    return err_make (err, errno, "watch %s", dir);
  deadline = clock_now_ms () + timeout_ms;
  for (;;)
    {
      struct pollfd p = { .fd = ino, .events = POLLIN };
      char evbuf[4096];
      int left;
      int s = snap_state (dir, file);

      if (s > 0)
        return 0;
      if (s < 0)
        return err_make (err, EIO, "the writer of %s/%s failed (see vmm.log)", dir, file);
      left = clock_left_ms (deadline);
      if (left == 0)
        return err_make (err, ETIMEDOUT, "the writer of %s/%s did not finish in %d ms", dir, file,
                         timeout_ms);
      if (TEMP_FAILURE_RETRY (poll (&p, 1, left)) < 0)
        return err_make (err, errno, "watch %s", dir);
      while (read (ino, evbuf, sizeof evbuf) > 0)
        ;
    }
}

/* Whether the VM has a virtio-pmem device (its root: rootfs_pmem), asked
   of QEMU itself: the runtime record does not keep the spec. */
static int
has_pmem (struct qmp *q, bool *pmem, struct err **err)
{
  struct json_object *ret = NULL;

  *pmem = false;
  if (qmp_execute (q, "query-memory-devices", NULL, &ret, QMP_CMD_MS, err) < 0)
    return -1;
  for (size_t i = 0;
       json_object_is_type (ret, json_type_array) && i < json_object_array_length (ret); i++)
    {
      struct json_object *type;
      if (json_object_object_get_ex (json_object_array_get_idx (ret, i), "type", &type)
          && json_object_is_type (type, json_type_string)
          && strcmp (json_object_get_string (type), "virtio-pmem") == 0)
        *pmem = true;
    }
  json_object_put (ret);
  return 0;
}

static int
qemu_snapshot (struct vm_runtime *rt, const char *dir, struct err **err)
{
  char cmd[3 * VM_PATH_MAX + 128], uri[sizeof cmd + 8];
  struct qmp *q;
  bool pmem;
  int r;

  /* "completed" comes when QEMU has handed the stream to the writer, not
     when the writer has it in the file: the writer renames memory.part to
     memory once cat has written it all, and that is waited for. */
  if (qemu_writer_cmd (dir, "memory", cmd, sizeof cmd, err) < 0)
    return -1;
  snprintf (uri, sizeof uri, "exec:%s", cmd);
  q = connect_qmp (rt, QMP_CMD_MS, err);
  if (q == NULL)
    return -1;
  r = has_pmem (q, &pmem, err);
  if (r == 0)
    r = migrate (q, "migrate", uri, pmem, err);
  qmp_close (q);
  if (r == 0)
    r = qemu_writer_wait (dir, "memory", WRITER_MS, err);
  if (r < 0)
    return err_wrap (err, "snapshot to %s", dir);
  return 0;
}

static int
qemu_restore (const struct vm_spec *spec, const char *dir, struct vm_restore_opts *ro,
              struct vm_runtime *rt, struct phase *phases, size_t *n_phases, struct err **err)
{
  char uri[VM_PATH_MAX + 32], mem[VM_PATH_MAX + 16];
  double t = clock_now_ms ();
  struct qmp *q;
  struct stat st;
  int r;

  /* An incoming migration reads the whole stream before `cont`. */
  if (ro->want == VM_RESTORE_ONDEMAND || ro->prefault)
    return err_make (err, ENOTSUP, "qemu: %s is a cloud-hypervisor restore option",
                     ro->prefault ? "--prefault" : "--memory-restore ondemand");
  ro->mode = VM_RESTORE_COPY;
  snprintf (ro->reason, sizeof ro->reason, "qemu restores from a migration stream");

  snprintf (mem, sizeof mem, "%s/memory", dir);
  if (stat (mem, &st) < 0)
    return err_make (err, errno, "snapshot %s", mem);
  if (migration_uri ("exec:cat '%s/memory'", dir, uri, sizeof uri, err) < 0
      || spawn (spec, rt, true, err) < 0)
    return -1;
  phase_add (phases, n_phases, PHASE_VMM_START, &t);
  q = connect_qmp (rt, QMP_CMD_MS, err);
  r = q == NULL ? -1 : migrate (q, "migrate-incoming", uri, spec->rootfs_pmem, err);
  if (r == 0)
    {
      phase_add (phases, n_phases, PHASE_RESTORE, &t);
      r = qmp_execute (q, "cont", NULL, NULL, QMP_CMD_MS, err);
    }
  qmp_close (q);
  if (r < 0)
    {
      proc_terminate (rt->vmm_pid, 2000, NULL);
      unguard (spec, rt);
      return err_wrap (err, "restore from %s", dir);
    }
  phase_add (phases, n_phases, PHASE_RESUME, &t);
  return 0;
}

static int
qemu_shutdown (struct vm_runtime *rt, struct err **err)
{
  cleanup_err struct err *qerr = NULL;
  struct qmp *q;
  int r;

  if (!proc_alive_p (rt->vmm_pid))
    return 0;
  /* quit makes QEMU exit at once; the guest gets no say, as with CH's
     vmm.shutdown.  When the monitor does not answer, signals do it. */
  q = qmp_open (rt->api_socket, QMP_CMD_MS, NULL, 0, &qerr);
  if (q != NULL)
    {
      qmp_execute (q, "quit", NULL, NULL, QMP_CMD_MS, &qerr);
      qmp_close (q);
      r = proc_wait_exit (rt->vmm_pid, QUIT_MS, NULL, err);
      if (r < 0)
        return r;
      if (r == 1)
        return 0;
    }
  return proc_terminate (rt->vmm_pid, QUIT_MS / 2, err);
}

static int
qemu_agent_connect (const struct vm_runtime *rt, unsigned port, int timeout_ms, struct err **err)
{
  (void) port; /* the hostfwd already names the guest port */
  if (rt->agent_host_port == 0)
    return err_make (err, ENOTCONN, "VM has no agent port forwarded");
  return dial_tcp ("127.0.0.1", rt->agent_host_port, timeout_ms, err);
}

/* The migration stream: written as memory.part and renamed once the writer
   has it all; it starts with QEMU_VM_FILE_MAGIC. */
static int
qemu_snapshot_check (const char *dir, struct err **err)
{
  char path[VM_PATH_MAX + 32], magic[4];
  cleanup_close int fd = -1;
  struct stat st;

  if (backend_snapshot_file (dir, "memory", &st, err) < 0)
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

static int
qemu_query_paused (const struct vm_runtime *rt)
{
  cleanup_err struct err *err = NULL;
  struct json_object *ret = NULL, *st;
  struct qmp *q;
  int paused = -1;

  if (rt->api_socket[0] == '\0')
    return -1;
  q = qmp_open (rt->api_socket, 1000, NULL, 0, &err);
  if (q == NULL)
    return -1;
  if (qmp_execute (q, "query-status", NULL, &ret, 1000, &err) == 0
      && json_object_object_get_ex (ret, "status", &st))
    paused = strcmp (json_object_get_string (st), "running") == 0 ? 0 : 1;
  json_object_put (ret);
  qmp_close (q);
  return paused;
}

const struct backend_ops backend_qemu = {
  .name = "qemu",
  .caps = BACKEND_CAP_USER_NET,
  .available = qemu_available,
  .start = qemu_start,
  .pause = qemu_pause,
  .resume = qemu_resume,
  .snapshot = qemu_snapshot,
  .restore = qemu_restore,
  .shutdown = qemu_shutdown,
  .powerdown = qemu_powerdown,
  .agent_connect = qemu_agent_connect,
  .query_paused = qemu_query_paused,
  .snapshot_check = qemu_snapshot_check,
};
