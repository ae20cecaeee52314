/* SPDX-License-Identifier: Apache-2.0 */
/* vm.json round trip and refusals, status derivation (including a real
   process standing in for a VMM), names, memory sizes, the state lock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmstate.h"

static void
fill (struct vm_record *r)
{
  memset (r, 0, sizeof *r);
  snprintf (r->name, sizeof r->name, "web-1");
  snprintf (r->backend, sizeof r->backend, "qemu");
  snprintf (r->image, sizeof r->image, "oci:/x/y:latest");
  r->created = 1700000000;
  r->state = VM_STATUS_PAUSED;
  r->cpus = 2;
  r->memory_mib = 2048;
  snprintf (r->kernel, sizeof r->kernel, "/k/vmlinuz");
  snprintf (r->initrd, sizeof r->initrd, "/k/initrd.cpio.gz");
  snprintf (r->cmdline, sizeof r->cmdline, "console=ttyS0 quiet \"x\"");
  snprintf (r->rootfs, sizeof r->rootfs, "/s/images/ab/rootfs.ext4");
  snprintf (r->config_disk, sizeof r->config_disk, "/s/vms/web-1/config.img");
  snprintf (r->overlay, sizeof r->overlay, "tmpfs");
  snprintf (r->tap, sizeof r->tap, "chvm-t2");
  snprintf (r->mac, sizeof r->mac, "02:c4:0a:d5:00:02");
  snprintf (r->address, sizeof r->address, "10.213.0.2/24");
  r->agent_vsock_port = 1024;
  r->agent_tcp_port = 1025;
  r->cdp_port = 9222;
  snprintf (r->agent_token, sizeof r->agent_token, "00112233445566778899aabbccddeeff");
  r->n_publish = 3;
  snprintf (r->publish[0].host_addr, sizeof r->publish[0].host_addr, "127.0.0.1");
  r->publish[0].host_port = 9222;
  r->publish[0].guest_port = 9222;
  r->publish[0].count = 1;
  snprintf (r->publish[1].host_addr, sizeof r->publish[1].host_addr, "::1");
  r->publish[1].host_port = 5353;
  r->publish[1].guest_port = 53;
  r->publish[1].count = 1;
  r->publish[1].udp = true;
  /* neko's media ports, shifted on the host side */
  snprintf (r->publish[2].host_addr, sizeof r->publish[2].host_addr, "0.0.0.0");
  r->publish[2].host_port = 46000;
  r->publish[2].guest_port = 56000;
  r->publish[2].count = 101;
  r->publish[2].udp = true;
  r->rt.vmm_pid = 4242;
  snprintf (r->rt.api_socket, sizeof r->rt.api_socket, "/s/vms/web-1/api.sock");
  r->rt.agent_host_port = 40000;
  snprintf (r->rt.version, sizeof r->rt.version, "qemu 7.2.22");
}

static void
test_json_round_trip (void **state)
{
  struct vm_record a, b;
  struct err *err = NULL;
  char *text = NULL, *text2 = NULL;

  (void) state;
  fill (&a);
  assert_int_equal (vmrec_to_json (&a, &text, &err), 0);
  assert_int_equal (vmrec_from_json (text, strlen (text), &b, &err), 0);
  assert_memory_equal (&a, &b, sizeof a); /* fill() zeroed padding too */
  assert_int_equal (vmrec_to_json (&b, &text2, &err), 0);
  assert_string_equal (text, text2);
  /* A range is one entry with a count; single ports are written as before. */
  assert_non_null (strstr (text, "\"count\":101"));
  assert_null (strstr (strstr (text, "\"count\"") + 1, "\"count\""));
  free (text);
  free (text2);
}

#define RT "\"runtime\":{\"vmm_pid\":0}"
#define SPEC "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64}"
#define WITH_PUBLISH(entries)                                                                      \
  "{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","                         \
  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"publish\":[" entries "]}," RT "}"

static void
test_json_publish_ranges (void **state)
{
  /* Written before ranges existed: no "count". */
  const char *old = WITH_PUBLISH (
      "{\"host_addr\":\"127.0.0.1\",\"host_port\":8080,\"guest_port\":80,\"proto\":\"tcp\"}");
  const char *range
      = WITH_PUBLISH ("{\"host_addr\":\"127.0.0.1\",\"host_port\":56000,\"guest_port\":56000,"
                      "\"proto\":\"udp\",\"count\":101}");
  struct vm_record r;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (vmrec_from_json (old, strlen (old), &r, &err), 0);
  assert_int_equal (r.n_publish, 1);
  assert_int_equal (r.publish[0].host_port, 8080);
  assert_int_equal (r.publish[0].guest_port, 80);
  assert_int_equal (r.publish[0].count, 1);
  assert_false (r.publish[0].udp);
  assert_int_equal (vmrec_from_json (range, strlen (range), &r, &err), 0);
  assert_int_equal (r.publish[0].count, 101);
  assert_true (r.publish[0].udp);
  assert_true (vm_publish_covers (&r.publish[0], true, 56100));
  assert_false (vm_publish_covers (&r.publish[0], true, 56101));
  assert_false (vm_publish_covers (&r.publish[0], false, 56050));
}

static void
expect_refused (const char *json, const char *why)
{
  struct vm_record r;
  struct err *err = NULL;

  assert_true (vmrec_from_json (json, strlen (json), &r, &err) < 0);
  assert_non_null (err);
  if (strstr (err->msg, why) == NULL)
    fail_msg ("'%s': error '%s' lacks '%s'", json, err->msg, why);
  err_release (&err);
}

static void
test_json_refusals (void **state)
{
  struct vm_record r;
  struct err *err = NULL;
  const char *ok = "{\"version\":1,\"name\":\"a\",\"backend\":\"qemu\",\"state\":\"stopped\"," SPEC
                   "," RT "}\n\n";

  (void) state;
  assert_int_equal (vmrec_from_json (ok, strlen (ok), &r, &err), 0);
  assert_int_equal (r.state, VM_STATUS_STOPPED);
  expect_refused ("", "not valid JSON");
  expect_refused ("[1]", "not a JSON object");
  expect_refused ("{\"version\":1} x", "data after");
  expect_refused ("{\"version\":2}", "version");
  expect_refused ("{\"version\":1,\"name\":\"../x\",\"backend\":\"q\",\"state\":\"running\"}",
                  "invalid VM name");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"weird\"}",
                  "unknown state");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":7,\"state\":\"running\"}",
                  "not a string");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\",\"cpus\":0,\"memory_mib\":64}," RT "}",
                  "cpus");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\\u0000x\",\"cpus\":1,\"memory_mib\":64}," RT "}",
                  "NUL");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"publish\":"
                  "[{\"host_addr\":\"x\",\"proto\":\"sctp\",\"host_port\":1,\"guest_port\":1}]}," RT
                  "}",
                  "tcp or udp");
  expect_refused (WITH_PUBLISH ("{\"host_addr\":\"x\",\"proto\":\"udp\",\"host_port\":1,"
                                "\"guest_port\":1,\"count\":0}"),
                  "\"count\" out of range");
  expect_refused (WITH_PUBLISH ("{\"host_addr\":\"x\",\"proto\":\"udp\",\"host_port\":1,"
                                "\"guest_port\":1,\"count\":\"5\"}"),
                  "\"count\" is not an integer");
  expect_refused (WITH_PUBLISH ("{\"host_addr\":\"x\",\"proto\":\"udp\",\"host_port\":65500,"
                                "\"guest_port\":1,\"count\":100}"),
                  "past port 65535");
  expect_refused (WITH_PUBLISH ("{\"host_addr\":\"x\",\"proto\":\"udp\",\"host_port\":1,"
                                "\"guest_port\":65535,\"count\":2}"),
                  "past port 65535");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\"," SPEC
                  ",\"runtime\":{\"vmm_pid\":-5}}",
                  "vmm_pid");
  {
    /* A string longer than its field is refused, not truncated. */
    char big[2048 + 200];
    char k[2048];
    memset (k, 'a', sizeof k - 1);
    k[sizeof k - 1] = '\0';
    snprintf (big, sizeof big,
              "{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
              "\"spec\":{\"kernel\":\"%s\",\"cpus\":1,\"memory_mib\":64}," RT "}",
              k);
    expect_refused (big, "too long");
  }
}

static void
test_derive (void **state)
{
  struct vm_facts f = { .api_paused = -1 };

  (void) state;
  f.recorded = VM_STATUS_RUNNING;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_DEAD);
  f.vmm_alive = true;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_RUNNING);
  f.api_paused = 1;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_PAUSED);
  f.recorded = VM_STATUS_PAUSED;
  f.api_paused = -1;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_PAUSED);
  f.api_paused = 0;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_RUNNING);
  f.vmm_alive = false;
  f.recorded = VM_STATUS_STANDBY;
  f.snapshot = true;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_STANDBY);
  f.snapshot = false;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_DEAD);
  f.recorded = VM_STATUS_STOPPED;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_STOPPED);
  f.recorded = VM_STATUS_PAUSED;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_DEAD);
}

static int fake_api_answer;

static int
fake_api (const struct vm_record *r)
{
  (void) r;
  return fake_api_answer;
}

/* A real process whose cmdline names the VM dir stands in for the VMM; a
   process that does not name it (a recycled pid) must not count. */
static void
test_probe_fake_pid (void **state)
{
  char dir[] = "/tmp/chvm-test-XXXXXX";
  struct vm_record r;
  int pfd[2], rfd[2];
  pid_t pid, other;
  char ready[8];

  (void) state;
  assert_non_null (mkdtemp (dir));
  assert_int_equal (pipe (pfd), 0);
  assert_int_equal (pipe (rfd), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      dup2 (pfd[0], 0);
      dup2 (rfd[1], 1);
      close (pfd[1]);
      close (rfd[0]);
      /* `read` is a builtin, so sh itself stays, with dir in its argv; its
         "up" tells the parent that the exec is done. */
      execl ("/bin/sh", "sh", "-c", "echo up; read x", dir, (char *) NULL);
      _exit (127);
    }
  close (pfd[0]);
  close (rfd[1]);
  assert_int_equal (read (rfd[0], ready, 3), 3);
  close (rfd[0]);
  other = getppid ();
  fill (&r);
  r.rt.vmm_pid = pid;
  r.state = VM_STATUS_RUNNING;
  fake_api_answer = -1;
  assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_RUNNING);
  fake_api_answer = 1;
  assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_PAUSED);
  r.rt.vmm_pid = other;
  assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_DEAD);
  r.rt.vmm_pid = pid;
  close (pfd[1]); /* sh reads EOF and exits */
  assert_int_equal (waitpid (pid, NULL, 0), pid);
  assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_DEAD);
  r.state = VM_STATUS_STANDBY;
  assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_DEAD);
  {
    char snap[64];
    snprintf (snap, sizeof snap, "%s/snapshot", dir);
    assert_int_equal (mkdir (snap, 0700), 0);
    assert_int_equal (vm_probe (dir, &r, fake_api), VM_STATUS_STANDBY);
    rmdir (snap);
  }
  rmdir (dir);
}

static void
test_names (void **state)
{
  struct err *err = NULL;
  char long_name[80];

  (void) state;
  assert_int_equal (vm_name_check ("a", &err), 0);
  assert_int_equal (vm_name_check ("Web_1.test-2", &err), 0);
  memset (long_name, 'x', sizeof long_name);
  long_name[VM_NAME_MAX] = '\0';
  assert_int_equal (vm_name_check (long_name, &err), 0);
  long_name[VM_NAME_MAX] = 'x';
  long_name[VM_NAME_MAX + 1] = '\0';
  const char *bad[] = { "", "-a", ".a", "_a", "a/b", "..", "a b", "a\n", long_name, "é" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      assert_true (vm_name_check (bad[i], &err) < 0);
      assert_non_null (strstr (err->msg, "invalid VM name"));
      err_release (&err);
    }
}

static void
test_memory (void **state)
{
  struct err *err = NULL;
  uint64_t m;

  (void) state;
  assert_int_equal (vm_parse_memory ("2G", &m, &err), 0);
  assert_int_equal (m, 2048);
  assert_int_equal (vm_parse_memory ("512M", &m, &err), 0);
  assert_int_equal (m, 512);
  assert_int_equal (vm_parse_memory ("1536", &m, &err), 0);
  assert_int_equal (m, 1536);
  assert_int_equal (vm_parse_memory ("2GiB", &m, &err), 0);
  assert_int_equal (m, 2048);
  assert_int_equal (vm_parse_memory ("1T", &m, &err), 0);
  assert_int_equal (m, 1048576);
  const char *bad[] = { "", "0", "0G", "2X", "-1G", "1.5G", "G", "2T", "99999999999999999999G" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      if (vm_parse_memory (bad[i], &m, &err) == 0)
        fail_msg ("'%s' accepted as %llu MiB", bad[i], (unsigned long long) m);
      assert_non_null (strstr (err->msg, "bad memory size"));
      err_release (&err);
    }
}

static void
test_save_load_list_lock (void **state)
{
  char root[] = "/tmp/chvm-state-XXXXXX";
  char path[128];
  struct vm_record a, b;
  struct err *err = NULL;
  char **names;
  size_t n;
  int fd, fd2;

  (void) state;
  assert_non_null (mkdtemp (root));
  char got[256];
  assert_int_equal (vmstate_root (root, got, sizeof got, &err), 0);
  assert_string_equal (got, root);
  fill (&a);
  snprintf (path, sizeof path, "%s/vms/%s", root, a.name);
  assert_int_equal (mkdir (path, 0700), 0);
  assert_int_equal (vmrec_save (root, &a, &err), 0);
  assert_int_equal (vmrec_load (root, a.name, &b, &err), 0);
  assert_memory_equal (&a, &b, sizeof a);
  assert_true (vmrec_load (root, "nope", &b, &err) < 0);
  assert_non_null (strstr (err->msg, "no such VM 'nope'"));
  err_release (&err);
  snprintf (path, sizeof path, "%s/vms/zz", root);
  mkdir (path, 0700);
  snprintf (path, sizeof path, "%s/vms/.hidden", root);
  mkdir (path, 0700);
  assert_int_equal (vmstate_list (root, &names, &n, &err), 0);
  assert_int_equal (n, 2);
  assert_string_equal (names[0], "web-1");
  assert_string_equal (names[1], "zz");
  vmstate_list_free (names, n);

  fd = vmstate_lock (root, 1000, &err);
  assert_true (fd >= 0);
  /* Held by another open file description: a second locker times out. */
  fd2 = vmstate_lock (root, 50, &err);
  assert_true (fd2 < 0);
  assert_non_null (strstr (err->msg, "another chvm command"));
  err_release (&err);
  close (fd);
  fd2 = vmstate_lock (root, 50, &err);
  assert_true (fd2 >= 0);
  close (fd2);

  snprintf (path, sizeof path, "rm -rf '%s'", root);
  assert_int_equal (system (path), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_json_round_trip),
    cmocka_unit_test (test_json_refusals),
    cmocka_unit_test (test_json_publish_ranges),
    cmocka_unit_test (test_derive),
    cmocka_unit_test (test_probe_fake_pid),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_memory),
    cmocka_unit_test (test_save_load_list_lock),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
