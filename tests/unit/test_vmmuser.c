/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM uid range from /etc/subuid text and the pick of a free uid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/proc.h"
#include "vm/vmmuser.h"

/* A uid of nobody's, as a VMM's would be. */
#define OTHER_ID 4000321

static void
test_subuid_by_name_and_uid (void **state)
{
  uint32_t first = 0, count = 0;

  (void) state;
  assert_int_equal (vmmuser_parse_subuid ("alice:100000:65536\nchvm-vmm:1900000000:65536\n",
                                          "chvm-vmm", 999, &first, &count),
                    1);
  assert_int_equal (first, 1900000000u);
  assert_int_equal (count, 65536);
  assert_int_equal (vmmuser_parse_subuid ("999:5000:10", "chvm-vmm", 999, &first, &count), 1);
  assert_int_equal (first, 5000);
  assert_int_equal (count, 10);
}

static void
test_subuid_refuses (void **state)
{
  uint32_t first = 0, count = 0;

  (void) state;
  assert_int_equal (vmmuser_parse_subuid ("", "chvm-vmm", 999, &first, &count), 0);
  /* a prefix of the name is not the name */
  assert_int_equal (vmmuser_parse_subuid ("chvm-vmmx:1:2\n", "chvm-vmm", 999, &first, &count), 0);
  assert_int_equal (vmmuser_parse_subuid ("chvm-vmm:0:2\n", "chvm-vmm", 999, &first, &count), 0);
  assert_int_equal (vmmuser_parse_subuid ("chvm-vmm:10:\n", "chvm-vmm", 999, &first, &count), 0);
  assert_int_equal (
      vmmuser_parse_subuid ("chvm-vmm:4294967295:2\n", "chvm-vmm", 999, &first, &count), 0);
  assert_int_equal (vmmuser_parse_subuid ("chvm-vmm:10:2x\n", "chvm-vmm", 999, &first, &count), 0);
}

static void
test_pick_lowest_free (void **state)
{
  struct vmm_user u = { .name = "chvm-vmm", .first = 1000, .count = 3 };
  uint32_t used[] = { 1000, 1002 }, all[] = { 1001, 1000, 1002 }, out = 0;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (vmmuser_pick (&u, NULL, 0, NULL, &out, &err), 0);
  assert_int_equal (out, 1000);
  assert_int_equal (vmmuser_pick (&u, used, 2, NULL, &out, &err), 0);
  assert_int_equal (out, 1001);
  assert_true (vmmuser_pick (&u, all, 3, NULL, &out, &err) < 0);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "1000-1002"));
  err_release (&err);
}

static bool
busy (uint32_t uid)
{
  return proc_uid_count ((uid_t) uid) != 0;
}

/* A compromised VMM leaves a forked, setsid'd child behind: its uid is not
   handed to a new VM while the child lives, and proc_kill_uid ends it. */
static void
test_leftover_process_of_uid (void **state)
{
  struct vmm_user u = { .name = "chvm-vmm", .first = OTHER_ID, .count = 2 };
  struct err *err = NULL;
  uint32_t out = 0;
  int pfd[2];
  char c;
  pid_t pid;

  (void) state;
  if (geteuid () != 0)
    skip ();
  assert_int_equal (proc_uid_count (OTHER_ID), 0);
  assert_int_equal (pipe (pfd), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (pfd[0]);
      if (setresgid (OTHER_ID, OTHER_ID, OTHER_ID) < 0
          || setresuid (OTHER_ID, OTHER_ID, OTHER_ID) < 0)
        _exit (1);
      if (fork () == 0)
        {
          setsid ();
          if (write (pfd[1], "k", 1) != 1)
            _exit (1);
          for (;;)
            pause ();
        }
      for (;;)
        pause ();
    }
  close (pfd[1]);
  assert_int_equal (read (pfd[0], &c, 1), 1);
  close (pfd[0]);
  assert_int_equal (proc_uid_count (OTHER_ID), 2);
  assert_int_equal (vmmuser_pick (&u, NULL, 0, busy, &out, &err), 0);
  assert_int_equal (out, OTHER_ID + 1);

  assert_int_equal (proc_kill_uid (OTHER_ID, 5000, &err), 0);
  assert_int_equal (waitpid (pid, NULL, 0), pid);
  assert_int_equal (proc_uid_count (OTHER_ID), 0);
  assert_int_equal (vmmuser_pick (&u, NULL, 0, busy, &out, &err), 0);
  assert_int_equal (out, OTHER_ID);
  assert_true (proc_kill_uid (0, 10, &err) < 0);
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_subuid_by_name_and_uid),
    cmocka_unit_test (test_subuid_refuses),
    cmocka_unit_test (test_pick_lowest_free),
    cmocka_unit_test (test_leftover_process_of_uid),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
