/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the config disk parser (guest-init/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

#define HDR "# chvm-config 1\n"

/* Parses text (the NUL-terminated string, as a disk would hold it padded
   with NULs); returns the result and keeps the message in msg. */
static int
parse (const char *text, struct chvm_config *cfg, char *msg, size_t msglen)
{
  struct err *err = NULL;
  size_t len = strlen (text);
  char *disk = calloc (1, len + 4096);
  int r;

  assert_non_null (disk);
  memcpy (disk, text, len);
  r = config_parse (disk, len + 4096, cfg, &err);
  msg[0] = '\0';
  if (err != NULL)
    {
      err_str (err, msg, msglen);
      err_release (&err);
    }
  free (disk);
  return r;
}

/* Asserts text fails with exactly the message want. */
static void
expect_error (const char *text, const char *want)
{
  struct chvm_config cfg;
  char msg[512];

  assert_true (parse (text, &cfg, msg, sizeof msg) < 0);
  assert_string_equal (msg, want);
  config_free (&cfg);
}

/* root.device: blk (the default) or pmem, once. */
static void
test_root_device (void **state)
{
  struct chvm_config cfg;
  char msg[256];

  (void) state;
  assert_int_equal (parse (HDR "root.device=pmem\n", &cfg, msg, sizeof msg), 0);
  assert_int_equal (cfg.root_device, ROOT_PMEM);
  config_free (&cfg);
  assert_int_equal (parse (HDR "root.device=blk\n", &cfg, msg, sizeof msg), 0);
  assert_int_equal (cfg.root_device, ROOT_BLK);
  config_free (&cfg);
  expect_error (HDR "root.device=nvme\n",
                "config chvm-config line 2: root.device must be blk or pmem");
  expect_error (HDR "root.device=PMEM\n",
                "config chvm-config line 2: root.device must be blk or pmem");
  expect_error (HDR "root.device=pmem \n",
                "config chvm-config line 2: root.device must be blk or pmem");
  expect_error (HDR "root.device=pmem\nroot.device=blk\n",
                "config chvm-config line 3: duplicate key 'root.device'");
}

static void
test_defaults (void **state)
{
  struct chvm_config cfg;
  char msg[256];

  (void) state;
  assert_int_equal (parse (HDR, &cfg, msg, sizeof msg), 0);
  assert_null (cfg.hostname);
  assert_int_equal (cfg.env.n, 0);
  assert_int_equal (cfg.overlay, OVERLAY_TMPFS);
  assert_int_equal (cfg.overlay_size, 0);
  assert_int_equal (cfg.root_device, ROOT_BLK);
  assert_int_equal (cfg.agent_vsock_port, 1024);
  assert_int_equal (cfg.agent_tcp_port, 0);
  assert_int_equal (cfg.agent_cdp_port, 9222);
  assert_int_equal (cfg.init_timeout, 30);
  assert_false (cfg.has_address);
  config_free (&cfg);
}

static void
test_full (void **state)
{
  struct chvm_config cfg;
  char msg[256];
  const char *text = HDR "# a comment\n"
                         "\n"
                         "hostname=browser-1\n"
                         "env=PATH=/usr/bin:/bin\n"
                         "env=A=b=c\n"
                         "entrypoint=/usr/local/bin/standin-entrypoint\n"
                         "entrypoint=--flag= x\n"
                         "cmd=one\n"
                         "cmd=\n"
                         "workdir=/srv/app\n"
                         "user=1000:44\n"
                         "net.address=10.0.2.15/24\n"
                         "net.gateway=10.0.2.2\n"
                         "net.dns=10.0.2.3\n"
                         "net.dns=fd00::1\n"
                         "net.mtu=1400\n"
                         "ssh.authorized_key=ssh-ed25519 AAAA test@host\n"
                         "overlay=disk\n"
                         "overlay.size=512M\n"
                         "agent.vsock_port=0\n"
                         "agent.tcp_port=1025\n"
                         "agent.token=0123456789abcdef0123456789ABCDEF\n"
                         "agent.cdp_port=9333\n"
                         "init.timeout=7";

  (void) state;
  assert_int_equal (parse (text, &cfg, msg, sizeof msg), 0);
  assert_string_equal (cfg.hostname, "browser-1");
  assert_int_equal (cfg.env.n, 2);
  assert_string_equal (cfg.env.v[1], "A=b=c");
  assert_null (cfg.env.v[2]);
  assert_int_equal (cfg.entrypoint.n, 2);
  assert_string_equal (cfg.entrypoint.v[1], "--flag= x");
  assert_int_equal (cfg.cmd.n, 2);
  assert_string_equal (cfg.cmd.v[1], "");
  assert_string_equal (cfg.workdir, "/srv/app");
  assert_string_equal (cfg.user, "1000:44");
  assert_true (cfg.has_address);
  assert_memory_equal (cfg.address, ((uint8_t[]){ 10, 0, 2, 15 }), 4);
  assert_int_equal (cfg.prefix, 24);
  assert_true (cfg.has_gateway);
  assert_memory_equal (cfg.gateway, ((uint8_t[]){ 10, 0, 2, 2 }), 4);
  assert_int_equal (cfg.dns.n, 2);
  assert_string_equal (cfg.dns.v[1], "fd00::1");
  assert_int_equal (cfg.mtu, 1400);
  assert_string_equal (cfg.authorized_keys.v[0], "ssh-ed25519 AAAA test@host");
  assert_int_equal (cfg.overlay, OVERLAY_DISK);
  assert_int_equal (cfg.overlay_size, 512ULL << 20);
  assert_int_equal (cfg.agent_vsock_port, 0);
  assert_int_equal (cfg.agent_tcp_port, 1025);
  assert_string_equal (cfg.agent_token, "0123456789abcdef0123456789ABCDEF");
  assert_int_equal (cfg.agent_cdp_port, 9333);
  assert_int_equal (cfg.init_timeout, 7);
  config_free (&cfg);
}

static void
test_value_verbatim (void **state)
{
  struct chvm_config cfg;
  char msg[256];

  (void) state;
  /* Spaces, '#', '=' and UTF-8 are kept as they are. */
  assert_int_equal (parse (HDR "cmd= spaced # not a comment = é\n", &cfg, msg, sizeof msg), 0);
  assert_string_equal (cfg.cmd.v[0], " spaced # not a comment = é");
  config_free (&cfg);
}

static void
test_text_ends_at_nul (void **state)
{
  struct chvm_config cfg;
  struct err *err = NULL;
  const char disk[] = HDR "hostname=a\n\0unknown=after the NUL\n";

  (void) state;
  assert_int_equal (config_parse (disk, sizeof disk, &cfg, &err), 0);
  assert_string_equal (cfg.hostname, "a");
  config_free (&cfg);
}

static void
test_header (void **state)
{
  (void) state;
  expect_error ("", "config chvm-config line 1: first line must be '# chvm-config 1'");
  expect_error ("# chvm-config 2\n",
                "config chvm-config line 1: first line must be '# chvm-config 1'");
  expect_error ("hostname=a\n", "config chvm-config line 1: first line must be '# chvm-config 1'");
  expect_error ("# chvm-config 1 \n",
                "config chvm-config line 1: first line must be '# chvm-config 1'");
}

static void
test_line_errors (void **state)
{
  (void) state;
  expect_error (HDR "hostname=a\nbogus=1\n", "config chvm-config line 3: unknown key 'bogus'");
  expect_error (HDR "\n\njust text\n", "config chvm-config line 4: expected key=value");
  expect_error (HDR "hostname=a\nhostname=b\n",
                "config chvm-config line 3: duplicate key 'hostname'");
  expect_error (HDR "Hostname=a\n", "config chvm-config line 2: unknown key 'Hostname'");
  expect_error (HDR " hostname=a\n", "config chvm-config line 2: unknown key ' hostname'");
  expect_error (HDR "hostname=a\r\n",
                "config chvm-config line 2: carriage return (use \\n line ends)");
  expect_error (HDR "cmd=\xff\n", "config chvm-config line 2: invalid UTF-8");
  expect_error (HDR "cmd=\xc0\x80\n", "config chvm-config line 2: invalid UTF-8");
  expect_error (HDR "cmd=\xed\xa0\x80\n", "config chvm-config line 2: invalid UTF-8");
  expect_error (HDR "cmd=\xe2\x82\n", "config chvm-config line 2: invalid UTF-8");
}

static void
test_unknown_key_shown_safely (void **state)
{
  char text[256];

  (void) state;
  snprintf (text, sizeof text, HDR "%s=1\n",
            "a\x01"
            "bcdefghijklmnopqrstuvwxyz0123456789");
  expect_error (text, "config chvm-config line 2: unknown key "
                      "'a?bcdefghijklmnopqrstuvwxyz01234...'");
}

static void
test_lengths (void **state)
{
  struct chvm_config cfg;
  char msg[256];
  char *text = malloc (CONFIG_MAX_TEXT + 64);
  size_t n;

  (void) state;
  assert_non_null (text);
  /* A line of exactly 4096 bytes is accepted, 4097 is not. */
  n = (size_t) snprintf (text, 64, HDR "cmd=");
  memset (text + n, 'x', CONFIG_MAX_LINE - 4);
  memcpy (text + n + CONFIG_MAX_LINE - 4, "\n", 2);
  assert_int_equal (parse (text, &cfg, msg, sizeof msg), 0);
  assert_int_equal (strlen (cfg.cmd.v[0]), CONFIG_MAX_LINE - 4);
  config_free (&cfg);
  memset (text + n, 'x', CONFIG_MAX_LINE - 3);
  memcpy (text + n + CONFIG_MAX_LINE - 3, "\n", 2);
  expect_error (text, "config chvm-config line 2: line longer than 4096 bytes");

  /* More than 1 MiB of text. */
  n = (size_t) snprintf (text, 64, HDR);
  for (; n < CONFIG_MAX_TEXT; n += 2)
    memcpy (text + n, "\n\n", 2);
  memcpy (text + n, "#\n", 3);
  expect_error (text, "config chvm-config: text larger than 1 MiB");
  free (text);
}

static void
test_value_checks (void **state)
{
  (void) state;
  expect_error (HDR "hostname=bad_name\n", "config chvm-config line 2: invalid hostname (letters, "
                                           "digits, '-', '.'; at most 64)");
  expect_error (HDR "hostname=\n", "config chvm-config line 2: invalid hostname (letters, "
                                   "digits, '-', '.'; at most 64)");
  expect_error (HDR "env=NOEQUALS\n", "config chvm-config line 2: env value must be NAME=value");
  expect_error (HDR "env==x\n", "config chvm-config line 2: env value must be NAME=value");
  expect_error (HDR "workdir=relative\n",
                "config chvm-config line 2: workdir must be an absolute path");
  expect_error (HDR "user=a:b:c\n", "config chvm-config line 2: user must be "
                                    "name, uid, name:group or uid:gid");
  expect_error (HDR "user=a:\n", "config chvm-config line 2: user must be "
                                 "name, uid, name:group or uid:gid");
  expect_error (HDR "net.address=10.0.2.15\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.address=10.0.2.256/24\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.address=10.0.2.15/33\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.address=10.0.02.15/24\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.address=10.0.2/24\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.address=10.0.2.1.5/24\n",
                "config chvm-config line 2: net.address must be A.B.C.D/prefix");
  expect_error (HDR "net.gateway=10.0.2.2\n",
                "config chvm-config: net.gateway without net.address");
  expect_error (HDR "net.dns=8.8.8.8; rm\n",
                "config chvm-config line 2: net.dns must be an IP address");
  expect_error (HDR "net.mtu=67\n", "config chvm-config line 2: net.mtu must be 68-65535");
  expect_error (HDR "net.mtu=65536\n", "config chvm-config line 2: net.mtu must be 68-65535");
  expect_error (HDR "net.mtu=+1500\n", "config chvm-config line 2: net.mtu must be 68-65535");
  expect_error (HDR "overlay=zram\n", "config chvm-config line 2: overlay must be tmpfs or disk");
  expect_error (HDR "overlay.size=0M\n",
                "config chvm-config line 2: overlay.size must be a positive "
                "size like 1024M");
  expect_error (HDR "overlay.size=99999999999999999999\n",
                "config chvm-config line 2: overlay.size must be a positive "
                "size like 1024M");
  expect_error (HDR "overlay.size=17179869184G\n",
                "config chvm-config line 2: overlay.size must be a positive "
                "size like 1024M");
  expect_error (HDR "agent.vsock_port=4294967295\n",
                "config chvm-config line 2: agent.vsock_port must be 0-4294967294");
  expect_error (HDR "agent.tcp_port=1025\n",
                "config chvm-config line 2: agent.tcp_port requires agent.token");
  expect_error (HDR "agent.token=abc\n",
                "config chvm-config line 2: agent.token must be 32-128 hex characters");
  expect_error (HDR "agent.token=0123456789abcdef0123456789abcdeg\n",
                "config chvm-config line 2: agent.token must be 32-128 hex characters");
  expect_error (HDR "agent.cdp_port=0\n",
                "config chvm-config line 2: agent.cdp_port must be 1-65535");
  expect_error (HDR "init.timeout=0\n",
                "config chvm-config line 2: init.timeout must be 1-3600 seconds");
  expect_error (HDR "init.timeout=3601\n",
                "config chvm-config line 2: init.timeout must be 1-3600 seconds");
  expect_error (HDR "init.timeout=010\n",
                "config chvm-config line 2: init.timeout must be 1-3600 seconds");
}

static void
test_size_suffixes (void **state)
{
  static const struct
  {
    const char *v;
    uint64_t want;
  } cases[] = { { "4096", 4096 },
                { "4K", 4096 },
                { "1024M", 1ULL << 30 },
                { "2G", 2ULL << 30 },
                { "1T", 1ULL << 40 } };
  (void) state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      struct chvm_config cfg;
      char text[64], msg[256];
      snprintf (text, sizeof text, HDR "overlay.size=%s\n", cases[i].v);
      assert_int_equal (parse (text, &cfg, msg, sizeof msg), 0);
      assert_int_equal (cfg.overlay_size, cases[i].want);
      config_free (&cfg);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_root_device),
    cmocka_unit_test (test_full),
    cmocka_unit_test (test_value_verbatim),
    cmocka_unit_test (test_text_ends_at_nul),
    cmocka_unit_test (test_header),
    cmocka_unit_test (test_line_errors),
    cmocka_unit_test (test_unknown_key_shown_safely),
    cmocka_unit_test (test_lengths),
    cmocka_unit_test (test_value_checks),
    cmocka_unit_test (test_size_suffixes),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
