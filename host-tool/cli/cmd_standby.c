/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chvm standby NAME: agent Quiesce (drop caches, compact, freeze) -> with
 * free page reporting, wait until the guest has handed its free memory
 * back (the memfd stops shrinking) -> pause -> snapshot into
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
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "clock.h"
#include "log.h"
#include "state/snapshot.h"
#include "sys/fs.h"
#include "sys/proc.h"
#include "vm/vmctl.h"
#include "vm/vmmuser.h"
#include "vmm/console.h"

#define QUIESCE_MS 300000 /* agent auto-thaw bound: covers pause + snapshot */
#define DEFAULT_AGENT_S 60
/* The guest kernel reports free 2 MiB blocks 2 s after the frees that make
   enough of them (mm/page_reporting.c, PAGE_REPORTING_DELAY), then in
   batches: settled once guest RAM has not shrunk for QUIET_MS, at most
   SETTLE_MAX_MS. */
#define SETTLE_POLL_MS 100
#define SETTLE_QUIET_MS 2500
#define SETTLE_MAX_MS 15000

/* chvm standby's options, and what its report says. */
struct standby_opts
{
  /* --timeout: how long the running guest's agent has to answer (connect
     and Hello; a guest under heavy load can take seconds). */
  unsigned agent_timeout_s;
  bool quiesce; /* not --no-quiesce: for guests without the agent */
  /* not --no-reclaim: drop caches, compact and wait for free page
     reporting before the freeze. */
  bool reclaim;
  /* For the report (--json), filled in by standby(): the guest's memory
     at the quiesce, and the VMM's guest RAM before and after settle(). */
  struct agent_quiesced quiesced;
  uint64_t ram_before, ram_after;
};

/* Waits until free page reporting has handed back what the reclaim freed:
   polls the VMM's guest RAM allocation (an observable, not a fixed sleep)
   until it has not shrunk for SETTLE_QUIET_MS.  Not being able to watch
   only costs snapshot size: a warning. */
static void
settle (struct vmctl *c, struct standby_opts *o)
{
  double start = clock_now_ms (), changed = start, now = start;
  cleanup_err struct err *e = NULL;
  uint64_t cur;

  if (c->be->ram_allocated (&c->rec.rt, &o->ram_before, &e) < 0)
    {
      log_warn ("not waiting for free page reporting: %s", e->msg ? e->msg : "");
      return;
    }
  o->ram_after = o->ram_before;
  while (now - start < SETTLE_MAX_MS && now - changed < SETTLE_QUIET_MS)
    {
      poll (NULL, 0, SETTLE_POLL_MS);
      if (c->be->ram_allocated (&c->rec.rt, &cur, &e) < 0)
        {
          log_warn ("stopped waiting for free page reporting: %s", e->msg ? e->msg : "");
          return;
        }
      now = clock_now_ms ();
      if (cur < o->ram_after)
        {
          o->ram_after = cur;
          changed = now;
        }
    }
}

/* The report beside the phases: guest RAM, what the guest used at the
   quiesce, the snapshot's bytes. */
static void
report (struct vmctl *c, const struct standby_opts *o, const char *snap)
{
  cleanup_err struct err *e = NULL;
  uint64_t logical, allocated;

  /* The standby is complete and recorded: a size it cannot read is a
     warning, not a failed standby. */
  if (vm_snapshot_size (snap, &logical, &allocated, &e) < 0)
    {
      log_warn ("snapshot size: %s", e->msg ? e->msg : "");
      return;
    }
  vmctl_fact (c, "guest_ram", VMCTL_FACT_INT, (int64_t) (c->rec.memory_mib << 20), NULL);
  /* In use at the quiesce, counted from guest RAM (the kernel's own
     memory is outside MemTotal): guest_used by MemAvailable, guest_nonfree
     by MemFree (what a snapshot of it holds at least). */
  if (o->quiesced.mem_total_kb > 0)
    {
      vmctl_fact (c, "guest_used", VMCTL_FACT_INT,
                  (int64_t) ((c->rec.memory_mib << 20) - (o->quiesced.mem_available_kb << 10)),
                  NULL);
      vmctl_fact (c, "guest_nonfree", VMCTL_FACT_INT,
                  (int64_t) ((c->rec.memory_mib << 20) - (o->quiesced.mem_free_kb << 10)), NULL);
    }
  vmctl_fact (c, "snapshot_bytes", VMCTL_FACT_INT, (int64_t) logical, NULL);
  vmctl_fact (c, "snapshot_allocated", VMCTL_FACT_INT, (int64_t) allocated, NULL);
  vmctl_fact (c, "shared_memory", VMCTL_FACT_BOOL, c->rec.rt.shared_memory, NULL);
  vmctl_fact (c, "free_page_reporting", VMCTL_FACT_BOOL, c->rec.rt.free_page_reporting, NULL);
  if (o->ram_before > 0)
    {
      vmctl_fact (c, "ram_before_settle", VMCTL_FACT_INT, (int64_t) o->ram_before, NULL);
      vmctl_fact (c, "ram_after_settle", VMCTL_FACT_INT, (int64_t) o->ram_after, NULL);
    }
}

/* A --memory-file VM's guest RAM is that file, not in the snapshot (CH
   writes no memory-ranges for a shared file-backed zone): its dirty pages
   are on disk before the snapshot is named, or a crash after the standby
   would restore devices and vCPUs newer than their memory.  A cow clone's
   is its template's file, which it never writes: nothing to flush there. */
static int
sync_memory_file (const struct vm_record *r, struct err **err)
{
  cleanup_close int fd = -1;

  if (r->memory_file[0] == '\0')
    return 0;
  fd = fs_open_read (r->memory_file);
  if (fd < 0)
    return err_make (err, errno, "guest RAM file %s", r->memory_file);
  if (fsync (fd) < 0)
    return err_make (err, errno, "fsync guest RAM file %s", r->memory_file);
  return 0;
}

static int
standby (struct vmctl *c, void *opts, struct phase *ph, size_t *n, struct err **err)
{
  struct standby_opts *o = opts;
  char tmp[VM_PATH_MAX + 32], snap[VM_PATH_MAX + 16];
  struct agent_client *a = NULL;
  cleanup_err struct err *e2 = NULL;
  enum vm_status st = vmctl_status (c);
  double t = clock_now_ms ();
  bool paused = false, quiesce = o->quiesce, reclaim = o->quiesce && o->reclaim;
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
          && (vmctl_agent (c, (int) o->agent_timeout_s * 1000, &a, err) < 0
              || agent_quiesce (a, QUIESCE_MS, reclaim, reclaim, &o->quiesced, QUIESCE_MS, err)
                     < 0))
        {
          if (a != NULL)
            agent_close (a);
          return err_wrap (err, "quiesce");
        }
      if (quiesce)
        phase_add (ph, n, "quiesce", &t);
      if (reclaim && c->rec.rt.free_page_reporting && c->rec.rt.shared_memory
          && c->be->ram_allocated != NULL)
        {
          settle (c, o);
          phase_add (ph, n, "settle", &t);
        }
    }
  /* Once paused, a ^C or SIGTERM waits: before the snapshot is complete
     the VM is resumed and thawed first, after it the standby finishes. */
  vmctl_hold_signals (&old_mask);
  if (st == VM_STATUS_RUNNING)
    {
      if (c->be->pause (&c->rec.rt, err) < 0)
        goto undo;
      paused = true;
      phase_add (ph, n, "pause", &t);
      vmctl_fault ("standby", "paused", c->rec.rt.vmm_pid);
    }
  if (vm_snapshot_tmp (c->dir, tmp, sizeof tmp, err) < 0)
    goto undo;
  /* The VMM (its own uid) writes the snapshot. */
  if (vmmuser_give_dir (tmp, &c->rec, err) < 0)
    {
      fs_rmtree (tmp, &e2);
      goto undo;
    }
  if (c->be->snapshot (&c->rec.rt, tmp, err) < 0)
    {
      fs_rmtree (tmp, &e2);
      goto undo;
    }
  /* Every file and directory of the snapshot (and the memory file) is on
     disk before it is named snapshot, and the rename is before vm.json
     says standby. */
  if (vmctl_check_signals (err) < 0 || sync_memory_file (&c->rec, err) < 0
      || fs_rmtree (snap, err) < 0 || vm_snapshot_commit (tmp, snap, err) < 0)
    {
      fs_rmtree (tmp, &e2);
      goto undo;
    }
  phase_add (ph, n, "snapshot", &t);
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
  vmctl_vmm_gone (c);
  phase_add (ph, n, "shutdown", &t);
  vmctl_fault ("standby", "stopped", 0);
  c->rec.rt.vmm_pid = 0;
  r = vmctl_save (c, err);
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  if (r == 0)
    report (c, o, snap);
  return r;

undo:
  if (paused)
    c->be->resume (&c->rec.rt, &e2);
  err_release (&e2);
  sigprocmask (SIG_SETMASK, &old_mask, NULL);
  if (a != NULL)
    {
      agent_thaw (a, 0, false, NULL, NULL, NULL, (int) o->agent_timeout_s * 1000, &e2);
      agent_close (a);
    }
  return -1;
}

static int
usage (FILE *out, int status)
{
  fputs ("Usage: chvm standby [--no-quiesce] [--no-reclaim] [--timeout SECONDS] NAME [--json]\n\n"
         "Quiesce (agent: drop caches, compact memory, freeze filesystems), pause and\n"
         "snapshot the VM to disk, then stop its VMM; `chvm restore NAME` brings it\n"
         "back.  With free page reporting (chvm run --free-page-reporting) it first\n"
         "waits (at most 15 s) until the guest has handed its freed memory back, so\n"
         "the snapshot holds only what the guest uses.  Prints each phase's time and\n"
         "the snapshot's size (--json: guest_ram, guest_used, snapshot_bytes,\n"
         "snapshot_allocated).\n"
         "  --no-quiesce  for guests without the agent\n"
         "  --no-reclaim  freeze only: no cache drop, compaction or wait\n"
         "  --timeout S   how long the guest's agent has to answer before the quiesce\n"
         "                (default 60); the VM is left running when it does not\n",
         out);
  return status;
}

/* Options (before or after NAME) into *o and NAME into *name; returns -1,
   or the exit status after printing usage (0: --help). */
static int
parse_args (int argc, char **argv, struct standby_opts *o, const char **name)
{
  static const struct option longopts[] = { { "no-quiesce", no_argument, NULL, 'Q' },
                                            { "no-reclaim", no_argument, NULL, 'R' },
                                            { "timeout", required_argument, NULL, 'T' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };
  int c;

  *o = (struct standby_opts){ .agent_timeout_s = DEFAULT_AGENT_S,
                              .quiesce = true,
                              .reclaim = true };
  optind = 0;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "h", longopts, NULL)) != -1)
    switch (c)
      {
      case 'Q':
        o->quiesce = false;
        break;
      case 'R':
        o->reclaim = false;
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
  return -1;
}

int
cmd_standby (const struct global_opts *g, int argc, char **argv)
{
  cleanup_free struct vmctl *c = calloc (1, sizeof *c);
  struct standby_opts o;
  const char *name;
  int status = parse_args (argc, argv, &o, &name);

  if (status >= 0)
    return status;
  if (c == NULL)
    return 1;
  return cli_run_phased (g, "standby", name, &o, standby, c);
}
