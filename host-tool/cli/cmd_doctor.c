/* SPDX-License-Identifier: Apache-2.0 */
/* chvm doctor: what this host can run, and exactly why not (the kvm_pvm
   software KVM, missing devices, missing hypervisors or guest files). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli/commands.h"
#include "cli/report.h"
#include "sys/cgroup.h"
#include "sys/json.h"
#include "sys/proc.h"
#include "vm/vmctl.h"
#include "vmm/ch_api.h"

struct check
{
  const char *name;
  bool ok;
  char detail[512];
};

#define MAX_CHECKS 24

static struct check *
add (struct check *c, size_t *n, const char *name)
{
  struct check *k = &c[(*n)++];
  k->name = name;
  k->ok = false;
  k->detail[0] = '\0';
  return k;
}

static void
device (struct check *c, size_t *n, const char *path, const char *use)
{
  struct check *k = add (c, n, path);
  struct stat st;

  k->ok = stat (path, &st) == 0;
  if (!k->ok)
    snprintf (k->detail, sizeof k->detail, "missing (%s)", use);
  else if (access (path, R_OK | W_OK) < 0)
    {
      k->ok = false;
      snprintf (k->detail, sizeof k->detail, "present, no access: %s (%s)", strerror (errno), use);
    }
  else
    snprintf (k->detail, sizeof k->detail, "present (%s)", use);
}

static void
version_of (struct check *c, size_t *n, const char *name, const char *bin, const char *why_no)
{
  struct check *k = add (c, n, name);
  const char *const argv[] = { bin, "--version", NULL };
  cleanup_err struct err *err = NULL;

  k->ok = proc_capture_line (argv, k->detail, sizeof k->detail, 5000, &err) == 0
          && k->detail[0] != '\0';
  if (!k->ok)
    snprintf (k->detail, sizeof k->detail, "%s not found or not runnable (%s)", bin, why_no);
}

/* Whether this host is itself a VM: the CPUID hypervisor bit, which the
   kernel shows as the "hypervisor" flag.  KVM there is nested: kvm_amd or
   kvm_intel on the virtualization extensions the outer hypervisor
   emulates or passes through (a KVM host under QEMU -cpu max, a cloud VM
   with nested virtualization); it runs Linux guests as hardware KVM does. */
static bool
host_is_vm (void)
{
  cleanup_file FILE *f = fopen ("/proc/cpuinfo", "re");
  char line[4096];

  while (f != NULL && fgets (line, sizeof line, f) != NULL)
    if (strncmp (line, "flags", 5) == 0)
      return strstr (line, " hypervisor") != NULL;
  return false;
}

static void
guest_file (struct check *c, size_t *n, const char *name, const char *rel)
{
  struct check *k = add (c, n, name);
  cleanup_err struct err *err = NULL;
  char path[VM_PATH_MAX];
  struct stat st;

  if (cli_data_path (rel, path, sizeof path, &err) < 0)
    {
      snprintf (k->detail, sizeof k->detail, "%s", err->msg);
      return;
    }
  k->ok = stat (path, &st) == 0;
  snprintf (k->detail, sizeof k->detail, "%.400s%s", path,
            k->ok ? "" : ": missing (make setup, or set CHVM_DATA_DIR)");
}

/* CH v49+ saves each vCPU's nested-virtualisation state in a snapshot
   (KVM_GET_NESTED_STATE); kvm_pvm answers EINVAL, so vm.snapshot fails
   there while v48 snapshots fine (docs/FINDINGS.md). */
static void
ch_snapshot_check (struct check *c, size_t *n, const struct check *ch_version)
{
  struct check *k;
  struct stat st;
  int major = 0, minor = 0;

  if (!ch_version->ok || ch_parse_version (ch_version->detail, &major, &minor) < 0)
    return;
  k = add (c, n, "ch snapshot");
  k->ok = major < 49 || stat ("/sys/module/kvm_pvm", &st) < 0;
  snprintf (k->detail, sizeof k->detail, "%s",
            k->ok ? "supported"
                  : "CH v49+ needs KVM_GET_NESTED_STATE, which kvm_pvm refuses: "
                    "vm.snapshot fails (v48 snapshots on this host)");
}

/* cgroup v2 and its controllers: what a VM's cgroup can do here. */
static void
cgroup_check (struct check *c, size_t *n)
{
  struct check *k = add (c, n, "cgroup v2");
  cleanup_err struct err *err = NULL;
  char root[CGROUP_PATH_MAX], avail[256], missing[64] = "";
  static const char *const want[] = { "cpu", "memory", "pids" };

  if (cgroup_root (root, sizeof root, &err) < 0)
    {
      snprintf (k->detail, sizeof k->detail,
                "%s: VMs get no cgroup; their processes are ended by the VMM's uid, and "
                "--cpus, memory and pids are not limited",
                err->msg);
      return;
    }
  cgroup_read (root, "cgroup.controllers", avail, sizeof avail);
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (strstr (avail, want[i]) == NULL)
      snprintf (missing + strlen (missing), sizeof missing - strlen (missing), " %s", want[i]);
  k->ok = missing[0] == '\0';
  if (k->ok)
    snprintf (k->detail, sizeof k->detail,
              "%.400s: a cgroup per VM, killed whole on stop; --cpus, memory and pids limits",
              root);
  else
    snprintf (k->detail, sizeof k->detail,
              "%.400s: a cgroup per VM, killed whole on stop; no controller(s)%s there: those "
              "limits are not set",
              root, missing);
}

static int
usage (FILE *out, int status)
{
  fprintf (out, "Usage: chvm doctor [--json]\n\n"
                "Check what this host can run and say why not.\n");
  return status;
}

int
cmd_doctor (const struct global_opts *g, int argc, char **argv)
{
  struct check c[MAX_CHECKS];
  size_t n = 0;
  char why_kvm[512], why_ch[512], why_qemu[512], why_pick[512];
  cleanup_err struct err *pick_err = NULL;
  const struct backend_ops *chosen;
  bool kvm, ch, qemu;
  const char *ch_bin = getenv ("CLOUD_HYPERVISOR");
  const char *qemu_bin = getenv ("CHVM_QEMU");
  struct stat st;
  struct check *k;
  bool nested = host_is_vm ();
  const char *kvm_mod;
  int status = cli_help_only (argc, argv, usage, false);

  if (status >= 0)
    return status;
  device (c, &n, "/dev/kvm", "KVM, for cloud-hypervisor");
  k = add (c, &n, "kvm module");
  kvm_mod = stat ("/sys/module/kvm_intel", &st) == 0 ? "kvm_intel"
            : stat ("/sys/module/kvm_amd", &st) == 0 ? "kvm_amd"
                                                     : NULL;
  k->ok = stat ("/sys/module/kvm_pvm", &st) < 0;
  if (!k->ok)
    snprintf (k->detail, sizeof k->detail,
              "kvm_pvm: a software KVM (shadow paging); stock Linux guests stop with "
              "emulation failures under it");
  else if (kvm_mod != NULL)
    snprintf (k->detail, sizeof k->detail, "%s%s", kvm_mod,
              nested ? " (nested: this host is a VM with virtualization extensions)" : "");
  else
    {
      k->ok = false;
      snprintf (k->detail, sizeof k->detail, "no kvm_intel or kvm_amd module loaded");
    }
  kvm = backend_kvm_usable (why_kvm, sizeof why_kvm);
  k = add (c, &n, "kvm usable");
  k->ok = kvm;
  snprintf (k->detail, sizeof k->detail, "%s",
            !kvm     ? why_kvm
            : nested ? "nested KVM (runs Linux guests)"
                     : "hardware KVM");
  device (c, &n, "/dev/net/tun", "taps for cloud-hypervisor");
  device (c, &n, "/dev/userfaultfd", "on-demand restore, CH v52+");
  device (c, &n, "/dev/vhost-vsock", "vsock for QEMU guests; without it QEMU uses TCP");
  device (c, &n, "/dev/vhost-net", "faster QEMU tap networking");
  cgroup_check (c, &n);
  version_of (c, &n, "cloud-hypervisor", ch_bin && *ch_bin ? ch_bin : "cloud-hypervisor",
              "install the static binary from its GitHub releases, or set CLOUD_HYPERVISOR");
  ch_snapshot_check (c, &n, &c[n - 1]);
  version_of (c, &n, "qemu", qemu_bin && *qemu_bin ? qemu_bin : "qemu-system-x86_64",
              "apt-get install qemu-system-x86");
  guest_file (c, &n, "kernel", "kernel/vmlinuz");
  guest_file (c, &n, "initrd", "initrd.cpio.gz");
  guest_file (c, &n, "default image", "images/standin/oci");
  ch = backend_ch.available (why_ch, sizeof why_ch) && kvm;
  qemu = backend_qemu.available (why_qemu, sizeof why_qemu);
  chosen = backend_pick ("auto", why_pick, sizeof why_pick, &pick_err);

  if (g->json)
    {
      cleanup_json struct json_object *o = json_object_new_object ();
      struct json_object *arr = json_object_new_array ();
      for (size_t i = 0; i < n; i++)
        {
          struct json_object *j = json_object_new_object ();
          json_object_object_add (j, "name", json_object_new_string (c[i].name));
          json_object_object_add (j, "ok", json_object_new_boolean (c[i].ok));
          json_object_object_add (j, "detail", json_object_new_string (c[i].detail));
          json_object_array_add (arr, j);
        }
      json_object_object_add (o, "checks", arr);
      json_object_object_add (o, "kvm_guests", json_object_new_boolean (kvm));
      json_object_object_add (o, "kvm_why", json_object_new_string (kvm ? "" : why_kvm));
      json_object_object_add (o, "backend_ch", json_object_new_boolean (ch));
      json_object_object_add (o, "backend_qemu", json_object_new_boolean (qemu));
      json_object_object_add (o, "auto_backend",
                              json_object_new_string (chosen ? chosen->name : ""));
      json_print (stdout, o);
    }
  else
    {
      for (size_t i = 0; i < n; i++)
        printf ("%-4s %-18s %s\n", c[i].ok ? "ok" : "--", c[i].name, c[i].detail);
      printf ("\n");
      if (kvm)
        printf ("KVM guests: yes\n");
      else
        printf ("KVM guests: no: %s\n", why_kvm);
      printf ("cloud-hypervisor backend: %s\n", ch     ? "usable"
                                                : !kvm ? "not usable: KVM cannot run guests here"
                                                       : why_ch);
      printf ("qemu backend: %s\n", qemu ? "usable (TCG software emulation)" : why_qemu);
      printf ("chvm run --backend auto uses: %s\n",
              chosen ? chosen->name : "nothing (no backend can run)");
    }
  return ch || qemu ? 0 : 1;
}
