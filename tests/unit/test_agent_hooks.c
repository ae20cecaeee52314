/* SPDX-License-Identifier: Apache-2.0 */
/* guest-agent/hooks.c with real scripts in a temporary directory: name
   order, the event as the argument, hidden and non-executable files
   skipped, the first failure stops the rest and is named, a hook past its
   time is killed with what it left behind, a missing directory is no
   hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "hooks.h"

static char dir[64];

static void
hook (const char *name, int mode, const char *body)
{
  char path[128];
  FILE *f;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  assert_non_null (f = fopen (path, "w"));
  fprintf (f, "#!/bin/sh\n%s\n", body);
  fclose (f);
  assert_int_equal (chmod (path, (mode_t) mode), 0);
}

static void
slurp (const char *name, char *buf, size_t len)
{
  char path[128];
  FILE *f;
  size_t n;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  buf[0] = '\0';
  if ((f = fopen (path, "r")) == NULL)
    return;
  n = fread (buf, 1, len - 1, f);
  buf[n] = '\0';
  fclose (f);
}

static int
setup (void **state)
{
  (void) state;
  strcpy (dir, "/tmp/chvm-test-hooks-XXXXXX");
  assert_non_null (mkdtemp (dir));
  return 0;
}

static int
teardown (void **state)
{
  char cmd[128];

  (void) state;
  snprintf (cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal (system (cmd), 0);
  return 0;
}

static void
test_order_event_and_skips (void **state)
{
  struct err *err = NULL;
  char got[256], cmd[256];

  (void) state;
  snprintf (cmd, sizeof cmd, "echo \"b $1\" >>%s/log; echo to the log", dir);
  hook ("20-b", 0755, cmd);
  snprintf (cmd, sizeof cmd, "echo \"a $1\" >>%s/log", dir);
  hook ("10-a", 0700, cmd);
  snprintf (cmd, sizeof cmd, "echo hidden >>%s/log", dir);
  hook (".hidden", 0755, cmd);
  snprintf (cmd, sizeof cmd, "echo plain >>%s/log", dir);
  hook ("30-not-executable", 0644, cmd);
  assert_int_equal (hooks_run (dir, "thaw", 5000, &err), 2);
  assert_null (err);
  slurp ("log", got, sizeof got);
  assert_string_equal (got, "a thaw\nb thaw\n");
}

static void
test_first_failure_stops_and_is_named (void **state)
{
  struct err *err = NULL;
  char got[256], cmd[256];

  (void) state;
  snprintf (cmd, sizeof cmd, "echo ran >>%s/log", dir);
  hook ("10-ok", 0755, cmd);
  hook ("20-fails", 0755, "echo cannot reset >&2; exit 3");
  hook ("30-after", 0755, cmd);
  assert_int_equal (hooks_run (dir, "quiesce", 5000, &err), -1);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "hook 20-fails quiesce"));
  assert_non_null (strstr (err->msg, "status 3"));
  err_release (&err);
  slurp ("log", got, sizeof got);
  assert_string_equal (got, "ran\n");
}

static void
test_past_its_time_killed_with_its_children (void **state)
{
  struct err *err = NULL;
  char got[64], cmd[256];
  double t0 = clock_now_ms ();

  (void) state;
  /* A child left behind holding the output, and the hook itself asleep. */
  snprintf (cmd, sizeof cmd, "(sleep 30; echo late >>%s/log) & sleep 30", dir);
  hook ("10-slow", 0755, cmd);
  assert_int_equal (hooks_run (dir, "fork", 300, &err), -1);
  assert_true (clock_now_ms () - t0 < 5000);
  assert_non_null (strstr (err->msg, "killed after 300 ms"));
  err_release (&err);
  /* The child is gone too: its group was killed. */
  snprintf (cmd, sizeof cmd, "pgrep -f '%s/10-sl[o]w' >/dev/null", dir);
  assert_int_not_equal (system (cmd), 0);
  slurp ("log", got, sizeof got);
  assert_string_equal (got, "");
}

static void
test_no_directory_no_hooks (void **state)
{
  struct err *err = NULL;

  (void) state;
  assert_int_equal (hooks_run ("/nonexistent/chvm/hooks.d", "quiesce", 1000, &err), 0);
  assert_null (err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_order_event_and_skips, setup, teardown),
    cmocka_unit_test_setup_teardown (test_first_failure_stops_and_is_named, setup, teardown),
    cmocka_unit_test_setup_teardown (test_past_its_time_killed_with_its_children, setup, teardown),
    cmocka_unit_test_setup_teardown (test_no_directory_no_hooks, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
