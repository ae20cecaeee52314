/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ttrpc, the framing containerd speaks with its shims (github.com/containerd/
 * ttrpc PROTOCOL.md): a 10-byte header (length u32 BE, at most 4 MiB; stream
 * id u32 BE, odd from a client; type u8, 1 request, 2 response; flags u8)
 * and a protobuf Request{service, method, payload, timeout_nano, metadata}
 * or Response{status (google.rpc.Status), payload}.  Unary calls only (the
 * Task API needs nothing else); answers go out in any order, so a Wait can
 * stay parked while Kill and State are answered on the same connection.
 * The pure part (headers, request decoding, response encoding) is fuzzed.
 */
#ifndef CHVM_SHIM_TTRPC_H
#define CHVM_SHIM_TTRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ttrpc/ttrpc.pb-c.h"

#define TTRPC_HEADER_LEN 10
#define TTRPC_MESSAGE_MAX (4u << 20)
#define TTRPC_TYPE_REQUEST 1
#define TTRPC_TYPE_RESPONSE 2

/* gRPC status codes (google.rpc.Code) the shim answers with. */
enum ttrpc_code
{
  TTRPC_OK = 0,
  TTRPC_INVALID_ARGUMENT = 3,
  TTRPC_NOT_FOUND = 5,
  TTRPC_ALREADY_EXISTS = 6,
  TTRPC_FAILED_PRECONDITION = 9,
  TTRPC_UNIMPLEMENTED = 12,
  TTRPC_INTERNAL = 13,
};

struct ttrpc_header
{
  uint32_t length; /* of the data after the header */
  uint32_t stream_id;
  uint8_t type;
  uint8_t flags;
};

/* Reads a header from buf (TTRPC_HEADER_LEN bytes); refuses a length over
   TTRPC_MESSAGE_MAX (the peer is then dropped: the stream cannot be
   resynchronized). */
int ttrpc_header_parse (const uint8_t *buf, struct ttrpc_header *h, struct err **err);
void ttrpc_header_encode (const struct ttrpc_header *h, uint8_t buf[TTRPC_HEADER_LEN]);

/* Decodes a request's data; service and method must be non-empty. */
int ttrpc_request_decode (const uint8_t *data, size_t len, Ttrpc__Request **out, struct err **err);

/* A whole response frame (header and data) for stream: status code and
   message (NULL: none), payload (NULL: empty) packed into it.  *out is
   malloc'd. */
int ttrpc_response_frame (uint32_t stream, int code, const char *msg,
                          const ProtobufCMessage *payload, uint8_t **out, size_t *len,
                          struct err **err);

/* ---- the server (libevent) ---- */

struct event_base;
struct ttrpc_server;
struct ttrpc_conn;

/* One request waiting for its answer; answered (and freed) exactly once by
   ttrpc_reply, also after its connection closed (the answer is dropped). */
struct ttrpc_call
{
  struct ttrpc_conn *conn;
  uint32_t stream_id;
};

/* Called per request; req is freed after it returns (copy what a parked
   call needs).  The handler owns call. */
typedef void (*ttrpc_handler_fn) (void *ctx, struct ttrpc_call *call, const Ttrpc__Request *req);

/* Serves the listening unix socket fd (taken over): accepts peers of our
   own uid only, at most TTRPC_MAX_CONNS at once. */
#define TTRPC_MAX_CONNS 16
int ttrpc_server_new (struct event_base *base, int fd, ttrpc_handler_fn fn, void *ctx,
                      struct ttrpc_server **out, struct err **err);
/* Closes the open connections (a parked call keeps its own until answered:
   its answer is then dropped) and the listener. */
void ttrpc_server_free (struct ttrpc_server *s);

/* Answers call with code (TTRPC_OK: payload) and frees it. */
void ttrpc_reply (struct ttrpc_call *call, int code, const char *msg,
                  const ProtobufCMessage *payload);
/* ttrpc_reply with a printf message. */
void ttrpc_replyf (struct ttrpc_call *call, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif
