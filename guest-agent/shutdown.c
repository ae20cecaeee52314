/* SPDX-License-Identifier: Apache-2.0 */
/* Shutdown: reply first, then, once the reply is flushed or a bounded wait
   passed, ask PID 1 (chvm-init) to stop: SIGPWR to power off, SIGRTMIN+5
   (systemd's convention) to reboot.  Init stops the entrypoint gracefully,
   terminates every process (the agent too), unmounts and powers off; the
   agent calling reboot() itself would skip all of that.  The requesting
   connection holds a request until then, which ends the wait early when its
   output drains or it goes away. */
#include "shutdown.h"

#include <signal.h>

#include "log.h"

#define SHUTDOWN_FLUSH_MS 1000

static struct
{
  struct req r; /* attached to the connection whose reply must be flushed first */
  struct event *timer;
  bool poweroff;
} sd;

static void
do_shutdown (void)
{
  if (agent.test_mode)
    {
      log_info ("shutdown requested (test mode: exiting)");
      event_base_loopexit (agent.base, NULL);
      return;
    }
  log_info ("shutdown requested: %s", sd.poweroff ? "power off" : "reboot");
  if (kill (1, sd.poweroff ? SIGPWR : SIGRTMIN + 5) < 0)
    log_error ("signal init: %m");
}

static void
shutdown_timer_cb (evutil_socket_t fd, short what, void *arg)
{
  (void) fd;
  (void) what;
  (void) arg;
  conn_req_done (&sd.r);
  do_shutdown ();
}

/* The output fell low: once empty, the reply is out and the machine goes
   down now. */
static void
shutdown_drained (struct req *r)
{
  if (!conn_out_empty_p (r->conn))
    return;
  conn_req_done (r);
  event_del (sd.timer);
  do_shutdown ();
}

/* The connection went away: nothing left to wait for. */
static void
shutdown_cancel (struct req *r)
{
  (void) r;
  event_del (sd.timer);
  do_shutdown ();
}

void
shutdown_handle (struct conn *c, const Frame *f)
{
  const Chvm__Agent__ShutdownRequest *rq = f->shutdown;
  uint64_t id = f->id;
  Chvm__Agent__ShutdownReply rep = CHVM__AGENT__SHUTDOWN_REPLY__INIT;
  Frame rf = CHVM__AGENT__FRAME__INIT;
  struct timeval tv = { SHUTDOWN_FLUSH_MS / 1000, (SHUTDOWN_FLUSH_MS % 1000) * 1000 };

  if (sd.timer != NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_BUSY, "shutdown already under way");
      return;
    }
  sd.timer = evtimer_new (agent.base, shutdown_timer_cb, NULL);
  if (sd.timer == NULL)
    {
      conn_send_error (c, id, CHVM__AGENT__ERROR_CODE__ERROR_INTERNAL, "out of memory");
      return;
    }
  sd.poweroff = rq->poweroff;
  conn_req_add (c, &sd.r, id, shutdown_cancel, shutdown_drained);
  rf.id = id;
  rf.body_case = CHVM__AGENT__FRAME__BODY_SHUTDOWN_REPLY;
  rf.shutdown_reply = &rep;
  conn_send (c, &rf);
  /* Go down once the reply is out, or after a bounded wait for it. */
  evtimer_add (sd.timer, &tv);
}

void
shutdown_free (void)
{
  if (sd.timer)
    event_free (sd.timer);
  sd.timer = NULL;
}
