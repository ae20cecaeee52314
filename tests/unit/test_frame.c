/* SPDX-License-Identifier: Apache-2.0 */
/* Framing: lengths checked before allocation, incremental decoding that
   stops at each frame boundary, and sticky failure after a bad length. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static size_t
put_frame (uint8_t *out, const char *payload, uint32_t len)
{
  frame_put_header (out, len);
  memcpy (out + FRAME_HDR_LEN, payload, len);
  return FRAME_HDR_LEN + len;
}

static void
test_header_big_endian (void **state)
{
  uint8_t h[4];

  (void) state;
  frame_put_header (h, 0x01020304u);
  assert_int_equal (h[0], 1);
  assert_int_equal (h[1], 2);
  assert_int_equal (h[2], 3);
  assert_int_equal (h[3], 4);
}

static void
test_whole_frame (void **state)
{
  struct frame_decoder d;
  uint8_t buf[64];
  const uint8_t *f;
  size_t flen, n = put_frame (buf, "hello", 5);
  struct err *e = NULL;

  (void) state;
  frame_decoder_init (&d);
  assert_int_equal (frame_decoder_feed (&d, buf, n, &f, &flen, &e), (ssize_t) n);
  assert_non_null (f);
  assert_int_equal (flen, 5);
  assert_memory_equal (f, "hello", 5);
  assert_false (frame_decoder_partial_p (&d));
  frame_decoder_free (&d);
}

static void
test_byte_by_byte (void **state)
{
  struct frame_decoder d;
  uint8_t buf[64];
  const uint8_t *f = NULL;
  size_t flen = 0, n = put_frame (buf, "abcdefgh", 8);
  struct err *e = NULL;

  (void) state;
  frame_decoder_init (&d);
  for (size_t i = 0; i < n; i++)
    {
      assert_int_equal (frame_decoder_feed (&d, buf + i, 1, &f, &flen, &e), 1);
      if (i + 1 < n)
        {
          assert_null (f);
          assert_true (frame_decoder_partial_p (&d));
        }
    }
  assert_non_null (f);
  assert_int_equal (flen, 8);
  assert_memory_equal (f, "abcdefgh", 8);
  frame_decoder_free (&d);
}

/* Two frames and raw bytes in one buffer: each feed stops at a frame end,
   so the caller can switch to raw mode after a Forward. */
static void
test_stops_at_boundary (void **state)
{
  struct frame_decoder d;
  uint8_t buf[64];
  const uint8_t *f;
  size_t flen, n1 = put_frame (buf, "one", 3);
  size_t n2 = put_frame (buf + n1, "two!", 4);
  struct err *e = NULL;
  ssize_t r;

  (void) state;
  memcpy (buf + n1 + n2, "RAW", 3);
  frame_decoder_init (&d);
  r = frame_decoder_feed (&d, buf, n1 + n2 + 3, &f, &flen, &e);
  assert_int_equal (r, (ssize_t) n1);
  assert_memory_equal (f, "one", 3);
  r = frame_decoder_feed (&d, buf + n1, n2 + 3, &f, &flen, &e);
  assert_int_equal (r, (ssize_t) n2);
  assert_int_equal (flen, 4);
  assert_memory_equal (f, "two!", 4);
  frame_decoder_free (&d);
}

static void
test_zero_length_rejected (void **state)
{
  struct frame_decoder d;
  uint8_t buf[8] = { 0, 0, 0, 0, 1, 2, 3, 4 };
  const uint8_t *f;
  size_t flen;
  struct err *e = NULL;

  (void) state;
  frame_decoder_init (&d);
  assert_true (frame_decoder_feed (&d, buf, sizeof buf, &f, &flen, &e) < 0);
  assert_non_null (e);
  assert_int_equal (e->status, EMSGSIZE);
  err_release (&e);
  /* Sticky: the stream cannot be resynchronised. */
  assert_true (frame_decoder_feed (&d, buf + 4, 4, &f, &flen, &e) < 0);
  err_release (&e);
  frame_decoder_free (&d);
}

static void
test_oversized_rejected_before_alloc (void **state)
{
  struct frame_decoder d;
  uint8_t hdr[4];
  const uint8_t *f;
  size_t flen;
  struct err *e = NULL;

  (void) state;
  frame_decoder_init (&d);
  frame_put_header (hdr, FRAME_MAX + 1);
  assert_true (frame_decoder_feed (&d, hdr, 4, &f, &flen, &e) < 0);
  assert_null (d.buf);
  err_release (&e);
  frame_decoder_free (&d);

  frame_decoder_init (&d);
  memset (hdr, 0xff, sizeof hdr);
  assert_true (frame_decoder_feed (&d, hdr, 4, &f, &flen, &e) < 0);
  assert_null (d.buf);
  err_release (&e);
  frame_decoder_free (&d);
}

static void
test_max_size_accepted (void **state)
{
  struct frame_decoder d;
  uint8_t *buf = malloc (FRAME_MAX + FRAME_HDR_LEN);
  const uint8_t *f;
  size_t flen;
  struct err *e = NULL;

  (void) state;
  assert_non_null (buf);
  frame_put_header (buf, FRAME_MAX);
  memset (buf + FRAME_HDR_LEN, 'x', FRAME_MAX);
  frame_decoder_init (&d);
  assert_int_equal (frame_decoder_feed (&d, buf, FRAME_MAX + FRAME_HDR_LEN, &f, &flen, &e),
                    (ssize_t) (FRAME_MAX + FRAME_HDR_LEN));
  assert_non_null (f);
  assert_int_equal (flen, FRAME_MAX);
  assert_int_equal (f[FRAME_MAX - 1], 'x');
  frame_decoder_free (&d);
  free (buf);
}

static void
test_truncated_is_partial (void **state)
{
  struct frame_decoder d;
  uint8_t buf[64];
  const uint8_t *f;
  size_t flen, n = put_frame (buf, "truncated", 9);
  struct err *e = NULL;

  (void) state;
  frame_decoder_init (&d);
  assert_false (frame_decoder_partial_p (&d));
  assert_int_equal (frame_decoder_feed (&d, buf, n - 3, &f, &flen, &e), (ssize_t) (n - 3));
  assert_null (f);
  assert_true (frame_decoder_partial_p (&d));
  /* Freeing mid-frame releases the partial buffer (ASan checks). */
  frame_decoder_free (&d);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_header_big_endian),
    cmocka_unit_test (test_whole_frame),
    cmocka_unit_test (test_byte_by_byte),
    cmocka_unit_test (test_stops_at_boundary),
    cmocka_unit_test (test_zero_length_rejected),
    cmocka_unit_test (test_oversized_rejected_before_alloc),
    cmocka_unit_test (test_max_size_accepted),
    cmocka_unit_test (test_truncated_is_partial),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
