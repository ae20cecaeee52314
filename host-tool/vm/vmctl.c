/* SPDX-License-Identifier: Apache-2.0 */
#include "vm/vmctl.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "net/net.h"
#include "num.h"
#include "state/probe.h"
#include "sys/fs.h"
#include "sys/proc.h"
#include "vmm/ch_api.h"
#include "vmm/console.h"
#include "vmm/qmp.h"

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
  memset (c, 0, sizeof *c);
  c->lock_fd = -1;
  if (vmstate_root (state_dir, c->root, sizeof c->root, err) < 0
      || vmstate_dir (c->root, name, c->dir, sizeof c->dir, err) < 0)
    return -1;
  if (lock && (c->lock_fd = vmstate_lock (c->root, VMCTL_LOCK_MS, err)) < 0)
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
      console_logger_stop (c->dir, 2000);
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
  console_logger_stop (c->dir, 2000);
  c->rec.rt.vmm_pid = 0;
  return vmctl_save (c, err);
}

void
vmctl_fault (const char *cmd, const char *step, pid_t vmm_pid)
{
  const char *f = getenv ("CHVM_FAULT");
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

int
vmctl_agent (const struct vmctl *c, int timeout_ms, struct agent_client **out, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  cleanup_close int pidfd = pidfd_open (c->rec.rt.vmm_pid, 0);
  int backoff = 20;
  const char *token = c->rec.agent_token[0] ? c->rec.agent_token : NULL;
  unsigned port = c->rec.agent_vsock_port ? c->rec.agent_vsock_port : c->rec.agent_tcp_port;

  if (pidfd < 0)
    return err_make (err, errno, "VMM (pid %d) is not running", (int) c->rec.rt.vmm_pid);
  for (;;)
    {
      cleanup_err struct err *e = NULL;
      struct pollfd p = { .fd = pidfd, .events = POLLIN };
      int fd, left = clock_left_ms (deadline);

      if (c->rec.address[0] && c->rec.agent_vsock_port == 0 && c->rec.agent_tcp_port != 0)
        {
          /* QEMU on a tap: no hostfwd, the agent is at the guest address. */
          char ip[20];
          snprintf (ip, sizeof ip, "%.*s", (int) strcspn (c->rec.address, "/"), c->rec.address);
          fd = dial_tcp (ip, c->rec.agent_tcp_port, left > 5000 ? 5000 : left, &e);
        }
      else
        fd = c->be->agent_connect (&c->rec.rt, port, left > 5000 ? 5000 : left, &e);
      if (fd >= 0)
        {
          *out = agent_open (fd, token, left > 5000 ? 5000 : left, &e);
          if (*out != NULL)
            return 0;
        }
      left = clock_left_ms (deadline);
      if (left == 0)
        {
          err_make (err, e ? e->status : ETIMEDOUT, "agent of VM '%s' did not answer in %d ms",
                    c->rec.name, timeout_ms);
          if (e != NULL && e->msg != NULL)
            err_wrap (err, "%s", e->msg);
          return -1;
        }
      /* The agent is not listening yet (under QEMU the hostfwd accepts and
         then drops us): back off, but wake at once if the VMM exits. */
      if (TEMP_FAILURE_RETRY (poll (&p, 1, backoff < left ? backoff : left)) > 0)
        return err_make (err, 0, "VMM (pid %d) exited", (int) c->rec.rt.vmm_pid);
      if (backoff < 500)
        backoff *= 2;
    }
}

struct scan
{
  char carry[1024];
  size_t len;
};

/* Scans console bytes for guest-init's phase lines.  Returns 1 once the
   agent phase (or exec) is seen, 0 to go on, <0 for an ERROR line. */
static int
scan_console (void *ctx, const char *buf, size_t n, struct err **err)
{
  struct scan *sc = ctx;
  char *carry = sc->carry;

  for (size_t i = 0; i < n; i++)
    {
      if (buf[i] != '\n')
        {
          if (sc->len < sizeof sc->carry - 1)
            carry[sc->len++] = buf[i];
          continue;
        }
      carry[sc->len] = '\0';
      sc->len = 0;
      if (strstr (carry, "ERROR init[1]:") != NULL)
        return err_make (err, 0, "guest: %s", strstr (carry, "ERROR init[1]:"));
      /* guest-init goes on without an agent; nothing would answer. */
      if (strstr (carry, "WARN init[1]:") != NULL && strstr (carry, "without agent") != NULL)
        return err_make (err, 0, "guest: %s", strstr (carry, "WARN init[1]:"));
      if (strstr (carry, "init[1]:") != NULL
          && (strstr (carry, "phase agent") != NULL || strstr (carry, "phase exec") != NULL))
        return 1;
    }
  return 0;
}

/* Follows the console (console.log.1, console.log and its rotations). */
static int
wait_console_agent (const struct vmctl *c, double deadline, struct err **err)
{
  struct console_follow f = { .fd = -1, .ino = -1 };
  cleanup_close int pidfd = pidfd_open (c->rec.rt.vmm_pid, 0);
  struct scan sc = { .len = 0 };
  int r;

  if (pidfd < 0)
    return err_make (err, errno, "watch VMM %d", (int) c->rec.rt.vmm_pid);
  r = console_follow_open (&f, c->dir, true, scan_console, &sc, err);
  while (r == 0)
    {
      struct pollfd p[2] = { { .fd = f.ino, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };

      if ((r = console_follow_read (&f, scan_console, &sc, err)) != 0)
        break;
      r = TEMP_FAILURE_RETRY (poll (p, 2, clock_left_ms (deadline)));
      if (r == 0)
        {
          r = err_make (err, ETIMEDOUT, "guest-init did not start the agent (see %s)", f.path);
          break;
        }
      r = 0;
      if (p[1].revents & POLLIN)
        {
          /* The logger writes the last lines after the VMM is gone. */
          console_logger_stop (c->dir, 2000);
          r = console_follow_read (&f, scan_console, &sc, err);
          if (r == 0 || r == 1)
            r = err_make (err, 0, "VMM exited during boot (see %s and chvm logs --source vmm)",
                          f.path);
          break;
        }
    }
  console_follow_close (&f);
  return r < 0 ? r : 0;
}

int
vmctl_wait_ready (const struct vmctl *c, int timeout_ms, unsigned *ready_ms, char *browser,
                  size_t browser_len, struct err **err)
{
  double deadline = clock_now_ms () + timeout_ms;
  struct agent_client *a = NULL;
  Chvm__Agent__Frame *reply = NULL;
  int left;

  if (wait_console_agent (c, deadline, err) < 0
      || vmctl_agent (c, clock_left_ms (deadline), &a, err) < 0)
    return -1;
  left = clock_left_ms (deadline);
  if (agent_wait_ready (a, (unsigned) left, c->rec.cdp_port, &reply, err) < 0)
    {
      agent_close (a);
      return err_wrap (err, "browser not ready");
    }
  if (reply->body_case == CHVM__AGENT__FRAME__BODY_WAIT_READY_REPLY)
    {
      *ready_ms = reply->wait_ready_reply->ready_after_ms;
      snprintf (browser, browser_len, "%s",
                reply->wait_ready_reply->browser ? reply->wait_ready_reply->browser : "");
    }
  chvm__agent__frame__free_unpacked (reply, NULL);
  agent_close (a);
  return 0;
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

int
vmctl_write_pid (const char *dir, pid_t pid, struct err **err)
{
  char path[VM_PATH_MAX + 16], s[24];
  int n = snprintf (s, sizeof s, "%d\n", (int) pid);

  snprintf (path, sizeof path, "%s/vmm.pid", dir);
  return fs_write_atomic (path, s, (size_t) n, 0644, err);
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
