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
#include <getopt.h>
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

/* chvm restore's options; the backend says in mem what it did (the
   report reads it after restore() returns). */
struct restore_opts
{
  /* --timeout: how long the resumed guest has to answer the agent, thaw
     and have the browser ready, all three together. */
  unsigned agent_timeout_s;
  bool agent;                 /* not --no-agent */
  struct vm_restore_opts mem; /* --memory-restore, --prefault */
};
static const char *const restore_mode_names[] = {
  [VM_RESTORE_AUTO] = "auto",
  [VM_RESTORE_COPY] = "copy",
  [VM_RESTORE_ONDEMAND] = "ondemand",
  [VM_RESTORE_FILE] = "file",
};

static void
unlink_pid (const char *dir)
{
  char path[VM_PATH_MAX + 16];

  snprintf (path, sizeof path, "%s/vmm.pid", dir);
  unlink (path);
}

/* Whether VM c can be restored from its snapshot snap, and safely. */
static int
check_snapshot (struct vmctl *c, const char *snap, struct err **err)
{
  enum vm_status st = vmctl_status (c);
  struct stat sb;
  pid_t other;

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
  return 0;
}

/* Recreates the tap and starts a VMM that restores snap and resumes; the
   runtime as it was goes to saved_rt, the time the VMM runs to t. */
static int
start_vmm (struct vmctl *c, struct restore_opts *o, const char *snap, struct vm_runtime *saved_rt,
           struct phase *ph, size_t *n, double *t, struct err **err)
{
  struct vm_spec spec;
  struct vmm_jail_storage jail;

  if (c->rec.tap[0])
    {
      if (net_ensure_tap (NULL, &c->rec, err) < 0)
        return -1;
      phase_add (ph, n, "tap", t);
    }
  vmctl_fault ("restore", "tap", 0);
  if (vmmuser_prepare (c->root, c->dir, &c->rec, err) < 0)
    return -1;
  vmrec_spec (&c->rec, c->dir, &spec);
  /* As recorded at run: a VM made as root (or before VMM users) stays so. */
  spec.jail = vmmuser_jail (&c->rec, c->dir, &jail);
  spec.landlock = spec.jail != NULL && vmmuser_landlock_p ();
  spec.serial_attach = console_logger_start;
  *saved_rt = c->rec.rt;
  o->mem.shared_memory = saved_rt->shared_memory;
  if (c->be->restore (&spec, snap, &o->mem, &c->rec.rt, ph, n, err) < 0)
    {
      c->rec.rt = *saved_rt;
      vmctl_vmm_gone (c);
      return -1;
    }
  /* The snapshot's config keeps the guest RAM as it was. */
  c->rec.rt.shared_memory = saved_rt->shared_memory;
  c->rec.rt.free_page_reporting = saved_rt->free_page_reporting;
  vmctl_fact (c, "memory_restore", VMCTL_FACT_STR, 0, restore_mode_names[o->mem.mode]);
  vmctl_fact (c, "memory_restore_reason", VMCTL_FACT_STR, 0, o->mem.reason);
  vmctl_fact (c, "prefault", VMCTL_FACT_BOOL, o->mem.prefault, NULL);
  vmctl_fault ("restore", "restored", c->rec.rt.vmm_pid);
  *t = clock_now_ms ();
  return 0;
}

/* Records the running VMM, or, when that fails, stops it again and leaves
   the VM in standby (saved_rt: its runtime before). */
static int
record (struct vmctl *c, const struct vm_runtime *saved_rt, struct err **err)
{
  cleanup_err struct err *e2 = NULL;
  pid_t pid = c->rec.rt.vmm_pid;

  c->rec.state = VM_STATUS_RUNNING;
  if (!((c->rec.tap[0] && net_tap_clear_addresses (c->rec.tap, err) < 0)
        || backend_write_pid (c->dir, c->rec.rt.vmm_pid, err) < 0 || vmctl_save (c, err) < 0))
    return 0;
  /* The new VMM runs but nothing records it (ENOSPC right after a large
     snapshot is likely): stop it, so that no second restore starts
     another on the same snapshot and disks.  vm.json still says
     standby. */
  if (c->be->shutdown (&c->rec.rt, &e2) < 0)
    return err_wrap (err,
                     "restored VM could not be recorded, and stopping its VMM (pid %d) "
                     "failed too (%s): kill it before anything else",
                     (int) pid, e2 && e2->msg ? e2->msg : "");
  vmctl_vmm_gone (c);
  c->rec.state = VM_STATUS_STANDBY;
  c->rec.rt = *saved_rt;
  unlink_pid (c->dir);
  /* vm.json may have been renamed into place with its directory's fsync
     failing: say standby again.  If this fails too, the old standby
     record is what is on disk. */
  if (vmctl_save (c, &e2) < 0)
    err_release (&e2);
  return err_wrap (err,
                   "restored VM could not be recorded; stopped its VMM (pid %d), VM '%s' "
                   "stays in standby",
                   (int) pid, c->rec.name);
}

/* Tells the agent to thaw with the host's time and waits until the
   browser answers, all within --timeout from *t; start: when the restore
   began (cdp_ready_ms). */
static int
thaw_and_wait (struct vmctl *c, const struct restore_opts *o, double start, struct phase *ph,
               size_t *n, double *t, struct err **err)
{
  struct agent_client *a = NULL;
  Chvm__Agent__Frame *reply = NULL;
  unsigned thawed = 0;
  int64_t step_ns = 0;
  /* Each step gets at least 1 ms: one that starts late still gets one try. */
  double deadline = *t + o->agent_timeout_s * 1000.0;

  if (vmctl_agent (c, clock_left_ms (deadline) ?: 1, &a, err) < 0
      || agent_thaw (a, agent_now_ns (), true, &thawed, NULL, &step_ns,
                     clock_left_ms (deadline) ?: 1, err)
             < 0)
    {
      if (a != NULL)
        agent_close (a);
      return err_wrap (err, "thaw");
    }
  phase_add (ph, n, "thaw", t);
  if (agent_wait_ready (a, clock_left_ms (deadline) ?: 1, c->rec.cdp_port, &reply, err) < 0)
    {
      agent_close (a);
      return err_wrap (err, "browser not ready after restore");
    }
  chvm__agent__frame__free_unpacked (reply, NULL);
  agent_close (a);
  phase_add (ph, n, "ready", t);
  /* The agent's WaitReady answers once the browser's DevTools does. */
  vmctl_fact (c, "cdp_ready_ms", VMCTL_FACT_INT, (int64_t) (*t - start), NULL);
  return 0;
}

static int
restore (struct vmctl *c, void *opts, struct phase *ph, size_t *n, struct err **err)
{
  struct restore_opts *o = opts;
  char snap[VM_PATH_MAX + 16];
  struct vm_runtime saved_rt;
  cleanup_err struct err *e2 = NULL;
  double start = clock_now_ms (), t = start;
  sigset_t old_mask;
  int r;

  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  if (check_snapshot (c, snap, err) < 0)
    return -1;
  /* A ^C or SIGTERM waits until the record names the new VMM: dying
     before would leave it running unseen by stop and rm. */
  vmctl_hold_signals (&old_mask);
  r = start_vmm (c, o, snap, &saved_rt, ph, n, &t, err);
  if (r == 0)
    r = record (c, &saved_rt, err);
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  if (r < 0)
    return -1;
  vmctl_fault ("restore", "recorded", c->rec.rt.vmm_pid);
  if (o->agent && thaw_and_wait (c, o, start, ph, n, &t, err) < 0)
    return -1;
  /* The snapshot is stale now that the VM runs on; a next standby makes a
     new one. */
  if (fs_rmtree (snap, &e2) < 0)
    err_release (&e2);
  return 0;
}

static int
usage (FILE *out, int status)
{
  fputs ("Usage: chvm restore [--no-agent] [--memory-restore auto|copy|ondemand] [--prefault]\n"
         "                    [--timeout SECONDS] NAME [--json]\n\n"
         "Bring a VM in standby back from its snapshot, thaw it with the host's time\n"
         "and wait for the browser; prints each phase's time, the memory restore mode\n"
         "and why, and (--json: cdp_ready_ms) how long until CDP answered.\n"
         "  --no-agent        only restore and resume (guests without the agent)\n"
         "  --memory-restore  copy: read all of the snapshot's memory before the guest\n"
         "                    runs; ondemand: serve its pages as the guest touches them\n"
         "                    (cloud-hypervisor v52+, userfaultfd); auto (default):\n"
         "                    ondemand where the VMM can have it, else copy; a VM run\n"
         "                    with --memory-file (and a clone) has no memory to read:\n"
         "                    its file is mapped again (\"file\"), auto only; a clone's\n"
         "                    own standby (memory-ranges over its template's file)\n"
         "                    restores by copy\n"
         "  --prefault        cloud-hypervisor: populate all guest memory at restore\n"
         "                    (implies copy)\n"
         "  --timeout S       how long the resumed guest has to answer the agent, thaw\n"
         "                    and have the browser ready (default 120); also the longest\n"
         "                    wait for another chvm command's state lock (at least 30)\n"
         "With the QEMU backend CDP clients must reconnect (same browser, same targets).\n",
         out);
  return status;
}

/* Options (before or after NAME) into *o and NAME into *name; returns -1,
   or the exit status after printing usage (0: --help) or the error. */
static int
parse_args (int argc, char **argv, struct restore_opts *o, const char **name)
{
  static const struct option longopts[] = { { "no-agent", no_argument, NULL, 'A' },
                                            { "prefault", no_argument, NULL, 'P' },
                                            { "memory-restore", required_argument, NULL, 'M' },
                                            { "timeout", required_argument, NULL, 'T' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  const char *mode = "auto";
  int c;

  *o = (struct restore_opts){ .agent_timeout_s = DEFAULT_AGENT_S, .agent = true };
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'A':
        o->agent = false;
        break;
      case 'P':
        o->mem.prefault = true;
        break;
      case 'M':
        mode = optarg;
        break;
      case 'T':
        if (cli_timeout_arg (optarg, &o->agent_timeout_s) < 0)
          return usage (stderr, 2);
        break;
      case 'h':
        return usage (stdout, 0);
      default:
        return usage (stderr, 2);
      }
  if (optind + 1 != argc || argv[optind][0] == '-')
    return usage (stderr, 2);
  *name = argv[optind];
  for (o->mem.want = VM_RESTORE_AUTO; o->mem.want <= VM_RESTORE_ONDEMAND; o->mem.want++)
    if (strcmp (mode, restore_mode_names[o->mem.want]) == 0)
      return -1;
  fprintf (stderr, "chvm: bad --memory-restore '%s' (auto, copy or ondemand)\n", mode);
  return 2;
}

int
cmd_restore (const struct global_opts *g, int argc, char **argv)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  struct restore_opts o;
  const char *name;
  char cdp[128];
  int status = parse_args (argc, argv, &o, &name);

  if (status >= 0)
    return status;
  if (c == NULL)
    return 1;
  /* Behind other restores (run --from --count N) it waits as long. */
  if (o.agent_timeout_s * 1000u > VMCTL_LOCK_MS)
    c->lock_ms = (int) (o.agent_timeout_s * 1000u);
  if (cli_run_phased (g, "restore", name, &o, restore, c) != 0)
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
