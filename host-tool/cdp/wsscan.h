/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A WebSocket frame scanner for the CDP proxy (supervisor.c): it reads a
 * copy of the bytes going one way (the proxy forwards them unchanged) and
 * counts the CDP messages that carry a top-level "id" (commands from the
 * client, their replies from the browser; events carry none).  The
 * supervisor's idle clock needs "no command outstanding", which is the
 * difference of the two counts: a per-connection "awaiting reply" flag is
 * wrong as soon as a client pipelines commands.
 *
 * Constant memory whatever the peer sends: the frame header is at most 14
 * bytes, the JSON is scanned as it streams (depth, string state and the
 * current top-level key, at most 2 bytes of it, are all it keeps).  A frame
 * it cannot follow (a reserved opcode, a length past 2^63, compressed
 * frames) stops the scan: ws_scan_feed returns -1 from then on and the
 * proxy falls back to "no byte for N seconds" alone.
 */
#ifndef CHVM_WSSCAN_H
#define CHVM_WSSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The top-level "id" of one JSON object, streamed. */
struct jid_scan
{
  uint16_t depth; /* nesting of { and [, capped */
  bool in_str, esc;
  bool key_next; /* at depth 1 the next string is a key */
  bool in_key;   /* reading a depth-1 key */
  uint8_t klen;  /* bytes of the key so far (3 = longer than "id") */
  char key[2];
  bool id_value; /* the value of a top-level "id" is being read */
  bool has_id;   /* a top-level "id" with a number was seen */
};

struct ws_scan
{
  unsigned char hdr[14];
  uint8_t hlen, hneed; /* header bytes collected / needed */
  uint64_t left;       /* payload bytes left in the current frame */
  unsigned char mask[4];
  bool masked;
  uint8_t mask_pos;
  uint8_t opcode; /* of the current frame */
  bool fin;
  bool in_text; /* a text message is in progress (across continuation frames) */
  bool broken;
  struct jid_scan j;
  uint64_t frames, messages;
};

void ws_scan_init (struct ws_scan *s);

/* Scans n more bytes; returns how many text messages carrying a top-level
   "id" ended in them, or -1 once the stream cannot be followed. */
int ws_scan_feed (struct ws_scan *s, const unsigned char *p, size_t n);

#endif
