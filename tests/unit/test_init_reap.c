/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for init's stop sequence (guest-init/reap.c) through its
   struct reap_sys seam: a fake clock, scripted signals and children, and a
   record of what init does.  A "stuck" child is one waitpid never reports,
   as a process in D state (blocked on a frozen filesystem, say) that even
   SIGKILL does not end. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "reap.h"

#define MAIN_PID 42
#define AGENT_PID 43

static struct
{
  int64_t now;
  const int *events; /* next_event answers, then timeouts */
  size_t n_events;
  int calls;
  bool dies_on_term, dies_on_kill; /* what the children do */
  bool dying, gone;                /* a signal that ends them was sent; reaped */
  int death_status;
  char log[512];
} f;

static void
record (const char *fmt, ...)
{
  size_t len = strlen (f.log);
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (f.log + len, sizeof f.log - len, fmt, ap);
  va_end (ap);
}

static pid_t
fake_waitpid (pid_t pid, int *status, int options)
{
  assert_int_equal (pid, -1);
  assert_int_equal (options, WNOHANG);
  if (f.gone)
    {
      errno = ECHILD;
      return -1;
    }
  if (!f.dying)
    return 0;
  f.gone = true;
  *status = f.death_status;
  return MAIN_PID;
}

static int
fake_kill (pid_t pid, int sig)
{
  record ("kill %d %d;", (int) pid, sig);
  if ((sig == SIGTERM && f.dies_on_term) || (sig == SIGKILL && f.dies_on_kill))
    {
      f.dying = true;
      f.death_status = sig; /* WIFSIGNALED with WTERMSIG sig */
    }
  return 0;
}

static int
fake_next_event (int sfd, struct button *btn, int timeout_ms)
{
  (void) sfd;
  (void) btn;
  if (++f.calls > 10000)
    fail_msg ("still waiting after 10000 events (fake time %lld ms)", (long long) f.now);
  if (f.n_events > 0)
    {
      f.n_events--;
      return *f.events++;
    }
  if (timeout_ms < 0)
    fail_msg ("waits for ever, without a deadline (fake time %lld ms, did: %s)", (long long) f.now,
              f.log);
  f.now += timeout_ms;
  return 0;
}

static int64_t
fake_now_ms (void)
{
  return f.now;
}

static void
fake_thaw (void)
{
  record ("thaw;");
}

static void
fake_log_left (void)
{
  record ("left;");
}

static const struct reap_sys fake_sys = {
  .waitpid = fake_waitpid,
  .kill = fake_kill,
  .next_event = fake_next_event,
  .now_ms = fake_now_ms,
  .thaw = fake_thaw,
  .log_left = fake_log_left,
};

static int
setup (void **state)
{
  (void) state;
  memset (&f, 0, sizeof f);
  f.now = 1000000;
  reap_sys = &fake_sys;
  return 0;
}

static const int sigpwr[] = { SIGPWR };

/* SIGPWR, an entrypoint that ignores SIGTERM and is stuck even after
   SIGKILL: the stop still ends, 8 s + 2 s later, naming what is left; the
   thaw comes before the SIGTERM and again before the SIGKILL to all. */
static void
test_stuck_after_kill (void **state)
{
  bool restart;

  (void) state;
  f.events = sigpwr;
  f.n_events = 1;
  assert_int_equal (reap_until (-1, NULL, MAIN_PID, AGENT_PID, &restart), 128 + SIGKILL);
  assert_false (restart);
  assert_string_equal (f.log, "thaw;kill 42 15;kill 42 18;thaw;kill -1 9;left;");
  assert_int_equal (f.now - 1000000, 8000 + 2000);
}

/* The same, but SIGKILL works: its status, and no list of leftovers. */
static void
test_killed (void **state)
{
  bool restart;

  (void) state;
  f.events = sigpwr;
  f.n_events = 1;
  f.dies_on_kill = true;
  assert_int_equal (reap_until (-1, NULL, MAIN_PID, AGENT_PID, &restart), 128 + SIGKILL);
  assert_string_equal (f.log, "thaw;kill 42 15;kill 42 18;thaw;kill -1 9;");
  assert_int_equal (f.now - 1000000, 8000);
}

/* An entrypoint that stops on SIGTERM: no kill-all. */
static void
test_terminated (void **state)
{
  bool restart;

  (void) state;
  f.events = sigpwr;
  f.n_events = 1;
  f.dies_on_term = true;
  assert_int_equal (reap_until (-1, NULL, MAIN_PID, AGENT_PID, &restart), 128 + SIGTERM);
  assert_string_equal (f.log, "thaw;kill 42 15;kill 42 18;");
}

/* Poweroff after the entrypoint exited: thaw, then SIGTERM to all (which
   the agent ignores while it holds a freeze), then thaw and SIGKILL, and
   with processes stuck the stop ends anyway after 3 s + 2 s. */
static void
test_stop_all_stuck (void **state)
{
  (void) state;
  assert_int_equal (reap_stop_all (-1), 0);
  assert_string_equal (f.log, "thaw;kill -1 15;kill -1 18;thaw;kill -1 9;left;");
  assert_int_equal (f.now - 1000000, 3000 + 2000);
}

static void
test_stop_all_clean (void **state)
{
  (void) state;
  f.dies_on_term = true;
  assert_int_equal (reap_stop_all (-1), 1);
  assert_string_equal (f.log, "thaw;kill -1 15;kill -1 18;");
  assert_int_equal (f.now, 1000000);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup (test_stuck_after_kill, setup),
    cmocka_unit_test_setup (test_killed, setup),
    cmocka_unit_test_setup (test_terminated, setup),
    cmocka_unit_test_setup (test_stop_all_stuck, setup),
    cmocka_unit_test_setup (test_stop_all_clean, setup),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
