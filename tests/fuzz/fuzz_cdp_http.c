/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the CDP endpoint's HTTP side (host-tool/cdp_http.c),
 * which reads the bytes of any local client and of the guest: a request
 * head parsed and turned into the head for the guest, and the same input as
 * a guest's answer, checked for its end, rewritten and searched for the
 * browser's path.  Every output must stay inside its buffer and be
 * NUL-terminated where promised.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdp/cdp_http.h"

#define TO "127.0.0.1:40000/00112233445566778899aabbccddeeff"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const char *in = (const char *) data, *why;
  struct cdp_req req;
  size_t end = cdp_head_end (in, size > CDP_HEAD_MAX ? CDP_HEAD_MAX : size);
  char *out;
  size_t cap;
  long n;

  if (end > 0 && cdp_parse_request (in, end, &req, &why) == 0)
    {
      char head[CDP_HEAD_MAX + 512];
      n = cdp_upstream_head (in, end, &req, "10.213.0.2:9222", head, sizeof head);
      if (n >= 0 && (size_t) n != strlen (head))
        abort ();
      if (strlen (cdp_client_host (&req, "127.0.0.1:1")) >= sizeof req.host)
        abort ();
      (void) cdp_host_allowed (&req);
      if (cdp_take_token (&req, "00112233445566778899aabbccddeeff")
          && (req.target[0] != '/' || strlen (req.target) >= sizeof req.target))
        abort ();
    }
  (void) cdp_response_complete (in, size);
  cap = cdp_rewrite_cap (in, size, "10.213.0.2:9222", TO);
  out = malloc (cap);
  if (out == NULL)
    return 0;
  n = cdp_rewrite_response (in, size, "10.213.0.2:9222", TO, out, cap);

  if (n >= 0)
    {
      char path[256];
      size_t h = cdp_head_end (out, (size_t) n);
      if (h > 0 && cdp_browser_path (out + h, (size_t) n - h, path, sizeof path) == 0
          && strlen (path) >= sizeof path)
        abort ();
    }
  free (out);
  return 0;
}
