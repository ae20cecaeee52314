/* SPDX-License-Identifier: Apache-2.0 */
/* The agent's pure logic: /proc parsers, mountinfo freeze candidates, the
   /json/version readiness check, request admission and token comparison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

static void
test_meminfo (void **state)
{
  uint64_t total = 0, avail = 0, free_kb = 0;

  (void) state;
  assert_int_equal (sysinfo_parse_meminfo ("MemTotal:        2014532 kB\n"
                                           "MemFree:          100000 kB\n"
                                           "MemAvailable:    1500123 kB\n",
                                           &total, &avail, &free_kb),
                    0);
  assert_int_equal (total, 2014532);
  assert_int_equal (avail, 1500123);
  assert_int_equal (free_kb, 100000);
  /* "MemAvailableX" is not "MemAvailable". */
  assert_int_equal (sysinfo_parse_meminfo ("MemTotal: 1 kB\nMemFree: 1 kB\nMemAvailableX: 5 kB\n",
                                           &total, &avail, &free_kb),
                    -1);
  assert_int_equal (
      sysinfo_parse_meminfo ("MemTotal: 1 kB\nMemAvailable: 1 kB\n", &total, &avail, &free_kb), -1);
  assert_int_equal (sysinfo_parse_meminfo ("", &total, &avail, &free_kb), -1);
  assert_int_equal (sysinfo_parse_meminfo ("MemTotal: kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n",
                                           &total, &avail, &free_kb),
                    -1);
}

static void
test_loadavg (void **state)
{
  double l[3];

  (void) state;
  assert_int_equal (sysinfo_parse_loadavg ("0.50 1.25 2.00 1/123 4567\n", l), 0);
  assert_true (l[0] == 0.5 && l[1] == 1.25 && l[2] == 2.0);
  assert_int_equal (sysinfo_parse_loadavg ("0.50 garbage", l), -1);
  assert_string_equal (sysinfo_state_name ('S'), "sleeping");
  assert_string_equal (sysinfo_state_name ('?'), "unknown");
}

static void
test_json_version (void **state)
{
  char b[64];
  const char *ok = "HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: application/json\r\n\r\n"
                   "{\"Browser\": \"Chrome/148.0\", \"x\": \"yyyyy\"}\n";
  const char *esc = "HTTP/1.1 200 OK\r\n\r\n{\"Browser\":\"A\\\"B\"}";

  (void) state;
  assert_int_equal (ready_parse_version (ok, strlen (ok), b, sizeof b), 1);
  assert_string_equal (b, "Chrome/148.0");
  /* Headers not complete yet, body short of Content-Length: wait. */
  assert_int_equal (ready_parse_version (ok, 20, b, sizeof b), 0);
  assert_int_equal (ready_parse_version (ok, strlen (ok) - 20, b, sizeof b), 0);
  assert_int_equal (ready_parse_version (esc, strlen (esc), b, sizeof b), 1);
  assert_string_equal (b, "A\"B");
  assert_int_equal (ready_parse_version ("HTTP/1.1 404 Not Found\r\n\r\n", 26, b, sizeof b), -1);
  assert_int_equal (ready_parse_version ("SSH-2.0-OpenSSH\r\n\r\n", 19, b, sizeof b), -1);
  {
    const char *nob = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    assert_int_equal (ready_parse_version (nob, strlen (nob), b, sizeof b), -1);
  }
  {
    /* A long Browser string is truncated to the buffer, not overflowed. */
    char tiny[4];
    assert_int_equal (ready_parse_version (ok, strlen (ok), tiny, sizeof tiny), 1);
    assert_string_equal (tiny, "Chr");
  }
}

static void
test_mountinfo (void **state)
{
  const char *mi = "22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u\n"
                   "23 22 0:5 / /proc rw,nosuid - proc proc rw\n"
                   "24 22 254:0 / /mnt/root ro,relatime - ext4 /dev/vda ro\n"
                   "25 22 254:16 / /data rw,relatime shared:1 - ext4 /dev/vdc rw\n"
                   "26 22 254:16 /sub /my\\040dir rw master:2 - ext4 /dev/vdc rw\n"
                   "27 22 8:1 / /broken rw no-dash-here\n"
                   "garbage\n"
                   "28 22 8:1 / relative rw - ext4 /dev/sda1 rw\n";
  struct mount_ent *m = NULL;
  size_t n = 0;
  struct err *e = NULL;

  (void) state;
  assert_int_equal (freeze_parse_mountinfo (mi, &m, &n, &e), 0);
  assert_int_equal (n, 2);
  assert_string_equal (m[0].path, "/data");
  assert_int_equal (m[0].major, 254);
  assert_int_equal (m[0].minor, 16);
  assert_string_equal (m[1].path, "/my dir");
  freeze_free_mounts (m, n);

  /* Our guests: root is overlay on tmpfs, so nothing to freeze. */
  assert_int_equal (
      freeze_parse_mountinfo ("1 0 0:2 / / rw - overlay o rw\n2 1 0:3 / /run rw - tmpfs t rw\n", &m,
                              &n, &e),
      0);
  assert_int_equal (n, 0);
  freeze_free_mounts (m, n);
}

static void
test_admit (void **state)
{
  Frame f = CHVM__AGENT__FRAME__INIT;
  const char *why = NULL;

  (void) state;
  f.body_case = CHVM__AGENT__FRAME__BODY__NOT_SET;
  assert_int_equal (dispatch_admit (&f, true, false, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST);
  f.body_case = CHVM__AGENT__FRAME__BODY_PING;
  assert_int_equal (dispatch_admit (&f, false, false, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_UNAUTHENTICATED);
  assert_int_equal (dispatch_admit (&f, true, true, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED);
  f.body_case = CHVM__AGENT__FRAME__BODY_HELLO;
  assert_int_equal (dispatch_admit (&f, false, false, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED);
  assert_int_equal (dispatch_admit (&f, true, false, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST);
  /* While frozen only Ping, Health and Thaw pass. */
  f.body_case = CHVM__AGENT__FRAME__BODY_EXEC;
  assert_int_equal (dispatch_admit (&f, true, true, &why), CHVM__AGENT__ERROR_CODE__ERROR_FROZEN);
  f.body_case = CHVM__AGENT__FRAME__BODY_QUIESCE;
  assert_int_equal (dispatch_admit (&f, true, true, &why), CHVM__AGENT__ERROR_CODE__ERROR_FROZEN);
  f.body_case = CHVM__AGENT__FRAME__BODY_HEALTH;
  assert_int_equal (dispatch_admit (&f, true, true, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED);
  f.body_case = CHVM__AGENT__FRAME__BODY_THAW;
  assert_int_equal (dispatch_admit (&f, true, true, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_UNSPECIFIED);
  /* Replies are not requests. */
  f.body_case = CHVM__AGENT__FRAME__BODY_EXEC_EXIT;
  assert_int_equal (dispatch_admit (&f, true, false, &why),
                    CHVM__AGENT__ERROR_CODE__ERROR_BAD_REQUEST);
}

static void
test_token (void **state)
{
  (void) state;
  assert_true (token_equal_p ("abcd", 4, "abcd", 4));
  assert_false (token_equal_p ("abcd", 4, "abce", 4));
  assert_false (token_equal_p ("abc", 3, "abcd", 4));
  assert_false (token_equal_p ("abcd", 4, "abc", 3));
  /* An agent without a token never accepts an empty one. */
  assert_false (token_equal_p ("", 0, "", 0));
}

static void
test_exec_validate (void **state)
{
  Chvm__Agent__ExecRequest r = CHVM__AGENT__EXEC_REQUEST__INIT;
  char *argv[] = { "true" }, *empty[] = { "" }, *bad_env[] = { "NOEQUALS" }, *bad_env2[] = { "=x" },
       *env[] = { "A=b" };
  const char *why;

  (void) state;
  assert_int_equal (exec_validate (&r, &why), -1);
  r.n_argv = 1;
  r.argv = empty;
  assert_int_equal (exec_validate (&r, &why), -1);
  r.argv = argv;
  assert_int_equal (exec_validate (&r, &why), 0);
  r.n_env = 1;
  r.env = bad_env;
  assert_int_equal (exec_validate (&r, &why), -1);
  r.env = bad_env2;
  assert_int_equal (exec_validate (&r, &why), -1);
  r.env = env;
  assert_int_equal (exec_validate (&r, &why), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_meminfo),       cmocka_unit_test (test_loadavg),
    cmocka_unit_test (test_json_version),  cmocka_unit_test (test_mountinfo),
    cmocka_unit_test (test_admit),         cmocka_unit_test (test_token),
    cmocka_unit_test (test_exec_validate),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
