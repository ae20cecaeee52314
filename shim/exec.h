/* SPDX-License-Identifier: Apache-2.0 */
/* Exec processes of a task (exec.c): `ctr task exec`, run in the guest by
   `chvm exec` through the agent. */
#ifndef CHVM_SHIM_EXEC_H
#define CHVM_SHIM_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "github.com/containerd/containerd/api/types/task/task.pb-c.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "shim.h"

#define SHIM_EXECS_MAX 64

struct shim_exec
{
  struct shim_exec *next;
  struct shim *s;
  struct task *t; /* its task (while not an orphan) */
  char *id, *stdout_path, *stderr_path;
  struct shim_spec *spec;
  Containerd__V1__Types__Status status;
  pid_t pid; /* the `chvm exec` running it */
  uint32_t exit_status;
  struct timespec exited_at;
  struct ttrpc_call *waits[SHIM_WAITS_MAX];
  unsigned n_waits;
  bool orphan; /* its task went while it ran: freed when it ends */
};

/* The exec named id of t, or NULL. */
struct shim_exec *exec_find (const struct task *t, const char *id);
/* Adds r's process to t (CREATED): its spec parsed, its id new. */
int exec_add (struct task *t, const Containerd__Task__V2__ExecProcessRequest *r, struct err **err);
/* Starts x: `chvm exec` with x's args, env and cwd, its output on x's
   fifos; its end publishes /tasks/exit and answers the waits. */
int exec_start (struct shim *s, struct task *t, struct shim_exec *x, struct err **err);
/* Removes a stopped (or never started) x from t. */
void exec_remove (struct task *t, struct shim_exec *x);
void exec_free_all (struct task *t);

#endif
