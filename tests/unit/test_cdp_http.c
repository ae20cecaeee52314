/* SPDX-License-Identifier: Apache-2.0 */
/* The CDP endpoint's HTTP side (host-tool/cdp_http.c): strict request
   heads, the head sent to the guest, /json answers rewritten to the
   endpoint's address, the end of a kept-open answer, error answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cdp/cdp_http.h"

static int
parse (const char *head, struct cdp_req *r)
{
  const char *why;

  return cdp_parse_request (head, strlen (head), r, &why);
}

static void
test_parse_request (void **state)
{
  struct cdp_req r;
  const char *why;

  (void) state;
  assert_int_equal (parse ("GET /json/version HTTP/1.1\r\nHost: 127.0.0.1:9444\r\n\r\n", &r), 0);
  assert_string_equal (r.method, "GET");
  assert_string_equal (r.target, "/json/version");
  assert_string_equal (r.host, "127.0.0.1:9444");
  assert_true (r.rewrite);
  assert_false (r.upgrade);
  assert_int_equal (
      parse ("GET /devtools/browser/x HTTP/1.1\r\nhost:a:1\r\nUpgrade:  WebSocket \r\n"
             "Connection: Upgrade\r\n\r\n",
             &r),
      0);
  assert_true (r.upgrade);
  assert_false (r.rewrite);
  assert_string_equal (r.host, "a:1");
  /* Upgrade is a comma-separated list, tokens case-insensitive, empty
     ones and white space around them ignored; a token only as a whole. */
  assert_int_equal (parse ("GET / HTTP/1.1\r\nUpgrade: h2c, ,\twebsocket\t,x\r\n\r\n", &r), 0);
  assert_true (r.upgrade);
  assert_int_equal (parse ("GET / HTTP/1.1\r\nUpgrade: websockets, web socket\r\n\r\n", &r), 0);
  assert_false (r.upgrade);
  assert_int_equal (parse ("PUT /json/new?about:blank HTTP/1.1\r\n\r\n", &r), 0);
  assert_true (r.rewrite);
  assert_int_equal (parse ("GET /jsonx HTTP/1.1\r\n\r\n", &r), 0);
  assert_false (r.rewrite);
  /* Refused: no blank line, bad request line, two Host headers, control
     bytes, a header without a name, an absolute target, HTTP/2. */
  assert_int_equal (cdp_parse_request ("GET / HTTP/1.1\r\n", 16, &r, &why), -1);
  assert_int_equal (parse ("GET  / HTTP/1.1\r\n\r\n", &r), -1);
  assert_int_equal (parse ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r), -1);
  assert_int_equal (parse ("GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", &r), -1);
  assert_int_equal (parse ("GET / HTTP/1.1\r\n: v\r\n\r\n", &r), -1);
  assert_int_equal (parse ("GET http://x/ HTTP/1.1\r\n\r\n", &r), -1);
  assert_int_equal (parse ("GET / HTTP/2.0\r\n\r\n", &r), -1);
  assert_int_equal (parse ("G(T / HTTP/1.1\r\n\r\n", &r), -1);
}

static void
test_upstream_head (void **state)
{
  static const char head[] = "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:9444\r\nConnection: "
                             "keep-alive\r\nAccept: */*\r\n\r\n";
  char out[512];
  struct cdp_req r;
  long n;

  (void) state;
  assert_int_equal (parse (head, &r), 0);
  n = cdp_upstream_head (head, strlen (head), &r, "10.213.0.2:9222", out, sizeof out);
  assert_true (n > 0);
  assert_string_equal (out, "GET /json/list HTTP/1.1\r\nHost: 10.213.0.2:9222\r\nAccept: */*\r\n"
                            "Connection: close\r\n\r\n");
  /* A WebSocket keeps its Connection: Upgrade. */
  static const char ws[] = "GET /devtools/page/1 HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n\r\n";
  assert_int_equal (parse (ws, &r), 0);
  n = cdp_upstream_head (ws, strlen (ws), &r, "g:2", out, sizeof out);
  assert_string_equal (out, "GET /devtools/page/1 HTTP/1.1\r\nHost: g:2\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n");
  /* Too small: refused, not truncated. */
  assert_int_equal (cdp_upstream_head (ws, strlen (ws), &r, "g:2", out, 20), -1);
}

static void
test_client_host (void **state)
{
  struct cdp_req r = { .host = "localhost:9444" };

  (void) state;
  assert_string_equal (cdp_client_host (&r, "127.0.0.1:1"), "localhost:9444");
  snprintf (r.host, sizeof r.host, "a/b");
  assert_string_equal (cdp_client_host (&r, "127.0.0.1:1"), "127.0.0.1:1");
  r.host[0] = '\0';
  assert_string_equal (cdp_client_host (&r, "127.0.0.1:1"), "127.0.0.1:1");
}

/* What DevTools itself serves: no Host, an IP literal or localhost; a DNS
   name (a rebound page's) is refused. */
static void
test_host_allowed (void **state)
{
  static const char *const ok[] = { "",          "127.0.0.1",  "127.0.0.1:9222", "LOCALHOST:1",
                                    "localhost", "[::1]:9222", "[::1]",          "10.0.0.7:65535" };
  static const char *const bad[] = { "evil.example:9222", "evil.example", "127.0.0.1.nip.io",
                                     "localhost.evil",    "[::1",         "[::1]x",
                                     "127.0.0.1:",        "127.0.0.1:9x", "127.0.0.1:123456",
                                     "[evil]:1",          "1.2.3.4:5:6" };
  struct cdp_req r = { 0 };

  (void) state;
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    {
      snprintf (r.host, sizeof r.host, "%s", ok[i]);
      assert_true (cdp_host_allowed (&r));
    }
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      snprintf (r.host, sizeof r.host, "%s", bad[i]);
      assert_false (cdp_host_allowed (&r));
    }
}

/* The endpoint's capability: only a target under /TOKEN passes, and the
   guest sees it without. */
static void
test_token (void **state)
{
  static const char tok[] = "00112233445566778899aabbccddeeff";
  static const struct
  {
    const char *target, *after; /* NULL: refused */
  } cases[] = {
    { "/00112233445566778899aabbccddeeff/json/version", "/json/version" },
    { "/00112233445566778899aabbccddeeff", "/" },
    { "/00112233445566778899aabbccddeeff/", "/" },
    { "/00112233445566778899aabbccddeeff?x=1", "/?x=1" },
    { "/00112233445566778899aabbccddeeff/devtools/browser/ab", "/devtools/browser/ab" },
    { "/json/version", NULL },
    { "/", NULL },
    { "/00112233445566778899aabbccddeefe/json", NULL },
    { "/00112233445566778899aabbccddeeff0/json", NULL },
    { "/00112233445566778899aabbccddeef/json", NULL },
    { "//00112233445566778899aabbccddeeff/json", NULL },
  };
  char head[512], out[1024];
  struct cdp_req r;

  (void) state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      snprintf (head, sizeof head, "GET %s HTTP/1.0\r\nHost: 127.0.0.1:5\r\n\r\n", cases[i].target);
      assert_int_equal (parse (head, &r), 0);
      if (cases[i].after == NULL)
        {
          assert_false (cdp_take_token (&r, tok));
          continue;
        }
      assert_true (cdp_take_token (&r, tok));
      assert_string_equal (r.target, cases[i].after);
      assert_int_equal (r.rewrite, strncmp (cases[i].after, "/json", 5) == 0);
      assert_true (cdp_upstream_head (head, strlen (head), &r, "g:1", out, sizeof out) > 0);
      snprintf (head, sizeof head, "GET %s HTTP/1.0\r\nHost: g:1\r\n", cases[i].after);
      assert_int_equal (strncmp (out, head, strlen (head)), 0);
    }
  /* No token set: nothing passes. */
  assert_int_equal (parse ("GET /json HTTP/1.1\r\n\r\n", &r), 0);
  assert_false (cdp_take_token (&r, ""));
}

/* The guest's address becomes the endpoint's with the token, in both the
   WebSocket URLs and the frontend's ws= parameter; the cap fits exactly. */
static void
test_rewrite_with_token (void **state)
{
  static const char body[]
      = "[{\"devtoolsFrontendUrl\": \"/devtools/inspector.html?ws=10.213.0.2:9222/devtools/page/"
        "P\", \"webSocketDebuggerUrl\": \"ws://10.213.0.2:9222/devtools/page/P\"}]";
  static const char to[] = "127.0.0.1:40000/00112233445566778899aabbccddeeff";
  char resp[512], out[1024];
  size_t cap;
  long n;

  (void) state;
  snprintf (resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen (body),
            body);
  cap = cdp_rewrite_cap (resp, strlen (resp), "10.213.0.2:9222", to);
  assert_true (cap <= sizeof out);
  n = cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", to, out, cap);
  assert_true (n > 0 && (size_t) n < cap);
  assert_non_null (
      strstr (out, "ws=127.0.0.1:40000/00112233445566778899aabbccddeeff/devtools/page/P"));
  assert_non_null (
      strstr (out, "ws://127.0.0.1:40000/00112233445566778899aabbccddeeff/devtools/page/P"));
  /* A guest URL to the endpoint without the token is another host. */
  snprintf (resp, sizeof resp,
            "HTTP/1.1 200 OK\r\nContent-Length: 58\r\n\r\n{\"webSocketDebuggerUrl\": "
            "\"ws://127.0.0.1:40000/devtools/x\"}");
  assert_int_equal (
      cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", to, out, sizeof out), -2);
}

static void
test_rewrite_response (void **state)
{
  static const char body[] = "{\"webSocketDebuggerUrl\": \"ws://10.213.0.2:9222/devtools/browser/"
                             "abc\", \"x\": \"10.213.0.2:9222\"}";
  char resp[512];
  char out[1024], path[64];
  long n;
  size_t hend;

  (void) state;
  snprintf (resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length:%zu\r\nContent-Type:x\r\n\r\n%s",
            strlen (body), body);
  assert_int_equal (cdp_response_complete (resp, strlen (resp)), 1);
  assert_int_equal (cdp_response_complete (resp, strlen (resp) - 1), 0);
  assert_int_equal (cdp_response_complete (resp, 20), 0);
  n = cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "[::1]:40000", out, sizeof out);
  assert_true (n > 0);
  hend = cdp_head_end (out, (size_t) n);
  snprintf (path, sizeof path, "Content-Length: %zu\r\n", strlen (body) - 8);
  assert_non_null (strstr (out, path));
  assert_non_null (strstr (out, "Connection: close\r\n"));
  assert_int_equal ((size_t) n - hend, strlen (body) - 8);
  assert_non_null (strstr (out + hend, "ws://[::1]:40000/devtools/browser/abc"));
  assert_null (strstr (out + hend, "10.213.0.2"));
  assert_int_equal (cdp_browser_path (out + hend, (size_t) n - hend, path, sizeof path), 0);
  assert_string_equal (path, "/devtools/browser/abc");
  /* A guest naming another host (another VM's endpoint, say), even
     behind JSON escapes or after one entry of its own, is refused. */
  static const char *const redirect[] = {
    "{\"webSocketDebuggerUrl\": \"ws://127.0.0.1:41000/devtools/browser/x\"}",
    /* The key escaped, after a good one: JSON.parse keeps the last. */
    "{\"webSocketDebuggerUrl\": \"ws://10.213.0.2:9222/devtools/browser/a\","
    "\"webSocket\\u0044ebuggerUrl\": \"ws://127.0.0.1:41000/devtools/browser/x\"}",
    "[{\"x\": {\"webSocketDebuggerUrl\": \"ws://evil:1/devtools/page/a\"}}]",
    /* Not JSON a client could be given as such. */
    "{\"webSocketDebuggerUrl\": \"ws://10.213.0.2:9222/devtools/page/a\"",
    "{\"webSocketDebuggerUrl\":\"ws:\\/\\/127.0.0.1:41000\\/devtools/browser/x\"}",
    "[{\"webSocketDebuggerUrl\": \"ws://10.213.0.2:9222/devtools/page/a\"},"
    "{\"webSocketDebuggerUrl\": \"ws://10.213.0.2:92220/devtools/page/b\"}]",
  };
  for (size_t i = 0; i < sizeof redirect / sizeof redirect[0]; i++)
    {
      snprintf (resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                strlen (redirect[i]), redirect[i]);
      assert_int_equal (cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "[::1]:40000",
                                              out, sizeof out),
                        -2);
    }
  /* A redirect would be followed anywhere: refused. */
  snprintf (resp, sizeof resp,
            "HTTP/1.1 302 Found\r\nLocation: http://evil/\r\nContent-Length: 0\r\n\r\n");
  assert_int_equal (
      cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "[::1]:40000", out, sizeof out),
      -2);
  /* Text, and JSON with a line end after it, pass. */
  snprintf (resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\nTarget activated");
  assert_true (
      cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "[::1]:40000", out, sizeof out)
      > 0);
  snprintf (resp, sizeof resp,
            "HTTP/1.1 200 OK\r\n\r\n[ {\"webSocketDebuggerUrl\": "
            "\"ws://10.213.0.2:9222/devtools/page/a\"} ]\n");
  assert_true (
      cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "[::1]:40000", out, sizeof out)
      > 0);
  /* Chunked, or too small an output: not rewritten. */
  static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
  assert_int_equal (cdp_rewrite_response (chunked, strlen (chunked), "a", "b", out, sizeof out),
                    -1);
  assert_int_equal (cdp_rewrite_response (resp, strlen (resp), "10.213.0.2:9222", "x", out, 40),
                    -1);
  /* No Content-Length: the end is EOF; one too large is refused. */
  assert_int_equal (cdp_response_complete ("HTTP/1.1 200 OK\r\n\r\n", 19), -1);
  assert_int_equal (
      cdp_response_complete ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 48), -1);
  assert_int_equal (
      cdp_browser_path ("{\"webSocketDebuggerUrl\":\"http://x/y\"}", 38, path, sizeof path), -1);
}

static void
test_error_response (void **state)
{
  char out[256];
  size_t n;

  (void) state;
  n = cdp_error_response (503, "Service Unavailable", "chvm: too many", out, sizeof out);
  assert_int_equal (n, strlen (out));
  assert_string_equal (out, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 15\r\nConnection: close\r\n\r\nchvm: too many\n");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_request),  cmocka_unit_test (test_upstream_head),
    cmocka_unit_test (test_client_host),    cmocka_unit_test (test_rewrite_response),
    cmocka_unit_test (test_error_response), cmocka_unit_test (test_host_allowed),
    cmocka_unit_test (test_token),          cmocka_unit_test (test_rewrite_with_token),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
