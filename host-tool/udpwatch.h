/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whether a live-view session is open, for the supervisor's idle clock: a
 * packet socket on the VM's tap that sees the IPv4 UDP packets (64 bytes of
 * each, the kernel's filter drops the rest) and tells those on a published
 * UDP range (the live view's media and its consent checks, which flow while
 * a viewer is connected) from the rest.  The packets come from the guest:
 * udpwatch_match reads them bounded and is fuzzed.
 */
#ifndef CHVM_UDPWATCH_H
#define CHVM_UDPWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "vmstate.h"

#define UDPWATCH_SNAP 64 /* bytes of a packet the socket is given */

/* A packet socket on ifname (in the caller's namespace) receiving IPv4 UDP
   packets both ways, nonblocking.  Returns the fd, or -1 with err. */
int udpwatch_open (const char *ifname, struct err **err);

/* Whether pkt (an IPv4 packet as the socket gives it, len bytes) is UDP
   with its source or destination port in the guest ports of one of the
   UDP entries of pub. */
bool udpwatch_match (const uint8_t *pkt, size_t len, const struct vm_publish *pub, size_t n);

/* Whether pub has a UDP entry (a watch is worth opening). */
bool udpwatch_wanted (const struct vm_publish *pub, size_t n);

#endif
