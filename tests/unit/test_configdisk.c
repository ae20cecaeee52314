/* SPDX-License-Identifier: Apache-2.0 */
/* The config disk, byte for byte (DESIGN.md "Config disk format"), and the
   values it must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vm/configdisk.h"

static const char *const img_env[] = { "PATH=/usr/bin:/bin", "DISPLAY_NUM=1" };
static const char *const extra_env[] = { "WIDTH=1024", "PATH=/opt/bin", "EMPTY=" };
static const char *const ep[] = { "/wrapper" };
static const char *const cmd[] = { "--flag", "a = b", "" };
static const char *const dns[] = { "10.0.2.3" };

static struct config_input
full_input (void)
{
  struct config_input in = {
    .hostname = "web-1",
    .image_env = img_env,
    .n_image_env = 2,
    .extra_env = extra_env,
    .n_extra_env = 3,
    .entrypoint = ep,
    .n_entrypoint = 1,
    .cmd = cmd,
    .n_cmd = 3,
    .workdir = "/home/x",
    .user = "1000:1000",
    .net_address = "10.0.2.15/24",
    .net_gateway = "10.0.2.2",
    .net_dns = dns,
    .n_net_dns = 1,
    .net_mtu = 1500,
    .overlay = "tmpfs",
    .overlay_size = "1024M",
    .root_device = "pmem",
    .agent_vsock_port = 0,
    .agent_tcp_port = 1025,
    .agent_token = "00112233445566778899aabbccddeeff",
    .agent_cdp_port = 9222,
    .init_timeout = 30,
  };
  return in;
}

static void
test_render_exact (void **state)
{
  struct config_input in = full_input ();
  struct err *err = NULL;
  char *text;
  size_t len;
  const char *want = "# chvm-config 1\n"
                     "hostname=web-1\n"
                     "env=PATH=/usr/bin:/bin\n"
                     "env=DISPLAY_NUM=1\n"
                     "env=WIDTH=1024\n"
                     "env=PATH=/opt/bin\n"
                     "env=EMPTY=\n"
                     "entrypoint=/wrapper\n"
                     "cmd=--flag\n"
                     "cmd=a = b\n"
                     "cmd=\n"
                     "workdir=/home/x\n"
                     "user=1000:1000\n"
                     "net.address=10.0.2.15/24\n"
                     "net.gateway=10.0.2.2\n"
                     "net.dns=10.0.2.3\n"
                     "net.mtu=1500\n"
                     "overlay=tmpfs\n"
                     "overlay.size=1024M\n"
                     "root.device=pmem\n"
                     "agent.vsock_port=0\n"
                     "agent.tcp_port=1025\n"
                     "agent.token=00112233445566778899aabbccddeeff\n"
                     "agent.cdp_port=9222\n"
                     "init.timeout=30\n";

  (void) state;
  assert_int_equal (configdisk_render (&in, &text, &len, &err), 0);
  assert_int_equal (len, strlen (want));
  assert_memory_equal (text, want, len);
  free (text);
}

static void
test_minimal (void **state)
{
  struct config_input in = { .agent_vsock_port = -1 };
  struct err *err = NULL;
  char *text;
  size_t len;

  (void) state;
  assert_int_equal (configdisk_render (&in, &text, &len, &err), 0);
  assert_string_equal (text, "# chvm-config 1\n");
  free (text);
}

static void
expect_refused (struct config_input *in, const char *why)
{
  struct err *err = NULL;
  char *text = NULL;
  size_t len;

  assert_true (configdisk_render (in, &text, &len, &err) < 0);
  assert_null (text);
  if (strstr (err->msg, why) == NULL)
    fail_msg ("error '%s' lacks '%s'", err->msg, why);
  err_release (&err);
}

static void
test_refusals (void **state)
{
  struct config_input in;
  const char *const nl_env[] = { "A=1\nhostname=evil" };
  const char *const no_eq[] = { "JUSTNAME" };
  const char *const cr_cmd[] = { "x\ry" };
  char *huge;

  (void) state;
  in = full_input ();
  in.hostname = "a\nb";
  expect_refused (&in, "hostname: value contains a line break");
  in = full_input ();
  in.extra_env = nl_env;
  in.n_extra_env = 1;
  expect_refused (&in, "env: value contains a line break");
  in = full_input ();
  in.extra_env = no_eq;
  in.n_extra_env = 1;
  expect_refused (&in, "expected NAME=value");
  in = full_input ();
  in.cmd = cr_cmd;
  in.n_cmd = 1;
  expect_refused (&in, "cmd: value contains a line break");
  in = full_input ();
  in.agent_token = NULL;
  expect_refused (&in, "requires agent.token");

  /* 4096 bytes per line including key, '=' and '\n'. */
  huge = malloc (5000);
  memset (huge, 'x', 4999);
  huge[4999] = '\0';
  huge[4096 - strlen ("workdir=\n")] = '\0';
  in = full_input ();
  in.workdir = huge;
  {
    struct err *err = NULL;
    char *text;
    size_t len;
    assert_int_equal (configdisk_render (&in, &text, &len, &err), 0);
    free (text);
  }
  huge[4096 - strlen ("workdir=\n")] = 'x';
  huge[4097 - strlen ("workdir=\n")] = '\0';
  expect_refused (&in, "longer than 4096");
  free (huge);
}

static void
test_total_size_limit (void **state)
{
  /* 300 lines of ~4 KiB pass 1 MiB. */
  size_t n = 300;
  const char **v = calloc (n, sizeof *v);
  char *line = malloc (4000);
  struct config_input in = full_input ();

  (void) state;
  memset (line, 'y', 3999);
  line[0] = 'A';
  line[1] = '=';
  line[3999] = '\0';
  for (size_t i = 0; i < n; i++)
    v[i] = line;
  in.extra_env = v;
  in.n_extra_env = n;
  expect_refused (&in, "larger than 1048576");
  free (v);
  free (line);
}

static void
test_write_padded (void **state)
{
  char dir[] = "/tmp/chvm-cfg-XXXXXX", path[64];
  struct config_input in = full_input ();
  struct err *err = NULL;
  struct stat st;
  char *buf;
  char *text;
  size_t len;
  int fd;

  (void) state;
  assert_non_null (mkdtemp (dir));
  snprintf (path, sizeof path, "%s/config.img", dir);
  assert_int_equal (configdisk_write (path, &in, &err), 0);
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_size % 4096, 0);
  assert_int_equal (st.st_size, 4096);
  buf = malloc ((size_t) st.st_size);
  fd = open (path, O_RDONLY);
  assert_int_equal (read (fd, buf, (size_t) st.st_size), st.st_size);
  close (fd);
  assert_int_equal (configdisk_render (&in, &text, &len, &err), 0);
  assert_memory_equal (buf, text, len);
  for (size_t i = len; i < (size_t) st.st_size; i++)
    assert_int_equal (buf[i], 0);
  free (text);
  free (buf);
  unlink (path);
  rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_render_exact), cmocka_unit_test (test_minimal),
    cmocka_unit_test (test_refusals),     cmocka_unit_test (test_total_size_limit),
    cmocka_unit_test (test_write_padded),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
