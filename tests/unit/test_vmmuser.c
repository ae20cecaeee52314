/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM uid range from /etc/subuid text and the pick of a free uid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "vm/vmmuser.h"

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
  assert_int_equal (vmmuser_pick (&u, NULL, 0, &out, &err), 0);
  assert_int_equal (out, 1000);
  assert_int_equal (vmmuser_pick (&u, used, 2, &out, &err), 0);
  assert_int_equal (out, 1001);
  assert_true (vmmuser_pick (&u, all, 3, &out, &err) < 0);
  assert_non_null (err);
  assert_non_null (strstr (err->msg, "1000-1002"));
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_subuid_by_name_and_uid),
    cmocka_unit_test (test_subuid_refuses),
    cmocka_unit_test (test_pick_lowest_free),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
