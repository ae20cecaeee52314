/* SPDX-License-Identifier: Apache-2.0 */
#include "net/udpwatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cleanup.h"

/* The kernel filter: SOCK_DGRAM, so the packet starts at its IPv4 header.
   Accept what the interface sends (toward the guest, on a tap: a viewer's
   packets; what the guest itself sends never gets here, however much),
   marked with UDPWATCH_MARK (a flow the host's DNAT made), IPv4 UDP, not a
   fragment after the first (its ports are there), to a guest port of one
   of pub's UDP ranges, snapped: every other packet stays in the kernel.
   code has room for 14 + 2 * VM_MAX_PUBLISH instructions; returns how many
   it wrote. */
static unsigned short
filter (struct sock_filter *code, const struct publish *pub, size_t n)
{
  unsigned short k = 0, ranges = 0, accept, reject;

  for (size_t i = 0; i < n && i < VM_MAX_PUBLISH; i++)
    ranges += pub[i].udp;
  /* After the ranges: reject (where the last range falls through), then
     accept. */
  reject = (unsigned short) (12 + 2 * ranges);
  accept = (unsigned short) (reject + 1);
#define TO(target) ((__u8) ((target) -k - 1))
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_B | BPF_ABS,
                                           (__u32) (SKF_AD_OFF + SKF_AD_PKTTYPE));
  k++;
  code[k]
      = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, TO (reject));
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_W | BPF_ABS,
                                           (__u32) (SKF_AD_OFF + SKF_AD_MARK));
  k++;
  code[k]
      = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JSET | BPF_K, UDPWATCH_MARK, 0, TO (reject));
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_H | BPF_ABS,
                                           (__u32) (SKF_AD_OFF + SKF_AD_PROTOCOL));
  k++;
  code[k] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, TO (reject));
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_B | BPF_ABS, 9); /* protocol */
  k++;
  code[k] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, TO (reject));
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_H | BPF_ABS, 6); /* flags, offset */
  k++;
  code[k] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JSET | BPF_K, 0x1fff, TO (reject), 0);
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LDX | BPF_B | BPF_MSH, 0); /* X: header length */
  k++;
  code[k] = (struct sock_filter) BPF_STMT (BPF_LD | BPF_H | BPF_IND, 2); /* destination port */
  k++;
  for (size_t i = 0; i < n && i < VM_MAX_PUBLISH; i++)
    if (pub[i].udp)
      {
        unsigned lo = pub[i].guest_port, hi = lo + publish_ports (&pub[i]) - 1;
        /* Below the range: the next one (or reject); above it: the same;
           else accept. */
        code[k] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JGE | BPF_K, lo, 0, 1);
        k++;
        code[k] = (struct sock_filter) BPF_JUMP (BPF_JMP | BPF_JGT | BPF_K, hi, 0, TO (accept));
        k++;
      }
#undef TO
  code[k++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, 0);
  code[k++] = (struct sock_filter) BPF_STMT (BPF_RET | BPF_K, UDPWATCH_SNAP);
  return k;
}

int
udpwatch_open (const char *ifname, const struct publish *pub, size_t n, struct err **err)
{
  /* ETH_P_ALL, not ETH_P_IP: sent frames reach only ETH_P_ALL sockets. */
  struct sock_filter code[14 + 2 * VM_MAX_PUBLISH];
  struct sock_fprog prog = { .filter = code };
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons (ETH_P_ALL) };
  int rcvbuf = 64 * 1024;
  cleanup_close int fd = -1;

  if (!udpwatch_wanted (pub, n))
    return err_make (err, EINVAL, "live-view watch: no UDP port is published");
  prog.len = filter (code, pub, n);
  sll.sll_ifindex = (int) if_nametoindex (ifname);
  if (sll.sll_ifindex == 0)
    return err_make (err, errno, "live-view watch: no interface %s", ifname);
  /* Protocol 0: nothing arrives before the filter is on and the bind done. */
  fd = socket (AF_PACKET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return err_make (err, errno, "live-view watch: packet socket");
  if (setsockopt (fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0
      || setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0)
    return err_make (err, errno, "live-view watch: socket options");
  if (bind (fd, (struct sockaddr *) &sll, sizeof sll) < 0)
    return err_make (err, errno, "live-view watch: bind to %s", ifname);
  return steal_fd (&fd);
}

static bool
in_ranges (unsigned port, const struct publish *pub, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (pub[i].udp && port >= pub[i].guest_port
        && port < (unsigned) pub[i].guest_port + publish_ports (&pub[i]))
      return true;
  return false;
}

bool
udpwatch_match (const uint8_t *pkt, size_t len, const struct publish *pub, size_t n)
{
  size_t ihl;

  if (len < 20 || (pkt[0] >> 4) != 4 || pkt[9] != IPPROTO_UDP)
    return false;
  ihl = (size_t) (pkt[0] & 0x0f) * 4;
  if (ihl < 20 || len < ihl + 4)
    return false;
  return in_ranges ((unsigned) pkt[ihl + 2] << 8 | pkt[ihl + 3], pub, n);
}

bool
udpwatch_wanted (const struct publish *pub, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (pub[i].udp)
      return true;
  return false;
}
