/* SPDX-License-Identifier: Apache-2.0 */
/*
 * After a restore the guest may sit behind a different host port or bridge
 * path; a gratuitous ARP (request with sender = target = our address) makes
 * switches and neighbours relearn it.  A link down/up would do it too but
 * flushes eth0's routes, which nobody would put back.
 */
#include "announce.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "cleanup.h"

#define ANNOUNCE_IFNAME "eth0"

struct arp_ipv4
{
  struct arphdr h;
  uint8_t sha[ETH_ALEN];
  uint8_t spa[4];
  uint8_t tha[ETH_ALEN];
  uint8_t tpa[4];
} __attribute__ ((packed));

int
announce_eth0 (struct err **err)
{
  cleanup_close int fd = socket (AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons (ETH_P_ARP));
  struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons (ETH_P_ARP) };
  struct arp_ipv4 pkt;
  struct ifreq ifr;

  if (fd < 0)
    return err_make (err, errno, "AF_PACKET socket");
  memset (&ifr, 0, sizeof ifr);
  memcpy (ifr.ifr_name, ANNOUNCE_IFNAME, sizeof ANNOUNCE_IFNAME);
  if (ioctl (fd, SIOCGIFINDEX, &ifr) < 0)
    return errno == ENODEV ? 0 : err_make (err, errno, "SIOCGIFINDEX " ANNOUNCE_IFNAME);
  sll.sll_ifindex = ifr.ifr_ifindex;
  if (ioctl (fd, SIOCGIFADDR, &ifr) < 0)
    return errno == EADDRNOTAVAIL ? 0 : err_make (err, errno, "SIOCGIFADDR " ANNOUNCE_IFNAME);
  memset (&pkt, 0, sizeof pkt);
  memcpy (pkt.spa, &((struct sockaddr_in *) &ifr.ifr_addr)->sin_addr, 4);
  memcpy (pkt.tpa, pkt.spa, 4);
  if (ioctl (fd, SIOCGIFHWADDR, &ifr) < 0)
    return err_make (err, errno, "SIOCGIFHWADDR " ANNOUNCE_IFNAME);
  memcpy (pkt.sha, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
  pkt.h.ar_hrd = htons (ARPHRD_ETHER);
  pkt.h.ar_pro = htons (ETH_P_IP);
  pkt.h.ar_hln = ETH_ALEN;
  pkt.h.ar_pln = 4;
  pkt.h.ar_op = htons (ARPOP_REQUEST);
  sll.sll_halen = ETH_ALEN;
  memset (sll.sll_addr, 0xff, ETH_ALEN);
  if (sendto (fd, &pkt, sizeof pkt, 0, (struct sockaddr *) &sll, sizeof sll) < 0)
    return err_make (err, errno, "send gratuitous ARP on " ANNOUNCE_IFNAME);
  return 1;
}
