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

#include "net.h"

static void
test_publish_ok (void **state)
{
  struct vm_publish p;
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
}

static void
test_publish_bad (void **state)
{
  const char *bad[] = { "",         "9222",    ":9222",    "9222:",    "0:1",  "1:0",
                        "65536:1",  "1:99999", "a:1",      "1:2/sctp", "1:2/", "300.1.1.1:1:2",
                        "host:1:2", "1:2:3:4", "[::1:1:2", "-1:2",     "1 :2" };
  struct vm_publish p;
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
  assert_int_equal (net_pick_port (&port, &err), 0);
  assert_true (port > 0);
  assert_int_equal (net_check_port ("127.0.0.1", port, false, &err), 0);
  fd = socket (AF_INET, SOCK_STREAM, 0);
  sa.sin_port = htons (port);
  assert_int_equal (bind (fd, (struct sockaddr *) &sa, sizeof sa), 0);
  assert_int_equal (listen (fd, 1), 0);
  assert_true (net_check_port ("127.0.0.1", port, false, &err) < 0);
  assert_non_null (strstr (err->msg, "already in use"));
  err_release (&err);
  close (fd);
  assert_true (net_check_port ("nonsense", 1, false, &err) < 0);
  err_release (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_publish_ok), cmocka_unit_test (test_publish_bad),
    cmocka_unit_test (test_alloc),      cmocka_unit_test (test_names),
    cmocka_unit_test (test_ports),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
