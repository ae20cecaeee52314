/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm standby NAME: agent Quiesce -> pause -> snapshot into
 * <dir>/snapshot.tmp-PID-XXXXXX -> fsync of each file and the dir -> rename
 * to <dir>/snapshot once complete, fsync of <dir> -> vm.json "standby"
 * (durable) -> VMM shutdown.  The tap stays, so that a restore finds it.  Each phase is
 * timed.
 *
 * The agent connection stays open until the VMM is gone: the agent thaws
 * by itself when its client disconnects, and the snapshot must hold the
 * frozen state.  A failure before the snapshot is complete resumes the VM
 * and thaws it, so it is left as it was.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "commands.h"
#include "console.h"
#include "proc.h"
#include "vmctl.h"
#include "vmmuser.h"

#define QUIESCE_MS 300000 /* agent auto-thaw bound: covers pause + snapshot */
#define DEFAULT_AGENT_S 60

/* Set from --timeout: how long the running guest's agent has to answer
   (connect and Hello; a guest under heavy load can take seconds). */
static unsigned agent_timeout_s = DEFAULT_AGENT_S;

static int
standby (struct vmctl *c, bool quiesce, struct phase *ph, size_t *n, struct err **err)
{
  char tmp[VM_PATH_MAX + 32], snap[VM_PATH_MAX + 16];
  struct agent_client *a = NULL;
  cleanup_err struct err *e2 = NULL;
  enum vm_status st = vmctl_status (c);
  double t = proc_now_ms ();
  unsigned frozen = 0;
  int64_t freed_kb = 0;
  bool paused = false;
  sigset_t old_mask;
  int r;

  if (st != VM_STATUS_RUNNING && st != VM_STATUS_PAUSED)
    return err_make (err, 0, "VM '%s' is %s, not running", c->rec.name, vm_status_name (st));
  /* What interrupted standbys left (we hold the state lock). */
  if (vm_sweep_snapshot_tmp (c->dir, NULL, err) < 0)
    return -1;
  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  /* A leftover complete snapshot belongs to an older standby: the new one
     replaces it only when complete (rename below). */
  if (st == VM_STATUS_RUNNING)
    {
      if (quiesce
          && (vmctl_agent (c, (int) agent_timeout_s * 1000, &a, err) < 0
              || agent_quiesce (a, QUIESCE_MS, true, false, &frozen, &freed_kb, QUIESCE_MS, err)
                     < 0))
        {
          if (a != NULL)
            agent_close (a);
          return err_wrap (err, "quiesce");
        }
      if (quiesce)
        vmctl_phase (ph, n, "quiesce", &t);
    }
  /* Once paused, a ^C or SIGTERM waits: before the snapshot is complete
     the VM is resumed and thawed first, after it the standby finishes. */
  vmctl_hold_signals (&old_mask);
  if (st == VM_STATUS_RUNNING)
    {
      if (c->be->pause (&c->rec.rt, err) < 0)
        goto undo;
      paused = true;
      vmctl_phase (ph, n, "pause", &t);
      vmctl_fault ("standby", "paused", c->rec.rt.vmm_pid);
    }
  if (vm_snapshot_tmp (c->dir, tmp, sizeof tmp, err) < 0)
    goto undo;
  /* The VMM (its own uid) writes the snapshot. */
  if (vmmuser_give_dir (tmp, &c->rec, err) < 0)
    {
      vmctl_rmtree (tmp, &e2);
      goto undo;
    }
  if (c->be->snapshot (&c->rec.rt, tmp, err) < 0)
    {
      vmctl_rmtree (tmp, &e2);
      goto undo;
    }
  /* Every file and directory of the snapshot is on disk before it is
     named snapshot, and the rename is before vm.json says standby. */
  if (vmctl_check_signals (err) < 0 || vmctl_rmtree (snap, err) < 0
      || vm_snapshot_commit (tmp, snap, err) < 0)
    {
      vmctl_rmtree (tmp, &e2);
      goto undo;
    }
  vmctl_phase (ph, n, "snapshot", &t);
  vmctl_fault ("standby", "snapshotted", c->rec.rt.vmm_pid);
  /* From here the snapshot is the VM: record it before stopping the VMM
     (a chvm killed in between leaves a paused VMM that status shows as
     standby and the next locked command stops: vmctl_stop_leftover). */
  c->rec.state = VM_STATUS_STANDBY;
  if (vmctl_save (c, err) < 0)
    goto undo;
  vmctl_fault ("standby", "recorded", c->rec.rt.vmm_pid);
  if (c->be->shutdown (&c->rec.rt, err) < 0)
    {
      if (a != NULL)
        agent_close (a);
      sigprocmask (SIG_SETMASK, &old_mask, NULL);
      return err_wrap (err, "snapshot complete, but the VMM did not stop");
    }
  if (a != NULL)
    agent_close (a);
  console_logger_stop (c->dir, 2000);
  vmctl_phase (ph, n, "shutdown", &t);
  vmctl_fault ("standby", "stopped", 0);
  c->rec.rt.vmm_pid = 0;
  r = vmctl_save (c, err);
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  return r;

undo:
  if (paused)
    c->be->resume (&c->rec.rt, &e2);
  err_release (&e2);
  if (a != NULL)
    {
      agent_thaw (a, 0, false, NULL, NULL, NULL, (int) agent_timeout_s * 1000, &e2);
      agent_close (a);
    }
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  return -1;
}

int
cmd_standby (const struct global_opts *g, int argc, char **argv)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  bool quiesce;
  int status;
  const char *name = vmctl_phased_args (
      argc, argv, "--no-quiesce",
      "Usage: chvm standby [--no-quiesce] [--timeout SECONDS] NAME [--json]\n\n"
      "Quiesce (agent: freeze filesystems, drop caches), pause and snapshot the VM\n"
      "to disk, then stop its VMM; `chvm restore NAME` brings it back.  Prints each\n"
      "phase's time.  --no-quiesce: for guests without the agent.  --timeout: how\n"
      "long the guest's agent has to answer before the quiesce (default 60); the VM\n"
      "is left running when it does not.\n",
      &quiesce, &agent_timeout_s, &status);

  if (name == NULL)
    return status;
  if (c == NULL)
    return 1;
  return vmctl_run_phased (g, "standby", name, quiesce, standby, c);
}
