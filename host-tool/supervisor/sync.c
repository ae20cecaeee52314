/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's state (enum sup_state) follows the VM's: vm.json
   (inotify: a standby, restore, stop or rm someone else ran), the VMM
   (pidfd: it exited) and our own children (SIGCHLD: the standby or restore
   we ran ended).  Each change lets held clients go on, fail, or wake the
   VM, and arms the idle clock. */
#include "supervisor/sync.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "state/vmstate.h"
#include "supervisor/idle.h"
#include "supervisor/live.h"
#include "supervisor/sup.h"
#include "supervisor/supervisor.h"
#include "supervisor/wake.h"
#include "sys/proc.h"

static void vmm_exited (evutil_socket_t fd, short what, void *ctx);

static void
watch_vmm (struct sup *s, pid_t pid)
{
  if (s->vmm_pid == pid && s->vmm_ev != NULL)
    return;
  if (s->vmm_ev != NULL)
    {
      event_free (s->vmm_ev);
      s->vmm_ev = NULL;
    }
  if (s->vmm_fd >= 0)
    close (s->vmm_fd);
  s->vmm_fd = -1;
  s->vmm_pid = pid;
  if (pid <= 0)
    return;
  s->vmm_fd = pidfd_open (pid, 0);
  if (s->vmm_fd < 0)
    return;
  s->vmm_ev = event_new (s->base, s->vmm_fd, EV_READ, vmm_exited, s);
  if (s->vmm_ev != NULL)
    event_add (s->vmm_ev, NULL);
}

void
sup_sync (struct sup *s)
{
  cleanup_err struct err *e = NULL;
  char snap[VM_PATH_MAX + 16];
  struct stat st;
  enum sup_state was = s->state;
  enum vm_status was_rec = s->rec.state;

  if (s->child > 0)
    return;
  if (vmrec_load (s->root, s->name, &s->rec, &e) < 0)
    {
      if (access (s->dir, F_OK) < 0)
        sup_quit (s, "the VM was removed");
      return;
    }
  snprintf (snap, sizeof snap, "%s/snapshot", s->dir);
  if (s->rec.state == VM_STATUS_STANDBY && stat (snap, &st) == 0)
    {
      sup_set_state (s, SUP_STANDBY);
      watch_vmm (s, 0);
    }
  else if ((s->rec.state == VM_STATUS_RUNNING || s->rec.state == VM_STATUS_PAUSED)
           && proc_pid_names_dir (s->rec.rt.vmm_pid, s->dir))
    {
      sup_set_state (s, SUP_RUNNING);
      watch_vmm (s, s->rec.rt.vmm_pid);
    }
  else
    {
      sup_quit (s, s->rec.state == VM_STATUS_STOPPED ? "the VM was stopped" : "the VMM is gone");
      return;
    }
  if (was != s->state)
    sup_log ("VM %s is %s", s->name, sup_state_name (s->state));
  if (s->rec.cdp_max_clients == 0)
    s->rec.cdp_max_clients = SUPERVISOR_DEFAULT_MAX_CLIENTS;
  sup_changed (s); /* the worker learns of a new cdp_max_clients */
  /* Resumed (chvm resume): the idle clock starts again, a pause is not
     idleness. */
  if (was_rec == VM_STATUS_PAUSED && s->rec.state == VM_STATUS_RUNNING)
    sup_touch (s);
  /* vm.json may carry a new --idle-standby (chvm supervise). */
  if (s->rec.idle_standby_s == 0)
    event_del (s->idle_ev);
  else if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
  if (s->state == SUP_RUNNING && was == SUP_RUNNING && s->live_lost)
    live_open (s);
  if (s->state == SUP_RUNNING && was != SUP_RUNNING)
    {
      /* Recorded running by a restore, which waits for the browser. */
      if (was == SUP_STANDBY || was == SUP_WAKING)
        s->ready = true;
      /* The worker, told, lets held clients go on. */
      sup_touch (s);
      live_open (s);
      sup_arm_idle (s);
    }
  else if (s->state == SUP_STANDBY && was != SUP_STANDBY && s->held)
    sup_wake (s, "a client waiting");
}

static void
vmm_exited (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  if (s->vmm_ev != NULL)
    {
      event_free (s->vmm_ev);
      s->vmm_ev = NULL;
    }
  close (s->vmm_fd);
  s->vmm_fd = -1;
  s->vmm_pid = 0;
  sup_sync (s);
}

static void
on_inotify (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  char buf[4096] __attribute__ ((aligned (__alignof__(struct inotify_event))));
  bool sync = false;
  ssize_t n;

  (void) what;
  while ((n = read (fd, buf, sizeof buf)) > 0)
    for (char *p = buf; p < buf + n;)
      {
        const struct inotify_event *ev = (const struct inotify_event *) p;
        if (ev->mask & (IN_DELETE_SELF | IN_IGNORED))
          {
            sup_quit (s, "the VM directory was removed");
            return;
          }
        if (ev->len > 0 && strcmp (ev->name, "vm.json") == 0)
          sync = true;
        p += sizeof *ev + ev->len;
      }
  if (sync)
    sup_sync (s);
}

static void
child_exited (struct sup *s, int status)
{
  enum sup_state was = s->state;
  double ms = clock_now_ms () - s->child_t0;
  bool ok = WIFEXITED (status) && WEXITSTATUS (status) == 0;

  s->child = 0;
  if (was == SUP_WAKING)
    wake_restore_done (s, status, ms);
  else if (was == SUP_SLEEPING)
    idle_standby_done (s, status, ms);
  /* What sup_sync compares with: a standby that ran makes it wake
     whoever waits; a failed restore does not try again by itself (the
     waiting clients get a 503, a new one tries again). */
  sup_set_state (s, was == SUP_WAKING ? SUP_STANDBY : SUP_RUNNING);
  sup_sync (s);
  if (was == SUP_WAKING && !ok && s->state == SUP_STANDBY)
    wake_fail_held (s);
  if (was == SUP_SLEEPING && s->state == SUP_RUNNING)
    {
      /* The standby failed: who came meanwhile goes on (the worker,
         told it runs). */
      s->wake_pending = false;
    }
  if (was == SUP_SLEEPING && s->state == SUP_STANDBY && s->child == 0 && s->wake_pending)
    {
      s->wake_pending = false;
      sup_wake (s, "a byte came during the standby");
    }
  if (s->state == SUP_RUNNING)
    sup_arm_idle (s);
}

static void
on_signal (evutil_socket_t sig, short what, void *ctx)
{
  struct sup *s = ctx;
  int status;
  pid_t pid;

  (void) what;
  if (sig != SIGCHLD)
    {
      if (s->child > 0)
        kill (s->child, SIGTERM);
      sup_quit (s, sig == SIGTERM ? "SIGTERM" : "signal");
      return;
    }
  while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
    if (pid == s->child)
      child_exited (s, status);
    else if (pid == s->link.worker)
      {
        s->link.worker = 0;
        sup_log ("the proxy process exited with status %d",
                 WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
        sup_quit (s, "the proxy process is gone");
      }
}

int
sync_watch (struct sup *s, struct err **err)
{
  const int sigs[] = { SIGCHLD, SIGTERM, SIGINT };

  s->ino_fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (s->ino_fd < 0 || inotify_add_watch (s->ino_fd, s->dir, IN_MOVED_TO | IN_DELETE_SELF) < 0)
    return err_make (err, errno, "inotify on %s", s->dir);
  s->ino_ev = event_new (s->base, s->ino_fd, EV_READ | EV_PERSIST, on_inotify, s);
  for (size_t i = 0; i < 3; i++)
    {
      s->sig_ev[i] = evsignal_new (s->base, sigs[i], on_signal, s);
      if (s->sig_ev[i] == NULL || event_add (s->sig_ev[i], NULL) < 0)
        return err_make (err, errno, "signal events");
    }
  if (s->ino_ev == NULL || event_add (s->ino_ev, NULL) < 0)
    return err_make (err, ENOMEM, "events");
  return 0;
}
