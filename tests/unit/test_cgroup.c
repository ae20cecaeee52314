/* SPDX-License-Identifier: Apache-2.0 */
/* A VM's cgroup v2: finding the hierarchy, the VM's name and limits, and
   (as root on a host with a cgroup2 mount) a VMM started in it and killed
   with it. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "sys/cgroup.h"
#include "sys/proc.h"
#include "vm/vmmuser.h"

static void
test_mountinfo (void **state)
{
  char out[256];
  static const char hybrid[]
      = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
  static const char escaped[] = "50 1 0:40 / /tmp/cg\\040two rw - cgroup2 none rw\n";
  static const char v1_only[] = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
                                "60 1 0:50 / /mnt/x rw - ext4 /dev/cgroup2 rw\n";

  (void) state;
  assert_int_equal (cgroup_parse_mountinfo (hybrid, out, sizeof out), 1);
  assert_string_equal (out, "/sys/fs/cgroup/unified");
  assert_int_equal (cgroup_parse_mountinfo (escaped, out, sizeof out), 1);
  assert_string_equal (out, "/tmp/cg two");
  assert_int_equal (cgroup_parse_mountinfo (v1_only, out, sizeof out), 0);
  assert_int_equal (cgroup_parse_mountinfo ("", out, sizeof out), 0);
  /* Truncated to the buffer, never past it. */
  assert_int_equal (cgroup_parse_mountinfo (hybrid, out, 5), 1);
  assert_string_equal (out, "/sys");
}

static void
test_events_and_cpu_max (void **state)
{
  char v[32];

  (void) state;
  assert_true (cgroup_events_populated ("populated 1\nfrozen 0\n"));
  assert_false (cgroup_events_populated ("populated 0\nfrozen 0\n"));
  assert_false (cgroup_events_populated ("frozen 0\nunpopulated 1\n"));
  assert_false (cgroup_events_populated (""));
  cgroup_cpu_max (2, v, sizeof v);
  assert_string_equal (v, "200000 100000");
  cgroup_cpu_max (0, v, sizeof v);
  assert_string_equal (v, "max 100000");
}

/* Parses what the kernel writes (cgroup v2, Linux 6.1) and refuses
   anything else with an error naming the file. */
static void
test_stats_parse (void **state)
{
  static const char cpu[] = "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n"
                            "core_sched.force_idle_usec 0\nnr_periods 7\nnr_throttled 2\n"
                            "throttled_usec 99\nnr_bursts 0\nburst_usec 0\n";
  struct cgroup_stats s = { 0 };
  struct err *err = NULL;

  (void) state;
  assert_int_equal (cgroup_stats_parse ("cpu.stat", cpu, strlen (cpu), &s, &err), 0);
  assert_int_equal (s.cpu_usage_usec, 1234);
  assert_int_equal (s.cpu_user_usec, 1000);
  assert_int_equal (s.cpu_system_usec, 234);
  assert_int_equal (s.cpu_nr_periods, 7);
  assert_int_equal (s.cpu_nr_throttled, 2);
  assert_int_equal (s.cpu_throttled_usec, 99);
  assert_int_equal (cgroup_stats_parse ("memory.current", "4096\n", 5, &s, &err), 0);
  assert_int_equal (s.memory_usage, 4096);
  assert_int_equal (cgroup_stats_parse ("memory.max", "max\n", 4, &s, &err), 0);
  assert_true (s.memory_limit == UINT64_MAX);
  assert_int_equal (cgroup_stats_parse ("pids.max", "1024", 4, &s, &err), 0);
  assert_int_equal (s.pids_limit, 1024);
  assert_int_equal (cgroup_stats_parse ("pids.current", "3\n", 2, &s, &err), 0);
  assert_int_equal (s.pids_current, 3);
  /* Bounded: only len bytes count ("3" of "3\n"). */
  assert_int_equal (cgroup_stats_parse ("pids.current", "12", 1, &s, &err), 0);
  assert_int_equal (s.pids_current, 1);

  /* "max" is only a limit; no blanks, signs, empties or overflow. */
  static const struct
  {
    const char *file, *text, *msg;
  } bad[] = {
    { "pids.current", "max\n", "pids.current: not a number" },
    { "memory.current", "", "memory.current: not a number" },
    { "memory.max", " 5\n", "memory.max: not a number or max" },
    { "memory.max", "18446744073709551616\n", "memory.max: not a number or max" },
    { "pids.max", "-1\n", "pids.max: not a number or max" },
    { "cpu.stat", "usage_usec 12\nuser_usec\n", "cpu.stat line 2: not \"KEY VALUE\"" },
    { "cpu.stat", "usage_usec x1\n", "cpu.stat line 1: not \"KEY VALUE\"" },
    { "cpu.stat", " 5\n", "cpu.stat line 1: not \"KEY VALUE\"" },
    { "cgroup.procs", "1\n", "cgroup.procs: not a cgroup file chvm reads" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      assert_true (cgroup_stats_parse (bad[i].file, bad[i].text, strlen (bad[i].text), &s, &err)
                   < 0);
      assert_non_null (err);
      assert_string_equal (err->msg, bad[i].msg);
      err_release (&err);
    }
}

/* cgroup_stats_read on a directory of such files: absent ones (a
   controller not enabled) count 0, a missing cgroup is an error. */
static void
test_stats_read (void **state)
{
  char dir[] = "/tmp/chvm-test-cgstats-XXXXXX", p[128];
  struct cgroup_stats s;
  struct err *err = NULL;
  FILE *f;

  (void) state;
  assert_non_null (mkdtemp (dir));
  snprintf (p, sizeof p, "%s/cpu.stat", dir);
  assert_non_null (f = fopen (p, "w"));
  fputs ("usage_usec 50\nuser_usec 30\nsystem_usec 20\n", f);
  fclose (f);
  snprintf (p, sizeof p, "%s/memory.max", dir);
  assert_non_null (f = fopen (p, "w"));
  fputs ("max\n", f);
  fclose (f);
  assert_int_equal (cgroup_stats_read (dir, &s, &err), 0);
  assert_int_equal (s.cpu_usage_usec, 50);
  assert_true (s.memory_limit == UINT64_MAX);
  assert_int_equal (s.pids_current, 0);
  snprintf (p, sizeof p, "%s/pids.max", dir);
  assert_non_null (f = fopen (p, "w"));
  fputs ("lots\n", f);
  fclose (f);
  assert_true (cgroup_stats_read (dir, &s, &err) < 0);
  assert_non_null (strstr (err->msg, "pids.max: not a number or max"));
  err_release (&err);
  unlink (p);
  snprintf (p, sizeof p, "%s/cpu.stat", dir);
  unlink (p);
  snprintf (p, sizeof p, "%s/memory.max", dir);
  unlink (p);
  rmdir (dir);
  assert_true (cgroup_stats_read (dir, &s, &err) < 0);
  assert_int_equal (err->status, ENOENT);
  err_release (&err);
}

static void
test_vm_name_and_limits (void **state)
{
  struct vm_record r
      = { .name = "web", .backend = "cloud-hypervisor", .cpus = 2, .memory_mib = 2048 };
  struct cgroup_limits l;
  char a[128], b[128], c[128];

  (void) state;
  vmmuser_cgroup_leaf ("web", "/var/lib/chvm/vms/web", a, sizeof a);
  vmmuser_cgroup_leaf ("web", "/var/lib/chvm/vms/web", b, sizeof b);
  vmmuser_cgroup_leaf ("web", "/tmp/other/vms/web", c, sizeof c);
  assert_string_equal (a, b);
  assert_string_not_equal (a, c); /* two state dirs, one name */
  assert_int_equal (strncmp (a, "web-", 4), 0);
  assert_int_equal (strlen (a), 4 + 16);
  {
    /* The dir as typed with a trailing slash, or through a link, names the
       same cgroup as the dir itself. */
    char d[] = "/tmp/chvm-leaf-XXXXXX", slash[64], link[64];
    assert_non_null (mkdtemp (d));
    snprintf (slash, sizeof slash, "%s/", d);
    snprintf (link, sizeof link, "%s.link", d);
    assert_int_equal (symlink (d, link), 0);
    vmmuser_cgroup_leaf ("web", d, a, sizeof a);
    vmmuser_cgroup_leaf ("web", slash, b, sizeof b);
    vmmuser_cgroup_leaf ("web", link, c, sizeof c);
    assert_string_equal (a, b);
    assert_string_equal (a, c);
    unlink (link);
    rmdir (d);
  }
  vmmuser_cgroup_limits (&r, &l);
  assert_int_equal (l.cpus, 2);
  assert_int_equal (l.memory_bytes, (uint64_t) (2048 + VMMUSER_OVERHEAD_CH_MIB) << 20);
  assert_int_equal (l.pids, VMMUSER_PIDS_MAX);
  snprintf (r.backend, sizeof r.backend, "qemu");
  vmmuser_cgroup_limits (&r, &l);
  assert_int_equal (l.memory_bytes, (uint64_t) (2048 + VMMUSER_OVERHEAD_QEMU_MIB) << 20);
}

/* Whether /proc/pid/cgroup's v2 line names leaf. */
static bool
in_cgroup (pid_t pid, const char *leaf)
{
  char path[64], buf[4096];
  FILE *f;
  size_t n;

  snprintf (path, sizeof path, "/proc/%d/cgroup", (int) pid);
  f = fopen (path, "re");
  if (f == NULL)
    return false;
  n = fread (buf, 1, sizeof buf - 1, f);
  fclose (f);
  buf[n] = '\0';
  return strstr (buf, leaf) != NULL;
}

static void
test_spawn_into_and_kill (void **state)
{
  const char *const argv[] = { "sh", "-c", "setsid sleep 1000 & exec sleep 1000", NULL };
  struct cgroup_limits l = { .cpus = 1, .memory_bytes = 64 << 20, .pids = 16 };
  char root[CGROUP_PATH_MAX], path[CGROUP_PATH_MAX], leaf[64], missing[64];
  char log[] = "/tmp/test_cgroup.XXXXXX";
  struct err *err = NULL;
  struct stat st;
  int fd;
  pid_t pid;

  (void) state;
  if (geteuid () != 0 || cgroup_root (root, sizeof root, &err) < 0)
    {
      err_release (&err);
      skip ();
    }
  fd = mkstemp (log);
  assert_true (fd >= 0);
  close (fd);
  snprintf (leaf, sizeof leaf, "unit-test-%d", (int) getpid ());
  assert_int_equal (cgroup_create (leaf, &l, path, sizeof path, missing, sizeof missing, &err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (proc_spawn_vmm (argv, log, NULL, path, &pid, &err), 0);
  /* In it from before exec; so is what it forks and setsids away. */
  assert_true (in_cgroup (pid, leaf));
  assert_true (in_cgroup (getpid (), leaf) == false);
  assert_int_equal (cgroup_destroy (path, 5000, &err), 0);
  assert_int_equal (proc_wait_exit (pid, 5000, NULL, &err), 1);
  assert_int_equal (stat (path, &st), -1);
  assert_int_equal (errno, ENOENT);
  /* Gone already: nothing to do. */
  assert_int_equal (cgroup_destroy (path, 5000, &err), 0);
  unlink (log);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mountinfo),          cmocka_unit_test (test_events_and_cpu_max),
    cmocka_unit_test (test_stats_parse),        cmocka_unit_test (test_stats_read),
    cmocka_unit_test (test_vm_name_and_limits), cmocka_unit_test (test_spawn_into_and_kill),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
