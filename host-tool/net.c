/* SPDX-License-Identifier: Apache-2.0 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "num.h"
#include "proc.h"

#define CMD_TIMEOUT_MS 10000

extern char **environ;

int
net_pick_port (uint16_t *port, struct err **err)
{
  struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t sl = sizeof sa;
  cleanup_close int fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  /* The port is free again once closed; QEMU binds it right after, and a
     loser of that race fails to start with a clear hostfwd error. */
  if (fd < 0 || bind (fd, (struct sockaddr *) &sa, sizeof sa) < 0
      || getsockname (fd, (struct sockaddr *) &sa, &sl) < 0)
    return err_make (err, errno, "pick a free port on 127.0.0.1");
  *port = ntohs (sa.sin_port);
  return 0;
}

int
net_check_port (const char *addr, uint16_t port, bool udp, struct err **err)
{
  struct sockaddr_storage ss = { 0 };
  struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
  cleanup_close int fd = -1;
  socklen_t sl;
  int one = 1;

  if (inet_pton (AF_INET, addr, &s4->sin_addr) == 1)
    {
      s4->sin_family = AF_INET;
      s4->sin_port = htons (port);
      sl = sizeof *s4;
    }
  else if (inet_pton (AF_INET6, addr, &s6->sin6_addr) == 1)
    {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons (port);
      sl = sizeof *s6;
    }
  else
    return err_make (err, 0, "publish address '%s' is not an IP address", addr);
  fd = socket (ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "socket");
  /* Same option QEMU's listener uses, so TIME_WAIT leftovers do not count. */
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, sl) < 0)
    {
      if (errno == EADDRINUSE)
        return err_make (err, 0, "publish %s:%u/%s: port already in use", addr, port,
                         udp ? "udp" : "tcp");
      return err_make (err, errno, "publish %s:%u/%s", addr, port, udp ? "udp" : "tcp");
    }
  return 0;
}

static int
parse_port (const char *s, size_t n, uint16_t *out)
{
  uint64_t v;

  if (num_parse_u64 (s, n, 65535, &v) < 0 || v == 0)
    return -1;
  *out = (uint16_t) v;
  return 0;
}

/* "LO" or "LO-HI" (inclusive) into its first port and length. */
static int
parse_range (const char *s, size_t n, uint16_t *lo, unsigned *count, const char *whole,
             const char *side, struct err **err)
{
  const char *dash = memchr (s, '-', n);
  uint16_t hi;

  if (dash == NULL)
    {
      if (parse_port (s, n, lo) < 0)
        return err_make (err, 0, "--publish '%s': bad %s port", whole, side);
      *count = 1;
      return 0;
    }
  if (parse_port (s, (size_t) (dash - s), lo) < 0
      || parse_port (dash + 1, n - (size_t) (dash - s) - 1, &hi) < 0)
    return err_make (err, 0, "--publish '%s': bad %s port range", whole, side);
  if (hi < *lo)
    return err_make (err, 0, "--publish '%s': %s port range is reversed", whole, side);
  *count = (unsigned) (hi - *lo) + 1;
  return 0;
}

int
net_parse_publish (const char *s, struct vm_publish *out, struct err **err)
{
  const char *slash = strrchr (s, '/'), *end, *colon, *hp;
  size_t addr_len = 0;
  const char *addr = NULL;
  unsigned host_n, guest_n;

  memset (out, 0, sizeof *out);
  end = slash ? slash : s + strlen (s);
  if (slash != NULL)
    {
      if (strcmp (slash, "/udp") == 0)
        out->udp = true;
      else if (strcmp (slash, "/tcp") != 0)
        return err_make (err, 0, "--publish '%s': protocol must be tcp or udp", s);
    }
  /* GUEST is after the last ':' before the protocol. */
  colon = memrchr (s, ':', (size_t) (end - s));
  if (colon == NULL)
    {
      /* "LO-HI": the same range on both sides (neko's UDP media ports). */
      if (memchr (s, '-', (size_t) (end - s)) == NULL)
        return err_make (err, 0, "--publish '%s': expected [ADDR:]HOST:GUEST[/udp]", s);
      if (parse_range (s, (size_t) (end - s), &out->host_port, &host_n, s, "host", err) < 0)
        return -1;
      out->guest_port = out->host_port;
      out->count = (uint16_t) host_n;
      snprintf (out->host_addr, sizeof out->host_addr, "127.0.0.1");
      return 0;
    }
  if (parse_range (colon + 1, (size_t) (end - colon - 1), &out->guest_port, &guest_n, s, "guest",
                   err)
      < 0)
    return -1;
  hp = memrchr (s, ':', (size_t) (colon - s));
  if (hp == NULL)
    hp = s;
  else
    {
      addr = s;
      addr_len = (size_t) (hp - s);
      hp++;
    }
  if (parse_range (hp, (size_t) (colon - hp), &out->host_port, &host_n, s, "host", err) < 0)
    return -1;
  if (host_n != guest_n)
    return err_make (err, 0, "--publish '%s': host and guest ranges differ in length (%u, %u)", s,
                     host_n, guest_n);
  out->count = (uint16_t) host_n;
  if (addr == NULL || addr_len == 0)
    snprintf (out->host_addr, sizeof out->host_addr, "127.0.0.1");
  else
    {
      unsigned char tmp[sizeof (struct in6_addr)];
      if (addr[0] == '[' && addr_len >= 2 && addr[addr_len - 1] == ']')
        {
          addr++;
          addr_len -= 2;
        }
      if (addr_len >= sizeof out->host_addr)
        return err_make (err, 0, "--publish '%s': bad address", s);
      memcpy (out->host_addr, addr, addr_len);
      out->host_addr[addr_len] = '\0';
      if (inet_pton (AF_INET, out->host_addr, tmp) != 1
          && inet_pton (AF_INET6, out->host_addr, tmp) != 1)
        return err_make (err, 0, "--publish '%s': '%s' is not an IP address", s, out->host_addr);
    }
  return 0;
}

bool
net_publish_overlap (const struct vm_publish *a, const struct vm_publish *b)
{
  return a->udp == b->udp && a->host_port < b->host_port + vm_publish_ports (b)
         && b->host_port < a->host_port + vm_publish_ports (a);
}

int
net_parse_ipv4 (const char *s, uint32_t *addr, struct err **err)
{
  char buf[20];
  struct in_addr in;
  size_t n = strcspn (s, "/");

  if (n >= sizeof buf)
    return err_make (err, 0, "bad IPv4 address '%s'", s);
  memcpy (buf, s, n);
  buf[n] = '\0';
  if (inet_pton (AF_INET, buf, &in) != 1)
    return err_make (err, 0, "bad IPv4 address '%s'", s);
  *addr = ntohl (in.s_addr);
  return 0;
}

int
net_alloc_address (const uint32_t *used, size_t n, uint32_t *out, struct err **err)
{
  for (uint32_t host = 2; host < 255; host++)
    {
      uint32_t a = NET_SUBNET | host;
      bool taken = false;
      for (size_t i = 0; i < n && !taken; i++)
        taken = used[i] == a;
      if (!taken)
        {
          *out = a;
          return 0;
        }
    }
  return err_make (err, ENOSPC, "no free address left in 10.213.0.0/24");
}

void
net_tap_name (uint32_t addr, char *out, size_t len)
{
  snprintf (out, len, "chvm-t%u", addr & 0xff);
}

void
net_mac (uint32_t addr, char *out, size_t len)
{
  /* 02: locally administered, unicast. */
  snprintf (out, len, "02:c4:0a:d5:%02x:%02x", (addr >> 8) & 0xff, addr & 0xff);
}

int
net_run (const char *const argv[], const char *input, bool quiet, struct err **err)
{
  posix_spawn_file_actions_t fa;
  cleanup_close int rd = -1, in_wr = -1, in_rd = -1;
  int pe[2], pi[2], st = 0, r;
  double deadline = proc_now_ms () + CMD_TIMEOUT_MS;
  char msg[512];
  size_t used = 0;
  pid_t pid;

  if (pipe2 (pe, O_CLOEXEC) < 0 || pipe2 (pi, O_CLOEXEC) < 0)
    return err_make (err, errno, "pipe2");
  rd = pe[0];
  in_rd = pi[0];
  in_wr = pi[1];
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in_rd, 0);
  posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, pe[1], 2);
  r = posix_spawnp (&pid, argv[0], &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (pe[1]);
  close (steal_fd (&in_rd));
  if (r != 0)
    return err_make (err, r, "start %s", argv[0]);
  if (input != NULL && write (in_wr, input, strlen (input)) < 0)
    {
      /* the exit status below tells what went wrong */
    }
  close (steal_fd (&in_wr));
  for (;;)
    {
      struct pollfd p = { .fd = rd, .events = POLLIN };
      double left = deadline - proc_now_ms ();
      int n = poll (&p, 1, left > 0 ? (int) left + 1 : 0);
      ssize_t got;
      char sink[256];

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          proc_terminate (pid, 1000, NULL);
          return err_make (err, ETIMEDOUT, "%s %s: no exit within %d ms", argv[0],
                           argv[1] ? argv[1] : "", CMD_TIMEOUT_MS);
        }
      if (used < sizeof msg - 1)
        got = TEMP_FAILURE_RETRY (read (rd, msg + used, sizeof msg - 1 - used));
      else
        got = TEMP_FAILURE_RETRY (read (rd, sink, sizeof sink));
      if (got <= 0)
        break;
      if (used < sizeof msg - 1)
        used += (size_t) got;
    }
  msg[used] = '\0';
  msg[strcspn (msg, "\n")] = '\0';
  r = proc_wait_exit (pid, CMD_TIMEOUT_MS, &st, err);
  if (r < 0)
    return r;
  if (r == 0)
    {
      proc_terminate (pid, 1000, NULL);
      return err_make (err, ETIMEDOUT, "%s did not exit", argv[0]);
    }
  if (WIFEXITED (st) && WEXITSTATUS (st) == 0)
    return 0;
  if (quiet)
    return 1;
  {
    char cmd[256];
    size_t off = 0;
    for (size_t i = 0; argv[i] != NULL && off < sizeof cmd; i++)
      off += (size_t) snprintf (cmd + off, sizeof cmd - off, "%s%s", i ? " " : "", argv[i]);
    return err_make (err, 0, "'%s' failed: %s", cmd, msg[0] ? msg : "non-zero exit");
  }
}

/* Enters the named namespace for the rest of this process: the VMM that
   chvm spawns next must see the tap too. */
int
net_enter_netns (const char *netns, struct err **err)
{
  /* The namespace chvm started in, to come back to when a command handles
     several VMs. */
  static int home_fd = -2;
  char path[128];
  cleanup_close int fd = -1;

  if (netns == NULL || *netns == '\0')
    {
      /* Never left home: nothing to do. */
      if (home_fd >= 0 && setns (home_fd, CLONE_NEWNET) < 0)
        return err_make (err, errno, "return to the host network namespace");
      return 0;
    }
  if (strchr (netns, '/') != NULL || strcmp (netns, "..") == 0 || strcmp (netns, ".") == 0
      || (size_t) snprintf (path, sizeof path, "/run/netns/%s", netns) >= sizeof path)
    return err_make (err, 0, "bad network namespace name '%s'", netns);
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return err_make (err, errno, "network namespace %s", netns);
  if (home_fd == -2)
    home_fd = open ("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (setns (fd, CLONE_NEWNET) < 0)
    return err_make (err, errno, "enter network namespace %s", netns);
  return 0;
}

static int
write_sysctl (const char *path, const char *v, struct err **err)
{
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write (fd, v, strlen (v)) < 0)
    return err_make (err, errno, "write %s", path);
  return 0;
}

static const char nft_table[]
    = "table ip chvm {\n"
      "  map pub_tcp { type inet_service : ipv4_addr . inet_service; }\n"
      "  map pub_udp { type inet_service : ipv4_addr . inet_service; }\n"
      "  chain prerouting {\n"
      "    type nat hook prerouting priority dstnat; policy accept;\n"
      "    fib daddr type local dnat ip addr . port to tcp dport map @pub_tcp\n"
      "    fib daddr type local dnat ip addr . port to udp dport map @pub_udp\n"
      "  }\n"
      "  chain output {\n"
      "    type nat hook output priority -100; policy accept;\n"
      "    fib daddr type local dnat ip addr . port to tcp dport map @pub_tcp\n"
      "    fib daddr type local dnat ip addr . port to udp dport map @pub_udp\n"
      "  }\n"
      "  chain postrouting {\n"
      "    type nat hook postrouting priority srcnat; policy accept;\n"
      "    ip saddr 10.213.0.0/24 oifname != \"" NET_BRIDGE "\" masquerade\n"
      "    ip daddr 10.213.0.0/24 oifname \"" NET_BRIDGE "\" ip saddr 127.0.0.0/8 masquerade\n"
      "  }\n"
      "}\n";

static int
ensure_bridge_and_nat (struct err **err)
{
  static const char *const probe_br[] = { "ip", "link", "show", "dev", NET_BRIDGE, NULL };
  static const char *const add_br[]
      = { "ip", "link", "add", "name", NET_BRIDGE, "type", "bridge", NULL };
  static const char *const addr_br[]
      = { "ip", "addr", "replace", "10.213.0.1/24", "dev", NET_BRIDGE, NULL };
  static const char *const up_br[] = { "ip", "link", "set", "dev", NET_BRIDGE, "up", NULL };
  static const char *const probe_nft[] = { "nft", "list", "table", "ip", "chvm", NULL };
  static const char *const add_nft[] = { "nft", "-f", "-", NULL };
  int r;

  r = net_run (probe_br, NULL, true, err);
  if (r < 0 || (r == 1 && net_run (add_br, NULL, false, err) < 0))
    return -1;
  if (net_run (addr_br, NULL, false, err) < 0 || net_run (up_br, NULL, false, err) < 0)
    return -1;
  /* Forwarding for the guests, and DNAT of 127.0.0.1 to them. */
  if (write_sysctl ("/proc/sys/net/ipv4/ip_forward", "1", err) < 0
      || write_sysctl ("/proc/sys/net/ipv4/conf/all/route_localnet", "1", err) < 0)
    return -1;
  r = net_run (probe_nft, NULL, true, err);
  if (r < 0 || (r == 1 && net_run (add_nft, nft_table, false, err) < 0))
    return -1;
  return 0;
}

int
net_ensure_tap (const char *netns, const char *tap, struct err **err)
{
  const char *const probe[] = { "ip", "link", "show", "dev", tap, NULL };
  const char *const add_tap[] = { "ip", "tuntap", "add", "dev", tap, "mode", "tap", NULL };
  const char *const master[]
      = { "ip", "link", "set", "dev", tap, "master", NET_BRIDGE, "up", NULL };
  int r;

  if ((netns != NULL && net_enter_netns (netns, err) < 0) || ensure_bridge_and_nat (err) < 0)
    return -1;
  r = net_run (probe, NULL, true, err);
  if (r < 0 || (r == 1 && net_run (add_tap, NULL, false, err) < 0))
    return -1;
  return net_run (master, NULL, false, err);
}

int
net_tap_clear_addresses (const char *tap, struct err **err)
{
  const char *const flush[] = { "ip", "-4", "addr", "flush", "dev", tap, NULL };

  return net_run (flush, NULL, false, err);
}

/* One nft command per publish: a range becomes one element per port in the
   same map, added or deleted together (the map's rules stay as they are;
   nft's dnat has no "shift the port by an offset" form).  The command goes
   through stdin: 65535 elements would not fit one argument. */
static int
publish_elements (const struct vm_record *r, bool add_p, struct err **err)
{
  static const char *const argv[] = { "nft", "-f", "-", NULL };
  char addr[20];
  size_t n;

  n = strcspn (r->address, "/");
  if (n >= sizeof addr)
    return err_make (err, 0, "bad address %s", r->address);
  memcpy (addr, r->address, n);
  addr[n] = '\0';
  for (size_t i = 0; i < r->n_publish; i++)
    {
      const struct vm_publish *p = &r->publish[i];
      cleanup_free char *cmd = NULL;
      size_t len = 0;
      FILE *f = open_memstream (&cmd, &len);
      int bad;

      if (f == NULL)
        return err_make (err, errno, "nft command");
      fprintf (f, "%s element ip chvm %s { ", add_p ? "add" : "delete",
               p->udp ? "pub_udp" : "pub_tcp");
      for (unsigned k = 0; k < vm_publish_ports (p); k++)
        fprintf (f, "%s%u : %s . %u", k ? ", " : "", p->host_port + k, addr, p->guest_port + k);
      fputs (" }\n", f);
      bad = ferror (f);
      if (fclose (f) != 0 || bad)
        return err_make (err, ENOMEM, "nft command");
      if (net_run (argv, cmd, !add_p, err) < 0)
        return -1;
    }
  return 0;
}

int
net_setup_vm (const char *netns, const struct vm_record *r, struct err **err)
{
  if (net_ensure_tap (netns, r->tap, err) < 0)
    return -1;
  if (publish_elements (r, true, err) < 0)
    {
      cleanup_err struct err *e2 = NULL;
      net_teardown_vm (NULL, r, &e2);
      return -1;
    }
  return 0;
}

int
net_teardown_vm (const char *netns, const struct vm_record *r, struct err **err)
{
  const char *const del[] = { "ip", "link", "del", "dev", r->tap, NULL };

  if (netns != NULL && net_enter_netns (netns, err) < 0)
    return -1;
  if (r->address[0] && publish_elements (r, false, err) < 0)
    return -1;
  if (r->tap[0] && net_run (del, NULL, true, err) < 0)
    return -1;
  return 0;
}

int
net_teardown_all (const char *netns, struct err **err)
{
  static const char *const del_nft[] = { "nft", "delete", "table", "ip", "chvm", NULL };
  static const char *const del_br[] = { "ip", "link", "del", "dev", NET_BRIDGE, NULL };

  if (netns != NULL && net_enter_netns (netns, err) < 0)
    return -1;
  if (net_run (del_nft, NULL, true, err) < 0 || net_run (del_br, NULL, true, err) < 0)
    return -1;
  return 0;
}
