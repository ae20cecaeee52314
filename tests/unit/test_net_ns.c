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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net.h"
#include "net/udpwatch.h"

static char ns[32];

/* Runs a shell command line inside namespace `where` and returns its
   output (first 8 KiB). */
static char *
in_netns (const char *where, const char *cmd)
{
  static char out[8192];
  char line[1024];
  FILE *p;
  size_t n;

  assert_true ((size_t) snprintf (line, sizeof line, "ip netns exec %s sh -c '%s' 2>&1", where, cmd)
               < sizeof line);
  p = popen (line, "r");
  assert_non_null (p);
  n = fread (out, 1, sizeof out - 1, p);
  out[n] = '\0';
  pclose (p);
  return out;
}

/* The same in the test namespace (the host's side). */
static char *
in_ns (const char *cmd)
{
  return in_netns (ns, cmd);
}

static void sh (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Runs a shell command line that must succeed. */
static void
sh (const char *fmt, ...)
{
  char line[1024];
  va_list ap;
  int n;

  va_start (ap, fmt);
  n = vsnprintf (line, sizeof line, fmt, ap);
  va_end (ap);
  assert_true (n >= 0 && (size_t) n < sizeof line);
  if (system (line) != 0)
    fail_msg ("failed: %s", line);
}

/* The namespace of the guest with address .OCTET. */
static const char *
guest_ns (unsigned octet)
{
  static char name[2][48];
  char *n = name[octet & 1];

  snprintf (n, sizeof name[0], "%s-g%u", ns, octet);
  return n;
}

/* A stand-in guest: a namespace whose eth0 (with the MAC and address chvm
   assigns) is the peer of a veth named like the VM's tap in the test
   namespace, so that net_setup_vm finds the "tap" and bridges it the way
   it does a real one. */
static void
make_guest (const struct vm_record *r, unsigned octet)
{
  const char *g = guest_ns (octet);

  sh ("ip netns add %s", g);
  sh ("ip -n %s link add %s type veth peer name eth0 netns %s", ns, r->tap, g);
  sh ("ip -n %s link set eth0 address %s up && ip -n %s link set lo up", g, r->mac, g);
  sh ("ip -n %s addr add %s dev eth0 && ip -n %s route add default via 10.213.0.1", g, r->address,
      g);
}

/* A TCP server in namespace `where` that says "hi" to every client, ready
   when this returns; it ends with the namespace's processes (teardown). */
static void
listen_hi (const char *where, const char *addr, unsigned port)
{
  sh ("ip netns exec %s timeout 60 socat TCP-LISTEN:%u,bind=%s,fork,reuseaddr "
      "SYSTEM:\"echo hi\" </dev/null >/dev/null 2>&1 &",
      where, port, addr);
  sh ("ip netns exec %s sh -c 'for i in $(seq 100); do "
      "ss -Hltn \"sport = :%u\" | grep -q . && exit 0; sleep 0.1; done; exit 1'",
      where, port);
}

/* Whether a TCP client in `where` gets "hi" from ADDR:PORT (3 s at most). */
static bool
says_hi (const char *where, const char *addr, unsigned port)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "timeout 3 socat -u TCP:%s:%u,connect-timeout=2 STDOUT", addr, port);
  return strstr (in_netns (where, cmd), "hi") != NULL;
}

/* The same as the unprivileged user nobody. */
static bool
says_hi_as_nobody (const char *where, const char *addr, unsigned port)
{
  char cmd[320];

  snprintf (cmd, sizeof cmd,
            "setpriv --reuid=65534 --regid=65534 --clear-groups "
            "timeout 3 socat -u TCP:%s:%u,connect-timeout=2 STDOUT",
            addr, port);
  return strstr (in_netns (where, cmd), "hi") != NULL;
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
  assert_int_equal (net_ensure_tap (ns, &a, &err), 0);
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

/* A record with one TCP publish ADDR:HOST -> 9222. */
static void
record1 (struct vm_record *r, uint32_t addr, const char *host_addr, uint16_t host_port)
{
  record (r, addr);
  r->n_publish = 1;
  snprintf (r->publish[0].host_addr, sizeof r->publish[0].host_addr, "%s", host_addr);
  r->publish[0].host_port = host_port;
}

/* chvm changes no host-wide sysctl for good: route_localnet stays
   as it was on "all" (on for the bridge only), and ip_forward goes back to
   what it was when the last VM's networking goes. */
static void
test_sysctls (void **state)
{
  struct vm_record a;
  struct err *err = NULL;
  char *out;

  (void) state;
  record (&a, NET_SUBNET | 2);
  sh ("ip netns exec %s sh -c 'echo 0 >/proc/sys/net/ipv4/ip_forward; "
      "echo 0 >/proc/sys/net/ipv4/conf/all/route_localnet'",
      ns);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  out = in_ns ("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/route_localnet "
               "/proc/sys/net/ipv4/conf/chvm0/route_localnet | tr -d \"\\n\"");
  assert_string_equal (out, "101");
  assert_int_equal (net_teardown_vm (ns, &a, &err), 0);
  assert_int_equal (net_teardown_all (ns, &err), 0);
  out = in_ns ("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/all/route_localnet "
               "| tr -d \"\\n\"");
  assert_string_equal (out, "00");

  /* On before: left on. */
  sh ("ip netns exec %s sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward'", ns);
  assert_int_equal (net_setup_vm (ns, &a, &err), 0);
  assert_int_equal (net_teardown_vm (ns, &a, &err), 0);
  assert_int_equal (net_teardown_all (ns, &err), 0);
  out = in_ns ("cat /proc/sys/net/ipv4/ip_forward");
  assert_int_equal (out[0], '1');
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* CVE-2020-8558: route_localnet on the bridge must not let a guest
   reach the host's 127.0.0.1-only services, while a publish on 127.0.0.1
   still reaches the guest. */
static void
test_localnet_guard (void **state)
{
  struct vm_record a;
  struct err *err = NULL;
  const char *g = guest_ns (2);
  char cmd[512];

  (void) state;
  record1 (&a, NET_SUBNET | 2, "127.0.0.1", 19002);
  make_guest (&a, 2);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  listen_hi (g, "0.0.0.0", 9222);
  assert_true (says_hi (ns, "127.0.0.1", 19002));
  /* The guest routes 127.0.0.0/8 to the host, as a hostile one would. */
  sh ("ip -n %s route del local 127.0.0.0/8 dev lo table local", g);
  sh ("ip -n %s route del local 127.0.0.1 dev lo table local", g);
  sh ("ip -n %s route add 127.0.0.0/8 via 10.213.0.1 dev eth0", g);
  sh ("ip netns exec %s sh -c 'echo 1 >/proc/sys/net/ipv4/conf/all/route_localnet'", g);
  /* A datagram to a 127.0.0.1-only service of the host (the reply of a TCP
     one would come from 127.0.0.1, which the guest's stack drops). */
  snprintf (
      cmd, sizeof cmd,
      "timeout 3 socat -u UDP-RECVFROM:7001,bind=127.0.0.1 STDOUT & "
      "for i in $(seq 100); do ss -Hlun \"sport = :7001\" | grep -q . && break; sleep 0.1; "
      "done; ip netns exec %s sh -c \"echo pwned | socat -u STDIN UDP-SENDTO:127.0.0.1:7001\"; "
      "wait",
      g);
  assert_null (strstr (in_ns (cmd), "pwned"));
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* A publish on ADDR is DNATed for ADDR only; one on 0.0.0.0 for
   every local address. */
static void
test_publish_address (void **state)
{
  struct vm_record a;
  struct err *err = NULL;
  char *out;

  (void) state;
  record1 (&a, NET_SUBNET | 2, "127.0.0.1", 19002);
  a.n_publish = 2;
  a.publish[1] = a.publish[0];
  snprintf (a.publish[1].host_addr, sizeof a.publish[1].host_addr, "0.0.0.0");
  a.publish[1].host_port = 19102;
  make_guest (&a, 2);
  /* A second host address, on an interface of its own. */
  sh ("ip -n %s link add h0 type veth peer name h1 && ip -n %s addr add 192.0.2.1/24 dev h0", ns,
      ns);
  sh ("ip -n %s link set h0 up && ip -n %s link set h1 up", ns, ns);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  listen_hi (guest_ns (2), "0.0.0.0", 9222);
  assert_true (says_hi (ns, "127.0.0.1", 19002));
  assert_false (says_hi (ns, "192.0.2.1", 19002));
  assert_true (says_hi (ns, "127.0.0.1", 19102));
  assert_true (says_hi (ns, "192.0.2.1", 19102));
  out = in_ns ("nft list table ip chvm");
  assert_non_null (strstr (out, "127.0.0.1 . 19002"));

  /* An IPv6 address cannot be published through the ip table. */
  snprintf (a.publish[1].host_addr, sizeof a.publish[1].host_addr, "::1");
  assert_true (net_setup_vm (ns, &a, &err) < 0);
  assert_non_null (strstr (err->msg, "IPv4 addresses only"));
  err_release (&err);
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* Guests reach neither each other (at L2 or routed through the
   host) nor the host with another guest's address. */
static void
test_guest_isolation (void **state)
{
  struct vm_record a, b;
  struct err *err = NULL;
  const char *ga = guest_ns (2), *gb = guest_ns (3);
  char *out;

  (void) state;
  record1 (&a, NET_SUBNET | 2, "127.0.0.1", 19002);
  record1 (&b, NET_SUBNET | 3, "127.0.0.1", 19003);
  make_guest (&a, 2);
  make_guest (&b, 3);
  if (net_setup_vm (ns, &a, &err) < 0 || net_setup_vm (ns, &b, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  listen_hi (gb, "0.0.0.0", 9222);
  listen_hi (ns, "10.213.0.1", 7000);
  /* The host reaches both (and learns b's MAC). */
  assert_true (says_hi (ns, "10.213.0.3", 9222));
  assert_true (says_hi (ga, "10.213.0.1", 7000));
  assert_false (says_hi (ga, "10.213.0.3", 9222));
  /* Both route each other through the host, as hostile guests would. */
  sh ("ip -n %s route add 10.213.0.3/32 via 10.213.0.1 dev eth0", ga);
  sh ("ip -n %s route add 10.213.0.2/32 via 10.213.0.1 dev eth0", gb);
  assert_false (says_hi (ga, "10.213.0.3", 9222));

  /* a takes b's address: the host must neither believe its ARP nor take
     its packets. */
  sh ("ip -n %s addr flush dev eth0 && ip -n %s addr add 10.213.0.3/24 dev eth0", ga, ga);
  sh ("ip -n %s route replace default via 10.213.0.1 dev eth0", ga);
  sh ("ip -n %s neigh flush dev eth0", ga);
  assert_false (says_hi (ga, "10.213.0.1", 7000));
  out = in_ns ("ip neigh show 10.213.0.3 dev chvm0");
  assert_null (strstr (out, a.mac));
  assert_true (says_hi (ns, "10.213.0.3", 9222));
  out = in_ns ("bridge -d link show dev chvm-t2");
  assert_non_null (strstr (out, "isolated on"));
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* Other local users reach a guest only through the ports its owner
   published, never its address directly (its DevTools, its agent). */
static void
test_guest_address_root_only (void **state)
{
  struct vm_record a;
  struct err *err = NULL;

  (void) state;
  record1 (&a, NET_SUBNET | 2, "127.0.0.1", 19002);
  make_guest (&a, 2);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  listen_hi (guest_ns (2), "0.0.0.0", 9222);
  assert_true (says_hi (ns, "10.213.0.2", 9222));
  assert_false (says_hi_as_nobody (ns, "10.213.0.2", 9222));
  assert_true (says_hi_as_nobody (ns, "127.0.0.1", 19002)); /* published */
  /* A table made before the rule gets it on the next setup. */
  sh ("ip netns exec %s nft delete chain ip chvm guest_access", ns);
  assert_true (says_hi_as_nobody (ns, "10.213.0.2", 9222));
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  assert_false (says_hi_as_nobody (ns, "10.213.0.2", 9222));
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* A host port another VM publishes already is refused with a clear
   error, and neither the failed setup nor tearing the loser down removes
   the winner's element. */
static void
test_publish_clash (void **state)
{
  struct vm_record a, b;
  struct err *err = NULL;
  char *out;

  (void) state;
  record1 (&a, NET_SUBNET | 2, "127.0.0.1", 19002);
  record1 (&b, NET_SUBNET | 3, "127.0.0.1", 19002);
  make_guest (&a, 2);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup a: %s", err->msg);
  assert_true (net_setup_vm (ns, &b, &err) < 0);
  assert_non_null (
      strstr (err->msg, "127.0.0.1:19002/tcp: host port already published by another VM"));
  err_release (&err);
  out = in_ns ("nft list table ip chvm");
  assert_non_null (strstr (out, "19002 : 10.213.0.2 . 9222"));
  assert_non_null (strstr (out, "127.0.0.1 . 19002"));
  /* rm of the VM that failed to start */
  assert_int_equal (net_teardown_vm (ns, &b, &err), 0);
  out = in_ns ("nft list table ip chvm");
  assert_non_null (strstr (out, "19002 : 10.213.0.2 . 9222"));
  assert_non_null (strstr (out, "127.0.0.1 . 19002"));
  listen_hi (guest_ns (2), "0.0.0.0", 9222);
  assert_true (says_hi (ns, "127.0.0.1", 19002));
  /* a itself still goes. */
  assert_int_equal (net_teardown_vm (ns, &a, &err), 0);
  out = in_ns ("nft list table ip chvm");
  assert_null (strstr (out, "19002"));
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* Whether a datagram sent to ADDR:PORT (from the test namespace, where
   the caller is) reaches the live-view watch w on the tap, as a packet
   toward guest port `gport`. */
static bool
watch_counts (int w, const struct vm_record *r, const char *addr, unsigned port, unsigned gport)
{
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons ((uint16_t) port) };
  uint8_t buf[256] = { 0 };
  struct pollfd pfd = { .fd = w, .events = POLLIN };
  int u = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ssize_t n;
  bool seen = false;

  assert_true (u >= 0);
  assert_int_equal (inet_pton (AF_INET, addr, &to.sin_addr), 1);
  assert_int_equal (sendto (u, buf, 100, 0, (struct sockaddr *) &to, sizeof to), 100);
  while (!seen && poll (&pfd, 1, 1500) == 1 && (n = recv (w, buf, sizeof buf, 0)) > 0)
    seen = udpwatch_match (buf, (size_t) n, r->publish, r->n_publish)
           && (unsigned) (buf[22] << 8 | buf[23]) == gport;
  close (u);
  return seen;
}

/* The live-view watch counts the UDP packets of flows a publish's DNAT
   made (the table marks them), not a datagram sent to the guest's address
   and port directly (which a local root, or an answer to the guest's own
   flow, could be); a table made before the chain gets it on setup. */
static void
test_live_mark (void **state)
{
  struct vm_record a;
  struct err *err = NULL;
  int w;

  (void) state;
  record (&a, NET_SUBNET | 2);
  make_guest (&a, 2);
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  w = udpwatch_open (a.tap, a.publish, a.n_publish, &err);
  if (w < 0)
    fail_msg ("watch: %s", err->msg);
  assert_false (watch_counts (w, &a, "10.213.0.2", 46007, 46007));
  assert_true (watch_counts (w, &a, "127.0.0.1", 56007, 46007));
  sh ("ip netns exec %s nft delete chain ip chvm live_mark", ns);
  assert_false (watch_counts (w, &a, "127.0.0.1", 56008, 46008));
  if (net_setup_vm (ns, &a, &err) < 0)
    fail_msg ("setup: %s", err->msg);
  assert_true (watch_counts (w, &a, "127.0.0.1", 56009, 46009));
  assert_false (watch_counts (w, &a, "10.213.0.2", 46009, 46009));
  close (w);
  assert_int_equal (net_enter_netns (NULL, &err), 0);
}

/* Each test gets a fresh namespace (and its guests' ones, deleted with
   the processes left in them). */
static int
ns_up (void **state)
{
  char cmd[160];

  (void) state;
  snprintf (cmd, sizeof cmd, "ip netns add %s && ip -n %s link set lo up", ns, ns);
  return system (cmd) == 0 ? 0 : -1;
}

static int
ns_down (void **state)
{
  char cmd[512];
  int rc;

  struct err *err = NULL;

  (void) state;
  if (net_enter_netns (NULL, &err) < 0)
    err_release (&err);
  snprintf (cmd, sizeof cmd,
            "for n in %s %s %s; do [ -e /run/netns/$n ] || continue; "
            "ip netns pids $n | xargs -r kill 2>/dev/null; ip netns del $n; done",
            guest_ns (2), guest_ns (3), ns);
  rc = system (cmd);
  return rc == 0 ? 0 : -1;
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_setup_teardown, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_bad_netns, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_sysctls, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_localnet_guard, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_publish_address, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_guest_isolation, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_publish_clash, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_guest_address_root_only, ns_up, ns_down),
    cmocka_unit_test_setup_teardown (test_live_mark, ns_up, ns_down),
  };
  char cmd[96];

  if (geteuid () != 0
      || system ("command -v ip >/dev/null && command -v nft >/dev/null "
                 "&& command -v socat >/dev/null && command -v ss >/dev/null "
                 "&& command -v setpriv >/dev/null")
             != 0)
    {
      printf ("SKIP test_net_ns: needs root, ip, nft, socat, ss and setpriv\n");
      return 0;
    }
  snprintf (ns, sizeof ns, "chvm-test-%d", (int) getpid ());
  snprintf (cmd, sizeof cmd, "ip netns add %s && ip netns del %s", ns, ns);
  if (system (cmd) != 0)
    {
      printf ("SKIP test_net_ns: cannot create a network namespace\n");
      return 0;
    }
  return cmocka_run_group_tests (tests, NULL, NULL);
}
