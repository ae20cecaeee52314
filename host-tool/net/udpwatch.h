/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether a live-view session is open, for the supervisor's idle clock: a
 * packet socket on the VM's tap that sees the IPv4 UDP packets the tap
 * sends toward the guest (64 bytes of each; the kernel's filter drops the
 * rest, and all the guest sends) and tells those to a published UDP port
 * (the live view's media range: a viewer's RTCP feedback and consent
 * checks, which flow while it is connected) from the rest.  What reaches
 * the tap is partly the guest's doing (answers to what it sent):
 * udpwatch_match reads it bounded and is fuzzed.  Only packets that carry
 * UDPWATCH_MARK count: the host's nft table (net.c, chain live_mark) sets
 * it on the UDP packets toward a guest of flows the host's DNAT created
 * (`ct status dnat`: a publish), and clears it on every other packet
 * toward the guests, so that answers to the guest's own flows and
 * datagrams anyone sends to the guest's address directly do not count.
 */
#ifndef CHVM_UDPWATCH_H
#define CHVM_UDPWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "state/vmstate.h"

#define UDPWATCH_SNAP 64 /* bytes of a packet the socket is given */
/* The packet mark bit (skb->mark) of a DNATed UDP flow toward a guest; the
   other bits are left to whoever else marks packets.  net.c writes it out
   as "0x00400000". */
#define UDPWATCH_MARK 0x00400000u

/* A packet socket on ifname (in the caller's namespace) receiving the IPv4
   UDP packets ifname sends to a guest port of pub's UDP entries and that
   carry UDPWATCH_MARK (the kernel's filter tests the mark and the ports;
   nothing else reaches the caller), nonblocking.  Returns the fd, or -1 with err. */
int udpwatch_open (const char *ifname, const struct publish *pub, size_t n, struct err **err);

/* Whether pkt (an IPv4 packet as the socket gives it, len bytes) is UDP
   with its destination port in the guest ports of one of the UDP entries
   of pub. */
bool udpwatch_match (const uint8_t *pkt, size_t len, const struct publish *pub, size_t n);

/* Whether pub has a UDP entry (a watch is worth opening). */
bool udpwatch_wanted (const struct publish *pub, size_t n);

#endif
