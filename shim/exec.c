/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exec processes (exec.h).  containerd sends the process as an OCI Process
 * object in JSON (its args, env, cwd); Start runs `chvm --state-dir R exec
 * --workdir CWD --env ... VM -- ARGS`, whose stdout and stderr are the
 * fifos containerd made (opened read-write: the open never waits for a
 * reader).  Its stdin is /dev/null: `chvm exec --stdin` reads all of its
 * input before the command starts, which an interactive exec would never
 * end.  Kill signals that `chvm exec`; the agent kills the command's
 * process group when its connection ends.  It runs as root in the guest
 * (the agent's user), whatever process.user says.
 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "cleanup.h"
#include "events.h"
#include "github.com/containerd/containerd/api/events/task.pb-c.h"
#include "log.h"
#include "spec.h"

struct shim_exec *
exec_find (const struct task *t, const char *id)
{
  for (struct shim_exec *x = t->execs; x != NULL; x = x->next)
    if (strcmp (x->id, id) == 0)
      return x;
  return NULL;
}

static void
exec_free (struct shim_exec *x)
{
  for (unsigned i = 0; i < x->n_waits; i++)
    ttrpc_reply (x->waits[i], TTRPC_INTERNAL, "shim exiting", NULL);
  shim_spec_free (x->spec);
  free (x->id);
  free (x->stdout_path);
  free (x->stderr_path);
  free (x);
}

int
exec_add (struct task *t, const Containerd__Task__V2__ExecProcessRequest *r, struct err **err)
{
  struct shim_exec *x;
  unsigned n = 0;

  for (x = t->execs; x != NULL; x = x->next)
    n++;
  if (n >= SHIM_EXECS_MAX)
    return err_make (err, E2BIG, "task %s has %u exec processes already", t->id, n);
  if (r->exec_id[0] == '\0' || exec_find (t, r->exec_id) != NULL)
    return err_make (err, EEXIST, "exec id '%s' is empty or taken", r->exec_id);
  if (r->terminal)
    return err_make (err, ENOTSUP, "exec %s: no terminal (chvm exec has none)", r->exec_id);
  if (r->spec == NULL)
    return err_make (err, EINVAL, "exec %s: no process spec", r->exec_id);
  if ((x = calloc (1, sizeof *x)) == NULL)
    return err_make (err, ENOMEM, "exec");
  x->status = CONTAINERD__V1__TYPES__STATUS__CREATED;
  x->id = strdup (r->exec_id);
  x->stdout_path = strdup (r->stdout);
  x->stderr_path = strdup (r->stderr);
  if (x->id == NULL || x->stdout_path == NULL || x->stderr_path == NULL
      || shim_spec_parse_process ((const char *) r->spec->value.data, r->spec->value.len, &x->spec,
                                  err)
             < 0)
    {
      if (x->id == NULL || x->stdout_path == NULL || x->stderr_path == NULL)
        err_make (err, ENOMEM, "exec");
      exec_free (x);
      return err_wrap (err, "exec %s: process spec", r->exec_id);
    }
  x->next = t->execs;
  t->execs = x;
  return 0;
}

static void
exec_done (void *arg, int status, const char *out, const char *errout)
{
  struct shim_exec *x = arg;
  struct shim *s = x->s;
  Containerd__Events__TaskExit ev = CONTAINERD__EVENTS__TASK_EXIT__INIT;
  Google__Protobuf__Timestamp at = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  Containerd__Task__V2__WaitResponse resp = CONTAINERD__TASK__V2__WAIT_RESPONSE__INIT;

  (void) out;
  (void) errout;
  log_info ("exec %s exited with status %d", x->id, status);
  if (x->orphan)
    {
      exec_free (x);
      return;
    }
  clock_gettime (CLOCK_REALTIME, &x->exited_at);
  x->status = CONTAINERD__V1__TYPES__STATUS__STOPPED;
  x->exit_status = (uint32_t) status;
  at.seconds = x->exited_at.tv_sec;
  at.nanos = (int32_t) x->exited_at.tv_nsec;
  ev.container_id = x->t->id;
  ev.id = x->id;
  ev.pid = (uint32_t) x->pid;
  ev.exit_status = x->exit_status;
  ev.exited_at = &at;
  events_publish (s->events, "/tasks/exit", "containerd.events.TaskExit", &ev.base);
  resp.exit_status = x->exit_status;
  resp.exited_at = &at;
  for (unsigned i = 0; i < x->n_waits; i++)
    ttrpc_reply (x->waits[i], TTRPC_OK, NULL, &resp.base);
  x->n_waits = 0;
}

/* A fifo containerd made, opened so that neither the open nor a write
   waits for its reader; /dev/null when path is "". */
static int
open_out (const char *path)
{
  return open (path[0] ? path : "/dev/null", O_RDWR | O_CLOEXEC);
}

#define EXEC_ARGS_MAX (8 + 3 * OCI_LIST_MAX)

int
exec_start (struct shim *s, struct task *t, struct shim_exec *x, struct err **err)
{
  cleanup_free const char **argv = calloc (EXEC_ARGS_MAX, sizeof *argv);
  cleanup_close int out = -1, errout = -1;
  size_t n = 0;

  if (argv == NULL)
    return err_make (err, ENOMEM, "exec");
  argv[n++] = s->chvm;
  argv[n++] = "--state-dir";
  argv[n++] = s->state_root;
  argv[n++] = "exec";
  argv[n++] = "--workdir";
  argv[n++] = x->spec->cwd;
  for (size_t i = 0; i < x->spec->n_env; i++)
    {
      argv[n++] = "--env";
      argv[n++] = x->spec->env[i];
    }
  argv[n++] = t->vm;
  argv[n++] = "--";
  for (size_t i = 0; i < x->spec->n_args; i++)
    argv[n++] = x->spec->args[i];
  argv[n] = NULL;
  if ((out = open_out (x->stdout_path)) < 0 || (errout = open_out (x->stderr_path)) < 0)
    return err_make (err, errno, "exec %s: open its output", x->id);
  x->s = s;
  x->t = t;
  if (child_spawn_io (s->base, argv, out, errout, exec_done, x, &x->pid, err) < 0)
    return err_wrap (err, "exec %s", x->id);
  x->status = CONTAINERD__V1__TYPES__STATUS__RUNNING;
  log_info ("exec %s: %s (pid %d)", x->id, x->spec->args[0], (int) x->pid);
  return 0;
}

static void
unlink_exec (struct task *t, struct shim_exec *x)
{
  for (struct shim_exec **p = &t->execs; *p != NULL; p = &(*p)->next)
    if (*p == x)
      {
        *p = x->next;
        return;
      }
}

void
exec_remove (struct task *t, struct shim_exec *x)
{
  unlink_exec (t, x);
  exec_free (x);
}

void
exec_free_all (struct task *t)
{
  while (t->execs != NULL)
    {
      struct shim_exec *x = t->execs;

      t->execs = x->next;
      if (x->status == CONTAINERD__V1__TYPES__STATUS__RUNNING)
        {
          kill (x->pid, SIGKILL);
          x->orphan = true; /* exec_done frees it */
        }
      else
        exec_free (x);
    }
}
