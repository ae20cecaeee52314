/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the CDP proxy's WebSocket scanner
 * (host-tool/wsscan.c): the input is a byte stream from a client or the
 * guest, fed in chunks whose sizes come from its first byte; the counts
 * must not depend on where the stream is split, and a scan that gave up
 * must stay given up.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cdp/wsscan.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct ws_scan whole, parts;
  int a, b = 0;
  size_t step, i;

  if (size < 1)
    return 0;
  step = (size_t) (data[0] % 17) + 1;
  data++;
  size--;
  ws_scan_init (&whole);
  a = ws_scan_feed (&whole, data, size);
  ws_scan_init (&parts);
  for (i = 0; i < size && b >= 0; i += step)
    {
      int k = ws_scan_feed (&parts, data + i, size - i < step ? size - i : step);
      b = k < 0 ? -1 : b + k;
    }
  if ((a < 0) != (b < 0) || (a >= 0 && a != b) || whole.messages != parts.messages)
    abort ();
  if (a < 0 && ws_scan_feed (&whole, data, size) != -1)
    abort ();
  return 0;
}
