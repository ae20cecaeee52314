/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Length-prefixed framing of the agent protocol: a 4-byte big-endian length
 * N with 1 <= N <= FRAME_MAX, then N bytes of payload (one protobuf Frame).
 * The decoder is incremental so that it works on non-blocking streams: the
 * agent feeds it from libevent buffers, the host from poll()ed reads.  It
 * checks the length before allocating, so a peer can make it hold at most
 * FRAME_MAX bytes.  This file knows nothing about protobuf, so guest-init
 * can link common/ without protobuf-c.
 */
#ifndef CHVM_FRAME_H
#define CHVM_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define FRAME_HDR_LEN 4u
#define FRAME_MAX (1u << 20)

struct frame_decoder
{
  uint8_t hdr[FRAME_HDR_LEN];
  size_t hdr_got;
  uint8_t *buf; /* payload being assembled, len bytes */
  uint32_t len;
  uint32_t got;
  int done;   /* buf holds a complete frame, returned by the last feed */
  int failed; /* a bad length was seen; the stream cannot be resynced */
};

void frame_decoder_init (struct frame_decoder *d);
void frame_decoder_free (struct frame_decoder *d);

/* Consumes bytes from data[0..len) and returns how many (>= 0), stopping
   right after the first frame it completes so that the caller can act on it
   before the rest of the stream (after a Forward the rest is raw bytes).
   When a frame is complete, *frame and *frame_len point at its payload, valid
   until the next call; otherwise *frame is NULL.  A length of 0 or above
   FRAME_MAX fails (< 0, err set) and keeps failing: drop the connection. */
ssize_t frame_decoder_feed (struct frame_decoder *d, const void *data, size_t len,
                            const uint8_t **frame, size_t *frame_len, struct err **err);

/* Whether the decoder holds part of a frame (a disconnect now truncates it). */
int frame_decoder_partial_p (const struct frame_decoder *d);

/* Writes the 4-byte header for a payload of len bytes (1..FRAME_MAX). */
void frame_put_header (uint8_t out[FRAME_HDR_LEN], uint32_t len);

#endif
