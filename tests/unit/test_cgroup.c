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
    cmocka_unit_test (test_mountinfo),
    cmocka_unit_test (test_events_and_cpu_max),
    cmocka_unit_test (test_vm_name_and_limits),
    cmocka_unit_test (test_spawn_into_and_kill),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
