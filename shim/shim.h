/* SPDX-License-Identifier: Apache-2.0 */
/*
 * containerd-shim-chvm-v1: the daemon's state.  One shim per container,
 * one container per VM; a CRI pod's shim serves its sandbox (a placeholder
 * process, no VM) and its one container (the VM, in the pod's network
 * namespace).  The VM's lifecycle is chvm's (`chvm run`, `stop`,
 * `rm`, `image rm` run as children: one implementation, with its lock, its
 * records and its per-VM supervisor, which holds the VM's CDP endpoint).
 *
 *   main.c    flags, the start and delete subcommands, the daemon's loop
 *   ttrpc.c   framing and the server
 *   task.c    the containerd.task.v2.Task service
 *   vm.c      the VM through chvm: run (or clone), watch the VMM, pause
 *             (or stand by) and resume (or restore), stop
 *   spec.c    config.json;  rootfs.c  the root disk;  names.c  derived names
 *   exec.c    exec processes (`chvm exec` in the guest)
 *   stats.c   Stats: the VM's cgroup as cgroups v2 Metrics
 *   events.c  task events;  child.c   programs run off the loop
 */
#ifndef CHVM_SHIM_H
#define CHVM_SHIM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "github.com/containerd/containerd/api/types/task/task.pb-c.h"
#include "image/image.h"
#include "state/vmrec.h"
#include "ttrpc.h"

#define SHIM_WAITS_MAX 32
#define SHIM_TASKS_MAX 2 /* a pod's sandbox and its one container */
#define SHIM_STATE_FILE "chvm-shim.json"

struct events;
struct shim_exec;

struct task
{
  struct shim *s;
  char *id, *bundle, *stdin_path, *stdout_path, *stderr_path;
  bool terminal;
  bool sandbox;             /* a pod's sandbox: pid is the placeholder's */
  char netns[NAME_MAX + 1]; /* the pod's network namespace (/run/netns), or "" */
  Containerd__V1__Types__Status status;
  uint32_t pid; /* the VMM's once started, a restore's new one after it (a sandbox: its
                   placeholder's) */
  uint32_t exit_status;
  struct timespec exited_at;
  char vm[VM_NAME_MAX + 1];
  char image_id[IMAGE_ID_LEN + 1]; /* the container's own cache entry ("" for a clone) */
  char tmpl[VM_NAME_MAX + 1];      /* the template it is cloned from, or "" */
  unsigned cpus;                   /* the VM's vCPUs, 0: chvm run's default */
  uint64_t memory_mib;             /* its guest RAM, 0: chvm run's default */
  bool standby;                    /* Pause stands the VM by (SPEC_ANN_PAUSE) */
  bool no_agent;                   /* its guest has no chvm agent (SPEC_ANN_AGENT) */
  int stdout_fd, stderr_fd;        /* held open (O_RDWR) so writers never block */
  struct ttrpc_call *waits[SHIM_WAITS_MAX];
  unsigned n_waits;
  int vmm_pidfd;
  struct event *vmm_ev;
  bool stopping;           /* a `chvm stop` runs */
  bool killed;             /* SIGKILL was asked for */
  bool busy;               /* Start or Delete is under way */
  bool switching;          /* a `chvm pause|resume|standby|restore` runs */
  bool stood_by;           /* in standby: a snapshot, no VMM (pid: the last one's) */
  struct shim_exec *execs; /* exec.c */
};

struct shim
{
  struct event_base *base;
  struct ttrpc_server *server;
  struct events *events;
  char ns[256], id[256], address[PATH_MAX], publish_binary[PATH_MAX], bundle[PATH_MAX];
  char socket_path[PATH_MAX];
  char chvm[PATH_MAX];                /* the chvm binary */
  char state_root[PATH_MAX];          /* chvm's state dir */
  struct task *tasks[SHIM_TASKS_MAX]; /* NULL: a free slot */
  bool shutdown;
};

/* task.c: the ttrpc handler of the Task service. */
void task_dispatch (void *ctx, struct ttrpc_call *call, const Ttrpc__Request *req);
void task_free (struct task *t);
/* The task named id, or NULL. */
struct task *shim_task (struct shim *s, const char *id);
/* Whether t is still one of s's tasks (a callback's check). */
bool shim_has_task (const struct shim *s, const struct task *t);

/* Ends the loop once the events are out. */
void shim_exit (struct shim *s);

/* vm.c */
typedef void (*vm_done_fn) (struct shim *s, struct task *t, struct ttrpc_call *call, int status,
                            const char *msg);
/* `chvm --state-dir ROOT args...` for t; done gets its status and, on
   failure, its last stderr line; call travels along (may be NULL). */
int vm_chvm (struct shim *s, struct task *t, const char *const args[], vm_done_fn done,
             struct ttrpc_call *call, struct err **err);
/* Boots t's VM (in t->netns when set, the guest's CDP port published on
   the namespace's addresses; sized by t->cpus and t->memory_mib when set),
   or clones it from t->tmpl (`chvm run --from`: the template's size and
   network); done when chvm run returned (t->pid set, VMM watched). */
int vm_start (struct shim *s, struct task *t, vm_done_fn done, struct ttrpc_call *call,
              struct err **err);
/* Pause (pause) or Resume: `chvm pause|resume`, or with t->standby `chvm
   standby` (the VMM stops: no longer watched, t->stood_by) and `chvm
   restore` (the new VMM watched, t->pid its pid); done with chvm's status
   (a restore: 0 whenever a VMM of the VM runs after it). */
int vm_pause (struct shim *s, struct task *t, bool pause, vm_done_fn done, struct ttrpc_call *call,
              struct err **err);
/* Kill: SIGKILL ends the VMM, anything else presses the power button; a VM
   in standby is stopped (its snapshot discarded) and exits with 128+sig. */
int vm_kill (struct shim *s, struct task *t, uint32_t sig, struct err **err);
/* A sandbox's placeholder process: started (t->pid), its exit the task's. */
int vm_placeholder (struct shim *s, struct task *t, struct err **err);
/* The VM's exit (VMM gone): sets the status, answers the waits. */
void vm_exited (struct shim *s, struct task *t);
/* The entrypoint's exit status from the VM's console log; -1 when absent. */
int vm_console_exit_status (const char *text);

/* The per-container state file (bundle/chvm-shim.json) `delete` reads. */
int shim_state_write (const struct shim *s, const struct task *t, struct err **err);

#endif
