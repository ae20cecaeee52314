/* SPDX-License-Identifier: Apache-2.0 */
/* shim/ttrpc.c's framing: headers, the 4 MiB bound, requests and
   response frames as containerd's ttrpc writes and reads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "google/rpc/status.pb-c.h"
#include "ttrpc.h"

static void
test_header_round_trip (void **state)
{
  struct ttrpc_header h = { .length = 0x01020304, .stream_id = 0x0a0b0c0d, .type = 1, .flags = 0 };
  struct ttrpc_header back;
  uint8_t b[TTRPC_HEADER_LEN];

  (void) state;
  h.length = 0x00020304;
  ttrpc_header_encode (&h, b);
  assert_int_equal (b[0], 0x00);
  assert_int_equal (b[1], 0x02);
  assert_int_equal (b[4], 0x0a);
  assert_int_equal (b[7], 0x0d);
  assert_int_equal (b[8], 1);
  assert_int_equal (ttrpc_header_parse (b, &back, NULL), 0);
  assert_int_equal (back.length, h.length);
  assert_int_equal (back.stream_id, h.stream_id);
  assert_int_equal (back.type, 1);
}

static void
test_header_too_long (void **state)
{
  struct err *err = NULL;
  struct ttrpc_header h;
  uint8_t ok[TTRPC_HEADER_LEN] = { 0x00, 0x40, 0x00, 0x00, 0, 0, 0, 1, 1, 0 };
  uint8_t big[TTRPC_HEADER_LEN] = { 0x00, 0x40, 0x00, 0x01, 0, 0, 0, 1, 1, 0 };

  (void) state;
  assert_int_equal (ttrpc_header_parse (ok, &h, NULL), 0); /* exactly 4 MiB */
  assert_true (ttrpc_header_parse (big, &h, &err) < 0);
  assert_non_null (strstr (err->msg, "4194304"));
  err_release (&err);
}

static void
test_request_decode (void **state)
{
  Ttrpc__Request r = TTRPC__REQUEST__INIT, *back = NULL;
  Ttrpc__KeyValue kv = TTRPC__KEY_VALUE__INIT, *kvs[1] = { &kv };
  uint8_t buf[256], payload[] = { 0x0a, 0x02, 'i', 'd' };
  struct err *err = NULL;
  size_t n;

  (void) state;
  r.service = (char *) "containerd.task.v2.Task";
  r.method = (char *) "State";
  r.payload.data = payload;
  r.payload.len = sizeof payload;
  r.timeout_nano = 5;
  kv.key = (char *) "containerd-namespace-ttrpc";
  kv.value = (char *) "default";
  r.n_metadata = 1;
  r.metadata = kvs;
  n = ttrpc__request__pack (&r, buf);
  assert_int_equal (ttrpc_request_decode (buf, n, &back, NULL), 0);
  assert_string_equal (back->service, "containerd.task.v2.Task");
  assert_string_equal (back->method, "State");
  assert_int_equal (back->payload.len, sizeof payload);
  assert_string_equal (back->metadata[0]->value, "default");
  ttrpc__request__free_unpacked (back, NULL);
  /* No method: refused. */
  r.method = (char *) "";
  n = ttrpc__request__pack (&r, buf);
  assert_true (ttrpc_request_decode (buf, n, &back, &err) < 0);
  err_release (&err);
  /* Garbage. */
  assert_true (ttrpc_request_decode ((const uint8_t *) "\xff\xff\xff", 3, &back, &err) < 0);
  err_release (&err);
}

static void
test_response_frame (void **state)
{
  Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
  struct ttrpc_header h;
  Ttrpc__Response *resp;
  uint8_t *frame = NULL;
  size_t len;

  (void) state;
  st.code = 7;
  assert_int_equal (
      ttrpc_response_frame (9, TTRPC_NOT_FOUND, "task x not found", NULL, &frame, &len, NULL), 0);
  assert_int_equal (ttrpc_header_parse (frame, &h, NULL), 0);
  assert_int_equal (h.stream_id, 9);
  assert_int_equal (h.type, TTRPC_TYPE_RESPONSE);
  assert_int_equal (h.length + TTRPC_HEADER_LEN, len);
  resp = ttrpc__response__unpack (NULL, h.length, frame + TTRPC_HEADER_LEN);
  assert_non_null (resp);
  assert_int_equal (resp->status->code, TTRPC_NOT_FOUND);
  assert_string_equal (resp->status->message, "task x not found");
  ttrpc__response__free_unpacked (resp, NULL);
  free (frame);
  /* OK with a payload: the payload is the packed message. */
  assert_int_equal (ttrpc_response_frame (11, TTRPC_OK, NULL, &st.base, &frame, &len, NULL), 0);
  resp = ttrpc__response__unpack (NULL, len - TTRPC_HEADER_LEN, frame + TTRPC_HEADER_LEN);
  assert_non_null (resp);
  assert_int_equal (resp->status->code, 0);
  assert_int_equal (resp->payload.len, google__rpc__status__get_packed_size (&st));
  ttrpc__response__free_unpacked (resp, NULL);
  free (frame);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_header_round_trip),
    cmocka_unit_test (test_header_too_long),
    cmocka_unit_test (test_request_decode),
    cmocka_unit_test (test_response_frame),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
