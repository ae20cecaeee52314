/* SPDX-License-Identifier: Apache-2.0 */
/* The QMP client against a scripted fake QEMU monitor (a forked child on a
   unix socket): handshake, replies with events interleaved, errors, events
   split across reads, a deadline, an oversized message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/qmp.h"

static char sock_path[64];

static void
say (int fd, const char *s)
{
  if (write (fd, s, strlen (s)) < 0)
    _exit (3);
}

/* Reads one request line; exits when it does not name want. */
static void
expect (FILE *in, const char *want)
{
  char line[4096];
  if (fgets (line, sizeof line, in) == NULL || strstr (line, want) == NULL)
    _exit (4);
}

static void
fake_qemu (int lfd)
{
  int fd = accept (lfd, NULL, NULL);
  FILE *in = fdopen (dup (fd), "r");
  char *big;

  say (fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
           "\"package\": \"\"}, \"capabilities\": []}}\r\n");
  expect (in, "\"qmp_capabilities\"");
  say (fd, "{\"return\": {}}\r\n");
  expect (in, "\"query-status\"");
  say (fd,
       "{\"event\": \"MIGRATION\", \"data\": {\"status\": \"active\"}}\r\n"
       "{\"event\": \"STOP\"}\r\n{\"return\": {\"status\": \"paused\", \"running\": false}}\r\n");
  expect (in, "\"bad-cmd\"");
  say (fd, "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command bad-cmd has "
           "not been found\"}}\r\n");
  expect (in, "\"uri\":\"exec:cat");
  say (fd, "{\"return\": {}}\r\n{\"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}\r\n"
           "{\"event\": \"MIGRATION\", \"data\": {\"sta");
  usleep (20000); /* the rest of the line arrives in a later read */
  say (fd, "tus\": \"completed\"}}\r\n");
  expect (in, "\"slow\"");
  /* no answer: the client's deadline must end the wait */
  expect (in, "\"big\"");
  big = malloc (QMP_MAX_MSG + 16);
  memset (big, 'x', QMP_MAX_MSG + 16);
  /* The client may hang up before it has all of it: that is its job. */
  signal (SIGPIPE, SIG_IGN);
  if (write (fd, big, QMP_MAX_MSG + 16) < 0 && errno != EPIPE && errno != ECONNRESET)
    _exit (5);
  free (big);
  fclose (in);
  close (fd);
  _exit (0);
}

static int
is_completed (struct json_object *data, void *opaque)
{
  struct json_object *st;
  (void) opaque;
  return data != NULL && json_object_object_get_ex (data, "status", &st)
         && strcmp (json_object_get_string (st), "completed") == 0;
}

static void
test_session (void **state)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  struct err *err = NULL;
  struct json_object *ret = NULL, *v, *args;
  char version[64];
  struct qmp *q;
  int lfd, st;
  pid_t pid;

  (void) state;
  snprintf (sock_path, sizeof sock_path, "/tmp/chvm-qmp-%d.sock", (int) getpid ());
  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
  unlink (sock_path);
  lfd = socket (AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal (bind (lfd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (lfd, 1), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    fake_qemu (lfd);
  close (lfd);

  q = qmp_open (sock_path, 5000, version, sizeof version, &err);
  assert_non_null (q);
  assert_string_equal (version, "qemu 7.2.22");

  /* Events before the reply are kept, the reply is returned. */
  assert_int_equal (qmp_execute (q, "query-status", NULL, &ret, 5000, &err), 0);
  assert_true (json_object_object_get_ex (ret, "status", &v));
  assert_string_equal (json_object_get_string (v), "paused");
  json_object_put (ret);

  assert_true (qmp_execute (q, "bad-cmd", NULL, NULL, 5000, &err) < 0);
  assert_non_null (strstr (err->msg, "CommandNotFound: The command bad-cmd has not been found"));
  err_release (&err);

  args = json_object_new_object ();
  json_object_object_add (args, "uri", json_object_new_string ("exec:cat > /dev/null"));
  assert_int_equal (qmp_execute (q, "migrate", args, NULL, 5000, &err), 0);
  /* Skips "active" (queued earlier) and "setup"; the completed one is
     split across two reads. */
  assert_int_equal (qmp_wait_event (q, "MIGRATION", is_completed, NULL, &ret, 5000, &err), 0);
  assert_true (json_object_object_get_ex (ret, "status", &v));
  assert_string_equal (json_object_get_string (v), "completed");
  json_object_put (ret);
  /* The STOP event seen during query-status is still there. */
  assert_int_equal (qmp_wait_event (q, "STOP", NULL, NULL, NULL, 100, &err), 0);

  assert_true (qmp_execute (q, "slow", NULL, NULL, 100, &err) < 0);
  assert_int_equal (err->status, ETIMEDOUT);
  err_release (&err);

  assert_true (qmp_execute (q, "big", NULL, NULL, 5000, &err) < 0);
  assert_non_null (strstr (err->msg, "larger than"));
  err_release (&err);
  qmp_close (q);

  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
  unlink (sock_path);
}

static void
test_no_socket (void **state)
{
  struct err *err = NULL;

  (void) state;
  assert_null (qmp_open ("/nonexistent/qmp.sock", 100, NULL, 0, &err));
  assert_non_null (strstr (err->msg, "connect"));
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_session),
    cmocka_unit_test (test_no_socket),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
