/* SPDX-License-Identifier: Apache-2.0 */
/* The supervisor's control requests (supctl_parse_request): one JSON
   object with a known "cmd", nothing else.  And who the supervisor is: a
   process of another uid named in supervisor.pid (its cmdline naming the VM
   dir, as the VMM's uid can arrange), or a control socket it serves, is
   not taken for root's supervisor. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/supervisor.h"
#include "sys/proc.h"

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

#define NOBODY 65534

/* A child that runs as uid (unless 0) with dir on its command line:
   "sh -c 'exec sleep 30' DIR", or serving DIR/supervisor.sock when sock. */
static pid_t
spawn_as (uid_t uid, const char *dir, bool sock)
{
  pid_t pid = fork ();

  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (uid != 0 && (setgid (uid) < 0 || setuid (uid) < 0))
        _exit (3);
      if (sock)
        {
          struct sockaddr_un sun = { .sun_family = AF_UNIX };
          int fd = socket (AF_UNIX, SOCK_STREAM, 0), c;
          snprintf (sun.sun_path, sizeof sun.sun_path, "%s/supervisor.sock", dir);
          if (fd < 0 || bind (fd, (struct sockaddr *) &sun, sizeof sun) < 0 || listen (fd, 4) < 0)
            _exit (4);
          while ((c = accept (fd, NULL, NULL)) >= 0)
            {
              static const char ans[] = "{\"ws\":\"ws://evil.example/devtools/browser/x\"}\n";
              if (write (c, ans, sizeof ans - 1) < 0)
                _exit (5);
              close (c);
            }
          _exit (0);
        }
      execl ("/bin/sh", "sh", "-c", "exec sleep 30", dir, (char *) NULL);
      _exit (127);
    }
  return pid;
}

static void
reap (pid_t pid)
{
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
}

static void
test_who_is_the_supervisor (void **state)
{
  char dir[] = "/tmp/chvm-supctl-XXXXXX", path[256], buf[256];
  struct err *e = NULL;
  pid_t pid;
  FILE *f;

  (void) state;
  if (geteuid () != 0)
    {
      print_message ("skipped: needs root (a process of another uid)\n");
      return;
    }
  assert_non_null (mkdtemp (dir));
  assert_int_equal (chmod (dir, 0777), 0);
  snprintf (path, sizeof path, "%s/supervisor.pid", dir);
  for (int as_root = 0; as_root < 2; as_root++)
    {
      pid = spawn_as (as_root ? 0 : NOBODY, dir, false);
      /* Its cmdline names dir once exec is done: wait for that. */
      for (int i = 0; i < 1000 && !proc_pid_names_dir (pid, dir); i++)
        usleep (1000);
      assert_true (proc_pid_names_dir (pid, dir));
      assert_non_null (f = fopen (path, "w"));
      fprintf (f, "%d\n", (int) pid);
      fclose (f);
      assert_int_equal (supervisor_pid (dir), as_root ? pid : 0);
      reap (pid);
    }
  unlink (path);
  /* A control socket served by another uid is not asked. */
  pid = spawn_as (NOBODY, dir, true);
  snprintf (path, sizeof path, "%s/supervisor.sock", dir);
  for (int i = 0; i < 1000 && access (path, F_OK) < 0; i++)
    usleep (1000);
  assert_true (supervisor_query (dir, "status", buf, sizeof buf, 2000, &e) < 0);
  assert_non_null (strstr (err_str (e, buf, sizeof buf), "not root"));
  err_release (&e);
  reap (pid);
  unlink (path);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_requests),
    cmocka_unit_test (test_too_long),
    cmocka_unit_test (test_who_is_the_supervisor),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
