/* SPDX-License-Identifier: Apache-2.0 */
/* --publish parsing, guest address allocation, tap/MAC naming and the port
   checks (loopback only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "sys/port.h"

static void
test_publish_ok (void **state)
{
  struct publish p;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (net_parse_publish ("9222:9222", &p, &err), 0);
  assert_string_equal (p.host_addr, "127.0.0.1");
  assert_int_equal (p.host_port, 9222);
  assert_int_equal (p.guest_port, 9222);
  assert_false (p.udp);
  assert_int_equal (net_parse_publish ("0.0.0.0:8080:80/tcp", &p, &err), 0);
  assert_string_equal (p.host_addr, "0.0.0.0");
  assert_int_equal (p.host_port, 8080);
  assert_int_equal (p.guest_port, 80);
  assert_int_equal (net_parse_publish ("127.0.0.2:5353:53/udp", &p, &err), 0);
  assert_true (p.udp);
  assert_int_equal (net_parse_publish ("[::1]:1:65535", &p, &err), 0);
  assert_string_equal (p.host_addr, "::1");
  assert_int_equal (p.guest_port, 65535);
  assert_int_equal (p.count, 1);
}

static void
test_publish_ranges (void **state)
{
  struct publish p, q;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (net_parse_publish ("56000-56100:56000-56100/udp", &p, &err), 0);
  assert_string_equal (p.host_addr, "127.0.0.1");
  assert_int_equal (p.host_port, 56000);
  assert_int_equal (p.guest_port, 56000);
  assert_int_equal (p.count, 101);
  assert_true (p.udp);
  /* The shorthand: the same range on both sides. */
  assert_int_equal (net_parse_publish ("56000-56100/udp", &q, &err), 0);
  assert_memory_equal (&p, &q, sizeof p);
  assert_int_equal (net_parse_publish ("0.0.0.0:46000-46009:56000-56009", &p, &err), 0);
  assert_string_equal (p.host_addr, "0.0.0.0");
  assert_int_equal (p.host_port, 46000);
  assert_int_equal (p.guest_port, 56000);
  assert_int_equal (p.count, 10);
  assert_false (p.udp);
  assert_int_equal (net_parse_publish ("[::1]:7-7:9-9", &p, &err), 0);
  assert_int_equal (p.count, 1);
  assert_int_equal (net_parse_publish ("1-65535", &p, &err), 0);
  assert_int_equal (p.count, 65535);

  /* Overlap is per protocol, on host ports only. */
  assert_int_equal (net_parse_publish ("56000-56100/udp", &p, &err), 0);
  assert_int_equal (net_parse_publish ("56100:1/udp", &q, &err), 0);
  assert_true (net_publish_overlap (&p, &q));
  assert_true (net_publish_overlap (&q, &p));
  assert_int_equal (net_parse_publish ("56101:56100/udp", &q, &err), 0);
  assert_false (net_publish_overlap (&p, &q));
  assert_int_equal (net_parse_publish ("56050:56050", &q, &err), 0);
  assert_false (net_publish_overlap (&p, &q));
  assert_int_equal (net_parse_publish ("55000-56000:1-1001/udp", &q, &err), 0);
  assert_true (net_publish_overlap (&p, &q));
}

static void
expect_bad (const char *s, const char *why)
{
  struct publish p;
  struct err *err = NULL;

  if (net_parse_publish (s, &p, &err) == 0)
    fail_msg ("'%s' accepted", s);
  if (strstr (err->msg, why) == NULL)
    fail_msg ("'%s': error '%s' lacks '%s'", s, err->msg, why);
  err_release (&err);
}

static void
test_publish_bad_ranges (void **state)
{
  (void) state;
  expect_bad ("56100-56000:56000-56100/udp", "host port range is reversed");
  expect_bad ("56000-56100:56100-56000/udp", "guest port range is reversed");
  expect_bad ("56100-56000/udp", "reversed");
  expect_bad ("56000-56100:56000-56099", "differ in length (101, 100)");
  expect_bad ("8080:8080-8081", "differ in length (1, 2)");
  expect_bad ("65535-65536:1-2", "bad host port range");
  expect_bad ("1-2:65535-65536", "bad guest port range");
  expect_bad ("65000-70000", "bad host port range");
  expect_bad ("0-10:1-11", "bad host port range");
  expect_bad ("1-10:0-9", "bad guest port range");
  expect_bad ("0-5", "bad host port range");
  expect_bad ("1-:1-2", "bad host port range");
  expect_bad ("-2:1-2", "bad host port range");
  expect_bad ("1-2-3:1-3", "bad host port range");
  expect_bad ("1--2", "bad host port range");
  expect_bad ("1-2/sctp", "protocol");
  expect_bad ("127.0.0.1:1-2", "bad host port");
}

static void
test_publish_bad (void **state)
{
  const char *bad[] = { "",         "9222",    ":9222",    "9222:",    "0:1",  "1:0",
                        "65536:1",  "1:99999", "a:1",      "1:2/sctp", "1:2/", "300.1.1.1:1:2",
                        "host:1:2", "1:2:3:4", "[::1:1:2", "-1:2",     "1 :2" };
  struct publish p;
  struct err *err = NULL;

  (void) state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      if (net_parse_publish (bad[i], &p, &err) == 0)
        fail_msg ("'%s' accepted", bad[i]);
      assert_non_null (strstr (err->msg, "--publish"));
      err_release (&err);
    }
}

static void
test_alloc (void **state)
{
  uint32_t used[260], a;
  struct err *err = NULL;

  (void) state;
  assert_int_equal (net_alloc_address (NULL, 0, &a, &err), 0);
  assert_int_equal (a, 0x0ad50002u);
  used[0] = 0x0ad50002u;
  used[1] = 0x0ad50004u;
  assert_int_equal (net_alloc_address (used, 2, &a, &err), 0);
  assert_int_equal (a, 0x0ad50003u);
  for (uint32_t i = 0; i < 253; i++)
    used[i] = NET_SUBNET | (i + 2);
  assert_true (net_alloc_address (used, 253, &a, &err) < 0);
  assert_non_null (strstr (err->msg, "no free address"));
  err_release (&err);
  used[100] = 0x0a000001u; /* outside the subnet: frees .102 */
  assert_int_equal (net_alloc_address (used, 253, &a, &err), 0);
  assert_int_equal (a, NET_SUBNET | 102);

  assert_int_equal (net_parse_ipv4 ("10.213.0.7/24", &a, &err), 0);
  assert_int_equal (a, 0x0ad50007u);
  assert_true (net_parse_ipv4 ("10.213.0/24", &a, &err) < 0);
  err_release (&err);
}

static void
test_names (void **state)
{
  char tap[16], mac[18];

  (void) state;
  net_tap_name (0x0ad500feu, tap, sizeof tap);
  assert_string_equal (tap, "chvm-t254");
  net_mac (0x0ad50002u, mac, sizeof mac);
  assert_string_equal (mac, "02:c4:0a:d5:00:02");
}

static void
test_ports (void **state)
{
  struct err *err = NULL;
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  uint16_t port;
  int fd;

  (void) state;
  assert_int_equal (port_pick ("127.0.0.1", &port, &err), 0);
  assert_true (port > 0);
  assert_int_equal (port_check ("127.0.0.1", port, false, &err), 0);
  fd = socket (AF_INET, SOCK_STREAM, 0);
  sa.sin_port = htons (port);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (fd, 1), 0);
  assert_true (port_check ("127.0.0.1", port, false, &err) < 0);
  assert_non_null (strstr (err->msg, "already in use"));
  err_release (&err);
  close (fd);
  assert_true (port_check ("nonsense", 1, false, &err) < 0);
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_publish_ok),     cmocka_unit_test (test_publish_bad),
    cmocka_unit_test (test_publish_ranges), cmocka_unit_test (test_publish_bad_ranges),
    cmocka_unit_test (test_alloc),          cmocka_unit_test (test_names),
    cmocka_unit_test (test_ports),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
