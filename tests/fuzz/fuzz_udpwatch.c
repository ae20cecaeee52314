/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the live-view watch's packet check
 * (host-tool/udpwatch.c): the input is a packet from the guest's tap, at
 * most UDPWATCH_SNAP bytes as the socket gives it; the check must read
 * nothing past it and agree with a check done here byte by byte.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "net/udpwatch.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const struct publish pub[] = {
    { .guest_port = 56000, .count = 101, .udp = true },
    { .guest_port = 9222, .count = 1 },
  };
  bool got, want = false;
  size_t ihl;

  if (size > UDPWATCH_SNAP)
    size = UDPWATCH_SNAP;
  got = udpwatch_match (data, size, pub, 2);
  if (size >= 20 && data[0] >> 4 == 4 && data[9] == 17)
    {
      ihl = (size_t) (data[0] & 15) * 4;
      if (ihl >= 20 && size >= ihl + 4)
        {
          unsigned dp = (unsigned) data[ihl + 2] << 8 | data[ihl + 3];
          want = dp >= 56000 && dp <= 56100;
        }
    }
  if (got != want)
    abort ();
  return 0;
}
