/* SPDX-License-Identifier: Apache-2.0 */
/* Strict decimal parsing: digits only, the bound checked without
   overflowing, and nothing read past the given length. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "num.h"

#define SENTINEL UINT64_C (0xdeadbeef)

/* Parses the whole string; *out is left as SENTINEL on failure. */
static int
parse (const char *s, uint64_t max, uint64_t *out)
{
  *out = SENTINEL;
  return num_parse_u64 (s, strlen (s), max, out);
}

static void
test_plain (void **state)
{
  uint64_t v;

  (void) state;
  assert_int_equal (parse ("0", UINT64_MAX, &v), 0);
  assert_int_equal (v, 0);
  assert_int_equal (parse ("42", UINT64_MAX, &v), 0);
  assert_int_equal (v, 42);
  assert_int_equal (parse ("65535", 65535, &v), 0);
  assert_int_equal (v, 65535);
}

static void
test_rejects_non_digits (void **state)
{
  static const char *const bad[] = { "",   "+1", "-1",  " 1",  "1 ", "\t1", "1\n", "0x10",
                                     "1a", "a1", "1.5", "1e3", "--", "+",   "-" };
  uint64_t v;

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      assert_int_equal (parse (bad[i], UINT64_MAX, &v), -1);
      assert_int_equal (v, SENTINEL);
    }
}

static void
test_max_bound (void **state)
{
  uint64_t v;

  (void) state;
  assert_int_equal (parse ("65536", 65535, &v), -1);
  assert_int_equal (v, SENTINEL);
  assert_int_equal (parse ("4294967294", UINT32_MAX - 1, &v), 0);
  assert_int_equal (v, UINT32_MAX - 1);
  assert_int_equal (parse ("4294967295", UINT32_MAX - 1, &v), -1);
  /* A max below 10 (a single-digit bound) must not underflow. */
  assert_int_equal (parse ("5", 5, &v), 0);
  assert_int_equal (v, 5);
  assert_int_equal (parse ("6", 5, &v), -1);
  assert_int_equal (parse ("0", 0, &v), 0);
  assert_int_equal (v, 0);
  assert_int_equal (parse ("1", 0, &v), -1);
  assert_int_equal (parse ("10", 9, &v), -1);
}

static void
test_overflow_at_2_64 (void **state)
{
  uint64_t v;

  (void) state;
  assert_int_equal (parse ("18446744073709551615", UINT64_MAX, &v), 0);
  assert_true (v == UINT64_MAX);
  /* 2^64 and 2^64 + 5 would wrap to 0 and 5 in a naive loop. */
  assert_int_equal (parse ("18446744073709551616", UINT64_MAX, &v), -1);
  assert_int_equal (parse ("18446744073709551621", UINT64_MAX, &v), -1);
  assert_int_equal (parse ("99999999999999999999", UINT64_MAX, &v), -1);
  assert_int_equal (parse ("184467440737095516150", UINT64_MAX, &v), -1);
  assert_int_equal (v, SENTINEL);
  assert_int_equal (parse ("18446744073709551615", UINT64_MAX - 1, &v), -1);
}

static void
test_leading_zeros (void **state)
{
  uint64_t v;

  (void) state;
  /* Accepted with their decimal value (not octal); bounded by value, not
     by length. */
  assert_int_equal (parse ("007", UINT64_MAX, &v), 0);
  assert_int_equal (v, 7);
  assert_int_equal (parse ("010", UINT64_MAX, &v), 0);
  assert_int_equal (v, 10);
  assert_int_equal (parse ("000000000000000000000000065535", 65535, &v), 0);
  assert_int_equal (v, 65535);
  assert_int_equal (parse ("00", 0, &v), 0);
  assert_int_equal (v, 0);
}

static void
test_length_bounds_the_read (void **state)
{
  /* Not NUL-terminated: only the first len bytes count. */
  static const char buf[] = { '1', '2', '3', 'x' };
  uint64_t v = SENTINEL;

  (void) state;
  assert_int_equal (num_parse_u64 (buf, 3, UINT64_MAX, &v), 0);
  assert_int_equal (v, 123);
  assert_int_equal (num_parse_u64 (buf, 2, UINT64_MAX, &v), 0);
  assert_int_equal (v, 12);
  assert_int_equal (num_parse_u64 (buf, 4, UINT64_MAX, &v), -1);
  v = SENTINEL;
  assert_int_equal (num_parse_u64 (buf, 0, UINT64_MAX, &v), -1);
  assert_int_equal (v, SENTINEL);
  /* An empty span at a valid pointer, and at NULL, are both empty. */
  assert_int_equal (num_parse_u64 (NULL, 0, UINT64_MAX, &v), -1);
}

static void
test_str (void **state)
{
  uint64_t v = SENTINEL;

  (void) state;
  assert_int_equal (num_parse_u64_str ("3600000", 3600000, &v), 0);
  assert_int_equal (v, 3600000);
  assert_int_equal (num_parse_u64_str ("3600001", 3600000, &v), -1);
  assert_int_equal (num_parse_u64_str ("", UINT64_MAX, &v), -1);
  assert_int_equal (num_parse_u64_str (" 1", UINT64_MAX, &v), -1);
  assert_int_equal (num_parse_u64_str ("1 ", UINT64_MAX, &v), -1);
  assert_int_equal (num_parse_u64_str ("-1", UINT64_MAX, &v), -1);
  assert_int_equal (v, 3600000);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_plain),         cmocka_unit_test (test_rejects_non_digits),
    cmocka_unit_test (test_max_bound),     cmocka_unit_test (test_overflow_at_2_64),
    cmocka_unit_test (test_leading_zeros), cmocka_unit_test (test_length_bounds_the_read),
    cmocka_unit_test (test_str),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
