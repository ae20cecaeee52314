/* SPDX-License-Identifier: Apache-2.0 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "net/udpwatch.h"
#include "num.h"
#include "sys/proc.h"

extern char **environ;

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
net_parse_publish (const char *s, struct publish *out, struct err **err)
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
net_publish_overlap (const struct publish *a, const struct publish *b)
{
  return a->udp == b->udp && a->host_port < b->host_port + publish_ports (b)
         && b->host_port < a->host_port + publish_ports (a);
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

#define IP_FORWARD "/proc/sys/net/ipv4/ip_forward"

/* A publish is one element of pub_PROTO (host port -> guest address . port,
   so a host port belongs to one VM whatever the address) plus one of
   pub_PROTO_any (host port: any local address, for 0.0.0.0) or pub_PROTO_bind
   (host address . port: only that address).  `guard` drops what arrives from
   outside with a loopback address (route_localnet is on for chvm0 only, for
   the DNAT of 127.0.0.1, and must not let a guest or neighbour reach the
   host's 127.0.0.1 services: CVE-2020-8558), `forward` keeps guests from
   reaching each other through the host, and the set ip_forward_was_0,
   present when chvm turned ip_forward on, says to turn it off again with
   the table.  The bridge table admits from a tap only frames with that VM's
   MAC and (ARP or IPv4) address. */
#define NFT_PUB(P)                                                                                 \
  "  map pub_" P " { type inet_service : ipv4_addr . inet_service; }\n"                            \
  "  set pub_" P "_any { type inet_service; }\n"                                                   \
  "  set pub_" P "_bind { type ipv4_addr . inet_service; }\n"
#define NFT_DNAT(P)                                                                                \
  "    fib daddr type local ip daddr . " P " dport @pub_" P "_bind"                                \
  " dnat ip addr . port to " P " dport map @pub_" P "\n"                                           \
  "    fib daddr type local " P " dport @pub_" P "_any"                                            \
  " dnat ip addr . port to " P " dport map @pub_" P "\n"

static const char nft_table[]
    = "add table ip chvm\n"
      "delete table ip chvm\n"
      "add table bridge chvm\n"
      "delete table bridge chvm\n"
      "table ip chvm {\n" NFT_PUB ("tcp") NFT_PUB (
          "udp") "  chain guard {\n"
                 "    type filter hook prerouting priority raw; policy accept;\n"
                 "    iifname != \"lo\" ip daddr 127.0.0.0/8 drop\n"
                 "    iifname != \"lo\" ip saddr 127.0.0.0/8 drop\n"
                 "  }\n"
                 "  chain prerouting {\n"
                 "    type nat hook prerouting priority dstnat; policy accept;\n" NFT_DNAT ("tcp")
                     NFT_DNAT (
                         "udp") "  }\n"
                                "  chain output {\n"
                                "    type nat hook output priority -100; policy "
                                "accept;\n" NFT_DNAT ("tcp") NFT_DNAT (
                                    "udp") "  }\n"
                                           "  chain forward {\n"
                                           "    type filter hook forward priority filter; policy "
                                           "accept;\n"
                                           "    iifname \"" NET_BRIDGE "\" oifname \"" NET_BRIDGE
                                           "\" drop\n"
                                           "  }\n"
                                           "  chain postrouting {\n"
                                           "    type nat hook postrouting priority srcnat; policy "
                                           "accept;\n"
                                           "    ip saddr 10.213.0.0/24 oifname != \"" NET_BRIDGE
                                           "\" masquerade\n"
                                           "    ip daddr 10.213.0.0/24 oifname \"" NET_BRIDGE
                                           "\" ip saddr 127.0.0.0/8 masquerade\n"
                                           "  }\n"
                                           "}\n"
                                           "table bridge chvm {\n"
                                           "  set port_ip { type ifname . ipv4_addr; }\n"
                                           "  set port_mac { type ifname . ether_addr; }\n"
                                           "  chain prerouting {\n"
                                           "    type filter hook prerouting priority filter; "
                                           "policy accept;\n"
                                           "    iifname != \"chvm-t*\" accept\n"
                                           "    iifname . ether saddr != @port_mac drop\n"
                                           "    ether type != { ip, arp } drop\n"
                                           "    ether type arp iifname . arp saddr ether != "
                                           "@port_mac drop\n"
                                           "    ether type arp iifname . arp saddr ip != @port_ip "
                                           "drop\n"
                                           "    ether type ip iifname . ip saddr != @port_ip drop\n"
                                           "  }\n"
                                           "}\n";

/* Other local users must not reach a guest directly (its DevTools, its
   agent): on the host's output path only root's sockets, the answers to
   what the guests opened, and what DNAT of a published port sends reach
   the guest subnet; everything else is refused.  Its own chain, added to a
   table made before it without touching the table's elements. */
static const char nft_guest_access[]
    = "add chain ip chvm guest_access { type filter hook output priority filter; policy accept; }\n"
      "flush chain ip chvm guest_access\n"
      "add rule ip chvm guest_access ip daddr 10.213.0.0/24 ct state established,related accept\n"
      "add rule ip chvm guest_access ip daddr 10.213.0.0/24 ct status dnat accept\n"
      "add rule ip chvm guest_access ip daddr 10.213.0.0/24 meta skuid 0 accept\n"
      "add rule ip chvm guest_access ip daddr 10.213.0.0/24 reject\n";

/* The live-view watch (udpwatch.h) counts only the UDP packets toward a
   guest of flows the host's DNAT made (a publish: `ct status dnat`), not
   answers to the guest's own flows (masqueraded: snat) nor what anyone
   sends to the guest's address directly: on the way out to the bridge
   (postrouting sees both forwarded and local packets, after the DNAT of
   prerouting or output), the mark bit UDPWATCH_MARK is cleared from every
   packet and set on those; the other bits stay.  The rules belong to the
   table, as the DNAT rules do (the publishes are elements); its own chain,
   added to a table made before it. */
_Static_assert(UDPWATCH_MARK == 0x00400000u, "nft_live_mark spells the mark out");
static const char nft_live_mark[]
    = "add chain ip chvm live_mark { type filter hook postrouting priority filter; policy accept; "
      "}\n"
      "flush chain ip chvm live_mark\n"
      "add rule ip chvm live_mark oifname \"" NET_BRIDGE "\" meta mark and 0x00400000 != 0"
      " meta mark set meta mark and 0xffbfffff\n"
      "add rule ip chvm live_mark oifname \"" NET_BRIDGE "\" ip daddr 10.213.0.0/24"
      " meta l4proto udp ct direction original ct status dnat"
      " meta mark set meta mark or 0x00400000\n";

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
  static const char *const probe_access[]
      = { "nft", "list", "chain", "ip", "chvm", "guest_access", NULL };
  static const char *const probe_mark[]
      = { "nft", "list", "chain", "ip", "chvm", "live_mark", NULL };
  static const char *const add_nft[] = { "nft", "-f", "-", NULL };
  int r;

  r = proc_run (probe_br, NULL, true, err);
  if (r < 0 || (r == 1 && proc_run (add_br, NULL, false, err) < 0))
    return -1;
  if (proc_run (addr_br, NULL, false, err) < 0 || proc_run (up_br, NULL, false, err) < 0)
    return -1;
  /* 127.0.0.1 DNATed to a guest leaves through the bridge with source
     127.0.0.1 (masqueraded after routing), and the reply comes back to
     127.0.0.1: both need route_localnet, on this interface only. */
  if (write_sysctl ("/proc/sys/net/ipv4/conf/" NET_BRIDGE "/route_localnet", "1", err) < 0)
    return -1;
  r = proc_run (probe_nft, NULL, true, err);
  if (r < 0)
    return -1;
  if (r == 1)
    {
      char was = '1';
      cleanup_free char *table = NULL;

      if (proc_read_sysctl (IP_FORWARD, &was, err) < 0)
        return -1;
      if (asprintf (&table, "%s%s", nft_table,
                    was == '0' ? "add set ip chvm ip_forward_was_0 { type inet_service; }\n" : "")
          < 0)
        return err_make (err, ENOMEM, "nft table");
      if (proc_run (add_nft, table, false, err) < 0)
        return -1;
    }
  r = proc_run (probe_access, NULL, true, err);
  if (r < 0 || (r == 1 && proc_run (add_nft, nft_guest_access, false, err) < 0))
    return -1;
  r = proc_run (probe_mark, NULL, true, err);
  if (r < 0 || (r == 1 && proc_run (add_nft, nft_live_mark, false, err) < 0))
    return -1;
  /* Forwarding for the guests; turned off again with the table if it was. */
  return write_sysctl (IP_FORWARD, "1", err);
}

/* The address of a record without its prefix. */
static int
vm_addr (const struct vm_record *r, char *out, size_t len, struct err **err)
{
  size_t n = strcspn (r->address, "/");

  if (n >= len)
    return err_make (err, 0, "bad address %s", r->address);
  memcpy (out, r->address, n);
  out[n] = '\0';
  return 0;
}

/* The tap's bridge port: isolated from the other ports (no guest to guest
   frames), and its frames admitted only with the VM's MAC and address. */
static int
tap_filter (const struct vm_record *r, bool add_p, struct err **err)
{
  static const char *const nft[] = { "nft", "-f", "-", NULL };
  const char *const isolate[]
      = { "ip", "link", "set", "dev", r->tap, "type", "bridge_slave", "isolated", "on", NULL };
  char addr[20], cmd[256];
  const char *op = add_p ? "add" : "delete";

  if (vm_addr (r, addr, sizeof addr, err) < 0)
    return -1;
  if (add_p && r->mac[0] == '\0')
    return err_make (err, 0, "VM '%s' has a tap but no MAC address", r->name);
  if ((size_t) snprintf (cmd, sizeof cmd,
                         "%s element bridge chvm port_ip { \"%s\" . %s }\n"
                         "%s element bridge chvm port_mac { \"%s\" . %s }\n",
                         op, r->tap, addr, op, r->tap, r->mac[0] ? r->mac : "00:00:00:00:00:00")
      >= sizeof cmd)
    return err_make (err, 0, "tap name '%s' too long", r->tap);
  if (add_p && proc_run (isolate, NULL, false, err) < 0)
    return -1;
  return proc_run (nft, cmd, !add_p, err) < 0 ? -1 : 0;
}

/* Gives the persistent tap to uid (TUNSETOWNER), so that a VMM running as
   uid can attach to it without CAP_NET_ADMIN.  Attaching here (as root)
   also works for a tap made before, e.g. one standby kept; the single-queue
   flags are what `ip tuntap add` made it with, and CH sets NO_PI and the
   vnet header again when it attaches. */
static int
tap_set_owner (const char *tap, uint32_t uid, struct err **err)
{
  struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
  cleanup_close int fd = open ("/dev/net/tun", O_RDWR | O_CLOEXEC);

  if (fd < 0)
    return err_make (err, errno, "open /dev/net/tun");
  if (strlen (tap) >= sizeof ifr.ifr_name)
    return err_make (err, ENAMETOOLONG, "tap name '%s'", tap);
  memcpy (ifr.ifr_name, tap, strlen (tap) + 1);
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    return err_make (err, errno, "attach to tap %s", tap);
  if (ioctl (fd, TUNSETOWNER, (unsigned long) uid) < 0)
    return err_make (err, errno, "give tap %s to uid %u", tap, uid);
  return 0;
}

int
net_ensure_tap (const char *netns, const struct vm_record *vm, struct err **err)
{
  const char *tap = vm->tap;
  const char *const probe[] = { "ip", "link", "show", "dev", tap, NULL };
  const char *const add_tap[] = { "ip", "tuntap", "add", "dev", tap, "mode", "tap", NULL };
  const char *const master[]
      = { "ip", "link", "set", "dev", tap, "master", NET_BRIDGE, "up", NULL };
  int r;

  if ((netns != NULL && net_enter_netns (netns, err) < 0) || ensure_bridge_and_nat (err) < 0)
    return -1;
  r = proc_run (probe, NULL, true, err);
  if (r < 0 || (r == 1 && proc_run (add_tap, NULL, false, err) < 0))
    return -1;
  if (vm->vmm_uid != 0 && tap_set_owner (tap, vm->vmm_uid, err) < 0)
    return -1;
  if (proc_run (master, NULL, false, err) < 0)
    return -1;
  return tap_filter (vm, true, err);
}

int
net_tap_clear_addresses (const char *tap, struct err **err)
{
  const char *const flush[] = { "ip", "-4", "addr", "flush", "dev", tap, NULL };

  return proc_run (flush, NULL, false, err);
}

/* Writes one nft command on the elements of publish p, one per port of a
   range: "HOST : GUEST . PORT" in the map pub_PROTO (map; the data only for
   an add), else the keys of pub_PROTO_any ("HOST") or pub_PROTO_bind
   ("ADDR . HOST"). */
static void
put_elements (FILE *f, const char *op, const struct publish *p, const char *guest, bool any,
              bool map)
{
  const char *proto = p->udp ? "udp" : "tcp";

  fprintf (f, "%s element ip chvm pub_%s%s { ", op, proto, map ? "" : any ? "_any" : "_bind");
  for (unsigned k = 0; k < publish_ports (p); k++)
    {
      fputs (k ? ", " : "", f);
      if (!map && !any)
        fprintf (f, "%s . ", p->host_addr);
      fprintf (f, "%u", p->host_port + k);
      if (map && op[0] == 'a')
        fprintf (f, " : %s . %u", guest, p->guest_port + k);
    }
  fputs (" }\n", f);
}

/* One nft transaction per publish: a range becomes one element per port,
   added or deleted together (the rules stay as they are; nft's dnat has no
   "shift the port by an offset" form).  The command goes through stdin:
   65535 elements would not fit one argument.  Adding fails as a whole when
   another VM has one of the host ports.  Deleting first adds the very
   elements again, which nft refuses when a port maps to another VM's
   address, so the transaction deletes only what maps to this VM. */
static int
publish_elements (const struct vm_record *r, bool add_p, struct err **err)
{
  static const char *const argv[] = { "nft", "-f", "-", NULL };
  char addr[20];

  if (vm_addr (r, addr, sizeof addr, err) < 0)
    return -1;
  for (size_t i = 0; i < r->n_publish; i++)
    {
      const struct publish *p = &r->publish[i];
      const char *proto = p->udp ? "udp" : "tcp";
      bool any = strcmp (p->host_addr, "0.0.0.0") == 0;
      struct in_addr in;
      cleanup_free char *cmd = NULL;
      size_t len = 0;
      FILE *f;
      int bad, rc;

      if (inet_pton (AF_INET, p->host_addr, &in) != 1 && !add_p)
        continue; /* never added */
      if (inet_pton (AF_INET, p->host_addr, &in) != 1)
        return err_make (err, 0, "publish %s:%u/%s: a tap publishes IPv4 addresses only",
                         p->host_addr, p->host_port, proto);
      f = open_memstream (&cmd, &len);
      if (f == NULL)
        return err_make (err, errno, "nft command");
      put_elements (f, "add", p, addr, any, true);
      put_elements (f, "add", p, addr, any, false);
      if (!add_p)
        {
          put_elements (f, "delete", p, addr, any, true);
          put_elements (f, "delete", p, addr, any, false);
        }
      bad = ferror (f);
      if (fclose (f) != 0 || bad)
        return err_make (err, ENOMEM, "nft command");
      rc = proc_run (argv, cmd, !add_p, err);
      if (rc < 0 && strstr ((*err)->msg, "File exists") != NULL)
        {
          err_release (err);
          return err_make (err, EADDRINUSE,
                           "publish %s:%u/%s: host port already published by another VM",
                           p->host_addr, p->host_port, proto);
        }
      if (rc < 0)
        return err_wrap (err, "publish %s:%u/%s", p->host_addr, p->host_port, proto);
    }
  return 0;
}

int
net_setup_vm (const char *netns, const struct vm_record *r, struct err **err)
{
  if (net_ensure_tap (netns, r, err) < 0)
    return -1;
  if (publish_elements (r, true, err) < 0)
    {
      /* Removes only what maps to this VM: never another VM's clashing
         element. */
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
  if (r->tap[0] && r->address[0] && tap_filter (r, false, err) < 0)
    return -1;
  if (r->tap[0] && proc_run (del, NULL, true, err) < 0)
    return -1;
  return 0;
}

int
net_teardown_all (const char *netns, struct err **err)
{
  static const char *const probe_fwd[]
      = { "nft", "list", "set", "ip", "chvm", "ip_forward_was_0", NULL };
  static const char *const del_nft[] = { "nft", "delete", "table", "ip", "chvm", NULL };
  static const char *const del_bnft[] = { "nft", "delete", "table", "bridge", "chvm", NULL };
  static const char *const del_br[] = { "ip", "link", "del", "dev", NET_BRIDGE, NULL };
  int was_0;

  if (netns != NULL && net_enter_netns (netns, err) < 0)
    return -1;
  if ((was_0 = proc_run (probe_fwd, NULL, true, err)) < 0 || proc_run (del_nft, NULL, true, err) < 0
      || proc_run (del_bnft, NULL, true, err) < 0 || proc_run (del_br, NULL, true, err) < 0)
    return -1;
  /* Off again if chvm turned it on. */
  if (was_0 == 0 && write_sysctl (IP_FORWARD, "0", err) < 0)
    return -1;
  return 0;
}
