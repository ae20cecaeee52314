/* SPDX-License-Identifier: Apache-2.0 */
/* Tap mode networking for real, inside a network namespace this test
   creates (`ip netns add`), never in the host's: bridge, NAT table, tap,
   publish DNAT elements, idempotency and teardown.  Skips (exit 77 is not
   used by cmocka, so it prints why and passes no tests) without root or
   without ip/nft. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"

static char ns[32];

/* Runs a shell command line inside the test namespace and returns its
   output (first 8 KiB). */
static char *
in_ns (const char *cmd)
{
  static char out[8192];
  char line[512];
  FILE *p;
  size_t n;

  snprintf (line, sizeof line, "ip netns exec %s sh -c '%s' 2>&1", ns, cmd);
  p = popen (line, "r");
  assert_non_null (p);
  n = fread (out, 1, sizeof out - 1, p);
  out[n] = '\0';
  pclose (p);
  return out;
}

static void
record (struct vm_record *r, uint32_t addr)
{
  memset (r, 0, sizeof *r);
  snprintf (r->name, sizeof r->name, "t%u", addr & 0xff);
  snprintf (r->address, sizeof r->address, "10.213.0.%u/24", addr & 0xff);
  net_tap_name (addr, r->tap, sizeof r->tap);
  net_mac (addr, r->mac, sizeof r->mac);
  r->n_publish = 3;
  snprintf (r->publish[0].host_addr, sizeof r->publish[0].host_addr, "127.0.0.1");
  r->publish[0].host_port = (uint16_t) (19000 + (addr & 0xff));
  r->publish[0].guest_port = 9222;
  snprintf (r->publish[1].host_addr, sizeof r->publish[1].host_addr, "127.0.0.1");
  r->publish[1].host_port = 5353;
  r->publish[1].guest_port = 53;
  r->publish[1].udp = true;
  /* neko's media range: one nft command, one element per port */
  snprintf (r->publish[2].host_addr, sizeof r->publish[2].host_addr, "127.0.0.1");
  r->publish[2].host_port = 56000;
  r->publish[2].guest_port = 46000;
  r->publish[2].count = 101;
  r->publish[2].udp = true;
}

static void
test_setup_teardown (void **state)
{
  struct vm_record a, b;
  struct err *err = NULL;
  char *out;

  (void) state;
  record (&a, NET_SUBNET | 2);
  record (&b, NET_SUBNET | 3);
  b.n_publish = 1;
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup a: %s", err->msg);
  /* Twice: idempotent (bridge, table and tap exist already). */
  assert_int_equal (net_ensure_tap (ns, a.tap, &err), 0);
  assert_int_equal (net_setup_vm (ns, &b, &err), 0);

  out = in_ns ("ip -br addr show dev chvm0");
  assert_non_null (strstr (out, "10.213.0.1/24"));
  out = in_ns ("ip -o link show master chvm0");
  assert_non_null (strstr (out, "chvm-t2"));
  assert_non_null (strstr (out, "chvm-t3"));
  out = in_ns ("nft list table ip chvm");
  assert_non_null (strstr (out, "19002 : 10.213.0.2 . 9222"));
  assert_non_null (strstr (out, "19003 : 10.213.0.3 . 9222"));
  assert_non_null (strstr (out, "5353 : 10.213.0.2 . 53"));
  assert_non_null (strstr (out, "56000 : 10.213.0.2 . 46000"));
  assert_non_null (strstr (out, "56100 : 10.213.0.2 . 46100"));
  assert_null (strstr (out, "56101 :"));
  assert_null (strstr (out, "55999 :"));
  assert_non_null (strstr (out, "masquerade"));
  out = in_ns ("nft list ruleset | grep -c \"table ip chvm\"");
  assert_int_equal (atoi (out), 1);
  out = in_ns ("cat /proc/sys/net/ipv4/ip_forward");
  assert_int_equal (out[0], '1');

  /* a goes: its tap and elements, nothing of b's. */
  assert_int_equal (net_teardown_vm (ns, &a, &err), 0);
  out = in_ns ("ip -o link show");
  assert_null (strstr (out, "chvm-t2"));
  assert_non_null (strstr (out, "chvm-t3"));
  out = in_ns ("nft list table ip chvm");
  assert_null (strstr (out, "10.213.0.2 "));
  assert_non_null (strstr (out, "19003 : 10.213.0.3 . 9222"));
  /* Tearing down twice is fine. */
  assert_int_equal (net_teardown_vm (ns, &a, &err), 0);
  assert_int_equal (net_teardown_vm (ns, &b, &err), 0);
  assert_int_equal (net_teardown_all (ns, &err), 0);
  out = in_ns ("ip -o link show; nft list ruleset");
  assert_null (strstr (out, "chvm"));
  /* Back home: the host namespace has none of it. */
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

static void
test_bad_netns (void **state)
{
  struct err *err = NULL;
  struct vm_record a;

  (void) state;
  record (&a, NET_SUBNET | 2);
  assert_true (net_setup_vm ("../etc", &a, &err) < 0);
  err_release (&err);
  assert_true (net_setup_vm ("chvm-no-such-ns", &a, &err) < 0);
  assert_non_null (strstr (err->msg, "network namespace"));
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_setup_teardown),
    cmocka_unit_test (test_bad_netns),
  };
  char cmd[96];
  int rc;

  if (geteuid () != 0 || system ("command -v ip >/dev/null && command -v nft >/dev/null") != 0)
    {
      printf ("SKIP test_net_ns: needs root, ip and nft\n");
      return 0;
    }
  snprintf (ns, sizeof ns, "chvm-test-%d", (int) getpid ());
  snprintf (cmd, sizeof cmd, "ip netns add %s", ns);
  if (system (cmd) != 0)
    {
      printf ("SKIP test_net_ns: cannot create a network namespace\n");
      return 0;
    }
  rc = cmocka_run_group_tests (tests, NULL, NULL);
  snprintf (cmd, sizeof cmd, "ip netns del %s", ns);
  if (system (cmd) != 0)
    rc = 1;
  return rc;
}
