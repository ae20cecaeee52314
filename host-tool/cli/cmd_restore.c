/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm restore NAME: only from a complete <dir>/snapshot (a snapshot.tmp-*
 * left by an interrupted standby is never used).  Recreates the tap, starts
 * a VMM that restores and resumes, then tells the agent to thaw with the
 * host's time and waits until the browser answers.  Phases are timed.
 *
 * On the QEMU backend, connections forwarded by user-net ended with the old
 * QEMU: CDP clients reconnect (the browser, its targets and pages are the
 * same).  Through a tap (cloud-hypervisor) they survive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "clock.h"
#include "net/net.h"
#include "supervisor/supervisor.h"
#include "sys/fs.h"
#include "sys/proc.h"
#include "vm/vmctl.h"
#include "vm/vmmuser.h"
#include "vmm/console.h"

#define DEFAULT_AGENT_S 120

/* Set from --timeout: how long the resumed guest has to answer the agent,
   thaw and have the browser ready, all three together. */
static unsigned agent_timeout_s = DEFAULT_AGENT_S;
/* --memory-restore, --prefault; the backend says what it did (the report
   reads it after restore() returns). */
static struct vm_restore_opts restore_opts;
static const char *const restore_mode_names[] = {
  [VM_RESTORE_AUTO] = "auto",
  [VM_RESTORE_COPY] = "copy",
  [VM_RESTORE_ONDEMAND] = "ondemand",
};

static void
unlink_pid (const char *dir)
{
  char path[VM_PATH_MAX + 16];

  snprintf (path, sizeof path, "%s/vmm.pid", dir);
  unlink (path);
}

static int
restore (struct vmctl *c, bool agent, struct phase *ph, size_t *n, struct err **err)
{
  char snap[VM_PATH_MAX + 16];
  struct publish pub[VM_MAX_PUBLISH];
  struct vm_spec spec;
  struct vmm_jail_storage jail;
  struct vm_runtime saved_rt;
  struct agent_client *a = NULL;
  Chvm__Agent__Frame *reply = NULL;
  cleanup_err struct err *e2 = NULL;
  enum vm_status st = vmctl_status (c);
  struct stat sb;
  double t = clock_now_ms (), start = t, deadline;
  unsigned thawed = 0;
  int64_t step_ns = 0;
  sigset_t old_mask;
  pid_t other;

  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  if (st != VM_STATUS_STANDBY || stat (snap, &sb) < 0 || !S_ISDIR (sb.st_mode))
    return err_make (err, 0, "VM '%s' is %s: nothing to restore (no complete snapshot)",
                     c->rec.name, vm_status_name (st));
  if (c->be->snapshot_check (snap, err) < 0)
    return err_wrap (err, "VM '%s' cannot be restored", c->rec.name);
  /* A VMM that vmm.pid names but vm.json does not: a restore killed before
     it could record it.  A second one on the same snapshot and disks would
     corrupt them. */
  if ((other = vmctl_read_pid (c->dir)) > 0 && other != c->rec.rt.vmm_pid
      && proc_pid_names_dir (other, c->dir))
    return err_make (err, 0,
                     "VM '%s': a VMM (pid %d) that vm.json does not record runs on its snapshot "
                     "(an interrupted restore?); kill it before restoring",
                     c->rec.name, (int) other);
  /* A ^C or SIGTERM waits until the record names the new VMM: dying
     before would leave it running unseen by stop and rm. */
  vmctl_hold_signals (&old_mask);
  if (c->rec.tap[0])
    {
      if (net_ensure_tap (NULL, &c->rec, err) < 0)
        goto fail;
      cli_phase (ph, n, "tap", &t);
    }
  vmctl_fault ("restore", "tap", 0);
  if (vmmuser_prepare (c->root, c->dir, &c->rec, err) < 0)
    goto fail;
  vmrec_spec (&c->rec, c->dir, pub, &spec);
  /* As recorded at run: a VM made as root (or before VMM users) stays so. */
  spec.jail = vmmuser_jail (&c->rec, c->dir, &jail);
  spec.landlock = spec.jail != NULL && vmmuser_landlock_p ();
  spec.serial_attach = console_logger_start;
  saved_rt = c->rec.rt;
  restore_opts.shared_memory = saved_rt.shared_memory;
  if (c->be->restore (&spec, snap, &restore_opts, &c->rec.rt, ph, n, err) < 0)
    {
      c->rec.rt = saved_rt;
      console_logger_stop (c->dir, 2000);
      goto fail;
    }
  /* The snapshot's config keeps the guest RAM as it was. */
  c->rec.rt.shared_memory = saved_rt.shared_memory;
  c->rec.rt.free_page_reporting = saved_rt.free_page_reporting;
  vmctl_fact (c, "memory_restore", VMCTL_FACT_STR, 0, restore_mode_names[restore_opts.mode]);
  vmctl_fact (c, "memory_restore_reason", VMCTL_FACT_STR, 0, restore_opts.reason);
  vmctl_fact (c, "prefault", VMCTL_FACT_BOOL, restore_opts.prefault, NULL);
  vmctl_fault ("restore", "restored", c->rec.rt.vmm_pid);
  t = clock_now_ms ();
  c->rec.state = VM_STATUS_RUNNING;
  if ((c->rec.tap[0] && net_tap_clear_addresses (c->rec.tap, err) < 0)
      || vmctl_write_pid (c->dir, c->rec.rt.vmm_pid, err) < 0 || vmctl_save (c, err) < 0)
    {
      /* The new VMM runs but nothing records it (ENOSPC right after a large
         snapshot is likely): stop it, so that no second restore starts
         another on the same snapshot and disks.  vm.json still says
         standby. */
      pid_t pid = c->rec.rt.vmm_pid;
      if (c->be->shutdown (&c->rec.rt, &e2) < 0)
        {
          err_wrap (err,
                    "restored VM could not be recorded, and stopping its VMM (pid %d) "
                    "failed too (%s): kill it before anything else",
                    (int) pid, e2 && e2->msg ? e2->msg : "");
          goto fail;
        }
      console_logger_stop (c->dir, 2000);
      c->rec.state = VM_STATUS_STANDBY;
      c->rec.rt = saved_rt;
      unlink_pid (c->dir);
      /* vm.json may have been renamed into place with its directory's fsync
         failing: say standby again.  If this fails too, the old standby
         record is what is on disk. */
      if (vmctl_save (c, &e2) < 0)
        err_release (&e2);
      err_wrap (err,
                "restored VM could not be recorded; stopped its VMM (pid %d), VM '%s' "
                "stays in standby",
                (int) pid, c->rec.name);
      goto fail;
    }
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  vmctl_fault ("restore", "recorded", c->rec.rt.vmm_pid);
  if (!agent)
    goto done;
  /* Each step gets at least 1 ms: one that starts late still gets one try. */
  deadline = t + agent_timeout_s * 1000.0;
  if (vmctl_agent (c, clock_left_ms (deadline) ?: 1, &a, err) < 0
      || agent_thaw (a, agent_now_ns (), true, &thawed, NULL, &step_ns,
                     clock_left_ms (deadline) ?: 1, err)
             < 0)
    {
      if (a != NULL)
        agent_close (a);
      return err_wrap (err, "thaw");
    }
  cli_phase (ph, n, "thaw", &t);
  if (agent_wait_ready (a, clock_left_ms (deadline) ?: 1, c->rec.cdp_port, &reply, err) < 0)
    {
      agent_close (a);
      return err_wrap (err, "browser not ready after restore");
    }
  chvm__agent__frame__free_unpacked (reply, NULL);
  agent_close (a);
  cli_phase (ph, n, "ready", &t);
  /* The agent's WaitReady answers once the browser's DevTools does. */
  vmctl_fact (c, "cdp_ready_ms", VMCTL_FACT_INT, (int64_t) (t - start), NULL);
done:
  /* The snapshot is stale now that the VM runs on; a next standby makes a
     new one. */
  if (fs_rmtree (snap, &e2) < 0)
    err_release (&e2);
  return 0;
fail:
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  return -1;
}

int
cmd_restore (const struct global_opts *g, int argc, char **argv)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  char cdp[128];
  bool no_agent = false;
  const char *mode = "auto";
  int status;
  const struct cli_arg args[] = { { "--no-agent", &no_agent, NULL },
                                  { "--prefault", &restore_opts.prefault, NULL },
                                  { "--memory-restore", NULL, &mode } };
  const char *name = cli_phased_args (
      argc, argv, args, sizeof args / sizeof args[0],
      "Usage: chvm restore [--no-agent] [--memory-restore auto|copy|ondemand] [--prefault]\n"
      "                    [--timeout SECONDS] NAME [--json]\n\n"
      "Bring a VM in standby back from its snapshot, thaw it with the host's time\n"
      "and wait for the browser; prints each phase's time, the memory restore mode\n"
      "and why, and (--json: cdp_ready_ms) how long until CDP answered.\n"
      "  --no-agent        only restore and resume (guests without the agent)\n"
      "  --memory-restore  copy: read all of the snapshot's memory before the guest\n"
      "                    runs; ondemand: serve its pages as the guest touches them\n"
      "                    (cloud-hypervisor v52+, userfaultfd); auto (default):\n"
      "                    ondemand where the VMM can have it, else copy\n"
      "  --prefault        cloud-hypervisor: populate all guest memory at restore\n"
      "                    (implies copy)\n"
      "  --timeout S       how long the resumed guest has to answer the agent, thaw\n"
      "                    and have the browser ready (default 120)\n"
      "With the QEMU backend CDP clients must reconnect (same browser, same targets).\n",
      &agent_timeout_s, &status);

  if (name == NULL)
    return status;
  for (restore_opts.want = VM_RESTORE_AUTO; restore_opts.want <= VM_RESTORE_ONDEMAND;
       restore_opts.want++)
    if (strcmp (mode, restore_mode_names[restore_opts.want]) == 0)
      break;
  if (restore_opts.want > VM_RESTORE_ONDEMAND)
    {
      fprintf (stderr, "chvm: bad --memory-restore '%s' (auto, copy or ondemand)\n", mode);
      return 2;
    }
  if (c == NULL)
    return 1;
  if (cli_run_phased (g, "restore", name, !no_agent, restore, c) != 0)
    return 1;
  /* The VM's supervisor lives across standby; one that died meanwhile is
     replaced (a no-op when it is the one running this restore). */
  if (c->rec.cdp_endpoint[0])
    {
      cleanup_err struct err *err = NULL;
      char buf[512];
      if (supervisor_start (c->dir, c->rec.netns, false, &err) < 0)
        fprintf (stderr, "chvm: warning: VM %s: %s\n", c->rec.name, err_str (err, buf, sizeof buf));
    }
  if (!g->json)
    {
      vmctl_cdp_address (&c->rec, cdp, sizeof cdp);
      printf ("%s %s\n", c->rec.name, cdp);
    }
  return 0;
}
