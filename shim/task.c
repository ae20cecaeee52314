/* SPDX-License-Identifier: Apache-2.0 */
/* The containerd.task.v2.Task service (also answered as task.v3, the same
   messages): Create, Start, State, Wait, Kill, Delete, Exec, Connect,
   Shutdown, Pids, Pause, Resume, Stats; every other method (Checkpoint,
   Update, ResizePty, CloseIO) is Unimplemented, an unknown id or exec id
   NotFound.  Start, State, Wait, Kill and Delete with an exec id act on
   that exec process (exec.c).  Pause and Resume run `chvm pause|resume`
   (the VM's vCPUs stop and go on), or with annotation io.chvm.pause=standby
   `chvm standby|restore` (a snapshot on disk, no VMM, between); State says
   PAUSED between.  Stats reads the VM's cgroup (stats.c).

   One shim serves one container, or a CRI pod (docs/containerd.md): its
   sandbox, whose process is a placeholder (vm_placeholder), and one
   container of it, whose VM runs in the pod's network namespace. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "events.h"
#include "exec.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "log.h"
#include "names.h"
#include "rootfs.h"
#include "shim.h"
#include "spec.h"
#include "stats.h"
#include "sys/fs.h"
#include <event2/event.h>

#define SHIM_VERSION "chvm-shim 1"

/* A method's handler gets its request unpacked and, for a method whose
   request names a task, that task and the exec process its exec id names
   (NULL: the task's own; task_dispatch answered NotFound for another, and
   frees the request after). */
typedef void (*method_fn) (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req,
                           struct task *t, struct shim_exec *x);

void
task_free (struct task *t)
{
  if (t == NULL)
    return;
  for (unsigned i = 0; i < t->n_waits; i++)
    ttrpc_reply (t->waits[i], TTRPC_INTERNAL, "shim exiting", NULL);
  if (t->vmm_ev != NULL)
    event_free (t->vmm_ev);
  exec_free_all (t);
  if (t->vmm_pidfd >= 0)
    close (t->vmm_pidfd);
  if (t->stdout_fd >= 0)
    close (t->stdout_fd);
  if (t->stderr_fd >= 0)
    close (t->stderr_fd);
  free (t->id);
  free (t->bundle);
  free (t->stdin_path);
  free (t->stdout_path);
  free (t->stderr_path);
  free (t);
}

struct task *
shim_task (struct shim *s, const char *id)
{
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    if (s->tasks[i] != NULL && strcmp (s->tasks[i]->id, id) == 0)
      return s->tasks[i];
  return NULL;
}

bool
shim_has_task (const struct shim *s, const struct task *t)
{
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    if (s->tasks[i] == t)
      return true;
  return false;
}

/* The task named id (and in *x the exec exec_id names, NULL for none), or
   NULL after answering NotFound. */
static struct task *
task_find (struct shim *s, struct ttrpc_call *call, const char *id, const char *exec_id,
           struct shim_exec **x)
{
  struct task *t = shim_task (s, id);

  *x = NULL;
  if (t == NULL)
    ttrpc_replyf (call, TTRPC_NOT_FOUND, "task %s not found", id);
  else if (exec_id != NULL && exec_id[0] != '\0' && (*x = exec_find (t, exec_id)) == NULL)
    ttrpc_replyf (call, TTRPC_NOT_FOUND, "exec %s not found", exec_id);
  else
    return t;
  return NULL;
}

static Google__Protobuf__Timestamp
stamp (const struct timespec *ts)
{
  Google__Protobuf__Timestamp t = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

  t.seconds = ts->tv_sec;
  t.nanos = (int32_t) ts->tv_nsec;
  return t;
}

static int
open_fifo (const char *path)
{
  /* O_RDWR: the open never waits for a reader, writes never get EPIPE. */
  return path[0] == '\0' ? -1 : open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

/* The container's config.json and root disk as its own cache entry. */
static int
prepare_image (struct shim *s, struct task *t, const Containerd__Task__V2__CreateTaskRequest *r,
               const struct shim_spec *spec, struct err **err)
{
  cleanup_image struct image *base = NULL, *own = NULL;
  struct oci_config *oci = NULL;
  const char *parts[] = { "chvm-shim-container-v1", s->ns, t->id };
  double t0 = clock_now_ms ();
  bool built;
  int rc;

  if (rootfs_prepare (s->state_root, r->bundle, r->rootfs, r->n_rootfs, &base, &built, err) < 0)
    return err_wrap (err, "root filesystem");
  log_info ("rootfs %.12s: %s in %.1f s", base->id, built ? "made" : "cached",
            (clock_now_ms () - t0) / 1000);
  names_hash_hex (parts, 3, t->image_id);
  if (shim_spec_to_oci (spec, &oci, err) < 0)
    return -1;
  rc = image_alias (s->state_root, base, t->image_id, base->source, oci, &own, err);
  oci_config_free (oci);
  return rc;
}

/* The bundle's config.json. */
static int
read_spec (const char *bundle, struct shim_spec **spec, struct err **err)
{
  cleanup_free char *cfg_path = NULL, *json = NULL;
  size_t len;

  if (asprintf (&cfg_path, "%s/config.json", bundle) < 0)
    return err_make (err, ENOMEM, "path");
  if (fs_read_small (cfg_path, OCI_JSON_MAX, &json, &len, err) < 0
      || shim_spec_parse (json, len, spec, err) < 0)
    return err_wrap (err, "bundle %s", bundle);
  return 0;
}

static struct task *
task_new (struct shim *s, const Containerd__Task__V2__CreateTaskRequest *r)
{
  struct task *t = calloc (1, sizeof *t);

  if (t == NULL)
    return NULL;
  t->s = s;
  t->vmm_pidfd = t->stdout_fd = t->stderr_fd = -1;
  t->status = CONTAINERD__V1__TYPES__STATUS__CREATED;
  t->terminal = r->terminal;
  t->id = strdup (r->id);
  t->bundle = strdup (r->bundle);
  t->stdin_path = strdup (r->stdin);
  t->stdout_path = strdup (r->stdout);
  t->stderr_path = strdup (r->stderr);
  if (t->id == NULL || t->bundle == NULL || t->stdin_path == NULL || t->stdout_path == NULL
      || t->stderr_path == NULL)
    {
      task_free (t);
      return NULL;
    }
  return t;
}

static void
publish_create (struct shim *s, const struct task *t,
                const Containerd__Task__V2__CreateTaskRequest *r)
{
  Containerd__Events__TaskCreate ev = CONTAINERD__EVENTS__TASK_CREATE__INIT;
  Containerd__Events__TaskIO io = CONTAINERD__EVENTS__TASK_IO__INIT;

  io.stdin = t->stdin_path;
  io.stdout = t->stdout_path;
  io.stderr = t->stderr_path;
  io.terminal = t->terminal;
  ev.container_id = t->id;
  ev.bundle = t->bundle;
  ev.n_rootfs = r->n_rootfs;
  ev.rootfs = r->rootfs;
  ev.io = &io;
  ev.pid = t->pid;
  events_publish (s->events, "/tasks/create", "containerd.events.TaskCreate", &ev.base);
}

/* Whether this shim takes task r of this spec, in which free slot (*slot);
   else the answer's code, its message in why. */
static int
create_check (struct shim *s, const Containerd__Task__V2__CreateTaskRequest *r,
              const struct shim_spec *spec, size_t *slot, char *why, size_t len)
{
  bool own = strcmp (r->id, s->id) == 0;

  if (!own
      && (shim_spec_role (spec) != SHIM_ROLE_CONTAINER
          || strcmp (shim_spec_group (spec, r->id), s->id) != 0))
    {
      snprintf (why, len, "task %s: this shim serves %s and the containers of its pod", r->id,
                s->id);
      return TTRPC_INVALID_ARGUMENT;
    }
  *slot = SHIM_TASKS_MAX;
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    {
      const struct task *o = s->tasks[i];

      if (o == NULL && *slot == SHIM_TASKS_MAX)
        *slot = i;
      else if (o != NULL && !own && !o->sandbox)
        {
          snprintf (why, len,
                    "pod %s already has container %s: chvm runs one container per pod (one VM)",
                    s->id, o->id);
          return TTRPC_FAILED_PRECONDITION;
        }
    }
  if (*slot == SHIM_TASKS_MAX)
    {
      snprintf (why, len, "task %s: this shim's tasks are all there", r->id);
      return TTRPC_ALREADY_EXISTS;
    }
  return TTRPC_OK;
}

/* The task r asks for, in slot: a sandbox's (no VM, no state file), or a
   container's with its VM's name, size (the spec's linux.resources), image
   (none for a clone of a template: its root disk is the template's, the
   container's root filesystem goes unused), chvm's annotations and state
   file. */
static int
create_task (struct shim *s, const Containerd__Task__V2__CreateTaskRequest *r,
             const struct shim_spec *spec, struct task *t, struct err **err)
{
  enum shim_role role = shim_spec_role (spec);
  bool clone = spec->template_name[0] != '\0';

  t->sandbox = role == SHIM_ROLE_SANDBOX;
  if (role != SHIM_ROLE_PLAIN) /* `ctr run` keeps the host's network */
    snprintf (t->netns, sizeof t->netns, "%s", spec->netns);
  if (t->sandbox)
    return 0;
  snprintf (t->tmpl, sizeof t->tmpl, "%s", spec->template_name);
  t->standby = spec->standby;
  t->no_agent = spec->no_agent;
  if (!clone)
    {
      t->cpus = spec->cpus;
      t->memory_mib = spec->memory_mib;
    }
  else if (spec->cpus > 0 || spec->memory_mib > 0)
    log_warn ("%s: a clone has the size of its template %s: linux.resources are not used", t->id,
              t->tmpl);
  /* A pod container's spec names the sandbox process's namespace
     (/proc/PID/ns/net, the placeholder's: the host's); the pod's is the
     one the sandbox's spec named. */
  for (size_t i = 0; i < SHIM_TASKS_MAX && role == SHIM_ROLE_CONTAINER; i++)
    if (t->netns[0] == '\0' && s->tasks[i] != NULL && s->tasks[i]->sandbox)
      snprintf (t->netns, sizeof t->netns, "%s", s->tasks[i]->netns);
  if (names_vm (s->ns, t->id, t->vm, clone ? NAMES_CLONE_MAX + 1 : sizeof t->vm, err) < 0
      || (!clone && prepare_image (s, t, r, spec, err) < 0) || shim_state_write (s, t, err) < 0)
    return -1;
  return 0;
}

static void
m_create (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
          struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  cleanup_spec struct shim_spec *spec = NULL;
  const Containerd__Task__V2__CreateTaskRequest *r = (const void *) req;
  Containerd__Task__V2__CreateTaskResponse resp = CONTAINERD__TASK__V2__CREATE_TASK_RESPONSE__INIT;
  char buf[1024];
  size_t slot;
  int code;

  (void) x;
  if (shim_task (s, r->id) != NULL)
    ttrpc_replyf (call, TTRPC_ALREADY_EXISTS, "task %s already exists", r->id);
  else if (r->checkpoint[0] != '\0' || r->terminal)
    ttrpc_replyf (call, TTRPC_INVALID_ARGUMENT, "task %s: no checkpoint or terminal", r->id);
  else if (read_spec (r->bundle, &spec, &err) < 0)
    ttrpc_reply (call, TTRPC_INVALID_ARGUMENT, err_str (err, buf, sizeof buf), NULL);
  else if ((code = create_check (s, r, spec, &slot, buf, sizeof buf)) != TTRPC_OK)
    ttrpc_reply (call, code, buf, NULL);
  else if ((t = task_new (s, r)) == NULL)
    ttrpc_reply (call, TTRPC_INTERNAL, "out of memory", NULL);
  else if (create_task (s, r, spec, t, &err) < 0)
    {
      log_error ("create %s: %s", r->id, err_str (err, buf, sizeof buf));
      ttrpc_reply (call, TTRPC_INTERNAL, buf, NULL);
      task_free (t);
    }
  else
    {
      t->stdout_fd = open_fifo (t->stdout_path);
      t->stderr_fd = open_fifo (t->stderr_path);
      t->pid = (uint32_t) getpid ();
      s->tasks[slot] = t;
      log_info ("created %s as %s%s%s%s%s%s", t->id, t->sandbox ? "a pod's sandbox" : "VM ", t->vm,
                t->netns[0] ? " in the pod's network namespace " : "", t->netns,
                t->tmpl[0] ? ", a clone of template " : "", t->tmpl);
      publish_create (s, t, r);
      resp.pid = t->pid;
      ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
    }
}

static void
started (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
  Containerd__Events__TaskStart ev = CONTAINERD__EVENTS__TASK_START__INIT;

  t->busy = false;
  if (status != 0)
    {
      ttrpc_replyf (call, TTRPC_INTERNAL, "chvm run: %s", msg);
      return;
    }
  ev.container_id = t->id;
  ev.pid = t->pid;
  events_publish (s->events, "/tasks/start", "containerd.events.TaskStart", &ev.base);
  resp.pid = t->pid;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
}

/* Start of an exec process: `chvm exec` runs, /tasks/exec-started. */
static void
exec_started (struct shim *s, struct ttrpc_call *call, struct task *t, struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  Containerd__Task__V2__StartResponse resp = CONTAINERD__TASK__V2__START_RESPONSE__INIT;
  Containerd__Events__TaskExecStarted ev = CONTAINERD__EVENTS__TASK_EXEC_STARTED__INIT;
  char buf[512];

  if (x->status != CONTAINERD__V1__TYPES__STATUS__CREATED)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "exec %s is not created", x->id);
  else if (t->status != CONTAINERD__V1__TYPES__STATUS__RUNNING)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is not running", t->id);
  else if (exec_start (s, t, x, &err) < 0)
    ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
  else
    {
      ev.container_id = t->id;
      ev.exec_id = x->id;
      ev.pid = (uint32_t) x->pid;
      events_publish (s->events, "/tasks/exec-started", "containerd.events.TaskExecStarted",
                      &ev.base);
      resp.pid = (uint32_t) x->pid;
      ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
    }
}

static void
m_start (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
         struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  char buf[512];

  (void) req;
  if (x != NULL)
    exec_started (s, call, t, x);
  else if (t->status != CONTAINERD__V1__TYPES__STATUS__CREATED || t->busy)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is not created", t->id);
  else if (t->sandbox)
    {
      if (vm_placeholder (s, t, &err) < 0)
        ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
      else
        started (s, t, call, 0, "");
    }
  else if (vm_start (s, t, started, call, &err) < 0)
    ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
  else
    t->busy = true;
}

static void
m_state (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
         struct shim_exec *x)
{
  Containerd__Task__V2__StateResponse resp = CONTAINERD__TASK__V2__STATE_RESPONSE__INIT;
  Google__Protobuf__Timestamp at = stamp (&t->exited_at);

  (void) s;
  (void) req;
  resp.id = t->id;
  resp.bundle = t->bundle;
  resp.pid = t->pid;
  resp.status = t->status;
  resp.stdin = t->stdin_path;
  resp.stdout = t->stdout_path;
  resp.stderr = t->stderr_path;
  resp.terminal = t->terminal;
  resp.exit_status = t->exit_status;
  resp.exited_at = t->status == CONTAINERD__V1__TYPES__STATUS__STOPPED ? &at : NULL;
  if (x != NULL)
    {
      at = stamp (&x->exited_at);
      resp.exec_id = x->id;
      resp.pid = (uint32_t) x->pid;
      resp.status = x->status;
      resp.stdin = (char *) "";
      resp.stdout = x->stdout_path;
      resp.stderr = x->stderr_path;
      resp.terminal = false;
      resp.exit_status = x->exit_status;
      resp.exited_at = x->status == CONTAINERD__V1__TYPES__STATUS__STOPPED ? &at : NULL;
    }
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
}

/* Answers one Wait with t's exit. */
static void
wait_answer (struct task *t, struct ttrpc_call *call)
{
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
  Google__Protobuf__Timestamp at = stamp (&t->exited_at);

  resp.exit_status = t->exit_status;
  resp.exited_at = &at;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
}

void
vm_exited (struct shim *s, struct task *t)
{
  Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
  Google__Protobuf__Timestamp at;

  clock_gettime (CLOCK_REALTIME, &t->exited_at);
  t->status = CONTAINERD__V1__TYPES__STATUS__STOPPED;
  at = stamp (&t->exited_at);
  ev.container_id = t->id;
  ev.id = t->id;
  ev.pid = t->pid;
  ev.exit_status = t->exit_status;
  ev.exited_at = &at;
  log_info ("task %s exited with status %u", t->id, t->exit_status);
  events_publish (s->events, "/tasks/exit", "containerd.events.TaskExit", &ev.base);
  for (unsigned i = 0; i < t->n_waits; i++)
    wait_answer (t, t->waits[i]);
  t->n_waits = 0;
}

static void
m_wait (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
        struct shim_exec *x)
{
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;
  Google__Protobuf__Timestamp at;

  (void) s;
  (void) req;
  if (x != NULL && x->status == CONTAINERD__V1__TYPES__STATUS__STOPPED)
    {
      at = stamp (&x->exited_at);
      resp.exit_status = x->exit_status;
      resp.exited_at = &at;
      ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
    }
  else if (x != NULL && x->n_waits < SHIM_WAITS_MAX)
    x->waits[x->n_waits++] = call; /* parked until it ends (exec.c) */
  else if (x == NULL && t->status == CONTAINERD__V1__TYPES__STATUS__STOPPED)
    wait_answer (t, call);
  else if (x != NULL || t->n_waits >= SHIM_WAITS_MAX)
    ttrpc_reply (call, TTRPC_INTERNAL, "too many waits", NULL);
  else
    t->waits[t->n_waits++] = call; /* parked until the VM exits */
}

static void
m_kill (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
        struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  const Containerd__Task__V2__KillRequest *r = (const void *) req;
  char buf[512];

  if (x != NULL)
    {
      /* `chvm exec` ends; the agent kills what it ran with it. */
      if (x->status != CONTAINERD__V1__TYPES__STATUS__RUNNING || kill (x->pid, (int) r->signal) < 0)
        ttrpc_replyf (call, TTRPC_NOT_FOUND, "exec %s: process not running", x->id);
      else
        ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
    }
  else if (t->status == CONTAINERD__V1__TYPES__STATUS__STOPPED)
    ttrpc_replyf (call, TTRPC_NOT_FOUND, "task %s: process already finished", t->id);
  else if (t->status == CONTAINERD__V1__TYPES__STATUS__CREATED && !t->busy)
    {
      /* Never started: nothing runs, the task just ends. */
      t->exit_status = 128 + r->signal;
      vm_exited (s, t);
      ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
    }
  else if (t->sandbox)
    {
      /* The placeholder: its exit (placeholder_done) is the task's. */
      if (kill ((pid_t) t->pid, (int) r->signal) < 0)
        ttrpc_replyf (call, TTRPC_INTERNAL, "kill placeholder %u: %s", t->pid, strerror (errno));
      else
        ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
    }
  else if (t->switching && t->standby)
    /* Its VMM is not watched: the standby's or restore's end decides. */
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION,
                  "task %s: a standby or restore is under way: kill it once that is done", t->id);
  else if (t->busy || vm_kill (s, t, r->signal, &err) < 0)
    ttrpc_reply (call, TTRPC_INTERNAL,
                 t->busy ? "task is starting" : err_str (err, buf, sizeof buf), NULL);
  else
    ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
}

/* The last step of Delete: the task is gone. */
static void
deleted (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  Containerd__Events__TaskDelete ev = CONTAINERD__EVENTS__TASK_DELETE__INIT;
  Google__Protobuf__Timestamp at = stamp (&t->exited_at);
  char path[PATH_MAX];

  if (status != 0)
    log_warn ("delete %s: chvm image rm: %s", t->id, msg);
  snprintf (path, sizeof path, "%s/%s", t->bundle, SHIM_STATE_FILE);
  unlink (path);
  ev.container_id = t->id;
  ev.id = t->id;
  ev.pid = t->pid;
  ev.exit_status = t->exit_status;
  ev.exited_at = &at;
  events_publish (s->events, "/tasks/delete", "containerd.events.TaskDelete", &ev.base);
  resp.pid = t->pid;
  resp.exit_status = t->exit_status;
  resp.exited_at = &at;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    if (s->tasks[i] == t)
      s->tasks[i] = NULL;
  task_free (t);
}

/* After `chvm rm -f`: the container's cache entry goes (the layer chain's
   stays, for the next container of the image); a clone has none. */
static void
vm_removed (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  cleanup_err struct err *err = NULL;
  const char *args[] = { "image", "rm", t->image_id, NULL };
  char buf[512];

  if (status != 0)
    {
      t->busy = false;
      ttrpc_replyf (call, TTRPC_INTERNAL, "chvm rm: %s", msg);
      return;
    }
  if (t->image_id[0] == '\0')
    deleted (s, t, call, 0, "");
  else if (vm_chvm (s, t, args, deleted, call, &err) < 0)
    {
      t->busy = false;
      ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
    }
}

/* Delete of an exec process: it must have ended (or never started). */
static void
exec_deleted (struct ttrpc_call *call, struct task *t, struct shim_exec *x)
{
  Containerd__Task__V2__DeleteResponse resp = CONTAINERD__TASK__V2__DELETE_RESPONSE__INIT;
  Google__Protobuf__Timestamp at = stamp (&x->exited_at);

  if (x->status == CONTAINERD__V1__TYPES__STATUS__RUNNING)
    {
      ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "exec %s is running: kill it first", x->id);
      return;
    }
  resp.pid = (uint32_t) x->pid;
  resp.exit_status = x->exit_status;
  resp.exited_at = &at;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
  exec_remove (t, x);
}

/* Exec: a process added to a running task (exec.c), /tasks/exec-added. */
static void
m_exec (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
        struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  const Containerd__Task__V2__ExecProcessRequest *r = (const void *) req;
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  Containerd__Events__TaskExecAdded ev = CONTAINERD__EVENTS__TASK_EXEC_ADDED__INIT;
  char buf[512];

  (void) x;
  if (t->status != CONTAINERD__V1__TYPES__STATUS__RUNNING)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is not running", t->id);
  else if (t->sandbox)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is a pod's sandbox: no VM", t->id);
  else if (exec_add (t, r, &err) < 0)
    ttrpc_reply (call, err->status == EEXIST ? TTRPC_ALREADY_EXISTS : TTRPC_INVALID_ARGUMENT,
                 err_str (err, buf, sizeof buf), NULL);
  else
    {
      ev.container_id = t->id;
      ev.exec_id = r->exec_id;
      events_publish (s->events, "/tasks/exec-added", "containerd.events.TaskExecAdded", &ev.base);
      ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
    }
}

static void
m_delete (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
          struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  char buf[512];

  (void) req;
  if (x != NULL)
    exec_deleted (call, t, x);
  else if (t->busy || t->switching || t->status == CONTAINERD__V1__TYPES__STATUS__RUNNING
           || t->status == CONTAINERD__V1__TYPES__STATUS__PAUSED)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is running: kill it first", t->id);
  else
    {
      const char *args[] = { "rm", "-f", t->vm, NULL };

      t->busy = true;
      if (t->sandbox)
        deleted (s, t, call, 0, ""); /* no VM, no image */
      else if (t->pid == (uint32_t) getpid ())
        vm_removed (s, t, call, 0, ""); /* no VM was made */
      else if (vm_chvm (s, t, args, vm_removed, call, &err) < 0)
        {
          t->busy = false;
          ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
        }
    }
}

static void
m_connect (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
           struct shim_exec *x)
{
  Containerd__Task__V2__ConnectResponse resp = CONTAINERD__TASK__V2__CONNECT_RESPONSE__INIT;

  (void) x;
  (void) s;
  (void) req;
  resp.shim_pid = (uint32_t) getpid ();
  resp.task_pid = t->pid;
  resp.version = (char *) SHIM_VERSION;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
}

static void
m_pids (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
        struct shim_exec *x)
{
  Containerd__Task__V2__PidsResponse resp = CONTAINERD__TASK__V2__PIDS_RESPONSE__INIT;
  Containerd__V1__Types__ProcessInfo info = CONTAINERD__V1__TYPES__PROCESS_INFO__INIT;
  Containerd__V1__Types__ProcessInfo *infos[1] = { &info };

  (void) x;
  (void) s;
  (void) req;
  info.pid = t->pid;
  resp.n_processes = t->status == CONTAINERD__V1__TYPES__STATUS__RUNNING
                             || (t->status == CONTAINERD__V1__TYPES__STATUS__PAUSED && !t->stood_by)
                         ? 1
                         : 0;
  resp.processes = infos;
  ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
}

/* The end of `chvm pause|standby` (to PAUSED) or `chvm resume|restore` (to
   RUNNING): the status, /tasks/paused or /tasks/resumed, the answer. */
static void
switched (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg,
          Containerd__V1__Types__Status to)
{
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;
  Containerd__Events__TaskPaused pev = CONTAINERD__EVENTS__TASK_PAUSED__INIT;
  Containerd__Events__TaskResumed rev = CONTAINERD__EVENTS__TASK_RESUMED__INIT;
  bool pause = to == CONTAINERD__V1__TYPES__STATUS__PAUSED;

  t->switching = false; /* Delete waited for this */
  if (status != 0)
    {
      ttrpc_replyf (call, TTRPC_INTERNAL, "chvm %s: %s",
                    t->standby ? (pause ? "standby" : "restore") : (pause ? "pause" : "resume"),
                    msg);
      return;
    }
  /* The VMM may have exited meanwhile: STOPPED stays. */
  if (t->status != CONTAINERD__V1__TYPES__STATUS__STOPPED)
    t->status = to;
  if (!t->standby) /* vm.c told of a standby's and a restore's VMM */
    log_info ("VM %s: %s", t->vm, pause ? "paused" : "resumed");
  pev.container_id = rev.container_id = t->id;
  if (pause)
    events_publish (s->events, "/tasks/paused", "containerd.events.TaskPaused", &pev.base);
  else
    events_publish (s->events, "/tasks/resumed", "containerd.events.TaskResumed", &rev.base);
  ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
}

static void
paused (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  switched (s, t, call, status, msg, CONTAINERD__V1__TYPES__STATUS__PAUSED);
}

static void
resumed (struct shim *s, struct task *t, struct ttrpc_call *call, int status, const char *msg)
{
  switched (s, t, call, status, msg, CONTAINERD__V1__TYPES__STATUS__RUNNING);
}

/* Pause (from RUNNING) or Resume (from PAUSED): vm_pause. */
static void
pause_or_resume (struct shim *s, struct ttrpc_call *call, struct task *t, bool pause)
{
  cleanup_err struct err *err = NULL;
  Containerd__V1__Types__Status from
      = pause ? CONTAINERD__V1__TYPES__STATUS__RUNNING : CONTAINERD__V1__TYPES__STATUS__PAUSED;
  char buf[512];

  if (t->busy || t->switching || t->stopping || t->status != from || t->sandbox)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is not %s%s", t->id,
                  pause ? "running" : "paused", t->sandbox ? " (a pod's sandbox: no VM)" : "");
  else if (vm_pause (s, t, pause, pause ? paused : resumed, call, &err) < 0)
    ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
  else
    t->switching = true;
}

static void
m_pause (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
         struct shim_exec *x)
{
  (void) req;
  (void) x;
  pause_or_resume (s, call, t, true);
}

static void
m_resume (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
          struct shim_exec *x)
{
  (void) req;
  (void) x;
  pause_or_resume (s, call, t, false);
}

/* Stats: the VM's cgroup as a google.protobuf.Any of cgroups v2 Metrics. */
static void
m_stats (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
         struct shim_exec *x)
{
  cleanup_err struct err *err = NULL;
  Containerd__Task__V2__StatsResponse resp = CONTAINERD__TASK__V2__STATS_RESPONSE__INIT;
  Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
  struct cgroup_stats cs;
  uint8_t packed[STATS_PACKED_MAX];
  char buf[512];

  (void) req;
  (void) x;
  if (t->status != CONTAINERD__V1__TYPES__STATUS__RUNNING
      && t->status != CONTAINERD__V1__TYPES__STATUS__PAUSED)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is not running", t->id);
  else if (t->sandbox)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION, "task %s is a pod's sandbox: no VM", t->id);
  else if (t->stood_by)
    ttrpc_replyf (call, TTRPC_FAILED_PRECONDITION,
                  "task %s is in standby: its VM is a snapshot on disk, no VMM runs", t->id);
  else if (stats_read (s, t, &cs, &err) < 0)
    ttrpc_reply (call, TTRPC_INTERNAL, err_str (err, buf, sizeof buf), NULL);
  else
    {
      any.type_url = (char *) STATS_TYPE_URL;
      any.value.data = packed;
      any.value.len = stats_pack (&cs, packed);
      resp.stats = &any;
      ttrpc_reply (call, TTRPC_OK, NULL, &resp.base);
    }
}

static void
exit_now (void *arg)
{
  struct shim *s = arg;

  event_base_loopexit (s->base, NULL);
}

void
shim_exit (struct shim *s)
{
  s->shutdown = true;
  events_on_idle (s->events, exit_now, s);
}

static void
m_shutdown (struct shim *s, struct ttrpc_call *call, const ProtobufCMessage *req, struct task *t,
            struct shim_exec *x)
{
  Google__Protobuf__Empty empty = GOOGLE__PROTOBUF__EMPTY__INIT;

  (void) x;
  (void) req;
  (void) t;
  ttrpc_reply (call, TTRPC_OK, NULL, &empty.base);
  /* A task still there keeps the shim (as runc's shim does). */
  for (size_t i = 0; i < SHIM_TASKS_MAX; i++)
    if (s->tasks[i] != NULL)
      return;
  unlink (s->socket_path);
  shim_exit (s);
}

/* Which task a request names: none (Create, Shutdown), its id, or its id
   and exec id (an exec process of it). */
enum names
{
  NAMES_NONE,
  NAMES_ID,
  NAMES_EXEC,
};

static const struct
{
  const char *name;
  const ProtobufCMessageDescriptor *req;
  enum names names;
  method_fn fn;
} methods[] = {
  { "Create", &containerd__task__v2__create_task_request__descriptor, NAMES_NONE, m_create },
  { "Start", &containerd__task__v2__start_request__descriptor, NAMES_EXEC, m_start },
  { "State", &containerd__task__v2__state_request__descriptor, NAMES_EXEC, m_state },
  { "Wait", &containerd__task__v2__wait_request__descriptor, NAMES_EXEC, m_wait },
  { "Kill", &containerd__task__v2__kill_request__descriptor, NAMES_EXEC, m_kill },
  { "Delete", &containerd__task__v2__delete_request__descriptor, NAMES_EXEC, m_delete },
  { "Exec", &containerd__task__v2__exec_process_request__descriptor, NAMES_ID, m_exec },
  { "Connect", &containerd__task__v2__connect_request__descriptor, NAMES_ID, m_connect },
  { "Pids", &containerd__task__v2__pids_request__descriptor, NAMES_ID, m_pids },
  { "Pause", &containerd__task__v2__pause_request__descriptor, NAMES_ID, m_pause },
  { "Resume", &containerd__task__v2__resume_request__descriptor, NAMES_ID, m_resume },
  { "Stats", &containerd__task__v2__stats_request__descriptor, NAMES_ID, m_stats },
  { "Shutdown", &containerd__task__v2__shutdown_request__descriptor, NAMES_NONE, m_shutdown },
};

/* The string field name of a request ("" when it has none). */
static const char *
req_string (const ProtobufCMessage *req, const char *name)
{
  const ProtobufCFieldDescriptor *f
      = protobuf_c_message_descriptor_get_field_by_name (req->descriptor, name);
  const char *v;

  if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING || f->label == PROTOBUF_C_LABEL_REPEATED)
    return "";
  v = *(const char *const *) ((const char *) req + f->offset);
  return v != NULL ? v : "";
}

/* Unpacks the request, finds the task it names, runs the handler. */
static void
task_call (struct shim *s, struct ttrpc_call *call, size_t m, const ProtobufCBinaryData *p)
{
  ProtobufCMessage *req = protobuf_c_message_unpack (methods[m].req, NULL, p->len, p->data);
  struct task *t = NULL;
  struct shim_exec *x = NULL;

  if (req == NULL)
    {
      ttrpc_reply (call, TTRPC_INVALID_ARGUMENT, methods[m].req->short_name, NULL);
      return;
    }
  if (methods[m].names == NAMES_NONE
      || (t = task_find (s, call, req_string (req, "id"),
                         methods[m].names == NAMES_EXEC ? req_string (req, "exec_id") : NULL, &x))
             != NULL)
    methods[m].fn (s, call, req, t, x);
  protobuf_c_message_free_unpacked (req, NULL);
}

void
task_dispatch (void *ctx, struct ttrpc_call *call, const Ttrpc__Request *req)
{
  struct shim *s = ctx;

  if (strcmp (req->service, "containerd.task.v2.Task") != 0
      && strcmp (req->service, "containerd.task.v3.Task") != 0)
    {
      ttrpc_replyf (call, TTRPC_UNIMPLEMENTED, "service %s", req->service);
      return;
    }
  for (size_t i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strcmp (req->method, methods[i].name) == 0)
      {
        log_debug ("%s", req->method);
        task_call (s, call, i, &req->payload);
        return;
      }
  ttrpc_replyf (call, TTRPC_UNIMPLEMENTED, "%s.%s is not implemented by chvm", req->service,
                req->method);
}
