/* SPDX-License-Identifier: Apache-2.0 */
#include "vm/vmctl.h"

#include <errno.h>
#include <ftw.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "net/net.h"
#include "state/probe.h"
#include "sys/fs.h"
#include "vm/vmmuser.h"
#include "vmm/backend_qemu.h"
#include "vmm/console.h"

/* A run or restore killed after its VMM started and before vm.json named
   it leaves a VMM that only vmm.pid (which the backend writes at start)
   knows.  It is this VM's all the same: every command sees it, ps shows it
   and the next locked command stops it (vmctl_stop_leftover). */
static void
vmctl_unrecorded_vmm (struct vmctl *c)
{
  pid_t pid;

  if (proc_pid_names_dir (c->rec.rt.vmm_pid, c->dir))
    return;
  pid = vmctl_read_pid (c->dir);
  if (pid > 0 && proc_pid_names_dir (pid, c->dir))
    c->rec.rt.vmm_pid = pid;
}

int
vmctl_open (const char *state_dir, const char *name, bool lock, struct vmctl *c, struct err **err)
{
  int lock_ms = c->lock_ms > 0 ? c->lock_ms : VMCTL_LOCK_MS;

  memset (c, 0, sizeof *c);
  c->lock_fd = -1;
  c->lock_ms = lock_ms;
  if (vmstate_root (state_dir, c->root, sizeof c->root, err) < 0
      || vmstate_dir (c->root, name, c->dir, sizeof c->dir, err) < 0)
    return -1;
  if (lock && (c->lock_fd = vmstate_lock (c->root, lock_ms, err)) < 0)
    return -1;
  if (vmrec_load (c->root, name, &c->rec, err) < 0)
    return -1;
  c->be = backend_by_name (c->rec.backend);
  if (c->be == NULL)
    return err_make (err, 0, "VM '%s': unknown backend '%s'", name, c->rec.backend);
  if (net_enter_netns (c->rec.netns, err) < 0)
    return -1;
  vmctl_unrecorded_vmm (c);
  return lock ? vmctl_stop_leftover (c, err) : 0;
}

int
vmctl_stop_leftover (struct vmctl *c, struct err **err)
{
  char snap[VM_PATH_MAX + 16];
  struct stat st;
  pid_t pid = c->rec.rt.vmm_pid;

  /* standby is recorded once the snapshot is complete and before the VMM
     stops; a chvm killed in between left that VMM paused.  The snapshot is
     the VM, the VMM must go before anything uses the snapshot or disks. */
  snprintf (snap, sizeof snap, "%s/snapshot", c->dir);
  if (!proc_pid_names_dir (pid, c->dir))
    return 0;
  if (c->rec.state == VM_STATUS_CREATED)
    {
      /* A run killed between starting the VMM and recording it. */
      log_warn ("VM '%s': stopping the VMM (pid %d) an interrupted run left", c->rec.name,
                (int) pid);
      if (proc_terminate (pid, 2000, err) < 0)
        return err_wrap (err, "VM '%s': stop the VMM (pid %d) an interrupted run left", c->rec.name,
                         (int) pid);
      vmctl_vmm_gone (c);
      c->rec.rt.vmm_pid = 0;
      return 0;
    }
  if (c->rec.state != VM_STATUS_STANDBY || stat (snap, &st) < 0 || !S_ISDIR (st.st_mode))
    return 0;
  /* An interrupted standby left it paused, or an interrupted restore left
     one that vm.json does not name (vmctl_unrecorded_vmm). */
  log_warn ("VM '%s': stopping the VMM (pid %d) an interrupted standby or restore left; the VM "
            "stays in standby",
            c->rec.name, (int) pid);
  if (c->be->shutdown (&c->rec.rt, err) < 0)
    return err_wrap (err, "VM '%s': stop the VMM (pid %d) an interrupted standby or restore left",
                     c->rec.name, (int) pid);
  vmctl_vmm_gone (c);
  c->rec.rt.vmm_pid = 0;
  return vmctl_save (c, err);
}

void
vmctl_fault (const char *cmd, const char *step, pid_t vmm_pid)
{
#ifdef CHVM_TEST_HOOKS
  const char *f = getenv ("CHVM_FAULT");
#else
  const char *f = NULL; /* a test hook: build/tests/chvm-hooks alone */
#endif
  size_t lc = strlen (cmd), ls = strlen (step);
  cleanup_err struct err *e = NULL;

  if (f == NULL || strncmp (f, cmd, lc) != 0 || f[lc] != ':' || strncmp (f + lc + 1, step, ls) != 0)
    return;
  f += lc + 1 + ls;
  if (*f == '\0')
    {
      log_warn ("CHVM_FAULT: chvm %s killed at %s", cmd, step);
      kill (getpid (), SIGKILL);
    }
  if (strcmp (f, ":vmm") != 0 || vmm_pid <= 0)
    return;
  log_warn ("CHVM_FAULT: chvm %s kills the VMM (pid %d) at %s", cmd, (int) vmm_pid, step);
  kill (vmm_pid, SIGKILL);
  if (proc_wait_exit (vmm_pid, 10000, NULL, &e) <= 0)
    log_warn ("CHVM_FAULT: the VMM (pid %d) is still there", (int) vmm_pid);
}

void
vmctl_close (struct vmctl *c)
{
  if (c->lock_fd >= 0)
    close (c->lock_fd);
  c->lock_fd = -1;
}

int
vmctl_save (struct vmctl *c, struct err **err)
{
  return vmrec_save (c->root, &c->rec, err);
}

static int
api_probe (const struct vm_record *r)
{
  const struct backend_ops *be = backend_by_name (r->backend);

  return be != NULL ? be->query_paused (&r->rt) : -1;
}

enum vm_status
vmctl_status (const struct vmctl *c)
{
  return vm_probe (c->dir, &c->rec, api_probe);
}

void
vmctl_cdp_address (const struct vm_record *r, char *out, size_t len)
{
  char host[64];
  unsigned port;

  if (vm_cdp_upstream (r, host, sizeof host, &port) < 0)
    snprintf (out, len, "-");
  else
    snprintf (out, len, strchr (host, ':') ? "http://[%s]:%u" : "http://%s:%u", host, port);
}

pid_t
vmctl_read_pid (const char *dir)
{
  char path[VM_PATH_MAX + 16];

  snprintf (path, sizeof path, "%s/vmm.pid", dir);
  return proc_read_pid_file (path);
}

static void
stop_signals (sigset_t *set)
{
  sigemptyset (set);
  sigaddset (set, SIGINT);
  sigaddset (set, SIGTERM);
  sigaddset (set, SIGHUP);
}

void
vmctl_hold_signals (sigset_t *old)
{
  sigset_t set;

  stop_signals (&set);
  sigprocmask (SIG_BLOCK, &set, old);
}

int
vmctl_check_signals (struct err **err)
{
  sigset_t pending, set;

  stop_signals (&set);
  if (sigpending (&pending) < 0)
    return err_make (err, errno, "sigpending");
  for (int s = 1; s < NSIG; s++)
    if (sigismember (&set, s) && sigismember (&pending, s))
      return err_make (err, EINTR, "interrupted by %s", strsignal (s));
  return 0;
}

void
vmctl_fact (struct vmctl *c, const char *key, int type, int64_t num, const char *str)
{
  if (c->n_facts < sizeof c->facts / sizeof c->facts[0])
    c->facts[c->n_facts++] = (struct vmctl_fact){ key, type, num, str };
}

void
vmctl_vmm_gone (struct vmctl *c)
{
  cleanup_err struct err *e = NULL;

  console_logger_stop (c->dir, 2000);
  /* Its cgroup holds the VMM, its helpers and whatever they forked, of any
     uid: all of it ends at once. */
  if (vmmuser_cgroup_remove (c->dir, &c->rec, &e) < 0)
    log_warn ("VM '%s': %s", c->rec.name, e->msg);
  err_release (&e);
  /* Without cgroup v2, and after it: nothing of the uid may live on into
     the next VM that gets it (vmmuser_pick refuses a uid that still has). */
  if (c->rec.vmm_uid != 0 && proc_kill_uid ((uid_t) c->rec.vmm_uid, VMMUSER_KILL_MS, &e) < 0)
    log_warn ("VM '%s': %s", c->rec.name, e->msg);
  err_release (&e);
  /* QEMU user-net: the forwards it held are gone, and so is their guard
     (a port that another program may bind now). */
  if (c->rec.tap[0] == '\0'
      && backend_qemu_guard (c->dir, c->rec.publish, c->rec.n_publish, c->rec.rt.agent_host_port,
                             false, &e)
             < 0)
    log_warn ("VM '%s': %s", c->rec.name, e->msg);
}
