/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the shim's ttrpc framing and task requests
 * (shim/ttrpc.c): the input is a stream of frames as containerd would send
 * them; each header is parsed (lengths over 4 MiB refused), each request
 * decoded, and a request's payload decoded as every Task request message,
 * which the handlers unpack; a response frame for it must parse back.
 * An Exec request's process spec (JSON) goes through the parser Exec uses,
 * and the payload itself through config.json's (its pod's and chvm's
 * annotations and network namespace too).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cleanup.h"
#include "github.com/containerd/containerd/runtime/v2/task/shim.pb-c.h"
#include "names.h"
#include "spec.h"
#include "ttrpc.h"

static const ProtobufCMessageDescriptor *const requests[] = {
  &containerd__task__v2__create_task_request__descriptor,
  &containerd__task__v2__start_request__descriptor,
  &containerd__task__v2__state_request__descriptor,
  &containerd__task__v2__wait_request__descriptor,
  &containerd__task__v2__kill_request__descriptor,
  &containerd__task__v2__delete_request__descriptor,
  &containerd__task__v2__connect_request__descriptor,
  &containerd__task__v2__pids_request__descriptor,
  &containerd__task__v2__shutdown_request__descriptor,
  &containerd__task__v2__exec_process_request__descriptor,
};

/* The JSON parsers of spec.c over text (no NUL needed: lengths given). */
static void
specs (const ProtobufCBinaryData *payload)
{
  Containerd__Task__V2__ExecProcessRequest *x
      = containerd__task__v2__exec_process_request__unpack (NULL, payload->len, payload->data);
  struct shim_spec *sp = NULL;
  struct err *err = NULL;

  if (x != NULL && x->spec != NULL
      && shim_spec_parse_process ((const char *) x->spec->value.data, x->spec->value.len, &sp, &err)
             == 0)
    shim_spec_free (steal_ptr (&sp));
  err_release (&err);
  if (x != NULL)
    containerd__task__v2__exec_process_request__free_unpacked (x, NULL);
  if (shim_spec_parse ((const char *) payload->data, payload->len, &sp, &err) == 0)
    {
      /* A pod's annotations: its role, and the socket of its group's shim. */
      char sock[128];

      (void) shim_spec_role (sp);
      names_socket ("/run/containerd/containerd.sock", "k8s.io", shim_spec_group (sp, "id"), sock,
                    sizeof sock);
      shim_spec_free (sp);
    }
  err_release (&err);
}

static void
one_request (const struct ttrpc_header *h, const uint8_t *data)
{
  struct err *err = NULL;
  Ttrpc__Request *req = NULL;
  struct ttrpc_header back;
  uint8_t *frame = NULL;
  size_t len;

  if (ttrpc_request_decode (data, h->length, &req, &err) < 0)
    {
      err_release (&err);
      return;
    }
  for (size_t i = 0; i < sizeof requests / sizeof *requests; i++)
    {
      ProtobufCMessage *m
          = protobuf_c_message_unpack (requests[i], NULL, req->payload.len, req->payload.data);
      if (m != NULL)
        protobuf_c_message_free_unpacked (m, NULL);
    }
  specs (&req->payload);
  if (ttrpc_response_frame (h->stream_id, TTRPC_NOT_FOUND, req->method, NULL, &frame, &len, &err)
      == 0)
    {
      if (ttrpc_header_parse (frame, &back, NULL) < 0 || back.length + TTRPC_HEADER_LEN != len
          || back.stream_id != h->stream_id)
        abort ();
      free (frame);
    }
  err_release (&err);
  ttrpc__request__free_unpacked (req, NULL);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  size_t off = 0;

  while (size - off >= TTRPC_HEADER_LEN)
    {
      struct err *err = NULL;
      struct ttrpc_header h;

      if (ttrpc_header_parse (data + off, &h, &err) < 0)
        {
          err_release (&err);
          break;
        }
      off += TTRPC_HEADER_LEN;
      if (size - off < h.length)
        break;
      if (h.type == TTRPC_TYPE_REQUEST)
        one_request (&h, data + off);
      off += h.length;
    }
  return 0;
}
