/* SPDX-License-Identifier: Apache-2.0 */
/* The CDP proxy's WebSocket scanner (host-tool/wsscan.c): commands and
   replies counted by their top-level "id" whatever the key order, masked or
   not, split at any byte, across continuation frames; events and nested
   "id"s not counted; what it cannot follow stops it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cdp/wsscan.h"

/* One frame of payload p into out; returns its length. */
static size_t
frame (unsigned char *out, int fin, int opcode, const char *p, size_t n, const unsigned char *mask)
{
  size_t h = 0;

  out[h++] = (unsigned char) ((fin ? 0x80 : 0) | opcode);
  if (n < 126)
    out[h++] = (unsigned char) ((mask ? 0x80 : 0) | n);
  else
    {
      out[h++] = (unsigned char) ((mask ? 0x80 : 0) | 126);
      out[h++] = (unsigned char) (n >> 8);
      out[h++] = (unsigned char) n;
    }
  if (mask)
    {
      memcpy (out + h, mask, 4);
      h += 4;
    }
  for (size_t i = 0; i < n; i++)
    out[h + i] = (unsigned char) (p[i] ^ (mask ? mask[i & 3] : 0));
  return h + n;
}

static int
ids (const char *json, bool masked)
{
  static const unsigned char m[4] = { 0x12, 0x34, 0x56, 0x78 };
  unsigned char buf[1024];
  struct ws_scan s;
  size_t n = frame (buf, 1, 1, json, strlen (json), masked ? m : NULL);
  int total = 0;

  /* Byte by byte: every split point. */
  ws_scan_init (&s);
  for (size_t i = 0; i < n; i++)
    {
      int k = ws_scan_feed (&s, buf + i, 1);
      if (k < 0)
        return -1;
      total += k;
    }
  return total;
}

static void
test_ids (void **state)
{
  (void) state;
  assert_int_equal (ids ("{\"id\":1,\"method\":\"Runtime.evaluate\"}", true), 1);
  /* puppeteer puts id after params */
  assert_int_equal (
      ids ("{\"method\":\"X\",\"params\":{\"id\":\"n\",\"a\":[1,{\"id\":2}]},\"id\":7}", true), 1);
  assert_int_equal (ids ("{\"id\":3,\"result\":{\"value\":\"\\\"id\\\":4\"}}", false), 1);
  /* events: no top-level id */
  assert_int_equal (ids ("{\"method\":\"Page.loadEventFired\",\"params\":{\"id\":5}}", false), 0);
  assert_int_equal (ids ("{\"idx\":1,\"i\":2,\"d\":3}", false), 0);
  assert_int_equal (ids ("{\"i\\u0064\":1}", false), 0);
  assert_int_equal (ids ("{\"id\":null}", false), 0);
  assert_int_equal (ids ("[{\"id\":1}]", false), 0);
}

static void
test_fragments_and_control (void **state)
{
  static const unsigned char m[4] = { 1, 2, 3, 4 };
  unsigned char buf[2048];
  struct ws_scan s;
  size_t n = 0;
  char big[300];

  (void) state;
  n += frame (buf + n, 0, 1, "{\"method\":\"a\",", 14, m);
  n += frame (buf + n, 1, 9, "ping", 4, m); /* a control frame in between */
  n += frame (buf + n, 1, 0, "\"id\":9}", 7, m);
  memset (big, ' ', sizeof big);
  memcpy (big, "{\"id\":10", 8);
  big[sizeof big - 1] = '}';
  n += frame (buf + n, 1, 1, big, sizeof big, m); /* 16-bit length */
  n += frame (buf + n, 1, 2, "\x01\x02", 2, m);   /* binary: not CDP */
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, n), 2);
  assert_int_equal (s.messages, 2);
}

static void
test_unfollowable (void **state)
{
  unsigned char buf[64];
  struct ws_scan s;
  size_t n;

  (void) state;
  /* RSV1: permessage-deflate */
  n = frame (buf, 1, 1, "{}", 2, NULL);
  buf[0] |= 0x40;
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, n), -1);
  assert_int_equal (ws_scan_feed (&s, buf, n), -1); /* sticky */
  /* reserved opcode */
  n = frame (buf, 1, 3, "{}", 2, NULL);
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, n), -1);
  /* a 64-bit length with the top bit set */
  memcpy (buf, "\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10);
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, 10), -1);
  /* a new text message inside one */
  n = frame (buf, 0, 1, "{", 1, NULL);
  n += frame (buf + n, 1, 1, "{}", 2, NULL);
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, n), -1);
  /* a long control frame */
  n = frame (buf, 0, 9, "x", 1, NULL);
  ws_scan_init (&s);
  assert_int_equal (ws_scan_feed (&s, buf, n), -1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_ids),
    cmocka_unit_test (test_fragments_and_control),
    cmocka_unit_test (test_unfollowable),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
