/* SPDX-License-Identifier: Apache-2.0 */
/* The config disk contract seen from both ends: what the host tool renders
   (host-tool/configdisk.c) is what guest-init parses (guest-init/config.c)
   and turns into the entrypoint's environment (guest-init/spec.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "spec.h"
/* Both sides define the format limits; they must agree, which the checks
   below make sure of after taking the host's definitions. */
enum
{
  GUEST_MAX_TEXT = CONFIG_MAX_TEXT,
  GUEST_MAX_LINE = CONFIG_MAX_LINE
};
#undef CONFIG_MAX_TEXT
#undef CONFIG_MAX_LINE
#include "vm/configdisk.h"

static void
test_limits_agree (void **state)
{
  (void) state;
  assert_int_equal (GUEST_MAX_TEXT, CONFIG_MAX_TEXT);
  assert_int_equal (GUEST_MAX_LINE, CONFIG_MAX_LINE);
  assert_string_equal (CONFIG_HEADER, CONFIG_MAGIC);
}

static void
test_host_render_parses_in_guest (void **state)
{
  static const char *const image_env[] = { "PATH=/usr/bin:/bin", "WIDTH=1280", "CHROMIUM_FLAGS=" };
  static const char *const extra_env[] = { "WIDTH=1920", "TZ=UTC" };
  static const char *const entrypoint[] = { "/usr/local/bin/standin-entrypoint" };
  static const char *const cmd[] = { "--flag=a b", "" };
  static const char *const dns[] = { "10.0.2.3" };
  static const char *const keys[] = { "ssh-ed25519 AAAAC3Nza test@host" };
  struct config_input in = {
    .hostname = "vm-1",
    .image_env = image_env,
    .n_image_env = 3,
    .extra_env = extra_env,
    .n_extra_env = 2,
    .entrypoint = entrypoint,
    .n_entrypoint = 1,
    .cmd = cmd,
    .n_cmd = 2,
    .workdir = "/srv",
    .user = "1000:44",
    .net_address = "10.0.2.15/24",
    .net_gateway = "10.0.2.2",
    .net_dns = dns,
    .n_net_dns = 1,
    .net_mtu = 1400,
    .ssh_keys = keys,
    .n_ssh_keys = 1,
    .overlay = "tmpfs",
    .overlay_size = "1024M",
    .root_device = "pmem",
    .agent_vsock_port = 1024,
    .agent_tcp_port = 1025,
    .agent_token = "00112233445566778899aabbccddeeff",
    .agent_cdp_port = 9222,
    .init_timeout = 12,
  };
  struct chvm_config cfg;
  struct strv env = { 0 };
  struct err *err = NULL;
  char *text = NULL;
  size_t len;

  (void) state;
  if (configdisk_render (&in, &text, &len, &err) < 0)
    fail_msg ("render: %s", err->msg);
  if (config_parse (text, len, &cfg, &err) < 0)
    fail_msg ("parse: %s\n%s", err->msg, text);
  assert_string_equal (cfg.hostname, "vm-1");
  assert_int_equal (cfg.entrypoint.n, 1);
  assert_int_equal (cfg.cmd.n, 2);
  assert_string_equal (cfg.cmd.v[0], "--flag=a b");
  assert_string_equal (cfg.cmd.v[1], "");
  assert_string_equal (cfg.workdir, "/srv");
  assert_string_equal (cfg.user, "1000:44");
  assert_true (cfg.has_address && cfg.has_gateway);
  assert_int_equal (cfg.prefix, 24);
  assert_int_equal (cfg.mtu, 1400);
  assert_int_equal (cfg.dns.n, 1);
  assert_string_equal (cfg.authorized_keys.v[0], keys[0]);
  assert_int_equal (cfg.overlay, OVERLAY_TMPFS);
  assert_int_equal (cfg.overlay_size, 1ULL << 30);
  assert_int_equal (cfg.root_device, ROOT_PMEM);
  assert_int_equal (cfg.agent_vsock_port, 1024);
  assert_int_equal (cfg.agent_tcp_port, 1025);
  assert_string_equal (cfg.agent_token, in.agent_token);
  assert_int_equal (cfg.agent_cdp_port, 9222);
  assert_int_equal (cfg.init_timeout, 12);

  /* Image Env first, then --env, a later NAME winning in place. */
  assert_int_equal (spec_build_env (&cfg.env, "/root", &env, &err), 0);
  assert_int_equal (env.n, 5);
  assert_string_equal (env.v[0], "PATH=/usr/bin:/bin");
  assert_string_equal (env.v[1], "WIDTH=1920");
  assert_string_equal (env.v[2], "CHROMIUM_FLAGS=");
  assert_string_equal (env.v[3], "TZ=UTC");
  assert_string_equal (env.v[4], "HOME=/root");
  strv_free (&env);
  config_free (&cfg);
  free (text);
}

static void
test_host_defaults_parse (void **state)
{
  struct config_input in = { .agent_vsock_port = -1 };
  struct chvm_config cfg;
  struct err *err = NULL;
  char *text = NULL;
  size_t len;

  (void) state;
  if (configdisk_render (&in, &text, &len, &err) < 0)
    fail_msg ("render: %s", err->msg);
  if (config_parse (text, len, &cfg, &err) < 0)
    fail_msg ("parse: %s\n%s", err->msg, text);
  assert_null (cfg.hostname);
  assert_int_equal (cfg.agent_vsock_port, 1024);
  assert_int_equal (cfg.init_timeout, 30);
  config_free (&cfg);
  free (text);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_limits_agree),
    cmocka_unit_test (test_host_render_parses_in_guest),
    cmocka_unit_test (test_host_defaults_parse),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
