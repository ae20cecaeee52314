/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `chvm run --live-view[=ADDR]`: what a WebRTC live view in the guest (neko,
 * or the stand-in image's) needs from chvm.  Its signalling port (guest TCP
 * 8080) is published on a free port of ADDR, and its media range on a free
 * host UDP range of the same ports on both sides, since a NAT 1:1 setting
 * (NEKO_WEBRTC_NAT1TO1) rewrites the address of a candidate and keeps its
 * port.  The guest is told through neko's own variables.
 */
#ifndef CHVM_LIVEVIEW_H
#define CHVM_LIVEVIEW_H

#include <stdint.h>

#include "err.h"
#include "state/vmstate.h"

#define LIVEVIEW_GUEST_PORT 8080
#define LIVEVIEW_UDP_FIRST 56000 /* neko's default range: 56000-56100 */
#define LIVEVIEW_UDP_COUNT 101
#define LIVEVIEW_N_ENV 3

struct liveview
{
  struct publish signalling, media; /* tcp ADDR:free -> 8080, udp LO-HI -> LO-HI */
  char env[LIVEVIEW_N_ENV][96];     /* ENABLE_WEBRTC, NEKO_WEBRTC_NAT1TO1, _EPR */
  char url[128];                    /* what a person opens */
};

/* ADDR: an IPv4 address viewers reach the host at (not 0.0.0.0); NULL
   means 127.0.0.1.  Picks the ports, free now on ADDR. */
int liveview_plan (const char *addr, struct liveview *lv, struct err **err);

#endif
