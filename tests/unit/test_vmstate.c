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

#include "state/probe.h"
#include "state/snapshot.h"
#include "state/vmstate.h"
#include "sys/fs.h"
#include "vmm/backend_qemu.h"

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
  r->rootfs_pmem = true;
  snprintf (r->tap, sizeof r->tap, "chvm-t2");
  snprintf (r->mac, sizeof r->mac, "02:c4:0a:d5:00:02");
  snprintf (r->address, sizeof r->address, "10.213.0.2/24");
  r->agent_vsock_port = 1024;
  r->agent_tcp_port = 1025;
  r->cdp_port = 9222;
  snprintf (r->agent_token, sizeof r->agent_token, "00112233445566778899aabbccddeeff");
  snprintf (r->cdp_endpoint, sizeof r->cdp_endpoint, "127.0.0.1:40001");
  snprintf (r->cdp_token, sizeof r->cdp_token, "ffeeddccbbaa99887766554433221100");
  r->cdp_max_clients = 32;
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
  r->rt.shared_memory = true;
  r->rt.free_page_reporting = true;
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
  assert_non_null (strstr (text, "\"rootfs_device\":\"pmem\""));
  assert_null (strstr (strstr (text, "\"count\"") + 1, "\"count\""));
  free (text);
  free (text2);
}

#define RT "\"runtime\":{\"vmm_pid\":0}"
#define SPEC "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64}"
#define WITH_PUBLISH(entries)                                                                      \
  "{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","                         \
  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"publish\":[" entries "]}," RT "}"

/* A CDP token (or idle standby, or client limit) without an endpoint is
   written back too: fuzz_vmstate found the token dropped. */
static void
test_json_round_trip_token_without_endpoint (void **state)
{
  const char *in = "{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                   "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,"
                   "\"cdp_token\":\"00112233445566778899aabbccddeeff\"}," RT "}";
  struct vm_record a, b;
  struct err *err = NULL;
  char *text = NULL;

  (void) state;
  memset (&a, 0, sizeof a);
  memset (&b, 0, sizeof b);
  assert_int_equal (vmrec_from_json (in, strlen (in), &a, &err), 0);
  assert_string_equal (a.cdp_token, "00112233445566778899aabbccddeeff");
  assert_int_equal (vmrec_to_json (&a, &text, &err), 0);
  assert_int_equal (vmrec_from_json (text, strlen (text), &b, &err), 0);
  assert_memory_equal (&a, &b, sizeof a);
  free (text);
}

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
  /* Nor guest RAM settings: a VM of private memory, no balloon. */
  assert_false (r.rt.shared_memory);
  assert_false (r.rt.free_page_reporting);
  /* Nor a root device: virtio-blk. */
  assert_false (r.rootfs_pmem);
  assert_int_equal (vmrec_from_json (range, strlen (range), &r, &err), 0);
  assert_int_equal (r.publish[0].count, 101);
  assert_true (r.publish[0].udp);
  assert_true (publish_covers (&r.publish[0], true, 56100));
  assert_false (publish_covers (&r.publish[0], true, 56101));
  assert_false (publish_covers (&r.publish[0], false, 56050));
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
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,"
                  "\"rootfs_device\":\"nvme\"}," RT "}",
                  "rootfs_device");
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
  /* The endpoint's token: 32 lowercase hex digits, nothing else. */
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"cdp_token\":"
                  "\"0123456789abcdef0123456789abcdeg\"}," RT "}",
                  "cdp_token");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\","
                  "\"spec\":{\"kernel\":\"/k\",\"cpus\":1,\"memory_mib\":64,\"cdp_token\":"
                  "\"../x\"}," RT "}",
                  "cdp_token");
  expect_refused ("{\"version\":1,\"name\":\"a\",\"backend\":\"q\",\"state\":\"running\"," SPEC
                  ",\"runtime\":{\"vmm_pid\":0,\"shared_memory\":1}}",
                  "\"shared_memory\" is not a boolean");
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
/* A process standing in for a VMM: sh with arg in its argv, waiting on
   its stdin (*stdin_fd; closing it ends sh). */
static pid_t
spawn_with_arg (const char *arg, int *stdin_fd)
{
  int pfd[2], rfd[2];
  char ready[4];
  pid_t pid;

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
      /* `read` is a builtin, so sh itself stays, with arg in its argv; its
         "up" tells the parent that the exec is done. */
      execl ("/bin/sh", "sh", "-c", "echo up; read x", arg, (char *) NULL);
      _exit (127);
    }
  close (pfd[0]);
  close (rfd[1]);
  assert_int_equal (read (rfd[0], ready, 3), 3);
  close (rfd[0]);
  *stdin_fd = pfd[1];
  return pid;
}

static void
test_probe_fake_pid (void **state)
{
  char dir[] = "/tmp/chvm-test-XXXXXX";
  struct vm_record r;
  int stdin_fd;
  pid_t pid, other;

  (void) state;
  assert_non_null (mkdtemp (dir));
  pid = spawn_with_arg (dir, &stdin_fd);
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
  close (stdin_fd); /* sh reads EOF and exits */
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

/* ---- status, interrupted commands, snapshots, image users ------------------- */

static void
write_str (const char *path, const char *text)
{
  FILE *f = fopen (path, "w");
  assert_non_null (f);
  assert_true (fputs (text, f) >= 0);
  assert_int_equal (fclose (f), 0);
}

static void
write_size (const char *path, off_t size)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (ftruncate (fd, size), 0);
  close (fd);
}

static void
expect_err (int r, struct err **err, const char *why)
{
  assert_true (r < 0);
  assert_non_null (*err);
  if (strstr ((*err)->msg, why) == NULL)
    fail_msg ("error '%s' lacks '%s'", (*err)->msg, why);
  err_release (err);
}

static void
rm_rf (const char *path)
{
  char cmd[512];
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", path);
  assert_int_equal (system (cmd), 0);
}

/* A pid file is read only when it is a plain file of the reader's uid with
   one link: a symlink another uid planted (to a file only the reader may
   read), a FIFO (whose open would block the reader, the shim or chvm,
   forever: alarm ends the test), a hard link or a file of another uid gives
   0.  vm.json and a log's last line are not read through a FIFO either. */
static void
test_pid_file_plain_only (void **state)
{
  char dir[] = "/tmp/chvm-pidfile-XXXXXX";
  char real[64], link_[64], fifo[64], hard[64], vms[64], vmdir[80], vmjson[96], line[64];
  struct vm_record r;
  struct err *err = NULL;
  FILE *f;

  (void) state;
  assert_non_null (mkdtemp (dir));
  snprintf (real, sizeof real, "%s/real", dir);
  snprintf (link_, sizeof link_, "%s/vmm.pid", dir);
  snprintf (fifo, sizeof fifo, "%s/fifo", dir);
  snprintf (hard, sizeof hard, "%s/hard", dir);
  snprintf (vms, sizeof vms, "%s/vms", dir);
  snprintf (vmdir, sizeof vmdir, "%s/a", vms);
  snprintf (vmjson, sizeof vmjson, "%s/vm.json", vmdir);
  assert_non_null (f = fopen (real, "w"));
  fputs ("4242\n", f);
  fclose (f);
  assert_int_equal (proc_read_pid_file (real), 4242);
  assert_int_equal (symlink (real, link_), 0);
  assert_int_equal (mkfifo (fifo, 0600), 0);
  alarm (10);
  assert_int_equal (proc_read_pid_file (link_), 0);
  assert_int_equal (proc_read_pid_file (fifo), 0);
  proc_log_last_line (fifo, line, sizeof line);
  assert_string_equal (line, "");
  assert_int_equal (link (real, hard), 0);
  assert_int_equal (proc_read_pid_file (real), 0);
  unlink (hard);
  assert_int_equal (proc_read_pid_file (real), 4242);
  if (geteuid () == 0)
    {
      assert_int_equal (chown (real, 65534, 65534), 0);
      assert_int_equal (proc_read_pid_file (real), 0);
    }
  assert_int_equal (mkdir (vms, 0700), 0);
  assert_int_equal (mkdir (vmdir, 0700), 0);
  assert_int_equal (mkfifo (vmjson, 0600), 0);
  assert_int_equal (vmrec_load (dir, "a", &r, &err), -1);
  err_release (&err);
  alarm (0);
  unlink (vmjson);
  rmdir (vmdir);
  rmdir (vms);
  unlink (real);
  unlink (link_);
  unlink (fifo);
  rmdir (dir);
}

/* VM "a"'s dir is a prefix of VM "ab"'s. */
static void
test_pid_exact_dir (void **state)
{
  static const char ab[] = "cloud-hypervisor\0--api-socket\0path=/s/vms/ab/api.sock\0"
                           "--event-monitor\0path=/s/vms/ab/events.json";
  static const char q[] = "qemu\0-chardev\0socket,id=m,path=/s/vms/a,server=on\0"
                          "-qmp\0unix:/s/vms/a/api.sock,server=on,wait=off";
  static const char other[] = "x\0/t/s/vms/a/api.sock\0/s/vms/a.old/x\0/s/vms/a-b";
  char dir[] = "/tmp/chvm-pid-XXXXXX";
  char dir_a[96], dir_ab[96], arg[128];
  int stdin_fd;
  pid_t pid;

  (void) state;
  assert_false (proc_cmdline_names_dir (ab, sizeof ab, "/s/vms/a"));
  assert_true (proc_cmdline_names_dir (ab, sizeof ab, "/s/vms/ab"));
  assert_true (proc_cmdline_names_dir (ab, sizeof ab, "/s/vms/ab/"));
  assert_true (proc_cmdline_names_dir (q, sizeof q, "/s/vms/a"));
  assert_false (proc_cmdline_names_dir (q, sizeof q, "/s/vms/ab"));
  assert_false (proc_cmdline_names_dir (other, sizeof other, "/s/vms/a"));
  assert_true (proc_cmdline_names_dir ("/s/vms/a", 9, "/s/vms/a"));

  /* The same with a real process, as rm -f a would check it. */
  assert_non_null (mkdtemp (dir));
  snprintf (dir_a, sizeof dir_a, "%s/vms/a", dir);
  snprintf (dir_ab, sizeof dir_ab, "%s/vms/ab", dir);
  snprintf (arg, sizeof arg, "path=%s/api.sock", dir_ab);
  pid = spawn_with_arg (arg, &stdin_fd);
  assert_true (proc_pid_names_dir (pid, dir_ab));
  assert_false (proc_pid_names_dir (pid, dir_a));
  close (stdin_fd);
  assert_int_equal (waitpid (pid, NULL, 0), pid);
  rmdir (dir);
}

/* Killed between recording standby and stopping the VMM. */
static void
test_derive_leftover_standby (void **state)
{
  struct vm_facts f
      = { .recorded = VM_STATUS_STANDBY, .vmm_alive = true, .api_paused = -1, .snapshot = true };

  (void) state;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_STANDBY);
  f.api_paused = 1;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_STANDBY);
  f.vmm_alive = false;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_STANDBY);
  /* A running VM with a stale snapshot stays running. */
  f.vmm_alive = true;
  f.recorded = VM_STATUS_RUNNING;
  f.api_paused = 0;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_RUNNING);
  /* A run killed before it recorded its VMM: created, whatever the API
     says (the next locked command stops that VMM). */
  f.recorded = VM_STATUS_CREATED;
  assert_int_equal (vm_status_derive (&f), VM_STATUS_CREATED);
}

/* snapshot.tmp-* of interrupted standbys are swept, those of a
   live chvm and complete snapshots are not. */
static void
test_sweep_snapshot_tmp (void **state)
{
  char dir[] = "/tmp/chvm-sweep-XXXXXX";
  char path[160], mine[160];
  struct err *err = NULL;
  struct stat st;
  unsigned removed = 9;
  pid_t dead;

  (void) state;
  assert_non_null (mkdtemp (dir));
  dead = fork ();
  assert_true (dead >= 0);
  if (dead == 0)
    _exit (0);
  assert_int_equal (waitpid (dead, NULL, 0), dead);
  snprintf (path, sizeof path, "%s/snapshot.tmp-%d-abcdef", dir, (int) dead);
  assert_int_equal (mkdir (path, 0700), 0);
  snprintf (path, sizeof path, "%s/snapshot.tmp-%d-abcdef/memory-ranges", dir, (int) dead);
  write_str (path, "x");
  snprintf (path, sizeof path, "%s/snapshot.tmp-Xy12ab", dir); /* no pid: older chvm */
  assert_int_equal (mkdir (path, 0700), 0);
  assert_int_equal (vm_snapshot_tmp (dir, mine, sizeof mine, &err), 0);
  snprintf (path, sizeof path, "%s/snapshot", dir);
  assert_int_equal (mkdir (path, 0700), 0);

  assert_int_equal (vm_sweep_snapshot_tmp (dir, &removed, &err), 0);
  assert_int_equal (removed, 2);
  snprintf (path, sizeof path, "%s/snapshot.tmp-%d-abcdef", dir, (int) dead);
  assert_true (stat (path, &st) < 0);
  snprintf (path, sizeof path, "%s/snapshot.tmp-Xy12ab", dir);
  assert_true (stat (path, &st) < 0);
  assert_int_equal (stat (mine, &st), 0); /* ours: we are alive */
  snprintf (path, sizeof path, "%s/snapshot", dir);
  assert_int_equal (stat (path, &st), 0);
  rm_rf (dir);
}

/* A restore refuses a snapshot without its memory. */
static void
test_snapshot_check (void **state)
{
  char dir[] = "/tmp/chvm-snap-XXXXXX";
  char path[160];
  struct err *err = NULL;

  (void) state;
  assert_non_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/config.json", dir);
  write_str (path, "{\"cpus\":{\"boot_vcpus\":1},\"memory\":{\"size\":1048576,"
                   "\"hotplug_size\":null,\"shared\":false,\"zones\":null}}");
  snprintf (path, sizeof path, "%s/state.json", dir);
  write_str (path, "{}");
  expect_err (backend_ch.snapshot_check (dir, &err), &err, "is incomplete: no memory-ranges");
  snprintf (path, sizeof path, "%s/memory-ranges", dir);
  write_size (path, 0);
  expect_err (backend_ch.snapshot_check (dir, &err), &err, "memory-ranges is empty");
  write_size (path, 4096);
  expect_err (backend_ch.snapshot_check (dir, &err), &err,
              "memory-ranges has 4096 bytes, less than config.json's memory size 1048576");
  write_size (path, 1048576);
  assert_int_equal (backend_ch.snapshot_check (dir, &err), 0);
  /* Not all RAM in memory-ranges (a shared backing file): only non-empty. */
  snprintf (path, sizeof path, "%s/config.json", dir);
  write_str (path, "{\"memory\":{\"size\":1073741824,\"shared\":true}}");
  assert_int_equal (backend_ch.snapshot_check (dir, &err), 0);
  snprintf (path, sizeof path, "%s/state.json", dir);
  unlink (path);
  expect_err (backend_ch.snapshot_check (dir, &err), &err, "no state.json");

  expect_err (backend_qemu.snapshot_check (dir, &err), &err, "is incomplete: no memory");
  snprintf (path, sizeof path, "%s/memory", dir);
  write_size (path, 0);
  expect_err (backend_qemu.snapshot_check (dir, &err), &err, "memory is empty");
  write_str (path, "QE");
  expect_err (backend_qemu.snapshot_check (dir, &err), &err, "no QEMU migration stream");
  write_str (path, "QEVM\0\0\0\3");
  assert_int_equal (backend_qemu.snapshot_check (dir, &err), 0);
  rm_rf (dir);
}

static char fsynced[16][160];
static size_t n_fsynced;

static void
record_fsync (const char *path)
{
  if (n_fsynced < 16)
    snprintf (fsynced[n_fsynced++], sizeof fsynced[0], "%s", path);
}

static size_t
fsync_index (const char *path)
{
  for (size_t i = 0; i < n_fsynced; i++)
    if (strcmp (fsynced[i], path) == 0)
      return i;
  fail_msg ("%s was not fsynced", path);
  return 0;
}

/* Each snapshot file, the snapshot dir and, after the rename,
   the VM dir are fsynced, in that order; vm.json's dir after its rename. */
static void
test_fsync_snapshot_and_vmjson (void **state)
{
  char root[] = "/tmp/chvm-fsync-XXXXXX";
  char dir[96], tmp[160], snap[128], path[192], vmjson[128];
  struct vm_record r;
  struct err *err = NULL;
  struct stat st;
  size_t i_mem, i_cfg, i_tmp, i_dir;

  (void) state;
  assert_non_null (mkdtemp (root));
  fill (&r);
  snprintf (dir, sizeof dir, "%s/vms/%s", root, r.name);
  snprintf (path, sizeof path, "%s/vms", root);
  assert_int_equal (mkdir (path, 0700), 0);
  assert_int_equal (mkdir (dir, 0700), 0);
  assert_int_equal (vm_snapshot_tmp (dir, tmp, sizeof tmp, &err), 0);
  snprintf (path, sizeof path, "%s/memory-ranges", tmp);
  write_size (path, 8192);
  snprintf (path, sizeof path, "%s/config.json", tmp);
  write_str (path, "{}");
  snprintf (snap, sizeof snap, "%s/snapshot", dir);

  fs_fsync_hook = record_fsync;
  n_fsynced = 0;
  assert_int_equal (vm_snapshot_commit (tmp, snap, &err), 0);
  fs_fsync_hook = NULL;
  assert_int_equal (n_fsynced, 4);
  snprintf (path, sizeof path, "%s/memory-ranges", tmp);
  i_mem = fsync_index (path);
  snprintf (path, sizeof path, "%s/config.json", tmp);
  i_cfg = fsync_index (path);
  i_tmp = fsync_index (tmp);
  i_dir = fsync_index (dir);
  assert_true (i_mem < i_tmp && i_cfg < i_tmp && i_tmp < i_dir);
  assert_int_equal (stat (snap, &st), 0);
  assert_true (stat (tmp, &st) < 0);

  fs_fsync_hook = record_fsync;
  n_fsynced = 0;
  assert_int_equal (vmrec_save (root, &r, &err), 0);
  fs_fsync_hook = NULL;
  assert_int_equal (n_fsynced, 2);
  snprintf (vmjson, sizeof vmjson, "%s/vm.json.tmp-", dir);
  assert_int_equal (strncmp (fsynced[0], vmjson, strlen (vmjson)), 0);
  assert_string_equal (fsynced[1], dir);
  rm_rf (root);
}

/* QEMU's exec: writer is waited for: memory appears only once
   the writer has written and closed it all. */
static void
test_snapshot_writer (void **state)
{
  char dir[] = "/tmp/chvm-writer-XXXXXX";
  char cmd[512], slow[600], path[128], buf[4096];
  struct err *err = NULL;
  struct stat st;
  int pfd[2];
  pid_t pid;

  (void) state;
  assert_non_null (mkdtemp (dir));
  assert_int_equal (qemu_writer_cmd (dir, "memory", cmd, sizeof cmd, &err), 0);
  /* The writer lags behind the end of the stream, as cat may behind
     QEMU's "completed". */
  snprintf (slow, sizeof slow, "sleep 0.3; %s", cmd);
  assert_int_equal (pipe (pfd), 0);
  pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      dup2 (pfd[0], 0);
      close (pfd[1]);
      execl ("/bin/sh", "sh", "-c", slow, (char *) NULL);
      _exit (127);
    }
  close (pfd[0]);
  memset (buf, 'm', sizeof buf);
  memcpy (buf, "QEVM", 4);
  for (int i = 0; i < 16; i++)
    assert_int_equal (write (pfd[1], buf, sizeof buf), (ssize_t) sizeof buf);
  close (pfd[1]);
  snprintf (path, sizeof path, "%s/memory", dir);
  assert_true (stat (path, &st) < 0); /* not yet */
  assert_int_equal (qemu_writer_wait (dir, "memory", 10000, &err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size, 16 * 4096);
  assert_int_equal (waitpid (pid, NULL, 0), pid);
  assert_int_equal (backend_qemu.snapshot_check (dir, &err), 0);

  /* A writer that fails says so at once. */
  snprintf (path, sizeof path, "%s/sub", dir);
  assert_int_equal (mkdir (path, 0700), 0);
  assert_int_equal (qemu_writer_cmd (path, "memory", cmd, sizeof cmd, &err), 0);
  rmdir (path);
  assert_int_equal (mkdir (path, 0500), 0);
  snprintf (slow, sizeof slow, "%s/memory.part", path);
  assert_int_equal (mkdir (slow, 0700), 0); /* cat cannot open a directory */
  snprintf (slow, sizeof slow, "exec 2>/dev/null; %s", cmd);
  assert_int_equal (system (slow) != -1, 1);
  expect_err (qemu_writer_wait (path, "memory", 10000, &err), &err, "the writer of");
  expect_err (qemu_writer_wait (dir, "nothing", 50, &err), &err, "did not finish in 50 ms");
  assert_int_equal (qemu_writer_cmd ("/a'b", "memory", cmd, sizeof cmd, &err) < 0, 1);
  err_release (&err);
  rm_rf (dir);
}

/* image rm names the VMs using an image. */
static void
test_image_users (void **state)
{
  char root[] = "/tmp/chvm-imgusers-XXXXXX";
  char path[192], img[160], names[64];
  struct vm_record r;
  struct err *err = NULL;
  size_t n = 9;

  (void) state;
  assert_non_null (mkdtemp (root));
  snprintf (path, sizeof path, "%s/vms", root);
  assert_int_equal (mkdir (path, 0700), 0);
  snprintf (img, sizeof img, "%s/images/abcd", root);
  const char *vms[] = { "web-1", "web-2", "other" };
  for (size_t i = 0; i < 3; i++)
    {
      fill (&r);
      snprintf (r.name, sizeof r.name, "%s", vms[i]);
      snprintf (r.rootfs, sizeof r.rootfs, "%s%s/rootfs.ext4", img, i == 2 ? "ef" : "");
      snprintf (path, sizeof path, "%s/vms/%s", root, vms[i]);
      assert_int_equal (mkdir (path, 0700), 0);
      assert_int_equal (vmrec_save (root, &r, &err), 0);
    }
  assert_int_equal (vmstate_image_users (root, img, names, sizeof names, &n, &err), 0);
  assert_int_equal (n, 2);
  assert_string_equal (names, "web-1, web-2");
  snprintf (path, sizeof path, "%s/images/abcdef", root);
  assert_int_equal (vmstate_image_users (root, path, names, sizeof names, &n, &err), 0);
  assert_int_equal (n, 1);
  assert_string_equal (names, "other");
  snprintf (path, sizeof path, "%s/images/0000", root);
  assert_int_equal (vmstate_image_users (root, path, names, sizeof names, &n, &err), 0);
  assert_int_equal (n, 0);
  assert_string_equal (names, "");
  rm_rf (root);
}

/* Where the guest's DevTools answers: a tap VM's own address, else the
   publish covering cdp_port (0.0.0.0 seen as 127.0.0.1), else none. */
static void
test_cdp_upstream (void **state)
{
  static struct vm_record r;
  char host[64];
  unsigned port = 0;

  (void) state;
  memset (&r, 0, sizeof r);
  r.cdp_port = 9222;
  assert_int_equal (vm_cdp_upstream (&r, host, sizeof host, &port), -1);
  r.publish[0] = (struct publish){
    .host_addr = "0.0.0.0", .host_port = 19000, .guest_port = 9220, .count = 5
  };
  r.publish[1] = (struct publish){
    .host_addr = "10.0.0.1", .host_port = 9222, .guest_port = 9222, .udp = true
  };
  r.n_publish = 2;
  assert_int_equal (vm_cdp_upstream (&r, host, sizeof host, &port), 0);
  assert_string_equal (host, "127.0.0.1");
  assert_int_equal (port, 19002);
  snprintf (r.address, sizeof r.address, "10.213.0.2/24");
  assert_int_equal (vm_cdp_upstream (&r, host, sizeof host, &port), 0);
  assert_string_equal (host, "10.213.0.2");
  assert_int_equal (port, 9222);
  assert_int_equal (vm_cdp_upstream (&r, host, 8, &port), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_json_round_trip),
    cmocka_unit_test (test_json_round_trip_token_without_endpoint),
    cmocka_unit_test (test_json_refusals),
    cmocka_unit_test (test_json_publish_ranges),
    cmocka_unit_test (test_derive),
    cmocka_unit_test (test_probe_fake_pid),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_memory),
    cmocka_unit_test (test_save_load_list_lock),
    cmocka_unit_test (test_pid_exact_dir),
    cmocka_unit_test (test_pid_file_plain_only),
    cmocka_unit_test (test_derive_leftover_standby),
    cmocka_unit_test (test_sweep_snapshot_tmp),
    cmocka_unit_test (test_snapshot_check),
    cmocka_unit_test (test_fsync_snapshot_and_vmjson),
    cmocka_unit_test (test_snapshot_writer),
    cmocka_unit_test (test_image_users),
    cmocka_unit_test (test_cdp_upstream),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
