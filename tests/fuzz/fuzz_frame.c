/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the incremental frame decoder (common/frame.c): the
 * input is fed in chunks of varying sizes (picked from its first byte) and
 * the frames must be exactly those a one-shot reference parse finds, with no
 * allocation above FRAME_MAX and a sticky failure on a bad length.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

/* Reference: the n-th frame of the whole buffer, or -1 at a bad length, 0
   when the buffer ends first. */
static int
reference (const uint8_t *p, size_t len, size_t *off, const uint8_t **f, size_t *flen)
{
  uint32_t n;

  if (len - *off < FRAME_HDR_LEN)
    return 0;
  n = ((uint32_t) p[*off] << 24) | ((uint32_t) p[*off + 1] << 16) | ((uint32_t) p[*off + 2] << 8)
      | p[*off + 3];
  if (n == 0 || n > FRAME_MAX)
    return -1;
  if (len - *off - FRAME_HDR_LEN < n)
    return 0;
  *f = p + *off + FRAME_HDR_LEN;
  *flen = n;
  *off += FRAME_HDR_LEN + n;
  return 1;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct frame_decoder d;
  uint32_t rng;
  size_t pos = 1, ref_off = 1;
  bool failed = false;

  if (size < 1)
    return 0;
  rng = data[0] * 2654435761u + 1;
  frame_decoder_init (&d);
  while (pos < size && !failed)
    {
      size_t chunk;
      rng = rng * 1103515245u + 12345u;
      chunk = 1 + (rng >> 16) % 17;
      if (chunk > size - pos)
        chunk = size - pos;
      while (chunk > 0)
        {
          const uint8_t *f, *rf = NULL;
          size_t flen, rlen = 0;
          struct err *e = NULL;
          ssize_t n = frame_decoder_feed (&d, data + pos, chunk, &f, &flen, &e);

          if (n < 0)
            {
              /* The reference must see a bad length at this point too. */
              if (reference (data, size, &ref_off, &rf, &rlen) != -1)
                abort ();
              err_release (&e);
              failed = true;
              break;
            }
          if ((size_t) n > chunk || (n == 0 && f == NULL))
            abort ();
          pos += (size_t) n;
          chunk -= (size_t) n;
          if (f != NULL)
            {
              if (reference (data, size, &ref_off, &rf, &rlen) != 1 || rlen != flen
                  || memcmp (rf, f, flen) != 0 || ref_off != pos)
                abort ();
            }
        }
    }
  if (failed)
    {
      const uint8_t *f;
      size_t flen;
      struct err *e = NULL;
      uint8_t b = 0;
      if (frame_decoder_feed (&d, &b, 1, &f, &flen, &e) >= 0)
        abort (); /* failure must be sticky */
      err_release (&e);
    }
  frame_decoder_free (&d);
  return 0;
}
