/* SPDX-License-Identifier: Apache-2.0 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void
frame_decoder_init (struct frame_decoder *d)
{
  memset (d, 0, sizeof *d);
}

void
frame_decoder_free (struct frame_decoder *d)
{
  free (d->buf);
  frame_decoder_init (d);
}

int
frame_decoder_partial_p (const struct frame_decoder *d)
{
  return !d->done && (d->hdr_got > 0 || d->got > 0);
}

void
frame_put_header (uint8_t out[FRAME_HDR_LEN], uint32_t len)
{
  out[0] = (uint8_t) (len >> 24);
  out[1] = (uint8_t) (len >> 16);
  out[2] = (uint8_t) (len >> 8);
  out[3] = (uint8_t) len;
}

ssize_t
frame_decoder_feed (struct frame_decoder *d, const void *data, size_t len, const uint8_t **frame,
                    size_t *frame_len, struct err **err)
{
  const uint8_t *p = data;
  size_t used = 0;

  *frame = NULL;
  *frame_len = 0;
  if (d->failed)
    return err_make (err, EPROTO, "frame stream already failed");
  if (d->done)
    {
      /* The previous call returned a frame; start the next one. */
      free (d->buf);
      d->buf = NULL;
      d->done = 0;
      d->hdr_got = 0;
      d->len = d->got = 0;
    }
  while (used < len)
    {
      if (d->hdr_got < FRAME_HDR_LEN)
        {
          size_t n = FRAME_HDR_LEN - d->hdr_got;
          if (n > len - used)
            n = len - used;
          memcpy (d->hdr + d->hdr_got, p + used, n);
          d->hdr_got += n;
          used += n;
          if (d->hdr_got < FRAME_HDR_LEN)
            break;
          d->len = ((uint32_t) d->hdr[0] << 24) | ((uint32_t) d->hdr[1] << 16)
                   | ((uint32_t) d->hdr[2] << 8) | d->hdr[3];
          /* Checked before allocating: a hostile length costs nothing. */
          if (d->len == 0 || d->len > FRAME_MAX)
            {
              d->failed = 1;
              return err_make (err, EMSGSIZE, "frame length %u outside 1..%u", (unsigned) d->len,
                               FRAME_MAX);
            }
          d->buf = malloc (d->len);
          if (d->buf == NULL)
            {
              d->failed = 1;
              return err_make (err, ENOMEM, "frame of %u bytes", (unsigned) d->len);
            }
          d->got = 0;
          continue;
        }
      size_t n = d->len - d->got;
      if (n > len - used)
        n = len - used;
      memcpy (d->buf + d->got, p + used, n);
      d->got += n;
      used += n;
      if (d->got == d->len)
        break;
    }
  if (d->hdr_got == FRAME_HDR_LEN && d->buf != NULL && d->got == d->len)
    {
      d->done = 1;
      *frame = d->buf;
      *frame_len = d->len;
    }
  return (ssize_t) used;
}
