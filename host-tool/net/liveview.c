/* SPDX-License-Identifier: Apache-2.0 */
#include "net/liveview.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "net/net.h"
#include "sys/port.h"
#include "sys/rand.h"

/* The first LO >= LIVEVIEW_UDP_FIRST, in steps of a whole range, with all
   of LO..LO+count-1 free for UDP on addr and at most LIVEVIEW_UDP_LAST. */
static int
free_udp_range (const char *addr, unsigned count, uint16_t *lo, struct err **err)
{
  for (unsigned first = LIVEVIEW_UDP_FIRST; first + count - 1 <= LIVEVIEW_UDP_LAST; first += count)
    {
      bool free_all = true;
      for (unsigned k = 0; k < count && free_all; k++)
        {
          cleanup_err struct err *e = NULL;
          free_all = port_check (addr, (uint16_t) (first + k), true, &e) == 0;
        }
      if (free_all)
        {
          *lo = (uint16_t) first;
          return 0;
        }
    }
  return err_make (err, 0, "--live-view: no %u free UDP ports in a row on %s in %u-%u", count, addr,
                   LIVEVIEW_UDP_FIRST, LIVEVIEW_UDP_LAST);
}

/* The guest's variables that carry the token: the stand-in's, and neko's
   passwords (v2's, and v3's multiuser provider's), so that neko's login
   takes the token too. */
static const char *const token_env[LIVEVIEW_N_ENV - 3] = {
  "CHVM_LIVE_VIEW_TOKEN",
  "NEKO_PASSWORD",
  "NEKO_PASSWORD_ADMIN",
  "NEKO_MEMBER_MULTIUSER_USER_PASSWORD",
  "NEKO_MEMBER_MULTIUSER_ADMIN_PASSWORD",
};

int
liveview_plan (const char *addr, struct liveview *lv, struct err **err)
{
  struct in_addr a;
  uint16_t lo;

  memset (lv, 0, sizeof *lv);
  if (addr == NULL)
    addr = "127.0.0.1";
  if (inet_pton (AF_INET, addr, &a) != 1)
    return err_make (err, 0, "--live-view '%s': not an IPv4 address", addr);
  if (a.s_addr == htonl (INADDR_ANY))
    return err_make (err, 0,
                     "--live-view: 0.0.0.0 is not an address a viewer can reach; give "
                     "the host's own address");
  snprintf (lv->signalling.host_addr, sizeof lv->signalling.host_addr, "%s", addr);
  lv->signalling.guest_port = LIVEVIEW_GUEST_PORT;
  lv->signalling.count = 1;
  if (port_pick (addr, &lv->signalling.host_port, err) < 0)
    return err_wrap (err, "--live-view");
  if (free_udp_range (addr, LIVEVIEW_UDP_COUNT, &lo, err) < 0)
    return -1;
  lv->media = (struct publish){
    .host_port = lo, .guest_port = lo, .count = LIVEVIEW_UDP_COUNT, .udp = true
  };
  snprintf (lv->media.host_addr, sizeof lv->media.host_addr, "%s", addr);
  if (rand_hex (lv->token, LIVEVIEW_TOKEN_BYTES, err) < 0)
    return err_wrap (err, "--live-view token");
  snprintf (lv->env[0], sizeof lv->env[0], "ENABLE_WEBRTC=true");
  snprintf (lv->env[1], sizeof lv->env[1], "NEKO_WEBRTC_NAT1TO1=%s", addr);
  snprintf (lv->env[2], sizeof lv->env[2], "NEKO_WEBRTC_EPR=%u-%u", (unsigned) lo,
            (unsigned) (lo + LIVEVIEW_UDP_COUNT - 1));
  for (size_t i = 0; i < sizeof token_env / sizeof token_env[0]; i++)
    snprintf (lv->env[3 + i], sizeof lv->env[3 + i], "%s=%s", token_env[i], lv->token);
  snprintf (lv->url, sizeof lv->url, "http://%s:%u/?token=%s", addr, lv->signalling.host_port,
            lv->token);
  return 0;
}
