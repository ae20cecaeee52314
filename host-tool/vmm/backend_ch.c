/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Cloud Hypervisor backend: one `cloud-hypervisor` process per VM,
 * driven through its REST API (ch_api.c).  Files in the VM directory:
 * api.sock, vsock.sock, vmm.log (the VMM's stdout+stderr), events.json
 * (--event-monitor), console.log (the serial port; virtio-console is off), vmm.pid.
 * With spec->serial_attach the serial port is console.sock instead (CH's
 * Socket mode) and chvm's console logger writes console.log from it.
 *
 * The VMM runs as spec->jail says (its own uid, no capabilities; vmmuser.c)
 * and with spec->landlock its VmConfig turns CH's Landlock on.
 *
 * Guest RAM: by default (VM_AUTO) shared (a memfd) with a free page
 * reporting balloon on v52+, where CH snapshots a memfd sparsely, so a
 * snapshot holds only what the guest uses; private anonymous memory and no
 * balloon below (v48 writes all of it either way).
 *
 * Restore mode (vm_restore_opts, ch_restore_pick): by default ondemand
 * (userfaultfd) on v52+ when the VMM can open a userfaultfd, except for a
 * shared-memory snapshot on v53+ (copy reads only its data); else copy.
 * The reason is reported.
 *
 * $CHVM_CH_SECCOMP, when set, is passed as `--seccomp VALUE` (true, false or
 * log).  Upstream's release binaries need nothing; a CH built from source with
 * a newer Rust toolchain than its seccomp filters expect (v48 built with Rust
 * 1.95 calls sendto(2) in its HTTP thread) is killed by its own filter unless
 * this is `log`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "path.h"
#include "sys/dial.h"
#include "sys/fs.h"
#include "sys/proc.h"
#include "vmm/backend.h"
#include "vmm/ch_api.h"
#include "vmm/ch_clone.h"

#define CH_CONFIG_MAX (1 << 20) /* a snapshot's config.json */

#define SOCKET_WAIT_MS 10000 /* VMM start to API socket listening */
#define EXIT_WAIT_MS 5000    /* vmm.shutdown to process exit */
#define KILL_GRACE_MS 2000   /* per signal when we must kill */

/* The one name a completed snapshot directory has: standby writes into
   snapshot.tmp-XXXXXX and renames it only once CH has finished. */
#define SNAPSHOT_DIR_NAME "snapshot"

/* Removes a file left by an earlier VMM (a stale socket makes CH fail with
   "address in use"). */
static int
remove_stale (const char *path, struct err **err)
{
  if (unlink (path) < 0 && errno != ENOENT)
    return err_make (err, errno, "remove stale %s", path);
  return 0;
}

/* The last non-empty line of dir's vmm.log (proc_log_last_line). */
static void
log_last_line (const char *dir, char *out, size_t len)
{
  char path[PATH_MAX];

  out[0] = '\0';
  if (path_in (path, sizeof path, dir, "vmm.log", NULL) == 0)
    proc_log_last_line (path, out, len);
}

static int
client_for (const struct vm_runtime *rt, struct ch_client *c, struct err **err)
{
  if (ch_client_init (c, rt->api_socket, err) < 0)
    return -1;
  if (ch_parse_version (rt->version, &c->version_major, &c->version_minor) < 0)
    c->version_major = c->version_minor = 0;
  return 0;
}

/* Adds what became of the VMM to a failed call's error: "connection
   refused" is much clearer as "cloud-hypervisor (pid N) is not running".
   A VMM that is being killed can still reset a connection while its
   threads exit, so after a transport error (errno set; an HTTP error has
   none) wait briefly for the exit before judging. */
#define DYING_WAIT_MS 1000
static int
call_failed (const struct vm_runtime *rt, struct err **err)
{
  bool gone = rt->vmm_pid > 0 && !proc_alive_p (rt->vmm_pid);

  if (!gone && rt->vmm_pid > 0 && err != NULL && *err != NULL && (*err)->status != 0)
    gone = proc_wait_exit (rt->vmm_pid, DYING_WAIT_MS, NULL, NULL) == 1;
  if (gone)
    return err_wrap (err, "cloud-hypervisor (pid %d) is not running", (int) rt->vmm_pid);
  return err_wrap (err, "cloud-hypervisor (pid %d)", (int) rt->vmm_pid);
}

static bool
ch_available (char *why, size_t why_len)
{
  char version[128];
  cleanup_err struct err *e = NULL;
  cleanup_close int kvm = -1;

  if (ch_binary_version (NULL, version, sizeof version, &e) < 0)
    {
      snprintf (why, why_len, "%s not found or not runnable (set $CLOUD_HYPERVISOR or PATH)",
                ch_binary ());
      return false;
    }
  kvm = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0)
    {
      snprintf (why, why_len, "/dev/kvm: %s", strerror (errno));
      return false;
    }
  return true;
}

/* Starts a bare VMM (no VM yet) for dir and fills rt.  On failure nothing
   is left running. */
static int
start_vmm (const struct vm_spec *spec, struct vm_runtime *rt, struct ch_client *c, struct err **err)
{
  const char *dir = spec->dir;
  char api_arg[PATH_MAX + 8], ev_arg[PATH_MAX + 8], log_path[PATH_MAX], ev_path[PATH_MAX];
  char ping_version[64], last[256];
  pid_t pid;

  memset (rt, 0, sizeof *rt);
  if (path_in (rt->api_socket, sizeof rt->api_socket, dir, "api.sock", err) < 0
      || path_in (log_path, sizeof log_path, dir, "vmm.log", err) < 0
      || path_in (ev_path, sizeof ev_path, dir, "events.json", err) < 0)
    return -1;
  if (remove_stale (rt->api_socket, err) < 0)
    return -1;
  if (ch_binary_version (NULL, rt->version, sizeof rt->version, err) < 0)
    return -1;
  snprintf (api_arg, sizeof api_arg, "path=%s", rt->api_socket);
  snprintf (ev_arg, sizeof ev_arg, "path=%s", ev_path);
  {
    const char *seccomp = getenv ("CHVM_CH_SECCOMP");
    const char *argv[10] = { ch_binary (), "--api-socket", api_arg, "--event-monitor", ev_arg };
    size_t n = 5;
    /* No --landlock here: CH requires --kernel with it.  Landlock comes
       with the VmConfig (landlock_enable in vm.create; restore takes it
       from the snapshot's config.json). */
    if (seccomp)
      {
        argv[n++] = "--seccomp";
        argv[n++] = seccomp;
      }
    argv[n] = NULL;
    if (proc_spawn_vmm (argv, log_path, spec->jail, spec->cgroup, &pid, err) < 0)
      return -1;
  }
  rt->vmm_pid = pid;
  if (proc_wait_socket (pid, rt->api_socket, SOCKET_WAIT_MS, err) < 0
      || ch_client_init (c, rt->api_socket, err) < 0
      || ch_ping (c, ping_version, sizeof ping_version, err) < 0
      || backend_write_pid (dir, pid, err) < 0)
    {
      proc_terminate (pid, KILL_GRACE_MS, NULL);
      unlink (rt->api_socket);
      log_last_line (dir, last, sizeof last);
      rt->vmm_pid = 0;
      return err_wrap (err, "starting %s%s%s", ch_binary (), last[0] ? " (vmm.log: " : "",
                       last[0] ? last : "");
    }
  return 0;
}

/* After a failure once the VMM runs: stop it, so no orphan is left. */
static int
abandon (const char *dir, struct vm_runtime *rt, const char *what, struct err **err)
{
  char last[256];

  call_failed (rt, err);
  if (rt->vmm_pid > 0)
    proc_terminate (rt->vmm_pid, KILL_GRACE_MS, NULL);
  unlink (rt->api_socket);
  rt->vmm_pid = 0;
  log_last_line (dir, last, sizeof last);
  if (last[0])
    return err_wrap (err, "%s (vmm.log: %s)", what, last);
  return err_wrap (err, "%s", what);
}

/* CH binds console.sock when it creates the devices (vm.boot, vm.restore):
   a stale one from an earlier VMM makes that fail. */
static int
remove_stale_console (const struct vm_spec *spec, struct err **err)
{
  char path[PATH_MAX];

  if (spec->serial_attach == NULL)
    return 0;
  if (path_in (path, sizeof path, spec->dir, "console.sock", err) < 0)
    return -1;
  return remove_stale (path, err);
}

/* The console logger connects as soon as CH binds console.sock (v48 drops
   the serial output while nobody is connected; v53 keeps the last 1 MiB),
   so it starts before the guest runs. */
static int
attach_serial (const struct vm_spec *spec, const struct vm_runtime *rt, struct err **err)
{
  if (spec->serial_attach == NULL)
    return 0;
  return spec->serial_attach (spec->dir, rt->vmm_pid, err);
}

/* VM_AUTO: on where CH snapshots shared memory sparsely (v52+). */
static bool
toggle_on (enum vm_toggle t, int version_major)
{
  return t == VM_AUTO ? version_major >= CH_VERSION_SPARSE_SNAPSHOT : t == VM_ON;
}

static int
ch_start (const struct vm_spec *spec, struct vm_runtime *rt, struct err **err)
{
  struct vm_spec s = *spec;
  struct ch_client c;

  if (remove_stale_console (spec, err) < 0)
    return -1;
  if (spec->rootfs_pmem)
    {
      uint64_t size;
      if (backend_pmem_size (spec->rootfs, &size, err) < 0)
        return -1;
    }

  if (spec->agent_vsock_port != 0)
    {
      char vs[sizeof rt->vsock_socket];
      if (path_in (vs, sizeof vs, spec->dir, "vsock.sock", err) < 0 || remove_stale (vs, err) < 0)
        return -1;
    }
  if (start_vmm (spec, rt, &c, err) < 0)
    return err_wrap (err, "start VM %s", spec->name ? spec->name : "");
  /* A memory file is the one zone: neither a memfd nor a balloon. */
  rt->shared_memory = !spec->memory_file && toggle_on (spec->shared_memory, c.version_major);
  rt->free_page_reporting
      = !spec->memory_file && toggle_on (spec->free_page_reporting, c.version_major);
  s.shared_memory = rt->shared_memory ? VM_ON : VM_OFF;
  s.free_page_reporting = rt->free_page_reporting ? VM_ON : VM_OFF;
  if (ch_create (&c, &s, err) < 0 || attach_serial (spec, rt, err) < 0 || ch_boot (&c, err) < 0)
    return abandon (spec->dir, rt, "start VM", err);
  if (spec->agent_vsock_port != 0)
    path_in (rt->vsock_socket, sizeof rt->vsock_socket, spec->dir, "vsock.sock", NULL);
  return 0;
}

static int
ch_pause_vm (struct vm_runtime *rt, struct err **err)
{
  struct ch_client c;

  if (client_for (rt, &c, err) < 0)
    return -1;
  if (ch_pause (&c, err) < 0)
    return call_failed (rt, err);
  return 0;
}

static int
ch_resume_vm (struct vm_runtime *rt, struct err **err)
{
  struct ch_client c;

  if (client_for (rt, &c, err) < 0)
    return -1;
  if (ch_resume (&c, err) < 0)
    return call_failed (rt, err);
  return 0;
}

static int
ch_snapshot_vm (struct vm_runtime *rt, const char *dir, struct err **err)
{
  struct ch_client c;

  if (client_for (rt, &c, err) < 0)
    return -1;
  if (ch_snapshot (&c, dir, err) < 0)
    return call_failed (rt, err);
  return 0;
}

/* Only a directory named "snapshot" holding CH's files is restorable: a
   snapshot.tmp-* directory is what an interrupted standby left behind. */
static int
check_snapshot_dir (const char *dir, struct err **err)
{
  static const char *const files[] = { "config.json", "state.json" };
  const char *base = strrchr (dir, '/');
  char path[PATH_MAX];
  struct stat st;

  base = base ? base + 1 : dir;
  if (strcmp (base, SNAPSHOT_DIR_NAME) != 0)
    return err_make (err, EINVAL,
                     "%s is not a completed snapshot (only a directory named \"%s\" is; "
                     "\"%s\" may be what an interrupted snapshot left)",
                     dir, SNAPSHOT_DIR_NAME, base);
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    {
      if (path_in (path, sizeof path, dir, files[i], err) < 0)
        return -1;
      if (stat (path, &st) < 0)
        return err_make (err, errno, "snapshot %s is incomplete: %s", dir, files[i]);
      if (!S_ISREG (st.st_mode) || st.st_size == 0)
        return err_make (err, EINVAL, "snapshot %s is incomplete: %s is empty", dir, files[i]);
    }
  return 0;
}

/* Whether a VMM running as jail (NULL: as root) can have a userfaultfd:
   CH opens /dev/userfaultfd first, then tries userfaultfd(2), which an
   unprivileged process gets only with vm.unprivileged_userfaultfd=1. */
static bool
uffd_usable (const struct proc_jail *jail, char *why, size_t len)
{
  struct stat st;
  char sysctl = '0';
  bool group = false;

  if (jail == NULL)
    return snprintf (why, len, "the VMM runs as root"), true;
  if (stat ("/dev/userfaultfd", &st) == 0)
    {
      group = st.st_gid == jail->gid;
      for (size_t i = 0; i < jail->n_groups; i++)
        group = group || st.st_gid == jail->groups[i];
      if ((st.st_uid == jail->uid && (st.st_mode & 0600) == 0600)
          || (group && (st.st_mode & 0060) == 0060) || (st.st_mode & 0006) == 0006)
        return snprintf (why, len, "its uid %u can open /dev/userfaultfd", (unsigned) jail->uid),
               true;
    }
  if (proc_read_sysctl ("/proc/sys/vm/unprivileged_userfaultfd", &sysctl, NULL) == 0
      && sysctl == '1')
    return snprintf (why, len, "vm.unprivileged_userfaultfd=1"), true;
  snprintf (why, len,
            "uid %u cannot open /dev/userfaultfd (scripts/vmm-user.sh gives it to the kvm group) "
            "and vm.unprivileged_userfaultfd is 0",
            (unsigned) jail->uid);
  return false;
}

/* Resolves ro->want for this VMM (ch_restore_pick). */
static int
restore_mode (int version_major, const struct vm_spec *spec, struct vm_restore_opts *ro,
              struct err **err)
{
  char why[200];
  bool uffd = uffd_usable (spec->jail, why, sizeof why);

  return ch_restore_pick (version_major, uffd, why, ro, err);
}

/* A snapshot without memory-ranges keeps guest RAM in its memory zone's
   file: a --memory-file VM's own (shared: the VMM maps it again, in place)
   or a clone's template file (copy-on-write).  Nothing is read before the
   guest runs, so copy and ondemand do not apply and are refused when asked
   for.  Returns 1 when it decided, 0 for a snapshot with memory-ranges
   (ro->file_private: a clone's own standby, what it changed over its
   template's file, for ch_restore_pick). */
static int
zone_file_restore (const char *dir, struct vm_restore_opts *ro, struct err **err)
{
  char path[PATH_MAX];
  cleanup_free char *text = NULL;
  struct ch_config_memory m;
  struct stat st;
  size_t len;
  bool ranges;

  if (path_in (path, sizeof path, dir, "memory-ranges", err) < 0)
    return -1;
  ranges = stat (path, &st) == 0;
  if (path_in (path, sizeof path, dir, "config.json", err) < 0
      || fs_read_small_regular (path, CH_CONFIG_MAX, &text, &len, err) < 0)
    return -1;
  /* With memory-ranges, a memory section CH may write otherwise is read as
     no zone file (ch_snapshot_check alike). */
  if (ch_config_memory (text, len, &m, ranges ? NULL : err) < 0)
    return ranges ? 0 : -1;
  ro->file_private = m.files_only && !m.shared;
  if (ranges)
    {
      if (ro->file_private && ro->want == VM_RESTORE_ONDEMAND)
        return err_make (err, ENOTSUP,
                         "--memory-restore ondemand: " CH_RESTORE_COW_WHY "; use copy or auto");
      return 0;
    }
  if (ro->want != VM_RESTORE_AUTO)
    return err_make (err, ENOTSUP,
                     "--memory-restore %s: this snapshot has no memory-ranges, its guest RAM is "
                     "its memory zone's file (nothing to copy or serve; use auto)",
                     ro->want == VM_RESTORE_COPY ? "copy" : "ondemand");
  ro->mode = VM_RESTORE_FILE;
  snprintf (ro->reason, sizeof ro->reason,
            "guest RAM is the memory zone's file, mapped %s: nothing read before the guest "
            "runs, its pages come from the host's page cache as it touches them%s",
            m.shared ? "shared, in place" : "copy-on-write",
            ro->prefault ? " (prefault: all at once)" : "");
  return 1;
}

static int
ch_restore_vm (const struct vm_spec *spec, const char *dir, struct vm_restore_opts *ro,
               struct vm_runtime *rt, struct phase *phases, size_t *n_phases, struct err **err)
{
  struct ch_restore_opts o = { .prefault = ro->prefault, .resume = false };
  char vs[sizeof rt->vsock_socket];
  struct ch_client c;
  double t = clock_now_ms ();
  int r;

  /* Before a VMM starts: a refused mode costs none. */
  if (check_snapshot_dir (dir, err) < 0 || (r = zone_file_restore (dir, ro, err)) < 0)
    return err_wrap (err, "restore VM %s", spec->name ? spec->name : "");
  /* CH binds the vsock socket named in the snapshot's config again. */
  if (path_in (vs, sizeof vs, spec->dir, "vsock.sock", err) < 0 || remove_stale (vs, err) < 0
      || remove_stale_console (spec, err) < 0)
    return -1;
  t = clock_now_ms ();
  if (start_vmm (spec, rt, &c, err) < 0)
    return err_wrap (err, "restore VM %s", spec->name ? spec->name : "");
  phase_add (phases, n_phases, PHASE_VMM_START, &t);
  if (r == 0 && restore_mode (c.version_major, spec, ro, err) < 0)
    return abandon (spec->dir, rt, "restore VM", err);
  o.mode = ro->mode == VM_RESTORE_ONDEMAND ? CH_RESTORE_ONDEMAND : CH_RESTORE_COPY;
  if (attach_serial (spec, rt, err) < 0)
    return abandon (spec->dir, rt, "restore VM", err);
  /* Resume as its own call (not restore's v52 "resume") so its time is a
     phase of its own. */
  if (ch_restore (&c, dir, &o, NULL, err) < 0)
    return abandon (spec->dir, rt, "restore VM", err);
  phase_add (phases, n_phases, PHASE_RESTORE, &t);
  if (ch_resume (&c, err) < 0)
    return abandon (spec->dir, rt, "resume restored VM", err);
  phase_add (phases, n_phases, PHASE_RESUME, &t);
  if (spec->agent_vsock_port != 0)
    snprintf (rt->vsock_socket, sizeof rt->vsock_socket, "%s", vs);
  return 0;
}

/* CH names its guest RAM memfds "ch_ram" (memory_manager.rs). */
#define RAM_MEMFD "/memfd:ch_ram"

static int
ch_ram_allocated (const struct vm_runtime *rt, uint64_t *bytes, struct err **err)
{
  char fds[64], link[PATH_MAX + 64], target[PATH_MAX];
  cleanup_dir DIR *d = NULL;
  struct dirent *de;
  bool found = false;

  *bytes = 0;
  snprintf (fds, sizeof fds, "/proc/%d/fd", (int) rt->vmm_pid);
  d = opendir (fds);
  if (d == NULL)
    return err_make (err, errno, "open %s", fds);
  // cppcheck-suppress readdirCalled
  while ((de = readdir (d)) != NULL)
    {
      struct stat st;
      ssize_t n;

      snprintf (link, sizeof link, "%s/%s", fds, de->d_name);
      n = readlink (link, target, sizeof target - 1);
      if (n <= 0)
        continue;
      target[n] = '\0';
      if (strncmp (target, RAM_MEMFD, strlen (RAM_MEMFD)) != 0 || stat (link, &st) < 0)
        continue;
      *bytes += (uint64_t) st.st_blocks * 512;
      found = true;
    }
  if (!found)
    return err_make (err, ENOENT, "cloud-hypervisor (pid %d) has no guest RAM memfd",
                     (int) rt->vmm_pid);
  return 0;
}

static int
ch_shutdown_vm (struct vm_runtime *rt, struct err **err)
{
  cleanup_err struct err *vm_err = NULL;
  cleanup_err struct err *vmm_err = NULL;
  struct ch_client c;
  int r;

  if (rt->vmm_pid <= 0 || !proc_alive_p (rt->vmm_pid))
    {
      log_warn ("cloud-hypervisor (pid %d) had already exited", (int) rt->vmm_pid);
      unlink (rt->api_socket);
      return 0;
    }
  if (client_for (rt, &c, err) < 0)
    return -1;
  /* A VM that never booted or already stopped makes vm.shutdown fail;
     vmm.shutdown is what must work. */
  ch_shutdown (&c, &vm_err);
  if (ch_vmm_shutdown (&c, &vmm_err) < 0)
    log_warn ("vmm.shutdown failed (%s), killing cloud-hypervisor (pid %d)",
              vmm_err->msg ? vmm_err->msg : "", (int) rt->vmm_pid);
  r = proc_wait_exit (rt->vmm_pid, vmm_err ? 0 : EXIT_WAIT_MS, NULL, err);
  if (r < 0)
    return r;
  if (r == 0)
    {
      if (!vmm_err)
        log_warn ("cloud-hypervisor (pid %d) did not exit within %d ms of vmm.shutdown; killing it",
                  (int) rt->vmm_pid, EXIT_WAIT_MS);
      if (proc_terminate (rt->vmm_pid, KILL_GRACE_MS, err) < 0)
        return -1;
    }
  unlink (rt->api_socket);
  rt->vmm_pid = 0;
  return 0;
}

static int
ch_powerdown_vm (struct vm_runtime *rt, struct err **err)
{
  struct ch_client c;

  if (client_for (rt, &c, err) < 0)
    return -1;
  if (ch_power_button (&c, err) < 0)
    return call_failed (rt, err);
  return 0;
}

/* Hybrid vsock: connect to CH's unix socket, send "CONNECT <port>\n" and
   read "OK <n>\n" one byte at a time, so no byte of the stream that
   follows is consumed here. */
static int
ch_agent_connect (const struct vm_runtime *rt, unsigned port, int timeout_ms, struct err **err)
{
  if (rt->vsock_socket[0] == '\0')
    return err_make (err, ENOTSUP, "VM has no vsock device");
  return dial_vsock (rt->vsock_socket, port, timeout_ms, err);
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
ch_snapshot_check (const char *dir, struct err **err)
{
  char path[VM_PATH_MAX + 32];
  cleanup_free char *config = NULL;
  struct ch_config_memory mem;
  struct stat st;
  size_t len = 0;
  int64_t want;

  if (backend_snapshot_file (dir, "config.json", &st, err) < 0
      || backend_snapshot_file (dir, "state.json", &st, err) < 0)
    return -1;
  snprintf (path, sizeof path, "%s/config.json", dir);
  if (fs_read_small_regular (path, CH_CONFIG_MAX, &config, &len, err) < 0)
    return err_wrap (err, "snapshot %s", dir);
  /* All of guest RAM in memory zone files: they are the memory (a
     template, a clone; vmm/ch_clone.h), memory-ranges is optional. */
  if (ch_config_memory (config, len, &mem, NULL) == 0 && mem.files_only)
    return 0;
  if (backend_snapshot_file (dir, "memory-ranges", &st, err) < 0)
    return -1;
  want = ch_dense_memory (config, len);
  if (want > 0 && st.st_size < want)
    return err_make (err, 0,
                     "snapshot %s is incomplete: memory-ranges has %lld bytes, less than "
                     "config.json's memory size %lld",
                     dir, (long long) st.st_size, (long long) want);
  return 0;
}

/* vm.info's state (a chvm killed during standby leaves the VM paused while
   vm.json still says running). */
static int
ch_query_paused (const struct vm_runtime *rt)
{
  cleanup_err struct err *err = NULL;
  struct ch_client c;
  struct ch_vm_info info;

  if (rt->api_socket[0] == '\0' || ch_client_init (&c, rt->api_socket, &err) < 0)
    return -1;
  c.timeout_ms = 1000;
  if (ch_info (&c, &info, &err) < 0)
    return -1;
  return strcmp (info.state, "Paused") == 0 ? 1 : strcmp (info.state, "Running") == 0 ? 0 : -1;
}

static int
ch_vmm_version (char *out, size_t len, struct err **err)
{
  return ch_binary_version (NULL, out, len, err);
}

const struct backend_ops backend_ch = {
  .name = "cloud-hypervisor",
  .caps = BACKEND_CAP_SHARED_MEMORY | BACKEND_CAP_MEMORY_RESTORE | BACKEND_CAP_VSOCK,
  .available = ch_available,
  .start = ch_start,
  .pause = ch_pause_vm,
  .resume = ch_resume_vm,
  .snapshot = ch_snapshot_vm,
  .restore = ch_restore_vm,
  .shutdown = ch_shutdown_vm,
  .powerdown = ch_powerdown_vm,
  .ram_allocated = ch_ram_allocated,
  .agent_connect = ch_agent_connect,
  .query_paused = ch_query_paused,
  .snapshot_check = ch_snapshot_check,
  .vmm_version = ch_vmm_version,
  .clone_snapshot = ch_clone_snapshot,
};
