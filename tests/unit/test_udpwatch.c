/* SPDX-License-Identifier: Apache-2.0 */
/* The live-view watch (host-tool/udpwatch.c): which packets count, and the
   kernel filter on a real interface (lo; needs CAP_NET_RAW, else that test
   is skipped). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/udpwatch.h"

static const struct publish pub[] = {
  { .host_addr = "127.0.0.1", .host_port = 19222, .guest_port = 9222, .count = 1 },
  { .host_addr = "127.0.0.1", .host_port = 56000, .guest_port = 56000, .count = 101, .udp = true },
  { .host_addr = "127.0.0.1", .host_port = 5353, .guest_port = 53, .udp = true }, /* count 0: 1 */
};
#define N_PUB (sizeof pub / sizeof pub[0])

/* An IPv4 header of ihl words, protocol proto, then the two ports. */
static size_t
packet (uint8_t *p, unsigned ihl, uint8_t proto, uint16_t sport, uint16_t dport)
{
  memset (p, 0, 64);
  p[0] = (uint8_t) (0x40 | ihl);
  p[9] = proto;
  p[ihl * 4] = (uint8_t) (sport >> 8);
  p[ihl * 4 + 1] = (uint8_t) sport;
  p[ihl * 4 + 2] = (uint8_t) (dport >> 8);
  p[ihl * 4 + 3] = (uint8_t) dport;
  return ihl * 4 + 8;
}

static void
test_match (void **state)
{
  uint8_t p[64];
  size_t n;

  (void) state;
  /* To the guest's media range (a viewer's), with IP options, to a
     one-port range (count 0 means 1). */
  n = packet (p, 5, IPPROTO_UDP, 40000, 56000);
  assert_true (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 5, IPPROTO_UDP, 40000, 56100);
  assert_true (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 7, IPPROTO_UDP, 40000, 53);
  assert_true (udpwatch_match (p, n, pub, N_PUB));
  /* From a media port (an answer to the guest's own traffic), just outside
     the range, TCP to a published TCP port, UDP to 9222. */
  n = packet (p, 5, IPPROTO_UDP, 56000, 40000);
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 5, IPPROTO_UDP, 56050, 56101);
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 5, IPPROTO_TCP, 40000, 56000);
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 5, IPPROTO_UDP, 40000, 9222);
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  /* Malformed: not IPv4, ihl below 5, ports past the end. */
  n = packet (p, 5, IPPROTO_UDP, 1, 56000);
  p[0] = 0x65;
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 5, IPPROTO_UDP, 1, 56000);
  p[0] = 0x44;
  assert_false (udpwatch_match (p, n, pub, N_PUB));
  n = packet (p, 15, IPPROTO_UDP, 1, 56000);
  assert_false (udpwatch_match (p, 60, pub, N_PUB));
  assert_false (udpwatch_match (p, 19, pub, N_PUB));
  assert_false (udpwatch_wanted (pub, 1));
  assert_true (udpwatch_wanted (pub, N_PUB));
}

/* The kernel filter: on lo, a UDP datagram to a published port with the
   DNAT mark arrives (snapped); a TCP connection's packets, UDP to other
   ports and UDP to a published port without the mark do not. */
static void
test_filter_on_lo (void **state)
{
  struct err *e = NULL;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t al = sizeof a;
  uint8_t big[1000] = { 0 }, buf[2048];
  int w, u, l, t, mark;
  struct pollfd pfd;
  ssize_t n;
  bool saw = false;

  (void) state;
  w = udpwatch_open ("lo", pub, N_PUB, &e);
  if (w < 0 && (e->status == EPERM || e->status == EACCES))
    {
      err_release (&e);
      skip ();
    }
  assert_true (w >= 0);
  /* TCP first: a connection on lo, nothing of it may arrive. */
  l = socket (AF_INET, SOCK_STREAM, 0);
  assert_int_equal (bind (l, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (listen (l, 1), 0);
  assert_int_equal (getsockname (l, (struct sockaddr *) &a, &al), 0);
  t = socket (AF_INET, SOCK_STREAM, 0);
  assert_int_equal (connect (t, (struct sockaddr *) &a, sizeof a), 0);
  assert_int_equal (write (t, big, sizeof big), (ssize_t) sizeof big);
  close (t);
  close (l);
  /* UDP outside the published ranges (a DNS or QUIC answer, a datagram
     anyone sends to the ephemeral range): stays in the kernel.  Then one
     to port 56050 (in the media range). */
  u = socket (AF_INET, SOCK_DGRAM, 0);
  for (unsigned port = 55990; port < 56000; port++)
    {
      a.sin_port = htons ((uint16_t) port);
      assert_int_equal (sendto (u, big, 100, 0, (struct sockaddr *) &a, sizeof a), 100);
    }
  a.sin_port = htons (56101);
  assert_int_equal (sendto (u, big, 100, 0, (struct sockaddr *) &a, sizeof a), 100);
  a.sin_port = htons (54);
  assert_int_equal (sendto (u, big, 100, 0, (struct sockaddr *) &a, sizeof a), 100);
  /* In the media range but not a flow the host's DNAT made (no mark):
     stays in the kernel too.  Then a marked one, told apart by its length. */
  a.sin_port = htons (56050);
  assert_int_equal (sendto (u, big, 100, 0, (struct sockaddr *) &a, sizeof a), 100);
  mark = UDPWATCH_MARK | 0x5;
  assert_int_equal (setsockopt (u, SOL_SOCKET, SO_MARK, &mark, sizeof mark), 0);
  assert_int_equal (sendto (u, big, sizeof big, 0, (struct sockaddr *) &a, sizeof a),
                    (ssize_t) sizeof big);
  close (u);
  pfd = (struct pollfd){ .fd = w, .events = POLLIN };
  while (poll (&pfd, 1, 2000) == 1 && (n = recv (w, buf, sizeof buf, 0)) > 0)
    {
      /* Anything that came is UDP to a published port, cut to the snap
         length. */
      assert_true (n <= UDPWATCH_SNAP);
      assert_int_equal (buf[9], IPPROTO_UDP);
      assert_true (udpwatch_match (buf, (size_t) n, pub, N_PUB));
      assert_int_equal (buf[2] << 8 | buf[3], 28 + sizeof big);
      saw = true;
      break;
    }
  assert_true (saw);
  close (w);
}

/* Whether a datagram in the media range, sent on `from` with packet mark
   `mark`, comes to watch. */
static bool
sees_media (int watch, int from, const struct sockaddr_in *to, int mark)
{
  uint8_t buf[256] = { 0 };
  struct pollfd pfd = { .fd = watch, .events = POLLIN };
  ssize_t n;

  assert_int_equal (setsockopt (from, SOL_SOCKET, SO_MARK, &mark, sizeof mark), 0);
  assert_int_equal (sendto (from, buf, 100, 0, (const struct sockaddr *) to, sizeof *to), 100);
  while (poll (&pfd, 1, 2000) == 1 && (n = recv (watch, buf, sizeof buf, 0)) > 0)
    if (udpwatch_match (buf, (size_t) n, pub, N_PUB))
      return true;
  return false;
}

/* A tap is a bridge port: what the bridge sends out through it (toward
   the guest) reaches only an ETH_P_ALL socket, and what arrives on it (the
   guest's) must not count.  Here a veth end vb on bridge br0 stands for the
   tap, va for the guest, in a namespace of the test's (made by br_up,
   removed by br_down whatever the test did).  Only a packet with the mark
   of a DNATed flow counts (SO_MARK stands for the host's nft rule). */
static char ns[48];

static int
br_up (void **state)
{
  char cmd[1024];

  (void) state;
  ns[0] = '\0';
  if (geteuid () != 0 || system ("command -v ip >/dev/null") != 0)
    return 0;
  snprintf (ns, sizeof ns, "chvm-uw-%d", (int) getpid ());
  snprintf (cmd, sizeof cmd,
            "ip netns add %1$s && ip -n %1$s link add va type veth peer name vb"
            " && ip -n %1$s link add br0 type bridge && ip -n %1$s link set vb master br0"
            " && ip -n %1$s addr add 10.9.0.1/24 dev br0 && ip -n %1$s link set va up"
            " && ip -n %1$s link set vb up && ip -n %1$s link set br0 up"
            " && ip -n %1$s neigh add 10.9.0.2 lladdr 02:00:00:00:00:02 dev br0",
            ns);
  return system (cmd) == 0 ? 0 : -1;
}

static int
br_down (void **state)
{
  char cmd[96];

  (void) state;
  if (ns[0] == '\0')
    return 0;
  snprintf (cmd, sizeof cmd, "ip netns del %s", ns);
  return system (cmd) == 0 ? 0 : -1;
}

static void
test_bridge_port (void **state)
{
  char path[96];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons (56007) };
  struct err *e = NULL;
  int self, other, port, peer, u;
  bool toward, unmarked, from_guest;

  (void) state;
  if (ns[0] == '\0')
    skip ();
  snprintf (path, sizeof path, "/var/run/netns/%s", ns);
  self = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  other = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (self >= 0 && other >= 0);
  assert_int_equal (setns (other, CLONE_NEWNET), 0);
  port = udpwatch_open ("vb", pub, N_PUB, &e); /* the bridge port: sends toward va */
  peer = udpwatch_open ("va", pub, N_PUB, &e); /* receives: nothing of it counts */
  u = socket (AF_INET, SOCK_DGRAM, 0);
  inet_pton (AF_INET, "10.9.0.2", &to.sin_addr);
  unmarked = port >= 0 && u >= 0 && sees_media (port, u, &to, 0x5);
  toward = port >= 0 && u >= 0 && sees_media (port, u, &to, (int) UDPWATCH_MARK);
  from_guest = peer >= 0 && u >= 0 && sees_media (peer, u, &to, (int) UDPWATCH_MARK);
  close (u);
  close (port);
  close (peer);
  assert_int_equal (setns (self, CLONE_NEWNET), 0);
  close (self);
  close (other);
  assert_true (toward);
  assert_false (unmarked);
  assert_false (from_guest);
}

static void
test_open_bad_interface (void **state)
{
  struct err *e = NULL;

  (void) state;
  assert_true (udpwatch_open ("chvm-nonesuch", pub, N_PUB, &e) < 0);
  assert_non_null (strstr (e->msg, "no interface chvm-nonesuch"));
  err_release (&e);
  /* Nothing to watch without a published UDP port. */
  assert_true (udpwatch_open ("lo", pub, 1, &e) < 0);
  assert_non_null (strstr (e->msg, "no UDP port is published"));
  err_release (&e);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_match),
    cmocka_unit_test (test_filter_on_lo),
    cmocka_unit_test_setup_teardown (test_bridge_port, br_up, br_down),
    cmocka_unit_test (test_open_bad_interface),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
