/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of the CDP proxy (supervisor.c), free of I/O so that it is
 * unit-tested and fuzzed: the client's request head (bounded, parsed
 * strictly), the head sent on to the guest's DevTools, and the /json
 * answers with the guest's address replaced by the endpoint's.
 *
 * DevTools builds its webSocketDebuggerUrl and devtoolsFrontendUrl from the
 * Host header it is given; the proxy sends it the guest's own address and
 * replaces every occurrence of that in the body with the address the client
 * used (its Host header when that is a plain host[:port], else the
 * endpoint's listen address).
 */
#ifndef CHVM_CDP_HTTP_H
#define CHVM_CDP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define CDP_HEAD_MAX 16384 /* request or response head */
/* A /json answer that is rewritten (a browser with a thousand tabs lists
   about 500 KiB): with its rewritten copy, what one client costs. */
#define CDP_BODY_MAX (2u << 20)

/* Offset just past the "\r\n\r\n" that ends a head in buf, 0 when it is not
   there yet. */
size_t cdp_head_end (const char *buf, size_t len);

struct cdp_req
{
  char method[16];
  char target[2048];
  char version[9]; /* "HTTP/1.1" or "HTTP/1.0" */
  char host[256];  /* the Host header's value ("" when absent) */
  bool upgrade;    /* Upgrade: websocket */
  bool rewrite;    /* a /json... request whose answer names addresses */
};

/* Parses the head of len bytes (up to and including the blank line).
   Returns 0, or -1 with why set to a short reason (for a 400 answer). */
int cdp_parse_request (const char *head, size_t len, struct cdp_req *req, const char **why);

/* Whether req's target starts with the endpoint's capability, "/TOKEN"
   followed by '/', '?' or its end (compared in constant time); if so, it
   is taken off the target (what is left, or "/", goes to the guest), and
   req->rewrite says again whether that is a /json request.  An empty token
   matches no target. */
bool cdp_take_token (struct cdp_req *req, const char *token);

/* The head to send to the guest: the request line (req's method, target
   and version) and the client's headers as they were, but Host set to
   upstream_host and, for a non-upgrade
   request, "Connection: close" (one request per connection).  Returns the
   length written to out (NUL-terminated), or -1 when it does not fit. */
long cdp_upstream_head (const char *head, size_t len, const struct cdp_req *req,
                        const char *upstream_host, char *out, size_t cap);

/* The address a client should see in URLs: req->host when it is a plain
   host[:port] (letters, digits, '.', '-', ':', '[' and ']'), else listen. */
const char *cdp_client_host (const struct cdp_req *req, const char *listen);

/* Whether DevTools itself would serve a request with this Host: absent, an
   IP literal (IPv4, or IPv6 in brackets) or "localhost", with an optional
   port.  Anything else may be a page of another origin that a DNS name
   rebound to the endpoint (the proxy hides the client's Host from
   DevTools, which makes this check, so the proxy makes it). */
bool cdp_host_allowed (const struct cdp_req *req);

/* Whether buf holds a whole response: 1 when its head and Content-Length
   bytes of body are there, 0 when more is to come, -1 when it has no
   usable Content-Length (then the end is the upstream's EOF). */
int cdp_response_complete (const char *buf, size_t len);

/* Rewrites a complete upstream response (head and body, as received until
   EOF): every occurrence of from in the body becomes to, Content-Length is
   set to the new length, Connection: close.  Returns the length written to
   out, -1 when the response is not one it can rewrite (no complete head,
   chunked) or the result does not fit in cap, -2 when a webSocketDebuggerUrl
   in it names a host other than to (the guest would redirect the client). */
long cdp_rewrite_response (const char *resp, size_t len, const char *from, const char *to,
                           char *out, size_t cap);

/* The cap cdp_rewrite_response needs for resp: its length with every from
   grown to to, and room for the new head lines. */
size_t cdp_rewrite_cap (const char *resp, size_t len, const char *from, const char *to);

/* The path of "webSocketDebuggerUrl":"ws://HOST/PATH" in a /json/version
   body (e.g. /devtools/browser/<id>), into out; -1 when absent. */
int cdp_browser_path (const char *body, size_t len, char *out, size_t cap);

/* A complete HTTP error answer (status, reason and a one-line text body)
   into out; returns its length. */
size_t cdp_error_response (int status, const char *reason, const char *text, char *out, size_t cap);

#endif
