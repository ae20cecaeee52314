/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parent's side of the supervisor's two processes (supmsg.h): it forks
 * the worker, then takes each of its frames as hostile (supmsg_decode; a
 * bad one, or a bad dial request, has the worker killed and the supervisor
 * exit, saying why in its log), tells it what changed (the state,
 * cdp_max_clients) and dials the guest for it: a socket of root's,
 * connecting to the guest's DevTools and nowhere else (the guest's port
 * takes root's sockets alone), passed over the dial socketpair.
 */
#include "supervisor/priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "supervisor/idle.h"
#include "supervisor/supmsg.h"
#include "supervisor/wake.h"
#include "supervisor/worker.h"

#define BATCH 64 /* frames or dials taken at one turn of the loop */

static void
priv_kill (struct sup *s, const char *why)
{
  sup_log ("the proxy process %s: killed", why);
  if (s->link.worker > 0)
    kill (s->link.worker, SIGKILL);
  event_del (s->link.msg_ev);
  event_del (s->link.dial_ev);
  sup_quit (s, "the proxy process broke the protocol");
}

static void
on_frame (struct sup *s, const struct supmsg *m)
{
  switch (m->type)
    {
    case SUPMSG_WAKE:
      sup_wake (s, m->val == SUPMSG_WAKE_NEW ? "a new client" : "a byte from a client");
      break;
    case SUPMSG_ACTIVITY:
      sup_touch (s);
      break;
    case SUPMSG_BROWSER_UP:
      idle_browser_up (s);
      break;
    case SUPMSG_ANSWERED:
      wake_answered (s);
      break;
    case SUPMSG_CLIENTS:
      s->n_conns = m->val;
      break;
    case SUPMSG_OUTSTANDING:
      s->outstanding = m->val;
      break;
    case SUPMSG_HELD:
      s->held = m->val != 0;
      break;
    default: /* SUPMSG_BROWSER_PATH, checked */
      snprintf (s->browser_path, sizeof s->browser_path, "%s", m->text);
      break;
    }
}

static void
on_msg (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  struct supmsg m;
  char why[300], msg[256];

  (void) what;
  for (int k = 0; k < BATCH; k++)
    {
      cleanup_err struct err *e = NULL;
      int r = supmsg_recv (fd, true, &m, &e);

      if (r == 0)
        return;
      if (r < 0)
        {
          if (r == SUPMSG_BAD)
            snprintf (why, sizeof why, "sent a bad frame (%s)", err_str (e, msg, sizeof msg));
          else
            snprintf (why, sizeof why, "%s", e->msg);
          priv_kill (s, why);
          return;
        }
      on_frame (s, &m);
    }
}

/* A socket connecting to the guest's DevTools, to the worker on chan. */
static int
dial_reply (struct sup *s, int chan)
{
  struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) s->up_port) };
  cleanup_close int fd = -1;
  int32_t rc = 0;

  if (inet_pton (AF_INET, s->up_host, &sin.sin_addr) != 1)
    rc = EINVAL;
  else if ((fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
    rc = errno;
  else if (connect (fd, (struct sockaddr *) &sin, sizeof sin) < 0 && errno != EINPROGRESS)
    rc = errno;
  return supmsg_send_fd (chan, rc, rc == 0 ? fd : -1);
}

static void
on_dial (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  unsigned char req[2];
  ssize_t n;

  (void) what;
  for (int k = 0; k < BATCH; k++)
    {
      n = recv (fd, req, sizeof req, MSG_DONTWAIT | MSG_TRUNC);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
      if (n <= 0)
        {
          priv_kill (s, "closed its dial channel");
          return;
        }
      if (n != 1 || req[0] != SUPMSG_DIAL)
        {
          priv_kill (s, "sent a bad dial request");
          return;
        }
      if (dial_reply (s, fd) < 0)
        {
          priv_kill (s, "does not take its dials");
          return;
        }
    }
}

/* What changed, to the worker: the state, cdp_max_clients. */
static void
priv_tell (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  if (s->link.max_clients != s->rec.cdp_max_clients)
    {
      s->link.max_clients = s->rec.cdp_max_clients;
      sup_tell (s, SUPMSG_MAX_CLIENTS, s->link.max_clients, NULL);
    }
  if (s->link.state != s->state)
    {
      s->link.state = s->state;
      sup_tell (s, SUPMSG_STATE, s->state, NULL);
    }
}

int
priv_fork (struct sup *s, int listen_fd, struct err **err)
{
  cleanup_close int m0 = -1, m1 = -1, d0 = -1, d1 = -1;
  int sv[2];
  pid_t pid;

  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return err_make (err, errno, "socketpair");
  m0 = sv[0], m1 = sv[1];
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return err_make (err, errno, "socketpair");
  d0 = sv[0], d1 = sv[1];
  pid = fork ();
  if (pid < 0)
    return err_make (err, errno, "fork");
  if (pid == 0)
    _exit (worker_main (s, listen_fd, m1, d1));
  close (listen_fd);
  s->link.worker = pid;
  s->link.msg_fd = steal_fd (&m0);
  s->link.dial_fd = steal_fd (&d0);
  /* What the worker was forked knowing. */
  s->link.state = s->state;
  s->link.max_clients = s->rec.cdp_max_clients;
  return 0;
}

int
priv_watch (struct sup *s, struct err **err)
{
  s->link.msg_ev = event_new (s->base, s->link.msg_fd, EV_READ | EV_PERSIST, on_msg, s);
  s->link.dial_ev = event_new (s->base, s->link.dial_fd, EV_READ | EV_PERSIST, on_dial, s);
  s->link.tell_ev = evtimer_new (s->base, priv_tell, s);
  if (s->link.msg_ev == NULL || s->link.dial_ev == NULL || s->link.tell_ev == NULL
      || event_add (s->link.msg_ev, NULL) < 0 || event_add (s->link.dial_ev, NULL) < 0)
    return err_make (err, ENOMEM, "events");
  sup_changed (s);
  return 0;
}

void
priv_end (struct sup *s)
{
  if (s->link.worker <= 0)
    return;
  kill (s->link.worker, SIGKILL);
  while (waitpid (s->link.worker, NULL, 0) < 0 && errno == EINTR)
    ;
  s->link.worker = 0;
}
