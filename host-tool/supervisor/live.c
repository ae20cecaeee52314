/* SPDX-License-Identifier: Apache-2.0 */
/* The live view's packets: UDP to a published UDP range of the tap
   (udpwatch.h) counts as activity for the idle clock (s->live_last), at
   most once a second. */
#include "supervisor/live.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "net/udpwatch.h"
#include "supervisor/sup.h"

static void
live_close (struct sup *s)
{
  if (s->live_ev != NULL)
    event_free (s->live_ev);
  s->live_ev = NULL;
  event_del (s->live_pause);
  if (s->live_fd >= 0)
    close (s->live_fd);
  s->live_fd = -1;
}

static void
live_resume (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;

  (void) fd;
  (void) what;
  if (s->live_ev != NULL)
    event_add (s->live_ev, NULL);
}

static void
on_live_packet (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  struct timeval pause = { .tv_sec = 1 };
  uint8_t pkt[UDPWATCH_SNAP];
  ssize_t n;
  int k;

  (void) what;
  /* A bounded batch: the rest waits for the next turn of the loop. */
  for (k = 0; k < 64 && (n = recv (fd, pkt, sizeof pkt, MSG_TRUNC)) >= 0; k++)
    if (s->state == SUP_RUNNING
        && udpwatch_match (pkt, (size_t) n < sizeof pkt ? (size_t) n : sizeof pkt, s->rec.publish,
                           s->rec.n_publish))
      {
        /* Seen: what is queued is no newer (dropped, else the queue
           would count for seconds after the last), then a second's rest
           (the idle clock counts seconds), whatever the packet rate. */
        s->live_last = clock_now_ms ();
        for (k = 0; k < 4096 && recv (fd, pkt, sizeof pkt, MSG_TRUNC) >= 0; k++)
          ;
        event_del (s->live_ev);
        event_add (s->live_pause, &pause);
        return;
      }
  if (k < 64 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
    {
      /* The tap went down or away: opened again once the VM runs (again). */
      sup_log ("live-view watch on %s: %s; closed", s->rec.tap, strerror (errno));
      live_close (s);
      s->live_lost = true;
    }
}

void
live_open (struct sup *s)
{
  cleanup_err struct err *e = NULL;
  char buf[256];

  live_close (s);
  s->live_lost = false;
  if (s->rec.tap[0] == '\0' || !udpwatch_wanted (s->rec.publish, s->rec.n_publish))
    return;
  s->live_fd = udpwatch_open (s->rec.tap, s->rec.publish, s->rec.n_publish, &e);
  if (s->live_fd < 0)
    {
      s->live_fd = -1;
      sup_log ("live-view sessions do not count for idle standby: %s",
               err_str (e, buf, sizeof buf));
      return;
    }
  s->live_ev = event_new (s->base, s->live_fd, EV_READ | EV_PERSIST, on_live_packet, s);
  if (s->live_ev == NULL || event_add (s->live_ev, NULL) < 0)
    live_close (s);
}

int
live_init (struct sup *s, struct err **err)
{
  s->live_pause = evtimer_new (s->base, live_resume, s);
  if (s->live_pause == NULL)
    return err_make (err, ENOMEM, "events");
  return 0;
}
