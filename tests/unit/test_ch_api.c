/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure parts of ch_api.c: VmConfig and RestoreConfig
   building, vm.info / vmm.ping parsing, CH error bodies, versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/ch_api.h"

static struct json_object *
get (struct json_object *o, const char *path)
{
  char key[64];
  const char *dot;

  while (o != NULL && (dot = strchr (path, '.')) != NULL)
    {
      snprintf (key, sizeof key, "%.*s", (int) (dot - path), path);
      if (!json_object_object_get_ex (o, key, &o))
        return NULL;
      path = dot + 1;
    }
  if (o == NULL || !json_object_object_get_ex (o, path, &o))
    return NULL;
  return o;
}

static const char *
get_str (struct json_object *o, const char *path)
{
  struct json_object *v = get (o, path);
  assert_non_null (v);
  assert_true (json_object_is_type (v, json_type_string));
  return json_object_get_string (v);
}

static void
test_vm_config_full (void **state)
{
  (void) state;
  struct vm_spec spec = { .name = "t",
                          .dir = "/var/lib/chvm/vms/t",
                          .cpus = 2,
                          .memory_mib = 2048,
                          .kernel = "/k/vmlinux",
                          .initrd = "/k/initrd",
                          .cmdline = "console=ttyS0 quiet",
                          .rootfs = "/i/rootfs.ext4",
                          .config_disk = "/v/config.img",
                          .upper_disk = "/v/upper.ext4",
                          .tap = "chvm0",
                          .mac = "52:54:00:12:34:56",
                          .agent_vsock_port = 1024 };
  struct err *e = NULL;
  struct json_object *c = ch_vm_config (&spec, &e), *disks, *d;

  assert_non_null (c);
  assert_null (e);
  assert_int_equal (json_object_get_int (get (c, "cpus.boot_vcpus")), 2);
  assert_int_equal (json_object_get_int (get (c, "cpus.max_vcpus")), 2);
  assert_int_equal (json_object_get_int64 (get (c, "memory.size")), 2048LL << 20);
  assert_false (json_object_get_boolean (get (c, "memory.shared")));
  assert_string_equal (get_str (c, "payload.kernel"), "/k/vmlinux");
  assert_string_equal (get_str (c, "payload.initramfs"), "/k/initrd");
  assert_string_equal (get_str (c, "payload.cmdline"), "console=ttyS0 quiet");

  disks = get (c, "disks");
  assert_non_null (disks);
  assert_int_equal (json_object_array_length (disks), 3);
  static const char *const serial[] = { "chvm-root", "chvm-config", "chvm-upper" };
  static const char *const path[] = { "/i/rootfs.ext4", "/v/config.img", "/v/upper.ext4" };
  for (size_t i = 0; i < 3; i++)
    {
      d = json_object_array_get_idx (disks, i);
      assert_string_equal (get_str (d, "serial"), serial[i]);
      assert_string_equal (get_str (d, "path"), path[i]);
      assert_int_equal (json_object_get_boolean (get (d, "readonly")), i < 2);
    }
  d = json_object_array_get_idx (get (c, "net"), 0);
  assert_string_equal (get_str (d, "tap"), "chvm0");
  assert_string_equal (get_str (d, "mac"), "52:54:00:12:34:56");
  assert_null (get (d, "ip")); /* CH must not configure the host side */
  assert_int_equal (json_object_get_int (get (c, "vsock.cid")), 3);
  assert_string_equal (get_str (c, "vsock.socket"), "/var/lib/chvm/vms/t/vsock.sock");
  /* init's phase lines reach only ttyS0 (hvc0 comes later, a module). */
  assert_string_equal (get_str (c, "console.mode"), "Off");
  assert_string_equal (get_str (c, "serial.mode"), "File");
  assert_string_equal (get_str (c, "serial.file"), "/var/lib/chvm/vms/t/console.log");
  assert_string_equal (get_str (c, "rng.src"), "/dev/urandom");
  assert_null (get (c, "pmem"));
  json_object_put (c);

  /* --rootfs-device pmem: the root disk stays (the guest's fallback), and
     the image is also a pmem device CH never writes. */
  spec.rootfs_pmem = true;
  c = ch_vm_config (&spec, &e);
  assert_non_null (c);
  assert_int_equal (json_object_array_length (get (c, "disks")), 3);
  assert_int_equal (json_object_array_length (get (c, "pmem")), 1);
  d = json_object_array_get_idx (get (c, "pmem"), 0);
  assert_string_equal (get_str (d, "file"), "/i/rootfs.ext4");
  assert_true (json_object_get_boolean (get (d, "discard_writes")));
  assert_null (get (d, "size"));
  json_object_put (c);
}

static void
test_vm_config_minimal (void **state)
{
  (void) state;
  struct vm_spec spec = { .dir = "/d", .cpus = 1, .memory_mib = 64, .kernel = "/micro.elf" };
  struct err *e = NULL;
  struct json_object *c = ch_vm_config (&spec, &e);

  assert_non_null (c);
  assert_null (get (c, "disks"));
  assert_null (get (c, "net"));
  assert_null (get (c, "vsock"));
  assert_null (get (c, "payload.initramfs"));
  assert_null (get (c, "payload.cmdline"));
  assert_int_equal (json_object_get_int64 (get (c, "memory.size")), 64LL << 20);
  /* VM_AUTO reaches ch_vm_config only resolved; unresolved it is off. */
  assert_false (json_object_get_boolean (get (c, "memory.shared")));
  assert_null (get (c, "balloon"));
  json_object_put (c);
}

/* Shared memory (what v52+ snapshots sparsely) and a size-0 balloon that
   only carries free page reporting, each on its own. */
static void
test_vm_config_memory (void **state)
{
  (void) state;
  struct vm_spec spec = { .dir = "/d",
                          .cpus = 1,
                          .memory_mib = 2048,
                          .kernel = "/k",
                          .shared_memory = VM_ON,
                          .free_page_reporting = VM_ON };
  struct err *e = NULL;
  struct json_object *c = ch_vm_config (&spec, &e);

  assert_non_null (c);
  assert_true (json_object_get_boolean (get (c, "memory.shared")));
  assert_int_equal (json_object_get_int64 (get (c, "balloon.size")), 0);
  assert_true (json_object_get_boolean (get (c, "balloon.free_page_reporting")));
  json_object_put (c);
  spec.free_page_reporting = VM_OFF;
  c = ch_vm_config (&spec, &e);
  assert_true (json_object_get_boolean (get (c, "memory.shared")));
  assert_null (get (c, "balloon"));
  json_object_put (c);
  spec.shared_memory = VM_OFF;
  spec.free_page_reporting = VM_ON;
  c = ch_vm_config (&spec, &e);
  assert_false (json_object_get_boolean (get (c, "memory.shared")));
  assert_true (json_object_get_boolean (get (c, "balloon.free_page_reporting")));
  json_object_put (c);
}

/* Restore mode by version, userfaultfd, prefault and the snapshot's RAM. */
static void
test_restore_pick (void **state)
{
  struct vm_restore_opts o = { .want = VM_RESTORE_AUTO };
  struct err *e = NULL;

  (void) state;
  assert_int_equal (ch_restore_pick (48, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_COPY);
  assert_non_null (strstr (o.reason, "v48 has no ondemand"));
  assert_int_equal (ch_restore_pick (53, true, "the VMM runs as root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_ONDEMAND);
  assert_string_equal (o.reason, "cloud-hypervisor v52+: the VMM runs as root");
  assert_int_equal (ch_restore_pick (53, false, "uid 5 cannot", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_COPY);
  assert_string_equal (o.reason, "no userfaultfd: uid 5 cannot");
  /* A sparse snapshot on v53: copy, unless ondemand is asked for. */
  o.shared_memory = true;
  assert_int_equal (ch_restore_pick (53, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_COPY);
  assert_non_null (strstr (o.reason, "sparse snapshot"));
  assert_int_equal (ch_restore_pick (52, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_ONDEMAND); /* v52 fills nothing behind */
  o.want = VM_RESTORE_ONDEMAND;
  assert_int_equal (ch_restore_pick (53, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_ONDEMAND);
  /* Asked for but impossible: an error saying why, before any restore. */
  assert_true (ch_restore_pick (53, false, "uid 5 cannot", &o, &e) < 0);
  assert_non_null (strstr (e->msg, "no userfaultfd: uid 5 cannot"));
  err_release (&e);
  assert_true (ch_restore_pick (48, true, "root", &o, &e) < 0);
  err_release (&e);
  o.prefault = true;
  assert_true (ch_restore_pick (53, true, "root", &o, &e) < 0);
  assert_non_null (strstr (e->msg, "prefault"));
  err_release (&e);
  o.want = VM_RESTORE_COPY;
  assert_int_equal (ch_restore_pick (53, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_COPY);
  assert_string_equal (o.reason, "asked for");
  /* A clone's own standby (its template's file mapped copy-on-write under
     memory-ranges): userfaultfd cannot register that mapping, so auto
     copies and an explicit ondemand is refused before the restore. */
  o = (struct vm_restore_opts){ .want = VM_RESTORE_AUTO, .file_private = true };
  assert_int_equal (ch_restore_pick (53, true, "root", &o, &e), 0);
  assert_int_equal (o.mode, VM_RESTORE_COPY);
  assert_non_null (strstr (o.reason, "copy-on-write"));
  o.want = VM_RESTORE_ONDEMAND;
  assert_true (ch_restore_pick (53, true, "root", &o, &e) < 0);
  assert_non_null (strstr (e->msg, "userfaultfd cannot serve"));
  err_release (&e);
}

static int
attach_stub (const char *dir, pid_t vmm_pid, struct err **err)
{
  (void) dir;
  (void) vmm_pid;
  (void) err;
  return 0;
}

/* With a console logger to attach, the serial port is a socket. */
static void
test_vm_config_serial_socket (void **state)
{
  (void) state;
  struct vm_spec spec
      = { .dir = "/d", .cpus = 1, .memory_mib = 64, .kernel = "/k", .serial_attach = attach_stub };
  struct err *e = NULL;
  struct json_object *c = ch_vm_config (&spec, &e);

  assert_non_null (c);
  assert_string_equal (get_str (c, "serial.mode"), "Socket");
  assert_string_equal (get_str (c, "serial.socket"), "/d/console.sock");
  assert_null (get (c, "serial.file"));
  json_object_put (c);
}

static void
test_vm_config_invalid (void **state)
{
  (void) state;
  struct vm_spec good = { .dir = "/d", .cpus = 1, .memory_mib = 64, .kernel = "/k" };
  struct vm_spec s;
  struct err *e = NULL;

  s = good;
  s.dir = "relative/dir";
  assert_null (ch_vm_config (&s, &e));
  assert_non_null (strstr (e->msg, "absolute"));
  err_release (&e);
  s = good;
  s.kernel = NULL;
  assert_null (ch_vm_config (&s, &e));
  assert_non_null (strstr (e->msg, "kernel"));
  err_release (&e);
  s = good;
  s.cpus = 0;
  assert_null (ch_vm_config (&s, &e));
  err_release (&e);
  s = good;
  s.memory_mib = UINT64_MAX;
  assert_null (ch_vm_config (&s, &e));
  err_release (&e);
}

static void
test_restore_config_versions (void **state)
{
  (void) state;
  struct ch_restore_opts o = { .prefault = true, .mode = CH_RESTORE_ONDEMAND, .resume = true };
  struct err *e = NULL;
  struct json_object *c;

  c = ch_restore_config ("/s/snapshot", &o, 53, &e);
  assert_non_null (c);
  assert_string_equal (get_str (c, "source_url"), "file:///s/snapshot");
  assert_true (json_object_get_boolean (get (c, "prefault")));
  assert_string_equal (get_str (c, "memory_restore_mode"), "OnDemand");
  assert_true (json_object_get_boolean (get (c, "resume")));
  json_object_put (c);

  o.mode = CH_RESTORE_COPY;
  c = ch_restore_config ("/s/snapshot", &o, 52, &e);
  assert_string_equal (get_str (c, "memory_restore_mode"), "Copy");
  json_object_put (c);

  /* v48..v51 know neither field: they must not be sent. */
  c = ch_restore_config ("/s/snapshot", &o, 48, &e);
  assert_non_null (c);
  assert_null (get (c, "memory_restore_mode"));
  assert_null (get (c, "resume"));
  json_object_put (c);

  o.mode = CH_RESTORE_ONDEMAND;
  assert_null (ch_restore_config ("/s/snapshot", &o, 48, &e));
  assert_non_null (strstr (e->msg, "v52"));
  err_release (&e);
  assert_null (ch_restore_config ("s/snapshot", &o, 53, &e));
  err_release (&e);
}

#define S(x) x, sizeof (x) - 1

static void
test_parse_info (void **state)
{
  (void) state;
  struct ch_vm_info info;
  struct err *e = NULL;

  assert_int_equal (ch_parse_info (S ("{\"config\":{\"cpus\":{\"boot_vcpus\":2,\"max_vcpus\":2},"
                                      "\"memory\":{\"size\":1073741824}},\"state\":\"Paused\","
                                      "\"memory_actual_size\":536870912}\n"),
                                   &info, &e),
                    0);
  assert_string_equal (info.state, "Paused");
  assert_int_equal (info.boot_vcpus, 2);
  assert_int_equal (info.memory_size, 1073741824ULL);
  assert_int_equal (info.memory_actual_size, 536870912ULL);

  /* Optional parts missing are fine. */
  assert_int_equal (ch_parse_info (S ("{\"config\":{},\"state\":\"Created\"}"), &info, &e), 0);
  assert_int_equal (info.memory_size, 0);

  static const struct
  {
    const char *body, *want;
  } bad[] = {
    { "", "truncated" },
    { "{\"config\":{}", "truncated" },
    { "[1,2]", "not a JSON object" },
    { "{\"config\":{}}", "state" },
    { "{\"config\":{},\"state\":\"Dancing\"}", "unknown VM state" },
    { "{\"config\":{},\"state\":7}", "state" },
    { "{\"state\":\"Running\"}", "config" },
    { "{\"config\":{},\"state\":\"Running\"} trailing", "malformed" },
    { "nonsense", "malformed" },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      assert_true (ch_parse_info (bad[i].body, strlen (bad[i].body), &info, &e) < 0);
      assert_non_null (e);
      assert_non_null (strstr (e->msg, "vm.info"));
      if (strstr (e->msg, bad[i].want) == NULL)
        fail_msg ("body %s: error \"%s\" lacks \"%s\"", bad[i].body, e->msg, bad[i].want);
      err_release (&e);
    }
}

static void
test_parse_ping (void **state)
{
  (void) state;
  char v[16];
  struct err *e = NULL;

  assert_int_equal (ch_parse_ping (S ("{\"build_version\":\"v53.0-dirty\",\"version\":\"v53.0\","
                                      "\"pid\":42,\"features\":[\"kvm\"]}"),
                                   v, sizeof v, &e),
                    0);
  assert_string_equal (v, "v53.0");
  assert_true (ch_parse_ping (S ("{\"version\":53}"), v, sizeof v, &e) < 0);
  assert_non_null (strstr (e->msg, "vmm.ping"));
  err_release (&e);
  /* A long version is truncated, not overflowed. */
  assert_int_equal (
      ch_parse_ping (S ("{\"version\":\"v53.0-with-a-very-long-suffix\"}"), v, sizeof v, &e), 0);
  assert_int_equal (strlen (v), sizeof v - 1);
}

static void
test_error_text (void **state)
{
  (void) state;
  char out[64];

  ch_error_text (S ("[\"Error from API\",\"The VM could not be snapshotted\"]"), out, sizeof out);
  assert_string_equal (out, "Error from API: The VM could not be snapshotted");
  ch_error_text (S ("plain text\r\nwith lines\n\n"), out, sizeof out);
  assert_string_equal (out, "plain text  with lines");
  ch_error_text (S ("\"a json string\""), out, sizeof out);
  assert_string_equal (out, "a json string");
  ch_error_text (NULL, 0, out, sizeof out);
  assert_string_equal (out, "(no message)");
  ch_error_text (
      S ("[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]"),
      out, sizeof out);
  assert_int_equal (strlen (out), sizeof out - 1);
  ch_error_text (S ("[1,2]"), out, sizeof out); /* no strings: show the body */
  assert_string_equal (out, "[1,2]");
}

static void
test_parse_version (void **state)
{
  (void) state;
  int ma = -1, mi = -1;

  assert_int_equal (ch_parse_version ("cloud-hypervisor v53.0-dirty", &ma, &mi), 0);
  assert_int_equal (ma, 53);
  assert_int_equal (mi, 0);
  assert_int_equal (ch_parse_version ("v48.1.2", &ma, &mi), 0);
  assert_int_equal (ma, 48);
  assert_int_equal (mi, 1);
  assert_int_equal (ch_parse_version ("52", &ma, &mi), 0);
  assert_int_equal (ma, 52);
  assert_int_equal (mi, 0);
  assert_true (ch_parse_version ("cloud-hypervisor", &ma, &mi) < 0);
  assert_true (ch_parse_version ("", &ma, &mi) < 0);
  assert_true (ch_parse_version ("v99999999999999999999", &ma, &mi) < 0);
  assert_true (ch_parse_version (NULL, &ma, &mi) < 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_vm_config_full),
    cmocka_unit_test (test_vm_config_minimal),
    cmocka_unit_test (test_vm_config_memory),
    cmocka_unit_test (test_restore_pick),
    cmocka_unit_test (test_vm_config_serial_socket),
    cmocka_unit_test (test_vm_config_invalid),
    cmocka_unit_test (test_restore_config_versions),
    cmocka_unit_test (test_parse_info),
    cmocka_unit_test (test_parse_ping),
    cmocka_unit_test (test_error_text),
    cmocka_unit_test (test_parse_version),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
