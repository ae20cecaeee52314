/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the entrypoint's user, groups and environment
   (guest-init/spec.c), against /etc/passwd and /etc/group text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "spec.h"

static const char passwd[] = "root:x:0:0:root:/root:/bin/bash\n"
                             "# a comment line\n"
                             "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                             "broken line without fields\n"
                             "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n"
                             "bob:x:1001:100::/home/bob:/bin/sh\n"
                             "alice:x:2000:2000:second alice:/nowhere:/bin/sh\n"
                             "nohome:x:1002:1002:::/bin/sh";
static const char group[] = "root:x:0:\n"
                            "users:x:100:alice\n"
                            "alice:x:1000:\n"
                            "audio:x:29:bob,alice\n"
                            "video:x:44:carol,alice,dave\n"
                            "alicex:x:45:alicex\n"
                            "staff:x:50:bob";

static void
resolve_ok (const char *spec, struct spec_user *u)
{
  struct err *err = NULL;
  int r = spec_resolve_user (spec, passwd, group, u, &err);
  if (r < 0)
    fail_msg ("resolving '%s': %s", spec, err ? err->msg : "?");
}

static void
expect_groups (const struct spec_user *u, size_t n, const gid_t *want)
{
  assert_int_equal (u->ngroups, n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal (u->groups[i], want[i]);
}

static void
test_root_default (void **state)
{
  struct spec_user u;

  (void) state;
  resolve_ok (NULL, &u);
  assert_int_equal (u.uid, 0);
  assert_int_equal (u.gid, 0);
  assert_string_equal (u.home, "/");
  assert_int_equal (u.ngroups, 0);
  resolve_ok ("", &u);
  assert_int_equal (u.uid, 0);
}

static void
test_name (void **state)
{
  struct spec_user u;

  (void) state;
  resolve_ok ("root", &u);
  assert_string_equal (u.home, "/root");
  resolve_ok ("alice", &u);
  assert_int_equal (u.uid, 1000);
  assert_int_equal (u.gid, 1000);
  /* First passwd match wins; exact member names only (not "alicex"). */
  assert_string_equal (u.home, "/home/alice");
  expect_groups (&u, 3, (gid_t[]){ 100, 29, 44 });
}

/* A group line with no members field ("name:x:gid", which getent would
   also accept) must not borrow the members of the line before it. */
static void
test_group_without_members (void **state)
{
  static const char short_group[] = "wheel:x:10:alice\n"
                                    "nomembers:x:60\n";
  struct err *err = NULL;
  struct spec_user u;

  (void) state;
  assert_int_equal (spec_resolve_user ("alice", passwd, short_group, &u, &err), 0);
  expect_groups (&u, 1, (gid_t[]){ 10 });
}

static void
test_numeric_uid (void **state)
{
  struct spec_user u;

  (void) state;
  /* Known uid: its passwd entry gives gid, home and groups. */
  resolve_ok ("1001", &u);
  assert_int_equal (u.uid, 1001);
  assert_int_equal (u.gid, 100);
  assert_string_equal (u.home, "/home/bob");
  expect_groups (&u, 2, (gid_t[]){ 29, 50 });
  /* Unknown uid: allowed, gid 0, home /. */
  resolve_ok ("4242", &u);
  assert_int_equal (u.uid, 4242);
  assert_int_equal (u.gid, 0);
  assert_string_equal (u.home, "/");
  assert_int_equal (u.ngroups, 0);
}

static void
test_explicit_group (void **state)
{
  struct spec_user u;

  (void) state;
  /* An explicit group replaces the primary group and drops the
     supplementary ones, as runc does. */
  resolve_ok ("alice:video", &u);
  assert_int_equal (u.uid, 1000);
  assert_int_equal (u.gid, 44);
  assert_int_equal (u.ngroups, 0);
  resolve_ok ("alice:29", &u);
  assert_int_equal (u.gid, 29);
  resolve_ok ("4242:4343", &u);
  assert_int_equal (u.uid, 4242);
  assert_int_equal (u.gid, 4343);
  resolve_ok ("0:staff", &u);
  assert_int_equal (u.uid, 0);
  assert_int_equal (u.gid, 50);
}

static void
test_errors (void **state)
{
  struct spec_user u;
  struct err *err = NULL;

  (void) state;
  assert_true (spec_resolve_user ("mallory", passwd, group, &u, &err) < 0);
  assert_string_equal (err->msg, "unable to find user mallory in /etc/passwd");
  err_release (&err);
  assert_true (spec_resolve_user ("alice:nogroup", passwd, group, &u, &err) < 0);
  assert_string_equal (err->msg, "unable to find group nogroup in /etc/group");
  err_release (&err);
  assert_true (spec_resolve_user ("alice:", passwd, group, &u, &err) < 0);
  err_release (&err);
  /* A name needs /etc/passwd; a number does not. */
  assert_true (spec_resolve_user ("alice", NULL, NULL, &u, &err) < 0);
  err_release (&err);
  assert_int_equal (spec_resolve_user ("7:8", NULL, NULL, &u, &err), 0);
  assert_int_equal (u.uid, 7);
  assert_int_equal (u.gid, 8);
  /* uid 4294967295 is (uid_t)-1, "no change" for setuid: refused as a
     number, so it must be a name, which does not exist. */
  assert_true (spec_resolve_user ("4294967295", passwd, group, &u, &err) < 0);
  err_release (&err);
}

static void
test_env_merge (void **state)
{
  struct strv in = { 0 }, out = { 0 };
  struct err *err = NULL;
  static const char *const entries[] = { "PATH=/usr/bin", "A=1", "B=2", "A=3", "EMPTY=" };

  (void) state;
  for (size_t i = 0; i < 5; i++)
    assert_int_equal (strv_push (&in, entries[i], strlen (entries[i])), 0);
  assert_int_equal (spec_build_env (&in, "/home/alice", &out, &err), 0);
  /* A later A replaces the earlier one in place; HOME is added. */
  assert_int_equal (out.n, 5);
  assert_string_equal (out.v[0], "PATH=/usr/bin");
  assert_string_equal (out.v[1], "A=3");
  assert_string_equal (out.v[2], "B=2");
  assert_string_equal (out.v[3], "EMPTY=");
  assert_string_equal (out.v[4], "HOME=/home/alice");
  assert_null (out.v[5]);
  assert_string_equal (spec_getenv (out.v, "A"), "3");
  assert_string_equal (spec_getenv (out.v, "EMPTY"), "");
  assert_null (spec_getenv (out.v, "EMPT"));
  strv_free (&out);
  strv_free (&in);

  /* No PATH and a HOME given: docker's default PATH is added, HOME kept. */
  assert_int_equal (strv_push (&in, "HOME=/x", 7), 0);
  assert_int_equal (spec_build_env (&in, "/root", &out, &err), 0);
  assert_int_equal (out.n, 2);
  assert_string_equal (out.v[0], "HOME=/x");
  assert_string_equal (out.v[1], "PATH=" SPEC_DEFAULT_PATH);
  strv_free (&out);
  strv_free (&in);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_root_default),
    cmocka_unit_test (test_name),
    cmocka_unit_test (test_group_without_members),
    cmocka_unit_test (test_numeric_uid),
    cmocka_unit_test (test_explicit_group),
    cmocka_unit_test (test_errors),
    cmocka_unit_test (test_env_merge),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
