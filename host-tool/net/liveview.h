/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `chvm run --live-view[=ADDR]`: what a WebRTC live view in the guest (neko,
 * or the stand-in image's) needs from chvm.  Its signalling port (guest TCP
 * 8080) is published on a free port of ADDR, and its media range on a free
 * host UDP range of the same ports on both sides, since a NAT 1:1 setting
 * (NEKO_WEBRTC_NAT1TO1) rewrites the address of a candidate and keeps its
 * port.  The range lies in LIVEVIEW_UDP_FIRST..LIVEVIEW_UDP_LAST: below
 * Linux's default ephemeral range (32768-60999, the guest's as well: chvm's
 * guest-init sets no port sysctl), so the answers to the guest's own flows
 * (DNS, QUIC) never land in it and count as a viewer, and below
 * Kubernetes' NodePort range (30000-32767), which hosts often have in use.
 * The guest is told through neko's own variables, and a per-VM token
 * (getrandom) that the viewer's URL carries: the stand-in's server refuses
 * signalling without it, and neko takes it as its passwords.
 */
#ifndef CHVM_LIVEVIEW_H
#define CHVM_LIVEVIEW_H

#include <stdint.h>

#include "err.h"
#include "state/vmstate.h"

#define LIVEVIEW_GUEST_PORT 8080
#define LIVEVIEW_UDP_FIRST 25000 /* ranges from here, in steps of a whole range */
#define LIVEVIEW_UDP_LAST 29999  /* the last port a range may take */
#define LIVEVIEW_UDP_COUNT 101   /* as many as neko's default range, 56000-56100 */
#define LIVEVIEW_TOKEN_BYTES 16  /* 128 bits, as 32 hex digits */
#define LIVEVIEW_N_ENV 8

struct liveview
{
  struct publish signalling, media; /* tcp ADDR:free -> 8080, udp LO-HI -> LO-HI */
  char token[2 * LIVEVIEW_TOKEN_BYTES + 1];
  /* ENABLE_WEBRTC, NEKO_WEBRTC_NAT1TO1, _EPR, CHVM_LIVE_VIEW_TOKEN, and
     neko's passwords (v2 and v3 names) set to the token */
  char env[LIVEVIEW_N_ENV][96];
  char url[128]; /* what a person opens: http://ADDR:PORT/?token=TOKEN */
};

/* ADDR: an IPv4 address viewers reach the host at (not 0.0.0.0); NULL
   means 127.0.0.1.  Picks the ports, free now on ADDR, and the token. */
int liveview_plan (const char *addr, struct liveview *lv, struct err **err);

#endif
