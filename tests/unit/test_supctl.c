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

static const char *self_exe;

/* A child that runs as uid (unless 0): this program again as
   "chvm __supervise DIR" (pause), or, with sock, serving sock_path. */
static pid_t
spawn_as (uid_t uid, const char *dir, const char *sock_path)
{
  pid_t pid = fork ();

  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (uid != 0 && (setgid (uid) < 0 || setuid (uid) < 0))
        _exit (3);
      if (sock_path != NULL)
        {
          struct sockaddr_un sun = { .sun_family = AF_UNIX };
          int fd = socket (AF_UNIX, SOCK_STREAM, 0), c;
          snprintf (sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
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
      execl (self_exe, "chvm", SUPERVISOR_CMD, dir, (char *) NULL);
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

/* Waits until pid runs this program as "chvm __supervise DIR". */
static void
wait_exec (pid_t pid, const char *dir)
{
  for (int i = 0; i < 2000 && !proc_pid_names_dir (pid, dir); i++)
    usleep (1000);
  assert_true (proc_pid_names_dir (pid, dir));
}

static void
write_pid (const char *dir, pid_t pid)
{
  char path[256];
  FILE *f;

  snprintf (path, sizeof path, "%s/supervisor.pid", dir);
  assert_non_null (f = fopen (path, "w"));
  fprintf (f, "%d\n", (int) pid);
  fclose (f);
}

/* A query of dir fails saying want. */
static void
expect_refused (const char *dir, const char *want)
{
  char buf[256];
  struct err *e = NULL;

  assert_true (supervisor_query (dir, "status", buf, sizeof buf, 2000, &e) < 0);
  if (strstr (err_str (e, buf, sizeof buf), want) == NULL)
    fail_msg ("'%s' does not say '%s'", buf, want);
  err_release (&e);
}

static void
wait_path (const char *path)
{
  for (int i = 0; i < 2000 && access (path, F_OK) < 0; i++)
    usleep (1000);
}

static void
test_who_is_the_supervisor (void **state)
{
  char dir[] = "/tmp/chvm-supctl-XXXXXX", other[] = "/tmp/chvm-supctl-XXXXXX", sock[256],
       osock[256];
  pid_t pid, root_pid, srv;

  (void) state;
  if (geteuid () != 0)
    {
      print_message ("skipped: needs root (a process of another uid)\n");
      return;
    }
  assert_non_null (mkdtemp (dir));
  assert_non_null (mkdtemp (other));
  assert_int_equal (chmod (dir, 0777), 0);
  snprintf (sock, sizeof sock, "%s/supervisor.sock", dir);
  snprintf (osock, sizeof osock, "%s/supervisor.sock", other);
  /* Another uid's process, its command line as the supervisor's. */
  pid = spawn_as (NOBODY, dir, NULL);
  wait_exec (pid, dir);
  write_pid (dir, pid);
  assert_int_equal (supervisor_pid (dir), 0);
  expect_refused (dir, "no supervisor");
  reap (pid);
  /* Root's: the supervisor.  Its socket planted by another uid, or a link
     to another VM's socket, is not asked. */
  root_pid = spawn_as (0, dir, NULL);
  wait_exec (root_pid, dir);
  write_pid (dir, root_pid);
  assert_int_equal (supervisor_pid (dir), root_pid);
  srv = spawn_as (NOBODY, dir, sock);
  wait_path (sock);
  expect_refused (dir, "not root's socket");
  reap (srv);
  unlink (sock);
  srv = spawn_as (0, other, osock);
  wait_path (osock);
  assert_int_equal (symlink (osock, sock), 0);
  expect_refused (dir, "not root's socket");
  /* Root's socket in the dir, served by another root process than the
     supervisor: refused too. */
  unlink (sock);
  reap (srv);
  srv = spawn_as (0, dir, sock);
  wait_path (sock);
  expect_refused (dir, "not root's supervisor");
  reap (srv);
  reap (root_pid);
  unlink (sock);
  unlink (osock);
  snprintf (sock, sizeof sock, "%s/supervisor.pid", dir);
  unlink (sock);
  rmdir (dir);
  rmdir (other);
}

int
main (int argc, char **argv)
{
  /* spawn_as's "chvm __supervise DIR": waits to be killed. */
  if (argc > 1 && strcmp (argv[1], SUPERVISOR_CMD) == 0)
    {
      pause ();
      return 0;
    }
  self_exe = "/proc/self/exe";
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_requests),
    cmocka_unit_test (test_too_long),
    cmocka_unit_test (test_who_is_the_supervisor),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
