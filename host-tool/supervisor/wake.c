/* SPDX-License-Identifier: Apache-2.0 */
/* Wake on connect: a client that comes to a VM in standby, or sends a
   byte, has the VM restored (`chvm restore`, our child) while the proxy
   (the worker) holds its bytes; the wake is timed from its first byte to the first
   answer (status: wake_ms, restore_ms). */
#include "supervisor/wake.h"

#include <stdio.h>
#include <sys/wait.h>

#include "clock.h"
#include "supervisor/sup.h"

void
wake_fail_held (struct sup *s)
{
  /* The worker answers them (worker.c). */
  sup_tell (s, SUPMSG_WAKE_FAILED, 0, s->last_error);
}

void
sup_wake (struct sup *s, const char *why)
{
  if (s->state == SUP_SLEEPING)
    {
      s->wake_pending = true;
      return;
    }
  if (s->state != SUP_STANDBY || s->child > 0)
    return;
  if (!s->wake_open)
    {
      s->wake_open = true;
      s->wake_t0 = clock_now_ms ();
    }
  s->wake_pending = false;
  sup_log ("wake: %s; restoring VM %s", why, s->name);
  if (sup_spawn_chvm (s, "restore") < 0)
    {
      s->wake_fails++;
      s->wake_open = false;
      wake_fail_held (s);
      return;
    }
  sup_set_state (s, SUP_WAKING);
}

void
wake_restore_done (struct sup *s, int status, double ms)
{
  s->wake_restore_ms = ms;
  if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
    {
      sup_log ("wake: restore done in %.0f ms", ms);
      return;
    }
  snprintf (s->last_error, sizeof s->last_error, "chvm restore exited with status %d",
            WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
  sup_log ("wake failed after %.0f ms: %s", ms, s->last_error);
  s->wake_fails++;
  s->wake_open = false;
}

void
wake_answered (struct sup *s)
{
  double ms;
  unsigned k;

  if (!s->wake_open)
    return;
  s->wake_open = false;
  ms = clock_now_ms () - s->wake_t0;
  k = s->wakes % WAKE_KEEP;
  s->wake_ms[k] = ms;
  s->restore_ms[k] = s->wake_restore_ms;
  s->wakes++;
  sup_log ("wake %u: answered %.0f ms after the first byte (restore %.0f ms, %.0f%%)", s->wakes, ms,
           s->wake_restore_ms, ms > 0 ? 100.0 * s->wake_restore_ms / ms : 0.0);
}
