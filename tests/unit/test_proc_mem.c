/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the smaps_rollup reader (sys/proc.c) behind ps and
   inspect's vmm_rss and vmm_pss. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "sys/proc.h"

static void
test_parse (void **state)
{
  const char *text = "55d0c0a00000-7ffd1b5f6000 ---p 00000000 00:00 0    [rollup]\n"
                     "Rss:             2301616 kB\n"
                     "Pss:             1907744 kB\n"
                     "Pss_Anon:        1890000 kB\n"
                     "Shared_Clean:     390000 kB\n";
  uint64_t rss = 0, pss = 0;

  (void) state;
  assert_int_equal (proc_parse_smaps_rollup (text, &rss, &pss), 0);
  assert_int_equal (rss, 2301616ULL << 10);
  assert_int_equal (pss, 1907744ULL << 10);
}

static void
test_refusals (void **state)
{
  uint64_t rss, pss;

  (void) state;
  assert_int_equal (proc_parse_smaps_rollup ("", &rss, &pss), -1);
  /* Pss_Anon is not Pss. */
  assert_int_equal (proc_parse_smaps_rollup ("Rss: 1 kB\nPss_Anon: 1 kB\n", &rss, &pss), -1);
  assert_int_equal (proc_parse_smaps_rollup ("Rss: 1 MB\nPss: 1 kB\n", &rss, &pss), -1);
  assert_int_equal (proc_parse_smaps_rollup ("Rss: kB\nPss: 1 kB\n", &rss, &pss), -1);
  assert_int_equal (
      proc_parse_smaps_rollup ("Rss: 99999999999999999999 kB\nPss: 1 kB\n", &rss, &pss), -1);
}

/* Our own process: both there, PSS at most RSS. */
static void
test_self (void **state)
{
  struct err *err = NULL;
  uint64_t rss = 0, pss = 0;

  (void) state;
  assert_int_equal (proc_mem_usage (getpid (), &rss, &pss, &err), 0);
  assert_true (rss > 0 && pss > 0 && pss <= rss);
  assert_true (proc_mem_usage (-5, &rss, &pss, &err) < 0);
  assert_non_null (err);
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse),
    cmocka_unit_test (test_refusals),
    cmocka_unit_test (test_self),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
