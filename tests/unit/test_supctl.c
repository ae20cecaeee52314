/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's control requests (supctl_parse_request): one JSON
   object with a known "cmd", nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/supervisor.h"

static int
parse (const char *s, char *cmd)
{
  struct err *e = NULL;
  int r = supctl_parse_request (s, strlen (s), cmd, 16, &e);

  err_release (&e);
  return r;
}

static void
test_requests (void **state)
{
  char cmd[16];

  (void) state;
  assert_int_equal (parse ("{\"cmd\":\"status\"}", cmd), 0);
  assert_string_equal (cmd, "status");
  assert_int_equal (parse (" {\"cmd\" : \"stop\", \"x\": 1} ", cmd), 0);
  assert_string_equal (cmd, "stop");
  assert_int_equal (parse ("{\"cmd\":\"rm\"}", cmd), -1);
  assert_int_equal (parse ("{\"cmd\":1}", cmd), -1);
  assert_int_equal (parse ("[\"status\"]", cmd), -1);
  assert_int_equal (parse ("{\"cmd\":\"status\"} {}", cmd), -1);
  assert_int_equal (parse ("{\"cmd\":\"status\"", cmd), -1);
  assert_int_equal (parse ("", cmd), -1);
  {
    struct err *e = NULL;
    assert_int_equal (supctl_parse_request ("{\"cmd\":\"status\"}\0", 17, cmd, 16, &e), -1);
    err_release (&e);
  }
}

static void
test_too_long (void **state)
{
  static char big[SUPCTL_LINE_MAX + 2];
  char cmd[16];
  struct err *e = NULL;

  (void) state;
  memset (big, ' ', sizeof big - 1);
  memcpy (big, "{\"cmd\":\"status\"}", 16);
  assert_int_equal (supctl_parse_request (big, SUPCTL_LINE_MAX + 1, cmd, sizeof cmd, &e), -1);
  err_release (&e);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_requests),
    cmocka_unit_test (test_too_long),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
