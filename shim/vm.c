/* SPDX-License-Identifier: Apache-2.0 */
/* The VM through chvm (shim.h): `chvm run` boots it (`run --from` clones
   it), its VMM is watched on a pidfd, `chvm pause|resume` or `standby|
   restore` (whose VMM is a new one, watched in turn) switch it, `chvm
   stop` presses the power button (or kills it), and the entrypoint's exit
   status comes from guest-init's console line "entrypoint exited status N"
   (docs/DESIGN.md).  A pod's sandbox has no VM: a placeholder process
   stands for it. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "log.h"
#include "shim.h"
#include "state/vmstate.h"
#include "sys/fs.h"
#include "sys/json.h"
#include "sys/proc.h"
#include "vmm/console.h"

#define VM_ARGS_MAX 16
#define LOGGER_WAIT_S 2
#define STOP_GRACE "3600" /* SIGTERM: the guest has all the time it takes */
/* A pod's VM: the guest's CDP port on every address of the pod's namespace
   (the pod's IP). */
#define POD_PUBLISH_CDP "0.0.0.0:9222:9222"

struct pending
{
  struct shim *s;
  struct task *t;
  struct ttrpc_call *call;
  vm_done_fn done;
};

static void
chvm_done (void *arg, int status, const char *out, const char *errout)
{
  struct pending *p = arg;
  char line[512];

  (void) out;
  child_last_line (errout, line, sizeof line);
  if (status != 0)
    log_warn ("chvm exited with status %d: %s", status, line);
  p->done (p->s, p->t, p->call, status, line);
  free (p);
}

/* `chvm --state-dir ROOT args...`; its exit goes to fn with a struct
   pending of s, t, call and done (fn frees it). */
static int
spawn_chvm (struct shim *s, struct task *t, const char *const args[], child_done_fn fn,
            vm_done_fn done, struct ttrpc_call *call, struct err **err)
{
  const char *argv[VM_ARGS_MAX + 5] = { s->chvm, "--state-dir", s->state_root };
  struct pending *p;
  size_t n = 3;

  for (size_t i = 0; args[i] != NULL; i++)
    {
      if (i >= VM_ARGS_MAX)
        return err_make (err, E2BIG, "chvm arguments");
      argv[n++] = args[i];
    }
  argv[n] = NULL;
  if ((p = calloc (1, sizeof *p)) == NULL)
    return err_make (err, ENOMEM, "chvm");
  *p = (struct pending){ .s = s, .t = t, .call = call, .done = done };
  if (child_spawn (s->base, argv, NULL, 0, fn, p, err) < 0)
    {
      free (p);
      return -1;
    }
  return 0;
}

int
vm_chvm (struct shim *s, struct task *t, const char *const args[], vm_done_fn done,
         struct ttrpc_call *call, struct err **err)
{
  return spawn_chvm (s, t, args, chvm_done, done, call, err);
}

int
vm_console_exit_status (const char *text)
{
  static const char needle[] = "entrypoint exited status ";
  const char *p = text, *last = NULL;
  long v;
  char *end;

  while ((p = strstr (p, needle)) != NULL)
    {
      last = p + sizeof needle - 1;
      p = last;
    }
  if (last == NULL)
    return -1;
  errno = 0;
  v = strtol (last, &end, 10);
  if (errno != 0 || end == last || v < 0 || v > 255)
    return -1;
  return (int) v;
}

/* The exit status: guest-init's line, else 137 after a SIGKILL, else 255. */
static uint32_t
exit_status (struct shim *s, struct task *t)
{
  cleanup_free char *text = NULL;
  char path[PATH_MAX + VM_NAME_MAX + 32];
  size_t len;
  int st = -1;

  for (int i = 0; i < 2 && st < 0; i++)
    {
      snprintf (path, sizeof path, "%s/vms/%s/console.log%s", s->state_root, t->vm,
                i == 0 ? "" : ".1");
      free (steal_ptr (&text));
      /* console.log.1 is there only after a rotation: the VMM's uid may
         have put a FIFO or a link under the name. */
      if (fs_read_small_regular (path, 4u << 20, &text, &len, NULL) == 0)
        st = vm_console_exit_status (text);
    }
  if (st >= 0)
    return (uint32_t) st;
  return t->killed ? 137 : 255;
}

static void
logger_gone (evutil_socket_t fd, short what, void *arg)
{
  struct task *t = arg;

  (void) what;
  if (fd >= 0)
    close (fd);
  t->exit_status = exit_status (t->s, t);
  vm_exited (t->s, t);
}

/* No more watching of the VMM. */
static void
unwatch (struct task *t)
{
  if (t->vmm_ev != NULL)
    event_free (t->vmm_ev);
  t->vmm_ev = NULL;
  if (t->vmm_pidfd >= 0)
    close (t->vmm_pidfd);
  t->vmm_pidfd = -1;
}

/* The VMM exited: once the console logger has written the last lines (it
   exits at the console's EOF; at most LOGGER_WAIT_S), the task exits. */
static void
vmm_gone (evutil_socket_t fd, short what, void *arg)
{
  struct task *t = arg;
  struct shim *s = t->s;
  struct timeval tv = { LOGGER_WAIT_S, 0 };
  char dir[PATH_MAX + VM_NAME_MAX + 8];
  pid_t logger;
  int lfd = -1;

  (void) fd;
  (void) what;
  unwatch (t);
  log_info ("VM %s: VMM %u exited", t->vm, t->pid);
  snprintf (dir, sizeof dir, "%s/vms/%s", s->state_root, t->vm);
  logger = console_logger_pid (dir);
  if (logger > 0)
    lfd = (int) syscall (SYS_pidfd_open, logger, 0);
  if (event_base_once (s->base, lfd, lfd >= 0 ? EV_READ : EV_TIMEOUT, logger_gone, t, &tv) < 0)
    logger_gone (lfd, 0, t);
}

/* VMM t->pid runs: p's done, with the VMM watched from now on (its exit,
   the task's: at once when it cannot be watched, gone already). */
static void
watch (struct pending *p)
{
  struct task *t = p->t;

  t->vmm_pidfd = (int) syscall (SYS_pidfd_open, (pid_t) t->pid, 0);
  t->vmm_ev = t->vmm_pidfd < 0 ? NULL : event_new (p->s->base, t->vmm_pidfd, EV_READ, vmm_gone, t);
  p->done (p->s, t, p->call, 0, "");
  if (t->vmm_ev == NULL || event_add (t->vmm_ev, NULL) < 0)
    vmm_gone (-1, 0, t);
}

static void
run_done (void *arg, int status, const char *out, const char *errout)
{
  struct pending *p = arg;
  struct task *t = p->t;
  cleanup_json struct json_object *o = NULL;
  struct json_object *v;
  int64_t pid = 0;
  char line[512];

  child_last_line (errout, line, sizeof line);
  if (status != 0)
    log_error ("chvm run: exit status %d: %s", status, line);
  else if ((o = json_tokener_parse (out)) != NULL && json_object_object_get_ex (o, "pid", &v))
    pid = json_object_get_int64 (v);
  if (status != 0 || pid <= 0 || pid > INT32_MAX)
    p->done (p->s, t, p->call, status ?: 1, status ? line : "no VMM pid in chvm run's answer");
  else
    {
      t->pid = (uint32_t) pid;
      t->status = CONTAINERD__V1__TYPES__STATUS__RUNNING;
      if (json_object_object_get_ex (o, "endpoint", &v))
        log_info ("VM %s runs: VMM pid %u, CDP endpoint %s", t->vm, t->pid,
                  json_object_get_string (v));
      watch (p);
    }
  free (p);
}

int
vm_start (struct shim *s, struct task *t, vm_done_fn done, struct ttrpc_call *call,
          struct err **err)
{
  /* At most 16 (VM_ARGS_MAX): these 5, a pod's 6, --cpus and --memory's
     4, the image; a clone's 7. */
  const char *args[VM_ARGS_MAX + 1] = { "--json", "run", "--no-wait", "--name", t->vm };
  char cpus[16], memory[32];
  size_t n = 5;

  if (t->tmpl[0] != '\0')
    {
      /* The template's size, network and disks: --from takes none of run's
         settings.  It answers once the guest's agent thawed it and its
         browser is ready (without an agent: once the VMM runs). */
      const char *from[] = {
        "--json", "run", "--from", t->tmpl, "--name", t->vm, t->no_agent ? "--no-agent" : NULL, NULL
      };

      return spawn_chvm (s, t, from, run_done, done, call, err);
    }
  if (t->netns[0] != '\0')
    {
      /* A pod's: tap networking inside the pod's namespace (chvm's bridge
         and NAT there), CDP published on the pod's addresses. */
      const char *pod[] = { "--net", "tap", "--netns", t->netns, "-p", POD_PUBLISH_CDP };

      memcpy (&args[n], pod, sizeof pod);
      n += sizeof pod / sizeof *pod;
    }
  if (t->cpus > 0)
    {
      snprintf (cpus, sizeof cpus, "%u", t->cpus);
      args[n++] = "--cpus";
      args[n++] = cpus;
    }
  if (t->memory_mib > 0)
    {
      snprintf (memory, sizeof memory, "%" PRIu64 "M", t->memory_mib);
      args[n++] = "--memory";
      args[n++] = memory;
    }
  args[n] = t->image_id;
  return spawn_chvm (s, t, args, run_done, done, call, err);
}

static void
stood_by (void *arg, int status, const char *out, const char *errout)
{
  struct pending *p = arg;
  struct task *t = p->t;
  char line[512];

  (void) out;
  child_last_line (errout, line, sizeof line);
  if (status != 0)
    {
      /* The VM runs on (chvm leaves it running when the guest does not
         quiesce), or its VMM is gone: the watch again either way. */
      log_warn ("chvm standby: exit status %d: %s", status, line);
      if (event_add (t->vmm_ev, NULL) < 0)
        log_error ("VM %s: VMM %u can no longer be watched", t->vm, t->pid);
    }
  else
    {
      unwatch (t);
      t->stood_by = true;
      log_info ("VM %s: in standby (VMM %u stopped, its snapshot on disk)", t->vm, t->pid);
    }
  p->done (p->s, t, p->call, status, line);
  free (p);
}

/* The VMM of t's VM that its vm.json names (written by chvm, as root: not
   vmm.pid, which the VMM's uid may plant where chvm has removed it), 0 when
   none runs. */
static pid_t
running_vmm (const struct shim *s, const struct task *t)
{
  cleanup_err struct err *err = NULL;
  char dir[VM_PATH_MAX], buf[256];
  struct vm_record rec;

  if (vmstate_dir (s->state_root, t->vm, dir, sizeof dir, &err) < 0
      || vmrec_load (s->state_root, t->vm, &rec, &err) < 0)
    {
      log_warn ("VM %s: %s", t->vm, err_str (err, buf, sizeof buf));
      return 0;
    }
  return rec.rt.vmm_pid > 0 && proc_pid_names_dir (rec.rt.vmm_pid, dir) ? rec.rt.vmm_pid : 0;
}

static void
restored (void *arg, int status, const char *out, const char *errout)
{
  struct pending *p = arg;
  struct task *t = p->t;
  pid_t pid = running_vmm (p->s, t);
  char line[512];

  (void) out;
  child_last_line (errout, line, sizeof line);
  if (status != 0)
    log_warn ("chvm restore: exit status %d: %s", status, line);
  if (pid <= 0)
    p->done (p->s, t, p->call, status ?: 1, status ? line : "no VMM runs after chvm restore");
  else
    {
      /* A new VMM; or, after a failed restore, one running all the same
         (the guest not ready in time, or the VM's CDP endpoint woke it
         before). */
      log_info ("VM %s: restored, VMM %d (was %u)", t->vm, (int) pid, t->pid);
      t->stood_by = false;
      t->pid = (uint32_t) pid;
      watch (p);
    }
  free (p);
}

int
vm_pause (struct shim *s, struct task *t, bool pause, vm_done_fn done, struct ttrpc_call *call,
          struct err **err)
{
  const char *args[4] = { pause ? "pause" : "resume" };
  size_t n = 1;

  if (!t->standby)
    {
      args[n++] = t->vm;
      return vm_chvm (s, t, args, done, call, err);
    }
  args[0] = pause ? "standby" : "restore";
  if (t->no_agent)
    args[n++] = pause ? "--no-quiesce" : "--no-agent";
  args[n++] = t->vm;
  if (!pause)
    return spawn_chvm (s, t, args, restored, done, call, err);
  /* The VMM's exit is the standby's, not the task's. */
  if (t->vmm_ev == NULL || event_del (t->vmm_ev) < 0)
    return err_make (err, 0, "VM %s: VMM %u is not watched", t->vm, t->pid);
  if (spawn_chvm (s, t, args, stood_by, done, call, err) < 0)
    {
      event_add (t->vmm_ev, NULL);
      return -1;
    }
  return 0;
}

static void
stopped (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  (void) call;
  if (shim_has_task (s, t)) /* the VM's exit may have let Delete end it */
    t->stopping = false;
  if (status != 0)
    log_warn ("chvm stop: %s", msg);
}

/* The stop of a VM in standby: no VMM ran to exit, the stop is the task's
   exit (its status set by vm_kill). */
static void
discarded (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  stopped (s, t, call, status, msg);
  if (status == 0)
    vm_exited (s, t);
}

int
vm_kill (struct shim *s, struct task *t, uint32_t sig, struct err **err)
{
  const char *args[]
      = { "stop", "--time", sig == SIGKILL || t->stood_by ? "0" : STOP_GRACE, t->vm, NULL };

  if (sig == SIGKILL)
    t->killed = true;
  if (t->stopping)
    {
      /* A graceful stop holds the VM's lock while it waits: end the VMM
         itself, which that stop then sees and records. */
      if (sig == SIGKILL && !t->stood_by && kill ((pid_t) t->pid, SIGKILL) < 0 && errno != ESRCH)
        return err_make (err, errno, "kill VMM %u", t->pid);
      return 0;
    }
  if (t->stood_by)
    {
      log_info ("VM %s: in standby: stopping it discards its snapshot", t->vm);
      t->exit_status = 128 + sig;
    }
  else
    log_info ("VM %s: %s", t->vm, sig == SIGKILL ? "killing the VMM" : "pressing the power button");
  if (vm_chvm (s, t, args, t->stood_by ? discarded : stopped, NULL, err) < 0)
    return -1;
  t->stopping = true;
  return 0;
}

static void
placeholder_done (void *arg, int status, const char *out, const char *errout)
{
  struct task *t = arg;

  (void) out;
  (void) errout;
  log_info ("sandbox %s: placeholder %u exited with status %d", t->id, t->pid, status);
  t->exit_status = (uint32_t) status;
  vm_exited (t->s, t);
}

int
vm_placeholder (struct shim *s, struct task *t, struct err **err)
{
  /* `tail -f --pid=SHIM /dev/null`: waits for a signal (Kill), and ends by
     itself once the shim is gone (tail checks the pid each second). */
  cleanup_close int null = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  char tail[PATH_MAX], pid_arg[32];
  const char *argv[] = { tail, "-n0", "-f", pid_arg, "/dev/null", NULL };
  pid_t pid;

  if (null < 0)
    return err_make (err, errno, "/dev/null");
  if (proc_find_exec ("tail", tail, sizeof tail) < 0)
    return err_make (err, ENOENT, "no tail in PATH for the sandbox's placeholder");
  snprintf (pid_arg, sizeof pid_arg, "--pid=%d", (int) getpid ());
  if (child_spawn_io (s->base, argv, null, null, placeholder_done, t, &pid, err) < 0)
    return err_wrap (err, "sandbox placeholder");
  t->pid = (uint32_t) pid;
  t->status = CONTAINERD__V1__TYPES__STATUS__RUNNING;
  return 0;
}

int
shim_state_write (const struct shim *s, const struct task *t, struct err **err)
{
  cleanup_json struct json_object *o = json_object_new_object ();
  char path[PATH_MAX + VM_NAME_MAX + 32];
  const char *text;

  if (o == NULL)
    return err_make (err, ENOMEM, "state");
  json_object_object_add (o, "vm", json_object_new_string (t->vm));
  json_object_object_add (o, "image", json_object_new_string (t->image_id));
  json_object_object_add (o, "state_dir", json_object_new_string (s->state_root));
  json_object_object_add (o, "chvm", json_object_new_string (s->chvm));
  json_object_object_add (o, "socket", json_object_new_string (s->socket_path));
  text = json_object_to_json_string_ext (o, JSON_C_TO_STRING_PLAIN);
  snprintf (path, sizeof path, "%s/%s", t->bundle, SHIM_STATE_FILE);
  return fs_write_atomic (path, text, strlen (text), 0600, err);
}
