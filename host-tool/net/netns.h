/* SPDX-License-Identifier: Apache-2.0 */
/* Network namespaces chvm makes for a VM of its own (a clone from a
   template keeps the template's guest address, MAC and tap name, so each
   clone has a namespace to itself: docs/DESIGN.md "Templates"). */
#ifndef CHVM_NET_NETNS_H
#define CHVM_NET_NETNS_H

#include "err.h"

/* `ip netns add NAME` (/run/netns/NAME). */
int net_netns_add (const char *name, struct err **err);

/* `ip netns delete NAME`; a missing one is fine.  What was in it (bridge,
   taps, nft tables) goes with it once no process is inside. */
int net_netns_delete (const char *name, struct err **err);

#endif
