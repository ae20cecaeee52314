/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the pure parts of templates: a CH snapshot's config.json
   edited for a clone (vmm/ch_clone.c) and the template manifest
   (vm/template.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "vm/template.h"
#include "vmm/ch_clone.h"

/* What CH v48 wrote for a template VM (trimmed). */
static const char tmpl_config[]
    = "{\"cpus\":{\"boot_vcpus\":1},\"memory\":{\"size\":0,\"shared\":false,\"zones\":[{\"id\":"
      "\"mem0\",\"size\":536870912,\"file\":\"/s/vms/tmpl-1/memory\",\"shared\":true}]},"
      "\"disks\":[{\"path\":\"/s/images/x/rootfs.ext4\",\"readonly\":true},{\"path\":\"/s/vms/"
      "tmpl-1/config.img\"}],\"net\":[{\"tap\":\"chvm-t2\",\"mac\":\"02:c4:0a:d5:00:02\","
      "\"host_mac\":\"aa:bb:cc:dd:ee:ff\"}],\"serial\":{\"mode\":\"Socket\",\"socket\":\"/s/vms/"
      "tmpl-1/console.sock\"},\"vsock\":{\"cid\":3,\"socket\":\"/s/vms/tmpl-1/vsock.sock\"},"
      "\"landlock_rules\":[{\"path\":\"/s/vms/tmpl-1\",\"access\":\"rw\"}],\"other\":\"/s/vms/"
      "tmpl-10/x\"}";

static struct json_object *
edit (const char *in, bool cow)
{
  const struct ch_clone_edit e = { "/s/vms/tmpl-1", "/s/vms/c1", "/s/templates/t/memory", cow };
  struct err *err = NULL;
  char *out = NULL;
  size_t len = 0;
  struct json_object *o;

  assert_int_equal (ch_clone_config (in, strlen (in), &e, &out, &len, &err), 0);
  o = json_tokener_parse (out);
  free (out);
  assert_non_null (o);
  return o;
}

static const char *
str_at (struct json_object *o, const char *a, int idx, const char *b)
{
  struct json_object *v;

  assert_true (json_object_object_get_ex (o, a, &v));
  if (idx >= 0)
    v = json_object_array_get_idx (v, (size_t) idx);
  assert_true (json_object_object_get_ex (v, b, &v));
  return json_object_get_string (v);
}

static void
clone_config_moves_paths_and_maps_zone_privately (void **state)
{
  struct json_object *o = edit (tmpl_config, true), *mem, *zone, *v, *net;
  (void) state;

  assert_string_equal (str_at (o, "disks", 0, "path"), "/s/images/x/rootfs.ext4");
  assert_string_equal (str_at (o, "disks", 1, "path"), "/s/vms/c1/config.img");
  assert_string_equal (str_at (o, "serial", -1, "socket"), "/s/vms/c1/console.sock");
  assert_string_equal (str_at (o, "vsock", -1, "socket"), "/s/vms/c1/vsock.sock");
  assert_string_equal (str_at (o, "landlock_rules", 0, "path"), "/s/vms/c1");
  /* Only whole path components: tmpl-10 is another VM. */
  assert_true (json_object_object_get_ex (o, "other", &v));
  assert_string_equal (json_object_get_string (v), "/s/vms/tmpl-10/x");
  json_object_object_get_ex (o, "memory", &mem);
  json_object_object_get_ex (mem, "zones", &zone);
  zone = json_object_array_get_idx (zone, 0);
  assert_string_equal (str_at (o, "memory", -1, "size"), "0");
  json_object_object_get_ex (zone, "file", &v);
  assert_string_equal (json_object_get_string (v), "/s/templates/t/memory");
  json_object_object_get_ex (zone, "shared", &v);
  assert_false (json_object_get_boolean (v));
  /* The guest's MAC stays, the old tap's host MAC goes. */
  json_object_object_get_ex (o, "net", &net);
  net = json_object_array_get_idx (net, 0);
  assert_false (json_object_object_get_ex (net, "host_mac", &v));
  assert_string_equal (str_at (o, "net", 0, "mac"), "02:c4:0a:d5:00:02");
  json_object_put (o);
  o = edit (tmpl_config, false); /* copy: the clone's own file, shared */
  json_object_object_get_ex (o, "memory", &mem);
  json_object_object_get_ex (mem, "zones", &zone);
  json_object_object_get_ex (json_object_array_get_idx (zone, 0), "shared", &v);
  assert_true (json_object_get_boolean (v));
  json_object_put (o);
}

static void
clone_config_refuses_what_is_not_one_file_zone (void **state)
{
  static const char *const bad[] = {
    "{\"memory\":{\"size\":536870912,\"shared\":true}}",
    "{\"memory\":{\"size\":0,\"zones\":[{\"id\":\"a\",\"size\":1}]}}",
    "{\"memory\":{\"size\":0,\"zones\":[{\"id\":\"a\",\"size\":1,\"file\":\"/f\"},{\"id\":\"b\","
    "\"size\":1,\"file\":\"/g\"}]}}",
    "[]",
    "{\"memory\":",
    "{}",
  };
  const struct ch_clone_edit e = { "/a", "/b", "/m", true };
  (void) state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      struct err *err = NULL;
      char *out = NULL;
      size_t len = 0;
      assert_int_equal (ch_clone_config (bad[i], strlen (bad[i]), &e, &out, &len, &err), -1);
      assert_non_null (err);
      assert_non_null (err->msg);
      assert_null (out);
      err_release (&err);
    }
}

static void
config_memory_says_where_ram_is (void **state)
{
  struct ch_config_memory m;
  struct err *err = NULL;
  const char *dense = "{\"memory\":{\"size\":1048576}}";
  (void) state;

  assert_int_equal (ch_config_memory (tmpl_config, strlen (tmpl_config), &m, &err), 0);
  assert_true (m.zones_only && m.files_only && m.shared);
  assert_int_equal (m.ram, 536870912);
  assert_int_equal (ch_config_memory (dense, strlen (dense), &m, &err), 0);
  assert_false (m.zones_only || m.files_only);
}

static void
manifest_round_trips_and_refuses_damage (void **state)
{
  struct template_info a = { .created = 5, .cpus = 2, .guest_ram = 1 << 30, .gid = 1900000001 }, b;
  struct err *err = NULL;
  char *text = NULL;
  (void) state;

  snprintf (a.name, sizeof a.name, "tpl");
  snprintf (a.backend, sizeof a.backend, "cloud-hypervisor");
  snprintf (a.vmm_version, sizeof a.vmm_version, "cloud-hypervisor v48.0");
  snprintf (a.kernel, sizeof a.kernel, "/k/vmlinuz");
  memset (a.kernel_sha256, 'a', TEMPLATE_SHA256_LEN);
  snprintf (a.source_dir, sizeof a.source_dir, "/s/vms/tmpl-1");
  assert_int_equal (template_to_json (&a, &text, &err), 0);
  assert_int_equal (template_from_json (text, strlen (text), &b, &err), 0);
  assert_memory_equal (&a, &b, sizeof a);
  /* A name that is no VM name, a relative kernel: refused. */
  char *bad = strdup (text), *p = strstr (bad, "\"tpl\"");
  assert_non_null (p);
  p[1] = '/';
  assert_true (template_from_json (bad, strlen (bad), &b, &err) < 0);
  assert_non_null (err);
  err_release (&err);
  assert_true (template_from_json ("{\"version\":2}", 13, &b, &err) < 0);
  err_release (&err);
  free (bad);
  free (text);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (clone_config_moves_paths_and_maps_zone_privately),
    cmocka_unit_test (clone_config_refuses_what_is_not_one_file_zone),
    cmocka_unit_test (config_memory_says_where_ram_is),
    cmocka_unit_test (manifest_round_trips_and_refuses_damage),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
