/* SPDX-License-Identifier: Apache-2.0 */
/* The shim's pure mappings: config.json -> spec -> image.json's exec
   fields, snapshotter mounts -> layers, names, the console's exit line. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "names.h"
#include "rootfs.h"
#include "shim.h"
#include "spec.h"

static const char config[]
    = "{\"ociVersion\":\"1.0.2\",\"process\":{\"terminal\":false,\"user\":{\"uid\":1000,\"gid\":"
      "100},\"args\":[\"/usr/bin/standin\",\"--port\",\"9222\"],\"env\":[\"PATH=/usr/bin\","
      "\"HOME=/home/u\"],\"cwd\":\"/work\"},\"root\":{\"path\":\"rootfs\"},\"hostname\":\"h1\","
      "\"annotations\":{\"io.chvm.backend\":\"qemu\"}}";

static struct shim_spec *
parse (const char *json)
{
  struct shim_spec *s = NULL;
  struct err *err = NULL;

  if (shim_spec_parse (json, strlen (json), &s, &err) < 0)
    err_release (&err);
  return s;
}

static void
test_spec_maps_process (void **state)
{
  struct shim_spec *s = parse (config);
  struct oci_config *c = NULL;

  (void) state;
  assert_non_null (s);
  assert_int_equal (s->n_args, 3);
  assert_string_equal (s->args[2], "9222");
  assert_int_equal (s->n_env, 2);
  assert_string_equal (s->cwd, "/work");
  assert_int_equal (s->uid, 1000);
  assert_int_equal (s->gid, 100);
  assert_string_equal (s->hostname, "h1");
  assert_string_equal (shim_spec_annotation (s, "io.chvm.backend"), "qemu");
  assert_null (shim_spec_annotation (s, "nope"));
  assert_int_equal (shim_spec_to_oci (s, &c, NULL), 0);
  assert_int_equal (c->n_entrypoint, 3);
  assert_string_equal (c->entrypoint[0], "/usr/bin/standin");
  assert_int_equal (c->n_cmd, 0);
  assert_string_equal (c->env[1], "HOME=/home/u");
  assert_string_equal (c->workdir, "/work");
  assert_string_equal (c->user, "1000:100");
  oci_config_free (c);
  shim_spec_free (s);
}

static void
test_spec_defaults_and_refusals (void **state)
{
  struct shim_spec *s = parse ("{\"process\":{\"args\":[\"/bin/sh\"]}}");

  (void) state;
  assert_non_null (s);
  assert_string_equal (s->cwd, "/");
  assert_int_equal (s->uid, 0);
  shim_spec_free (s);
  assert_null (parse ("{\"process\":{\"args\":[]}}"));              /* nothing to run */
  assert_null (parse ("{\"process\":{\"args\":[\"a\\nb\"]}}"));     /* a newline */
  assert_null (parse ("{\"process\":{\"args\":[\"a\\u0000b\"]}}")); /* a NUL */
  assert_null (parse ("{\"process\":{\"args\":[\"a\"],\"user\":{\"uid\":-1}}}"));
  assert_null (parse ("{\"process\":{\"args\":[\"a\"]}} x")); /* trailing */
  assert_null (parse ("[1]"));
  assert_null (parse ("{\"process\":{\"args\":[\"a\"]},\"annotations\":{\"k\":1}}"));
}

/* An Exec's process object alone: args, env, cwd; refusals as config.json's. */
static void
test_exec_process (void **state)
{
  static const char ok[] = "{\"args\":[\"sh\",\"-c\",\"pwd\"],\"env\":[\"A=1\"],\"cwd\":\"/proc\","
                           "\"user\":{\"uid\":0,\"gid\":0},\"terminal\":false}";
  static const char *const bad[] = { "{\"args\":[]}", "{\"env\":[\"A=1\"]}", "[\"sh\"]",
                                     "{\"args\":[\"a\\nb\"]}", "{\"args\":[\"sh\"]} x" };
  struct shim_spec *sp = NULL;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (shim_spec_parse_process (ok, sizeof ok - 1, &sp, &err), 0);
  assert_int_equal (sp->n_args, 3);
  assert_string_equal (sp->args[2], "pwd");
  assert_int_equal (sp->n_env, 1);
  assert_string_equal (sp->cwd, "/proc");
  assert_string_equal (sp->hostname, "");
  shim_spec_free (sp);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      sp = NULL;
      assert_true (shim_spec_parse_process (bad[i], strlen (bad[i]), &sp, &err) < 0);
      assert_null (sp);
      err_release (&err);
    }
}

static void
test_rootfs_layers (void **state)
{
  char *opts[] = { (char *) "index=off", (char *) "workdir=/s/3/work", (char *) "upperdir=/s/3/fs",
                   (char *) "lowerdir=/s/2/fs:/s/1/fs" };
  Containerd__Types__Mount m = CONTAINERD__TYPES__MOUNT__INIT, *ms[1] = { &m };
  struct err *err = NULL;
  char **dirs;
  size_t n;

  (void) state;
  m.type = (char *) "overlay";
  m.source = (char *) "overlay";
  m.n_options = 4;
  m.options = opts;
  assert_int_equal (rootfs_layers (ms, 1, &dirs, &n, NULL), 0);
  assert_int_equal (n, 2);
  assert_string_equal (dirs[0], "/s/2/fs");
  assert_string_equal (dirs[1], "/s/1/fs");
  rootfs_layers_free (dirs, n);
  m.type = (char *) "bind";
  m.source = (char *) "/s/1/fs";
  assert_int_equal (rootfs_layers (ms, 1, &dirs, &n, NULL), 0);
  assert_int_equal (n, 1);
  rootfs_layers_free (dirs, n);
  m.type = (char *) "ext4";
  assert_true (rootfs_layers (ms, 1, &dirs, &n, &err) < 0);
  err_release (&err);
  m.type = (char *) "overlay";
  opts[3] = (char *) "lowerdir=/a::/b";
  assert_true (rootfs_layers (ms, 1, &dirs, &n, &err) < 0);
  err_release (&err);
  assert_int_equal (rootfs_layers (ms, 0, &dirs, &n, NULL), 0);
  assert_int_equal (n, 0);
}

static void
test_names (void **state)
{
  const char *a[] = { "ab", "c" }, *b[] = { "a", "bc" };
  char h1[65], h2[65], vm[64];

  (void) state;
  names_hash_hex (a, 2, h1);
  names_hash_hex (b, 2, h2);
  assert_int_equal (strlen (h1), 64);
  assert_string_not_equal (h1, h2);
  assert_int_equal (names_vm ("default", "web1", vm, sizeof vm, NULL), 0);
  assert_string_equal (vm, "ctr-default-web1");
  /* A Kubernetes id (64 hex) does not fit: hashed. */
  assert_int_equal (names_vm ("k8s.io", h1, vm, sizeof vm, NULL), 0);
  assert_int_equal (strlen (vm), 20);
  assert_int_equal (names_vm ("a/b", "x", vm, sizeof vm, NULL), 0);
  assert_int_equal (strncmp (vm, "ctr-", 4), 0);
  assert_null (strchr (vm, '/'));
  /* A clone's name is shorter: "ctr-NS-ID" of 59 characters is hashed. */
  memset (h1, 'a', 51);
  h1[51] = '\0';
  assert_int_equal (names_vm ("nsp", h1, vm, sizeof vm, NULL), 0);
  assert_int_equal (strlen (vm), 59);
  assert_int_equal (names_vm ("nsp", h1, vm, NAMES_CLONE_MAX + 1, NULL), 0);
  assert_int_equal (strlen (vm), 20);
  h1[50] = '\0';
  assert_int_equal (names_vm ("nsp", h1, vm, NAMES_CLONE_MAX + 1, NULL), 0);
  assert_int_equal (strlen (vm), NAMES_CLONE_MAX);
}

/* A CRI pod's bundles: the sandbox's and its container's, with CNI's
   namespace; what they say of role, group and namespace. */
static void
test_pod_spec (void **state)
{
  static const char sandbox[]
      = "{\"process\":{\"args\":[\"/pause\"]},\"annotations\":{\"io.kubernetes.cri.container-"
        "type\":\"sandbox\",\"io.kubernetes.cri.sandbox-id\":\"p1\"},\"linux\":{\"namespaces\":"
        "[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/var/run/netns/cni-1\"}]}}";
  static const char container[]
      = "{\"process\":{\"args\":[\"/x\"]},\"annotations\":{\"io.kubernetes.cri.container-type\""
        ":\"container\",\"io.kubernetes.cri.sandbox-id\":\"p1\"},\"linux\":{\"namespaces\":[{"
        "\"type\":\"network\",\"path\":\"/run/netns/cni-1\"}]}}";
  static const char *const bad[]
      = { "/run/netns/", "/run/netns/a/b", "/run/netns/..", "/var/run/netns/.x" };
  struct shim_spec *s;
  char json[512];

  (void) state;
  assert_non_null (s = parse (sandbox));
  assert_int_equal (shim_spec_role (s), SHIM_ROLE_SANDBOX);
  assert_string_equal (shim_spec_group (s, "p1"), "p1");
  assert_string_equal (s->netns, "cni-1");
  shim_spec_free (s);
  assert_non_null (s = parse (container));
  assert_int_equal (shim_spec_role (s), SHIM_ROLE_CONTAINER);
  assert_string_equal (shim_spec_group (s, "c1"), "p1");
  assert_string_equal (s->netns, "cni-1");
  shim_spec_free (s);
  /* `ctr run`'s: no annotations, a namespace without a path. */
  assert_non_null (s = parse ("{\"process\":{\"args\":[\"/x\"]},\"linux\":{\"namespaces\":[{"
                              "\"type\":\"network\"}]}}"));
  assert_int_equal (shim_spec_role (s), SHIM_ROLE_PLAIN);
  assert_string_equal (shim_spec_group (s, "c1"), "c1");
  assert_string_equal (s->netns, "");
  shim_spec_free (s);
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      snprintf (json, sizeof json,
                "{\"process\":{\"args\":[\"/x\"]},\"linux\":{\"namespaces\":[{\"type\":"
                "\"network\",\"path\":\"%s\"}]}}",
                bad[i]);
      assert_null (parse (json));
    }
  assert_null (parse ("{\"process\":{\"args\":[\"/x\"]},\"linux\":{\"namespaces\":{}}}"));
  /* A pod container's (containerd 1.6): the sandbox process's namespace. */
  assert_non_null (s = parse ("{\"process\":{\"args\":[\"/x\"]},\"linux\":{\"namespaces\":[{"
                              "\"type\":\"network\",\"path\":\"/proc/12/ns/net\"}]}}"));
  assert_string_equal (s->netns, "");
  shim_spec_free (s);
}

/* A spec whose linux object is lx, with annotations ann (an object). */
static struct shim_spec *
parse_linux (const char *lx, const char *ann, struct err **err)
{
  struct shim_spec *s = NULL;
  char json[512];

  snprintf (json, sizeof json, "{\"process\":{\"args\":[\"/x\"]},\"annotations\":%s,\"linux\":%s}",
            ann, lx);
  if (shim_spec_parse (json, strlen (json), &s, err) < 0)
    return NULL;
  return s;
}

/* linux.resources: vCPUs = ceil (quota / period) (at most 64), guest RAM =
   the memory limit in MiB, rounded down (at most 1 TiB); what is absent,
   0 or negative is chvm's default (0). */
static void
test_spec_resources (void **state)
{
  static const struct
  {
    const char *lx;
    unsigned cpus;
    uint64_t mib;
  } ok[] = {
    { "{\"resources\":{\"cpu\":{\"quota\":100000,\"period\":100000},\"memory\":{\"limit\":"
      "1610612736}}}",
      1, 1536 },
    { "{\"resources\":{\"cpu\":{\"quota\":150000,\"period\":100000}}}", 2, 0 },
    { "{\"resources\":{\"cpu\":{\"quota\":1,\"period\":100000}}}", 1, 0 },
    { "{\"resources\":{\"cpu\":{\"quota\":10000000,\"period\":100000}}}", 64, 0 },
    { "{\"resources\":{\"memory\":{\"limit\":1610612737}}}", 0, 1536 },
    { "{\"resources\":{\"memory\":{\"limit\":134217728}}}", 0, 128 },
    { "{\"resources\":{\"memory\":{\"limit\":9223372036854775807}}}", 0, UINT64_C (1) << 20 },
    { "{\"resources\":{\"cpu\":{\"quota\":-1,\"period\":100000},\"memory\":{\"limit\":-1}}}", 0,
      0 },
    { "{\"resources\":{\"cpu\":{\"quota\":100000,\"period\":0,\"shares\":2},\"memory\":{\"limit\""
      ":0}}}",
      0, 0 },
    { "{\"resources\":{\"cpu\":{\"quota\":null},\"memory\":null}}", 0, 0 },
    { "{\"resources\":{}}", 0, 0 },
    { "{}", 0, 0 },
  };
  static const struct
  {
    const char *lx, *msg;
  } bad[] = {
    { "{\"resources\":[]}", "linux.resources is not an object" },
    { "{\"resources\":{\"cpu\":1}}", "linux.resources.cpu is not an object" },
    { "{\"resources\":{\"memory\":\"1G\"}}", "linux.resources.memory is not an object" },
    { "{\"resources\":{\"cpu\":{\"quota\":\"100000\",\"period\":100000}}}",
      "linux.resources.cpu.quota is not an integer" },
    { "{\"resources\":{\"cpu\":{\"quota\":100000,\"period\":1.5}}}",
      "linux.resources.cpu.period is not an integer" },
    { "{\"resources\":{\"cpu\":{\"quota\":100000,\"period\":-100000}}}",
      "linux.resources.cpu.period -100000 is negative" },
    { "{\"resources\":{\"memory\":{\"limit\":true}}}",
      "linux.resources.memory.limit is not an integer" },
    { "{\"resources\":{\"memory\":{\"limit\":134217727}}}",
      "memory limit 134217727 bytes is below chvm's 128 MiB minimum" },
  };
  struct shim_spec *s;
  struct err *err = NULL;

  (void) state;
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    {
      assert_non_null (s = parse_linux (ok[i].lx, "{}", NULL));
      assert_int_equal (s->cpus, ok[i].cpus);
      assert_int_equal (s->memory_mib, ok[i].mib);
      shim_spec_free (s);
    }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      assert_null (parse_linux (bad[i].lx, "{}", &err));
      assert_non_null (err);
      assert_int_equal (err->status, EINVAL);
      assert_non_null (strstr (err->msg, bad[i].msg));
      err_release (&err);
    }
  /* A pod's sandbox has no VM: its (the pod's) limits are not read. */
  assert_non_null (s = parse_linux ("{\"resources\":{\"memory\":{\"limit\":1048576},\"cpu\":"
                                    "{\"quota\":\"x\"}}}",
                                    "{\"" SPEC_ANN_TYPE "\":\"sandbox\"}", NULL));
  assert_int_equal (s->cpus, 0);
  assert_int_equal (s->memory_mib, 0);
  shim_spec_free (s);
  /* A pod's container: its own. */
  assert_non_null (s = parse_linux ("{\"resources\":{\"cpu\":{\"quota\":100000,\"period\":"
                                    "100000},\"memory\":{\"limit\":1610612736}}}",
                                    "{\"" SPEC_ANN_TYPE "\":\"container\"}", NULL));
  assert_int_equal (s->cpus, 1);
  assert_int_equal (s->memory_mib, 1536);
  shim_spec_free (s);
}

/* chvm's annotations: a template's name, what Pause does, whether the
   guest has the agent; each bad value refused with what is accepted. */
static void
test_chvm_annotations (void **state)
{
  static const struct
  {
    const char *ann, *tmpl;
    bool standby, no_agent;
  } ok[] = {
    { "{}", "", false, false },
    { "{\"" SPEC_ANN_TEMPLATE "\":\"tpl-1.a_b\"}", "tpl-1.a_b", false, false },
    { "{\"" SPEC_ANN_PAUSE "\":\"pause\"}", "", false, false },
    { "{\"" SPEC_ANN_PAUSE "\":\"standby\",\"" SPEC_ANN_AGENT "\":\"false\"}", "", true, true },
    { "{\"" SPEC_ANN_AGENT "\":\"true\",\"" SPEC_ANN_TEMPLATE "\":\"T\"}", "T", false, false },
    /* A pod's sandbox boots nothing: a template named on the pod is no
       clone of it. */
    { "{\"" SPEC_ANN_TYPE "\":\"sandbox\",\"" SPEC_ANN_TEMPLATE "\":\"t\"}", "t", false, false },
  };
  static const struct
  {
    const char *ann, *msg;
  } bad[] = {
    { "{\"" SPEC_ANN_TEMPLATE "\":\"\"}",
      "annotation io.chvm.template: '' is not a template name (1-63 letters, digits, '_', '.' and "
      "'-', starting with a letter or digit)" },
    { "{\"" SPEC_ANN_TEMPLATE "\":\"../x\"}", "'../x' is not a template name" },
    { "{\"" SPEC_ANN_TEMPLATE "\":\"-t\"}", "'-t' is not a template name" },
    { "{\"" SPEC_ANN_TEMPLATE "\":\"a b\"}", "'a b' is not a template name" },
    { "{\"" SPEC_ANN_TEMPLATE
      "\":\"t123456789012345678901234567890123456789012345678901234567890123\"}",
      "is not a template name (1-63" },
    { "{\"" SPEC_ANN_TYPE "\":\"container\",\"" SPEC_ANN_TEMPLATE "\":\"t\"}",
      "annotation io.chvm.template: a clone of template 't' keeps its own network namespace, so it "
      "cannot be a pod's container" },
    { "{\"" SPEC_ANN_PAUSE "\":\"Standby\"}",
      "annotation io.chvm.pause: 'Standby' is neither 'pause' nor 'standby'" },
    { "{\"" SPEC_ANN_PAUSE "\":\"\"}", "io.chvm.pause: '' is neither" },
    { "{\"" SPEC_ANN_AGENT "\":\"no\"}",
      "annotation io.chvm.agent: 'no' is neither 'true' nor 'false'" },
  };
  struct shim_spec *s;
  struct err *err = NULL;

  (void) state;
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
    {
      assert_non_null (s = parse_linux ("{}", ok[i].ann, NULL));
      assert_string_equal (s->template_name, ok[i].tmpl);
      assert_int_equal (s->standby, ok[i].standby);
      assert_int_equal (s->no_agent, ok[i].no_agent);
      shim_spec_free (s);
    }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    {
      assert_null (parse_linux ("{}", bad[i].ann, &err));
      assert_non_null (err);
      assert_int_equal (err->status, EINVAL);
      assert_non_null (strstr (err->msg, bad[i].msg));
      assert_int_equal (strncmp (err->msg, "config.json: annotation io.chvm.", 32), 0);
      err_release (&err);
    }
}

/* A pod's container finds its sandbox's shim: the socket of the sandbox's
   id is the one that shim listens on; a long address falls back. */
static void
test_socket_names (void **state)
{
  char a[128], b[128], c[128], lng[200];

  (void) state;
  names_socket ("/run/containerd/containerd.sock", "k8s.io", "p1", a, sizeof a);
  names_socket ("/run/containerd/containerd.sock", "k8s.io", "p1", b, sizeof b);
  names_socket ("/run/containerd/containerd.sock", "k8s.io", "c1", c, sizeof c);
  assert_string_equal (a, b);
  assert_string_not_equal (a, c);
  assert_int_equal (strncmp (a, "/run/containerd/s/", 18), 0);
  assert_int_equal (strlen (a), 18 + 32);
  memset (lng, 'd', sizeof lng);
  lng[0] = '/';
  memcpy (lng + sizeof lng - 8, "/c.sock", 8);
  names_socket (lng, "k8s.io", "p1", c, sizeof c);
  assert_int_equal (strncmp (c, "/run/chvm-shim/", 15), 0);
  assert_int_equal (strlen (c), 15 + 32);
}

static void
test_console_exit_status (void **state)
{
  (void) state;
  assert_int_equal (vm_console_exit_status ("INFO init[1]: entrypoint exited status 3\n"
                                            "INFO init[1]: poweroff\n"),
                    3);
  assert_int_equal (vm_console_exit_status ("x entrypoint exited status 1\ny entrypoint exited "
                                            "status 143\n"),
                    143);
  assert_int_equal (vm_console_exit_status ("booting\n"), -1);
  assert_int_equal (vm_console_exit_status ("entrypoint exited status 999\n"), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_spec_maps_process),
    cmocka_unit_test (test_spec_defaults_and_refusals),
    cmocka_unit_test (test_rootfs_layers),
    cmocka_unit_test (test_names),
    cmocka_unit_test (test_console_exit_status),
    cmocka_unit_test (test_exec_process),
    cmocka_unit_test (test_pod_spec),
    cmocka_unit_test (test_spec_resources),
    cmocka_unit_test (test_socket_names),
    cmocka_unit_test (test_chvm_annotations),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
