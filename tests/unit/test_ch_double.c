/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ch_api's error paths and proc.c, against tests/doubles/ch_api_double.py:
 * a DECLARED TEST DOUBLE standing in for the Cloud Hypervisor API socket
 * (the real CH cannot be made to fail a snapshot, stall, or send broken
 * JSON on demand).  Each test says which CH behaviour the double plays.
 * Set $CH_API_DOUBLE to the script's path when not run from the repo root.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "clock.h"
#include "sys/proc.h"
#include "vmm/backend.h"
#include "vmm/ch_api.h"

struct dbl
{
  char dir[64], sock[128], record[128];
  pid_t pid;
  struct ch_client c;
};

static void
start_double (struct dbl *d, const char *mode, const char *version)
{
  const char *script = getenv ("CH_API_DOUBLE");
  struct err *e = NULL;
  char log[128];

  if (script == NULL)
    script = "tests/doubles/ch_api_double.py";
  snprintf (d->dir, sizeof d->dir, "/tmp/ch-double-XXXXXX");
  assert_non_null (mkdtemp (d->dir));
  snprintf (d->sock, sizeof d->sock, "%s/api.sock", d->dir);
  snprintf (d->record, sizeof d->record, "%s/requests.jsonl", d->dir);
  snprintf (log, sizeof log, "%s/double.log", d->dir);
  const char *argv[] = { "python3", script,      "--socket", d->sock,   "--mode", mode, "--record",
                         d->record, "--version", version,    "--delay", "3",      NULL };
  if (proc_spawn (argv, log, &d->pid, &e) < 0 || proc_wait_socket (d->pid, d->sock, 10000, &e) < 0)
    fail_msg ("test double did not start: %s", e->msg);
  assert_int_equal (ch_client_init (&d->c, d->sock, &e), 0);
}

static void
stop_double (struct dbl *d)
{
  char cmd[128];

  assert_int_equal (proc_terminate (d->pid, 2000, NULL), 0);
  snprintf (cmd, sizeof cmd, "rm -rf %s", d->dir);
  assert_int_equal (system (cmd), 0);
}

/* The last recorded request body, for checking what the client sent. */
static struct json_object *
last_request (struct dbl *d)
{
  char line[8192], last[8192] = "";
  FILE *f = fopen (d->record, "r");
  struct json_object *o, *body;

  assert_non_null (f);
  while (fgets (line, sizeof line, f) != NULL)
    snprintf (last, sizeof last, "%s", line);
  fclose (f);
  o = json_tokener_parse (last);
  assert_non_null (o);
  assert_true (json_object_object_get_ex (o, "body", &body));
  body = json_tokener_parse (json_object_get_string (body));
  json_object_put (o);
  return body;
}

static void
assert_has (const char *msg, const char *want)
{
  if (strstr (msg, want) == NULL)
    fail_msg ("error \"%s\" lacks \"%s\"", msg, want);
}

/* Double plays a healthy CH v53 that fails vm.snapshot with HTTP 500. */
static void
test_snapshot_500 (void **state)
{
  (void) state;
  struct dbl d = { 0 };
  struct err *e = NULL;
  char v[64];

  start_double (&d, "normal", "v53.0");
  assert_int_equal (ch_ping (&d.c, v, sizeof v, &e), 0);
  assert_int_equal (d.c.version_major, 53);
  assert_int_equal (ch_pause (&d.c, &e), 0);
  assert_true (ch_snapshot (&d.c, "/nonexistent/snapshot", &e) < 0);
  assert_has (e->msg, "vm.snapshot");
  assert_has (e->msg, "HTTP 500");
  assert_has (e->msg, "The VM could not be snapshotted: Cannot snapshot VM: no space left");
  err_release (&e);
  /* vmm.shutdown answered 200 (v4x style) is success. */
  assert_int_equal (ch_vmm_shutdown (&d.c, &e), 0);
  stop_double (&d);
}

/* Double plays CH v53 and v48: vm.restore's v52 fields only go to v52+. */
static void
test_restore_fields_by_version (void **state)
{
  (void) state;
  struct ch_restore_opts o = { .mode = CH_RESTORE_COPY, .resume = true };
  struct json_object *body, *v;
  struct err *e = NULL;
  bool resumed = false;
  struct dbl d = { 0 };
  char ver[64];

  start_double (&d, "normal", "v53.0");
  assert_int_equal (ch_ping (&d.c, ver, sizeof ver, &e), 0);
  assert_int_equal (ch_restore (&d.c, "/s/snapshot", &o, &resumed, &e), 0);
  assert_true (resumed);
  body = last_request (&d);
  assert_true (json_object_object_get_ex (body, "memory_restore_mode", &v));
  assert_string_equal (json_object_get_string (v), "Copy");
  json_object_put (body);
  stop_double (&d);

  start_double (&d, "normal", "v48.0.0");
  assert_int_equal (ch_ping (&d.c, ver, sizeof ver, &e), 0);
  assert_int_equal (d.c.version_major, 48);
  assert_int_equal (ch_restore (&d.c, "/s/snapshot", &o, &resumed, &e), 0);
  assert_false (resumed); /* the caller must send vm.resume itself */
  body = last_request (&d);
  assert_false (json_object_object_get_ex (body, "memory_restore_mode", NULL));
  assert_false (json_object_object_get_ex (body, "resume", NULL));
  assert_true (json_object_object_get_ex (body, "source_url", &v));
  assert_string_equal (json_object_get_string (v), "file:///s/snapshot");
  json_object_put (body);
  stop_double (&d);
}

/* Double plays a CH that answers only after 3 s (a stuck VMM). */
static void
test_slow_answer_times_out (void **state)
{
  (void) state;
  struct ch_vm_info info;
  struct err *e = NULL;
  struct dbl d = { 0 };
  double t0;

  start_double (&d, "slow", "v53.0");
  d.c.timeout_ms = 300;
  t0 = clock_now_ms ();
  assert_true (ch_info (&d.c, &info, &e) < 0);
  assert_true (clock_now_ms () - t0 < 2000);
  assert_int_equal (e->status, ETIMEDOUT);
  assert_has (e->msg, "vm.info");
  assert_has (e->msg, "300 ms");
  err_release (&e);
  stop_double (&d);
}

/* Double plays a CH that sends truncated JSON (vm.info, vmm.ping). */
static void
test_malformed_body (void **state)
{
  (void) state;
  struct ch_vm_info info;
  struct err *e = NULL;
  struct dbl d = { 0 };
  char v[64];

  start_double (&d, "malformed", "v53.0");
  assert_true (ch_info (&d.c, &info, &e) < 0);
  assert_int_equal (e->status, EPROTO);
  assert_has (e->msg, "vm.info: malformed JSON in answer (truncated)");
  err_release (&e);
  assert_true (ch_ping (&d.c, v, sizeof v, &e) < 0);
  assert_has (e->msg, "vmm.ping");
  err_release (&e);
  stop_double (&d);
}

/* Double plays a CH whose vm.info body is 2 MiB (over the cap). */
static void
test_huge_body (void **state)
{
  (void) state;
  struct ch_vm_info info;
  struct err *e = NULL;
  struct dbl d = { 0 };

  start_double (&d, "huge", "v53.0");
  assert_true (ch_info (&d.c, &info, &e) < 0);
  assert_has (e->msg, "vm.info");
  assert_has (e->msg, "exceeds");
  err_release (&e);
  stop_double (&d);
}

/* Double plays a CH that hangs up without answering. */
static void
test_connection_closed (void **state)
{
  (void) state;
  struct err *e = NULL;
  struct dbl d = { 0 };

  start_double (&d, "close", "v53.0");
  assert_true (ch_pause (&d.c, &e) < 0);
  assert_has (e->msg, "vm.pause");
  err_release (&e);
  stop_double (&d);
}

/* No double: nothing listens on the socket. */
static void
test_no_vmm (void **state)
{
  (void) state;
  struct ch_client c;
  struct err *e = NULL;

  assert_int_equal (ch_client_init (&c, "/nonexistent/api.sock", &e), 0);
  assert_true (ch_resume (&c, &e) < 0);
  assert_has (e->msg, "vm.resume: cannot reach cloud-hypervisor at /nonexistent/api.sock");
  err_release (&e);
}

/* proc.c: a process that exits before listening ends the wait at once. */
static void
test_proc_exit_before_socket (void **state)
{
  (void) state;
  const char *argv[] = { "sh", "-c", "exit 3", NULL };
  struct err *e = NULL;
  pid_t pid;
  double t0 = clock_now_ms ();

  assert_int_equal (proc_spawn (argv, "/dev/null", &pid, &e), 0);
  assert_true (proc_wait_socket (pid, "/tmp/never-created.sock", 10000, &e) < 0);
  assert_true (clock_now_ms () - t0 < 5000);
  assert_has (e->msg, "exited with status 3 before listening");
  err_release (&e);
  assert_false (proc_alive_p (pid));
}

/* proc.c: socket wait deadline, terminate, capture, spawn failure. */
static void
test_proc_deadlines (void **state)
{
  (void) state;
  const char *sleeper[] = { "sleep", "60", NULL };
  const char *echo[] = { "sh", "-c", "echo cloud-hypervisor v53.0; echo second", NULL };
  const char *missing[] = { "/nonexistent/binary", NULL };
  struct err *e = NULL;
  char out[64];
  pid_t pid;

  assert_int_equal (proc_spawn (sleeper, "/dev/null", &pid, &e), 0);
  assert_true (proc_wait_socket (pid, "/tmp/never-created.sock", 200, &e) < 0);
  assert_int_equal (e->status, ETIMEDOUT);
  err_release (&e);
  assert_true (proc_alive_p (pid));
  assert_int_equal (proc_wait_exit (pid, 50, NULL, &e), 0);
  assert_int_equal (proc_terminate (pid, 2000, &e), 0);
  assert_false (proc_alive_p (pid));

  assert_int_equal (proc_capture_line (echo, out, sizeof out, 5000, &e), 0);
  assert_string_equal (out, "cloud-hypervisor v53.0");
  assert_true (proc_capture_line (sleeper, out, sizeof out, 200, &e) < 0);
  assert_int_equal (e->status, ETIMEDOUT);
  err_release (&e);
  assert_true (proc_spawn (missing, "/dev/null", &pid, &e) < 0);
  assert_has (e->msg, "/nonexistent/binary");
  err_release (&e);
}

/* A child process plays CH's hybrid vsock socket: it reads the CONNECT
   line and answers `reply` (then "payload" when reply starts with OK). */
static pid_t
vsock_double (const char *path, const char *reply)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int l = socket (AF_UNIX, SOCK_STREAM, 0);
  pid_t pid;

  snprintf (sa.sun_path, sizeof sa.sun_path, "%s", path);
  unlink (path);
  assert_int_equal (bind (l, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (l, 1), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      char line[64] = "";
      int c = accept (l, NULL, NULL);
      ssize_t n = read (c, line, sizeof line - 1);
      if (n <= 0 || strcmp (line, "CONNECT 1024\n") != 0)
        _exit (1);
      if (*reply && write (c, reply, strlen (reply)) < 0)
        _exit (1);
      if (strncmp (reply, "OK", 2) == 0 && write (c, "payload", 7) < 0)
        _exit (1);
      _exit (0);
    }
  close (l);
  return pid;
}

/* backend_ch.agent_connect: CONNECT handshake, no byte of the stream after
   "OK <n>\n" consumed, and a refused port reported. */
static void
test_agent_connect (void **state)
{
  (void) state;
  struct vm_runtime rt = { 0 };
  struct err *e = NULL;
  char buf[16] = "";
  int st, fd;
  pid_t pid;

  snprintf (rt.vsock_socket, sizeof rt.vsock_socket, "/tmp/ch-vsock-test-%d.sock", (int) getpid ());
  pid = vsock_double (rt.vsock_socket, "OK 1073741824\n");
  fd = backend_ch.agent_connect (&rt, 1024, 5000, &e);
  if (fd < 0)
    fail_msg ("agent_connect: %s", e->msg);
  assert_int_equal (read (fd, buf, 7), 7);
  assert_string_equal (buf, "payload");
  close (fd);
  assert_int_equal (waitpid (pid, &st, 0), pid);
  assert_int_equal (st, 0);

  /* CH closes the connection when nothing listens on the guest port. */
  pid = vsock_double (rt.vsock_socket, "");
  assert_true (backend_ch.agent_connect (&rt, 1024, 5000, &e) < 0);
  assert_has (e->msg, "vsock CONNECT 1024: closed by cloud-hypervisor");
  err_release (&e);
  waitpid (pid, &st, 0);

  pid = vsock_double (rt.vsock_socket, "NO\n");
  assert_true (backend_ch.agent_connect (&rt, 1024, 5000, &e) < 0);
  assert_has (e->msg, "unexpected answer \"NO\"");
  err_release (&e);
  waitpid (pid, &st, 0);
  unlink (rt.vsock_socket);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_snapshot_500),
    cmocka_unit_test (test_restore_fields_by_version),
    cmocka_unit_test (test_slow_answer_times_out),
    cmocka_unit_test (test_malformed_body),
    cmocka_unit_test (test_huge_body),
    cmocka_unit_test (test_connection_closed),
    cmocka_unit_test (test_no_vmm),
    cmocka_unit_test (test_proc_exit_before_socket),
    cmocka_unit_test (test_proc_deadlines),
    cmocka_unit_test (test_agent_connect),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
