/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The supervisor's worker (supmsg.h): the CDP proxy (proxy.c) in a process
 * of nobody's, which parses every byte of the clients and of the guest.
 * Its hooks tell the parent (frames): a client waits (WAKE), clients,
 * commands outstanding, a client held, the browser's path (as they
 * change), activity (at most every REPORT_MS, and once after the last);
 * the parent
 * tells it the VM's state (held clients go on once it runs), a failed
 * wake (held requests get their 503) and cdp_max_clients.  Its sockets to
 * the guest are the parent's (dial).
 */
#include "supervisor/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "supervisor/proxy.h"
#include "supervisor/supmsg.h"

#define REPORT_MS 100 /* the worker's reports to the parent, at most this often */
#define BATCH 64

/* fds[i] becomes 3 + i; every other fd from 3 up is closed. */
static int
keep_fds (const int *fds, int n)
{
  int tmp[3];

  if (n > 3)
    return -1;
  for (int i = 0; i < n; i++)
    if ((tmp[i] = fcntl (fds[i], F_DUPFD_CLOEXEC, 3 + n)) < 0)
      return -1;
  for (int i = 0; i < n; i++)
    if (dup3 (tmp[i], 3 + i, O_CLOEXEC) < 0)
      return -1;
  return close_range ((unsigned) (3 + n), ~0U, 0);
}

/* nobody, nogroup, no other group; no way back (checked), NoNewPrivs, not
   dumpable (no process of nobody's may ptrace it or read its memory, the
   token), killed with the parent. */
static int
drop_privileges (pid_t parent, struct err **err)
{
  uid_t r, e, sv;

  if (setgroups (0, NULL) < 0)
    return err_make (err, errno, "setgroups");
  if (setresgid (WORKER_ID, WORKER_ID, WORKER_ID) < 0)
    return err_make (err, errno, "setresgid");
  if (setresuid (WORKER_ID, WORKER_ID, WORKER_ID) < 0)
    return err_make (err, errno, "setresuid");
  if (getresuid (&r, &e, &sv) < 0 || r != WORKER_ID || e != WORKER_ID || sv != WORKER_ID
      || setresuid (0, 0, 0) == 0)
    return err_make (err, 0, "the uid did not drop");
  if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0
      || prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
    return err_make (err, errno, "prctl");
  if (getppid () != parent)
    return err_make (err, 0, "the supervisor is gone");
  return 0;
}

static void
hook_wake (struct sup *s, bool new_client)
{
  sup_tell (s, SUPMSG_WAKE, new_client ? SUPMSG_WAKE_NEW : SUPMSG_WAKE_BYTE, NULL);
}

static void
hook_browser_up (struct sup *s)
{
  if (s->link.up)
    return;
  s->link.up = true;
  sup_tell (s, SUPMSG_BROWSER_UP, 0, NULL);
}

static void
hook_answered (struct sup *s)
{
  if (!s->link.answer_due)
    return;
  s->link.answer_due = false;
  sup_tell (s, SUPMSG_ANSWERED, 0, NULL);
}

static int
hook_dial (struct sup *s)
{
  return supmsg_dial (s->link.dial_fd);
}

/* Whether the parent takes path (the guest chose it): else it is not told. */
static bool
browser_path_ok (const char *path)
{
  cleanup_err struct err *e = NULL;
  struct supmsg m, back;

  supmsg_make (&m, SUPMSG_BROWSER_PATH, 0, path);
  return strlen (path) < SUPMSG_TEXT_MAX && supmsg_decode (&m, sizeof m, true, &back, &e) == 0;
}

/* What changed since the last report, to the parent, at once (once a turn
   of the loop); activity at most every REPORT_MS (then once that passed). */
static void
worker_report (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  struct sup_link *l = &s->link;
  double now = clock_now_ms ();
  int64_t out = proxy_outstanding (s);
  bool held = proxy_has_held (s);

  (void) fd;
  (void) what;
  out = out < 0 ? 0 : out > UINT32_MAX ? UINT32_MAX : out;
  if (s->n_conns != l->conns)
    sup_tell (s, SUPMSG_CLIENTS, s->n_conns < SUPMSG_CLIENTS_MAX ? s->n_conns : SUPMSG_CLIENTS_MAX,
              NULL);
  if (out != l->outstanding)
    sup_tell (s, SUPMSG_OUTSTANDING, (uint32_t) out, NULL);
  if (held != l->held)
    sup_tell (s, SUPMSG_HELD, held, NULL);
  if (strcmp (s->browser_path, l->browser_path) != 0 && browser_path_ok (s->browser_path))
    sup_tell (s, SUPMSG_BROWSER_PATH, 0, s->browser_path);
  l->conns = s->n_conns;
  l->outstanding = out;
  l->held = held;
  memcpy (l->browser_path, s->browser_path, sizeof l->browser_path);
  if (s->last_activity <= l->activity)
    return;
  if (now - l->told_ms < REPORT_MS)
    {
      struct timeval tv = { .tv_usec = (suseconds_t) ((l->told_ms + REPORT_MS - now) * 1000) + 1 };
      event_add (l->tell_ev, &tv);
      return;
    }
  sup_tell (s, SUPMSG_ACTIVITY, 0, NULL);
  l->activity = s->last_activity;
  l->told_ms = now;
}

static void
on_parent_frame (struct sup *s, const struct supmsg *m)
{
  enum sup_state was = s->state;
  char msg[768];

  switch (m->type)
    {
    case SUPMSG_STATE:
      s->state = (enum sup_state) m->val;
      if (s->state != SUP_RUNNING)
        s->link.answer_due = true;
      else if (was != SUP_RUNNING)
        proxy_resume_held (s);
      break;
    case SUPMSG_WAKE_FAILED:
      snprintf (msg, sizeof msg,
                "chvm: VM %s could not be restored: %s (chvm logs --source supervisor %s)", s->name,
                m->text, s->name);
      proxy_fail_held (s, msg);
      break;
    default: /* SUPMSG_MAX_CLIENTS */
      s->rec.cdp_max_clients = m->val;
      break;
    }
}

static void
on_parent (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  struct supmsg m;
  char msg[256];

  (void) what;
  for (int k = 0; k < BATCH; k++)
    {
      cleanup_err struct err *e = NULL;
      int r = supmsg_recv (fd, false, &m, &e);

      if (r == 0)
        return;
      if (r == SUPMSG_CLOSED)
        {
          sup_quit (s, "the supervisor is gone");
          return;
        }
      if (r == SUPMSG_BAD)
        {
          sup_log ("from the supervisor: %s", err_str (e, msg, sizeof msg));
          sup_quit (s, "the supervisor sent nonsense");
          return;
        }
      on_parent_frame (s, &m);
    }
}

static int
worker_setup (struct sup *s, struct err **err)
{
  s->base = event_base_new ();
  if (s->base == NULL)
    return err_make (err, ENOMEM, "event base");
  s->hooks = (struct proxy_hooks){
    .wake = hook_wake,
    .browser_up = hook_browser_up,
    .answered = hook_answered,
    .dial = hook_dial,
  };
  s->link.msg_ev = event_new (s->base, WORKER_MSG_FD, EV_READ | EV_PERSIST, on_parent, s);
  s->link.tell_ev = evtimer_new (s->base, worker_report, s);
  if (s->link.msg_ev == NULL || s->link.tell_ev == NULL || event_add (s->link.msg_ev, NULL) < 0)
    return err_make (err, ENOMEM, "events");
  return proxy_listen (s, WORKER_LISTEN_FD, err);
}

int
worker_main (struct sup *s, int listen_fd, int msg_fd, int dial_fd)
{
  cleanup_err struct err *err = NULL;
  const int keep[] = { listen_fd, msg_fd, dial_fd };
  pid_t parent = getppid ();
  char buf[256];

  s->link = (struct sup_link){
    .in_worker = true, .msg_fd = WORKER_MSG_FD, .dial_fd = WORKER_DIAL_FD, .state = s->state
  };
  if (keep_fds (keep, 3) < 0)
    err_make (&err, errno, "fds");
  else if (drop_privileges (parent, &err) == 0)
    worker_setup (s, &err);
  if (err != NULL)
    {
      sup_log ("proxy process: cannot start: %s", err_str (err, buf, sizeof buf));
      return 1;
    }
  sup_log ("proxy process: serving %s as uid %d", s->listen, WORKER_ID);
  event_base_dispatch (s->base);
  proxy_close_all (s);
  evconnlistener_free (s->cdp);
  return 0;
}
