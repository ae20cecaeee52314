/* SPDX-License-Identifier: Apache-2.0 */
/* What every part of the supervisor uses: its log, the activity stamp,
   quitting, and the `chvm` children (standby, restore) it runs. */
#include "supervisor/sup.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "supervisor/supmsg.h"

extern char **environ;

static const char *const sup_state_names[] = { "running", "standby", "standing-by", "waking" };

void
sup_log (const char *fmt, ...)
{
  char msg[1024], ts[40];
  struct timespec t;
  struct tm tm;
  va_list ap;

  clock_gettime (CLOCK_REALTIME, &t);
  gmtime_r (&t.tv_sec, &tm);
  strftime (ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  dprintf (STDERR_FILENO, "%s.%03ldZ chvm-supervisor[%d]: %s\n", ts, t.tv_nsec / 1000000,
           (int) getpid (), msg);
}

const char *
sup_state_name (enum sup_state st)
{
  return sup_state_names[st];
}

void
sup_touch (struct sup *s)
{
  s->last_activity = clock_now_ms ();
  sup_changed (s);
}

void
sup_changed (struct sup *s)
{
  if (s->link.tell_ev != NULL)
    event_active (s->link.tell_ev, EV_TIMEOUT, 0);
}

void
sup_set_state (struct sup *s, enum sup_state st)
{
  s->state = st;
  sup_changed (s);
}

void
sup_tell (struct sup *s, uint32_t type, uint32_t val, const char *text)
{
  if (s->link.msg_fd < 0)
    return;
  if (supmsg_send (s->link.msg_fd, type, val, text, !s->link.in_worker) == 0)
    return;
  sup_log ("cannot write to the %s: %s", s->link.in_worker ? "supervisor" : "proxy process",
           strerror (errno));
  if (s->link.msg_ev != NULL)
    event_del (s->link.msg_ev);
  close (s->link.msg_fd);
  s->link.msg_fd = -1;
  sup_quit (s, "its other process does not read");
}

void
sup_quit (struct sup *s, const char *why)
{
  sup_log ("exiting: %s", why);
  event_base_loopbreak (s->base);
}

int
sup_spawn_chvm (struct sup *s, const char *cmd)
{
  const char *argv[] = { "chvm", "--state-dir", s->root, cmd, s->name, NULL };
#ifdef CHVM_TEST_HOOKS
  /* Test seam (like CHVM_FAULT), in build/tests/chvm-hooks alone: another
     program in chvm's place, for a test of the supervisor's own logic
     without a VM. */
  const char *exe = getenv ("CHVM_SUPERVISOR_EXEC");
#else
  const char *exe = NULL;
#endif
  posix_spawn_file_actions_t fa;
  int r;

  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addclosefrom_np (&fa, 3);
  r = posix_spawn (&s->child, exe != NULL && exe[0] ? exe : "/proc/self/exe", &fa, NULL,
                   (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0)
    {
      s->child = 0;
      snprintf (s->last_error, sizeof s->last_error, "chvm %s: %s", cmd, strerror (r));
      sup_log ("%s", s->last_error);
      return -1;
    }
  s->child_t0 = clock_now_ms ();
  return 0;
}
