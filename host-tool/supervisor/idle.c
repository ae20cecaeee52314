/* SPDX-License-Identifier: Apache-2.0 */
/* The idle clock: spec.idle_standby seconds without a CDP byte or a
   live-view packet, with no CDP command outstanding and no client held,
   and the VM is stood by (`chvm standby`, our child). */
#include "supervisor/idle.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <sys/wait.h>

#include "clock.h"
#include "supervisor/sup.h"

static void
on_idle (evutil_socket_t fd, short what, void *ctx)
{
  struct sup *s = ctx;
  double idle_ms = s->rec.idle_standby_s * 1000.0, quiet, live_quiet;
  char live[64] = "";
  int64_t out;

  (void) fd;
  (void) what;
  if (s->state != SUP_RUNNING || s->rec.idle_standby_s == 0 || s->child > 0 || !s->ready)
    return;
  /* `chvm pause`d: left as it is (a standby, then a wake, would restore it
     running); `chvm resume` rewrites vm.json, and sup_sync arms the clock. */
  if (s->rec.state == VM_STATUS_PAUSED)
    return;
  quiet = clock_now_ms () - s->last_activity;
  live_quiet = clock_now_ms () - s->live_last;
  if (quiet < idle_ms || live_quiet < idle_ms)
    {
      sup_arm_idle (s);
      return;
    }
  out = s->outstanding;
  if (out > 0 || s->held)
    {
      /* A command still runs in the browser: not idle; look again later. */
      sup_touch (s);
      sup_arm_idle (s);
      return;
    }
  if (s->live_fd >= 0 && s->live_last > 0)
    snprintf (live, sizeof live, ", no live-view packet for %.1f s", live_quiet / 1000);
  else if (s->live_fd >= 0)
    snprintf (live, sizeof live, ", no live-view packet yet");
  sup_log ("idle standby: no CDP byte for %.1f s, %u client(s) open, nothing outstanding%s",
           quiet / 1000, s->n_conns, live);
  if (sup_spawn_chvm (s, "standby") == 0)
    sup_set_state (s, SUP_SLEEPING);
}

void
sup_arm_idle (struct sup *s)
{
  double last = s->last_activity > s->live_last ? s->last_activity : s->live_last;
  struct timeval tv;
  int left;

  if (s->rec.idle_standby_s == 0 || s->idle_ev == NULL || !s->ready)
    return;
  left = clock_left_ms (last + s->rec.idle_standby_s * 1000.0);
  if (left < 10)
    left = 10;
  tv.tv_sec = left / 1000;
  tv.tv_usec = (suseconds_t) (left % 1000) * 1000;
  event_add (s->idle_ev, &tv);
}

void
idle_browser_up (struct sup *s)
{
  if (s->ready)
    return;
  s->ready = true;
  sup_arm_idle (s);
}

void
idle_standby_done (struct sup *s, int status, double ms)
{
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    {
      s->idle_standbys++;
      sup_log ("idle standby %u done in %.0f ms", s->idle_standbys, ms);
    }
  else
    sup_log ("idle standby failed after %.0f ms (status %d); the VM runs on", ms,
             WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
}

int
idle_init (struct sup *s, struct err **err)
{
  s->idle_ev = evtimer_new (s->base, on_idle, s);
  if (s->idle_ev == NULL)
    return err_make (err, ENOMEM, "events");
  return 0;
}
