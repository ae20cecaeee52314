/* SPDX-License-Identifier: Apache-2.0 */
/* The frames between the supervisor's parent and its worker (supmsg.h):
   each type the worker may send passes the parent's check; a frame cut
   short or long, of a type the sender may not send, with a number out of
   its type's bounds or a text where there is none, not NUL-terminated,
   with bytes after its NUL, or with characters its type does not allow,
   is refused.  And the dial channel passes a socket, or an errno. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/sup.h"
#include "supervisor/supmsg.h"

static int
check (const struct supmsg *m, size_t len, bool from_worker)
{
  struct err *e = NULL;
  struct supmsg out;
  int r = supmsg_decode (m, len, from_worker, &out, &e);

  if (r == 0)
    assert_memory_equal (&out, m, sizeof out);
  else
    assert_non_null (e);
  err_release (&e);
  return r;
}

static int
one (uint32_t type, uint32_t val, const char *text, bool from_worker)
{
  struct supmsg m;

  supmsg_make (&m, type, val, text);
  return check (&m, sizeof m, from_worker);
}

static void
test_good (void **state)
{
  (void) state;
  assert_int_equal (one (SUPMSG_WAKE, SUPMSG_WAKE_NEW, NULL, true), 0);
  assert_int_equal (one (SUPMSG_WAKE, SUPMSG_WAKE_BYTE, NULL, true), 0);
  assert_int_equal (one (SUPMSG_ACTIVITY, 0, NULL, true), 0);
  assert_int_equal (one (SUPMSG_BROWSER_UP, 0, NULL, true), 0);
  assert_int_equal (one (SUPMSG_ANSWERED, 0, NULL, true), 0);
  assert_int_equal (one (SUPMSG_CLIENTS, SUPMSG_CLIENTS_MAX, NULL, true), 0);
  assert_int_equal (one (SUPMSG_OUTSTANDING, UINT32_MAX, NULL, true), 0);
  assert_int_equal (one (SUPMSG_HELD, 1, NULL, true), 0);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "/0123abcd/devtools/browser/4f1e-a_b.c", true), 0);
  assert_int_equal (one (SUPMSG_STATE, SUP_WAKING, NULL, false), 0);
  assert_int_equal (one (SUPMSG_WAKE_FAILED, 0, "chvm restore exited with status 1", false), 0);
  assert_int_equal (one (SUPMSG_MAX_CLIENTS, 32, NULL, false), 0);
}

static void
test_bad_size_and_type (void **state)
{
  struct supmsg m;
  unsigned char big[sizeof m + 1];

  (void) state;
  supmsg_make (&m, SUPMSG_ACTIVITY, 0, NULL);
  assert_int_equal (check (&m, sizeof m - 1, true), -1);
  assert_int_equal (check (&m, 0, true), -1);
  memset (big, 0, sizeof big);
  memcpy (big, &m, sizeof m);
  {
    struct err *e = NULL;
    struct supmsg out;
    assert_int_equal (supmsg_decode (big, sizeof big, true, &out, &e), -1);
    err_release (&e);
  }
  /* Types: none, past the last, the other side's. */
  assert_int_equal (one (0, 0, NULL, true), -1);
  assert_int_equal (one (SUPMSG_WORKER_LAST + 1, 0, NULL, true), -1);
  assert_int_equal (one (SUPMSG_STATE, SUP_RUNNING, NULL, true), -1);
  assert_int_equal (one (SUPMSG_WAKE_FAILED, 0, "x", true), -1);
  assert_int_equal (one (SUPMSG_WAKE, 0, NULL, false), -1);
  assert_int_equal (one (SUPMSG_PARENT_LAST + 1, 0, NULL, false), -1);
  assert_int_equal (one (UINT32_MAX, 0, NULL, true), -1);
}

static void
test_bad_values (void **state)
{
  (void) state;
  assert_int_equal (one (SUPMSG_WAKE, SUPMSG_WAKE_BYTE + 1, NULL, true), -1);
  assert_int_equal (one (SUPMSG_ACTIVITY, 1, NULL, true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_UP, UINT32_MAX, NULL, true), -1);
  assert_int_equal (one (SUPMSG_CLIENTS, SUPMSG_CLIENTS_MAX + 1, NULL, true), -1);
  assert_int_equal (one (SUPMSG_HELD, 2, NULL, true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 1, "/devtools/browser/x", true), -1);
  assert_int_equal (one (SUPMSG_STATE, SUP_WAKING + 1, NULL, false), -1);
}

static void
test_bad_text (void **state)
{
  struct supmsg m;

  (void) state;
  /* A text where the type has none. */
  assert_int_equal (one (SUPMSG_ACTIVITY, 0, "x", true), -1);
  assert_int_equal (one (SUPMSG_STATE, SUP_RUNNING, "x", false), -1);
  /* A browser path: a '/' first, path characters alone. */
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "", true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "devtools/browser/x", true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "/devtools/browser/x y", true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "/devtools/browser/x\"", true), -1);
  assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, "/devtools/browser/%2e", true), -1);
  assert_int_equal (one (SUPMSG_WAKE_FAILED, 0, "a\nb", false), -1);
  assert_int_equal (one (SUPMSG_WAKE_FAILED, 0, "\x1b[2J", false), -1);
  /* No NUL at all. */
  supmsg_make (&m, SUPMSG_BROWSER_PATH, 0, NULL);
  memset (m.text, 'a', sizeof m.text);
  m.text[0] = '/';
  assert_int_equal (check (&m, sizeof m, true), -1);
  /* Bytes after the NUL: in a type with a text, and in one without. */
  supmsg_make (&m, SUPMSG_BROWSER_PATH, 0, "/devtools/browser/x");
  m.text[sizeof m.text - 1] = 'z';
  assert_int_equal (check (&m, sizeof m, true), -1);
  supmsg_make (&m, SUPMSG_CLIENTS, 1, NULL);
  m.text[100] = 1;
  assert_int_equal (check (&m, sizeof m, true), -1);
  /* A text too long for a frame is cut to fit, NUL-terminated. */
  {
    char longer[SUPMSG_TEXT_MAX + 10];
    memset (longer, 'b', sizeof longer);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    assert_int_equal (one (SUPMSG_BROWSER_PATH, 0, longer, true), 0);
  }
}

static void
test_send_and_dial (void **state)
{
  int sv[2], fd;
  unsigned char buf[sizeof (struct supmsg) + 1], req;
  struct stat st;

  (void) state;
  assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  assert_int_equal (supmsg_send (sv[0], SUPMSG_HELD, 1, NULL, true), 0);
  assert_int_equal (recv (sv[1], buf, sizeof buf, 0), (ssize_t) sizeof (struct supmsg));
  {
    struct supmsg m;
    memcpy (&m, buf, sizeof m);
    assert_int_equal (check (&m, sizeof m, true), 0);
    assert_int_equal (m.type, SUPMSG_HELD);
    assert_int_equal (m.val, 1);
  }
  /* The parent's answers queued first: a socket, then an errno. */
  assert_int_equal (supmsg_send_fd (sv[0], 0, sv[0]), 0);
  fd = supmsg_dial (sv[1]);
  assert_true (fd >= 0);
  assert_int_equal (fstat (fd, &st), 0);
  assert_true (S_ISSOCK (st.st_mode));
  close (fd);
  assert_int_equal (recv (sv[0], &req, 1, 0), 1);
  assert_int_equal (req, SUPMSG_DIAL);
  assert_int_equal (supmsg_send_fd (sv[0], ECONNREFUSED, -1), 0);
  errno = 0;
  assert_int_equal (supmsg_dial (sv[1]), -1);
  assert_int_equal (errno, ECONNREFUSED);
  /* An answer of another size is the channel's error. */
  assert_int_equal (send (sv[0], "xy", 2, 0), 2);
  assert_int_equal (supmsg_dial (sv[1]), -1);
  assert_int_equal (errno, EPROTO);
  close (sv[0]);
  close (sv[1]);
}

/* supmsg_recv: none waiting, a frame, a longer one (bad), the peer gone. */
static void
test_recv (void **state)
{
  unsigned char big[sizeof (struct supmsg) + 8] = { 0 };
  struct err *err = NULL;
  struct supmsg m;
  int sv[2];

  (void) state;
  assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
  assert_int_equal (supmsg_recv (sv[1], true, &m, &err), 0);
  assert_int_equal (supmsg_send (sv[0], SUPMSG_OUTSTANDING, 3, NULL, true), 0);
  assert_int_equal (supmsg_recv (sv[1], true, &m, &err), 1);
  assert_int_equal (m.type, SUPMSG_OUTSTANDING);
  assert_int_equal (m.val, 3);
  assert_int_equal (send (sv[0], big, sizeof big, 0), (ssize_t) sizeof big);
  assert_int_equal (supmsg_recv (sv[1], true, &m, &err), SUPMSG_BAD);
  assert_non_null (err);
  err_release (&err);
  close (sv[0]);
  assert_int_equal (supmsg_recv (sv[1], true, &m, &err), SUPMSG_CLOSED);
  assert_string_equal (err->msg, "closed its channel");
  err_release (&err);
  close (sv[1]);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_good),          cmocka_unit_test (test_bad_size_and_type),
    cmocka_unit_test (test_bad_values),    cmocka_unit_test (test_bad_text),
    cmocka_unit_test (test_send_and_dial), cmocka_unit_test (test_recv),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
